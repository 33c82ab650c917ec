"""CAM layers whose output is not a channels-first map (issue 14, item 1): a ViT's token sequence
(N, 1 + h w, D) and Swin's channels-last map (N, h, w, D) are detected and laid out as (N, D, h, w);
``reshape=`` (pytorch-grad-cam's ``reshape_transform``) overrides the detection. Oracle:
pytorch-grad-cam's GradCAM with its reshape transform, after its per-image min-max scaling."""
import numpy as np
import pytest
import torch

from inferml_course import explain
from inferml_course._core import adapter, layouts
from inferml_course.uncertainty import voice

from _hygiene import assert_same, snapshot
from _torchvision_models import CAM_LAYERS, build, images
from conftest import require

require("pytorch_grad_cam")
from pytorch_grad_cam import GradCAM  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

CAMS = ("grad_cam", "grad_cam_plus_plus", "counterfactual_cam", "contrast_cam")


def _vit_tokens_to_maps(t, h=4, w=4):  # pytorch-grad-cam's documented ViT transform
    return t[:, 1:, :].reshape(t.size(0), h, w, t.size(2)).transpose(2, 3).transpose(1, 2)


def _minmax(maps):
    """Per-image min-max to [0, 1]. pytorch-grad-cam scales twice (per layer with max + 1e-7, then the
    aggregate again), so its maxima are 1 however small the map; an additive 1e-7 here would not be (the
    Swin map at its last pre-norm peaks near 2e-4)."""
    m = maps.numpy()
    m = m - m.min((1, 2), keepdims=True)
    return m / np.maximum(m.max((1, 2), keepdims=True), 1e-30)


def _pytorch_grad_cam(model, layer, x, transform):
    targets = [ClassifierOutputTarget(int(c)) for c in model(x).argmax(1)]
    cam = GradCAM(model, [layer], reshape_transform=transform)
    try:
        return cam(x, targets=targets)
    finally:
        cam.activations_and_grads.release()


@pytest.mark.parametrize("name, transform", [("vit", _vit_tokens_to_maps),
                                             ("swin_t", lambda t: t.permute(0, 3, 1, 2))])
def test_grad_cam_on_transformers_equals_pytorch_grad_cam(name, transform):
    model, x = build(name), images(3, name=name)
    layer = model.get_submodule(CAM_LAYERS[name])
    assert adapter.resolve_layer(model, None, x) is layer
    ours = explain.grad_cam(model, x)
    assert float(ours.amax()) > 0
    np.testing.assert_allclose(_minmax(ours), _pytorch_grad_cam(model, layer, x, transform), atol=1e-4)
    # the same transform given explicitly is the same map; a wrong layout is not silently accepted
    assert torch.allclose(explain.grad_cam(model, x, layer=layer, reshape=transform), ours, atol=1e-6)


def test_tokens_after_the_last_block_give_zero_gradients_on_patches_which_is_why_the_query_is_chosen():
    """The patch tokens after the encoder reach the logits only through the class token (pytorch-grad-cam's
    FAQ): Grad-CAM there is zero; the detected layer (the last block's ln_1) is not."""
    model, x = build("vit"), images(2)
    assert float(explain.grad_cam(model, x, layer="encoder.ln").abs().max()) == 0
    assert float(explain.grad_cam(model, x).abs().max()) > 0


@pytest.mark.parametrize("name", ["vit", "swin_t", "convnext_tiny"])
def test_every_cam_the_paradigms_and_voice_run_on_token_and_channels_last_models(name):
    model, x = build(name), images(2, name=name)
    before = snapshot(model)
    for method in CAMS:
        maps = explain.explain(method, model, x)
        assert maps.shape == (2, *x.shape[-2:]) and torch.isfinite(maps).all(), method
    paradigms = explain.explanatory_paradigms(model, x)
    assert torch.allclose(paradigms["Why P?"], explain.grad_cam(model, x), atol=1e-6)
    assert torch.allclose(paradigms["Why P, rather than Q?"], explain.contrast_cam(model, x), atol=1e-6)
    result = voice.voice(model, x)
    assert result.uncertainty.shape == (2, *x.shape[-2:]) and torch.isfinite(result.uncertainty).all()
    # VOICE's explanation is Grad-CAM of P, min-max normalised
    assert torch.allclose(result.explanation, explain.normalize_maps(explain.grad_cam(model, x), "minmax"),
                          atol=1e-5)
    assert_same(before, snapshot(model))


def test_reshape_is_checked():
    model, x = build("vit"), images(1)
    with pytest.raises(TypeError, match="reshape must be a callable"):
        explain.grad_cam(model, x, reshape="tokens")
    with pytest.raises(ValueError, match=r"reshape must return feature maps \(N, K, h, w\)"):
        explain.grad_cam(model, x, reshape=lambda t: t[:, 1:])
    with pytest.raises(ValueError, match="apply to explainer='contrast_cam' only"):
        voice.voice(model, x, explainer="smoothgrad", reshape=_vit_tokens_to_maps, samples=2)


def test_token_grids_follow_the_image_aspect():
    assert layouts.grid_of(16, (32, 32)) == (4, 4)
    assert layouts.grid_of(12, (48, 64)) == (3, 4)
    assert layouts.grid_of(12, (64, 48)) == (4, 3)
    assert layouts.grid_of(7, (32, 32)) is None
    view = layouts.feature_map_view(torch.zeros(2, 17, 8), (32, 32))     # class token + 4 x 4
    assert view(torch.zeros(2, 17, 8)).shape == (2, 8, 4, 4)
    view = layouts.feature_map_view(torch.zeros(2, 16, 8), (32, 32))     # patches only
    assert view(torch.zeros(2, 16, 8)).shape == (2, 8, 4, 4)
    t = torch.arange(2 * 17 * 3.0).view(2, 17, 3)
    assert torch.equal(layouts.feature_map_view(t, (32, 32))(t), _vit_tokens_to_maps(t))
    with pytest.raises(ValueError, match="pass reshape="):
        layouts.feature_map_view(torch.zeros(2, 7, 8), (32, 32))          # DeiT-like: 2 extra tokens + 5
    with pytest.raises(ValueError, match="or reshape="):
        layouts.feature_map_view(torch.zeros(2, 8), (32, 32))
    with pytest.raises(ValueError, match="cannot tell channels-first from channels-last"):
        layouts.feature_map_view(torch.zeros(2, 8, 4, 8), (32, 32), channels_last={8})
    assert layouts.feature_map_view(torch.zeros(2, 4, 4, 8), (32, 32), channels_last={8})(
        torch.zeros(2, 4, 4, 8)).shape == (2, 8, 4, 4)
