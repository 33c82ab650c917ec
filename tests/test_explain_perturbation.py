"""Perturbation family: Captum's Occlusion as an oracle, closed forms for RISE, LIME and Kernel SHAP."""
import pytest
import torch

from inferml_course import explain
from inferml_course.explain import perturbation

from _explain_models import images, linear_model, small_cnn
from conftest import require


def grid_segments(n, h, w, cell):
    """Square superpixels: a deterministic segmentation for closed-form checks."""
    r = torch.arange(h) // cell
    c = torch.arange(w) // cell
    seg = r[:, None] * ((w + cell - 1) // cell) + c[None, :]
    return seg.expand(n, h, w).clone()


def test_occlusion_windows_layout():
    m = perturbation.occlusion_windows((16, 16), (5, 5), (3, 3))
    assert m.shape == (25, 16, 16)  # ceil((16 - 5) / 3) + 1 = 5 positions per axis
    assert m[0, :5, :5].all() and m[0].sum() == 25
    assert m[-1].sum() == 16  # the last window starts at 12 and is cropped to 4 x 4
    assert m.any(0).all(), "every pixel is covered"
    with pytest.raises(ValueError, match="stride"):
        perturbation.occlusion_windows((16, 16), (3, 3), (4, 4))
    with pytest.raises(ValueError, match="window"):
        perturbation.occlusion_windows((16, 16), (17, 3), (1, 1))


def test_occlusion_with_the_whole_image_as_window():
    model = small_cnn()
    x = images(3)
    out = explain.occlusion(model, x, window=16, stride=16, baseline=0.3, output="logit")
    t = model(x).argmax(1)
    with torch.no_grad():
        drop = model(x).gather(1, t[:, None]) - model(torch.full_like(x, 0.3)).gather(1, t[:, None])
    assert torch.allclose(out, drop[:, :, None].expand(3, 16, 16))


def test_occlusion_of_a_linear_model():
    """For a linear model the drop of a window is the sum of w * (x - b) inside it."""
    model = linear_model(1, 4, 4, 2)
    x = images(1, 1, 4, 4)
    out = explain.occlusion(model, x, 0, window=2, stride=2, baseline=0.0, output="logit")
    contrib = (model[1].weight[0].view(4, 4) * x[0, 0])
    blocks = contrib.view(2, 2, 2, 2).sum((1, 3))
    assert torch.allclose(out[0], blocks.repeat_interleave(2, 0).repeat_interleave(2, 1))


def test_occlusion_batch_size_and_per_image_invariance():
    model = small_cnn()
    x = images(3)
    a = explain.occlusion(model, x, window=4, stride=2)
    assert torch.allclose(a, explain.occlusion(model, x, window=4, stride=2, batch_size=7))
    assert torch.allclose(a, torch.cat([explain.occlusion(model, x[i:i + 1], window=4, stride=2) for i in range(3)]))


def test_occlusion_default_baseline_is_the_training_mean():
    model = small_cnn()
    x = images(2)
    a = explain.occlusion(model, x, window=4, stride=4)
    b = explain.occlusion(model, x, window=4, stride=4, baseline=model.normalize.mean)
    assert torch.equal(a, b)


@pytest.mark.parametrize("window, stride", [(4, 2), (5, 3), ((3, 6), (1, 4))])
def test_occlusion_equals_captum(window, stride):
    captum_attr = require("captum.attr")
    model = small_cnn()
    x = images(3)
    t = torch.tensor([4, 0, 2])
    wh, ww = (window, window) if isinstance(window, int) else window
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    base = model.normalize.mean.view(1, 3, 1, 1).expand_as(x).contiguous()
    ref = captum_attr.Occlusion(model).attribute(x, sliding_window_shapes=(3, wh, ww), strides=(3, sh, sw),
                                                 baselines=base, target=t, perturbations_per_eval=16)
    ours = explain.occlusion(model, x, t, window=window, stride=stride, output="logit")
    assert torch.allclose(ref[:, 0], ref[:, 1]) and torch.allclose(ref[:, 0], ref[:, 2])
    assert torch.allclose(ours, ref[:, 0].to(ours.dtype), atol=1e-5, rtol=1e-5)


class Constant(torch.nn.Module):
    def forward(self, x):
        return torch.stack([x.new_full((x.shape[0],), 2.0), x.new_zeros(x.shape[0])], 1)


def test_rise_masks_and_constant_model():
    masks = perturbation.rise_masks(50, (16, 16), grid_size=4, p_keep=0.3, seed=1)
    assert masks.shape == (50, 16, 16) and masks.min() >= 0 and masks.max() <= 1
    assert torch.equal(masks, perturbation.rise_masks(50, (16, 16), grid_size=4, p_keep=0.3, seed=1))
    x = images(2)
    out = explain.rise(Constant().eval(), x, 0, n_masks=50, grid_size=4, p_keep=0.3, seed=1, output="logit",
                       baseline=0.5)
    expected = 2.0 * masks.sum(0) / (50 * 0.3)
    assert torch.allclose(out, expected.to(out.dtype).expand(2, 16, 16), atol=1e-6)


class BrightCorner(torch.nn.Module):
    """Logit 0 = mean brightness of the top-left 6 x 6 corner."""

    def forward(self, x):
        return torch.stack([x[:, :, :6, :6].mean((1, 2, 3)), x.new_zeros(x.shape[0])], 1)


def test_rise_finds_the_region_the_model_uses():
    x = torch.ones(1, 3, 16, 16, dtype=torch.float64)
    out = explain.rise(BrightCorner().eval(), x, 0, n_masks=800, grid_size=4, baseline=0.0, output="logit")[0]
    # outside the corner RISE returns the mean score E[f] = p_keep = 0.5; inside, more
    assert abs(out[8:, 8:].mean() - 0.5) < 0.05
    assert out[:6, :6].mean() > out[8:, 8:].mean() + 0.1
    assert torch.allclose(out, explain.rise(BrightCorner().eval(), x, 0, n_masks=800, grid_size=4, baseline=0.0,
                                            output="logit", batch_size=37)[0])


def test_kernel_shap_and_lime_are_exact_for_a_linear_model():
    model = linear_model(3, 8, 8, 3)
    x = images(2, 3, 8, 8)
    seg = grid_segments(2, 8, 8, 4)  # four 4 x 4 superpixels
    t = torch.tensor([2, 1])
    base = 0.25
    contrib = model[1].weight.view(3, 3, 8, 8)[t] * (x - base)
    exact = contrib.sum(1).view(2, 2, 4, 2, 4).sum((2, 4))  # per superpixel
    exact_map = exact.repeat_interleave(4, 1).repeat_interleave(4, 2)
    shap = explain.kernel_shap(model, x, t, samples=40, segments=seg, baseline=base, output="logit")
    assert torch.allclose(shap, exact_map, atol=1e-6)
    lime = explain.lime(model, x, t, samples=60, segments=seg, baseline=base, output="logit", ridge=0.0)
    assert torch.allclose(lime, exact_map, atol=1e-6)
    # Kernel SHAP's values add up to score(x) - score(baseline)
    with torch.no_grad():
        gap = model(x).gather(1, t[:, None])[:, 0] - model(torch.full_like(x, base)).gather(1, t[:, None])[:, 0]
    assert torch.allclose(exact.flatten(1).sum(1), gap)


def test_superpixels_are_contiguous_labels():
    x = images(3, 3, 32, 32, dtype=torch.float32)
    seg = explain.superpixels(x, n_segments=10)
    assert seg.shape == (3, 32, 32) and seg.dtype == torch.long
    for s in seg:
        labels = s.unique()
        assert torch.equal(labels, torch.arange(len(labels)))
    grey = explain.superpixels(x[:, :1], n_segments=10)
    assert grey.shape == (3, 32, 32)


def test_lime_and_kernel_shap_on_a_cnn_are_seeded():
    model = small_cnn()
    x = images(2)
    for fn in (explain.lime, explain.kernel_shap):
        a = fn(model, x, samples=30, n_segments=6, seed=2)
        assert a.shape == (2, 16, 16)
        assert torch.equal(a, fn(model, x, samples=30, n_segments=6, seed=2, batch_size=11))
