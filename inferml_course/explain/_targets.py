"""Shared argument handling of the explainers: targets, logits, channel reduction, baselines.

Targets follow the course contract: ``None`` (the predicted class), an ``int`` (the same class
for every image), a sequence or a tensor of shape ``(N,)``. They are checked against the logits
of the forward pass the method runs anyway, so checking costs no extra pass.
"""
from __future__ import annotations

import numbers

import torch
from torch import nn

from .._validate import check_choice, check_images

__all__ = ["CHANNELS", "check_input", "as_target_tensor", "resolve_targets", "check_logits", "reduce_channels",
           "output_dtype", "resolve_baseline", "scores_from_logits", "check_batch_size"]

#: Channel reductions of the gradient family.
CHANNELS = ("sum", "abs", "max_abs", "keep")


def check_input(x, argument: str = "x") -> torch.Tensor:
    """An image batch (N, C, H, W), floating point, finite (the DESIGN contract)."""
    return check_images(x, argument)


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


def check_logits(logits, n: int) -> torch.Tensor:
    """The model output must be logits of shape (N, K)."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != n:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"model must return logits of shape (N, K) = ({n}, K), got {shape}")
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


def reduce_channels(attr: torch.Tensor, channels: str) -> torch.Tensor:
    """(N, C, H, W) -> (N, H, W) by ``channels``: ``"sum"`` (signed), ``"abs"`` (sum of absolute values),
    ``"max_abs"`` (largest absolute value, as in Simonyan et al.), or ``"keep"`` (unchanged)."""
    if channels == "sum":
        return attr.sum(1)
    if channels == "abs":
        return attr.abs().sum(1)
    if channels == "max_abs":
        return attr.abs().amax(1)
    return attr


def output_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 inputs keep float64 (useful for exact tests); everything else returns float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _normalize_mean(model: nn.Module):
    norm = getattr(model, "normalize", None)
    mean = getattr(norm, "mean", None)
    return mean if isinstance(mean, torch.Tensor) else None


def resolve_baseline(model: nn.Module, x: torch.Tensor, baseline, argument: str = "baseline") -> torch.Tensor:
    """A reference image broadcastable to ``x``.

    * ``"mean"``: the per-channel mean colour of the training data, read from the model's
      ``normalize.mean`` buffer (for the course models it is exactly the training-set mean in pixel
      space, so this patch is the grey a zero-centred network sees as "nothing"); 0.5 when the
      model has no such buffer.
    * ``"zero"`` or ``"black"``: 0; a number: that grey level; a tensor of shape (C,), (C, H, W) or
      (N, C, H, W).
    """
    n, c, h, w = x.shape
    if isinstance(baseline, str):
        check_choice(baseline, ("mean", "zero", "black"), argument)
        if baseline == "mean":
            mean = _normalize_mean(model)
            if mean is not None and mean.numel() == c:
                return mean.detach().to(device=x.device, dtype=x.dtype).view(1, c, 1, 1)
            return torch.full((1, c, 1, 1), 0.5, device=x.device, dtype=x.dtype)
        return torch.zeros((1, c, 1, 1), device=x.device, dtype=x.dtype)
    if isinstance(baseline, numbers.Real) and not isinstance(baseline, bool):
        return torch.full((1, c, 1, 1), float(baseline), device=x.device, dtype=x.dtype)
    if isinstance(baseline, torch.Tensor):
        b = baseline.detach().to(device=x.device, dtype=x.dtype)
        if b.shape == (c,):
            b = b.view(1, c, 1, 1)
        elif b.shape == (c, h, w):
            b = b.unsqueeze(0)
        elif b.shape != (n, c, h, w) and b.shape != (1, c, h, w):
            raise ValueError(f"{argument} tensor must have shape ({c},), ({c}, {h}, {w}) or ({n}, {c}, {h}, {w}), "
                             f"got {tuple(b.shape)}")
        if not torch.isfinite(b).all():
            raise ValueError(f"{argument} contains NaN or infinite values")
        return b
    raise TypeError(f"{argument} must be 'mean', 'zero', a number or a tensor, got {type(baseline).__name__}")


#: Pixels (images x H x W) per forward pass that ``batch_size="auto"`` allows: 256 images of 32 x 32 on a CPU
#: (bigger batches only add memory traffic there), 4096 on a GPU.
AUTO_PIXELS = {"cpu": 256 * 32 * 32, "cuda": 4096 * 32 * 32}


def check_batch_size(batch_size, x: torch.Tensor | None = None, argument: str = "batch_size") -> int | None:
    """A positive int, None (everything in one pass), or ``"auto"`` (needs ``x``): as many images of x's
    size as :data:`AUTO_PIXELS` allows on x's device (at least one)."""
    if batch_size is None:
        return None
    if isinstance(batch_size, str) and batch_size == "auto":
        if x is None:  # validated; resolved later, once x is known
            return "auto"
        budget = AUTO_PIXELS.get(x.device.type, AUTO_PIXELS["cuda"])
        return max(1, budget // (x.shape[-1] * x.shape[-2]))
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"{argument} must be a positive integer, 'auto' or None, got {batch_size!r}")
    return batch_size
