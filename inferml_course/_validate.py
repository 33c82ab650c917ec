"""Argument checks shared by every public function (one place, one wording)."""
from __future__ import annotations

from collections.abc import Iterable

import math

import torch


def check_choice(value, valid: Iterable[str], argument: str) -> str:
    """Return ``value`` if it is one of ``valid``; else a ValueError listing the valid names."""
    valid = list(valid)
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"unknown {argument} {value!r}; valid names: {', '.join(valid)}")
    return value


def check_float_tensor(x, argument: str, form: str, dim: int | None = None, min_dim: int = 1,
                       batch: bool = True, what: str = "") -> torch.Tensor:
    """Check a floating tensor of finite values with ``dim`` dimensions (or at least ``min_dim``).

    ``form`` is the shape as the error messages show it, e.g. ``"(N, C, H, W)"``; ``batch``: the
    first dimension is a batch that must not be empty; ``what`` is added to the dtype message.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{argument} must be a torch.Tensor of shape {form}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{argument} must be a floating-point tensor{what}, got dtype {x.dtype}")
    if (dim is not None and x.dim() != dim) or x.dim() < min_dim:
        raise ValueError(f"{argument} must have shape {form}, got shape {tuple(x.shape)}")
    if batch and x.shape[0] == 0:
        raise ValueError(f"{argument} is an empty batch (N = 0)")
    if not torch.isfinite(x).all():
        raise ValueError(f"{argument} contains NaN or infinite values")
    return x


def check_images(x, argument: str = "x", channels: int | None = None, allow_empty: bool = False) -> torch.Tensor:
    """Check an image batch: a floating tensor of shape (N, C, H, W), finite values."""
    check_float_tensor(x, argument, "(N, C, H, W)", dim=4, batch=not allow_empty, what=" with values in [0, 1]")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{argument} must have {channels} channels, got shape {tuple(x.shape)}")
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


def check_number(value, argument: str, positive: bool = True, allow_zero: bool = False) -> float:
    """A finite real number (not a bool) as a float; ``positive``: > 0, or >= 0 with ``allow_zero``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{argument} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or (positive and (value < 0 or (value == 0 and not allow_zero))):
        kind = ("non-negative " if allow_zero else "positive ") if positive else ""
        raise ValueError(f"{argument} must be a {kind}finite number, got {value!r}")
    return value
