"""The models people bring (issue 29): timm (ResNet, EfficientNet, ConvNeXt, ViT, DeiT, distilled DeiT, Swin) and
Hugging Face (ViT, Swin, ConvNext) classifiers, tiny and randomly initialised, nothing downloaded
(tests/_ecosystem_models.py), crossed with every explainer, every registry score, VOICE, UA-Backprop, CausalCAM
and the evaluation games, with the torchvision matrix's checks (tests/_matrix.py). Plus what these models
taught the adapter: the CAM layer is the pre-norm of the last attention block, never the patch embedding or
the stem, and the CAM found there equals one computed by hand; a Hugging Face model goes through
``models.as_classifier``; distilled DeiT's two heads enter the gradient scores as ``classifier=(head, head_dist)``
and are named in the refusal without it."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import require

for _module in ("timm", "transformers"):
    require(_module)

from inferml_course import explain  # noqa: E402
from inferml_course._core import adapter  # noqa: E402
from inferml_course.models import as_classifier  # noqa: E402
from inferml_course.uncertainty import scores, trust, voice  # noqa: E402

from _ecosystem_models import CAM_LAYERS, HEADS, INPUT_LAYERS, K, MEAN, NAMES, STD, build, images  # noqa: E402
from _hygiene import assert_same, snapshot  # noqa: E402
from _matrix import (check_causal_cam_lemma1_and_perceptual, check_explainer, check_games,  # noqa: E402
                     check_integrated_gradients_completeness, check_scores, check_ua_backprop, check_voice)

CAMS = ("grad_cam", "grad_cam_plus_plus", "counterfactual_cam", "contrast_cam")


@pytest.fixture(scope="module", params=NAMES)
def setup(request):
    name = request.param
    return name, build(name), images(2, name=name)


def _heads(name):
    return HEADS.get(name)


# ------------------------------------------------------------------------------------- the matrix
@pytest.mark.parametrize("method", explain.METHODS)
def test_every_explainer(setup, method):
    name, model, x = setup
    check_explainer(model, x, method)


def test_every_registry_score_and_mahalanobis(setup):
    name, model, x = setup
    check_scores(model, x, images(K, seed=1, name=name), build(name, seed=1), classifier=_heads(name))


def test_voice(setup):
    name, model, x = setup
    check_voice(model, x, K)


def test_ua_backprop_sums_to_each_uncertainty(setup):
    name, model, x = setup
    check_ua_backprop([model, build(name, seed=1)], x)


def test_insertion_deletion_masking_and_fgsm(setup):
    name, model, x = setup
    check_games(model, x)


#: IG's quadrature error on timm's narrow ResNet (8 channels, many ReLU kinks): 3.0 % of the logit difference
#: with 128 nodes, 0.7 % with 512, 0.01 % with 2048 (it shrinks with the nodes: quadrature, not a wrong gradient)
IG_TOLERANCE = {"timm_resnet": 0.04}


def test_completeness_of_integrated_gradients(setup):
    name, model, x = setup
    check_integrated_gradients_completeness(model, x, IG_TOLERANCE.get(name, 0.02))


def test_causal_cam_lemma1_and_perceptual_components(setup):
    name, model, x = setup
    check_causal_cam_lemma1_and_perceptual(model, x, classifier=_heads(name))


# ------------------------------------------------------------------------------------- the CAM layer
def _inside(model, module, names):
    return any(any(m is module for m in model.get_submodule(n).modules()) for n in names)


def test_the_cam_layer_is_never_at_the_input(setup):
    """The search never picks the patch embedding or the stem (nor anything inside them), and on every
    transformer it picks the pre-norm of the last attention block."""
    name, model, x = setup
    layer = adapter.resolve_layer(model, None, x)
    found = next(n for n, m in model.named_modules() if m is layer)
    assert not _inside(model, layer, INPUT_LAYERS[name]), (name, found)
    if name in CAM_LAYERS:
        assert found == CAM_LAYERS[name], (name, found)


def _tokens_to_maps(name, raw):
    """The layout of each transformer's pre-norm, written out by hand (not with _core.layouts)."""
    if name == "timm_swin":                                     # (N, h, w, D), channels-last
        return raw.permute(0, 3, 1, 2)
    drop = {"timm_vit": 1, "timm_deit": 1, "timm_deit_distilled": 2, "hf_vit": 1, "hf_swin": 0}[name]
    tokens = raw[:, drop:]
    side = int(round(tokens.shape[1] ** 0.5))
    return tokens.reshape(raw.shape[0], side, side, raw.shape[2]).permute(0, 3, 1, 2)


def _grad_cam_by_hand(model, x, layer, name):
    store = {}
    handle = layer.register_forward_hook(lambda _m, _i, out: store.setdefault("a", out))
    try:
        with torch.enable_grad():
            logits = model(x)
            target = logits.argmax(1)
            (g,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), store["a"])
    finally:
        handle.remove()
    a, g = _tokens_to_maps(name, store["a"].detach()), _tokens_to_maps(name, g)
    cam = (g.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True).clamp_min(0)
    return F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


