"""Operations on images and maps that every family shares: channel reductions, min-max scaling, Gaussian blur,
the intersection over union of two masks."""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

__all__ = ["CHANNELS", "reduce_channels", "minmax", "gaussian_blur", "mask_iou"]

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


def _symmetric_index(n: int, radius: int, device) -> torch.Tensor:
    """Indices that pad a length-n axis by ``radius`` on both sides, mirroring with the edge repeated
    (scipy.ndimage's ``mode="reflect"``)."""
    i = torch.arange(-radius, n + radius, device=device)
    i = torch.where(i < 0, -i - 1, i)
    i = torch.where(i >= n, 2 * n - i - 1, i)
    return i.clamp(0, n - 1)


def gaussian_blur(x: torch.Tensor, sigma, radius: int | None = None) -> torch.Tensor:
    """The package's one Gaussian blur: each image of (N, C, H, W) blurred with its own standard deviation
    ``sigma`` (a number or a tensor (N,), in pixels; 0 leaves an image unchanged).

    Separable kernels with scipy.ndimage's conventions (truncation radius int(4 sigma + 0.5), ``mode="reflect"``
    borders that repeat the edge pixel), so it equals ``scipy.ndimage.gaussian_filter`` per image and channel.
    ``radius`` fixes the truncation for every image instead (a kernel of 2 radius + 1 taps); either radius is
    capped by the image size. Differentiable with respect to ``x`` and to a tensor ``sigma``.
    """
    if x.dim() != 4:
        raise ValueError(f"x must be an image batch (N, C, H, W), got shape {tuple(x.shape)}")
    if isinstance(sigma, torch.Tensor):
        if sigma.dim() > 1 or sigma.numel() not in (1, x.shape[0]):
            raise ValueError(f"sigma must be a number or a tensor of shape ({x.shape[0]},), got {tuple(sigma.shape)}")
        sigma = sigma.expand(x.shape[0]) if sigma.numel() == 1 else sigma
        if not torch.isfinite(sigma).all() or bool((sigma < 0).any()):
            raise ValueError("sigma must hold finite non-negative values")
    elif isinstance(sigma, numbers.Real) and not isinstance(sigma, bool) and math.isfinite(sigma) and sigma >= 0:
        sigma = torch.full((x.shape[0],), float(sigma))
    else:
        raise ValueError(f"sigma must be a finite non-negative number or a tensor (N,), got {sigma!r}")
    n, c, h, w = x.shape
    sigma = sigma.to(device=x.device, dtype=x.dtype).reshape(n)
    fixed = radius is not None
    if fixed and (isinstance(radius, bool) or not isinstance(radius, int) or radius < 0):
        raise ValueError(f"radius must be a non-negative int or None, got {radius!r}")
    if not fixed:
        radius = int(4 * float(sigma.max()) + 0.5) if n else 0
    radius = max(0, min(radius, min(h, w)))
    if radius == 0:
        return x
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    safe = sigma.clamp_min(1e-12).view(n, 1)
    # each image keeps its own truncation radius int(4 sigma + 0.5), as scipy does
    own = torch.full((n, 1), float(radius), device=x.device, dtype=x.dtype) if fixed \
        else (4 * sigma + 0.5).floor().view(n, 1)
    kernel = torch.exp(-0.5 * (offsets.view(1, -1) / safe) ** 2) * (offsets.abs().view(1, -1) <= own)
    kernel = torch.where(sigma.view(n, 1) > 0, kernel, (offsets == 0).to(x.dtype).view(1, -1))
    kernel = kernel / kernel.sum(1, keepdim=True)  # (N, 2r + 1)
    k = kernel.repeat_interleave(c, 0)  # one group per (image, channel)
    y = x.reshape(1, n * c, h, w)
    y = F.conv2d(y[..., _symmetric_index(w, radius, x.device)], k.view(n * c, 1, 1, -1), groups=n * c)
    y = F.conv2d(y[..., _symmetric_index(h, radius, x.device), :], k.view(n * c, 1, -1, 1), groups=n * c)
    return y.view(n, c, h, w)


def minmax(maps: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-map (m - min) / (max - min) into [0, 1], over every dimension but the first; a constant map
    becomes all zeros (the CAM papers' code divides by zero there). Same dtype and shape as ``maps``."""
    flat = maps.flatten(1)
    lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    span = hi - lo
    out = torch.where(span > eps, (flat - lo) / span.clamp_min(eps), torch.zeros_like(flat))
    return out.view(maps.shape)


def mask_iou(a: torch.Tensor, b: torch.Tensor, empty: float = 1.0) -> torch.Tensor:
    """Intersection over union of boolean masks (..., H, W) -> float64 (...), **higher = more overlap**;
    ``empty`` where both masks are empty (union 0). The package's one IoU: the localisation score,
    the segmentation prompts and the anomaly localisation read it."""
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.dtype != torch.bool \
            or b.dtype != torch.bool:
        raise TypeError("both masks must be boolean tensors")
    if a.shape != b.shape:
        raise ValueError(f"the masks must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    inter = (a & b).flatten(-2).sum(-1).double()
    union = (a | b).flatten(-2).sum(-1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.full_like(union, float(empty)))
