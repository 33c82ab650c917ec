"""The model matrix (issue 14, item 3), generated like Captum's config-driven tests: small, randomly
initialised torchvision classifiers of seven families (tests/_torchvision_models.py) crossed with every
explainer, every registry score, VOICE, UA-Backprop, insertion / deletion, heatmap masking and FGSM. Each
result has the right shape and is finite, completeness holds where the method claims it, and the model is
untouched (mode, hooks, gradients, every state_dict entry). The checks live in tests/_matrix.py, shared with
the timm / Hugging Face matrix (tests/test_ecosystem_matrix.py)."""
import warnings

import numpy as np
import pytest
import torch

from inferml_course import explain
from inferml_course.explain import gradients

from _matrix import (check_causal_cam_lemma1_and_perceptual, check_explainer, check_games,
                     check_integrated_gradients_completeness, check_scores, check_ua_backprop, check_voice)
from _torchvision_models import K, NAMES, PIECEWISE_LINEAR, build, images
from conftest import require


@pytest.fixture(scope="module", params=NAMES)
def setup(request):
    name = request.param
    return name, build(name), images(2, name=name)


@pytest.mark.parametrize("method", explain.METHODS)
def test_every_explainer(setup, method):
    name, model, x = setup
    check_explainer(model, x, method)


def test_every_registry_score_and_mahalanobis(setup):
    name, model, x = setup
    check_scores(model, x, images(K, seed=1, name=name), build(name, seed=1))


def test_voice(setup):
    name, model, x = setup
    check_voice(model, x, K)


def test_ua_backprop_sums_to_each_uncertainty(setup):
    """UA-Backprop's claim: each map sums over the pixels to its uncertainty (an ensemble of two members)."""
    name, model, x = setup
    check_ua_backprop([model, build(name, seed=1)], x)


def test_insertion_deletion_masking_and_fgsm(setup):
    name, model, x = setup
    check_games(model, x)


def test_completeness_of_integrated_gradients(setup):
    """IG's completeness (sum of attributions = z(x) - z(baseline)) holds on every architecture, up to the
    quadrature error of 128 Gauss-Legendre nodes (largest on ReLU networks, whose kinks slow the
    quadrature down: 0.8 % on VGG-11, 1e-6 on the smooth transformers)."""
    name, model, x = setup
    check_integrated_gradients_completeness(model, x)


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
    name, model, x = setup
    check_causal_cam_lemma1_and_perceptual(model, x)
