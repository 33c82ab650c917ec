"""One argument check per cause, read from each public function's signature.

:func:`checked` decorates every public function of the package (``tests/test_bad_arguments.py`` sweeps
the public API and fails on one without it). At call time it checks the arguments the caller passed
(defaults are trusted) by what the signature declares, one rule per cause:

==============  ======================================================================================
cause           rule
==============  ======================================================================================
booleans        a parameter whose default is True / False takes only a bool (``relu="no"`` would be
                truthy and invert the intent): TypeError
numbers         a parameter whose default is a float takes a real number, finite unless its default is
                infinite (NaN would turn comparisons silently false): TypeError / ValueError
integers        a parameter whose default is an int takes an integer (not a bool, not 2.5); ``batch_size``
                a positive integer, ``"auto"`` or None
counts          the counts in :data:`COUNT_LIMITS` (steps, samples, masks, epochs, bootstrap draws, ...)
                are at most their stated bound, so a typo cannot run without end or exhaust memory
sequences       a parameter whose default is a tuple takes a sequence, not a scalar or a string
                (``budgets=0.05`` for ``budgets=(0.02, 0.05)``); a tuple of names also takes one name
tensors         a tensor or array argument is not on the meta device and holds no NaN or infinity
                (``allow_nonfinite=`` names the arguments where they mean something, e.g. ranks)
probabilities   an argument named ``probs`` holds probabilities (in [0, 1], each row summing to 1 within
                1e-3), so logits are refused instead of read as probabilities
paired lengths  the pairs in :data:`PAIRED` (``probs`` / ``labels``, ``scores`` / ``correct``, ...) describe the
                same items: when both are given as tensors or arrays, their first dimensions agree
==============  ======================================================================================

A parameter opts out of the rule its default implies when its annotation names other types too
(``relu: bool | str = True``). The function-specific checks (shapes, ranges, choices) stay in the
function; this layer catches the causes that recur across the whole API.
"""
from __future__ import annotations

import functools
import inspect
import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch

from .batching import check_batch_size

__all__ = ["COUNT_LIMITS", "PAIRED", "checked", "ArgumentRules"]

#: The most a count argument may be (by parameter name), and why the bound is generous: every course use
#: is at least 10x below it, and one past it is a typo or a run that would not end on a laptop.
COUNT_LIMITS = {
    "steps": 100_000, "samples": 10_000, "n_samples": 10_000, "n_masks": 100_000, "epochs": 1_000,
    "n_resamples": 100_000, "n_boot": 100_000, "n_points": 100_000, "points": 10_000, "n_paths": 1_000,
    "n_prompts": 10_000, "members": 100, "n_shadow": 100, "n_segments": 10_000,
    "n_contrast": 1_000, "max_iter": 100_000, "grid_size": 1_000, "n_bins": 10_000, "bins": 10_000,
    "num_cells": 10_000, "per": 100_000, "per_block": 100_000, "top_k": 100_000, "k": 100_000,
}

#: Arguments that describe the same items, row for row (first dimension), when a function takes both.
#: Each pair is checked when both have their usual rank (``probs`` (N, K) and ``labels`` (N,), ...); other shapes
#: are left to the function's own, more specific message.
PAIRED = (("probs", "labels", 2, 1), ("logits", "labels", 2, 1), ("scores", "correct", 1, 1),
          ("scores", "labels", 1, 1), ("uncertainty", "correct", 1, 1), ("confidence", "correct", 1, 1),
          ("features", "labels", 2, 1), ("maps", "masks", 3, 3))

_TENSOR_WORDS = ("Tensor", "ndarray", "array")


def _annotation_types(annotation) -> set[str]:
    """The top-level type names of an annotation string (``"int | None"`` -> {"int", "None"}); empty when absent."""
    if annotation is inspect.Parameter.empty:
        return set()
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return {part.strip() for part in text.split("|")}


