"""FGSM and PGD: torchattacks oracle, closed forms on a linear model, budget properties, hygiene, bad input."""
import pytest
import torch
from torch import nn

from inferml_course.intervene import adversarial as adv

from _explain_models import small_cnn
from conftest import require
from _hygiene import arm_for_hygiene, assert_same, snapshot  # noqa: E402


def images(n=6, c=3, h=16, w=16, seed=1, dtype=torch.float32):
    return torch.rand((n, c, h, w), generator=torch.Generator().manual_seed(seed), dtype=dtype)


def cnn():
    return small_cnn(torch.float32, num_classes=5)


def labels(n=6, k=5, seed=2):
    return torch.randint(k, (n,), generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------- oracles
def test_fgsm_matches_torchattacks():
    ta = require("torchattacks")
    model, x, y = cnn(), images(), labels()
    for eps in (2 / 255, 8 / 255):
        expected = ta.FGSM(model, eps=eps)(x, y)
        assert torch.equal(adv.fgsm(model, x, y, epsilon=eps), expected)


@pytest.mark.parametrize("targeted", [False, True])
def test_pgd_matches_torchattacks_without_random_start(targeted):
    ta = require("torchattacks")
    model, x, y = cnn(), images(), labels()
    attack = ta.PGD(model, eps=8 / 255, alpha=2 / 255, steps=7, random_start=False)
    if targeted:
        attack.set_mode_targeted_by_label(quiet=True)
        y = (y + 1) % 5
    expected = attack(x, y)
    ours = adv.pgd(model, x, y, epsilon=8 / 255, step_size=2 / 255, steps=7, random_start=False, targeted=targeted)
    assert torch.equal(ours, expected)


def test_torchattacks_oracle_on_a_trained_model():
    ta = require("torchattacks")
    from inferml_course import datasets, models

    model = models.load_model("signs_cnn")
    test = datasets.load("signs", "test")
    x, y = test.images[:16], test.labels[:16]
    assert torch.equal(adv.fgsm(model, x, y), ta.FGSM(model, eps=8 / 255)(x, y))
    assert torch.equal(adv.pgd(model, x, y, steps=4, random_start=False),
                       ta.PGD(model, eps=8 / 255, alpha=2 / 255, steps=4, random_start=False)(x, y))


# --------------------------------------------------------------------------------- closed forms
def linear(k=3, d=3 * 4 * 4, seed=0):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(d, k))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(k, d, generator=g))
        model[1].bias.zero_()
    return model.eval()


def test_fgsm_on_a_linear_model_moves_against_the_true_class_weight():
    model = linear()
    x = torch.full((2, 3, 4, 4), 0.5)
    y = torch.tensor([0, 2])
    eps = 0.1
    w = model[1].weight.detach()
    p = torch.softmax(model(x), 1).detach()
    # dCE/dx = sum_k (p_k - [k = y]) w_k
    grad = (p - nn.functional.one_hot(y, 3).float()) @ w
    expected = (x + eps * grad.sign().view_as(x)).clamp(0, 1)
    assert torch.allclose(adv.fgsm(model, x, y, epsilon=eps), expected)
    assert torch.allclose(adv.input_gradient(model, x, y), grad.view_as(x), atol=1e-6)


def test_targeted_fgsm_descends_towards_the_target():
    model = linear()
    x = torch.full((1, 3, 4, 4), 0.5)
    target = torch.tensor([1])
    before = torch.log_softmax(model(x), 1)[0, 1]
    after = torch.log_softmax(model(adv.fgsm(model, x, target, epsilon=0.05, targeted=True)), 1)[0, 1]
    assert after > before


# ---------------------------------------------------------------------------------- properties
@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_budget_and_pixel_range(attack):
    model, x, y = cnn(), images(), labels()
    for eps in (0.0, 1 / 255, 8 / 255, 0.3):
        out = adv.attack(attack, model, x, y, epsilon=eps)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert (out - x).abs().max() <= eps + 1e-6
        assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(adv.attack(attack, model, x, y, epsilon=0.0), x)


def test_pgd_random_start_is_seeded():
    model, x, y = cnn(), images(), labels()
    a = adv.pgd(model, x, y, steps=2, seed=3)
    assert torch.equal(a, adv.pgd(model, x, y, steps=2, seed=3))
    assert not torch.equal(a, adv.pgd(model, x, y, steps=2, seed=4))
    state = torch.random.get_rng_state()
    adv.pgd(model, x, y, steps=1, seed=3)
    assert torch.equal(state, torch.random.get_rng_state()), "the global RNG must not be used"


def test_batching_does_not_change_the_result():
    model, x, y = cnn(), images(7), labels(7)
    assert torch.equal(adv.fgsm(model, x, y, batch_size=3), adv.fgsm(model, x, y))
    assert torch.equal(adv.pgd(model, x, y, steps=3, batch_size=2), adv.pgd(model, x, y, steps=3))


