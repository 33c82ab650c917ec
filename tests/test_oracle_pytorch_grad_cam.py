"""Oracle tests against pytorch-grad-cam (the ``grad-cam`` package, test extra): Grad-CAM and
Grad-CAM++ maps, and the Grad-CAM++ paper's confidence metrics as that library computes them.

pytorch-grad-cam returns maps min-max scaled per image (``scale_cam_image``: subtract the minimum,
divide by 1e-7 + the maximum; once per layer and once more after averaging the layers) and resized
with OpenCV; ours are raw. Its Grad-CAM++ adds 1e-6 to the
denominator of alpha (``eps=1e-6`` here). Its metrics multiply the *normalised* input by the map,
which is our ``substrate="mean"``, and report max(0, Y - O) per image, which is our relative drop
times Y.
"""
import pytest
import torch
from torch import nn

from inferml_course import explain
from inferml_course.evaluate import masking

from _explain_models import images, small_cnn
from conftest import require

require("pytorch_grad_cam")
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus  # noqa: E402
from pytorch_grad_cam.metrics.cam_mult_image import DropInConfidence, IncreaseInConfidence  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget  # noqa: E402

TARGETS = torch.tensor([0, 2, 4, 1])


def their_maps(cls, model, layer, x, t):
    with cls(model=model, target_layers=[layer]) as cam:
        return torch.from_numpy(cam(input_tensor=x, targets=[ClassifierOutputTarget(int(k)) for k in t]))


def scale_like_them(maps):
    """Their scaling, applied twice as they do (per layer, then after averaging the layers)."""
    flat = maps.flatten(1)
    for _ in range(2):
        flat = flat - flat.min(1, keepdim=True).values
        flat = flat / (1e-7 + flat.max(1, keepdim=True).values)
    return flat.view_as(maps)


@pytest.mark.parametrize("method, cls, options", [
    ("grad_cam", GradCAM, {}),
    ("grad_cam_plus_plus", GradCAMPlusPlus, {"eps": 1e-6}),
])
def test_maps_at_input_resolution_equal_pytorch_grad_cam(method, cls, options):
    # block1 keeps the input resolution, so no resizing is involved: only their min-max scaling
    model, x = small_cnn(torch.float32), images(4, dtype=torch.float32)
    ours = getattr(explain, method)(model, x, TARGETS, layer="features.block1", **options)
    ref = their_maps(cls, model, model.features.block1, x, TARGETS)
    assert ref.shape == ours.shape
    assert torch.allclose(scale_like_them(ours), ref, atol=2e-5)


@pytest.mark.parametrize("method, cls, options", [
    ("grad_cam", GradCAM, {}),
    ("grad_cam_plus_plus", GradCAMPlusPlus, {"eps": 1e-6}),
])
def test_upsampled_maps_equal_pytorch_grad_cam_up_to_their_scaling(method, cls, options):
    # at the 4 x 4 cam layer they scale, then resize (OpenCV bilinear); we resize (torch bilinear,
    # half-pixel centres) without scaling. Both steps are affine per image, so each of their maps must
    # be a * ours + b with a > 0, to float precision.
    model, x = small_cnn(torch.float32), images(4, dtype=torch.float32)
    ours = getattr(explain, method)(model, x, TARGETS, **options).double()
    ref = their_maps(cls, model, model.features.block3, x, TARGETS).double()
    assert ours.flatten(1).amax(1).gt(0).sum() >= 3  # at least three maps that are not all zero
    for o, r in zip(ours.flatten(1), ref.flatten(1)):
        if not o.any():  # the ReLU removed everything: both are empty
            assert not r.any()
            continue
        design = torch.stack([o, torch.ones_like(o)], 1)
        coef = torch.linalg.lstsq(design, r[:, None]).solution.flatten()
        assert coef[0] > 0
        assert (design @ coef - r).abs().max() < 1e-5


def test_grad_cam_plus_plus_eps_is_the_only_difference():
    model, x = small_cnn(torch.float32), images(4, dtype=torch.float32)
    paper = explain.grad_cam_plus_plus(model, x, TARGETS, layer="features.block1")
    theirs = explain.grad_cam_plus_plus(model, x, TARGETS, layer="features.block1", eps=1e-6)
    ref = their_maps(GradCAMPlusPlus, model, model.features.block1, x, TARGETS)
    # with this model's small gradients their eps changes the maps visibly; with eps = 1e-6 they agree
    assert (scale_like_them(theirs) - ref).abs().max() < 1e-5
    assert (scale_like_them(paper) - ref).abs().max() > 0.05
    with pytest.raises(ValueError, match="eps"):
        explain.grad_cam_plus_plus(model, x, TARGETS, eps=-1.0)


def test_confidence_metrics_equal_pytorch_grad_cam():
    model, x = small_cnn(torch.float32), images(6, dtype=torch.float32)
    t = torch.tensor([0, 1, 2, 3, 4, 0])
    maps = their_maps(GradCAM, model, model.features.block1, x, t)  # in [0, 1], as their metrics expect
    inner = nn.Sequential(model.features, model.classifier).eval()  # their models take normalised input
    x_norm = model.normalize(x).detach()
    targets = [ClassifierOutputSoftmaxTarget(int(k)) for k in t]
    their_drop = torch.from_numpy(DropInConfidence()(x_norm, maps.numpy(), targets, inner)).flatten()
    their_increase = torch.from_numpy(IncreaseInConfidence()(x_norm, maps.numpy(), targets, inner)).flatten()

    result = masking.heatmap_masking(model, x, maps, target=t, substrate="mean", scaling="none")
    assert torch.allclose(result.drops() * result.full, their_drop.to(result.full), atol=1e-6)
    summary = result.summary()["map"]
    assert summary["increase_in_confidence"] == pytest.approx(100 * float(their_increase.mean()))
    assert summary["average_drop"] == pytest.approx(100 * float((their_drop / result.full).mean()), abs=1e-4)