@dataclass(frozen=True)
class ArgumentRules:
    """The rule of each checked parameter of one function: ``{name: kind}``, kind one of ``"bool"``,
    ``"float"``, ``"int"``, ``"count"``, ``"batch_size"``, ``"sequence"``, ``"names"``, ``"tensor"``,
    ``"probs"``; ``pairs``: the entries of :data:`PAIRED` it takes; ``optional``: the names that also
    take None; ``infinite``: the floats whose default is infinite (they may stay infinite);
    ``allow_nonfinite``: the tensors that may hold NaN or infinity."""

    function: str
    kinds: dict
    optional: frozenset
    infinite: frozenset
    allow_nonfinite: frozenset
    pairs: tuple = ()

    @classmethod
    def of(cls, fn, allow_nonfinite=()) -> "ArgumentRules":
        kinds, optional, infinite = {}, set(), set()
        for p in inspect.signature(fn).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            types, default = _annotation_types(p.annotation), p.default
            if "None" in types:
                optional.add(p.name)
            plain = types - {"None"}
            if default is p.empty:  # a required parameter: its annotation says the kind
                default = {"bool": False, "float": 0.0, "int": 0}.get(next(iter(plain)) if len(plain) == 1 else "")
            if isinstance(default, (bool, np.bool_)):
                kind = "bool" if plain <= {"bool"} else None
            elif isinstance(default, float):
                kind = "float" if plain <= {"float"} else None
                if kind and math.isinf(default):
                    infinite.add(p.name)
            elif p.name == "batch_size":
                kind = "batch_size"
            elif isinstance(default, int) or (default is None and plain == {"int"}):
                kind = "int" if plain <= {"int"} else None
                if kind and p.name in COUNT_LIMITS:
                    kind = "count"
            elif isinstance(default, tuple):
                kind = "sequence" if not plain & {"float", "int", "str", "bool"} else None
                if kind and default and all(isinstance(v, str) for v in default):
                    kind = "names"  # a tuple of names: one name alone is a str, not a scalar
            elif any(word in t for t in plain for word in _TENSOR_WORDS):
                kind = "tensor"
            else:
                kind = None
            if p.name == "probs" and (kind == "tensor" or not plain):
                kind = "probs"
            if kind:
                kinds[p.name] = kind
        unknown = set(allow_nonfinite) - set(kinds)
        if unknown:
            raise TypeError(f"allow_nonfinite names no tensor parameter of {fn.__qualname__}: {sorted(unknown)}")
        names = set(inspect.signature(fn).parameters)
        pairs = tuple(pair for pair in PAIRED if pair[0] in names and pair[1] in names)
        return cls(fn.__qualname__, kinds, frozenset(optional), frozenset(infinite), frozenset(allow_nonfinite),
                   pairs)

    def check(self, name: str, value) -> None:
        """Raise a TypeError / ValueError naming ``name`` when ``value`` breaks its rule."""
        kind = self.kinds.get(name)
        if kind is None or (value is None and name in self.optional):
            return
        where = name  # messages start with the argument, as every check of the package does
        if kind == "bool":
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{where} must be True or False, got {type(value).__name__} {value!r}")
        elif kind == "float":
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
                raise TypeError(f"{where} must be a number, got {type(value).__name__} {value!r}")
            if math.isnan(value) or (math.isinf(value) and name not in self.infinite):
                raise ValueError(f"{where} must be a finite number, got {value!r}")
        elif kind in ("int", "count"):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{where} must be an integer, got {type(value).__name__} {value!r}")
            if kind == "count":
                limit = COUNT_LIMITS[name]
                if not 0 <= int(value) <= limit:
                    raise ValueError(f"{where} = {int(value)} is outside the supported range [0, {limit}] "
                                     f"(the package's bound for a count; a larger run would not end on a laptop)")
        elif kind == "batch_size":
            check_batch_size(value, argument=where)
        elif kind == "names":
            if isinstance(value, numbers.Number) or (isinstance(value, torch.Tensor) and value.dim() == 0):
                raise TypeError(f"{where} must be a name or a sequence of names, got {type(value).__name__} {value!r}")
        elif kind == "sequence":
            if isinstance(value, (str, bytes, numbers.Number)) or (isinstance(value, torch.Tensor) and value.dim() == 0):
                raise TypeError(f"{where} must be a sequence (e.g. a tuple), got {type(value).__name__} {value!r}")
        elif kind == "tensor" and name not in self.allow_nonfinite:
            _check_values(value, where)
        elif kind == "probs":
            _check_values(value, where)
            _check_probabilities(value, where)

    def check_pairs(self, arguments: dict) -> None:
        """Paired arguments given as tensors or arrays of their usual ranks must have the same number of rows."""
        for a, b, rank_a, rank_b in self.pairs:
            first, second = arguments.get(a), arguments.get(b)
            if _rows(first, rank_a) is not None and _rows(second, rank_b) is not None and first.shape[0] != second.shape[0]:
                want = ", ".join([str(first.shape[0]), *map(str, second.shape[1:])])
                raise ValueError(f"{b} must have shape ({want}{',' if second.ndim == 1 else ''}) to match {a} (row i of "
                                 f"each describes item i), got shape {tuple(second.shape)}")


