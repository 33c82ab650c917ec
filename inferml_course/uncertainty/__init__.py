"""Uncertainty at inference: scores, sampling methods, gradient-based trust, calibration and metrics.

Submodules load lazily (``import inferml_course.uncertainty`` imports nothing heavy)::

    from inferml_course import uncertainty as uq
    u = uq.uncertainty("gradtrust", model, x)        # (N,), higher = more uncertain
    table = uq.compute_scores(model, x)              # every applicable registry score, shared forward
    uq.metrics.auac(u, correct)                      # area under the accuracy curve, higher is better

==============  =====================================================================================
module          contents
==============  =====================================================================================
``scores``      MSP, entropy, margin, NLL, max logit, energy, ODIN, Mahalanobis; the registry ``SCORES``
``registry``    ``@score``: each score's facts (direction, label, shared-pass rule) beside its function
``bayesian``    MC dropout, deep ensembles, total = aleatoric + epistemic
``trust``       GradTrust (released; a top-k reconstruction in both orientations, ``ratio=``), Purview,
                GradNorm (Huang et al.'s, or the GradTrust demo's with ``variant="gradtrust_demo"``)
``calibration`` ECE (bin rules), MCE, adaptive ECE, Brier, NLL, temperature scaling
``conformal``   split conformal prediction sets (LAC, APS, RAPS; randomised, class-wise), coverage, set size
``metrics``     AUROC, FPR at 95 % TPR, AUAC / AUFC, risk-coverage and AURC
``toy``         the 2-D moons toy with tiny MLPs (aleatoric vs epistemic maps)
``experiments`` the lessons' tables: corrupted test mixes, misprediction / corruption / OOD tables
``augmentation`` test-time augmentation: views of one input (shifts, brightness, flips), ``tta`` uncertainty
``plots``       reliability diagrams, uncertainty maps, score histograms, the GradTrust quadrant plot
``widgets``     live-teaching widgets (temperature explorer, score distributions under corruption)
``voice``       (subpackage) VOICE: uncertainty maps from the variance of contrastive explanations
``attribution`` (subpackage) uncertainty attribution: UA-Backprop, optimisation-based UA, blurring test
==============  =====================================================================================
"""
from __future__ import annotations

from .._core.lazy import lazy_package

_SUBMODULES = ("scores", "bayesian", "trust", "calibration", "metrics", "toy", "experiments", "plots", "widgets",
               "voice", "attribution", "augmentation", "registry", "conformal")
_SHORTCUTS = {
    "SCORES": "scores", "uncertainty": "scores", "get_score": "scores", "compute_scores": "scores",
    "available_scores": "scores", "fit_mahalanobis": "scores", "score_batch": "scores", "score": "registry",
    "decompose": "bayesian", "mc_dropout_probs": "bayesian", "ensemble_probs": "bayesian",
    "gradtrust": "trust", "purview": "trust", "gradnorm": "trust",
    "expected_calibration_error": "calibration", "fit_temperature": "calibration",
    "auroc": "metrics", "auac": "metrics", "aufc": "metrics", "fpr_at_tpr": "metrics",
    "tta": "augmentation",
}

__all__ = [*_SUBMODULES, *_SHORTCUTS]


__getattr__, __dir__ = lazy_package(__name__, globals(), _SUBMODULES, _SHORTCUTS)

