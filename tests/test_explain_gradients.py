"""Gradient family: closed forms on tiny models, completeness, and Captum as an oracle."""
import math

import pytest
import torch

from inferml_course import explain
from inferml_course.explain import gradients

from _explain_models import images, linear_model, small_cnn
from conftest import require


def test_saliency_of_a_linear_model_is_its_weight():
    model = linear_model()
    x = images(4, 3, 6, 5)
    t = torch.tensor([0, 1, 2, 3])
    g = explain.saliency(model, x, t, channels="keep")
    w = model[1].weight.view(4, 3, 6, 5)
    assert torch.allclose(g, w[t], atol=1e-12)
    assert torch.allclose(explain.saliency(model, x, t), w[t].abs().amax(1))  # default: max_abs over channels
    assert torch.allclose(explain.saliency(model, x, t, channels="sum"), w[t].sum(1))
    assert torch.allclose(explain.saliency(model, x, t, channels="abs"), w[t].abs().sum(1))
    assert torch.allclose(explain.input_x_gradient(model, x, t, channels="keep"), x * w[t])


def test_targets_default_int_sequence_tensor():
    model = linear_model()
    x = images(3, 3, 6, 5)
    pred = model(x).argmax(1)
    w = model[1].weight.view(4, 3, 6, 5)
    assert torch.allclose(explain.saliency(model, x, channels="keep"), w[pred])
    assert torch.allclose(explain.saliency(model, x, 2, channels="keep"), w[[2, 2, 2]])
    assert torch.allclose(explain.saliency(model, x, [0, 3, 1], channels="keep"), w[[0, 3, 1]])
    assert torch.allclose(explain.saliency(model, x, torch.tensor([1, 1, 0]), channels="keep"), w[[1, 1, 0]])


def test_output_shapes_and_dtypes():
    model = small_cnn(torch.float32)
    x = images(2, dtype=torch.float32)
    for name in ("saliency", "input_x_gradient", "deconvnet", "guided_backprop", "smoothgrad",
                 "integrated_gradients", "blur_ig"):
        out = explain.explain(name, model, x, steps=4) if name in ("integrated_gradients", "blur_ig") else \
            explain.explain(name, model, x)
        assert out.shape == (2, 16, 16) and out.dtype == torch.float32, name
        keep = explain.explain(name, model, x, channels="keep", **({"steps": 4} if "ig" in name else {}))
        assert keep.shape == (2, 3, 16, 16), name
    assert explain.fullgrad(model, x).shape == (2, 16, 16)


def test_guided_backprop_and_deconvnet_by_hand_on_one_hidden_layer():
    torch.manual_seed(0)
    lin1, lin2 = torch.nn.Linear(12, 7).double(), torch.nn.Linear(7, 3).double()
    model = torch.nn.Sequential(torch.nn.Flatten(), lin1, torch.nn.ReLU(), lin2).eval()
    x = images(2, 3, 2, 2)
    t = torch.tensor([0, 2])
    pre = lin1(x.flatten(1))
    g_out = lin2.weight[t]  # d z_t / d h
    guided = (g_out.clamp_min(0) * (pre > 0)) @ lin1.weight
    deconv = g_out.clamp_min(0) @ lin1.weight
    plain = (g_out * (pre > 0)) @ lin1.weight
    assert torch.allclose(explain.guided_backprop(model, x, t, channels="keep").flatten(1), guided)
    assert torch.allclose(explain.deconvnet(model, x, t, channels="keep").flatten(1), deconv)
    assert torch.allclose(explain.saliency(model, x, t, channels="keep").flatten(1), plain)


def test_guided_backprop_handles_inplace_relu():
    torch.manual_seed(0)
    lin1, lin2 = torch.nn.Linear(12, 7).double(), torch.nn.Linear(7, 3).double()
    a = torch.nn.Sequential(torch.nn.Flatten(), lin1, torch.nn.ReLU(), lin2).eval()
    b = torch.nn.Sequential(torch.nn.Flatten(), lin1, torch.nn.ReLU(inplace=True), lin2).eval()
    x = images(2, 3, 2, 2)
    for fn in (explain.guided_backprop, explain.deconvnet):
        assert torch.allclose(fn(a, x, channels="keep"), fn(b, x, channels="keep"))


def test_smoothgrad_with_zero_noise_is_the_gradient():
    model = small_cnn()
    x = images(3)
    for base, plain in (("saliency", explain.saliency), ("input_x_gradient", explain.input_x_gradient),
                        ("guided_backprop", explain.guided_backprop)):
        sg = explain.smoothgrad(model, x, samples=3, noise=0.0, base=base, channels="keep")
        assert torch.allclose(sg, plain(model, x, channels="keep"), atol=1e-12), base


