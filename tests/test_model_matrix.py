"""The model matrix (issue 14, item 3), generated like Captum's config-driven tests: small, randomly
initialised torchvision classifiers of seven families (tests/_torchvision_models.py) crossed with every
explainer, every registry score, VOICE, UA-Backprop, insertion / deletion and FGSM. Each result has the
right shape and is finite, completeness holds where the method claims it, and the model is untouched
(mode, hooks, gradients, every state_dict entry)."""
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from inferml_course import evaluate, explain, intervene
from inferml_course.explain import gradients
from inferml_course.uncertainty import attribution as ua
from inferml_course.uncertainty import scores, voice

from _hygiene import assert_same, snapshot
from _torchvision_models import K, NAMES, PIECEWISE_LINEAR, build, images
from conftest import require

#: settings that keep every explainer cheap (the matrix checks contracts, not quality)
FAST = {"occlusion": dict(window=8, stride=8, baseline=0.5), "rise": dict(n_masks=8, baseline=0.5),
        "lime": dict(samples=8, baseline=0.5), "kernel_shap": dict(samples=8, baseline=0.5),
        "smoothgrad": dict(samples=2), "integrated_gradients": dict(steps=4), "blur_ig": dict(steps=4)}
#: rules that rewrite ReLU gradients: on a model without nn.ReLU they warn and return the gradient
RELU_RULES = ("deconvnet", "guided_backprop")


@pytest.fixture(scope="module", params=NAMES)
def setup(request):
    name = request.param
    return name, build(name), images(2, name=name)


@pytest.mark.parametrize("method", explain.METHODS)
def test_every_explainer(setup, method):
    name, model, x = setup
    before = snapshot(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        maps = explain.explain(method, model, x, target=1, **FAST.get(method, {}))
    assert maps.shape == (2, *x.shape[-2:]) and torch.isfinite(maps).all()
    has_relu = any(isinstance(m, nn.ReLU) for m in model.modules())
    expected_warnings = 1 if method in RELU_RULES and not has_relu else 0
    assert len(caught) == expected_warnings, [str(w.message) for w in caught]
    assert_same(before, snapshot(model))


def test_every_registry_score_and_mahalanobis(setup):
    name, model, x = setup
    fit = images(K, seed=1, name=name)
    before = snapshot(model)
    stats = scores.fit_mahalanobis(model, fit, torch.arange(K))
    result = scores.score_batch(model, x, mahalanobis_stats=stats)
    assert "mahalanobis" in result.scores
    for key, value in result.scores.items():
        assert value.shape == (2,) and torch.isfinite(value).all(), key
    has_dropout = any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())
    for key in scores.available_scores():
        if key == "mahalanobis":
            continue
        if key.startswith("mc_dropout") and not has_dropout:
            with pytest.raises(ValueError, match="no dropout module"):
                scores.uncertainty(key, model, x)
            continue
        subject = [model, build(name, seed=1)] if key.startswith("ensemble") else model
        value = scores.uncertainty(key, subject, x)
        assert value.shape == (2,) and torch.isfinite(value).all(), key
    assert_same(before, snapshot(model))


def test_voice(setup):
    name, model, x = setup
    before = snapshot(model)
    result = voice.voice(model, x)
    assert result.uncertainty.shape == (2, *x.shape[-2:]) and torch.isfinite(result.uncertainty).all()
    assert result.contrast_maps.shape == (2, K - 1, *x.shape[-2:])
    assert_same(before, snapshot(model))


def test_ua_backprop_sums_to_each_uncertainty(setup):
    """UA-Backprop's claim: each map sums over the pixels to its uncertainty (an ensemble of two members)."""
    name, model, x = setup
    members = [model, build(name, seed=1)]
    before = snapshot(model)
    result = ua.ua_backprop_details(members, x, source="ensemble")
    for measure, maps in result.maps.items():
        assert maps.shape == (2, *x.shape[-2:]) and torch.isfinite(maps).all() and (maps >= 0).all()
        expected = getattr(result.uncertainty, measure).to(maps.dtype)
        assert torch.allclose(maps.sum((1, 2)), expected, rtol=1e-4, atol=1e-6), measure
    assert_same(before, snapshot(model))


def test_insertion_deletion_and_fgsm(setup):
    name, model, x = setup
    before = snapshot(model)
    game = evaluate.insertion_deletion(model, x, explain.grad_cam(model, x), steps=8)
    for auc in (game.insertion_auc(), game.deletion_auc()):
        assert auc.shape == (2,) and ((auc >= 0) & (auc <= 1)).all()
    adv = intervene.fgsm(model, x, epsilon=4 / 255)
    assert adv.shape == x.shape and (adv - x).abs().max() <= 4 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert_same(before, snapshot(model))


