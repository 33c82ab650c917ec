"""The perturb-and-score engine (``_core.perturb``, ``_core.paths``) and the dtype rule it states: every public
function that takes a model and images runs float64 images and channels-last images with the numbers of
float32 contiguous images (the model runs in its own dtype; outputs in float32 for a float32 model)."""
from __future__ import annotations

import importlib
import inspect
import warnings

import pytest
import torch

from inferml_course import evaluate as ev
from inferml_course import explain
from inferml_course._core.paths import noise_sigma, noisy_points, path_gradients
from inferml_course._core.perturb import OUTPUTS, chunk_rule, first_pass, masked_scores, score_jobs
from inferml_course.fisher import information as fisher
from inferml_course.fisher import perceptual
from inferml_course.introspection import features as introspection
from inferml_course.intervene import adversarial, causal
from inferml_course.models import Ensemble, SmallCNN, training
from inferml_course.uncertainty import augmentation, bayesian, scores, trust
from inferml_course.uncertainty import attribution as ua
from inferml_course.uncertainty.voice import voice, voice_map

from _explain_models import TinyVAE

N, K, SIDE = 3, 4, 12
X = torch.rand(N, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1))
MAPS = torch.rand(N, SIDE, SIDE, generator=torch.Generator().manual_seed(2))
LABELS = torch.tensor([0, 1, 2])
FAST = {"smoothgrad": dict(samples=2), "integrated_gradients": dict(steps=4), "blur_ig": dict(steps=4),
        "occlusion": dict(window=4, stride=4), "rise": dict(n_masks=8, grid_size=3),
        "lime": dict(samples=8, n_segments=4), "kernel_shap": dict(samples=8, n_segments=4)}


VAE = TinyVAE(c=3, h=SIDE, w=SIDE, dtype=torch.float32)


