"""The model adapter: a model that follows none of the course's conventions (no ``cam_layer``,
``last_layer``, ``embed`` or ``normalize``) gets every score, Mahalanobis, introspective features,
VOICE and the CAMs without keywords, or a clear refusal; keywords override the detection."""
import warnings

import pytest
import torch
from torch import nn

from inferml_course import explain, fisher, introspection
from inferml_course._core import adapter
from inferml_course.models import SmallCNN
from inferml_course.uncertainty import scores, voice

from _hygiene import assert_same, snapshot

torchvision = pytest.importorskip("torchvision")

K = 4


class FeaturesClassifier(nn.Module):
    """The ``features`` / ``classifier`` convention of torchvision's VGG and AlexNet, and nothing else."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(2), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU())
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 12), nn.ReLU(),
                                        nn.Dropout(0.2), nn.Linear(12, K))

    def forward(self, x):
        return self.classifier(self.features(x))


def _resnet():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=K).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, as after training
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


def _plain():
    torch.manual_seed(0)
    return FeaturesClassifier().eval()


MODELS = {"features_classifier": _plain, "resnet18": _resnet}
SIZE = {"features_classifier": 32, "resnet18": 64}  # ResNet's layer4 is 2 x 2 at 64 pixels (1 x 1 at 32)


def _images(n=6, size=32):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module", params=sorted(MODELS))
def setup(request):
    return request.param, MODELS[request.param]()


def test_parts_found_by_structure(setup):
    name, model = setup
    x = _images(2, SIZE[name])
    expected = {"features_classifier": ("features", "classifier.5"), "resnet18": ("layer4", "fc")}[name]
    names = {m: n for n, m in model.named_modules()}
    assert names[adapter.resolve_layer(model, None, x)] == expected[0]
    assert names[adapter.resolve_classifier(model)] == expected[1]
    logits, h = adapter.forward_with_features(model, x)
    with torch.no_grad():
        assert torch.allclose(logits, model(x))
    layer = adapter.resolve_classifier(model)
    assert torch.allclose(h @ layer.weight.T + layer.bias, logits, atol=1e-5)
    assert adapter.resolve_normalize(model) is None


def test_every_registry_score_mahalanobis_and_introspection_without_keywords(setup):
    name, model = setup
    x, y = _images(8, SIZE[name]), torch.arange(8) % K
    before = snapshot(model)
    stats = scores.fit_mahalanobis(model, x, y)
    result = scores.score_batch(model, x, mahalanobis_stats=stats)
    assert "mahalanobis" in result.scores and "gradtrust" in result.scores and "gradnorm" in result.scores
    for key, value in result.scores.items():
        assert value.shape == (8,) and torch.isfinite(value).all(), key
    for key in ("gradtrust", "gradnorm", "gradtrust_topk"):
        assert torch.allclose(scores.uncertainty(key, model, x), result.scores[key], rtol=1e-4, atol=1e-5), key
    feats = introspection.introspective_features(model, x)
    d = adapter.resolve_classifier(model).in_features
    assert feats.shape == (8, K * d + K) and torch.isfinite(feats).all()
    assert fisher.embeddings(model, x).shape == (8, d)
    assert_same(before, snapshot(model))


def test_voice_and_cams_without_keywords(setup):
    name, model = setup
    x = _images(3, SIZE[name])
    before = snapshot(model)
    result = voice.voice(model, x)
    assert result.uncertainty.shape == (3, SIZE[name], SIZE[name]) and torch.isfinite(result.uncertainty).all()
    layer = adapter.resolve_layer(model, None, x)
    for method in ("grad_cam", "grad_cam_plus_plus", "counterfactual_cam", "contrast_cam"):
        found = explain.explain(method, model, x, target=0)
        assert torch.equal(found, explain.explain(method, model, x, target=0, layer=layer)), method
    assert_same(before, snapshot(model))


def test_detection_probe_leaves_a_training_mode_model_alone():
    model = _resnet().train()
    before = snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explain.grad_cam(model, _images(2, 64), target=0)
    assert_same(before, snapshot(model))


def test_keywords_override_and_refusals():
    model = _plain()
    x = _images(2)
    # classifier= picks another linear layer only if its output is the logits
    with pytest.raises(ValueError, match="does not produce the logits.*classifier.2, classifier.5"):
        scores.uncertainty("gradtrust", model, x, classifier="classifier.2")
    with pytest.raises(ValueError, match="unknown classifier name"):
        introspection.introspective_features(model, x, classifier="classifier.9")
    # a layer after the last linear one (log-softmax outputs): refused, not features of the wrong layer
    wrapped = nn.Sequential(model, nn.LogSoftmax(1)).eval()
    with pytest.raises(ValueError, match="does not produce the logits"):
        scores.fit_mahalanobis(wrapped, x, torch.tensor([0, 1]))
    # features= replaces the penultimate features
    pooled = lambda v: model.features(v).mean((2, 3))  # noqa: E731
    assert torch.allclose(fisher.embeddings(model, x, features=pooled), pooled(x).detach())
    # baseline "mean" needs the normalisation: refused without one, read from normalize= with one
    with pytest.raises(ValueError, match="baseline='mean' needs the training data's mean colour.*normalize="):
        explain.occlusion(model, x, target=0, window=8, stride=8)
    mean = torch.tensor([0.2, 0.4, 0.6])
    assert torch.equal(explain.occlusion(model, x, target=0, window=8, stride=8, normalize=mean),
                       explain.occlusion(model, x, target=0, window=8, stride=8, baseline=mean))
    # a transformer-like token output and a model without convolutions are refused with guidance
    with pytest.raises(ValueError, match="cannot find a CAM layer"):
        explain.grad_cam(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, K)).eval(), x)
    # a 1 x 1 map carries no location: ResNet-18 on 32-pixel images falls back to layer3 (2 x 2)
    resnet = _resnet()
    assert adapter.resolve_layer(resnet, None, _images(1, 32)) is resnet.layer3


def test_course_model_keeps_its_conventions():
    model = SmallCNN(num_classes=K).eval()
    x = _images(2)
    assert adapter.resolve_layer(model, None, x) is model.cam_layer
    assert adapter.resolve_classifier(model) is model.last_layer
    assert torch.equal(adapter.resolve_normalize(model), model.normalize.mean.flatten())
    with torch.no_grad():
        assert torch.allclose(fisher.embeddings(model, x), model.embed(x))
    ensemble_like = nn.ModuleList([SmallCNN(num_classes=K), SmallCNN(num_classes=K)])
    assert torch.equal(adapter.resolve_normalize(ensemble_like), model.normalize.mean.flatten())
    other = SmallCNN(num_classes=K)
    other.normalize.mean.fill_(0.1)
    with pytest.raises(ValueError, match="several normalisation modules"):
        adapter.resolve_normalize(nn.ModuleList([SmallCNN(num_classes=K), other]))


def test_transformer_cam_layers_are_found_by_structure():
    """A ViT's CAM layer is the query of its last attention layer (its patch embedding is a convolution,
    which the convolution rule alone would pick); Swin's is the pre-norm of its last block (channels-last,
    its windows are cut from it); the layouts are read by _core.layouts (tests/test_token_layers.py)."""
    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=1, num_heads=2,
                                               hidden_dim=16, mlp_dim=32, num_classes=K).eval()
    swin = torchvision.models.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[2, 2],
                                              window_size=[2, 2], num_classes=K).eval()
    x = _images(1)
    assert adapter.resolve_layer(vit, None, x) is vit.encoder.layers[-1].ln_1
    assert adapter.resolve_layer(swin, None, x) is swin.features[-1][-1].norm1
    # the classifier and the scores that read it work on both
    for model in (vit, swin):
        assert scores.uncertainty("gradtrust", model, x).shape == (1,)


class _ViewsItsInput(torch.nn.Module):
    """An MLP that flattens its input with ``view``: it cannot take a channels-last image."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 8 * 8, 4)

    def forward(self, x):
        return self.fc(x.view(x.shape[0], -1))


