"""Uncertainty attribution: which pixels make the model uncertain (lesson 08). Lazy::

    from inferml_course.uncertainty import attribution as ua
    maps = ua.ua_backprop(model, x)                    # (N, H, W), UA-Backprop (ECCV 2024)
    ua.blurring_test(umodel, x, maps)                  # MURR / AUC-URR

==================  ==================================================================================
module              contents
==================  ==================================================================================
``posterior``       the posterior samples (``BayesianModel``) and the uncertainty U(x) they define
``methods``         UA-Backprop, optimisation-based UA, gradient baselines on the uncertainty
``counterfactual``  CLUE and delta-CLUE: counterfactual baselines searched in a VAE's latent space
``evaluation``      the blurring test, anomaly localisation (IoU, ADA), attention (``attention_map``: the
                    poster's (1 - M) M; the course's (1 - M) x) and mitigation
``plots``           map grids, blurring curves
``widgets``         ``BlurringExplorer``
==================  ==================================================================================
"""
from __future__ import annotations

from ..._core.lazy import lazy_package

_SUBMODULES = ("posterior", "methods", "counterfactual", "evaluation", "plots", "widgets",)
_SHORTCUTS = {
    "BayesianModel": "posterior", "UncertaintyModel": "posterior", "uncertainty_from_probs": "posterior",
    "class_shares": "methods", "logit_coefficients": "methods", "logit_shares": "methods", "psi": "methods",
    "ua_backprop": "methods", "ua_backprop_details": "methods", "UAResult": "methods",
    "learnable_blur": "methods", "optimization_ua": "methods", "OptimizationResult": "methods",
    "grid_segments": "methods", "attribute": "methods", "UA_METHODS": "methods", "BASELINES": "methods",
    "SOURCES": "posterior", "TAU1": "methods", "TAU2": "methods", "METHOD_NAMES": "methods",
    "UAMethod": "methods", "ua_method": "methods",
    "clue": "counterfactual", "delta_clue": "counterfactual", "CLUEResult": "counterfactual",
    "BlurringResult": "evaluation", "blurring_test": "evaluation", "binarize_maps": "evaluation",
    "map_iou": "evaluation", "anomaly_localization": "evaluation", "attention_map": "evaluation",
    "attention_inputs": "evaluation", "ATTENTION_FORMS": "evaluation",
    "attention_mitigation": "evaluation", "BUDGETS": "evaluation",
    "ADA_RULES": "evaluation", "BINARIZE_RULES": "evaluation", "FILLS": "evaluation",
    "DIRECTIONS": "evaluation", "ua_maps_grid": "plots", "blurring_curves": "plots",
    "BlurringExplorer": "widgets",
}

__all__ = [*_SUBMODULES, *_SHORTCUTS]

__getattr__, __dir__ = lazy_package(__name__, globals(), _SUBMODULES, _SHORTCUTS)