def _rows(value, rank: int):
    if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == rank and not (
            isinstance(value, torch.Tensor) and value.is_meta):
        return int(value.shape[0])
    return None


def _check_probabilities(value, where: str) -> None:
    """Values in [0, 1] whose rows (last dimension) sum to 1: softmax outputs, not logits (the wording of
    ``_core.checks.check_probs``; shapes are left to the function)."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        value = torch.from_numpy(value)
    if (not isinstance(value, torch.Tensor) or not value.is_floating_point() or value.dim() < 2 or value.numel() == 0
            or value.shape[-1] < 2):
        return
    v = value.detach()
    if bool((v < 0).any()) or bool((v > 1).any()):
        raise ValueError(f"{where} must lie in [0, 1]; got values in [{float(v.min()):.3g}, {float(v.max()):.3g}]. "
                         "Did you pass logits? Apply torch.softmax(logits, -1) first")
    err = float((v.double().sum(-1) - 1).abs().max())
    if err > 1e-2:  # coarse: the functions apply their own dtype-dependent tolerance
        raise ValueError(f"{where}: each row of {where} must sum to 1 (largest deviation {err:.3g}). Pass probabilities, "
                         "e.g. torch.softmax(logits, -1); they are not normalised for you")

def _check_values(value, where: str) -> None:
    if isinstance(value, torch.Tensor):
        if value.is_meta:
            raise ValueError(f"{where} is on the meta device (a shape without values); create it on a real device")
        if value.is_floating_point() or value.is_complex():
            if value.numel() and not (bool(torch.isfinite(value.sum())) or bool(torch.isfinite(value).all())):
                raise ValueError(f"{where} contains NaN or infinite values")
    elif isinstance(value, np.ndarray) and value.dtype.kind in "fc":
        if value.size and not np.isfinite(value).all():
            raise ValueError(f"{where} contains NaN or infinite values")


def checked(fn=None, *, allow_nonfinite=()):
    """Check the arguments of a public function by cause (see the module docstring) before it runs.

    ``@checked`` or ``@checked(allow_nonfinite=("values",))``. The wrapper keeps the function's name,
    docstring, signature and source (``functools.wraps``) and exposes the rules as ``wrapper.__checked__``
    (so a test can sweep the API without running it).
    """
    if fn is None:
        return lambda f: checked(f, allow_nonfinite=allow_nonfinite)
    rules = ArgumentRules.of(fn, allow_nonfinite)
    signature = inspect.signature(fn)
    if not rules.kinds and not rules.pairs:
        fn.__checked__ = rules
        return fn

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as err:
            raise TypeError(f"{fn.__qualname__}: {err}") from None
        for name, value in bound.arguments.items():
            rules.check(name, value)
        rules.check_pairs(bound.arguments)
        return fn(*args, **kwargs)

    wrapper.__checked__ = rules
    return wrapper
