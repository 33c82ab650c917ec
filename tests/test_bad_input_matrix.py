"""The bad-input matrix of issue 15, generated from the registries the way Captum generates its per-method tests.

Rows: every explainer of :data:`explain.METHODS` (through :func:`explain.explain`), every score of the
uncertainty registry (:func:`uncertainty.available_scores`, through :func:`scores.uncertainty`), the
evaluation games and metrics (insertion / deletion, heatmap masking, structure games, localisation, the
uncertainty and calibration metrics). Columns: the bad-input classes that apply to each row: wrong rank,
integer dtype, NaN / inf, empty batch, not a tensor, meta device; targets out of range, of the wrong length
or dtype; maps that do not match the images; degenerate counts (0, negative, bool, float, huge); numbers out
of their domain (temperatures <= 0, negative epsilons, thresholds outside [0, 1]).

Every cell must raise a ``ValueError`` / ``TypeError`` whose message names the argument, and every call
(also the raising ones) must leave the model as it was: modes, hooks, ``requires_grad``, ``.grad``,
buffers (``_hygiene.snapshot``). A second matrix checks the dtype rule: float64 images on a float32 model
either run (in the model's dtype) or get a message naming both dtypes.

The models are tiny (a width-4 SmallCNN on 12 x 12 images), the options are the fastest that still run the
method, and nothing is random without a seed.
"""
from __future__ import annotations

import re
import warnings

import pytest
import torch
from torch import nn

from inferml_course import evaluate as ev
from inferml_course import explain
from inferml_course.models import Ensemble, SmallCNN
from inferml_course.uncertainty import bayesian, calibration, metrics, scores

from _hygiene import assert_same, snapshot

N, K, SIDE = 2, 4, 12
ERRORS = (ValueError, TypeError)


