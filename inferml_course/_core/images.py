"""Operations on images and maps that every family shares: channel reductions, min-max scaling, Gaussian blur."""
from __future__ import annotations

import torch

__all__ = ["CHANNELS", "reduce_channels"]

#: Channel reductions of the gradient family.
CHANNELS = ("sum", "abs", "max_abs", "keep")


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
