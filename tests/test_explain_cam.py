"""CAM family: a model whose answer is known by construction, the paradigm relations, Captum's LayerGradCam."""
import pytest
import torch
import torch.nn.functional as F

from inferml_course import explain

from _explain_models import TwoChannelModel, images, small_cnn, two_squares as _two_squares
from conftest import require


def test_grad_cam_known_by_construction():
    model = TwoChannelModel().double().eval()
    x = _two_squares()
    a0, a1 = x[0, 0], x[0, 1]
    why0 = explain.grad_cam(model, x, 0)[0]
    assert torch.allclose(why0, (a0 - a1).clamp_min(0) / 64)  # same resolution: upsampling is the identity
    assert why0[:3, :3].min() > 0 and why0[3:, :].max() == 0 and why0[:, 3:].max() == 0
    why1 = explain.grad_cam(model, x, 1)[0]
    assert torch.allclose(why1, (a1 - a0).clamp_min(0) / 64)
    # "what if 0 were absent?" shows the evidence against 0: the channel-1 square
    assert torch.allclose(explain.counterfactual_cam(model, x, 0)[0], why1)
    assert torch.allclose(explain.grad_cam(model, x, 0, relu=False)[0], (a0 - a1) / 64)


def test_contrast_cam_is_cross_entropy_not_a_logit_difference():
    model = TwoChannelModel().double().eval()
    x = _two_squares()
    z = model(x)[0]
    p = torch.softmax(z, 0)
    a0, a1 = x[0, 0], x[0, 1]
    # dCE(z, Q)/dz = p - onehot(Q); dz/dA_0 = (1, -1, 0)/64, dz/dA_1 = (-1, 1, 0)/64
    for q in range(3):
        g = p.clone()
        g[q] -= 1
        alpha0, alpha1 = (g[0] - g[1]) / 64, (g[1] - g[0]) / 64
        expected = (alpha0 * a0 + alpha1 * a1).clamp_min(0)
        assert torch.allclose(explain.contrast_cam(model, x, contrast=q)[0], expected), q
    # the default contrast is the runner-up class
    second = z.argsort(descending=True)[1]
    assert torch.equal(explain.contrast_cam(model, x), explain.contrast_cam(model, x, contrast=int(second)))


def test_paradigms_share_one_forward_and_agree_with_the_functions():
    model = small_cnn()
    x = images(3)
    maps = explain.explanatory_paradigms(model, x, contrast=[1, 2, 3])
    P, Q = maps["P"], maps["Q"]
    assert torch.equal(P, model(x).argmax(1)) and Q.tolist() == [1, 2, 3]
    assert torch.allclose(maps["Why P?"], explain.grad_cam(model, x))
    assert torch.allclose(maps["What if not P?"], explain.counterfactual_cam(model, x))
    assert torch.allclose(maps["Why P, rather than Q?"], explain.contrast_cam(model, x, contrast=[1, 2, 3]))
    assert torch.allclose(maps["Why not P with 100% confidence?"], explain.contrast_cam(model, x, contrast=P))
    assert set(explain.PARADIGMS) <= set(maps)


def test_cam_layer_by_name_and_module():
    model = small_cnn()
    x = images(2)
    a = explain.grad_cam(model, x)
    assert torch.equal(a, explain.grad_cam(model, x, layer="features.block3"))
    assert torch.equal(a, explain.grad_cam(model, x, layer=model.features.block3))
    b = explain.grad_cam(model, x, layer="features.block2.relu2")
    assert b.shape == (2, 16, 16) and not torch.allclose(a, b)


