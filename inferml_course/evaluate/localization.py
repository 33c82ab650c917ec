"""Application evaluation: compare explanation maps with ground-truth regions that people marked.

The lecture's application evaluation compares maps with what humans attend to (gaze, the pointing
game); our signs come with two such regions for every image: the whole sign
(``dataset.masks["sign"]``) and the part that tells a sign from its look-alike
(``dataset.masks["part"]``). Every function takes maps (N, H, W) and boolean masks (N, H, W) and
returns one value per image (N,); **higher is better** for all five:

=========================== ================================================================
:func:`pointing_game`        1 if the map's maximum lies in the mask (within ``tolerance``
                             pixels; Zhang et al. 2016), else 0; ties count as a hit when any
                             tied pixel is inside; a constant map points nowhere (a miss)
:func:`energy_pointing_game` the share of the map's positive mass inside the mask (Score-CAM's
                             energy-based pointing game); chance level = the mask's area share
:func:`iou`                  |B & G| / |B | G| with B = {min-max scaled map >= threshold}
                             (the lecture's intersection over union)
:func:`correlation`          Pearson correlation between the map and the 0/1 mask (the
                             lecture's CC); 0 for a constant map
:func:`pixel_accuracy`       share of all H W pixels where B equals the mask
=========================== ================================================================

An image whose mask is empty (or, for :func:`correlation` and :func:`pixel_accuracy`, full) has no
answer: its value is NaN and a ``RuntimeWarning`` says how many. Aggregate with ``nanmean``.
Pixel accuracy rewards the empty map on small masks (a map that marks nothing is right on every
background pixel); IoU does not.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .._core.arguments import checked
from .._core.checks import check_unit_interval
from .._core.images import mask_iou
from .._core.ranks import pearson_rows
from .._core.directions import describe, higher_is_better, register
from ._common import as_map_dict, check_maps, minmax, warn_nan

__all__ = ["pointing_game", "energy_pointing_game", "iou", "correlation", "pixel_accuracy", "binarize",
           "localization_scores", "mask_fraction", "LOCALIZATION_METRICS"]

# the direction of each metric defined here (the package's direction registry, _core.directions)
register('pointing_game', True, quantity='pointing game hit rate (Zhang et al. 2016)', family="evaluate")
register('energy_pointing_game', True, quantity='share of positive map energy inside the mask', family="evaluate")
register('iou', True, quantity='IoU of the thresholded map with the ground-truth mask (localisation)', family="evaluate")
register('correlation', True, quantity='Pearson correlation of the map with the 0/1 mask', family="evaluate")
register('pixel_accuracy', True, quantity='share of pixels where the thresholded map equals the mask', family="evaluate")

#: Every localisation metric here -> its direction ("higher is better" for all), from the package's
#: direction registry (:mod:`inferml_course._core.directions`).
LOCALIZATION_METRICS = {name: describe(higher_is_better(name))
                        for name in ("pointing_game", "energy_pointing_game", "iou", "correlation", "pixel_accuracy")}


def _check(maps, masks):
    maps = check_maps(maps)
    if not isinstance(masks, torch.Tensor):
        raise TypeError(f"masks must be a boolean tensor of shape {tuple(maps.shape)}, got {type(masks).__name__}")
    if masks.shape != maps.shape:
        raise ValueError(f"masks must have the maps' shape {tuple(maps.shape)}, got {tuple(masks.shape)}")
    if masks.dtype != torch.bool:
        if masks.is_floating_point() or masks.is_complex() or bool(((masks != 0) & (masks != 1)).any()):
            raise TypeError(f"masks must be boolean (or 0/1 integers), got dtype {masks.dtype}")
        masks = masks.bool()
    return maps.detach().double(), masks.to(maps.device)


def _nan_where(values: torch.Tensor, undefined: torch.Tensor, why: str) -> torch.Tensor:
    warn_nan(int(undefined.sum()), undefined.numel(), why, stacklevel=4)
    return torch.where(undefined, torch.full_like(values, float("nan")), values)


def _check_threshold(threshold):
    return check_unit_interval(threshold, "threshold", what=" (on the min-max scaled map)")


@checked
def binarize(maps: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """The region (N, H, W) bool where the min-max scaled map is >= ``threshold``; a constant map
    marks nothing (its scaled values are all 0 and thresholds above 0 select nothing)."""
    threshold = _check_threshold(threshold)
    scaled = minmax(check_maps(maps).detach().double())
    if threshold == 0:
        flat = maps.flatten(1)
        constant = (flat.amax(1) == flat.amin(1)).view(-1, 1, 1)
        return (scaled >= 0) & ~constant
    return scaled >= threshold


@checked
def pointing_game(maps: torch.Tensor, masks: torch.Tensor, tolerance: int = 0) -> torch.Tensor:
    """Hits (N,) in {0, 1}, NaN for empty masks: the map's maximum lies in the mask dilated by
    ``tolerance`` pixels. **Higher is better**; the mean is the hit rate."""
    maps, masks = _check(maps, masks)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise ValueError(f"tolerance must be a non-negative int, got {tolerance!r}")
    empty = ~masks.flatten(1).any(1)
    if tolerance:
        masks = F.max_pool2d(masks[:, None].float(), 2 * tolerance + 1, stride=1, padding=tolerance)[:, 0] > 0
    flat, inside = maps.flatten(1), masks.flatten(1)
    top = flat.amax(1, keepdim=True)
    constant = flat.amin(1) == top[:, 0]
    hit = (((flat == top) & inside).any(1) & ~constant).double()
    return _nan_where(hit, empty, "the mask is empty, so there is nothing to point at")


@checked
def energy_pointing_game(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Share (N,) in [0, 1] of the map's positive mass inside the mask (0 when the map has no
    positive mass; NaN for empty masks). **Higher is better**; a uniform map scores the mask's area share."""
    maps, masks = _check(maps, masks)
    pos = maps.clamp_min(0).flatten(1)
    total = pos.sum(1)
    inside = (pos * masks.flatten(1)).sum(1)
    share = torch.where(total > 0, inside / total.clamp_min(1e-300), torch.zeros_like(total))
    return _nan_where(share, ~masks.flatten(1).any(1), "the mask is empty, so no energy can fall inside it")


