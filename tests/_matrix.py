"""The checks of a model matrix (tests/test_model_matrix.py: torchvision; tests/test_ecosystem_matrix.py: timm
and Hugging Face): each runs one family of methods on one model and asserts the contract (shape, finite
values, the method's own claim) and the hygiene (mode, hooks, gradients, every state_dict entry unchanged).
``classifier`` is passed where a model's logits are the mean of several heads (timm's distilled DeiT)."""
import warnings

import pytest
import torch
from torch import nn

from inferml_course import evaluate, explain, intervene
from inferml_course.uncertainty import attribution as ua
from inferml_course.uncertainty import scores, voice

from _hygiene import assert_same, snapshot

#: settings that keep every explainer cheap (the matrix checks contracts, not quality)
FAST = {"occlusion": dict(window=8, stride=8, baseline=0.5), "rise": dict(n_masks=8, baseline=0.5),
        "lime": dict(samples=8, baseline=0.5), "kernel_shap": dict(samples=8, baseline=0.5),
        "smoothgrad": dict(samples=2), "integrated_gradients": dict(steps=4), "blur_ig": dict(steps=4)}
#: rules that rewrite ReLU gradients: on a model without nn.ReLU they warn and return the gradient
RELU_RULES = ("deconvnet", "guided_backprop")


def check_explainer(model, x, method):
    before = snapshot(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        maps = explain.explain(method, model, x, target=1, **FAST.get(method, {}))
    assert maps.shape == (x.shape[0], *x.shape[-2:]) and torch.isfinite(maps).all()
    has_relu = any(isinstance(m, nn.ReLU) for m in model.modules())
    expected_warnings = 1 if method in RELU_RULES and not has_relu else 0
    assert len(caught) == expected_warnings, [str(w.message) for w in caught]
    assert_same(before, snapshot(model))


def check_scores(model, x, fit, second, classifier=None):
    """Every registry score (the ensemble ones on ``[model, second]``) and Mahalanobis fitted on ``fit``
    (one image per class). With ``classifier``, the scores that read the final linear layer get it."""
    n, k = x.shape[0], fit.shape[0]
    options = {} if classifier is None else {"classifier": classifier}
    before = snapshot(model)
    stats = scores.fit_mahalanobis(model, fit, torch.arange(k), **options)
    result = scores.score_batch(model, x, mahalanobis_stats=stats, **options)
    assert "mahalanobis" in result.scores
    for key, value in result.scores.items():
        assert value.shape == (n,) and torch.isfinite(value).all(), key
    has_dropout = any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())
    for key in scores.available_scores():
        if key == "mahalanobis":
            continue
        if key.startswith("mc_dropout") and not has_dropout:
            with pytest.raises(ValueError, match="no dropout module"):
                scores.uncertainty(key, model, x)
            continue
        subject = [model, second] if key.startswith("ensemble") else model
        value = uncertainty_with(key, subject, x, classifier)
        assert value.shape == (n,) and torch.isfinite(value).all(), key
    assert_same(before, snapshot(model))
    return result


def uncertainty_with(key, subject, x, classifier=None):
    """``scores.uncertainty(key, ...)``; with ``classifier``, a score that refuses without it must say so
    (the heads' refusal) and then work with it."""
    if classifier is None:
        return scores.uncertainty(key, subject, x)
    try:
        return scores.uncertainty(key, subject, x)
    except ValueError as err:
        assert "mean of several heads" in str(err) and "classifier=" in str(err), (key, str(err))
    return scores.uncertainty(key, subject, x, classifier=classifier)


def check_voice(model, x, k):
    before = snapshot(model)
    result = voice.voice(model, x)
    assert result.uncertainty.shape == (x.shape[0], *x.shape[-2:]) and torch.isfinite(result.uncertainty).all()
    assert result.contrast_maps.shape == (x.shape[0], k - 1, *x.shape[-2:])
    assert_same(before, snapshot(model))


def check_ua_backprop(members, x):
    """UA-Backprop's claim: each map sums over the pixels to its uncertainty (an ensemble of two members)."""
    before = snapshot(members[0])
    result = ua.ua_backprop_details(members, x, source="ensemble")
    for measure, maps in result.maps.items():
        assert maps.shape == (x.shape[0], *x.shape[-2:]) and torch.isfinite(maps).all() and (maps >= 0).all()
        expected = getattr(result.uncertainty, measure).to(maps.dtype)
        assert torch.allclose(maps.sum((1, 2)), expected, rtol=1e-4, atol=1e-6), measure
    assert_same(before, snapshot(members[0]))


def check_games(model, x):
    """Insertion / deletion and heatmap masking of the Grad-CAM, and FGSM."""
    before = snapshot(model)
    cam = explain.grad_cam(model, x)
    game = evaluate.insertion_deletion(model, x, cam, steps=8)
    for auc in (game.insertion_auc(), game.deletion_auc()):
        assert auc.shape == (x.shape[0],) and ((auc >= 0) & (auc <= 1)).all()
    masked = evaluate.heatmap_masking(model, x, {"grad_cam": cam}, substrate="black")
    assert masked.masked["grad_cam"].shape == (x.shape[0],) and torch.isfinite(masked.drops("grad_cam")).all()
    adv = intervene.fgsm(model, x, epsilon=4 / 255)
    assert adv.shape == x.shape and (adv - x).abs().max() <= 4 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert_same(before, snapshot(model))


def check_integrated_gradients_completeness(model, x, tolerance=0.02):
    """IG's completeness (sum of attributions = z(x) - z(baseline)) up to the quadrature error of 128
    Gauss-Legendre nodes."""
    maps, gap = explain.integrated_gradients(model, x, target=1, steps=128, return_gap=True)
    with torch.no_grad():
        scale = float((model(x)[:, 1] - model(torch.zeros_like(x))[:, 1]).abs().max())
    assert float(gap.abs().max()) < tolerance * scale + 1e-6, gap


def check_causal_cam_lemma1_and_perceptual(model, x, classifier=None):
    """CausalCAM (on the contrast maps of every class), Lemma 1's split at the classifier, and the
    perceptual-component maps (penultimate features)."""
    from inferml_course import introspection
    from inferml_course.fisher import perceptual

    options = {} if classifier is None else {"classifier": classifier}
    before = snapshot(model)
    causal = explain.causal_cam(model, x, contrast_threshold=1.0)
    assert torch.allclose(causal, explain.grad_cam(model, x) * (explain.normalize_maps(explain.grad_cam(model, x),
                                                                                          "minmax") > 0.5), atol=1e-5)
    terms = introspection.lemma1_terms(model, x, **options)
    split = terms["relation"] + terms["remainder"].unsqueeze(1)          # (delta_hat - delta_I) h + (p - delta_hat) h
    assert torch.allclose(terms["gradient"], split, atol=1e-8)
    maps = perceptual.perceptual_components(model, x, n_masks=4, **options)
    for component, m in maps.items():
        assert m.shape == (x.shape[0], *x.shape[-2:]) and torch.isfinite(m).all(), component
    assert_same(before, snapshot(model))
