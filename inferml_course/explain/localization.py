"""Two small localisation scores: does a map point at the ground-truth region?

Both take maps (N, H, W) and boolean masks (N, H, W) and return one value per image (N,);
**higher is better** for both. A later lesson's ``evaluate`` package has the full set.

* :func:`pointing_game` (Zhang et al. 2016): 1 when the map's maximum lies in the mask (optionally
  within ``tolerance`` pixels of it), else 0. A constant map (for example a Grad-CAM that the ReLU
  wiped out) points nowhere and counts as a miss.
* :func:`energy_inside` (the "energy-based pointing game" of Score-CAM, Wang et al. 2020): the share
  of the map's positive mass inside the mask, sum(relu(map) * mask) / sum(relu(map)); 0 for a map
  with no positive mass. A uniform map scores the mask's area fraction (:func:`mask_fraction`), the
  chance level to compare with.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["pointing_game", "energy_inside", "mask_fraction"]


def _check(maps, masks):
    if not isinstance(maps, torch.Tensor) or maps.dim() != 3:
        raise ValueError(f"maps must be a tensor of shape (N, H, W), got "
                         f"{tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__}")
    if not isinstance(masks, torch.Tensor) or masks.shape != maps.shape:
        shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise ValueError(f"masks must have the maps' shape {tuple(maps.shape)}, got {shape}")
    if not torch.isfinite(maps).all():
        raise ValueError("maps contain NaN or infinite values")
    return maps.detach().double(), masks.to(maps.device).bool()


def pointing_game(maps: torch.Tensor, masks: torch.Tensor, tolerance: int = 0) -> torch.Tensor:
    """Hits (N,) in {0., 1.}: the maximum of each map lies inside its mask (dilated by ``tolerance``
    pixels). Ties at the maximum count as a hit if any tied pixel is inside. Higher is better."""
    maps, masks = _check(maps, masks)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise ValueError(f"tolerance must be a non-negative int, got {tolerance!r}")
    if tolerance:
        masks = F.max_pool2d(masks[:, None].float(), 2 * tolerance + 1, stride=1, padding=tolerance)[:, 0] > 0
    flat, inside = maps.flatten(1), masks.flatten(1)
    top = flat.amax(1, keepdim=True)
    constant = flat.amin(1) == top[:, 0]
    hit = ((flat == top) & inside).any(1) & ~constant
    return hit.float()


def energy_inside(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Share (N,) in [0, 1] of each map's positive mass inside its mask; 0 when there is none.
    Higher is better."""
    maps, masks = _check(maps, masks)
    pos = maps.clamp_min(0).flatten(1)
    total = pos.sum(1)
    inside = (pos * masks.flatten(1)).sum(1)
    return torch.where(total > 0, inside / total.clamp_min(1e-300), torch.zeros_like(total)).float()


def mask_fraction(masks: torch.Tensor) -> torch.Tensor:
    """The area share (N,) of each mask: the energy a uniform map would put inside (chance level)."""
    if not isinstance(masks, torch.Tensor) or masks.dim() != 3:
        raise ValueError("masks must be a tensor of shape (N, H, W)")
    return masks.flatten(1).float().mean(1)