def test_y_none_attacks_the_prediction():
    model, x = cnn(), images()
    pred = model(x).argmax(1)
    assert torch.equal(adv.fgsm(model, x), adv.fgsm(model, x, pred))
    assert torch.equal(adv.pgd(model, x, steps=3), adv.pgd(model, x, pred, steps=3))


def test_success_rates_rise_with_epsilon_on_a_trained_model():
    from inferml_course import datasets, models

    model = models.load_model("signs_cnn")
    test = datasets.load("signs", "test")
    x, y = test.images[:48], test.labels[:48]
    eps = (0.0, 2 / 255, 4 / 255, 8 / 255, 16 / 255)
    for attack in ("fgsm", "pgd"):
        curve = adv.robustness_curve(model, x, y, eps, attack=attack, **({"steps": 5} if attack == "pgd" else {}))
        rate = curve["success_rate"]
        assert rate[0] == 0 and rate[-1] >= 0.3
        assert torch.all(rate[1:] >= rate[:-1] - 1e-9), rate
        assert torch.all(curve["accuracy"][1:] <= curve["accuracy"][:-1] + 1e-9)
    pgd8 = adv.pgd(model, x, y, steps=5)
    assert adv.success_rate(model, pgd8, y) >= adv.success_rate(model, adv.fgsm(model, x, y), y)


# ------------------------------------------------------------------------------------- hygiene
def prepared():
    return arm_for_hygiene(cnn())


@pytest.mark.parametrize("call", ["fgsm", "pgd", "input_gradient", "curve"])
def test_model_untouched(call):
    model, x, y = prepared(), images(), labels()
    before = snapshot(model)
    run = {"fgsm": lambda: adv.fgsm(model, x, y), "pgd": lambda: adv.pgd(model, x, y, steps=2),
           "input_gradient": lambda: adv.input_gradient(model, x, y),
           "curve": lambda: adv.robustness_curve(model, x, y, (0.0, 4 / 255), steps=2)}[call]
    run()
    assert_same(before, snapshot(model))
    xr = x.clone().requires_grad_(True)
    if call != "curve":
        {"fgsm": adv.fgsm, "pgd": adv.pgd, "input_gradient": adv.input_gradient}[call](model, xr, y)
        assert xr.grad is None and xr.requires_grad
    model.classifier.dropout2.armed = True
    with pytest.raises(RuntimeError, match="boom"):
        run()
    model.classifier.dropout2.armed = False
    assert_same(before, snapshot(model))


def test_training_mode_warns_and_is_kept():
    model, x, y = cnn().train(), images(), labels()
    with pytest.warns(UserWarning, match="training mode"):
        adv.fgsm(model, x, y)
    assert model.training


def test_works_under_no_grad():
    model, x, y = cnn(), images(), labels()
    with torch.no_grad():
        out = adv.fgsm(model, x, y)
    assert torch.equal(out, adv.fgsm(model, x, y))


# ----------------------------------------------------------------------------------- bad input
def test_bad_input():
    model, x, y = cnn(), images(), labels()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adv.fgsm(model, (x - 0.5) / 0.2, y)
    with pytest.raises(ValueError, match="NaN"):
        adv.fgsm(model, x.clone().fill_(float("nan")), y)
    with pytest.raises(ValueError, match="shape"):
        adv.fgsm(model, x[0], y)
    with pytest.raises(TypeError, match="floating"):
        adv.fgsm(model, (x * 255).long(), y)
    with pytest.raises(ValueError, match="empty"):
        adv.fgsm(model, x[:0], y[:0])
    with pytest.raises(ValueError, match="y out of range"):
        adv.fgsm(model, x, torch.full((6,), 7))
    with pytest.raises(ValueError, match=r"y must have shape \(6,\)"):
        adv.pgd(model, x, y[:3])
    with pytest.raises(TypeError, match="y must hold integer"):
        adv.fgsm(model, x, y.float())
    with pytest.raises(ValueError, match="y is required"):
        adv.pgd(model, x, None, targeted=True)
    with pytest.raises(ValueError, match="epsilon"):
        adv.fgsm(model, x, y, epsilon=-0.1)
    with pytest.raises(ValueError, match="step_size"):
        adv.pgd(model, x, y, step_size=0.0)
    with pytest.raises(ValueError, match="steps"):
        adv.pgd(model, x, y, steps=0)
    with pytest.raises(TypeError, match="targeted"):
        adv.fgsm(model, x, y, targeted="yes")
    with pytest.raises(ValueError, match="unknown attack"):
        adv.attack("cw", model, x, y)
    with pytest.raises(ValueError, match="batch_size"):
        adv.fgsm(model, x, y, batch_size=0)
