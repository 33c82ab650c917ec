"""Argument checks shared by every public function (one place, one wording)."""
from __future__ import annotations

from collections.abc import Iterable

import torch


def check_choice(value, valid: Iterable[str], argument: str) -> str:
    """Return ``value`` if it is one of ``valid``; else a ValueError listing the valid names."""
    valid = list(valid)
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"unknown {argument} {value!r}; valid names: {', '.join(valid)}")
    return value


def check_images(x, argument: str = "x", channels: int | None = None, allow_empty: bool = False) -> torch.Tensor:
    """Check an image batch: a floating tensor of shape (N, C, H, W), finite values."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{argument} must be a torch.Tensor of shape (N, C, H, W), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{argument} must be a floating-point tensor with values in [0, 1], got dtype {x.dtype}")
    if x.dim() != 4:
        raise ValueError(f"{argument} must have shape (N, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{argument} is an empty batch (N = 0)")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{argument} must have {channels} channels, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{argument} contains NaN or infinite values")
    return x


def check_int_range(value, low: int, high: int, argument: str) -> int:
    """Check that ``value`` is an integer in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{argument} must be an integer from {low} to {high}, got {value!r}")
    return value


def check_positive_int(value, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{argument} must be a positive integer, got {value!r}")
    return value
