"""One entry point for every direct explanation, so lessons and widgets can loop over methods::

    from inferml_course import explain
    maps = {name: explain.explain(name, model, x) for name in explain.METHODS}

Modes (``policy="as_is"`` of :mod:`inferml_course._core.modes`): the model runs in the mode it is
in; a dropout or batch-norm module in training mode gets one warning per call (the result is random,
batch norm mixes the samples of a batch), and every module's flag and every batch-norm statistic are
restored afterwards, also on errors.
"""
from __future__ import annotations

from torch import nn

from .._core.checks import check_choice, check_model_input
from .._core.modes import guarded
from . import cam, gradients, perturbation

__all__ = ["METHODS", "FAMILIES", "SIGNED", "explain", "method"]

#: Every explainer, in teaching order.
METHODS = (
    "saliency", "input_x_gradient", "deconvnet", "guided_backprop", "smoothgrad", "integrated_gradients",
    "blur_ig", "fullgrad", "occlusion", "rise", "lime", "kernel_shap", "grad_cam", "grad_cam_plus_plus",
    "counterfactual_cam", "contrast_cam",
)
#: The family of each method.
FAMILIES = {
    **{m: "gradient" for m in METHODS[:8]},
    **{m: "perturbation" for m in ("occlusion", "rise", "lime", "kernel_shap")},
    **{m: "cam" for m in ("grad_cam", "grad_cam_plus_plus", "counterfactual_cam", "contrast_cam")},
}
#: Methods whose maps (with their default options) can be negative.
SIGNED = frozenset({"input_x_gradient", "deconvnet", "guided_backprop", "integrated_gradients", "blur_ig",
                    "occlusion", "lime", "kernel_shap"})

_MODULES = {"gradient": gradients, "perturbation": perturbation, "cam": cam}


def method(name: str):
    """The explainer function called ``name`` (one of :data:`METHODS`)."""
    check_choice(name, METHODS, "method")
    return getattr(_MODULES[FAMILIES[name]], name)


@guarded()
def explain(method_name: str, model: nn.Module, x, target=None, **options):
    """``method(method_name)(model, x, target, **options)``: a map (N, H, W) for any of :data:`METHODS`.

    ``x`` is checked once here (:func:`~inferml_course._core.checks.check_model_input`): an image batch
    (N, C, H, W), finite, not empty, and cast to the model's parameter dtype, so float64 images on a
    float32 model run in float32 for every method.
    """
    function = method(method_name)
    return function(model, check_model_input(model, x), target, **options)
