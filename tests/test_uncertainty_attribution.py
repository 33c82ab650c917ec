"""Uncertainty attribution: UA-Backprop's completeness and reference loop, the optimisation's convergence
and reproducibility, the baselines on U, the evaluation metrics on hand-made maps, hygiene and bad input."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inferml_course import format_table
from inferml_course._core.adapter import dropout_head
from inferml_course.explain.gradients import fullgrad_terms
from inferml_course.uncertainty import attribution as ua
from inferml_course.uncertainty import attribution as ev
from inferml_course.uncertainty.bayesian import decompose

from _explain_models import TinyVAE, images, small_cnn
from conftest import passes, require

hypothesis = require("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402
from _hygiene import Bomb, arm_for_hygiene, assert_same, snapshot  # noqa: E402


def cnn(seed=0, dtype=torch.float64, **kw):
    return small_cnn(dtype=dtype, seed=seed, **kw)


class PlainDropoutNet(nn.Module):
    """Dropout inside the trunk: MC dropout takes the generic path (S full forward passes)."""

    def __init__(self, dtype=torch.float64):
        super().__init__()
        torch.manual_seed(3)
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.3),
                                  nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 5)).to(dtype)
        with torch.no_grad():
            self.body[1].running_mean.uniform_(-0.2, 0.2)
            self.body[1].bias.uniform_(-0.5, 0.5)
        self.eval()

    def forward(self, x):
        return self.body(x)


def sources():
    return {"mc_dropout": (cnn(), {"samples": 4}), "mc_dropout_generic": (PlainDropoutNet(), {"samples": 3}),
            "ensemble": ([cnn(1), cnn(2), cnn(3)], {})}


# --- posterior samples --------------------------------------------------------------------------------------

def test_mc_dropout_samples_are_fixed_networks_shared_by_the_batch():
    model, x = cnn(), images(4)
    bayes = ua.BayesianModel(model, samples=5, seed=1)
    z = bayes.sample_logits(x)
    assert z.shape == (5, 4, 5)
    assert torch.equal(z, bayes.sample_logits(x))                                     # deterministic
    assert torch.allclose(z[:, :2], bayes.sample_logits(x[:2]))                       # batch-invariant
    assert not torch.allclose(z, ua.BayesianModel(model, samples=5, seed=2).sample_logits(x))
    assert not torch.allclose(z[0], z[1])                                             # samples differ
    assert dropout_head(model) is not None                                         # the trunk runs once
    generic = ua.BayesianModel(model, samples=5, seed=1)
    generic._reuse_trunk = False                                                      # S full passes
    assert torch.allclose(generic.sample_logits(x), z)
    assert model.classifier.dropout1.training is False and not model.classifier.dropout1._forward_hooks


def test_ensemble_samples_and_forward():
    members = [cnn(1), cnn(2)]
    x = images(3)
    bayes = ua.BayesianModel(members)
    assert bayes.source == "ensemble" and bayes.samples == 2
    z = bayes.sample_logits(x)
    assert torch.allclose(z[1], members[1](x))
    p = torch.softmax(z, -1).mean(0)
    assert torch.allclose(bayes(x).exp(), p)
    from inferml_course.models import Ensemble
    ens = Ensemble(members)
    assert torch.allclose(ua.BayesianModel(ens).sample_logits(x), ens.member_logits(x))


def test_uncertainty_model_matches_the_decomposition():
    model, x = cnn(), images(3)
    bayes = ua.BayesianModel(model, samples=6)
    probs = torch.softmax(bayes.sample_logits(x), -1)
    d = decompose(probs)
    for measure in ("total", "aleatoric", "epistemic"):
        u = ua.UncertaintyModel(bayes, measure)(x)
        assert u.shape == (3, 1)
        assert torch.allclose(u[:, 0], getattr(d, measure), atol=1e-10)


# --- UA-Backprop ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mc_dropout", "mc_dropout_generic", "ensemble"])
def test_completeness_for_every_uncertainty_type(name):
    model, kw = sources()[name]
    x = images(3)
    result = ua.ua_backprop_details(model, x, **kw)
    bayes = ua.BayesianModel(model, **kw)
    d = decompose(torch.softmax(bayes.sample_logits(x), -1))
    for measure, m in result.maps.items():
        assert m.shape == (3, 16, 16)
        expected = d.total - d.aleatoric if measure == "epistemic" else getattr(d, measure)
        assert torch.allclose(m.sum((1, 2)), expected, atol=1e-9), measure
    assert torch.allclose(result.uncertainty.total, d.total)
    single = ua.ua_backprop(model, x, "aleatoric", **kw)
    assert torch.allclose(single, result.maps["aleatoric"])


def test_logit_coefficients_follow_the_softmax_jacobian():
    z = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    g = torch.softmax(z, 1)
    for tau1 in (0.1, 1.0):
        c = ua.logit_coefficients(g, tau1)                           # (N, K_j, K_i)
        for n in range(4):
            jac = torch.autograd.functional.jacobian(lambda v: torch.softmax(v, 0), z[n])   # d g_j / d z_k
            expected = torch.softmax(jac / (g[n][:, None] * tau1), dim=1)
            assert torch.allclose(c[n], expected, atol=1e-10)
        assert torch.allclose(c.sum(-1), torch.ones(4, 6, dtype=torch.float64))
    small = ua.logit_coefficients(g, 1e-3)
    assert torch.allclose(small, torch.eye(6, dtype=torch.float64).expand(4, 6, 6), atol=1e-6)


def test_logit_shares_sum_to_the_uncertainty():
    probs = torch.softmax(torch.randn(5, 3, 4, dtype=torch.float64), -1)
    d = decompose(probs)
    shares = ua.logit_shares(probs, 0.3)
    for measure, value in (("total", d.total), ("aleatoric", d.aleatoric), ("epistemic", d.total - d.aleatoric)):
        assert torch.allclose(shares[measure].sum(-1), value.expand(5, 3), atol=1e-12)


def test_psi():
    v = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    out = ua.psi(v, 0.5)
    assert torch.allclose(out.sum((-2, -1)), torch.ones(2, 3, dtype=torch.float64))
    flat_v, flat_o = v.flatten(-2), out.flatten(-2)
    assert torch.equal(flat_v.argsort(-1), flat_o.argsort(-1))                      # monotone
    assert torch.allclose(ua.psi(torch.zeros(1, 4, 4)), torch.full((1, 4, 4), 1 / 16))
    assert torch.allclose(ua.psi(v * 7.0, 0.5), out)                                # scale-free
    assert torch.allclose(ua.psi(v, 1.0), v / v.sum((-2, -1), keepdim=True))         # tau2 = 1: proportional
    assert ua.psi(v, 0.01).flatten(-2).amax(-1).min() > ua.psi(v, 10.0).flatten(-2).amax(-1).max()


def reference_ua_backprop(members, x, tau1, tau2):
    """The poster's rules, one member and one logit at a time, with the explain package's FullGrad terms."""
    probs = torch.stack([torch.softmax(m(x), 1) for m in members]).detach()
    shares = ua.logit_shares(probs, tau1)
    size = x.shape[-2:]
    out = {k: torch.zeros(x.shape[0], *size, dtype=torch.float64) for k in shares}
    for s, member in enumerate(members):
        for i in range(probs.shape[-1]):
            input_term, bias_terms, _ = fullgrad_terms(member, x, target=i)
            v = input_term.abs().sum(1)
            for term in bias_terms:
                if term.dim() == 4:
                    h, w = term.shape[-2:]
                    up = F.interpolate(term.abs().sum(1, keepdim=True), size=size, mode="bilinear",
                                       align_corners=False)[:, 0]
                    v = v + up * (h * w / (size[0] * size[1]))
            m = ua.psi(v, tau2)
            for k in out:
                out[k] += shares[k][s, :, i, None, None] * m / len(members)
    return out


@pytest.mark.parametrize("vectorize", [True, False])
def test_ua_backprop_equals_a_reference_loop(vectorize):
    members, x = [cnn(1), cnn(2)], images(2)
    got = ua.ua_backprop_details(members, x, tau1=0.3, tau2=0.5, vectorize=vectorize).maps
    want = reference_ua_backprop(members, x, 0.3, 0.5)
    for k in want:
        assert torch.allclose(got[k], want[k], atol=1e-12), k


def test_chunks_do_not_change_the_maps():
    model, x = cnn(), images(5)
    a = ua.ua_backprop(model, x, samples=3, batch_size=2)
    b = ua.ua_backprop(model, x, samples=3, batch_size=5)
    assert torch.allclose(a, b, atol=1e-12)


class HighFrequencyToy(nn.Module):
    """Two classes; the logit margin 5 - 900 h falls with h, the high-frequency energy of the top-left
    quadrant. A noisy quadrant makes the model uncertain; blurring it makes it certain again."""

    def forward(self, x):
        smooth = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        h = ((x - smooth) ** 2)[:, :, :8, :8].mean((1, 2, 3))
        return torch.stack([2.5 - 450 * h, 450 * h - 2.5], 1)


def toy_images(n=2, dtype=torch.float64):
    g = torch.Generator().manual_seed(5)
    x = torch.full((n, 3, 16, 16), 0.5, dtype=dtype)
    x[:, :, :8, :8] += 0.3 * (torch.rand((n, 3, 8, 8), generator=g, dtype=dtype) - 0.5)
    return x


def test_maps_point_at_the_source_of_uncertainty():
    x = toy_images()
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[:8, :8] = True
    u = ua.UncertaintyModel([HighFrequencyToy()])
    assert u(x).min() > 0.3
    m = ua.ua_backprop(u, x)
    assert (m[:, inside].sum(1) > 0.9 * m.sum((1, 2))).all()
    quadrants = ua.grid_segments(x, 8)
    r = ua.optimization_ua(u, x, segments=quadrants, steps=40, lam=1.0, return_details=True)
    assert (r.attribution[:, inside].mean(1) > 0.9).all() and (r.attribution[:, ~inside].max() < 0.1)
    assert (r.uncertainty_after < 0.5 * r.uncertainty_before).all()


# --- optimisation-based UA --------------------------------------------------------------------------------

def test_optimisation_converges_and_is_reproducible():
    model, x = cnn(), images(3)
    kw = dict(samples=4, steps=30, n_segments=(4, 10), return_details=True)
    r1 = ua.optimization_ua(model, x, seed=3, **kw)
    r2 = ua.optimization_ua(model, x, seed=3, **kw)
    assert torch.equal(r1.attribution, r2.attribution) and torch.equal(r1.history, r2.history)
    assert r1.history[-10:].mean() < r1.history[:10].mean()
    assert r1.attribution.shape == (3, 16, 16)
    assert r1.attribution.min() >= 0 and r1.attribution.max() <= 1
    assert r1.segments.shape[:2] == (2, 3) and r1.sigma.shape == (3,) and r1.history.shape == (30,)
    r3 = ua.optimization_ua(model, x, seed=4, **kw)
    assert not torch.equal(r1.history, r3.history)
    plain = ua.optimization_ua(model, x, seed=3, samples=4, steps=30, n_segments=(4, 10))
    assert torch.equal(plain, r1.attribution)


def test_learnable_blur():
    x = images(2)
    sigma = torch.tensor([0.5, 2.0], dtype=torch.float64, requires_grad=True)
    y = ua.learnable_blur(x, sigma)
    assert y.shape == x.shape
    assert torch.allclose(y.mean((2, 3)), x.mean((2, 3)), atol=0.05)
    assert (y[1] - y[1].mean()).abs().mean() < (x[1] - x[1].mean()).abs().mean()
    (g,) = torch.autograd.grad(y.pow(2).sum(), sigma)
    assert torch.isfinite(g).all() and (g != 0).all()
    const = torch.full((1, 1, 8, 8), 0.3, dtype=torch.float64)
    assert torch.allclose(ua.learnable_blur(const, torch.tensor([3.0])), const)


def test_grid_segments():
    seg = ua.grid_segments(images(2, h=16, w=12), 8)
    assert seg.shape == (2, 16, 12)
    assert seg[0, 0, 0] == 0 and seg[0, 0, 11] == 1 and seg[0, 15, 0] == 2 and int(seg.max()) == 3


# --- baselines ------------------------------------------------------------------------------------------------

FAST = {"smoothgrad": {"samples": 2}, "integrated_gradients": {"steps": 3}, "blur_ig": {"steps": 3},
        "lime": {"samples": 10}, "kernel_shap": {"samples": 10}, "kernel_shap_segments": {"samples": 10},
        "optimization_ua": {"steps": 3, "n_segments": 4}, "occlusion": {"window": 8, "stride": 8},
        "clue": {"vae": TinyVAE(dtype=torch.float32), "steps": 2},
        "delta_clue": {"vae": TinyVAE(dtype=torch.float32), "steps": 2}}


@pytest.mark.parametrize("method", ua.UA_METHODS)
def test_every_method_runs(method):
    model, x = cnn(dtype=torch.float32), images(2, dtype=torch.float32)
    out = ua.attribute(method, model, x, posterior_samples=3, **FAST.get(method, {}))
    assert out.shape == (2, 16, 16) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_gradient_baseline_is_the_gradient_of_u():
    model, x = cnn(), images(2)
    u = ua.UncertaintyModel(model, "epistemic", samples=3)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(u(xg).sum(), xg)
    assert torch.allclose(ua.attribute("gradient", u, x), g.abs().amax(1))
    assert torch.allclose(ua.attribute("gradient", model, x, "epistemic", posterior_samples=3), g.abs().amax(1))


def test_occlusion_baseline_measures_the_uncertainty_drop():
    u = ua.UncertaintyModel([HighFrequencyToy()])
    x = toy_images(1)
    m = ua.attribute("occlusion", u, x, window=8, stride=8, baseline=0.5)  # the toy has no normalisation
    assert m[0, :8, :8].min() > 0 and m[0, 8:, 8:].abs().max() < 1e-9


# --- evaluations on hand-made maps ----------------------------------------------------------------------

def test_blurring_test_known_answer():
    x = torch.ones(2, 1, 10, 10, dtype=torch.float64)

    def u(images):  # uncertainty = the sum of channel 0: every zeroed pixel removes 1 / 100 of it
        return images[:, 0].sum((1, 2))

    maps = torch.rand(2, 10, 10, dtype=torch.float64)
    r = ev.blurring_test(u, x, maps, budgets=(0.02, 0.1), points=2, substrate=torch.zeros_like(x))
    assert r.pixels.tolist() == [0, 1, 2, 5, 10]
    assert r.murr[0.02] == pytest.approx(0.02) and r.murr[0.1] == pytest.approx(0.1)
    assert r.auc[0.02] == pytest.approx(0.99) and r.auc[0.1] == pytest.approx(0.95)
    assert torch.allclose(r.ratios[0], torch.tensor([1.0, 0.99, 0.98, 0.95, 0.90]))


def test_blurring_test_prefers_the_map_that_points_at_the_uncertainty():
    x = torch.ones(1, 1, 10, 10, dtype=torch.float64)

    def u(images):  # only the first row matters
        return images[:, 0, 0].sum(1, keepdim=True)

    right = torch.zeros(1, 10, 10, dtype=torch.float64)
    right[0, 0] = 1.0
    wrong = 1.0 - right
    kw = dict(budgets=(0.05,), points=5, substrate=torch.zeros_like(x))
    good, bad = ev.blurring_test(u, x, right, **kw), ev.blurring_test(u, x, wrong, **kw)
    assert good.murr[0.05] == pytest.approx(0.5) and bad.murr[0.05] == pytest.approx(0.0)
    assert good.auc[0.05] < bad.auc[0.05] == pytest.approx(1.0)


def test_blurring_test_with_a_model_and_a_real_blur():
    u = ua.UncertaintyModel([HighFrequencyToy()])
    x = toy_images()
    inside = torch.zeros(2, 16, 16, dtype=torch.float64)
    inside[:, :8, :8] = 1.0
    r_in = ev.blurring_test(u, x, inside + 1e-3 * torch.rand(2, 16, 16, dtype=torch.float64), budgets=(0.25,))
    r_out = ev.blurring_test(u, x, 1 - inside, budgets=(0.25,))
    assert r_in.murr[0.25] > 0.5 > r_out.murr[0.25]


def test_anomaly_localization_known_answers():
    masks = torch.zeros(3, 4, 4, dtype=torch.bool)
    masks[:, 0, :4] = True                                    # the first row, 4 pixels
    maps = torch.zeros(3, 4, 4)
    maps[0, 0] = 1.0                                          # exact
    maps[1, 3] = 1.0                                          # disjoint
    maps[2, 0, 2:] = 1.0
    maps[2, 1, :2] = 0.5                                      # top-4 = 2 in, 2 out: IoU 2 / 6
    r = ev.anomaly_localization(maps, masks)
    assert r["iou"].tolist() == pytest.approx([1.0, 0.0, 1 / 3])
    assert r["IoU"] == pytest.approx((1 + 1 / 3) / 3) and r["ADA"] == pytest.approx(1 / 3)
    assert ev.anomaly_localization(maps, masks, ada_threshold=0.3)["ADA"] == pytest.approx(2 / 3)
    assert ev.anomaly_localization(maps, masks, ada="pointing")["detected"].tolist() == [True, False, True]
    assert ev.binarize_maps(maps, "fraction", fraction=0.25).flatten(1).sum(1).tolist() == [4, 4, 4]
    assert ev.binarize_maps(maps, "threshold", threshold=0.75)[2].sum() == 2


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=16, max_size=16),
       st.lists(st.booleans(), min_size=16, max_size=16))
def test_anomaly_iou_properties(values, bits):
    maps = torch.tensor(values, dtype=torch.float64).view(1, 4, 4)
    masks = torch.tensor(bits).view(1, 4, 4)
    r = ev.anomaly_localization(maps, masks)
    assert 0 <= r["IoU"] <= 1
    assert ev.anomaly_localization(maps * 4, masks)["IoU"] == pytest.approx(r["IoU"])  # rank-based
    if masks.any():
        assert ev.anomaly_localization(masks.float(), masks)["IoU"] == pytest.approx(1.0)


def test_attention_inputs():
    x = torch.rand(2, 3, 4, 4)
    assert torch.equal(ev.attention_inputs(x, torch.zeros(2, 4, 4)), x)
    m = torch.zeros(2, 4, 4)
    m[:, 1, 2] = 3.0
    a = ev.attention_inputs(x, m)
    assert (a[:, :, 1, 2] == 0).all()
    keep = torch.ones(4, 4, dtype=torch.bool)
    keep[1, 2] = False
    assert torch.equal(a[:, :, keep], x[:, :, keep])
    mean = ev.attention_inputs(x, m, fill="mean")
    assert torch.allclose(mean[:, :, 1, 2], x.mean((2, 3)))
    top = ev.attention_inputs(x, torch.rand(2, 4, 4), top=0.25)
    assert ((top == 0).all(1).flatten(1).sum(1) >= 4).all()


def test_attention_map_is_the_posters_formula():
    """A = (1 - M) M: zero on the background (M = 0) and on the problematic region (M = 1), 1/4 at M = 1/2."""
    m = torch.tensor([[[0.0, 0.25, 0.5], [0.75, 1.0, 0.1]]])
    a = ev.attention_map(m)
    expected = torch.tensor([[[0.0, 0.1875, 0.25], [0.1875, 0.0, 0.09]]])
    assert a.shape == m.shape and torch.allclose(a, expected)
    assert ua.attention_map is ev.attention_map and "attention_map" in ua.__all__
    for bad in (torch.tensor([[[1.5]]]), torch.tensor([[[-0.1]]])):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            ev.attention_map(bad)
    with pytest.raises(ValueError, match="maps"):
        ev.attention_map(torch.rand(4, 4))
    with pytest.raises(TypeError, match="maps"):
        ev.attention_map(torch.ones(1, 2, 2, dtype=torch.long))


def test_attention_inputs_poster_form():
    x = torch.rand(1, 3, 1, 3)
    maps = torch.tensor([[[0.0, 1.0, 2.0]]])             # min-max scaled: M = 0, 1/2, 1
    poster = ev.attention_inputs(x, maps, form="poster")  # kept: 4 (1 - M) M = 0, 1, 0
    assert torch.allclose(poster, x * torch.tensor([0.0, 1.0, 0.0]))
    course = ev.attention_inputs(x, maps)                 # kept: 1 - M = 1, 1/2, 0
    assert torch.allclose(course, x * torch.tensor([1.0, 0.5, 0.0]))
    blur = ev.attention_inputs(x, maps, fill="mean", form="poster")
    assert torch.allclose(blur[:, :, 0, 0], x.mean((2, 3)))   # nothing kept at M = 0: the fill
    with pytest.raises(ValueError, match="form"):
        ev.attention_inputs(x, maps, form="other")
    with pytest.raises(ValueError, match="top"):
        ev.attention_inputs(x, maps, form="poster", top=0.5)


def test_attention_mitigation():
    model, x = cnn(dtype=torch.float32), images(4, dtype=torch.float32)
    bayes = ua.BayesianModel(model, samples=3)
    labels = torch.tensor([0, 1, 2, 3])
    table = ev.attention_mitigation(bayes, x, labels, {"gradient": torch.rand(4, 16, 16),
                                                       "none": torch.zeros(4, 16, 16)})
    with torch.no_grad():
        log_p = bayes(x)
    assert table["No attention"]["ACC"] == pytest.approx(float((log_p.argmax(1) == labels).float().mean()) * 100)
    assert table["No attention"]["NLL"] == pytest.approx(float(-log_p.gather(1, labels[:, None]).mean()), rel=1e-5)
    assert table["none"] == table["No attention"] and "Grad" in table
    poster = ev.attention_mitigation(bayes, x, labels, {"gradient": torch.rand(4, 16, 16)}, form="poster")
    assert poster["No attention"] == table["No attention"] and set(poster) == {"No attention", "Grad"}


def test_format_table_marks_by_direction():
    rows = {"a": {"MURR 2%": 0.5, "AUC-URR 2%": 0.4}, "b": {"MURR 2%": 0.7, "AUC-URR 2%": 0.6},
            "c": {"MURR 2%": 0.1, "AUC-URR 2%": 0.9}}
    text = format_table(rows, marks=True, title="blurring test")  # the posters' labels are registered here
    assert "MURR higher is better" in text and "AUC-URR lower is better" in text
    lines = {line.split()[0]: line for line in text.splitlines()[3:]}
    assert "0.700*" in lines["b"] and "0.400*" in lines["a"] and "0.500+" in lines["a"]
    with pytest.raises(ValueError, match="direction"):
        format_table({"a": {"speed": 1.0}, "b": {"speed": 2.0}}, marks=True)


# --- hygiene and bad input ---------------------------------------------------------------------------------

def prepared_model():
    return arm_for_hygiene(cnn(dtype=torch.float32), Bomb(nn.Dropout(0.5)))


CALLS = {
    "ua_backprop": lambda m, x: ua.ua_backprop(m, x, samples=2),
    "optimization_ua": lambda m, x: ua.optimization_ua(m, x, samples=2, steps=2, n_segments=4),
    "uncertainty_model": lambda m, x: ua.UncertaintyModel(m, samples=2)(x),
    "fullgrad_on_u": lambda m, x: ua.attribute("fullgrad", m, x, posterior_samples=2),
}


@pytest.mark.parametrize("call", CALLS)
def test_model_untouched(call):
    model = prepared_model()
    model.train()                              # a model left in training mode stays so
    model.classifier.train(False)
    before = snapshot(model)
    x = images(2, dtype=torch.float32).requires_grad_(True)
    CALLS[call](model, x)          # evaluated in eval mode (fixed dropout masks), whatever the mode
    assert_same(before, snapshot(model))
    assert x.requires_grad and x.grad is None


@pytest.mark.parametrize("where", ["forward", "backward"])
@pytest.mark.parametrize("call", ["ua_backprop", "optimization_ua"])
def test_model_untouched_after_an_exception(call, where):
    model = prepared_model()
    before = snapshot(model)
    model.classifier.dropout2.armed = where
    with pytest.raises(RuntimeError, match="boom"):
        CALLS[call](model, images(2, dtype=torch.float32))
    model.classifier.dropout2.armed = None
    assert_same(before, snapshot(model))


def test_bad_input():
    model, x = cnn(), images(2)
    with pytest.raises(ValueError, match="measure"):
        ua.ua_backprop(model, x, "variance")
    with pytest.raises(ValueError, match="source"):
        ua.BayesianModel(model, source="laplace")
    with pytest.raises(ValueError, match="dropout"):
        ua.BayesianModel(nn.Sequential(nn.Flatten(), nn.Linear(768, 3)))
    with pytest.raises(ValueError, match="members"):
        ua.BayesianModel([cnn(1), cnn(2)], samples=5)
    with pytest.raises(ValueError, match="samples"):
        ua.BayesianModel(model, samples=0)
    with pytest.raises(TypeError, match="seed"):
        ua.BayesianModel(model, seed=1.5)
    with pytest.raises(ValueError, match="tau1"):
        ua.ua_backprop(model, x, tau1=0)
    with pytest.raises(ValueError, match="tau2"):
        ua.ua_backprop(model, x, tau2=float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        ua.ua_backprop(model, torch.full_like(x, float("nan")))
    with pytest.raises(ValueError, match="shape"):
        ua.ua_backprop(model, x[0])
    with pytest.raises(ValueError, match="UncertaintyModel of the 'total'"):
        ua.ua_backprop(ua.UncertaintyModel(model), x, "epistemic")
    with pytest.raises(ValueError, match="segments"):
        ua.optimization_ua(model, x, segments=torch.zeros(2, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="n_segments"):
        ua.optimization_ua(model, x, n_segments=(4, 0))
    with pytest.raises(ValueError, match="lam"):
        ua.optimization_ua(model, x, lam=-1.0)
    with pytest.raises(ValueError, match="steps"):
        ua.optimization_ua(model, x, steps=0)
    with pytest.raises(ValueError, match="method"):
        ua.attribute("lrp", model, x)


def test_bad_evaluation_input():
    x = images(2)
    u = ua.UncertaintyModel(cnn(), samples=2)
    with pytest.raises(ValueError, match="maps"):
        ev.blurring_test(u, x, torch.rand(2, 16, 15))
    with pytest.raises(ValueError, match="budgets"):
        ev.blurring_test(u, x, torch.rand(2, 16, 16), budgets=(0.0,))
    with pytest.raises(ValueError, match="one value per image"):
        ev.blurring_test(cnn(), x, torch.rand(2, 16, 16))
    with pytest.raises(ValueError, match="nothing"):
        ev.blurring_test(lambda im: torch.zeros(im.shape[0]), x, torch.rand(2, 16, 16))
    with pytest.raises(ValueError, match="masks"):
        ev.anomaly_localization(torch.rand(2, 4, 4), torch.zeros(2, 4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="ada"):
        ev.anomaly_localization(torch.rand(2, 4, 4), torch.zeros(2, 4, 4, dtype=torch.bool), ada="best")
    with pytest.raises(ValueError, match="binarize"):
        ev.anomaly_localization(torch.rand(2, 4, 4), torch.zeros(2, 4, 4, dtype=torch.bool), binarize="otsu")
    with pytest.raises(ValueError, match="fill"):
        ev.attention_inputs(x, torch.rand(2, 16, 16), fill="noise")
    with pytest.raises(ValueError, match="labels"):
        ev.attention_mitigation(u, x, torch.tensor([0.0, 1.0]), {"a": torch.rand(2, 16, 16)})
    with pytest.raises(ValueError, match="NaN"):
        ev.anomaly_localization(torch.full((1, 4, 4), math.nan), torch.zeros(1, 4, 4, dtype=torch.bool))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_follows_the_device():
    model, x = cnn(dtype=torch.float32).cuda(), images(2, dtype=torch.float32).cuda()
    m = ua.ua_backprop(model, x, samples=3)
    assert m.device.type == "cuda"
    assert torch.allclose(m.cpu(), ua.ua_backprop(model.cpu(), x.cpu(), samples=3), atol=1e-5)
    model.cuda()
    r = ua.optimization_ua(model, x, samples=3, steps=5, n_segments=4, return_details=True)
    assert r.attribution.device.type == "cuda"
    b = ev.blurring_test(ua.UncertaintyModel(model, samples=3), x, m)
    assert 0 <= b.murr[0.02] <= 1


# --- figures, widget and checkers ----------------------------------------------------------------------------

def test_figures_and_widget_draw():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from inferml_course.uncertainty import attribution as ap

    model, x = cnn(dtype=torch.float32), images(3, dtype=torch.float32)
    u = ua.UncertaintyModel(model, samples=3)
    maps = {"ua_backprop": ua.ua_backprop(u, x), "gradient": ua.attribute("gradient", u, x)}
    masks = torch.zeros(3, 16, 16, dtype=torch.bool)
    masks[:, 4:8, 4:8] = True
    fig = ap.ua_maps_grid(x, maps, masks)
    assert len(fig.axes) == 3 * 3 and fig.axes[1].get_title() == "UA-Backprop"
    fig2 = ap.blurring_curves({k: ev.blurring_test(u, x, m, points=2) for k, m in maps.items()})
    explorer = ap.BlurringExplorer(u, x, maps, masks, max_pixels=20)
    fig3 = explorer.draw("gradient", 1, 10)
    assert "10 pixels blurred" in fig3.axes[2].get_title()
    explorer.pixels.value = 0
    for f in (fig, fig2, fig3):
        plt.close(f)
    plt.close("all")


def test_lesson08_checkers(capsys):
    from inferml_course import checks

    model, x = cnn(), images(3)
    r = ua.ua_backprop_details(model, x, samples=3)
    m = r.maps["epistemic"]
    probs = torch.softmax(torch.randn(20, 2, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64), -1)
    g = probs.mean(0)
    total, aleatoric = -g * g.log(), (-probs * probs.log()).mean(0)
    assert passes(checks.check_class_shares, total - aleatoric, probs, "epistemic", list("abcde"))
    assert "sum to U =" in capsys.readouterr().out
    assert passes(checks.check_class_shares, aleatoric, probs, "aleatoric")
    with pytest.raises(AssertionError, match="TRY AGAIN.*sign is flipped"):
        checks.check_class_shares(aleatoric - total, probs)
    with pytest.raises(AssertionError, match="TRY AGAIN.*total shares"):
        checks.check_class_shares(total, probs)
    with pytest.raises(AssertionError, match="TRY AGAIN.*aleatoric shares"):
        checks.check_class_shares(aleatoric, probs)
    with pytest.raises(AssertionError, match="TRY AGAIN.*base 2"):
        checks.check_class_shares(-g * g.log2() + (probs * probs.log2()).mean(0), probs)
    with pytest.raises(AssertionError, match="TRY AGAIN.*do not sum"):
        checks.check_class_shares((total - aleatoric).sum(1), probs)
    with pytest.raises(AssertionError, match="TRY AGAIN.*xlogy"):
        zero = torch.cat([probs[..., :1] * 0, probs[..., 1:]], -1)
        checks.check_class_shares(-zero.mean(0) * zero.mean(0).log(), zero, "total")
    with pytest.raises(AssertionError, match="TRY AGAIN.*Hint"):
        checks.check_class_shares(total - aleatoric + 0.01, probs)
    ratios = torch.tensor([[1.0, 0.9, 0.8, 0.5, 0.7], [1.0, 0.95, 0.9, 0.85, 0.6]])
    b = ev.BlurringResult({0.02: 0.15, 0.05: 0.45}, {}, torch.tensor([0, 10, 20, 30, 51]), ratios, torch.ones(2))
    assert passes(checks.check_murr, 0.15, b, 0.02) and passes(checks.check_murr, 0.45, b, 0.05)
    with pytest.raises(AssertionError, match="every evaluated pixel count"):
        checks.check_murr(0.45, b, 0.02)
    with pytest.raises(AssertionError, match="last step"):
        checks.check_murr(0.35, b, 0.05)
    with pytest.raises(AssertionError, match="empty"):
        checks.check_murr(None, b, 0.05)


def test_lesson08_anomaly_iou_checker(capsys):
    from inferml_course import checks

    gen = torch.Generator().manual_seed(1)
    maps = torch.randn(4, 8, 8, generator=gen, dtype=torch.float64)
    masks = torch.zeros(4, 8, 8, dtype=torch.bool)
    for i, (r, c, s) in enumerate([(0, 0, 3), (2, 3, 4), (4, 4, 2), (1, 5, 3)]):
        masks[i, r:r + s, c:c + s] = True
        maps[i, r:r + s, c:c + s] += 1.0                    # the maps find part of each patch
    flat, patch = maps.flatten(1), masks.flatten(1)

    def by_hand(order, divide_by="union", k=None):
        kept = torch.zeros_like(patch)
        for i in range(len(flat)):
            kept[i, order[i, :int(patch[i].sum()) if k is None else k]] = True
        inter = (kept & patch).sum(1)
        return {"union": inter / (kept | patch).sum(1), "area": inter / patch.sum(1), "count": inter}[divide_by]

    order = flat.argsort(dim=1, descending=True, stable=True)
    assert passes(checks.check_anomaly_iou, by_hand(order), maps, masks)
    assert "ADA" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="TRY AGAIN.*descending"):
        checks.check_anomaly_iou(by_hand(flat.argsort(dim=1, stable=True)), maps, masks)
    with pytest.raises(AssertionError, match="TRY AGAIN.*signed"):
        checks.check_anomaly_iou(by_hand(flat.abs().argsort(dim=1, descending=True, stable=True)), maps, masks)
    with pytest.raises(AssertionError, match="TRY AGAIN.*union of the two"):
        checks.check_anomaly_iou(by_hand(order, "area"), maps, masks)
    with pytest.raises(AssertionError, match="TRY AGAIN.*pixel count"):
        checks.check_anomaly_iou(by_hand(order, "count"), maps, masks)
    with pytest.raises(AssertionError, match="TRY AGAIN.*10 %"):
        checks.check_anomaly_iou(by_hand(order, k=6), maps, masks)
    with pytest.raises(AssertionError, match="TRY AGAIN.*one IoU per image"):
        checks.check_anomaly_iou(by_hand(order).mean(), maps, masks)
    with pytest.raises(AssertionError, match="TRY AGAIN.*Hint"):
        checks.check_anomaly_iou(by_hand(order) + 0.05, maps, masks)
