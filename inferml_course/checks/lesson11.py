"""Checkers for lesson 11 (gradients at inference: conclusions and the capstone audit).

Each checker recomputes what it needs from the model and the data it is given, never from names the
solution cell made.
"""
from __future__ import annotations

import math

import torch

from ._common import as_number as _number, as_parts, as_text, checker, fail as _fail, passed as _pass
from ..models import predict_logits
from ..intervene.adversarial import input_gradient
from ..evaluate import energy_pointing_game, mask_fraction
from ..explain import explain
from ..intervene.causal import set_watermark

__all__ = ["check_smallest_flip", "check_watermark_share", "check_shortcut"]


def _predict(model, x: torch.Tensor) -> torch.Tensor:

    return predict_logits(model, x).argmax(1)


@checker(answer="the smallest budget")
def check_smallest_flip(answer, model, x, epsilons) -> None:
    """Lesson 11: the smallest budget in ``epsilons`` at which FGSM changes the prediction of image ``x`` (1, C, H, W)."""

    value = _number(answer, "the smallest budget")
    epsilons = [float(e) for e in epsilons]
    x = x.to(next(model.parameters()).device)
    before = int(_predict(model, x)[0])
    step = input_gradient(model, x).sign()          # FGSM's direction; every budget scales the same step
    attacked = torch.cat([(x + e * step).clamp(0, 1) for e in epsilons])
    flips = dict(zip(epsilons, (_predict(model, attacked) != before).tolist()))
    flipping = [e for e in epsilons if flips[e]]
    if not flipping:
        _fail("no budget in the list changes the prediction; this checker needs a list that reaches a flip.")
    expected = min(flipping)
    match = [e for e in epsilons if math.isclose(value, e, rel_tol=1e-6, abs_tol=1e-9)]
    if not match:
        if any(math.isclose(value, 255 * e, rel_tol=1e-6) for e in epsilons):
            _fail(f"budgets are in pixel units of [0, 1]: {value:g}/255 = {value / 255:.4f}, not {value:g}.")
        _fail("answer with one of the budgets in `epsilons`.")
    if not flips[match[0]]:
        _fail(f"at epsilon = {value * 255:.3g}/255 the prediction does not change yet: try larger budgets.")
    if match[0] != expected:
        _fail(f"epsilon = {value * 255:.3g}/255 flips the prediction, but a smaller budget in the list already "
              "does: go through the budgets in increasing order and stop at the first change.")
    return _pass(f"FGSM changes the prediction from epsilon = {expected * 255:.3g}/255 on "
                 f"(a change of at most {expected * 255:.3g} grey levels per pixel).")


@checker(answer="the share")
def check_watermark_share(answer, model, images, masks, method: str = "saliency", tolerance: float = 0.01) -> None:
    """Lesson 11: the mean share (over ``images``) of the positive mass of ``method``'s maps inside ``masks``."""

    value = _number(answer, "the share")
    if not 0 <= value <= 1:
        if 0 <= value <= 100:
            _fail("give the share as a fraction between 0 and 1, not in percent.")
        _fail(f"a share lies between 0 and 1, got {value:g}.")
    device = next(model.parameters()).device
    maps = explain(method, model, images.to(device)).detach().cpu()
    masks = torch.as_tensor(masks).bool().cpu()
    expected = float(energy_pointing_game(maps, masks).mean())
    area = float(mask_fraction(masks).mean())
    positive = maps.clamp_min(0)
    pooled = float((positive * masks).sum() / positive.sum())
    if abs(value - expected) <= tolerance:
        return _pass(f"{expected:.1%} of the {method} mass lies on the watermark, which covers {area:.1%} of the "
                     f"image ({expected / area:.1f} times its area share).")
    if abs(value - area) <= tolerance / 2:
        _fail("that is the watermark's share of the image area, what a uniform map would get. Weigh each pixel "
              "by the map: sum(map * mask) / sum(map), per image.")
    if abs(value - pooled) <= tolerance / 2:
        _fail("that pools all images into one sum; compute the share per image, then average over the images.")
    _fail(f"{value:.3f} is not the mean share. Hint: maps = explain.explain({method!r}, model, images); then "
          "evaluate.energy_pointing_game(maps, masks) gives one share per image.")


@checker(answer="the audit", parts=("accuracy_drop", "shortcut"))
def check_shortcut(answer, model, images, labels) -> None:
    """Lesson 11: ``(accuracy drop, cue)``: accuracy on ``images`` minus accuracy with the watermark removed
    (``set_watermark(images, None)``), and the name of the cue the model relies on: ``"watermark"`` or
    ``"sign"`` (any phrase holding one of the two words)."""

    drop_answer, cue = as_parts(answer, "the audit", ("accuracy_drop", "shortcut"),
                                what="two things, a number and a word")
    drop = _number(drop_answer, "accuracy_drop")
    word = as_text(cue, "shortcut", hint="Name the cue, e.g. 'sign' or 'watermark'.").lower()
    if "watermark" not in word and "sign" not in word:
        _fail(f"shortcut should name the cue the model reads, 'watermark' or 'sign', got {cue!r}.")
    labels = torch.as_tensor(labels).cpu()
    with_mark = float((_predict(model, images) == labels).float().mean())
    without = float((_predict(model, set_watermark(images, None)) == labels).float().mean())
    expected = with_mark - without
    if abs(drop - expected) > 0.01:
        if abs(drop + expected) <= 0.01:
            _fail("the sign is the wrong way round: the drop is the accuracy WITH the watermark minus the "
                  "accuracy WITHOUT it.")
        if abs(drop - 100 * expected) <= 1:
            _fail("give the drop as a fraction of 1 (0.25 for 25 points), not in percent.")
        _fail(f"{drop:.3f} is not the accuracy drop. Hint: remove the mark with "
              "causal.set_watermark(images, None) and compare the accuracies on the same labels.")
    relies = expected > 0.5
    if relies and "watermark" not in word:
        _fail(f"without the watermark the accuracy falls by {expected:.0%}: which cue is the model really using?")
    if not relies and "watermark" in word:
        _fail(f"removing the watermark costs only {expected:.0%} accuracy: this model does not rely on it.")
    return _pass(f"accuracy {with_mark:.0%} with the watermark, {without:.0%} without: "
                 + ("the model reads the watermark, not the sign." if relies else "the watermark is not its cue."))
