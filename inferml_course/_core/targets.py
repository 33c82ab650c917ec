"""Targets and model outputs, checked the same way by every family.

Targets follow the course contract: ``None`` (the predicted class), an ``int`` (the same class
for every image), a sequence or a tensor of shape ``(N,)``. They are checked against the logits
of the forward pass the method runs anyway, so checking costs no extra pass.
"""
from __future__ import annotations

import numbers

import torch


__all__ = ["as_target_tensor", "resolve_targets", "check_model_output", "output_dtype",
           "scores_from_logits"]


def as_target_tensor(target, n: int, device, argument: str = "target") -> torch.Tensor | None:
    """``target`` as a LongTensor (N,) on ``device``, or None when ``target`` is None.

    Range checks happen later, in :func:`resolve_targets`, against the logits of the forward pass.
    """
    if target is None:
        return None
    if isinstance(target, bool):
        raise TypeError(f"{argument} must be None, an int, a sequence of ints or a tensor of shape (N,), got a bool")
    if isinstance(target, numbers.Integral):
        return torch.full((n,), int(target), dtype=torch.long, device=device)
    if isinstance(target, torch.Tensor):
        t = target
    else:
        try:
            t = torch.as_tensor(list(target))
        except (TypeError, ValueError):
            raise TypeError(f"{argument} must be None, an int, a sequence of ints or a tensor of shape (N,), "
                            f"got {type(target).__name__}") from None
    if t.dim() == 0:
        t = t.reshape(1).expand(n)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{argument} must hold integer class indices, got dtype {t.dtype}")
    if t.shape != (n,):
        raise ValueError(f"{argument} must have shape ({n},) (one class per image), got {tuple(t.shape)}")
    return t.to(device=device, dtype=torch.long)


def check_model_output(logits, n: int) -> torch.Tensor:
    """The model output must be logits of shape (N, K): a tuple, a dict or an output object (as Hugging
    Face models return) is refused with a hint to wrap the model with
    :func:`inferml_course.models.as_classifier`, which returns the logits tensor."""
    if not isinstance(logits, torch.Tensor):
        raise ValueError(f"model must return a logits tensor of shape (N, K) = ({n}, K), got a "
                         f"{type(logits).__name__}; wrap it: model = inferml_course.models.as_classifier(model, "
                         "normalize=(mean, std)) returns the logits (`.logits`, or the first entry of a tuple) of "
                         "images in [0, 1]")
    if logits.dim() != 2 or logits.shape[0] != n:
        raise ValueError(f"model must return logits of shape (N, K) = ({n}, K), got {tuple(logits.shape)}")
    return logits


def resolve_targets(target: torch.Tensor | None, logits: torch.Tensor, argument: str = "target") -> torch.Tensor:
    """Targets (N,) from :func:`as_target_tensor`'s result, checked against ``logits`` (N, K).

    ``None`` becomes the predicted class (argmax of the logits).
    """
    k = logits.shape[1]
    if target is None:
        return logits.detach().argmax(1)
    bad = (target < 0) | (target >= k)
    if bool(bad.any()):
        value = int(target[bad][0])
        raise ValueError(f"{argument} out of range: {value} is not a class index from 0 to {k - 1}")
    return target


def scores_from_logits(logits: torch.Tensor, output: str) -> torch.Tensor:
    """The class scores perturbation methods compare: ``"probability"`` (softmax) or ``"logit"``."""
    if output == "probability":
        return torch.softmax(logits, dim=1)
    return logits


def output_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 inputs keep float64 (useful for exact tests); everything else returns float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32

