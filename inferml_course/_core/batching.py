"""One batch-size rule for every family: ``batch_size`` is ``"auto"``, a positive int or ``None``.

``"auto"`` chooses by image size and device (:data:`AUTO_PIXELS`), ``None`` runs all the work in one pass
(Captum's behaviour). :func:`batches` splits a tensor by that rule.
"""
from __future__ import annotations

import sys

import torch

__all__ = ["AUTO_PIXELS", "check_batch_size", "chunk_size", "batches"]


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


def chunk_size(batch_size, x: torch.Tensor, argument: str = "batch_size") -> int:
    """The :func:`check_batch_size` rule as a step for ``range`` and slicing: ``None`` (all the work in one
    pass) becomes an unbounded step."""
    size = check_batch_size(batch_size, x, argument)
    return sys.maxsize if size is None else size


def batches(t: torch.Tensor, batch_size, images: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """``t`` split along dim 0 by the :func:`check_batch_size` rule (``images`` sets the image size that
    ``"auto"`` reads; default ``t`` itself); ``None`` is one chunk."""
    size = check_batch_size(batch_size, t if images is None else images)
    return (t,) if size is None or size >= max(len(t), 1) else t.split(size)