def make_model(seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SmallCNN(3, K, width=4, hidden=8).eval()


def signs(x):
    return x.view(1, N, 3, SIDE, SIDE)


#: every public function of the families that takes (model, images): name -> call(model, x)
ROWS = {
    **{f"explain.{m}": (lambda model, x, m=m: explain.method(m)(model, x, **FAST.get(m, {}))) for m in explain.METHODS},
    "explain.rise_scores": lambda model, x: explain.rise_scores(model, x, n_masks=8, grid_size=3),
    "explain.explanatory_paradigms": lambda model, x: explain.explanatory_paradigms(model, x, contrast=1),
    "explain.contrast_cams": lambda model, x: explain.contrast_cams(model, x),
    "explain.causal_cam": lambda model, x: explain.causal_cam(model, x),
    "explain.activation_maps": lambda model, x: explain.activation_maps(model, x),
    "explain.max_activating_patches": lambda model, x: explain.max_activating_patches(model, x, k=1),
    "explain.embeddings": lambda model, x: explain.embeddings(model, x),
    "explain.representatives": lambda model, x: explain.representatives(model, x, LABELS, [0, 1], strict=False),
    "evaluate.heatmap_masking": lambda model, x: ev.heatmap_masking(model, x, MAPS),
    "evaluate.masked_images": lambda model, x: ev.masked_images(model, x, MAPS),
    "evaluate.insertion_deletion": lambda model, x: ev.insertion_deletion(model, x, MAPS, steps=4),
    "evaluate.insertion_curve": lambda model, x: ev.insertion_curve(model, x, MAPS, steps=4),
    "evaluate.deletion_curve": lambda model, x: ev.deletion_curve(model, x, MAPS, steps=4),
    "evaluate.game_optimized_map": lambda model, x: ev.game_optimized_map(model, x, steps=4),
    "evaluate.structure_curves": lambda model, x: ev.structure_curves(model, x, MAPS, thresholds=(0.5,)),
    "uncertainty.compute_scores": lambda model, x: scores.compute_scores(model, x, ["msp", "gradtrust"]),
    "uncertainty.score_batch": lambda model, x: scores.score_batch(model, x, ["msp", "energy"]),
    "uncertainty.fit_mahalanobis": lambda model, x: scores.fit_mahalanobis(model, torch.cat([x, x]),
                                                                           torch.arange(2 * N) % K),
    "uncertainty.mc_dropout_probs": lambda model, x: bayesian.mc_dropout_probs(model, x, samples=2),
    "uncertainty.ensemble_probs": lambda model, x: bayesian.ensemble_probs([model, make_model(1)], x),
    "uncertainty.gradtrust": lambda model, x: trust.gradtrust(model, x),
    "uncertainty.purview": lambda model, x: trust.purview(model, x),
    "uncertainty.gradnorm": lambda model, x: trust.gradnorm(model, x),
    "uncertainty.tta": lambda model, x: augmentation.tta(model, x),
    "uncertainty.voice (contrast_cam)": lambda model, x: voice(model, x),
    "uncertainty.voice (smoothgrad)": lambda model, x: voice(model, x, explainer="smoothgrad", samples=2,
                                                             batch_size=2),
    "uncertainty.voice_map": lambda model, x: voice_map(model, x),
    "uncertainty.ua_backprop": lambda model, x: ua.ua_backprop(model, x, samples=2),
    "uncertainty.ua_backprop_details": lambda model, x: ua.ua_backprop_details(model, x, samples=2),
    "uncertainty.optimization_ua": lambda model, x: ua.optimization_ua(model, x, samples=2, steps=2,
                                                                       n_segments=4),
    "uncertainty.attention_mitigation": lambda model, x: ua.attention_mitigation(model, x, LABELS, {"m": MAPS}),
    "uncertainty.clue": lambda model, x: ua.clue(model, x, VAE, samples=2, steps=3, return_details=True),
    "uncertainty.delta_clue": lambda model, x: ua.delta_clue(model, x, VAE, samples=2, steps=3, delta=0.1),
    "fisher.per_sample_grads": lambda model, x: fisher.per_sample_grads(model, x),
    "fisher.gradient_norms": lambda model, x: fisher.gradient_norms(model, x),
    "fisher.fisher_trace_per_sample": lambda model, x: fisher.fisher_trace_per_sample(model, x),
    "fisher.fisher_information": lambda model, x: fisher.fisher_information(model, x, kind="empirical",
                                                                            labels=LABELS),
    "fisher.embeddings": lambda model, x: fisher.embeddings(model, x),
    "fisher.perceptual_components": lambda model, x: perceptual.perceptual_components(model, x, n_masks=4),
    "introspection.introspective_features": lambda model, x: introspection.introspective_features(model, x),
    "introspection.question_gradient_norms": lambda model, x: introspection.question_gradient_norms(model, x),
    "introspection.lemma1_terms": lambda model, x: introspection.lemma1_terms(model, x),
    "intervene.fgsm": lambda model, x: adversarial.fgsm(model, x),
    "intervene.pgd": lambda model, x: adversarial.pgd(model, x, steps=2),
    "intervene.robustness_curve": lambda model, x: adversarial.robustness_curve(model, x, LABELS, (0.0, 0.01),
                                                                                steps=2),
    "intervene.input_gradient": lambda model, x: adversarial.input_gradient(model, x),
    "intervene.intervention_probs": lambda model, x: causal.intervention_probs(model, signs(x), watermarks=[0]),
    "intervene.rise_and_shape": lambda model, x: causal.rise_and_shape(model, x, n_masks=8, grid_size=3),
    "intervene.shape": lambda model, x: causal.shape(model, x, n_masks=8, grid_size=3),
    "models.predict_logits": lambda model, x: training.predict_logits(model, x),
    "models.accuracy": lambda model, x: training.accuracy(model, x, LABELS),
}


#: public (model, images) functions outside the matrix, and why
NOT_IN_MATRIX = {
    "train_model": "changes the model (training); its images are cast by the same check_model_input",
    "accuracy_under_corruptions": "corrupts uint8 copies of the images (imagecorruptions), so the input dtype "
                                  "is gone before the model runs",
    "substrate_images": "an image transform (the model is read for its normalisation mean only): returns images "
                        "like x, in x's dtype; its values: test_image_transforms_keep_the_values_and_the_dtype_of_x",
    "gradcon_components": "needs a GradConCAE autoencoder, not a classifier",
    "gradcon_score": "needs a GradConCAE autoencoder, not a classifier",
    "gradcon_anomaly_score": "needs a GradConCAE autoencoder, not a classifier",
    "reconstruction_error": "needs a GradConCAE autoencoder, not a classifier",
    "vae_loss": "the training loss of a SmallVAE (models.train_vae), not a classifier",
}
PACKAGES = ["inferml_course.explain", "inferml_course.evaluate", "inferml_course.uncertainty",
            "inferml_course.uncertainty.voice", "inferml_course.uncertainty.attribution", "inferml_course.fisher",
            "inferml_course.introspection", "inferml_course.intervene", "inferml_course.models"]


def _public_model_image_functions():
    found = set()
    for name in PACKAGES:
        package = importlib.import_module(name)
        for attr in package.__all__:
            f = getattr(package, attr)
            if not callable(f) or inspect.isclass(f):
                continue
            try:
                params = list(inspect.signature(f).parameters)
            except (TypeError, ValueError):
                continue
            if len(params) >= 2 and params[0] == "model" and params[1] in ("x", "images", "signs"):
                found.add(f.__name__)
    return found


def test_image_transforms_keep_the_values_and_the_dtype_of_x():
    model = make_model()
    reference = ev.substrate_images(model, X, "blur")
    for variant in VARIANTS.values():
        other = ev.substrate_images(model, variant(X), "blur")
        assert other.dtype == variant(X).dtype and torch.allclose(other.float(), reference, atol=1e-6)


def test_the_matrix_covers_every_public_function_of_model_and_images():
    covered = {name.split(".")[-1].split(" ")[0] for name in ROWS} | set(NOT_IN_MATRIX)
    missing = _public_model_image_functions() - covered
    assert not missing, f"add these to ROWS (or NOT_IN_MATRIX, with the reason): {sorted(missing)}"


def _flat(result) -> torch.Tensor:
    """Every floating tensor of a result (a tensor, tuple, named tuple, dict or result object), flattened."""
    if isinstance(result, torch.Tensor):
        return result.detach().flatten().double() if result.is_floating_point() else result.flatten().double()
    if isinstance(result, (int, float)):
        return torch.tensor([float(result)], dtype=torch.float64)
    if isinstance(result, dict):
        parts = [_flat(v) for v in result.values()]
    elif isinstance(result, (tuple, list)):
        parts = [_flat(v) for v in result]
    elif hasattr(result, "__dict__"):
        parts = [_flat(v) for k, v in vars(result).items() if not k.startswith("_")]
    else:
        return torch.zeros(0, dtype=torch.float64)
    parts = [p for p in parts if p.numel()]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


def _dtypes(result) -> set:
    if isinstance(result, torch.Tensor):
        return {result.dtype} if result.is_floating_point() else set()
    items = result.values() if isinstance(result, dict) else result if isinstance(result, (tuple, list)) else \
        vars(result).values() if hasattr(result, "__dict__") else ()
    return set().union(*[_dtypes(v) for v in items]) if items else set()


VARIANTS = {"float64": lambda x: x.double(), "channels_last": lambda x: x.contiguous(memory_format=torch.channels_last),
            "float64 channels_last": lambda x: x.double().contiguous(memory_format=torch.channels_last)}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("name", list(ROWS))
def test_float64_and_channels_last_images_give_the_float32_numbers(name, variant):
    """The dtype rule of ``_core.perturb``: float64 (float32 values cast up) and channels-last images run in the
    model's dtype and give the numbers, shapes and dtypes of float32 contiguous images."""
    call = ROWS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = call(make_model(), X.clone())
        other = call(make_model(), VARIANTS[variant](X.clone()))
    a, b = _flat(other), _flat(reference)
    assert a.shape == b.shape and b.numel() > 0, name
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), (name, float((a - b).abs().max()))
    assert _dtypes(other) <= _dtypes(reference) | {torch.float32}, (name, _dtypes(other), _dtypes(reference))