def test_grad_cam_and_plus_plus_by_hand_without_hooks():
    """Split the SmallCNN at its cam layer by hand (no hooks) and apply the published formulas."""
    model = small_cnn()
    x = images(3)
    a = model.features(model.normalize(x)).detach().requires_grad_(True)
    z = model.classifier(a)
    t = z.argmax(1)
    (g,) = torch.autograd.grad(z.gather(1, t[:, None]).sum(), a)
    a = a.detach()
    up = lambda m: F.interpolate(m[:, None], size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    cam = (g.mean((2, 3))[:, :, None, None] * a).sum(1).clamp_min(0)
    assert torch.allclose(explain.grad_cam(model, x), up(cam), atol=1e-12)
    alpha = g ** 2 / (2 * g ** 2 + a.sum((2, 3), keepdim=True) * g ** 3)
    alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
    w = (alpha * g.clamp_min(0)).sum((2, 3))
    cam_pp = (w[:, :, None, None] * a).sum(1).clamp_min(0)
    assert torch.allclose(explain.grad_cam_plus_plus(model, x), up(cam_pp), rtol=1e-5, atol=1e-9)


@pytest.fixture(scope="module")
def captum_attr():
    return require("captum.attr")


def test_grad_cam_equals_captum_layer_grad_cam_then_bilinear(captum_attr):
    model = small_cnn()
    x = images(4)
    t = torch.tensor([0, 2, 4, 1])
    ref = captum_attr.LayerGradCam(model, model.features.block3).attribute(x, target=t, relu_attributions=True)
    ref = F.interpolate(ref, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    assert torch.allclose(explain.grad_cam(model, x, t), ref, atol=1e-5, rtol=1e-5)
    raw = captum_attr.LayerGradCam(model, model.features.block3).attribute(x, target=t)
    raw = F.interpolate(raw, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    assert torch.allclose(explain.grad_cam(model, x, t, relu=False), raw, atol=1e-5, rtol=1e-5)


def test_counterfactual_cam_equals_captum_on_the_negated_logit(captum_attr):
    model = small_cnn()
    x = images(2)

    def negated(inp):
        return -model(inp)

    ref = captum_attr.LayerGradCam(negated, model.features.block3).attribute(x, target=1, relu_attributions=True)
    ref = F.interpolate(ref, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    assert torch.allclose(explain.counterfactual_cam(model, x, 1), ref, atol=1e-5, rtol=1e-5)


def test_contrast_cam_equals_captum_on_the_cross_entropy(captum_attr):
    model = small_cnn()
    x = images(3)
    q = torch.tensor([2, 0, 1])

    def ce(inp):  # one output per image, so Captum needs no target
        return F.cross_entropy(model(inp), q, reduction="none")

    ref = captum_attr.LayerGradCam(ce, model.features.block3).attribute(x, relu_attributions=True)
    ref = F.interpolate(ref, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    assert torch.allclose(explain.contrast_cam(model, x, contrast=q), ref, atol=1e-5, rtol=1e-5)


def test_resnet18_grad_cam_equals_captum(captum_attr):
    tv = require("torchvision")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = tv.models.resnet18(num_classes=7).double().eval()
    x = images(2, 3, 64, 64)
    ref = captum_attr.LayerGradCam(model, model.layer4).attribute(x, target=3, relu_attributions=True)
    ref = F.interpolate(ref, size=(64, 64), mode="bilinear", align_corners=False)[:, 0]
    assert torch.allclose(explain.grad_cam(model, x, 3, layer="layer4"), ref, atol=1e-8)


# --- every contrast at once and CausalCAM -----------------------------------------------------------------

def test_contrast_cams_equal_one_contrast_cam_per_class():
    model, x = small_cnn(), images(3)
    maps = explain.contrast_cams(model, x)
    assert torch.allclose(maps.explanation, explain.grad_cam(model, x), atol=1e-10)
    for j in range(maps.contrast.shape[1]):
        one = explain.contrast_cam(model, x, contrast=maps.contrast[:, j])
        assert torch.allclose(maps.contrast_maps[:, j], one, atol=1e-10), j
    assert (maps.contrast != maps.prediction[:, None]).all()
    looped = explain.contrast_cams(model, x, vectorize=False)
    assert torch.allclose(looped.contrast_maps, maps.contrast_maps, atol=1e-10)


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.9])
def test_causal_cam_is_grad_cam_minus_every_contrast_region(threshold):
    """bin(Grad-CAM_P) and not (or_Q bin(Contrast-CAM_{P,Q})), by hand from the single-map functions."""
    model, x = small_cnn(), images(3)
    grad = explain.grad_cam(model, x)
    p = model(x).argmax(1)
    contrast = torch.zeros_like(grad, dtype=torch.bool)
    for q in range(5):
        others = torch.where(p == q, (q + 1) % 5, q)   # every class but P, each once per image
        region = explain.normalize_maps(explain.contrast_cam(model, x, contrast=others), "minmax") > threshold
        contrast |= region
    mask = (explain.normalize_maps(grad, "minmax") > threshold) & ~contrast
    causal = explain.causal_cam(model, x, threshold=threshold)
    assert torch.allclose(causal, grad * mask, atol=1e-10)
    assert ((causal == 0) | torch.isclose(causal, grad)).all()


def test_causal_cam_arguments():
    model, x = small_cnn(), images(1)
    with pytest.raises(ValueError, match="threshold"):
        explain.causal_cam(model, x, threshold=1.5)
    assert explain.causal_cam(model, x, threshold=1.0).abs().max() == 0   # nothing exceeds the maximum
    with pytest.raises(ValueError, match="contrast_threshold"):
        explain.causal_cam(model, x, contrast_threshold=-0.1)
    # no contrast region at all (contrast_threshold = 1): the causal map is Grad-CAM on its own region
    grad = explain.grad_cam(model, x)
    own = explain.normalize_maps(grad, "minmax") > 0.5
    assert torch.allclose(explain.causal_cam(model, x, contrast_threshold=1.0), grad * own, atol=1e-10)
    one_class = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                    torch.nn.Linear(2, 1)).double()
    with pytest.raises(ValueError, match="at least two classes"):
        explain.causal_cam(one_class.eval(), x, layer="0")


def test_causal_from_contrasts_analytic():
    """Hand-made maps: gc = minmax([[4, 3], [0, 2]]) = [[1, .75], [0, .5]], c_1 = [[.25, .5], [0, 1]], c_2 constant (0)."""
    explanation = torch.tensor([[[4.0, 3.0], [0.0, 2.0]]], dtype=torch.float64)
    contrast = torch.stack([torch.tensor([[1.0, 2.0], [0.0, 4.0]]), torch.full((2, 2), 7.0)]).double()[None]
    maps = explain.ContrastCams(explanation, contrast, torch.tensor([[1, 2]]), torch.tensor([0]),
                                torch.tensor([[0.8, 0.1, 0.1]]))
    # soft: max(0, gc - max_Q c_Q) = max(0, [[1 - .25, .75 - .5], [0 - 0, .5 - 1]])
    soft = explain.causal_from_contrasts(maps, form="soft")
    assert torch.equal(soft, torch.tensor([[[0.75, 0.25], [0.0, 0.0]]], dtype=torch.float64))
    # set at 0.5: gc > .5 keeps the top row; no contrast exceeds .5 there, so Grad-CAM's values stay
    assert torch.equal(explain.causal_from_contrasts(maps), torch.tensor([[[4.0, 3.0], [0.0, 0.0]]], dtype=torch.float64))
    # a looser contrast region (c > .3) also removes the top-right pixel
    assert torch.equal(explain.causal_from_contrasts(maps, contrast_threshold=0.3),
                       torch.tensor([[[4.0, 0.0], [0.0, 0.0]]], dtype=torch.float64))
    with pytest.raises(ValueError, match="form"):
        explain.causal_from_contrasts(maps, form="fuzzy")
    with pytest.raises(ValueError, match="no threshold"):
        explain.causal_from_contrasts(maps, form="soft", threshold=0.5)
    with pytest.raises(TypeError, match="ContrastCams"):
        explain.causal_from_contrasts(explanation)


def test_causal_cam_soft_form():
    # known by construction: every Contrast-CAM of the two-channel model has Grad-CAM's shape (both are
    # relu(a_0 - a_1) up to a positive factor), so the causal map is empty in both readings
    model, x = TwoChannelModel().double().eval(), _two_squares()
    assert torch.equal(explain.causal_cam(model, x, form="soft"), torch.zeros(1, 8, 8, dtype=torch.float64))
    assert explain.causal_cam(model, x).abs().max() == 0
    # any model: the soft map from the single-map functions, by hand (for class 1, whose map is not empty)
    model, x = small_cnn(), images(3)
    maps = explain.contrast_cams(model, x, target=1)
    union = torch.zeros_like(maps.explanation)              # max_Q c_Q, one Q at a time
    for j in range(maps.contrast.shape[1]):
        one = explain.normalize_maps(explain.contrast_cam(model, x, 1, contrast=maps.contrast[:, j]), "minmax")
        union = torch.maximum(union, one)
    by_hand = (explain.normalize_maps(maps.explanation, "minmax") - union).clamp_min(0)
    soft = explain.causal_cam(model, x, target=1, form="soft")
    assert (by_hand > 0).any()                                 # not the empty case
    assert torch.allclose(soft, by_hand, atol=1e-10)
    assert torch.equal(soft, explain.causal_from_contrasts(maps, form="soft"))
    assert 0 <= soft.min() and soft.max() <= 1
    with pytest.raises(ValueError, match="no threshold"):
        explain.causal_cam(model, x, form="soft", contrast_threshold=0.8)


class _SideBranch(torch.nn.Module):
    """Logits from ``trunk``; ``side`` runs in the forward pass but never reaches the logits."""

    def __init__(self):
        super().__init__()
        self.trunk = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU())
        self.side = torch.nn.Conv2d(3, 2, 3, padding=1)
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x):
        self.side(x)
        return self.head(self.trunk(x).mean((2, 3)))


def test_cams_build_the_graph_from_the_layer_only():
    """The layers before the CAM layer run without autograd: the same maps as a full-graph computation
    by hand, the caller's grad mode kept (also inside no_grad), and a layer off the path to the logits
    refused with a clear error instead of torch's."""
    model = small_cnn().eval()
    x = images(3)
    with torch.enable_grad():
        store = {}
        handle = model.cam_layer.register_forward_hook(lambda m, i, o: store.update(a=o))
        logits = model(x.clone().requires_grad_(True))
        handle.remove()
        g, = torch.autograd.grad(logits.gather(1, logits.argmax(1, keepdim=True)).sum(), store["a"])
    by_hand = F.interpolate((g.mean((2, 3), keepdim=True) * store["a"]).sum(1, keepdim=True).clamp_min(0),
                            size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    assert torch.allclose(explain.grad_cam(model, x), by_hand.detach(), atol=1e-6)
    with torch.no_grad():
        explain.grad_cam(model, x)
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()
    with pytest.raises(ValueError, match="do not depend on the layer"):
        explain.grad_cam(_SideBranch(), x, layer="side")
    assert torch.is_grad_enabled()
