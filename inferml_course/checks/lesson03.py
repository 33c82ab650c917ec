"""Checkers for lesson 03 (explanatory paradigms)."""
from __future__ import annotations

import torch

from ._common import as_tensor as _as_tensor, checker, fail as _fail, passed as _pass
from ..evaluate import energy_pointing_game, mask_fraction


@checker(answer="the gradient")
def check_contrast_signal(answer, logits: torch.Tensor, contrast: int) -> None:
    """Lesson 03: d CE(z, Q) / d z for one logit vector z (K,): what Contrast-CAM back-propagates."""
    z = torch.as_tensor(logits).detach().cpu().double().reshape(-1)
    answer = _as_tensor(answer, "the gradient", shape=z.shape, flat=True, hint="Give one value per class.").double()
    expected = torch.softmax(z, 0)
    expected[int(contrast)] -= 1
    onehot = torch.zeros_like(expected)
    onehot[int(contrast)] = 1
    if torch.allclose(answer, onehot - torch.softmax(z, 0), atol=1e-6):
        _fail("the sign is flipped: differentiate the loss CE(z, Q) = -log softmax(z)[Q] itself.")
    if not torch.allclose(answer, expected, atol=1e-6):
        _fail("not quite. Hint: CE(z, Q) = logsumexp(z) - z[Q]; its derivative is softmax(z) - onehot(Q).")
    p = torch.softmax(z, 0)
    top = int(p.argmax())
    return _pass(f"softmax - onehot(Q): +{float(p[top]):.3f} on the predicted class {top}, "
                 f"{float(expected[int(contrast)]):+.3f} on Q = {int(contrast)}; every other class enters too.")


@checker(answer="the energies")
def check_energy_by_hand(answer, maps: torch.Tensor, masks: torch.Tensor) -> None:
    """Lesson 03: the energy-based pointing game per image (N,): the share of each map's positive mass
    inside its mask, as ``evaluate.energy_pointing_game`` computes it (0 or NaN accepted for a map with no
    positive mass)."""

    maps, masks = torch.as_tensor(maps).detach().double().cpu(), torch.as_tensor(masks).cpu().bool()
    silent = maps.clamp_min(0).flatten(1).sum(1) == 0  # no positive mass: 0 (ours) or 0/0 = NaN
    answer = _as_tensor(answer, "the energies", shape=silent.shape, flat=True, nan_ok=silent,
                        hint="Give one value per image.").double()
    expected = energy_pointing_game(maps, masks).double()
    answer = torch.where(silent & answer.isnan(), torch.zeros_like(answer), answer)

    def same(other):
        return torch.allclose(answer, other.double(), atol=1e-6, equal_nan=True)

    if same(expected):
        return _pass(f"mean energy inside the mask {float(expected.nanmean()):.3f}, against "
                     f"{float(mask_fraction(masks).mean()):.3f} for a uniform map.")
    flat, inside = maps.flatten(1), masks.flatten(1).double()
    if same((flat * inside).sum(1) / flat.sum(1)):
        _fail("negative values entered the sum: keep only the positive part of each map (clamp_min(0)) first.")
    if same((flat.abs() * inside).sum(1) / flat.abs().sum(1)):
        _fail("that is the share of |map|; the energy counts the positive part only (clamp_min(0)).")
    if same(mask_fraction(masks)):
        _fail("that is the mask's share of the image, what a uniform map scores: weight the mask by the map.")
    _fail("not quite. Hint: m = maps.clamp_min(0); energy = (m * mask).sum over pixels / m.sum over pixels.")
