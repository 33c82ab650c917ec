"""Checkers for lesson 06 (gradient-based trust): each compares an answer with the package's own computation."""
from __future__ import annotations

import torch

from ._common import as_tensor as _as_tensor, fail as _fail, passed as _pass, require_answer

__all__ = ["check_gradtrust", "check_auac", "check_worst_quadrant"]


def check_gradtrust(answer, logits: torch.Tensor, rtol: float = 1e-4) -> bool:
    """Lesson 06: GradTrust (N,) computed from ``logits`` (N, K) in closed form."""
    from ..uncertainty.trust import gradtrust_from_logits

    got = _as_tensor(answer, "gradtrust").double().flatten()
    expected = gradtrust_from_logits(logits).double()
    if got.shape != expected.shape:
        _fail(f"one value per image: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}.")
    if not torch.allclose(got, expected, rtol=rtol):
        k = logits.shape[1]
        if torch.allclose(got, 1.0 / expected, rtol=rtol):
            _fail("you computed mean / max; GradTrust is max over classes divided by the mean.")
        _fail(f"values differ. Hint: a = (logits - 1/{k}) ** 4, then a.max(1) / a.mean(1).")
    return _pass(f"GradTrust ranges from {float(expected.min()):.2f} to {float(expected.max()):.2f} "
                 f"(possible range 1 to {logits.shape[1]}).")


def check_auac(answer, scores: torch.Tensor, correct: torch.Tensor, atol: float = 5e-3) -> bool:
    """Lesson 06: the AUAC (a fraction in [0, 1]) of uncertainty ``scores`` for predictions marked ``correct``."""
    from ..uncertainty.metrics import auac

    value = float(require_answer(answer, "auac"))
    if value > 1:
        _fail(f"{value} is above 1: give the AUAC as a fraction, not a percentage.")
    expected = auac(scores, correct)
    flipped = auac(scores, correct, kind="trust")
    if abs(value - expected) > atol:
        if abs(value - flipped) <= atol:
            _fail("you ordered the images the wrong way round: keep the LEAST uncertain (most trusted) images.")
        _fail(f"{value:.4f} differs from the AUAC we measure. Hint: sort by uncertainty, and for each "
              "percentile x = 0, 1, ..., 99 % keep the most trusted (100 - x) % and average their accuracies.")
    return _pass(f"AUAC {expected:.1%} (a useless score would give the accuracy, {float(correct.float().mean()):.1%}).")


def check_worst_quadrant(answer, quadrants: dict) -> bool:
    """Lesson 06: the quadrant (a name of ``quadrant_counts``) with the highest share of wrong predictions."""
    require_answer(answer, "the quadrant")
    names = [k for k in quadrants if k != "splits"]
    if answer not in names:
        _fail(f"answer with one of: {', '.join(repr(n) for n in names)}.")

    def rate(name):
        q = quadrants[name]
        return q["wrong"] / max(q["wrong"] + q["correct"], 1)

    best = max(names, key=rate)
    if rate(answer) < rate(best):
        _fail(f"{answer!r} has {rate(answer):.0%} wrong predictions; another quadrant has more.")
    return _pass(f"{best}: {rate(best):.0%} of its predictions are wrong.")
