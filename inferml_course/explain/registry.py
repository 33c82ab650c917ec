"""One entry point for every direct explanation, so lessons and widgets can loop over methods::

    from inferml_course import explain
    maps = {name: explain.explain(name, model, x) for name in explain.METHODS}

Each explainer is registered where it is defined, by :func:`explainer`, with its facts
(:class:`Explainer`); :data:`METHODS`, :data:`FAMILIES`, :data:`SIGNED` and
:data:`INTERACTIVE_OPTIONS` are read-only views of :data:`EXPLAINERS`.

Modes (``policy="as_is"`` of :mod:`inferml_course._core.modes`): the model runs in the mode it is
in; a dropout or batch-norm module in training mode gets one warning per call (the result is random,
batch norm mixes the samples of a batch), and every module's flag and every batch-norm statistic are
restored afterwards, also on errors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from .._core.arguments import checked
from .._core.checks import check_choice, check_model_input
from .._core.modes import guarded
from .._core.registry import Column, Members, Names, Registry

__all__ = ["METHODS", "FAMILIES", "SIGNED", "INTERACTIVE_OPTIONS", "EXPLAINERS", "Explainer", "explainer", "explain",
           "method"]


@dataclass(frozen=True)
class Explainer:
    """The facts of one explainer ``function(model, x, target=None, **options) -> (N, H, W)``.

    ``family``: ``"gradient"``, ``"perturbation"`` or ``"cam"``; ``signed``: its maps (default options)
    can be negative; ``interactive``: options that keep it fast enough for a widget on a laptop CPU
    (one image); ``label``: the display name; ``order``: its place in the teaching order.
    """

    name: str
    function: Callable = field(compare=False, repr=False)
    family: str
    signed: bool = False
    interactive: dict = field(default_factory=dict)
    label: str = ""
    order: float | None = None


def _load():
    # within the family, at first read: the method modules import this module for the decorator
    from . import cam, gradients, perturbation  # noqa: F401


#: ``{name: Explainer}`` of every registered explainer, in teaching order.
EXPLAINERS = Registry("explainer", _load)


@checked
def explainer(name: str, *, family: str, signed: bool = False, interactive: dict | None = None,
              label: str | None = None, order: float | None = None):
    """Decorator: register the function as the explainer ``name`` (see :class:`Explainer`); returns it unchanged."""
    def register(function):
        EXPLAINERS.add(Explainer(name, function, family, bool(signed), dict(interactive or {}),
                                 label or name.replace("_", " "), order))
        return function
    return register


#: Every explainer, in teaching order (a read-only view of :data:`EXPLAINERS`).
METHODS = Names(EXPLAINERS)
#: The family of each method.
FAMILIES = Column(EXPLAINERS, "family")
#: Methods whose maps (with their default options) can be negative.
SIGNED = Members(EXPLAINERS, lambda e: e.signed)
#: Options that keep a method interactive on a laptop CPU (one image at a time), where it has any.
INTERACTIVE_OPTIONS = Column(EXPLAINERS, "interactive", keep=bool)


@checked
def method(name: str):
    """The explainer function called ``name`` (one of :data:`METHODS`)."""
    check_choice(name, METHODS, "method")
    return EXPLAINERS[name].function


@guarded()
@checked
def explain(method_name: str, model: nn.Module, x, target=None, **options):
    """``method(method_name)(model, x, target, **options)``: a map (N, H, W) for any of :data:`METHODS`.

    ``x`` is checked once here (:func:`~inferml_course._core.checks.check_model_input`): an image batch
    (N, C, H, W), finite, not empty, and cast to the model's parameter dtype, so float64 images on a
    float32 model run in float32 for every method.
    """
    function = method(method_name)
    return function(model, check_model_input(model, x), target, **options)
