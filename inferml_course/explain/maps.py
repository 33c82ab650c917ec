"""Display helpers kept apart from the explainers (which return raw maps).

* :func:`normalize_maps`: per-image scaling for display, never across the batch.
* :func:`overlay`: an RGB blend of images and coloured maps, as a tensor (no figure).
"""
from __future__ import annotations

import torch

from .._core.arguments import checked
from .._core.checks import check_choice, check_float_tensor, check_images, check_number, check_unit_interval
from .._core.images import minmax

__all__ = ["normalize_maps", "overlay"]


@checked
def normalize_maps(maps: torch.Tensor, mode: str = "minmax", percentile: float = 99.0, eps: float = 1e-12):
    """Scale each map (N, H, W) on its own.

    * ``"minmax"``: (m - min) / (max - min) into [0, 1] (the CAM papers' display rule); constant
      maps become 0 (the authors' code divides by zero there);
    * ``"absmax"``: m / max|m| into [-1, 1], keeping the sign and zero;
    * ``"percentile"``: m / (the ``percentile``-th percentile of |m|), clipped to [-1, 1]
      (robust to a few extreme pixels).

    Maps with NaN or infinite values are refused (``ValueError``): a scaled NaN map would look like a
    valid one. The scaling runs in float64 and returns float32, so maps with values beyond float32's range
    (a float64 map of 1e100) or spans that overflow it (-3e38 to 3e38) still scale into the range.
    """
    check_choice(mode, ("minmax", "absmax", "percentile"), "mode")
    check_float_tensor(maps, "maps", "(N, H, W)", min_dim=2, batch=False)
    if mode == "percentile":
        check_number(percentile, "percentile")
        if percentile > 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile!r}")
    flat = maps.detach().flatten(1).double()
    if mode == "minmax":
        out = minmax(flat, eps)
    elif mode == "absmax":
        out = flat / flat.abs().amax(1, keepdim=True).clamp_min(eps)
    else:
        scale = torch.quantile(flat.abs(), percentile / 100.0, dim=1, keepdim=True).clamp_min(eps)
        out = (flat / scale).clamp(-1, 1)
    return out.float().view(maps.shape)


@checked
def overlay(images: torch.Tensor, maps: torch.Tensor, alpha: float = 0.5, cmap: str | None = None) -> torch.Tensor:
    """Blend coloured maps over images: RGB (N, 3, H, W) in [0, 1].

    Unsigned maps are min-max scaled and coloured with ``inferno``; maps with negative values are
    scaled by max|m| and coloured with the diverging ``coolwarm`` (zero is white-grey).
    """
    import matplotlib

    check_images(images, "images")
    check_float_tensor(maps, "maps", "(N, H, W)", dim=3)
    alpha = check_unit_interval(alpha, "alpha", what=" (the weight of the coloured map)")
    if maps.shape[0] != images.shape[0] or maps.shape[-2:] != images.shape[-2:]:
        raise ValueError(f"images (N, C, H, W) and maps (N, H, W) must match, got {tuple(images.shape)} "
                         f"and {tuple(maps.shape)}")
    signed = bool((maps < 0).any())
    scaled = normalize_maps(maps, "absmax") * 0.5 + 0.5 if signed else normalize_maps(maps, "minmax")
    colours = matplotlib.colormaps[cmap or ("coolwarm" if signed else "inferno")]
    rgb = torch.from_numpy(colours(scaled.cpu().numpy())[..., :3]).float().permute(0, 3, 1, 2)
    base = images.detach().float().cpu().clamp(0, 1)
    if base.shape[1] == 1:
        base = base.expand(-1, 3, -1, -1)
    return (1 - alpha) * base + alpha * rgb
