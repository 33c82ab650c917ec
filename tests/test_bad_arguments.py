"""Bad arguments by cause (issue 32): one property test per cause sweeps the whole public API.

Every public function is decorated with ``_core.arguments.checked``, which reads its rules from the
signature (booleans, finite numbers, integers, bounded counts, sequences, finite tensors). Each test below
calls every public function that has a parameter of one kind with a bad value for it (and placeholders for
the other arguments): the call must fail at once with an error that names the parameter. A new public
function is swept without being listed. The exercise checkers (``inferml_course.checks``) judge answers
by their own rules (``tests/test_checks_bad_answers.py``): a student's wrong answer is a ``[TRY AGAIN]``,
not an exception.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import torch
from torch import nn

import inferml_course as ic
from inferml_course._core.arguments import COUNT_LIMITS


def _public_functions():
    found = {"inferml_course.format_table": ic.format_table, "inferml_course.show_source": ic.show_source,
             "inferml_course.require": ic.require}
    for info in pkgutil.walk_packages(ic.__path__, "inferml_course."):
        parts = info.name.split(".")
        if any(p.startswith("_") for p in parts[1:]) or parts[1] == "checks":
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name, None)
            if inspect.isfunction(obj) and getattr(inspect.unwrap(obj), "__module__", "").startswith(info.name):
                found.setdefault(f"{obj.__module__}.{obj.__name__}", obj)
    return found


FUNCTIONS = _public_functions()
#: The functions whose arguments need no rule (no bool, number, count, sequence or tensor parameter).
RULES = {name: fn.__checked__ for name, fn in FUNCTIONS.items() if hasattr(fn, "__checked__")}


def _cases(*kinds):
    return [(name, param) for name, rules in sorted(RULES.items()) for param, kind in rules.kinds.items()
            if kind in kinds]


class _Placeholder:
    """Stands for an argument the test does not vary; the check must fail before anything reads it."""


def _call(name, param, value, **given):
    fn = FUNCTIONS[name]
    kwargs = dict(given)
    for p in inspect.signature(fn).parameters.values():
        if p.name in kwargs or p.name == param or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.default is not p.empty:
            continue
        kind = RULES[name].kinds.get(p.name) if name in RULES else None
        kwargs[p.name] = (nn.Linear(2, 2) if p.name == "model" else
                          {"bool": False, "float": 1.0, "int": 1, "count": 1}.get(kind, _Placeholder()))
    kwargs[param] = value
    return fn(**kwargs)


def _refused(name, param, value, **given) -> str | None:
    """None when the call fails at once with an error naming ``param``; else what went wrong."""
    try:
        _call(name, param, value, **given)
    except (TypeError, ValueError) as err:
        return None if str(err).startswith(param) else f"{name}({param}={value!r}): {err}"
    except Exception as err:  # noqa: BLE001 - any other failure is a deep error, reported as such
        return f"{name}({param}={value!r}): {type(err).__name__}: {err}"
    return f"{name}({param}={value!r}) was accepted"


def _sweep(kinds, values):
    """Every public function with a parameter of one of ``kinds``, called with each bad value of ``values``
    (a function of name and parameter); returns the failures (one sweep per cause keeps the run short)."""
    cases = _cases(*kinds)
    assert cases, f"no public parameter of kind {kinds}"
    return [bad for name, param in cases for value in values(name, param)
            if (bad := _refused(name, param, value))]


def test_the_sweep_sees_the_api():
    assert len(FUNCTIONS) > 300
    missing = sorted(name for name, fn in FUNCTIONS.items() if not hasattr(fn, "__checked__"))
    assert not missing, f"public functions without @checked (_core.arguments): {missing}"
    kinds = {kind for rules in RULES.values() for kind in rules.kinds.values()}
    assert sum(bool(rules.pairs) for rules in RULES.values()) > 10
    assert kinds >= {"bool", "float", "int", "count", "sequence", "names", "tensor", "batch_size", "probs"}


def test_truthy_strings_are_not_booleans():
    assert not _sweep(("bool",), lambda *_: ("no", 1))


def test_numbers_are_finite_numbers():
    def bad(name, param):
        return (float("nan"), "0.5") + (() if param in RULES[name].infinite else (float("inf"),))
    assert not _sweep(("float",), bad)


def test_integers_are_integers():
    assert not _sweep(("int", "count"), lambda *_: (2.5, True))


def test_counts_are_bounded():
    assert not _sweep(("count",), lambda name, param: (COUNT_LIMITS[param] + 1, 10**9, -1))


def test_sequences_are_not_scalars():
    assert not _sweep(("sequence", "names"),
                      lambda name, param: (0.05,) + (("ab",) if RULES[name].kinds[param] == "sequence" else ()))


def test_tensors_hold_numbers():
    def bad(name, param):
        if param in RULES[name].allow_nonfinite:
            return ()
        return torch.tensor([1.0, float("nan")]), torch.tensor([float("inf"), 0.0]), torch.empty(3, device="meta")
    assert not _sweep(("tensor",), bad)


def test_batch_sizes():
    assert not _sweep(("batch_size",), lambda *_: (0, "big"))


def test_logits_are_not_probabilities():
    assert not _sweep(("probs",), lambda *_: (torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([[0.2, 0.2, 0.2]])))


#: A valid value of each paired argument with n rows.
ROWS = {"probs": lambda n: torch.full((n, 4), 0.25), "logits": lambda n: torch.zeros(n, 4),
        "labels": lambda n: torch.zeros(n, dtype=torch.long), "scores": lambda n: torch.rand(n),
        "correct": lambda n: torch.ones(n, dtype=torch.bool), "uncertainty": lambda n: torch.rand(n),
        "confidence": lambda n: torch.rand(n), "features": lambda n: torch.rand(n, 5),
        "maps": lambda n: torch.rand(n, 4, 4), "masks": lambda n: torch.rand(n, 4, 4) > 0.5}


def test_paired_arguments_describe_the_same_items():
    cases = [(name, pair) for name, rules in sorted(RULES.items()) for pair in rules.pairs]
    failures = [bad for name, (a, b, _, _) in cases
                if (bad := _refused(name, b, ROWS[b](2), **{a: ROWS[a](3)}))]
    assert not failures


def test_the_checks_keep_the_function_readable():
    fn = FUNCTIONS["inferml_course.explain.gradients.smoothgrad"]
    assert fn.__name__ == "smoothgrad" and "SmoothGrad" in fn.__doc__
    assert "samples" in inspect.signature(fn).parameters
    assert "def smoothgrad" in inspect.getsource(fn)