@pytest.mark.parametrize("name", sorted(CAM_LAYERS))
def test_transformer_cams_equal_the_cam_at_the_last_attention_blocks_input(name):
    model, x = build(name), images(3, name=name)
    layer = model.get_submodule(CAM_LAYERS[name])
    before = snapshot(model)
    ours = explain.grad_cam(model, x)
    assert float(ours.amax()) > 0
    assert torch.allclose(ours, _grad_cam_by_hand(model, x, layer, name), rtol=1e-4, atol=1e-6 * float(ours.amax()))
    for method in CAMS:
        assert torch.equal(explain.explain(method, model, x), explain.explain(method, model, x, layer=CAM_LAYERS[name])), method
    assert_same(before, snapshot(model))


def test_every_cam_voice_and_causal_cam_use_the_one_layer_search(monkeypatch):
    """Grad-CAM, Grad-CAM++, Counterfactual-CAM, Contrast-CAM, the paradigms, CausalCAM, VOICE and the
    activation maps all find their layer through adapter.find_cam_layer."""
    model, x = build("timm_vit"), images(2)
    calls = []
    real = adapter.find_cam_layer
    monkeypatch.setattr(adapter, "find_cam_layer", lambda m, v: calls.append(1) or real(m, v))
    runs = {**{m: (lambda m=m: explain.explain(m, model, x)) for m in CAMS},
            "paradigms": lambda: explain.explanatory_paradigms(model, x),
            "causal_cam": lambda: explain.causal_cam(model, x),
            "voice": lambda: voice.voice(model, x),
            "activation_maps": lambda: explain.activation_maps(model, x)}
    for label, run in runs.items():
        calls.clear()
        run()
        assert calls, label


def test_a_model_whose_only_candidate_is_its_input_layer_is_refused():
    """A ViT whose attention the search cannot read (no pre-norm before it: a post-norm block) is refused with
    layer= named, and so is a patch embedding followed by an MLP (no attention at all): the patch embedding
    is the only convolution, which the convolution rule alone would pick."""
    class Attention(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)

        def forward(self, t):
            return torch.softmax(self.q(t) @ self.k(t).transpose(1, 2), -1) @ self.v(t)

    class PostNorm(nn.Module):
        def __init__(self, d=8):
            super().__init__()
            self.embed = nn.Conv2d(3, d, 8, 8)
            self.attn = Attention(d)
            self.norm = nn.LayerNorm(d)
            self.head = nn.Linear(d, K)

        def forward(self, x):
            t = self.embed(x).flatten(2).transpose(1, 2) * 2.0        # not a module's output
            t = self.norm(t + self.attn(t))
            return self.head(t.mean(1))

    mixer = nn.Sequential(nn.Conv2d(3, 8, 8, 8), nn.Flatten(2), nn.Linear(16, 16), nn.GELU(), nn.Linear(16, 16),
                          nn.Flatten(), nn.Linear(8 * 16, K)).eval()
    x = images(1)
    with pytest.raises(ValueError, match="no pre-norm.*pass layer="):
        explain.grad_cam(PostNorm().eval(), x)
    with pytest.raises(ValueError, match="'0', is the model's first layer.*pass layer="):
        explain.grad_cam(mixer, x)
    # a one-convolution CNN whose map goes straight to its linear classifier keeps that convolution
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, K)).eval()
    assert adapter.resolve_layer(plain, None, x) is plain[0]


def test_distilled_deit_tokens_drop_both_prefix_tokens():
    model = build("timm_deit_distilled")
    assert adapter.prefix_tokens(model) == 2
    from inferml_course._core import layouts

    t = torch.arange(2 * 18 * 3.0).view(2, 18, 3)                       # class + distillation + 4 x 4
    assert torch.equal(layouts.feature_map_view(t, (32, 32), prefix=2)(t), t[:, 2:].reshape(2, 4, 4, 3).permute(0, 3, 1, 2))
    assert torch.equal(layouts.feature_map_view(t, (32, 32))(t), t[:, 2:].reshape(2, 4, 4, 3).permute(0, 3, 1, 2))


# ------------------------------------------------------------------------------------- Hugging Face
def test_a_hugging_face_model_as_given_is_refused_naming_the_wrapper():
    model = build("hf_vit").model                                       # the bare ViTForImageClassification
    with pytest.raises(ValueError, match=r"ImageClassifierOutput.*models\.as_classifier\(model, normalize="):
        explain.grad_cam(model, images(1))