@checked
def iou(maps: torch.Tensor, masks: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Intersection over union (N,) of :func:`binarize` (maps, threshold) with the masks; NaN for
    empty masks. **Higher is better**."""
    maps, masks = _check(maps, masks)
    value = mask_iou(binarize(maps, threshold), masks)
    return _nan_where(value, ~masks.flatten(1).any(1), "the mask is empty, so IoU is undefined")


@checked
def correlation(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Pearson correlation (N,) in [-1, 1] between the map and the 0/1 mask; 0 for a constant map;
    NaN when the mask is empty or covers the whole image. **Higher is better**."""
    maps, masks = _check(maps, masks)
    truth = masks.flatten(1)
    return _nan_where(pearson_rows(maps, masks), ~truth.any(1) | truth.all(1),
                      "the mask is empty or covers the whole image, so it has no variance to correlate with")


@checked
def pixel_accuracy(maps: torch.Tensor, masks: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Share (N,) of the H W pixels on which :func:`binarize` (maps, threshold) agrees with the mask;
    NaN for empty or full masks. **Higher is better**, but see the module note on small masks."""
    maps, masks = _check(maps, masks)
    region = binarize(maps, threshold).flatten(1)
    truth = masks.flatten(1)
    value = (region == truth).double().mean(1)
    degenerate = ~truth.any(1) | truth.all(1)
    return _nan_where(value, degenerate, "the mask is empty or covers the whole image")


@checked
def localization_scores(maps, masks: torch.Tensor, threshold: float = 0.5, tolerance: int = 0) -> dict:
    """{name: {metric: nanmean over images}} for one map batch or a dict name -> maps; all higher is better."""
    named, _ = as_map_dict(maps)
    out = {}
    for name, m in named.items():
        out[name] = {
            "pointing_game": float(pointing_game(m, masks, tolerance).nanmean()),
            "energy_pointing_game": float(energy_pointing_game(m, masks).nanmean()),
            "iou": float(iou(m, masks, threshold).nanmean()),
            "correlation": float(correlation(m, masks).nanmean()),
            "pixel_accuracy": float(pixel_accuracy(m, masks, threshold).nanmean()),
        }
    return out


@checked
def mask_fraction(masks: torch.Tensor) -> torch.Tensor:
    """The area share (N,) of each mask (N, H, W): the energy a uniform map puts inside it, the chance
    level of :func:`energy_pointing_game`."""
    if not isinstance(masks, torch.Tensor) or masks.dim() != 3:
        shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise ValueError(f"masks must be a tensor of shape (N, H, W), got {shape}")
    return masks.flatten(1).float().mean(1)
