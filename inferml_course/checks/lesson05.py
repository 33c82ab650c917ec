"""Checkers for lesson 05 (uncertainty quantification): each compares an answer with the package's own computation."""
from __future__ import annotations

import torch

from ._common import as_number, as_parts, as_tensor as _as_tensor, checker, fail as _fail, passed as _pass
from ..uncertainty.bayesian import decompose
from ..uncertainty.calibration import BIN_RULES, expected_calibration_error, fit_temperature

__all__ = ["check_decomposition", "check_ece", "check_temperature"]


_PARTS = ("total", "aleatoric", "epistemic")


@checker(answer="the decomposition", parts=_PARTS)
def check_decomposition(answer, probs: torch.Tensor, atol: float = 1e-4) -> None:
    """Lesson 05: ``(total, aleatoric, epistemic)`` in nats, each (N,), for samples ``probs`` (S, N, K)."""

    parts = as_parts(answer, "the decomposition", _PARTS, what="three tensors")
    n = torch.as_tensor(probs).shape[1]
    parts = [_as_tensor(got, name, shape=(n,), flat=True, hint="One value per input.")
             for name, got in zip(_PARTS, parts)]
    expected = decompose(probs)
    for name, got, want in zip(_PARTS, parts, expected):
        got = got.to(want.dtype).to(want.device)
        if not torch.allclose(got, want, atol=atol):
            hint = {"total": "entropy of the MEAN prediction: average the S probability vectors first.",
                    "aleatoric": "MEAN of the S entropies: one entropy per sample, then average.",
                    "epistemic": "total minus aleatoric (the mutual information)."}[name]
            if name != "epistemic" and torch.allclose(got * torch.log(torch.tensor(2.0)).to(got), want, atol=atol):
                hint = "use the natural logarithm (nats), not log2."
            _fail(f"{name} differs from ours. Hint: {hint}")
    return _pass(f"total = aleatoric + epistemic; mean epistemic share {float(expected.epistemic.sum() / expected.total.sum()):.0%}.")


@checker(answer="ece")
def check_ece(answer, probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15, atol: float = 1e-4) -> None:
    """Lesson 05: the ECE (a fraction in [0, 1]) of ``probs`` with ``n_bins`` equal-width bins."""

    value = as_number(answer, "ece")
    if value > 1:
        _fail(f"{value} is above 1: give the ECE as a fraction, not a percentage.")
    if value < 0:
        _fail(f"{value} is below 0: the ECE is a weighted mean of absolute gaps, never negative.")
    expected = {rule: expected_calibration_error(probs, labels, n_bins, rule) for rule in BIN_RULES}
    if not any(abs(value - e) <= atol for e in expected.values()):
        _fail(f"{value:.4f} differs from the ECE we measure ({expected['left_closed']:.4f}). Hint: confidence = max "
              "probability, correct = argmax equals the label; weight each bin's |accuracy - confidence| by its "
              "share of ALL samples.")
    return _pass(f"ECE {expected['left_closed']:.2%} with {n_bins} bins.")


@checker(answer="temperature")
def check_temperature(answer, logits: torch.Tensor, labels: torch.Tensor, rtol: float = 0.05) -> None:
    """Lesson 05: the temperature that minimises the NLL of ``softmax(logits / T)`` on the given split."""

    value = as_number(answer, "temperature")
    if value <= 0:
        _fail("a temperature must be positive.")
    expected = fit_temperature(logits, labels)
    if abs(value - expected) > rtol * expected:
        direction = "larger" if value < expected else "smaller"
        _fail(f"T = {value:.3f} does not minimise the validation NLL; try a {direction} T.")
    return _pass(f"T = {expected:.3f} minimises the validation NLL "
                 f"({'softens over-confident' if expected > 1 else 'sharpens under-confident'} predictions).")
