"""Checkers for lesson 10 (explanatory evaluation): each compares an answer with the package's own computation."""
from __future__ import annotations

import math

import torch

from ._common import as_tensor as _as_tensor, fail as _fail, passed as _pass, require_answer

__all__ = ["check_average_drop", "check_huffman_bits", "check_metric_winner"]


def check_average_drop(answer, full: torch.Tensor, masked: torch.Tensor, tolerance: float = 1e-3) -> bool:
    """Lesson 10: the Average Drop % (lower is better) of scores ``full`` (Y) and ``masked`` (O)."""
    from ..evaluate import average_drop

    value = float(require_answer(answer, "average drop"))
    expected = average_drop(full, masked)
    if math.isclose(value, expected / 100, abs_tol=tolerance / 100):
        _fail("that is the drop as a fraction; the Grad-CAM++ paper reports it in percent (times 100).")
    clipped = float(100 * ((full - masked).double() / full.double()).mean())
    if abs(value - clipped) <= tolerance and abs(clipped - expected) > tolerance:
        _fail("a rise in confidence is not a negative drop: clip Y - O at 0 before dividing by Y.")
    if abs(value - expected) > tolerance:
        _fail(f"{value:.3f} is not the Average Drop. Hint: 100 * mean(max(0, Y - O) / Y), one term per image.")
    return _pass(f"Average Drop = {expected:.2f} % (lower is better).")


def check_huffman_bits(answer, counts) -> bool:
    """Lesson 10: the length in bits of the Huffman-coded message with symbol counts ``counts``."""
    from ..evaluate import huffman_code_lengths

    answer = _as_tensor(answer, "bits")
    if answer.numel() != 1:
        _fail("give one number: the total length of the coded message in bits.")
    counts_t = torch.as_tensor(counts).long().view(1, -1)
    lengths = huffman_code_lengths(counts_t)
    expected = int((counts_t * lengths).sum())
    value = float(answer)
    fixed = int(counts_t.sum()) * max(1, math.ceil(math.log2(int((counts_t > 0).sum()))))
    if value == fixed and fixed != expected:
        _fail("that is a fixed-length code. Huffman gives frequent symbols shorter words: merge the two "
              "rarest counts again and again.")
    if value != expected:
        _fail(f"{value:g} bits is not optimal. Hint: the total equals the sum of all merged weights while "
              "you repeatedly merge the two smallest counts.")
    return _pass(f"{expected} bits; code lengths {lengths[0].tolist()}.")


def check_metric_winner(answer, scores: dict, metric: str) -> bool:
    """Lesson 10: the method ranked first under ``metric`` in ``scores`` ({metric: {method: value}})."""
    from ..evaluate import rank_methods

    require_answer(answer, "the method")
    if not isinstance(answer, str):
        _fail("answer with the method's name, a string such as 'grad_cam'.")
    ranks = rank_methods({metric: scores[metric]})[metric]
    best = [m for m, r in ranks.items() if r == min(ranks.values())]
    if answer not in ranks:
        _fail(f"{answer!r} is not one of the methods in the table.")
    if answer not in best:
        from ..evaluate import higher_is_better

        direction = "higher" if higher_is_better(metric) else "lower"
        _fail(f"{answer!r} is ranked {ranks[answer]:g} under {metric}. Remember: for {metric}, {direction} is better.")
    return _pass(f"{answer} ranks first under {metric}.")