def test_as_classifier_returns_the_logits_of_normalised_images_and_shares_the_mode():
    wrapped = build("hf_vit")
    hf, x = wrapped.model, images(2)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(wrapped(x), hf(pixel_values=(x - mean) / std).logits, atol=1e-6)
    assert torch.equal(adapter.resolve_normalize(wrapped), torch.tensor(MEAN))
    assert not wrapped.training and not hf.training
    wrapped.train()
    assert hf.training and all(m.training for m in hf.modules())
    wrapped.eval()
    assert not any(m.training for m in hf.modules())
    # the wrapper starts in the wrapped model's mode and leaves its submodules' flags alone
    hf.train()
    hf.vit.layers[0].eval()
    again = as_classifier(hf)
    assert again.training and not hf.vit.layers[0].training and "normalize" not in again._modules
    # tuple and dict outputs, and bad statistics
    linear = nn.Linear(3 * 4, K)

    class Tupled(nn.Module):
        def __init__(self, as_dict=False):
            super().__init__()
            self.fc, self.as_dict = linear, as_dict

        def forward(self, v):
            z = self.fc(v.flatten(1))
            return {"logits": z} if self.as_dict else (z, v)

    v = torch.rand(2, 3, 2, 2)
    for as_dict in (False, True):
        assert torch.equal(as_classifier(Tupled(as_dict))(v), linear(v.flatten(1)))
    with pytest.raises(ValueError, match="one entry per channel"):
        as_classifier(Tupled(), normalize=((0.5, 0.5, 0.5), (0.5, 0.5)))
    with pytest.raises(ValueError, match="std > 0"):
        as_classifier(Tupled(), normalize=((0.5,) * 3, (0.0,) * 3))
    with pytest.raises(TypeError, match=r"pair \(mean, std\)"):
        as_classifier(Tupled(), normalize="imagenet")


# ------------------------------------------------------------------------------------- several heads
def test_distilled_deit_gradient_scores_read_both_heads():
    """GradNorm on classifier=(head, head_dist) is the L1 norm of the KL's gradient with respect to BOTH heads'
    weights, computed with autograd through the whole model, image by image; the closed forms agree."""
    model, x = build("timm_deit_distilled"), images(3)
    heads = HEADS["timm_deit_distilled"]
    head, dist = (model.get_submodule(h) for h in heads)
    reference = []
    for i in range(x.shape[0]):
        log_p = torch.log_softmax(model(x[i:i + 1]), 1)
        loss = -(log_p + torch.log(torch.tensor(float(K)))).mean()
        grads = torch.autograd.grad(loss, [head.weight, dist.weight])
        reference.append(sum(g.abs().sum() for g in grads))
    reference = torch.stack(reference).detach()
    for method in ("gradient", "closed_form"):
        assert torch.allclose(trust.gradnorm(model, x, classifier=heads, method=method), reference, rtol=1e-4), method
    assert torch.allclose(trust.gradnorm(model, x, classifier=(head, dist)), reference, rtol=1e-4)
    assert torch.allclose(trust.gradtrust(model, x, classifier=heads),
                          trust.gradtrust(model, x, classifier=heads, method="closed_form"), rtol=1e-4)
    logits, h = adapter.forward_with_features(model, x, classifier=heads)
    combined = adapter.resolve_classifier(model, heads)
    assert h.shape == (3, head.in_features + dist.in_features)
    assert torch.allclose(h @ combined.weight.T + combined.bias, logits, atol=1e-5)


def test_distilled_deit_without_classifier_is_refused_shortly_naming_the_heads():
    model, x = build("timm_deit_distilled"), images(2)
    for run in (lambda: trust.gradnorm(model, x), lambda: trust.gradtrust(model, x),
                lambda: scores.uncertainty("gradtrust_topk", model, x)):
        with pytest.raises(ValueError) as info:
            run()
        message = str(info.value)
        assert "mean of several heads" in message and "classifier=('1.head', '1.head_dist')" in message
        assert len(message) < 400
    with pytest.raises(ValueError, match="must all output the K logits"):
        trust.gradnorm(model, x, classifier=("1.head", "1.blocks.0.attn.proj"))

    class Summed(nn.Module):                                             # logits = the SUM of two heads
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, K), nn.Linear(3, K)

        def forward(self, v):
            return self.a(v.mean((2, 3))) + self.b(v.amax((2, 3)))

    with pytest.raises(ValueError, match="mean of the classifier heads' outputs is not the model's logits"):
        trust.gradnorm(Summed().eval(), x, classifier=("a", "b"))


def test_error_messages_list_a_handful_of_candidates():
    """Candidate lists stop after 5 names and say how many more there are, the closest names first."""
    model, x = build("timm_deit_distilled"), images(1)
    with pytest.raises(ValueError) as info:
        explain.grad_cam(model, x, layer="1.blocks.1.norm3")
    listed = str(info.value).split("include: ")[1]
    assert listed.count(",") <= 5 and "more)" in listed and listed.startswith("1.blocks.1.norm")
    with pytest.raises(ValueError) as info:
        trust.gradnorm(model, x, classifier="1.blocks.0.attn.qkv")
    listed = str(info.value).split("nn.Linear modules: ")[1]
    assert listed.count(",") <= 5 and "more)" in listed
