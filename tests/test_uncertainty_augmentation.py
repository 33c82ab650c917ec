"""Test-time augmentation (uncertainty.augmentation): the views, a loop oracle, directions, hygiene, bad input."""
import pytest
import torch
from torch import nn

from _explain_models import images, small_cnn
from _hygiene import assert_same, snapshot
from inferml_course._core import directions
from inferml_course.uncertainty import augmentation as aug
from inferml_course.uncertainty import bayesian

torch.set_num_threads(1)


def test_shifts_move_the_content_and_replicate_the_border():
    x = torch.arange(25, dtype=torch.float64).view(1, 1, 5, 5) / 25
    right = aug.augment(x, "shift_right", shift=2)
    assert torch.equal(right[..., :, 2:], x[..., :, :3])                         # content moved right by 2
    assert torch.equal(right[..., :, :2], x[..., :, :1].expand(-1, -1, -1, 2))   # left border replicated
    left = aug.augment(x, "shift_left", shift=1)
    assert torch.equal(left[..., :, :4], x[..., :, 1:]) and torch.equal(left[..., :, 4], x[..., :, 4])
    down = aug.augment(x, "shift_down", shift=1)
    assert torch.equal(down[..., 1:, :], x[..., :4, :]) and torch.equal(down[..., 0, :], x[..., 0, :])
    up = aug.augment(x, "shift_up", shift=3)
    assert torch.equal(up[..., :2, :], x[..., 3:, :])
    assert torch.equal(aug.augment(x, "hflip"), x.flip(-1))
    assert torch.equal(aug.augment(x, "identity"), x)
    bright = aug.augment(torch.full((1, 1, 2, 2), 0.95), "brighter", gain=0.1)
    assert torch.equal(bright, torch.ones(1, 1, 2, 2))                          # clipped to [0, 1]
    assert torch.allclose(aug.augment(torch.full((1, 1, 2, 2), 0.5), "darker", gain=0.1), torch.full((1, 1, 2, 2), 0.4))


def test_views_are_view_major():
    x = images(3)
    views = aug.augmented_views(x, ("identity", "hflip", "shift_up"))
    assert views.shape == (3, *x.shape)
    assert torch.equal(views[1], x.flip(-1))


def test_tta_equals_a_loop_over_views_and_images():
    model, x = small_cnn(), images(4)
    names = aug.AUGMENTATIONS
    probs = aug.tta_probs(model, x, names, batch_size=5)       # chunks that cut across views
    assert probs.shape == (len(names), 4, 5)
    with torch.no_grad():
        loop = torch.stack([torch.stack([torch.softmax(model(aug.augment(x[n:n + 1], a)), 1)[0] for n in range(4)])
                            for a in names])
    assert torch.allclose(probs, loop.float(), atol=1e-6)
    parts = bayesian.decompose(loop)
    for measure in bayesian.MEASURES:
        assert torch.allclose(aug.tta(model, x, names, measure=measure, batch_size=None),
                              getattr(parts, measure).float(), atol=1e-5), measure
    assert torch.allclose(aug.tta(model, x, names, measure="msp"), -loop.mean(0).amax(1).float(), atol=1e-6)


def test_one_identity_view_is_the_softmax_entropy():
    model, x = small_cnn(), images(3)
    with torch.no_grad():
        p = torch.softmax(model(x), 1)
    entropy = -(p * p.log()).sum(1)
    assert torch.allclose(aug.tta(model, x, ("identity",)), entropy.float(), atol=1e-6)
    assert torch.all(aug.tta(model, x, ("identity",), measure="epistemic") == 0)    # one view cannot disagree


def test_disagreeing_views_raise_the_uncertainty():
    class LeftHalf(nn.Module):            # class 0 when the left half is brighter, else class 1, very sure
        def forward(self, x):
            d = x[..., :, : x.shape[-1] // 2].mean((1, 2, 3)) - x[..., :, x.shape[-1] // 2:].mean((1, 2, 3))
            return torch.stack([20 * d, -20 * d], 1)

    x = torch.zeros(1, 3, 8, 8)
    x[..., :4] = 1
    model = LeftHalf()
    one = aug.tta(model, x, ("identity",))
    both = aug.tta(model, x, ("identity", "hflip"))                 # the flip votes for the other class
    assert one < 1e-3 and both > 0.69                               # ln 2 = 0.693
    assert aug.tta(model, x, ("identity", "hflip"), measure="epistemic") > 0.69


def test_direction_is_registered_as_an_uncertainty():
    assert directions.higher_is_better("tta") is False
    assert directions.REGISTRY["tta"].kind == directions.SCORE


def test_model_left_as_found():
    model, x = small_cnn(), images(2)
    model.train()
    before = snapshot(model)
    with pytest.warns(UserWarning):
        aug.tta(model, x)
    assert_same(before, snapshot(model))
    model.eval()
    before = snapshot(model)
    aug.tta_probs(model, x)
    assert_same(before, snapshot(model))


@pytest.mark.parametrize("kwargs, match", [
    ({"augmentations": ("identity", "rotate")}, "augmentations"),
    ({"augmentations": ()}, "at least one"),
    ({"measure": "variance"}, "measure"),
    ({"shift": 0}, "shift"),
    ({"shift": 16}, "shift"),
    ({"gain": -0.1}, "gain"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        aug.tta(small_cnn(), images(2), **kwargs)


def test_bad_images():
    with pytest.raises(ValueError, match="x"):
        aug.tta(small_cnn(), images(2)[0])                          # no batch dimension
    bad = images(2)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError):
        aug.tta(small_cnn(), bad)


@pytest.mark.parametrize("name", ["resnet18", "vit"])
def test_torchvision_models_in_place_and_tokens(name):
    """TTA on a torchvision ResNet-18 (in-place ReLUs, residual additions) and a ViT equals the loop over
    views, and leaves the model untouched."""
    from _torchvision_models import SIZE, build

    model = build(name).eval()
    x = torch.rand(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    before = snapshot(model)
    probs = aug.tta_probs(model, x, batch_size=4)
    assert_same(before, snapshot(model))
    with torch.no_grad():
        loop = torch.stack([torch.softmax(model(aug.augment(x, a)), 1) for a in aug.DEFAULT_AUGMENTATIONS])
    assert torch.allclose(probs, loop, atol=1e-5)


def test_a_model_returning_a_tuple_is_refused_clearly():
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = small_cnn()

        def forward(self, x):
            return self.net(x), x

    with pytest.raises(ValueError, match="got a tuple"):
        aug.tta(Pair(), images(2))