def test_forward_images_uses_channels_last_where_the_model_takes_it():
    from inferml_course import evaluate, explain
    from inferml_course._core.adapter import forward_images

    torch.manual_seed(0)
    x = torch.rand(5, 3, 8, 8)
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 36, 4)).eval()
    assert torch.allclose(forward_images(conv, x), conv(x), atol=1e-5)
    mlp = _ViewsItsInput()
    assert torch.equal(forward_images(mlp, x), mlp(x))  # refused once, then the plain layout
    assert torch.equal(forward_images(mlp, x), mlp(x))
    maps = torch.rand(5, 8, 8)
    curves = evaluate.deletion_curve(_ViewsItsInput(), x, maps, steps=4, substrate="black")
    assert curves.shape == (5, 5) and torch.isfinite(curves).all()
    occ = explain.occlusion(_ViewsItsInput(), x, window=4, stride=4, baseline=0.0)
    assert occ.shape == (5, 8, 8) and torch.isfinite(occ).all()


class _ViewsItsFeatures(torch.nn.Module):
    """A student's CNN: convolutions, then ``view`` on the feature map (fails on a channels-last map)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        a = torch.relu(self.conv(x))
        return self.fc(a.view(a.shape[0], -1))


def test_methods_on_a_model_that_views_its_feature_maps():
    """The channels-last attempt fails inside the model, after hooks ran; the retry in the plain layout
    gives the same numbers as a plain computation by hand (saliency and Grad-CAM)."""
    torch.manual_seed(0)
    x = torch.rand(3, 3, 8, 8)
    model = _ViewsItsFeatures().eval()
    xg = x.clone().requires_grad_(True)
    logits = model(xg)
    t = logits.argmax(1)
    (g,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), xg)
    assert torch.allclose(explain.saliency(model, x, t, channels="keep"), g, atol=1e-6)
    store = {}
    handle = model.conv.register_forward_hook(lambda m, i, o: store.update(a=o))
    z = model(x)
    handle.remove()
    (ga,) = torch.autograd.grad(z.gather(1, t[:, None]).sum(), store["a"])
    by_hand = (ga.mean((2, 3), keepdim=True) * store["a"]).sum(1).clamp_min(0).detach()
    assert torch.allclose(explain.grad_cam(model, x, t, layer="conv"), by_hand, atol=1e-6)
    assert torch.is_grad_enabled()


def test_forward_images_takes_an_unhashable_model():
    from inferml_course._core.adapter import forward_images

    class Unhashable(_ViewsItsInput):
        __hash__ = None

    model, x = Unhashable(), torch.rand(2, 3, 8, 8)
    assert torch.equal(forward_images(model, x), model(x))
    assert torch.equal(forward_images(model, x), model(x))