def test_smoothgrad_is_seeded_batched_and_local():
    model = small_cnn()
    x = images(3)
    state = torch.random.get_rng_state()
    a = explain.smoothgrad(model, x, samples=6, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state), "the global random state is untouched"
    assert torch.allclose(a, explain.smoothgrad(model, x, samples=6, seed=3, batch_size=4))
    assert not torch.allclose(a, explain.smoothgrad(model, x, samples=6, seed=4))


def test_smoothgrad_noise_scale_relative_and_absolute():
    model = linear_model()  # gradients do not depend on x, so only the noise draw matters
    x = images(2, 3, 6, 5) * 4.0  # value range about 4
    rel = explain.smoothgrad(model, x, samples=2, noise=0.1, base="input_x_gradient", seed=0, channels="keep")
    ab = explain.smoothgrad(model, x, samples=2, noise=0.1, noise_type="absolute", base="input_x_gradient", seed=0,
                            channels="keep")
    w = model[1].weight.view(4, 3, 6, 5)[model(x).argmax(1)]
    rel_noise, abs_noise = rel / w - x, ab / w - x  # mean noise over the two samples
    span = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(2, 1, 1, 1)
    assert torch.allclose(rel_noise, abs_noise * span, atol=1e-9)


def test_quadrature_rules_integrate_polynomials():
    for rule in gradients.RULES:
        alphas, w = gradients.quadrature(rule, 64)
        assert alphas.min() >= 0 and alphas.max() <= 1
        assert abs(float(w.sum()) - 1.0) < 1e-12, rule
        assert abs(float((w * alphas ** 2).sum()) - 1 / 3) < 3e-2, rule
    alphas, w = gradients.quadrature("gausslegendre", 3)
    assert abs(float((w * alphas ** 5).sum()) - 1 / 6) < 1e-14  # exact up to degree 2m - 1


def test_integrated_gradients_of_a_linear_model_is_exact():
    model = linear_model()
    x = images(3, 3, 6, 5)
    t = torch.tensor([1, 2, 0])
    w = model[1].weight.view(4, 3, 6, 5)[t]
    for rule in gradients.RULES:
        ig, gap = explain.integrated_gradients(model, x, t, steps=5, rule=rule, channels="keep", return_gap=True)
        assert torch.allclose(ig, x * w, atol=1e-12), rule
        assert gap.abs().max() < 1e-10


class Cube(torch.nn.Module):
    """z_k = sum_i c_ki x_i^3: a smooth model for quadrature checks."""

    def __init__(self, n_in, k=3):
        super().__init__()
        self.c = torch.nn.Parameter(torch.randn(k, n_in, generator=torch.Generator().manual_seed(0),
                                                dtype=torch.float64))

    def forward(self, x):
        return (x.flatten(1) ** 3) @ self.c.t()


def test_integrated_gradients_completeness_gap_shrinks_with_steps():
    model = small_cnn()
    x = images(4)
    gaps = [explain.integrated_gradients(model, x, steps=s, rule="riemann_trapezoid", return_gap=True)[1]
            .abs().mean().item() for s in (4, 16, 64, 256)]
    assert gaps[-1] < gaps[0] and gaps[-1] < 0.05 * gaps[0], gaps
    # Gauss-Legendre is exact for a cubic (the integrand is quadratic in alpha)
    cube = Cube(3 * 4 * 4).eval()
    y = images(2, 3, 4, 4)
    _, gap = explain.integrated_gradients(cube, y, steps=2, return_gap=True)
    assert gap.abs().max() < 1e-12
    _, gap_left = explain.integrated_gradients(cube, y, steps=2, rule="riemann_left", return_gap=True)
    assert gap_left.abs().max() > 1e-3


def test_integrated_gradients_batching_and_baselines():
    model = small_cnn()
    x = images(3)
    a = explain.integrated_gradients(model, x, steps=8)
    assert torch.allclose(a, explain.integrated_gradients(model, x, steps=8, batch_size=5), atol=1e-12)
    b = explain.integrated_gradients(model, x, steps=8, baseline="mean", channels="keep")
    assert torch.allclose(b, explain.integrated_gradients(model, x, steps=8, baseline=model.normalize.mean,
                                                          channels="keep"))
    # a batched call equals the per-image calls
    per = torch.cat([explain.integrated_gradients(model, x[i:i + 1], steps=8) for i in range(3)])
    assert torch.allclose(a, per, atol=1e-12)


def test_blur_ig_approximately_complete():
    model = small_cnn()
    x = images(3)
    attr = explain.blur_ig(model, x, max_sigma=6.0, steps=200, channels="keep")
    t = model(x).argmax(1)
    blurred = gradients.gaussian_blur(x, torch.full((3,), 6.0, dtype=x.dtype))
    with torch.no_grad():
        drop = model(x).gather(1, t[:, None])[:, 0] - model(blurred).gather(1, t[:, None])[:, 0]
    assert torch.allclose(attr.sum((1, 2, 3)), drop, atol=0.05 * drop.abs().max().item() + 1e-3)


