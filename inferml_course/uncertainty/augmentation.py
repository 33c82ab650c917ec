"""Test-time augmentation (TTA): uncertainty from one network and several views of the same input.

At inference we have one image and one trained network. TTA passes a few transformed copies of the
image ("views") through the network and averages the softmax outputs. When the views agree, the
prediction does not hinge on where exactly the sign sits or how bright it is; when they disagree,
the network's answer is fragile. The tutorial lists TTA among the future directions of inference
research: the research question is *which* augmentations to use.

Conventions (as in :mod:`.bayesian`):

* probabilities are stacked **view-major**: ``(A, N, K)`` = (views, inputs, classes), the first view
  being whatever ``augmentations[0]`` names (``"identity"`` by default);
* views are averaged in **probability** space; entropies are in **nats**;
* every uncertainty returned here is **higher = more uncertain** (``measure="msp"`` is *minus* the
  largest mean probability, the way the score registry turns the MSP into an uncertainty).

Augmentations (pixel space, images in [0, 1])::

    identity                      the image itself
    shift_up / _down / _left / _right   the content moves by ``shift`` pixels; the border is replicated
    brighter / darker             every pixel plus / minus ``gain``, clipped to [0, 1]
    hflip                         mirror left-right: NOT label-preserving for mirrored signs
                                  (keep left <-> keep right, no left turn <-> no right turn)

:data:`DEFAULT_AUGMENTATIONS` holds the label-preserving ones for the course's signs (the identity and
the four shifts: the training signs sit at random positions).

Modes: TTA is defined at inference (``policy="eval"``): a model left in training mode runs in eval mode
for the call, with a warning; every module's flag is restored afterwards.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .._core.arguments import checked
from .._core.adapter import forward_logits
from .._core.batching import check_batch_size
from .._core.checks import check_choice, check_images, check_model_input, check_number, check_positive_int
from .._core.directions import SCORE, register
from .._core.modes import guarded
from .bayesian import MEASURES, decompose

__all__ = ["AUGMENTATIONS", "DEFAULT_AUGMENTATIONS", "TTA_MEASURES", "augment", "augmented_views", "tta_probs",
           "tta"]

#: every augmentation :func:`augment` knows
AUGMENTATIONS = ("identity", "shift_up", "shift_down", "shift_left", "shift_right", "brighter", "darker", "hflip")
#: the label-preserving views for the course's signs (no flip: it swaps the mirrored classes)
DEFAULT_AUGMENTATIONS = ("identity", "shift_up", "shift_down", "shift_left", "shift_right")
#: what :func:`tta` can return: the three parts of :func:`.bayesian.decompose` and minus the mean-view MSP
TTA_MEASURES = (*MEASURES, "msp")

register("tta", False, quantity="entropy of the mean prediction over test-time augmentations: an uncertainty",
         family="uncertainty.augmentation", kind=SCORE)


def _check_augmentations(augmentations) -> tuple[str, ...]:
    if isinstance(augmentations, str):
        augmentations = (augmentations,)
    names = tuple(augmentations)
    if not names:
        raise ValueError(f"augmentations must name at least one of {AUGMENTATIONS}")
    for name in names:
        check_choice(name, AUGMENTATIONS, "augmentations")
    return names


@checked
def augment(x: torch.Tensor, name: str, shift: int = 2, gain: float = 0.1) -> torch.Tensor:
    """One augmentation ``name`` (see the module docstring) of images ``x`` (N, C, H, W): same shape."""
    check_images(x, "x")
    check_choice(name, AUGMENTATIONS, "name")
    check_positive_int(shift, "shift")
    check_number(gain, "gain")
    h, w = x.shape[-2:]
    if name.startswith("shift") and shift >= min(h, w):
        raise ValueError(f"shift must be smaller than the image ({h} x {w}), got {shift}")
    if name == "identity":
        return x
    if name == "hflip":
        return x.flip(-1)
    if name in ("brighter", "darker"):
        return (x + (gain if name == "brighter" else -gain)).clamp(0, 1)
    s = shift
    padded = F.pad(x, (s, s, s, s), mode="replicate")    # padded[i + s, j + s] = x[i, j]
    rows, cols = {"shift_up": (2 * s, s), "shift_down": (0, s), "shift_left": (s, 2 * s), "shift_right": (s, 0)}[name]
    return padded[..., rows:rows + h, cols:cols + w]


@checked
def augmented_views(x: torch.Tensor, augmentations=DEFAULT_AUGMENTATIONS, shift: int = 2,
                    gain: float = 0.1) -> torch.Tensor:
    """The views of images ``x`` (N, C, H, W), stacked view-major: (A, N, C, H, W)."""
    names = _check_augmentations(augmentations)
    return torch.stack([augment(x, name, shift, gain) for name in names])


@guarded(policy="eval")
@torch.no_grad()
@checked
def tta_probs(model, x: torch.Tensor, augmentations=DEFAULT_AUGMENTATIONS, shift: int = 2, gain: float = 0.1,
              batch_size="auto") -> torch.Tensor:
    """Softmax probabilities of every view, (A, N, K), float32 as in :mod:`.bayesian`: each view is built
    once and pushed through the model in chunks (:func:`~inferml_course._core.adapter.forward_logits`), so
    at most one view of the N images exists at a time, not all A."""
    x = check_model_input(model, x)
    check_batch_size(batch_size)
    names = _check_augmentations(augmentations)
    logits = torch.stack([forward_logits(model, augment(x, name, shift, gain), batch_size) for name in names])
    return torch.softmax(logits.float(), dim=2)


@checked
def tta(model, x: torch.Tensor, augmentations=DEFAULT_AUGMENTATIONS, measure: str = "total", shift: int = 2,
        gain: float = 0.1, batch_size="auto") -> torch.Tensor:
    """Test-time-augmentation uncertainty (N,), **higher = more uncertain**.

    ``measure``: ``"total"`` (entropy of the mean prediction over the views, nats), ``"aleatoric"`` (mean
    entropy of the views), ``"epistemic"`` (their difference: how much the views disagree) or ``"msp"``
    (minus the largest mean probability, the MSP of the averaged prediction as an uncertainty).
    """
    check_choice(measure, TTA_MEASURES, "measure")
    probs = tta_probs(model, x, augmentations, shift, gain, batch_size)
    if measure == "msp":
        return -probs.mean(0).amax(1)
    return getattr(decompose(probs), measure)
