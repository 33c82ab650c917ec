"""Checkers for lesson 10 (explanatory evaluation): each compares an answer with the package's own computation."""
from __future__ import annotations

import math

import torch

from ._common import as_int, as_number, as_tensor as _as_tensor, checker, fail as _fail, passed as _pass
from ..evaluate import auc, average_drop, deletion_curve, huffman_code_lengths, insertion_curve

__all__ = ["check_average_drop", "check_huffman_bits", "check_deletion_curve"]


@checker(answer="average drop")
def check_average_drop(answer, full: torch.Tensor, masked: torch.Tensor, tolerance: float = 1e-3) -> None:
    """Lesson 10: the Average Drop % (lower is better) of scores ``full`` (Y) and ``masked`` (O)."""

    value = as_number(answer, "average drop")
    expected = average_drop(full, masked)
    if math.isclose(value, expected / 100, abs_tol=tolerance / 100):
        _fail("that is the drop as a fraction; the Grad-CAM++ paper reports it in percent (times 100).")
    clipped = float(100 * ((full - masked).double() / full.double()).mean())
    if abs(value - clipped) <= tolerance and abs(clipped - expected) > tolerance:
        _fail("a rise in confidence is not a negative drop: clip Y - O at 0 before dividing by Y.")
    if abs(value - expected) > tolerance:
        _fail(f"{value:.3f} is not the Average Drop. Hint: 100 * mean(max(0, Y - O) / Y), one term per image.")
    return _pass(f"Average Drop = {expected:.2f} % (lower is better).")


@checker(answer="bits")
def check_huffman_bits(answer, counts) -> None:
    """Lesson 10: the length in bits of the Huffman-coded message with symbol counts ``counts``."""

    value = as_int(answer, "bits", low=0)  # the total length of the coded message
    counts_t = torch.as_tensor(counts).long().view(1, -1)
    lengths = huffman_code_lengths(counts_t)
    expected = int((counts_t * lengths).sum())
    fixed = int(counts_t.sum()) * max(1, math.ceil(math.log2(int((counts_t > 0).sum()))))
    if value == fixed and fixed != expected:
        _fail("that is a fixed-length code. Huffman gives frequent symbols shorter words: merge the two "
              "rarest counts again and again.")
    if value != expected:
        _fail(f"{value:g} bits is not optimal. Hint: the total equals the sum of all merged weights while "
              "you repeatedly merge the two smallest counts.")
    return _pass(f"{expected} bits; code lengths {lengths[0].tolist()}.")


@checker(answer="the curve")
def check_deletion_curve(answer, model, image: torch.Tensor, saliency_map: torch.Tensor, steps: int = 16,
                         substrate: str = "blur") -> None:
    """Lesson 10: the pixel-wise deletion curve (steps + 1,) of one image (C, H, W) and its map (H, W): the
    predicted class's softmax probability after k = 0..steps steps, recomputed with ``evaluate.deletion_curve``."""

    answer = _as_tensor(answer, "the curve", shape=(steps + 1,), flat=True,
                        hint=f"The curve has one point per step and one for the untouched image: {steps + 1} "
                             "values.").double()
    x, m = image[None], saliency_map[None].to(image.device)
    expected = deletion_curve(model, x, m, steps=steps, substrate=substrate)[0].double().cpu()

    def same(other):
        return torch.allclose(answer, other.double().cpu().reshape(-1), atol=1e-4)

    if same(expected):
        return _pass(f"deletion AUC {float(auc(expected[None])[0]):.3f} (lower is better): the probability falls "
                     f"from {float(expected[0]):.2f} to {float(expected[-1]):.2f}.")
    if answer.min() < 0 or answer.max() > 1:
        _fail("values outside [0, 1]: the game records the softmax probability of the predicted class, not a logit.")
    if same(insertion_curve(model, x, m, steps=steps, substrate=substrate)[0]):
        _fail("that is the insertion curve: deletion starts from the image and replaces pixels by the substrate.")
    if same(deletion_curve(model, x, -m, steps=steps, substrate=substrate)[0]):
        _fail("the least important pixels went first: sort the map in descending order.")
    if abs(float(answer[0]) - float(expected[0])) > 1e-4:
        _fail("the first point should be the untouched image's probability for its predicted class.")
    _fail(f"the curve differs from ours. Hint: rank pixels with argsort(descending=True, stable=True); after step k "
          f"the first round(k * H * W / {steps}) of them take the substrate's values (all colour channels); "
          "score every step's image in one batch.")
