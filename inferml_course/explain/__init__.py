"""Explanations at inference (lessons 02 and 03).

Direct explanations answer "why this decision?" with a map (N, H, W) over the input; all share
``f(model, x, target=None, **options)``:

* gradients: :func:`saliency`, :func:`input_x_gradient`, :func:`deconvnet`, :func:`guided_backprop`,
  :func:`smoothgrad`, :func:`integrated_gradients`, :func:`blur_ig`, :func:`fullgrad`;
* perturbations: :func:`occlusion`, :func:`rise`, :func:`lime`, :func:`kernel_shap`;
* class activation maps and the explanatory paradigms: :func:`grad_cam`, :func:`grad_cam_plus_plus`,
  :func:`counterfactual_cam` ("What if not P?"), :func:`contrast_cam` ("Why P, rather than Q?"),
  :func:`explanatory_paradigms` (all four questions at once), :func:`contrast_cams` (Contrast-CAM of
  every class at once, VOICE's input) and :func:`causal_cam` (Grad-CAM minus every contrast region; :func:`causal_from_contrasts` reads it from
  :func:`contrast_cams`'s maps, as crisp or as fuzzy sets).

:func:`explain` and :data:`METHODS` loop over them by name; each method's facts (family, sign,
widget options, label, teaching order) are declared beside it with :func:`explainer` and every
table (:data:`METHODS`, :data:`FAMILIES`, :data:`SIGNED`, :data:`INTERACTIVE_OPTIONS`) reads
:data:`EXPLAINERS`. Indirect explanations (filters,
activations, maximally activating patches, neighbours, embeddings) live in :mod:`.indirect`;
Scores of maps against masks and the randomisation check are evaluations: :mod:`inferml_course.evaluate`;
:func:`normalize_maps` and :func:`overlay` prepare maps for display. Module docstrings list each
method's cost and every default in which we differ from Captum.
"""
from .cam import CAUSAL_FORMS, PARADIGMS, ContrastCams, causal_cam, causal_from_contrasts, contrast_cam, contrast_cams, contrast_classes, \
    contrast_cotangents, counterfactual_cam, explanatory_paradigms, grad_cam, grad_cam_plus_plus, paradigm_measures, \
    runner_up
from .gradients import RULES, blur_ig, deconvnet, fullgrad, guided_backprop, input_x_gradient, integrated_gradients, \
    quadrature, saliency, smoothgrad
from .indirect import activation_maps, embeddings, first_layer_filters, max_activating_patches, \
    nearest_neighbors, neighbor_agreement, project, receptive_field, representatives
from .maps import normalize_maps, overlay
from .perturbation import RiseScores, kernel_shap, lime, occlusion, rise, rise_scores, superpixels
from .registry import EXPLAINERS, FAMILIES, INTERACTIVE_OPTIONS, METHODS, SIGNED, explain, explainer, method

__all__ = [
    "saliency", "input_x_gradient", "deconvnet", "guided_backprop", "smoothgrad", "integrated_gradients", "blur_ig",
    "fullgrad", "occlusion", "rise", "rise_scores", "RiseScores", "lime", "kernel_shap", "grad_cam", "grad_cam_plus_plus", "counterfactual_cam",
    "contrast_cam", "explanatory_paradigms", "paradigm_measures", "runner_up", "PARADIGMS", "contrast_cams", "ContrastCams", "causal_cam",
    "causal_from_contrasts", "CAUSAL_FORMS",
    "contrast_classes", "contrast_cotangents", "RULES", "quadrature", "superpixels",
    "explain", "method", "METHODS", "FAMILIES", "SIGNED", "EXPLAINERS", "explainer", "INTERACTIVE_OPTIONS", "normalize_maps", "overlay",
    "first_layer_filters", "activation_maps", "receptive_field", "max_activating_patches", "embeddings",
    "nearest_neighbors", "neighbor_agreement", "project", "representatives",
]