def make_model(dtype=torch.float32, seed=0):
    """A width-4 SmallCNN with non-trivial batch-norm statistics, in a state no call may change: one block in
    training mode, a stale ``.grad`` and a frozen parameter."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SmallCNN(3, K, width=4, hidden=8).to(dtype).eval()
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
    model.features.block2.train()
    model.features.block3.conv1.weight.grad = torch.full_like(model.features.block3.conv1.weight, 0.5)
    model.features.block1.conv1.weight.requires_grad_(False)
    return model


def make_ensemble(dtype=torch.float32):
    ensemble = Ensemble([make_model(dtype, seed=0), make_model(dtype, seed=1)])
    return ensemble


X = torch.rand(N, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1))
MAPS = torch.rand(N, SIDE, SIDE, generator=torch.Generator().manual_seed(2))
MASKS = MAPS > 0.5
Y_FIT = torch.arange(8) % K
X_FIT = torch.rand(8, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(3))


def _stats():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return scores.fit_mahalanobis(make_model(), X_FIT, Y_FIT)


STATS = _stats()

# ------------------------------------------------------------------------------------------- bad classes

#: bad image batches: name -> make it from a good batch
BAD_X = {
    "single image (C, H, W)": lambda b: b[0],
    "5-D": lambda b: b[None],
    "2-D": lambda b: b[:, 0, 0],
    "integer dtype": lambda b: (b * 255).to(torch.uint8),
    "bool dtype": lambda b: b > 0.5,
    "NaN": lambda b: b.clone().index_fill_(0, torch.tensor([1]), float("nan")),
    "inf": lambda b: b.clone().index_fill_(0, torch.tensor([0]), float("inf")),
    "empty batch": lambda b: b[:0],
    "a list": lambda b: b.tolist(),
    "meta device": lambda b: b.to("meta"),
}

#: bad targets for N images and K classes
BAD_TARGETS = {
    "target = K": K,
    "target = -1": -1,
    "target tensor out of range": torch.tensor([0, K + 3]),
    "target of the wrong length": torch.tensor([0, 1, 2]),
    "float target tensor": torch.tensor([0.0, 1.0]),
    "float target": 1.5,
    "bool target": True,
    "2-D target": torch.zeros(N, 1, dtype=torch.long),
}

#: bad maps for images X
BAD_MAPS = {
    "maps of another size": torch.rand(N, SIDE + 1, SIDE),
    "maps for another batch": torch.rand(N + 1, SIDE, SIDE),
    "a single map (H, W)": torch.rand(SIDE, SIDE),
    "maps with channels (N, C, H, W)": torch.rand(N, 3, SIDE, SIDE),
    "NaN maps": MAPS.clone().index_put_((torch.tensor([0]), torch.tensor([1]), torch.tensor([1])),
                                        torch.tensor(float("nan"))),
    "integer maps": (MAPS * 10).long(),
    "maps as a list": MAPS.tolist(),
}

# ---------------------------------------------------------------------------------------- the registries

#: options that make every explainer fast on 12 x 12 images
FAST = {
    "smoothgrad": dict(samples=2),
    "integrated_gradients": dict(steps=4),
    "blur_ig": dict(steps=4),
    "occlusion": dict(window=4, stride=4),
    "rise": dict(n_masks=8, grid_size=3),
    "lime": dict(samples=8, n_segments=4),
    "kernel_shap": dict(samples=8, n_segments=4),
}

#: degenerate counts and out-of-domain numbers per explainer: (options, the argument the message names)
BAD_EXPLAIN_OPTIONS = {
    "smoothgrad": [({"samples": 0}, "samples"), ({"samples": -2}, "samples"), ({"samples": True}, "samples"),
                   ({"samples": 2.0}, "samples"), ({"noise": -1.0}, "noise"), ({"noise": float("nan")}, "noise"),
                   ({"batch_size": 0}, "batch_size"), ({"channels": "bogus"}, "channels")],
    "integrated_gradients": [({"steps": 0}, "steps"), ({"steps": -1}, "steps"), ({"steps": True}, "steps"),
                             ({"steps": 2.5}, "steps"), ({"baseline": torch.zeros(N, 3, SIDE + 1, SIDE)},
                                                         "baseline"),
                             ({"baseline": float("nan")}, "baseline")],
    "blur_ig": [({"steps": 0}, "steps"), ({"max_sigma": 0.0}, "max_sigma"), ({"max_sigma": -1.0}, "max_sigma"),
                ({"grad_step": -0.1}, "grad_step")],
    "occlusion": [({"window": 0}, "window"), ({"stride": 0}, "stride"), ({"window": SIDE + 20}, "window"),
                  ({"window": -1}, "window"), ({"stride": True}, "stride"), ({"output": "bogus"}, "output"),
                  ({"baseline": "bogus"}, "baseline")],
    "rise": [({"n_masks": 0}, "n_masks"), ({"n_masks": -3}, "n_masks"), ({"n_masks": True}, "n_masks"),
             ({"grid_size": 0}, "grid_size"), ({"p_keep": 0.0}, "p_keep"), ({"p_keep": 1.5}, "p_keep"),
             ({"p_keep": -0.1}, "p_keep"), ({"seed": 1.5}, "seed")],
    "lime": [({"samples": 0}, "samples"), ({"n_segments": 0}, "n_segments"), ({"kernel_width": 0.0}, "kernel_width"),
             ({"kernel_width": -1.0}, "kernel_width"), ({"ridge": -1.0}, "ridge"),
             ({"segments": torch.zeros(N, SIDE + 1, SIDE, dtype=torch.long)}, "segments")],
    "kernel_shap": [({"samples": 0}, "samples"), ({"samples": -1}, "samples"), ({"n_segments": 0}, "n_segments"),
                    ({"segments": torch.zeros(N + 1, SIDE, SIDE, dtype=torch.long)}, "segments")],
    "grad_cam": [({"layer": "no.such.layer"}, "layer")],
    "contrast_cam": [({"contrast": K}, "contrast"), ({"contrast": -1}, "contrast")],
}


def _explainer(name):
    return lambda model, x, target=None, **o: explain.explain(name, model, x, target, **{**FAST.get(name, {}), **o})


def _score(name):
    options = {"mc_dropout": dict(samples=2), "mc_dropout_mi": dict(samples=2), "mahalanobis": dict(stats=STATS)}
    return lambda model, x, **o: scores.uncertainty(name, model, x, **{**options.get(name, {}), **o})


SCORE_NAMES = scores.available_scores()
ENSEMBLE_SCORES = {n for n in SCORE_NAMES if n.startswith("ensemble")}


def _model_for(name):
    return make_ensemble() if name in ENSEMBLE_SCORES else make_model()


#: every function that runs a model on images x: name -> (call(model, x), builds its model)
MODEL_RUNNERS = {
    **{f"explain:{m}": (_explainer(m), make_model) for m in explain.METHODS},
    **{f"score:{s}": (_score(s), (lambda s=s: _model_for(s))) for s in SCORE_NAMES},
    "scores.odin_perturb": (lambda model, x: scores.odin_perturb(model, x), make_model),
    "scores.compute_scores": (lambda model, x: scores.compute_scores(model, x, ["msp", "gradtrust"]), make_model),
    "scores.fit_mahalanobis": (lambda model, x: scores.fit_mahalanobis(model, x, Y_FIT[:len(x)]), make_model),
    "bayesian.mc_dropout_probs": (lambda model, x: bayesian.mc_dropout_probs(model, x, samples=2), make_model),
    "evaluate.insertion_deletion": (lambda model, x: ev.insertion_deletion(model, x, _maps_for(x), steps=4),
                                    make_model),
    "evaluate.heatmap_masking": (lambda model, x: ev.heatmap_masking(model, x, _maps_for(x)), make_model),
    "evaluate.structure_curves": (lambda model, x: ev.structure_curves(model, x, _maps_for(x), thresholds=(0.5,)),
                                  make_model),
    "evaluate.game_optimized_map": (lambda model, x: ev.game_optimized_map(model, x, steps=4), make_model),
    "evaluate.masked_images": (lambda model, x: ev.masked_images(model, x, _maps_for(x)), make_model),
    "explain.activation_maps": (lambda model, x: explain.activation_maps(model, x), make_model),
    "explain.embeddings": (lambda model, x: explain.embeddings(model, x), make_model),
    "explain.max_activating_patches": (lambda model, x: explain.max_activating_patches(model, x, k=1), make_model),
}
#: the functions above whose image argument is not called x
IMAGE_ARGUMENT = {"scores.fit_mahalanobis": "images", "explain.embeddings": "x",
                  "explain.max_activating_patches": "images"}
#: the good batch each function is tried on (fitting class means needs every class)
GOOD_BATCH = {"scores.fit_mahalanobis": X_FIT}


def _maps_for(x):
    """Good maps for a (possibly bad) batch x: the bad batch must be what the error is about."""
    if isinstance(x, torch.Tensor) and x.dim() == 4 and not x.is_meta:
        return torch.rand(x.shape[0], x.shape[2], x.shape[3], generator=torch.Generator().manual_seed(4))
    return MAPS


#: functions that take a target: name -> call(model, x, target)
TARGETED = {
    **{f"explain:{m}": _explainer(m) for m in explain.METHODS},
    "evaluate.insertion_deletion": lambda model, x, t: ev.insertion_deletion(model, x, MAPS, t, steps=4),
    "evaluate.heatmap_masking": lambda model, x, t: ev.heatmap_masking(model, x, MAPS, t),
    "evaluate.structure_curves": lambda model, x, t: ev.structure_curves(model, x, MAPS, t, thresholds=(0.5,)),
    "evaluate.game_optimized_map": lambda model, x, t: ev.game_optimized_map(model, x, t, steps=4),
}

#: functions that take maps of the images: name -> call(model, maps)
WITH_MAPS = {
    "evaluate.insertion_deletion": lambda model, m: ev.insertion_deletion(model, X, m, steps=4),
    "evaluate.heatmap_masking": lambda model, m: ev.heatmap_masking(model, X, m),
    "evaluate.structure_curves": lambda model, m: ev.structure_curves(model, X, m, thresholds=(0.5,)),
    "evaluate.masked_images": lambda model, m: ev.masked_images(model, X, m),
    "evaluate.pointing_game": lambda model, m: ev.pointing_game(m, MASKS),
    "evaluate.energy_pointing_game": lambda model, m: ev.energy_pointing_game(m, MASKS),
    "evaluate.iou": lambda model, m: ev.iou(m, MASKS),
    "evaluate.correlation": lambda model, m: ev.correlation(m, MASKS),
    "evaluate.pixel_accuracy": lambda model, m: ev.pixel_accuracy(m, MASKS),
    "evaluate.localization_scores": lambda model, m: ev.localization_scores(m, MASKS),
    "explain.overlay": lambda model, m: explain.overlay(X, m),
}
#: maps that are fine for a function that does not compare them with images or masks
_SHAPE_ONLY = {"maps of another size", "maps for another batch", "maps with channels (N, C, H, W)"}

#: everything else: id -> (call(model), the argument the message names)
OTHER = {
    # counts of the games
    "insertion_deletion steps=0": (lambda m: ev.insertion_deletion(m, X, MAPS, steps=0), "steps"),
    "insertion_deletion steps=-1": (lambda m: ev.insertion_deletion(m, X, MAPS, steps=-1), "steps"),
    "insertion_deletion steps=True": (lambda m: ev.insertion_deletion(m, X, MAPS, steps=True), "steps"),
    "insertion_deletion steps=2.5": (lambda m: ev.insertion_deletion(m, X, MAPS, steps=2.5), "steps"),
    "insertion_deletion steps=10**6": (lambda m: ev.insertion_deletion(m, X, MAPS, steps=10**6), "steps"),
    "insertion_deletion substrate": (lambda m: ev.insertion_deletion(m, X, MAPS, steps=4, substrate="bogus"),
                                     "substrate"),
    "insertion_deletion output": (lambda m: ev.insertion_deletion(m, X, MAPS, steps=4, output="bogus"), "output"),
    "insertion_deletion games": (lambda m: ev.insertion_deletion(m, X, MAPS, steps=4, games=("bogus",)), "games"),
    "insertion_deletion blur_sigma<0": (lambda m: ev.insertion_deletion(m, X, MAPS, steps=4, blur_sigma=-1.0),
                                        "blur_sigma"),
    "insertion_deletion batch_size=0": (lambda m: ev.insertion_deletion(m, X, MAPS, steps=4, batch_size=0),
                                        "batch_size"),
    "insertion_deletion substrate shape": (lambda m: ev.insertion_deletion(m, X, MAPS, steps=4,
                                                                           substrate=torch.zeros(5, SIDE, SIDE)),
                                           "substrate"),
    "insertion_curve steps=0": (lambda m: ev.insertion_curve(m, X, MAPS, steps=0), "steps"),
    "deletion_curve steps=0": (lambda m: ev.deletion_curve(m, X, MAPS, steps=0), "steps"),
    "game_optimized_map steps=0": (lambda m: ev.game_optimized_map(m, X, steps=0), "steps"),
    "game_optimized_map steps=10**6": (lambda m: ev.game_optimized_map(m, X, steps=10**6), "steps"),
    "game_optimized_map game": (lambda m: ev.game_optimized_map(m, X, game="bogus", steps=4), "game"),
    "heatmap_masking scaling": (lambda m: ev.heatmap_masking(m, X, MAPS, scaling="bogus"), "scaling"),
    "heatmap_masking substrate": (lambda m: ev.heatmap_masking(m, X, MAPS, substrate="bogus"), "substrate"),
    "heatmap_masking batch_size=-1": (lambda m: ev.heatmap_masking(m, X, MAPS, batch_size=-1), "batch_size"),
    "structure_curves threshold 1.5": (lambda m: ev.structure_curves(m, X, MAPS, thresholds=(1.5,)), "thresholds"),
    "structure_curves threshold -0.1": (lambda m: ev.structure_curves(m, X, MAPS, thresholds=(-0.1,)), "thresholds"),
    "structure_curves threshold NaN": (lambda m: ev.structure_curves(m, X, MAPS, thresholds=(float("nan"),)),
                                       "thresholds"),
    "structure_curves no thresholds": (lambda m: ev.structure_curves(m, X, MAPS, thresholds=()), "thresholds"),
    "structure_curves mode": (lambda m: ev.structure_curves(m, X, MAPS, mode="bogus"), "mode"),
    "step_counts steps=0": (lambda m: ev.step_counts(16, 0), "steps"),
    "step_counts steps=-1": (lambda m: ev.step_counts(16, -1), "steps"),
    "step_counts steps=True": (lambda m: ev.step_counts(16, True), "steps"),
    "step_counts steps=2.0": (lambda m: ev.step_counts(16, 2.0), "steps"),
    "step_counts steps > pixels": (lambda m: ev.step_counts(16, 17), "steps"),
    "step_counts pixels=0": (lambda m: ev.step_counts(0, 4), "pixels"),
    "step_counts pixels=-5": (lambda m: ev.step_counts(-5, 4), "pixels"),
    "pixel_ranks 2-D": (lambda m: ev.pixel_ranks(MAPS[0]), "maps"),
    "pixel_ranks integer": (lambda m: ev.pixel_ranks((MAPS * 9).long()), "maps"),
    "auc NaN curve": (lambda m: ev.auc(torch.tensor([[0.1, float("nan"), 0.3]])), "curves"),
    "auc fractions of another length": (lambda m: ev.auc(torch.rand(2, 5), torch.linspace(0, 1, 4)), "fractions"),
    "auc a single point": (lambda m: ev.auc(torch.rand(2, 1)), "curves"),
    # localisation
    "pointing_game masks of another size": (lambda m: ev.pointing_game(MAPS, MASKS[:, :-1]), "masks"),
    "pointing_game masks for another batch": (lambda m: ev.pointing_game(MAPS, MASKS[:1]), "masks"),
    "pointing_game tolerance=-1": (lambda m: ev.pointing_game(MAPS, MASKS, tolerance=-1), "tolerance"),
    "pointing_game tolerance=1.5": (lambda m: ev.pointing_game(MAPS, MASKS, tolerance=1.5), "tolerance"),
    "pointing_game masks not binary": (lambda m: ev.pointing_game(MAPS, MAPS), "masks"),
    "iou threshold 1.5": (lambda m: ev.iou(MAPS, MASKS, threshold=1.5), "threshold"),
    "iou threshold -0.1": (lambda m: ev.iou(MAPS, MASKS, threshold=-0.1), "threshold"),
    "iou threshold NaN": (lambda m: ev.iou(MAPS, MASKS, threshold=float("nan")), "threshold"),
    "iou masks of another size": (lambda m: ev.iou(MAPS, MASKS[:, 1:]), "masks"),
    "pixel_accuracy threshold 2": (lambda m: ev.pixel_accuracy(MAPS, MASKS, threshold=2.0), "threshold"),
    "binarize threshold 1.5": (lambda m: ev.binarize(MAPS, threshold=1.5), "threshold"),
    "binarize threshold True": (lambda m: ev.binarize(MAPS, threshold=True), "threshold"),
    "localization_scores threshold -1": (lambda m: ev.localization_scores(MAPS, MASKS, threshold=-1.0), "threshold"),
    "energy_pointing_game masks for another batch": (lambda m: ev.energy_pointing_game(MAPS, MASKS[:1]), "masks"),
    "correlation masks of another size": (lambda m: ev.correlation(MAPS, MASKS[:, :, 1:]), "masks"),
    "mask_fraction 2-D": (lambda m: ev.mask_fraction(MASKS[0]), "masks"),
    # masking metrics
    "average_drop lengths differ": (lambda m: ev.average_drop(torch.rand(3), torch.rand(2)), "masked"),
    "average_drop NaN": (lambda m: ev.average_drop(torch.tensor([0.5, float("nan")]), torch.rand(2)), "full"),
    "increase_in_confidence lengths differ": (lambda m: ev.increase_in_confidence(torch.rand(3), torch.rand(4)),
                                              "masked"),
    "win_percentage lengths differ": (lambda m: ev.win_percentage(torch.rand(3), torch.rand(2)), "drops_b"),
    "masked_accuracy lengths differ": (lambda m: ev.masked_accuracy(torch.tensor([0, 1, 1]), torch.tensor([0, 1])),
                                       "targets"),
    "expected_score empty": (lambda m: ev.expected_score(torch.zeros(0)), "masked"),
    "to_mask scaling": (lambda m: ev.to_mask(MAPS, scaling="bogus"), "scaling"),
    "rank_correlation shapes differ": (lambda m: ev.rank_correlation(MAPS, MAPS[:1]), "b"),
    "gaussian_blur 3-D": (lambda m: ev.gaussian_blur(X[0], 1.0), "x"),
    "gaussian_blur sigma<0": (lambda m: ev.gaussian_blur(X, -1.0), "sigma"),
    # explain helpers
    "rise_masks n_masks=0": (lambda m: explain.perturbation.rise_masks(0, (SIDE, SIDE)), "n_masks"),
    "rise_masks p_keep=1.5": (lambda m: explain.perturbation.rise_masks(4, (SIDE, SIDE), p_keep=1.5), "p_keep"),
    "superpixels 3-D": (lambda m: explain.superpixels(X[0]), "x"),
    "superpixels n_segments=0": (lambda m: explain.superpixels(X, n_segments=0), "n_segments"),
    "superpixels compactness<0": (lambda m: explain.superpixels(X, compactness=-1.0), "compactness"),
    "quadrature steps=0": (lambda m: explain.quadrature("riemann_trapezoid", 0), "steps"),
    "overlay alpha=2": (lambda m: explain.overlay(X, MAPS, alpha=2.0), "alpha"),
    "normalize_maps percentile=0": (lambda m: explain.normalize_maps(MAPS, "percentile", percentile=0), "percentile"),
    "nearest_neighbors k=0": (lambda m: explain.nearest_neighbors(m, X, X_FIT, k=0), "k"),
    "nearest_neighbors k > gallery": (lambda m: explain.nearest_neighbors(m, X, X_FIT, k=50), "k"),
    "nearest_neighbors metric": (lambda m: explain.nearest_neighbors(m, X, X_FIT, metric="bogus"), "metric"),
    "nearest_neighbors 3-D gallery": (lambda m: explain.nearest_neighbors(m, X, X_FIT[0]), "gallery"),
    "neighbor_agreement k=0": (lambda m: explain.neighbor_agreement(torch.rand(6, 3), torch.arange(6) % 2, k=0),
                                "k"),
    "neighbor_agreement labels of another length": (
        lambda m: explain.neighbor_agreement(torch.rand(6, 3), torch.arange(5) % 2, k=2), "labels"),
    "max_activating_patches k=0": (lambda m: explain.max_activating_patches(m, X, k=0), "k"),
    "project method": (lambda m: explain.project(torch.rand(6, 3), method="bogus"), "method"),
    "project NaN features": (lambda m: explain.project(torch.full((6, 3), float("nan"))), "features"),
    # uncertainty scores: numbers out of their domain
    "energy temperature=0": (lambda m: scores.uncertainty("energy", m, X, temperature=0.0), "temperature"),
    "energy temperature=-1": (lambda m: scores.uncertainty("energy", m, X, temperature=-1.0), "temperature"),
    "energy temperature=NaN": (lambda m: scores.energy(m, X, temperature=float("nan")), "temperature"),
    "energy temperature=True": (lambda m: scores.energy(m, X, temperature=True), "temperature"),
    "odin temperature=0": (lambda m: scores.odin(m, X, temperature=0.0), "temperature"),
    "odin temperature=-5": (lambda m: scores.uncertainty("odin", m, X, temperature=-5.0), "temperature"),
    "odin epsilon=-1": (lambda m: scores.odin(m, X, epsilon=-1.0), "epsilon"),
    "odin epsilon=NaN": (lambda m: scores.odin(m, X, epsilon=float("nan")), "epsilon"),
    "odin_perturb epsilon=-1": (lambda m: scores.odin_perturb(m, X, epsilon=-1.0), "epsilon"),
    "odin_perturb temperature=0": (lambda m: scores.odin_perturb(m, X, temperature=0.0), "temperature"),
    "odin batch_size=0": (lambda m: scores.odin(m, X, batch_size=0), "batch_size"),
    "msp batch_size=0": (lambda m: scores.msp(m, X, batch_size=0), "batch_size"),
    "msp batch_size=True": (lambda m: scores.msp(m, X, batch_size=True), "batch_size"),
    "mc_dropout samples=0": (lambda m: scores.uncertainty("mc_dropout", m, X, samples=0), "samples"),
    "mc_dropout samples=-1": (lambda m: bayesian.mc_dropout(m, X, samples=-1), "samples"),
    "mc_dropout samples=True": (lambda m: bayesian.mc_dropout(m, X, samples=True), "samples"),
    "mc_dropout seed=1.5": (lambda m: bayesian.mc_dropout(m, X, samples=2, seed=1.5), "seed"),
    "mc_dropout measure": (lambda m: bayesian.mc_dropout(m, X, samples=2, measure="bogus"), "measure"),
    "ensemble of a plain model": (lambda m: bayesian.ensemble(m, X), "model"),
    "mahalanobis without stats": (lambda m: scores.mahalanobis(m, X), "stats"),
    "mahalanobis stats of another model": (
        lambda m: scores.mahalanobis(m, X, stats=scores.MahalanobisStats(torch.zeros(K, 3), torch.eye(3))), "stats"),
    "fit_mahalanobis labels of another length": (lambda m: scores.fit_mahalanobis(m, X_FIT, Y_FIT[:5]), "labels"),
    "fit_mahalanobis float labels": (lambda m: scores.fit_mahalanobis(m, X_FIT, Y_FIT.float()), "labels"),
    "fit_mahalanobis labels out of range": (lambda m: scores.fit_mahalanobis(m, X_FIT, Y_FIT + K), "labels"),
    "fit_mahalanobis a class missing": (lambda m: scores.fit_mahalanobis(m, X_FIT, Y_FIT % 2), "labels"),
    "fit_mahalanobis ridge<0": (lambda m: scores.fit_mahalanobis(m, X_FIT, Y_FIT, ridge=-1.0), "ridge"),
    "uncertainty unknown name": (lambda m: scores.uncertainty("bogus", m, X), "score name"),
    "compute_scores unknown name": (lambda m: scores.compute_scores(m, X, ["bogus"]), "score name"),
    "compute_scores samples=0": (lambda m: scores.compute_scores(m, X, ["mc_dropout"], samples=0), "samples"),
    "compute_scores odin epsilon=-1": (lambda m: scores.compute_scores(m, X, ["odin"], odin_options={"epsilon": -1.0}),
                                       "epsilon"),
    "logit_scores 1-D": (lambda m: scores.logit_scores(torch.rand(4)), "logits"),
    "logit_scores NaN": (lambda m: scores.logit_scores(torch.tensor([[0.0, float("nan")]])), "logits"),
    # uncertainty metrics
    "auroc lengths differ": (lambda m: metrics.auroc(torch.rand(4), torch.tensor([0, 1, 0])), "labels"),
    "auroc NaN scores": (lambda m: metrics.auroc(torch.tensor([0.1, float("nan")]), torch.tensor([0, 1])), "scores"),
    "auroc labels not binary": (lambda m: metrics.auroc(torch.rand(3), torch.tensor([0, 1, 2])), "labels"),
    "auroc one class": (lambda m: metrics.auroc(torch.rand(3), torch.tensor([1, 1, 1])), "labels"),
    "auroc 2-D scores": (lambda m: metrics.auroc(torch.rand(3, 1), torch.tensor([0, 1, 1])), "scores"),
    "fpr_at_tpr tpr=1.5": (lambda m: metrics.fpr_at_tpr(torch.rand(4), torch.rand(4), tpr=1.5), "tpr"),
    "fpr_at_tpr tpr=-0.1": (lambda m: metrics.fpr_at_tpr(torch.rand(4), torch.rand(4), tpr=-0.1), "tpr"),
    "fpr_at_tpr tpr=NaN": (lambda m: metrics.fpr_at_tpr(torch.rand(4), torch.rand(4), tpr=float("nan")), "tpr"),
    "fpr_at_tpr empty ood": (lambda m: metrics.fpr_at_tpr(torch.rand(4), torch.zeros(0)), "ood_scores"),
    "fpr_at_tpr positive": (lambda m: metrics.fpr_at_tpr(torch.rand(4), torch.rand(4), positive="bogus"),
                            "positive"),
    "fpr_at_tpr rule": (lambda m: metrics.fpr_at_tpr(torch.rand(4), torch.rand(4), rule="bogus"), "rule"),
    "auac n_points=0": (lambda m: metrics.auac(torch.rand(4), torch.tensor([0, 1, 1, 0]), n_points=0), "n_points"),
    "auac n_points=True": (lambda m: metrics.auac(torch.rand(4), torch.tensor([0, 1, 1, 0]), n_points=True),
                           "n_points"),
    "auac kind": (lambda m: metrics.auac(torch.rand(4), torch.tensor([0, 1, 1, 0]), kind="bogus"), "kind"),
    "auac correct of another length": (lambda m: metrics.auac(torch.rand(4), torch.tensor([0, 1, 1])), "correct"),
    "aufc labels of another length": (lambda m: metrics.aufc(torch.rand(4), torch.tensor([0, 1, 1, 0]),
                                                             torch.tensor([0, 1, 1])), "labels"),
    "aurc method": (lambda m: metrics.aurc(torch.rand(4), torch.tensor([0, 1, 1, 0]), method="bogus"), "method"),
    "aurc empty": (lambda m: metrics.aurc(torch.zeros(0), torch.zeros(0, dtype=torch.bool)), "scores"),
    # calibration
    "ece n_bins=0": (lambda m: calibration.expected_calibration_error(_probs(), _labels(), n_bins=0), "n_bins"),
    "ece n_bins=-1": (lambda m: calibration.expected_calibration_error(_probs(), _labels(), n_bins=-1), "n_bins"),
    "ece n_bins=True": (lambda m: calibration.expected_calibration_error(_probs(), _labels(), n_bins=True), "n_bins"),
    "ece logits": (lambda m: calibration.expected_calibration_error(torch.randn(5, 3, generator=_g()), _labels()),
                   "probs"),
    "ece labels of another length": (lambda m: calibration.expected_calibration_error(_probs(), _labels()[:3]),
                                     "labels"),
    "ece labels out of range": (lambda m: calibration.expected_calibration_error(_probs(), _labels() + 3), "labels"),
    "ece rule": (lambda m: calibration.expected_calibration_error(_probs(), _labels(), rule="bogus"), "rule"),
    "adaptive_ece n_bins=0": (lambda m: calibration.adaptive_ece(_probs(), _labels(), n_bins=0), "n_bins"),
    "brier float labels": (lambda m: calibration.brier_score(_probs(), _labels().float()), "labels"),
    "mean_nll NaN probs": (lambda m: calibration.mean_nll(torch.full((5, 3), float("nan")), _labels()), "probs"),
    "reliability_bins confidences > 1": (lambda m: calibration.reliability_bins(torch.tensor([0.5, 1.5]),
                                                                               torch.tensor([1, 0])), "confidences"),
    "fit_temperature max_iter=0": (lambda m: calibration.fit_temperature(torch.randn(5, 3, generator=_g()),
                                                                         _labels(), max_iter=0), "max_iter"),
    "fit_temperature init=0": (lambda m: calibration.fit_temperature(torch.randn(5, 3, generator=_g()), _labels(),
                                                                     init=0.0), "init"),
    "fit_temperature init=-1": (lambda m: calibration.fit_temperature(torch.randn(5, 3, generator=_g()), _labels(),
                                                                      init=-1.0), "init"),
    "temperature_scale temperature=0": (lambda m: calibration.temperature_scale(torch.randn(5, 3, generator=_g()),
                                                                                0.0), "temperature"),
    "temperature_scale temperature=-1": (lambda m: calibration.temperature_scale(torch.randn(5, 3, generator=_g()),
                                                                                 -1.0), "temperature"),
}


def _g():
    return torch.Generator().manual_seed(5)


def _probs():
    return torch.softmax(torch.randn(5, 3, generator=_g()), 1)


def _labels():
    return torch.tensor([0, 1, 2, 0, 1])


# ------------------------------------------------------------------------------------------------ runner

def _names(message: str, argument: str) -> bool:
    """The message names ``argument`` as a word (``x``, ``x[None]``, ``target=``, ``maps['map']``)."""
    return re.search(rf"(?<![\w.]){re.escape(argument)}(?![\w])", message) is not None


def refuses(call, model, argument):
    """``call(model)`` raises a ValueError / TypeError naming ``argument``, and ``model`` is as it was."""
    before = snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the training-mode block makes the calls warn
        with pytest.raises(ERRORS) as info:
            call(model)
    assert _names(str(info.value), argument), f"the message must name {argument!r}: {info.value}"
    assert_same(before, snapshot(model))


X_CASES = [(name, bad) for name in MODEL_RUNNERS for bad in BAD_X]


@pytest.mark.parametrize("name, bad", X_CASES, ids=[f"{n}-{b}" for n, b in X_CASES])
def test_bad_images(name, bad):
    call, build = MODEL_RUNNERS[name]
    refuses(lambda model: call(model, BAD_X[bad](GOOD_BATCH.get(name, X))), build(), IMAGE_ARGUMENT.get(name, "x"))


TARGET_CASES = [(name, bad) for name in TARGETED for bad in BAD_TARGETS]


@pytest.mark.parametrize("name, bad", TARGET_CASES, ids=[f"{n}-{b}" for n, b in TARGET_CASES])
def test_bad_targets(name, bad):
    refuses(lambda model: TARGETED[name](model, X, BAD_TARGETS[bad]), make_model(), "target")


MAP_CASES = [(name, bad) for name in WITH_MAPS for bad in BAD_MAPS
             if not (name == "evaluate.pixel_accuracy" and bad == "integer maps")]


@pytest.mark.parametrize("name, bad", MAP_CASES, ids=[f"{n}-{b}" for n, b in MAP_CASES])
def test_bad_maps(name, bad):
    refuses(lambda model: WITH_MAPS[name](model, BAD_MAPS[bad]), make_model(), "maps")


def _option_cases():
    for name, rows in BAD_EXPLAIN_OPTIONS.items():
        for row in rows:
            (options, argument), marks = (row.values, row.marks) if hasattr(row, "marks") else (row, ())
            yield pytest.param(name, options, argument, id=f"{name}-{options!r}", marks=marks)


OPTION_CASES = list(_option_cases())


@pytest.mark.parametrize("name, options, argument", OPTION_CASES)
def test_bad_explainer_options(name, options, argument):
    refuses(lambda model: _explainer(name)(model, X, None, **options), make_model(), argument)


@pytest.mark.parametrize("case", list(OTHER))
def test_bad_options_and_metric_inputs(case):
    call, argument = OTHER[case]
    refuses(call, make_model(), argument)


def count_cases() -> int:
    """How many bad inputs the matrix tries (the closing note of issue 15 reports it)."""
    return len(X_CASES) + len(TARGET_CASES) + len(MAP_CASES) + len(OPTION_CASES) + len(OTHER)


# ------------------------------------------------------------------------------------------- the dtype rule

def _as_tensor(result):
    if isinstance(result, torch.Tensor):
        return result
    if isinstance(result, tuple) and isinstance(result[0], torch.Tensor):
        return result[0]
    if isinstance(result, dict):
        return torch.cat([v.flatten().double() for v in result.values() if isinstance(v, torch.Tensor)])
    for field in ("insertion", "scores", "keep", "means", "curves", "full"):
        value = getattr(result, field, None)
        if value is not None:
            return _as_tensor(value)
    raise AssertionError(f"cannot read a tensor from {type(result).__name__}")


@pytest.mark.parametrize("name", list(MODEL_RUNNERS))
def test_float64_images_on_a_float32_model(name):
    """The dtype rule: float64 images on a float32 model run (in float32: the same numbers as float32 images), or
    the error names both dtypes."""
    call, build = MODEL_RUNNERS[name]
    x = GOOD_BATCH.get(name, X)
    model = build()
    before = snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            wide = call(model, x.double())
        except ERRORS as error:
            assert "float64" in str(error) and "float32" in str(error), str(error)
        else:
            narrow = call(build(), x)
            a, b = _as_tensor(wide), _as_tensor(narrow)
            assert torch.isfinite(a).all()
            assert a.shape == b.shape and torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-5), name
    assert_same(before, snapshot(model))


def _direct_cases():
    options = {"mc_dropout": dict(samples=2), "mc_dropout_mi": dict(samples=2), "mahalanobis": dict(stats=STATS)}
    for m in explain.METHODS:
        yield m, (lambda model, x, m=m: explain.method(m)(model, x, **FAST.get(m, {}))), make_model
    for s in SCORE_NAMES:
        yield s, (lambda model, x, s=s: scores.get_score(s).function(model, x, **options.get(s, {}))), \
            (lambda s=s: _model_for(s))


DIRECT = [pytest.param(name, call, build, id=name) for name, call, build in _direct_cases()]


@pytest.mark.parametrize("name, call, build", DIRECT)
def test_direct_functions_follow_the_dtype_rule(name, call, build):
    """The explainers and score functions called directly (not through explain.explain / the score registry)
    also run float64 images on a float32 model, with the numbers of float32 images."""
    model = build()
    before = snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wide, narrow = call(model, X.double()), call(build(), X)
    assert wide.dtype == narrow.dtype and torch.allclose(wide, narrow, rtol=1e-4, atol=1e-5), name
    assert_same(before, snapshot(model))


def test_sensible_returns_are_not_errors():
    """Documented edge values that are not bad input: an empty map batch has an empty ranking, as many steps
    as pixels is the finest game, one step is the two end points."""
    assert ev.pixel_ranks(MAPS[:0]).shape == (0, SIDE * SIDE)
    assert torch.equal(ev.step_counts(16, 16), torch.arange(17))
    assert torch.equal(ev.step_counts(16, 1), torch.tensor([0, 16]))
