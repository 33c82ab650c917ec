"""Every explainer leaves the model as it found it (also after an exception) and rejects bad input at once."""
import pytest
import torch
from torch import nn

from inferml_course import explain

from _explain_models import images, small_cnn
from _hygiene import arm_for_hygiene, assert_same, snapshot  # noqa: E402

FAST = {
    "smoothgrad": {"samples": 3}, "integrated_gradients": {"steps": 4}, "blur_ig": {"steps": 4},
    "occlusion": {"window": 8, "stride": 4}, "rise": {"n_masks": 20}, "lime": {"samples": 12, "n_segments": 4},
    "kernel_shap": {"samples": 12, "n_segments": 4},
}
CAMS = ("grad_cam", "grad_cam_plus_plus", "counterfactual_cam", "contrast_cam")


def prepared_model():
    return arm_for_hygiene(small_cnn(torch.float32))


@pytest.mark.parametrize("name", explain.METHODS)
def test_model_untouched_after_success(name):
    model = prepared_model()
    x = images(2, dtype=torch.float32)
    before = snapshot(model)
    out = explain.explain(name, model, x, **FAST.get(name, {}))
    assert out.shape == (2, 16, 16) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert_same(before, snapshot(model))
    assert not x.requires_grad and x.grad is None
    xr = x.clone().requires_grad_(True)
    explain.explain(name, model, xr, **FAST.get(name, {}))
    assert xr.requires_grad and xr.grad is None


@pytest.mark.parametrize("where", ["forward", "backward"])
@pytest.mark.parametrize("name", explain.METHODS)
def test_model_untouched_after_an_exception(name, where):
    model = prepared_model()
    x = images(2, dtype=torch.float32)
    before = snapshot(model)
    model.classifier.dropout2.armed = where
    if where == "backward" and explain.FAMILIES[name] == "perturbation":
        explain.explain(name, model, x, **FAST.get(name, {}))  # no backward pass: nothing to raise
    else:
        with pytest.raises(RuntimeError, match="boom"):
            explain.explain(name, model, x, **FAST.get(name, {}))
    model.classifier.dropout2.armed = None
    assert_same(before, snapshot(model))


@pytest.mark.parametrize("name", explain.METHODS)
def test_model_untouched_after_a_bad_target(name):
    model = prepared_model()
    x = images(2, dtype=torch.float32)
    before = snapshot(model)
    with pytest.raises(ValueError, match="target out of range"):
        explain.explain(name, model, x, target=[0, 5], **FAST.get(name, {}))
    assert_same(before, snapshot(model))


@pytest.mark.parametrize("name", explain.METHODS)
def test_training_mode_is_kept_and_warned_about(name):
    model = prepared_model().train()
    x = images(2, dtype=torch.float32)
    with pytest.warns(UserWarning, match="training mode"):
        explain.explain(name, model, x, **FAST.get(name, {}))
    assert model.training and all(m.training for m in model.modules())


@pytest.mark.parametrize("name", explain.METHODS)
def test_bad_inputs(name):
    model = prepared_model()
    x = images(2, dtype=torch.float32)
    opts = FAST.get(name, {})
    with pytest.raises(ValueError, match=r"x must be a batch of shape .*x\[None\]"):
        explain.explain(name, model, x[0], **opts)
    nan = x.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        explain.explain(name, model, nan, **opts)
    with pytest.raises(ValueError, match="empty batch"):
        explain.explain(name, model, x[:0], **opts)
    with pytest.raises(TypeError, match="floating"):
        explain.explain(name, model, (x * 255).long(), **opts)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        explain.explain(name, model, x.numpy(), **opts)
    with pytest.raises(ValueError, match="target out of range: -1"):
        explain.explain(name, model, x, target=-1, **opts)
    with pytest.raises(ValueError, match=r"target must have shape \(2,\)"):
        explain.explain(name, model, x, target=[0, 1, 2], **opts)
    with pytest.raises(TypeError, match="integer class indices"):
        explain.explain(name, model, x, target=torch.tensor([0.0, 1.0]), **opts)


