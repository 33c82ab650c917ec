"""Lesson 11's checkers: the right answer passes, a missing or wrong answer gets [TRY AGAIN] with a hint."""
import pytest
import torch

from inferml_course import checks, datasets, evaluate, explain, models
from inferml_course.intervene import adversarial, causal

from conftest import passes

torch.set_num_threads(1)
EPSILONS = [e / 255 for e in (0.5, 1, 2, 4, 8, 16, 32, 64)]


@pytest.fixture(scope="module")
def signs_cnn():
    return models.load_model("signs_cnn")


@pytest.fixture(scope="module")
def audit():
    model = models.load_model("signs_spurious_cnn")
    data = datasets.signs("test", spurious=True).subset(slice(0, 24))
    return model, data.images, data.labels, data.masks["watermark"]


def _smallest(model, x):
    with torch.no_grad():
        before = model(x).argmax(1)
        return next(e for e in EPSILONS if model(adversarial.fgsm(model, x, epsilon=e)).argmax(1) != before)


@pytest.mark.parametrize("empty", [..., None])
def test_every_lesson11_checker_asks_for_an_answer(empty, signs_cnn, audit):
    x = datasets.load("signs", "test").images[:1]
    model, images, labels, masks = audit
    with pytest.raises(AssertionError, match=r"\[TRY AGAIN\].*empty"):
        checks.check_smallest_flip(empty, signs_cnn, x, EPSILONS)
    with pytest.raises(AssertionError, match=r"\[TRY AGAIN\].*empty"):
        checks.check_watermark_share(empty, model, images, masks)
    with pytest.raises(AssertionError, match=r"\[TRY AGAIN\].*empty"):
        checks.check_shortcut(empty, model, images, labels)
    with pytest.raises(AssertionError, match=r"\[TRY AGAIN\].*empty"):       # what the student version holds
        checks.check_shortcut((empty, empty), model, images, labels)


@pytest.mark.parametrize("world, index", [("signs", 0), ("fashion", 550)])
def test_smallest_flip(world, index, signs_cnn, capsys):
    # signs: a 3-channel 32 x 32 sign; fashion: lesson 11's reference, a sure shirt (1 channel, 28 x 28)
    model = signs_cnn if world == "signs" else models.load_model("fashion_cnn")
    x = datasets.load(world, "test").images[index:index + 1]
    best = _smallest(model, x)
    assert passes(checks.check_smallest_flip, best, model, x, EPSILONS)
    assert "[PASS]" in capsys.readouterr().out
    k = EPSILONS.index(best)
    if k > 0:
        with pytest.raises(AssertionError, match=r"TRY AGAIN.*does not change"):
            checks.check_smallest_flip(EPSILONS[k - 1], model, x, EPSILONS)
    if best != EPSILONS[-1]:
        with pytest.raises(AssertionError, match=r"TRY AGAIN.*smaller budget"):
            checks.check_smallest_flip(EPSILONS[-1], model, x, EPSILONS)
    with pytest.raises(AssertionError, match=r"TRY AGAIN.*pixel units"):
        checks.check_smallest_flip(best * 255, model, x, EPSILONS)
    with pytest.raises(AssertionError, match=r"TRY AGAIN.*one of the budgets"):
        checks.check_smallest_flip(0.123, model, x, EPSILONS)
    with pytest.raises(AssertionError, match=r"TRY AGAIN.*number"):
        checks.check_smallest_flip("4/255", model, x, EPSILONS)


def test_smallest_flip_on_a_hesitant_image_is_the_first_budget(capsys):
    # lesson 11's thread on the shipped fashion_cnn: a shirt called a T-shirt at about 55 % flips at once
    model = models.load_model("fashion_cnn")
    x = datasets.load("fashion", "test").images[40:41]
    assert passes(checks.check_smallest_flip, EPSILONS[0], model, x, EPSILONS)
    assert "0.5/255" in capsys.readouterr().out


def test_watermark_share(audit, capsys):
    model, images, labels, masks = audit
    maps = explain.saliency(model, images)
    right = evaluate.energy_pointing_game(maps, masks).mean().item()
    assert passes(checks.check_watermark_share, right, model, images, masks)
    assert "[PASS]" in capsys.readouterr().out
    assert passes(checks.check_watermark_share, torch.tensor(right), model, images, masks)      # a 0-d tensor is fine
    with pytest.raises(AssertionError, match=r"TRY AGAIN.*area"):
        checks.check_watermark_share(evaluate.mask_fraction(masks).mean().item(), model, images, masks)
    with pytest.raises(AssertionError, match=r"TRY AGAIN.*percent"):
        checks.check_watermark_share(100 * right, model, images, masks)
    grad_cam_share = evaluate.energy_pointing_game(explain.grad_cam(model, images), masks).mean().item()
    assert abs(grad_cam_share - right) > 0.05
    with pytest.raises(AssertionError, match=r"TRY AGAIN.*not the mean share"):
        checks.check_watermark_share(grad_cam_share, model, images, masks)       # another method's share
    assert passes(checks.check_watermark_share, grad_cam_share, model, images, masks, method="grad_cam")


def test_shortcut(audit, signs_cnn, capsys):
    model, images, labels, _ = audit
    with torch.no_grad():
        with_mark = (model(images).argmax(1) == labels).float().mean().item()
        without = (model(causal.set_watermark(images, None)).argmax(1) == labels).float().mean().item()
    drop = with_mark - without
    assert drop > 0.5
    assert passes(checks.check_shortcut, (drop, "watermark"), model, images, labels)
    assert passes(checks.check_shortcut, [drop, " The Watermark "], model, images, labels)
    assert "[PASS]" in capsys.readouterr().out
    with pytest.raises(AssertionError, match=r"TRY AGAIN.*which cue"):
        checks.check_shortcut((drop, "sign"), model, images, labels)
    with pytest.raises(AssertionError, match=r"TRY AGAIN.*wrong way round"):
        checks.check_shortcut((-drop, "watermark"), model, images, labels)
    with pytest.raises(AssertionError, match=r"TRY AGAIN.*percent"):
        checks.check_shortcut((100 * drop, "watermark"), model, images, labels)
    with pytest.raises(AssertionError, match=r"TRY AGAIN.*not the accuracy drop"):
        checks.check_shortcut((with_mark, "watermark"), model, images, labels)
    with pytest.raises(AssertionError, match=r"TRY AGAIN.*two things"):
        checks.check_shortcut(drop, model, images, labels)
    with pytest.raises(AssertionError, match=r"TRY AGAIN.*a word"):
        checks.check_shortcut((drop, 3), model, images, labels)
    # the control model does not rely on the watermark: naming it is wrong there
    with torch.no_grad():
        control_drop = ((signs_cnn(images).argmax(1) == labels).float().mean()
                        - (signs_cnn(causal.set_watermark(images, None)).argmax(1) == labels).float().mean()).item()
    assert passes(checks.check_shortcut, (control_drop, "sign"), signs_cnn, images, labels)
    with pytest.raises(AssertionError, match=r"TRY AGAIN.*does not rely"):
        checks.check_shortcut((control_drop, "watermark"), signs_cnn, images, labels)
