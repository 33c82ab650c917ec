"""Checkers for lesson 08 (uncertainty attribution): each compares an answer with the package's own computation."""
from __future__ import annotations

import torch

from ._common import as_tensor as _as_tensor, fail as _fail, passed as _pass, require_answer

__all__ = ["check_completeness", "check_murr", "check_best_method"]


def check_completeness(answer, maps: torch.Tensor, uncertainty: torch.Tensor, atol: float = 1e-4) -> bool:
    """Lesson 08: the per-image sums (N,) of a UA-Backprop map, which must equal the uncertainty (N,)."""
    answer = _as_tensor(answer, "the sums").double().cpu().flatten()
    sums = maps.double().cpu().sum((1, 2))
    if answer.shape != sums.shape:
        _fail(f"expected one sum per image, shape {tuple(sums.shape)}, got {tuple(answer.shape)}. "
              "Hint: sum over the two pixel axes, maps.sum(dim=(1, 2)).")
    if not torch.allclose(answer, sums, atol=atol):
        if torch.allclose(answer, maps.double().cpu().mean((1, 2)), atol=atol):
            _fail("you averaged; completeness is about the sum over the pixels.")
        _fail("these are not the sums of the maps over their pixels.")
    gap = float((sums - uncertainty.double().cpu()).abs().max())
    if gap > atol:
        _fail(f"the sums are right, but they differ from the uncertainty by up to {gap:.2g}: "
              "did you compare with the right uncertainty type?")
    return _pass(f"every map sums to its uncertainty (largest gap {gap:.1e} nats): completeness holds.")


def check_murr(answer, result, budget: float = 0.05, atol: float = 1e-4) -> bool:
    """Lesson 08: MURR for ``budget`` from a blurring-test result's ``ratios`` (N, P) and ``pixels`` (P,)."""
    value = float(require_answer(answer, "MURR"))
    expected = result.murr[budget]
    if abs(value - expected) <= atol:
        return _pass(f"MURR at {budget:.0%} = {expected:.3f}: the best uncertainty reduction within the budget.")
    r = result.ratios.double()
    if budget != max(result.murr) and abs(value - float((1 - r).amax(1).mean())) <= atol:
        _fail("you used every evaluated pixel count; keep only k <= budget x H x W.")
    if abs(value - float((1 - r[:, -1]).mean())) <= atol:
        _fail("that is the reduction at the last step; MURR takes the maximum over the steps, per image.")
    _fail("MURR differs from ours. Hint: per image, max over k <= budget of 1 - U_k / U_0, then the mean.")


def check_best_method(answer, table: dict, column: str, higher_is_better: bool = True) -> bool:
    """Lesson 08: the row of ``table`` ({method: {column: value}}) with the best ``column``."""
    require_answer(answer, "the method")
    if not isinstance(answer, str):
        _fail("answer with the method's name as it appears in the table, a string.")
    rows = {k: v[column] for k, v in table.items() if column in v}
    best = (max if higher_is_better else min)(rows, key=rows.get)
    if answer not in rows:
        _fail(f"{answer!r} is not a row of the table; the rows are: {', '.join(rows)}.")
    if answer != best:
        direction = "highest" if higher_is_better else "lowest"
        _fail(f"{answer} is not the best: look for the {direction} {column}.")
    return _pass(f"{best} is best on {column} ({rows[best]:.3f}).")