# --- the engine itself ------------------------------------------------------------------------------------------

def test_chunk_rule():
    assert chunk_rule(None, 3, 10) == 10 and chunk_rule(None, 3, 0) == 1
    assert chunk_rule(7, 3, 10) == 2 and chunk_rule(2, 3, 10) == 1 and chunk_rule(100, 3, 10) == 10


def test_first_pass_and_score_jobs_read_the_targets_and_chunk_alike():
    model = make_model()
    x, t, score, predicted = first_pass(model, X.double(), None, "logit")
    assert x.dtype == torch.float32 and torch.equal(t, predicted)
    logits = model(X)
    assert torch.allclose(score, logits.gather(1, t[:, None])[:, 0], atol=1e-5)
    images = torch.cat([X, X.flip(-1)])
    targets = torch.arange(2 * N) % K
    for batch_size in (None, 1, 4):
        s, p = score_jobs(model, 2 * N, lambda a, b: images[a:b], targets, "probability", batch_size,
                          want_prediction=True)
        probs = torch.softmax(model(images), 1)
        assert torch.allclose(s, probs.gather(1, targets[:, None])[:, 0], atol=1e-6)
        assert torch.equal(p, probs.argmax(1))
    assert OUTPUTS == ("probability", "logit")


def test_masked_scores_blend_and_keep():
    model = make_model()
    base = torch.zeros_like(X)
    t = torch.zeros(N, dtype=torch.long)
    half = torch.full((2, 1, SIDE, SIDE), 0.5)
    kept = torch.ones((2, N, SIDE, SIDE), dtype=torch.bool)
    for batch_size in (None, 1, N + 1):
        s = masked_scores(model, X, t, lambda a, b: half[a:b], 2, base, "logit", batch_size)
        assert s.shape == (2, N) and torch.allclose(s[0], model(0.5 * X)[:, 0], atol=1e-5)
        k = masked_scores(model, X, t, lambda a, b: kept[a:b], 2, base, "logit", batch_size)
        assert torch.allclose(k[1], model(X)[:, 0], atol=1e-5)


def test_noise_and_paths_do_not_depend_on_the_chunks():
    x = X.double()
    sigma = noise_sigma(x, 0.1)
    assert sigma.shape == (N, 1, 1, 1) and torch.allclose(sigma.flatten(), 0.1 * (x.amax((1, 2, 3)) - x.amin((1, 2, 3))))
    whole = noisy_points(x, sigma, 3)(range(4))
    point = noisy_points(x, sigma, 3)
    assert torch.equal(torch.cat([point([0, 1]), point([2]), point([3])]), whole)
    model = make_model().double()
    weights = torch.full((4,), 0.25, dtype=torch.float64)

    def line(ks):
        return torch.cat([x * (k + 1) / 4 for k in ks]), None

    one, t = path_gradients(model, line, 4, x, None, None, weights)
    chunked, t2 = path_gradients(model, line, 4, x, None, N, weights)
    assert torch.equal(t, t2) and torch.allclose(one, chunked, atol=1e-12)
