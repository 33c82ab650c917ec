"""Checkers for lesson 09 (intervenability): each compares an answer with the package's own computation."""
from __future__ import annotations

import torch

from ._common import as_number, as_tensor as _as_tensor, checker, fail as _fail, passed as _pass
from ..intervene.adversarial import fgsm
from ..intervene.membership import membership_report, tpr_at_fpr
from ..intervene.causal import follow_rates

__all__ = ["check_fgsm", "check_tpr_at_fpr", "check_watermark_following"]


@checker(answer="x_adv")
def check_fgsm(answer, model, x: torch.Tensor, y, epsilon: float) -> None:
    """Lesson 09: FGSM images (N, C, H, W) built by hand for ``model``, ``x``, labels ``y`` and ``epsilon``."""

    answer = _as_tensor(answer, "x_adv", shape=x.shape, hint="Adversarial images have the images' shape.")
    expected = fgsm(model, x, y, epsilon=epsilon)
    answer = answer.to(expected.device, expected.dtype)
    if float(answer.min()) < 0 or float(answer.max()) > 1:
        _fail("some pixels are outside [0, 1]: clip the adversarial image with .clamp(0, 1).")
    step = (answer - x).abs().amax()
    if step > epsilon + 1e-6:
        _fail(f"a pixel moved by {float(step) * 255:.2f}/255, more than epsilon = {epsilon * 255:.2f}/255.")
    if not torch.allclose(answer, expected, atol=1e-6):
        flipped = bool(torch.allclose(answer, (x - epsilon * (expected - x).sign()).clamp(0, 1), atol=1e-6))
        hint = ("you stepped down the loss: an untargeted attack adds epsilon * sign(gradient)." if flipped else
                "use x + epsilon * gradient.sign(), then .clamp(0, 1), with the gradient of the loss at the true "
                "labels.")
        _fail(f"the images differ from FGSM; {hint}")
    return _pass(f"FGSM with epsilon = {epsilon * 255:.0f}/255: every pixel moved by at most epsilon.")


@checker(answer="the TPR")
def check_tpr_at_fpr(answer, scores, is_member, fpr: float = 0.01) -> None:
    """Lesson 09: the true-positive rate of a membership score at a false-positive rate of at most ``fpr``."""

    value = as_number(answer, "the TPR")
    if value > 1:
        _fail(f"{value} is above 1: give the rate as a fraction, not a percentage.")
    if value < 0:
        _fail(f"{value} is below 0: a rate is a share of the members, between 0 and 1.")
    expected = tpr_at_fpr(scores, is_member, fpr)
    if abs(value - expected) > 1e-6:
        auc = membership_report(scores, is_member)["AUC"]
        if abs(value - auc) < 1e-6:
            _fail("that is the AUC; the exercise asks for the TPR at one operating point.")
        _fail(f"{value:.4f} is not the TPR we measure at FPR <= {fpr:.1%}. Hint: take the threshold that flags at "
              "most that share of the non-members, then count the members above it.")
    return _pass(f"TPR {expected:.1%} at FPR <= {fpr:.1%}: the attack identifies that share of the members "
                 "almost without false alarms.")


@checker(answer="the share")
def check_watermark_following(answer, probs: torch.Tensor) -> None:
    """Lesson 09: the share of conflicting interventions (sign s != watermark w) predicted as w,
    from ``intervention_probs`` output (S, W + 1, n, K)."""

    value = as_number(answer, "the share")
    if value > 1:
        _fail(f"{value} is above 1: give the share as a fraction, not a percentage.")
    if value < 0:
        _fail(f"{value} is below 0: a share lies between 0 and 1.")
    rates = follow_rates(probs)
    expected = rates["watermark"]
    if abs(value - expected) > 1e-6:
        if abs(value - rates["sign"]) < 1e-6:
            _fail("that is the share that follows the sign; count predictions equal to the watermark's class.")
        _fail(f"{value:.4f} differs from what we measure. Hint: use probs[:, :-1].argmax(-1), compare it with the "
              "watermark index w, and keep only the pairs with s != w.")
    return _pass(f"{expected:.1%} of the conflicting interventions are answered with the watermark's class.")
