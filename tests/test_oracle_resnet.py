"""Captum as the oracle on a real architecture: a randomly initialised torchvision ResNet-18 (in-place
ReLUs, residual additions, batch norm with non-trivial statistics), float64 (issue 14, item 4)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import require
from inferml_course import explain


@pytest.fixture(scope="module")
def setup():
    tv = require("torchvision")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = tv.models.resnet18(num_classes=5).double().eval()
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
        x = torch.rand(2, 3, 48, 48, dtype=torch.float64)
    return require("captum.attr"), model, x, torch.tensor([1, 3])


def _close(ours, ref):
    ref = ref.detach()
    return torch.allclose(ours, ref, atol=1e-6 * float(ref.abs().max()) + 1e-12, rtol=1e-6)


@pytest.mark.parametrize("name, cls, kwargs", [("saliency", "Saliency", {"abs": False}),
                                               ("input_x_gradient", "InputXGradient", {})])
def test_gradient_methods_equal_captum(setup, name, cls, kwargs):
    captum_attr, model, x, t = setup
    ref = getattr(captum_attr, cls)(model).attribute(x.clone().requires_grad_(), target=t, **kwargs)
    assert _close(explain.explain(name, model, x, t, channels="keep"), ref)


def test_integrated_gradients_equals_captum(setup):
    captum_attr, model, x, t = setup
    ref = captum_attr.IntegratedGradients(model).attribute(x, baselines=0.0, target=t, n_steps=8,
                                                           method="gausslegendre")
    assert _close(explain.integrated_gradients(model, x, t, steps=8, rule="gausslegendre", channels="keep"), ref)


def test_grad_cam_at_the_detected_layer4_equals_layer_grad_cam(setup):
    captum_attr, model, x, t = setup
    ref = captum_attr.LayerGradCam(model, model.layer4).attribute(x, target=t, relu_attributions=True)
    ref = F.interpolate(ref, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    assert _close(explain.grad_cam(model, x, t), ref)  # no layer=: layer4 is found by structure


def test_occlusion_equals_captum(setup):
    """Batch norm, residual additions and in-place ReLUs between the occluded image and the logit."""
    captum_attr, model, x, t = setup
    ref = captum_attr.Occlusion(model).attribute(x, sliding_window_shapes=(3, 16, 16), strides=(3, 16, 16),
                                                 baselines=0.5, target=t, perturbations_per_eval=16)
    ours = explain.occlusion(model, x, t, window=16, stride=16, baseline=0.5, output="logit")
    assert _close(ours, ref[:, 0].to(ours.dtype))  # Captum returns float32 here (its baseline is a Python float)


def test_guided_backprop_and_deconvnet_equal_captum(setup):
    """torchvision's BasicBlock calls one in-place ReLU module twice per block."""
    captum_attr, model, x, t = setup
    for name, cls in (("guided_backprop", "GuidedBackprop"), ("deconvnet", "Deconvolution")):
        ref = getattr(captum_attr, cls)(model).attribute(x.clone().requires_grad_(), target=t)
        assert _close(explain.explain(name, model, x, t, channels="keep"), ref), name