@pytest.mark.parametrize("name", CAMS)
def test_unknown_layer_lists_candidates(name):
    model = prepared_model()
    x = images(2, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"unknown layer name 'features\.block9'.*features\.block3"):
        explain.explain(name, model, x, layer="features.block9")
    with pytest.raises(ValueError, match="not part of this model"):
        explain.explain(name, model, x, layer=nn.Conv2d(1, 1, 1))
    with pytest.raises(ValueError, match="feature maps"):
        explain.explain(name, model, x, layer="classifier.fc1")
    with pytest.raises(TypeError, match="layer must be"):
        explain.explain(name, model, x, layer=3)
    # no cam_layer: the layer is found by structure (the last module holding a convolution whose output
    # is a feature map), the same map as naming it
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3)).eval()
    assert torch.equal(explain.explain(name, plain, x, target=0), explain.explain(name, plain, x, target=0, layer="0"))
    no_conv = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 3)).eval()
    with pytest.raises(ValueError, match="cannot find a CAM layer.*pass layer=.*0, 1"):
        explain.explain(name, no_conv, images(2, h=32, w=32, dtype=torch.float32))


def test_contrast_out_of_range_and_bad_options():
    model = prepared_model()
    x = images(2, dtype=torch.float32)
    with pytest.raises(ValueError, match="contrast out of range"):
        explain.contrast_cam(model, x, contrast=9)
    with pytest.raises(ValueError, match="unknown channels"):
        explain.saliency(model, x, channels="mean")
    with pytest.raises(ValueError, match="unknown rule"):
        explain.integrated_gradients(model, x, rule="simpson")
    with pytest.raises(ValueError, match="noise"):
        explain.smoothgrad(model, x, noise=-1.0)
    with pytest.raises(ValueError, match="unknown output"):
        explain.occlusion(model, x, output="softmax")
    with pytest.raises(ValueError, match="baseline tensor must have shape"):
        explain.occlusion(model, x, baseline=torch.zeros(2))
    with pytest.raises(ValueError, match="segments must be"):
        explain.lime(model, x, segments=torch.zeros(2, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown method"):
        explain.explain("gradcam", model, x)
    with pytest.raises(ValueError, match="model must return logits"):
        explain.saliency(nn.Identity().eval(), x)


class Counting(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.calls, self.images = model, 0, 0

    def forward(self, x):
        self.calls += 1
        self.images += x.shape[0]
        return self.model(x)


@pytest.mark.parametrize("name", ["saliency", "input_x_gradient", "guided_backprop", "deconvnet", "fullgrad",
                                  "grad_cam", "grad_cam_plus_plus", "counterfactual_cam", "contrast_cam"])
@pytest.mark.parametrize("target", [None, 1])
def test_one_pass_methods_run_exactly_one_forward(name, target):
    model = Counting(small_cnn(torch.float32))
    x = images(3, dtype=torch.float32)
    explain.explain(name, model, x, target, **({"layer": "model.features.block3"} if name in CAMS else {}))
    assert (model.calls, model.images) == (1, 3)


def test_path_methods_cost_what_their_definition_costs():
    model = Counting(small_cnn(torch.float32))
    x = images(3, dtype=torch.float32)
    explain.integrated_gradients(model, x, 1, steps=8)
    assert (model.calls, model.images) == (1, 24)  # all steps in one batch, no validation pass
    model.calls = model.images = 0
    explain.integrated_gradients(model, x, steps=8, batch_size=12)
    assert (model.calls, model.images) == (1 + 2, 3 + 24)  # + one forward to find the predicted class
    model.calls = model.images = 0
    explain.occlusion(model, x, 1, window=8, stride=8)
    assert model.images == 3 * (1 + 4)


@pytest.mark.parametrize("name", ["smoothgrad", "integrated_gradients", "blur_ig", "occlusion", "rise", "lime",
                                  "kernel_shap"])
def test_bad_batch_size_fails_before_any_forward(name):
    model = Counting(small_cnn(torch.float32)).eval()
    x = images(2, dtype=torch.float32)
    for bad in (0, -3, "big", 2.5):
        with pytest.raises(ValueError, match="batch_size"):
            explain.explain(name, model, x, batch_size=bad)
    assert model.calls == 0
    explain.explain(name, model, x, batch_size=1, **FAST.get(name, {}))  # one image per pass still works
