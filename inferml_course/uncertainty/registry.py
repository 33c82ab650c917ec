"""The score registry: each uncertainty score's facts, declared beside its function with :func:`score`.

``@score("msp", confidence=True, quantity=..., label="Softmax", from_pass=...)`` records the name,
whether the function returns a confidence or trust (which the registry negates, so every entry is
**higher = more uncertain**), what it returns, the tutorial's label, the reference, its place in the
table order, when it applies and how :func:`~.scores.score_batch` computes it from a
:class:`~.scores.ScorePass`. The direction goes to the package's direction registry
(:mod:`inferml_course._core.directions`, kind ``"score"``) at the same time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from .._core.arguments import checked
from .._core.checks import check_model_input
from .._core.directions import SCORE, register
from .._core.registry import Registry

__all__ = ["ScoreSpec", "REGISTRY", "score"]


@dataclass(frozen=True)
class ScoreSpec:
    """A registry entry. Calling it returns an uncertainty (N,), **higher = more uncertain**.

    ``higher_is_confident``: ``function`` returns a confidence or trust score (higher = more
    confident / more trustworthy: MSP, margin, max logit, ODIN, GradNorm, GradTrust), which the entry
    negates; False when it already returns an uncertainty. ``sign`` (-1 or +1) is the same fact as a
    factor. ``from_pass(p)`` (or None: the score runs its own passes) computes the function's
    quantity from a :class:`~.scores.ScorePass`; ``features``: it reads the penultimate features;
    ``applies(p)``: whether :func:`~.scores.score_batch` includes it by default; ``variants``:
    ``{row name: (options, label)}``, the settings the lessons' tables add as rows.
    """

    name: str
    function: Callable = field(compare=False, repr=False)
    quantity: str        # what ``function`` returns, in the paper's own direction
    family: str          # "softmax", "logit", "perturbation", "distance", "sampling", "gradient"
    reference: str
    higher_is_confident: bool
    label: str = ""
    order: float | None = None
    from_pass: Callable | None = field(default=None, compare=False, repr=False)
    features: bool = False
    applies: Callable | None = field(default=None, compare=False, repr=False)
    variants: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    @property
    def sign(self) -> int:
        """-1 when ``function`` returns a confidence / trust (negated here), +1 for an uncertainty."""
        return -1 if self.higher_is_confident else 1

    @property
    def shared(self) -> bool:
        """True when :func:`~.scores.score_batch` computes it from the shared pass (``from_pass``)."""
        return self.from_pass is not None

    def __call__(self, model, x, **options) -> torch.Tensor:
        if isinstance(model, torch.nn.Module):  # the dtype rule for every score (a list is an ensemble's members)
            x = check_model_input(model, x)
        return self.sign * self.function(model, x, **{**self.options, **options})

    @property
    def direction(self) -> str:
        return "confidence (higher = more confident); the registry negates it" if self.higher_is_confident \
            else "uncertainty (higher = more uncertain)"


def _load():
    # within the family, at first read: the modules that register scores import this one
    from . import bayesian, scores, trust  # noqa: F401


#: ``{name: ScoreSpec}`` of every registered score, in table order.
REGISTRY = Registry("score", _load)


@checked
def score(name: str, *, confidence: bool, quantity: str, family: str, reference: str, label: str | None = None,
          order: float | None = None, from_pass: Callable | None = None, features: bool = False,
          applies: Callable | None = None, variants: dict | None = None, options: dict | None = None):
    """Decorator: register the function as the score ``name`` (see :class:`ScoreSpec`) and declare its
    direction (``confidence=True``: the function returns a confidence or trust, higher = more
    confident); returns the function unchanged. ``options`` are fixed keyword arguments (a second
    registration of one function, e.g. its mutual-information part)."""
    def decorate(function):
        spec = ScoreSpec(name, function, quantity, family, reference, bool(confidence), label or name, order,
                         from_pass, bool(features), applies, dict(variants or {}), dict(options or {}))
        register(name, bool(confidence), quantity=quantity, family="uncertainty.scores", kind=SCORE)
        REGISTRY.add(spec)
        return function
    return decorate