def test_gaussian_blur_matches_scipy():
    from scipy.ndimage import gaussian_filter

    x = images(3, 3, 12, 10)
    sig = torch.tensor([1.3, 0.0, 2.6], dtype=x.dtype)
    ours = gradients.gaussian_blur(x, sig)
    for i in (0, 2):
        ref = gaussian_filter(x[i].numpy(), sigma=(0, float(sig[i]), float(sig[i])), mode="reflect", truncate=4.0)
        assert torch.allclose(ours[i], torch.from_numpy(ref), atol=1e-12)
    assert torch.equal(ours[1], x[1])


def test_fullgrad_decomposition_is_complete():
    model = small_cnn()
    x = images(3)
    inp, biases, t = gradients.fullgrad_terms(model, x)
    with torch.no_grad():
        z = model(x).gather(1, t[:, None])[:, 0]
    total = inp.sum((1, 2, 3)) + sum(b.flatten(1).sum(1) for b in biases)
    assert torch.allclose(total, z, atol=1e-9)
    fg = explain.fullgrad(model, x)
    assert (fg >= 0).all() and fg.shape == (3, 16, 16)


# --- Captum as an oracle -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def captum_attr():
    return require("captum.attr")


@pytest.mark.parametrize("name, cls, kwargs", [
    ("saliency", "Saliency", {"abs": False}),
    ("input_x_gradient", "InputXGradient", {}),
    ("guided_backprop", "GuidedBackprop", {}),
    ("deconvnet", "Deconvolution", {}),
])
def test_single_pass_methods_equal_captum(captum_attr, name, cls, kwargs):
    model = small_cnn()
    x = images(4)
    t = torch.tensor([0, 1, 4, 2])
    ref = getattr(captum_attr, cls)(model).attribute(x.clone().requires_grad_(), target=t, **kwargs)
    ours = explain.explain(name, model, x, t, channels="keep")
    assert torch.allclose(ours, ref.detach(), atol=1e-5, rtol=1e-5)


def test_saliency_abs_equals_captum_default(captum_attr):
    model = small_cnn()
    x = images(2)
    ref = captum_attr.Saliency(model).attribute(x.clone().requires_grad_(), target=1)
    assert torch.allclose(explain.saliency(model, x, 1, channels="keep").abs(), ref, atol=1e-8)


@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle"])
def test_integrated_gradients_equals_captum(captum_attr, rule):
    model = small_cnn()
    x = images(3)
    t = torch.tensor([3, 0, 1])
    ig = captum_attr.IntegratedGradients(model)
    ref, delta = ig.attribute(x, baselines=0.0, target=t, n_steps=20, method=rule, return_convergence_delta=True)
    ours, gap = explain.integrated_gradients(model, x, t, steps=20, rule=rule, channels="keep", return_gap=True)
    assert torch.allclose(ours, ref, atol=1e-5, rtol=1e-5)
    assert torch.allclose(gap, delta, atol=1e-5)


def test_trapezoid_differs_from_captum_by_its_weight_sum(captum_attr):
    """Captum's trapezoid weights sum to (m - 1) / m; ours sum to 1 (documented deviation)."""
    model = small_cnn()
    x = images(2)
    m = 10
    ref = captum_attr.IntegratedGradients(model).attribute(x, target=1, n_steps=m, method="riemann_trapezoid")
    ours = explain.integrated_gradients(model, x, 1, steps=m, rule="riemann_trapezoid", channels="keep")
    assert torch.allclose(ours * (m - 1) / m, ref, atol=1e-5, rtol=1e-5)


def test_resnet_guided_backprop_equals_captum(captum_attr):
    """torchvision's ResNet reuses one in-place ReLU module several times per block."""
    tv = require("torchvision")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = tv.models.resnet18(num_classes=5).double().eval()
    x = images(2, 3, 32, 32)
    for name, cls in (("guided_backprop", "GuidedBackprop"), ("deconvnet", "Deconvolution")):
        ref = getattr(captum_attr, cls)(model).attribute(x.clone().requires_grad_(), target=2)
        ours = explain.explain(name, model, x, 2, channels="keep")
        assert torch.allclose(ours, ref.detach(), atol=1e-6 * ref.abs().max().item() + 1e-9), name


def test_smoothgrad_statistics_match_captum_noise_tunnel(captum_attr):
    """Stochastic: compare the means over many samples (same absolute noise), not single draws."""
    model = linear_model()  # the gradient is constant, so input x gradient averages (x + noise) * w
    x = images(2, 3, 6, 5)
    ours = explain.smoothgrad(model, x, 1, samples=400, noise=0.05, noise_type="absolute",
                              base="input_x_gradient", channels="keep")
    ref = captum_attr.NoiseTunnel(captum_attr.InputXGradient(model)).attribute(
        x, nt_type="smoothgrad", nt_samples=400, stdevs=0.05, target=1)
    w = model[1].weight.view(4, 3, 6, 5)[1].abs().max().item()
    assert torch.allclose(ours, ref, atol=4 * 0.05 / math.sqrt(400) * w * 2)