def test_completeness_of_integrated_gradients(setup):
    """IG's completeness (sum of attributions = z(x) - z(baseline)) holds on every architecture, up to the
    quadrature error of 128 Gauss-Legendre nodes (largest on ReLU networks, whose kinks slow the
    quadrature down: 0.8 % on VGG-11, 1e-6 on the smooth transformers)."""
    name, model, x = setup
    maps, gap = explain.integrated_gradients(model, x, target=1, steps=128, return_gap=True)
    with torch.no_grad():
        scale = float((model(x)[:, 1] - model(torch.zeros_like(x))[:, 1]).abs().max())
    assert float(gap.abs().max()) < 0.02 * scale + 1e-6, (name, gap)


@pytest.mark.parametrize("name", PIECEWISE_LINEAR)
def test_completeness_of_fullgrad_on_piecewise_linear_networks(name):
    """FullGrad's decomposition (input term + every bias term = the logit) is exact for networks of
    ReLUs, pools, batch norm and linear maps, in-place operations included."""
    model, x = build(name), images(2, name=name)
    inp, terms, t = gradients.fullgrad_terms(model, x, 1)
    total = inp.flatten(1).sum(1) + sum(term.flatten(1).sum(1) for term in terms)
    with torch.no_grad():
        logit = model(x)[:, 1]
    assert torch.allclose(total, logit, atol=1e-5 + 1e-4 * float(logit.abs().max()))


def _pytorch_grad_cam_scaling(terms, size):
    """pytorch-grad-cam's FullGrad post-processing: min-max per image *and channel*, resize, channel sum,
    sum of the layers, min-max per image (ours, the authors': min-max per image over all channels)."""
    def per_channel(term):
        t = term.abs()
        t = t - t.amin((2, 3), keepdim=True)
        t = t / (t.amax((2, 3), keepdim=True) + 1e-7)
        return torch.nn.functional.interpolate(t, size=size, mode="bilinear", align_corners=False).sum(1)
    total = sum(per_channel(t) for t in terms)
    total = total - total.amin((1, 2), keepdim=True)
    return total / (total.amax((1, 2), keepdim=True) + 1e-7)


@pytest.mark.parametrize("name", ["resnet18", "vgg11"])
def test_fullgrad_terms_equal_pytorch_grad_cam(name):
    """pytorch-grad-cam's FullGrad reads the same bias x gradient terms (conv and batch-norm biases,
    the input term); only its scaling differs (per channel, where the authors' code and ours scale per
    image): with that scaling undone on our terms, the maps agree."""
    require("pytorch_grad_cam")
    from pytorch_grad_cam import FullGrad
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model, x = build(name), images(2, name=name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cam = FullGrad(model, [])
    try:
        ref = cam(x.clone(), targets=[ClassifierOutputTarget(1)] * 2)
    finally:
        cam.activations_and_grads.release()
    inp, terms, _, _ = gradients._fullgrad_terms(model, x, 1)
    maps = [t for t in terms if t.dim() == 4]
    ours = _pytorch_grad_cam_scaling([inp] + maps, tuple(x.shape[-2:]))
    np.testing.assert_allclose(ours.numpy(), ref, atol=2e-2)


def test_causal_cam_lemma1_and_perceptual_components(setup):
    """This session's additions on every architecture: CausalCAM (on the contrast maps of every class),
    Lemma 1's split at the classifier, and the perceptual-component maps (penultimate features)."""
    from inferml_course import introspection
    from inferml_course.fisher import perceptual

    name, model, x = setup
    before = snapshot(model)
    causal = explain.causal_cam(model, x, contrast_threshold=1.0)
    assert torch.allclose(causal, explain.grad_cam(model, x) * (explain.normalize_maps(explain.grad_cam(model, x),
                                                                                          "minmax") > 0.5), atol=1e-5)
    terms = introspection.lemma1_terms(model, x)
    split = terms["relation"] + terms["remainder"].unsqueeze(1)          # (delta_hat - delta_I) h + (p - delta_hat) h
    assert torch.allclose(terms["gradient"], split, atol=1e-8)
    maps = perceptual.perceptual_components(model, x, n_masks=4)
    for component, m in maps.items():
        assert m.shape == (2, *x.shape[-2:]) and torch.isfinite(m).all(), component
    assert_same(before, snapshot(model))
