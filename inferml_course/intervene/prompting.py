"""Trial-and-error interventions: point prompts for a promptable segmenter.

Segment Anything (SAM) turns clicks into masks: positive points ("this is the object") and
negative points ("this is not"). The PointPrompt study (Quesada et al., CVPR 2024) recorded
about 200 000 such prompts from annotators who saw the IoU after every click; its conclusion
was that people over-prompt and that their strategies often make the mask worse.

We cannot ship SAM, so the course's promptable segmenter is the **random walker** of
scikit-image (Grady 2006): every prompt seeds a label, and each remaining pixel takes the label
whose seeds a random walk started at that pixel most likely reaches first, with steps across
strong colour edges made unlikely (``beta``). Like SAM it needs no training and responds to
each click at once; unlike SAM it never "hallucinates" a shape it has learned, so what we
measure here is about *where* annotators click, not about a network's prior. Unless
``border_background=False``, the one-pixel image frame is an implicit negative prompt (the sign
is the object in the middle; a point prompt alone would otherwise leave nothing to contrast).

Simulated annotators (:data:`STRATEGIES`), each adding one click at a time and seeing the
result:

* ``"well_placed"``: clicks the centre of the largest remaining error (the pixel farthest from
  the error's edge, as in SAM's own interactive evaluation), positive on a missed object part,
  negative on a spurious region. Precise to the pixel.
* ``"over_prompting"``: the same intention, but with a human hand: every click lands off target
  by a Gaussian offset (``jitter`` pixels) and the annotator keeps clicking for the whole budget.
  Once the remaining errors are thin bands along the sign's edge, a slightly-off click lands on
  the wrong side and seeds the wrong label.
* ``"random"``: a positive click anywhere on the object or a negative click anywhere on the
  background, with equal probability (the first click is positive); no feedback used.

scikit-image segments one image at a time, so :func:`prompt_curves` loops over images and
prompt counts (about 5 ms per segmentation of a 32x32 image).
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np
import torch
from tqdm.auto import tqdm

from .._core.arguments import checked
from .._core.images import mask_iou
from .._core.checks import check_choice, check_float_tensor, check_positive_int, check_seed

__all__ = ["STRATEGIES", "segment", "next_prompt", "simulate_annotator", "prompt_curves", "curve_summary",
           "ideal_prompts"]

#: Simulated annotator strategies.
STRATEGIES = ("well_placed", "over_prompting", "random")


def _check_image(image, argument: str = "image") -> np.ndarray:
    check_float_tensor(image, argument, "(C, H, W) (one image)", dim=3, batch=False, what=" with values in [0, 1]")
    return image.detach().cpu().double().permute(1, 2, 0).numpy()


def _check_mask(mask, shape, argument: str = "mask") -> np.ndarray:
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"{argument} must be a boolean tensor of shape {tuple(shape)}")
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{argument} must have shape {tuple(shape)} (the image's H, W), got {tuple(mask.shape)}")
    return mask.detach().cpu().numpy()


def _check_prompts(points, labels, shape):
    pts = points if isinstance(points, torch.Tensor) else torch.as_tensor(
        np.asarray([] if points is None else points, dtype=np.float64))
    if pts.numel() == 0:
        pts = pts.reshape(0, 2)
    if pts.dim() != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must have shape (P, 2) of (row, col), got {tuple(pts.shape)}")
    if pts.is_floating_point() and bool((pts != pts.round()).any()):
        raise ValueError("points must be integer pixel coordinates (row, col)")
    pts = pts.long()
    lab = torch.as_tensor(labels if labels is not None else [])
    if lab.shape != (pts.shape[0],):
        raise ValueError(f"labels must have shape ({pts.shape[0]},) (one per point), got {tuple(lab.shape)}")
    if lab.numel() and not bool(((lab == 0) | (lab == 1)).all()):
        raise ValueError("labels must be 1 / True (positive) or 0 / False (negative)")
    h, w = shape
    if pts.numel() and bool(((pts[:, 0] < 0) | (pts[:, 0] >= h) | (pts[:, 1] < 0) | (pts[:, 1] >= w)).any()):
        raise ValueError(f"points must lie inside the image: rows 0..{h - 1}, cols 0..{w - 1}")
    return pts.numpy(), lab.bool().numpy()


@checked
def segment(image: torch.Tensor, points, labels, beta: float = 400.0, border_background: bool = True) \
        -> torch.Tensor:
    """The object mask (H, W) bool that the prompts select in ``image`` (C, H, W) in [0, 1].

    ``points`` (P, 2) are (row, col) pixels; ``labels`` (P,) are 1 / True for positive prompts
    and 0 / False for negative ones (a later prompt on the same pixel replaces an earlier one).
    No positive prompt: an empty mask. ``border_background``: the image frame is an implicit
    negative prompt (positive prompts placed on it win). Random walker with ``beta`` (edge
    sensitivity; scikit-image's default is 130, our noisy 32x32 signs segment better with 400), solved
    exactly (``mode="bf"``).
    """
    from skimage.segmentation import random_walker

    data = _check_image(image)
    h, w = data.shape[:2]
    pts, lab = _check_prompts(points, labels, (h, w))
    if not isinstance(beta, numbers.Real) or isinstance(beta, bool) or not beta > 0:
        raise ValueError(f"beta must be a positive number, got {beta!r}")
    seeds = np.zeros((h, w), dtype=np.int32)
    if border_background:
        seeds[0, :] = seeds[-1, :] = seeds[:, 0] = seeds[:, -1] = 2
    for (r, c), positive in zip(pts, lab):
        seeds[r, c] = 1 if positive else 2
    if not (seeds == 1).any():
        return torch.zeros((h, w), dtype=torch.bool)
    if not (seeds == 2).any():
        return torch.ones((h, w), dtype=torch.bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = random_walker(data, seeds, beta=float(beta), mode="bf", channel_axis=-1)
    return torch.from_numpy(out == 1)


def _deepest(region: np.ndarray):
    """The pixel of ``region`` farthest from its edge (the image frame counts as an edge) and that distance."""
    from scipy import ndimage

    dist = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    k = int(dist.argmax())
    return np.unravel_index(k, region.shape), float(dist.flat[k])


@checked
def next_prompt(pred: np.ndarray, mask: np.ndarray, strategy: str, gen: torch.Generator, jitter: float = 2.0,
                first: bool = False):
    """One click ((row, col), positive?) of a simulated annotator who sees the current mask ``pred``."""
    h, w = mask.shape
    if strategy == "random":
        positive = True if first else bool(torch.rand((), generator=gen) < 0.5)
        region = mask if positive else ~mask
        if not region.any():
            positive, region = not positive, ~region
        cand = np.argwhere(region)
        r, c = cand[int(torch.randint(len(cand), (), generator=gen))]
        return (int(r), int(c)), positive
    missed, spurious = mask & ~pred, pred & ~mask
    p_miss, d_miss = _deepest(missed)
    p_spur, d_spur = _deepest(spurious)
    if d_miss == 0 and d_spur == 0:  # nothing left to fix: click the object's centre again
        (r, c), positive = _deepest(mask)[0], True
    elif d_miss >= d_spur:
        (r, c), positive = p_miss, True
    else:
        (r, c), positive = p_spur, False
    if strategy == "over_prompting":
        dr, dc = (torch.randn(2, generator=gen, dtype=torch.float64) * jitter).tolist()
        r = min(max(int(round(r + dr)), 0), h - 1)
        c = min(max(int(round(c + dc)), 0), w - 1)
    return (int(r), int(c)), positive


@checked
def simulate_annotator(image: torch.Tensor, mask: torch.Tensor, strategy: str = "well_placed",
                       n_prompts: int = 16, jitter: float = 2.0, seed: int = 0, beta: float = 400.0,
                       border_background: bool = True) -> dict:
    """One annotator prompting one image: ``{"points" (P, 2), "labels" (P,), "iou" (P,), "masks" (P, H, W)}``,
    where ``iou[k]`` is the IoU with the ground-truth ``mask`` after k + 1 prompts."""
    check_choice(strategy, STRATEGIES, "strategy")
    check_positive_int(n_prompts, "n_prompts")
    if not isinstance(jitter, numbers.Real) or isinstance(jitter, bool) or jitter < 0:
        raise ValueError(f"jitter must be a non-negative number of pixels, got {jitter!r}")
    _check_image(image)
    truth = _check_mask(mask, image.shape[1:])
    gen = torch.Generator().manual_seed(check_seed(seed))
    pred = np.zeros_like(truth)
    points, labels, ious, masks = [], [], [], []
    for k in range(n_prompts):
        p, positive = next_prompt(pred, truth, strategy, gen, float(jitter), first=k == 0)
        points.append(p)
        labels.append(positive)
        out = segment(image, points, labels, beta, border_background)
        pred = out.numpy()
        masks.append(out)
        ious.append(float(mask_iou(out, mask.cpu())))
    return {"points": torch.tensor(points, dtype=torch.long), "labels": torch.tensor(labels),
            "iou": torch.tensor(ious), "masks": torch.stack(masks)}


@checked
def prompt_curves(images: torch.Tensor, masks: torch.Tensor, strategies=STRATEGIES, n_prompts: int = 16,
                  jitter: float = 2.0, seed: int = 0, beta: float = 400.0, progress: bool = True) -> dict:
    """IoU after each prompt, per strategy: ``{strategy: (N, n_prompts)}`` for images (N, C, H, W)
    and ground-truth masks (N, H, W) bool. Image i uses seed ``seed + i`` for every strategy."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError("images must be a tensor of shape (N, C, H, W)")
    if images.shape[0] == 0:
        raise ValueError("images is an empty batch (N = 0)")
    if not isinstance(masks, torch.Tensor) or masks.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"masks must have shape {(images.shape[0], *images.shape[2:])}")
    strategies = [check_choice(s, STRATEGIES, "strategy") for s in strategies]
    out = {}
    bar = tqdm(total=len(strategies) * images.shape[0], desc="prompting", disable=not progress, leave=False)
    for s in strategies:
        rows = []
        for i in range(images.shape[0]):
            rows.append(simulate_annotator(images[i], masks[i], s, n_prompts, jitter, seed + i, beta)["iou"])
            bar.update()
        out[s] = torch.stack(rows)
    bar.close()
    return out


@checked
def curve_summary(curves: dict, tolerance: float = 0.02) -> dict:
    """Per strategy: the mean curve, the prompt count with the best mean IoU (1-based), the best and
    the final mean IoU, and the share of images whose final IoU is more than ``tolerance`` below
    the best IoU they reached earlier ("over-prompted": stopping earlier would have been better)."""
    summary = {}
    for name, c in curves.items():
        mean = c.mean(0)
        k = int(mean.argmax())
        summary[name] = {"mean": mean, "best_count": k + 1, "best": float(mean[k]), "final": float(mean[-1]),
                         "overprompted": float((c.amax(1) - c[:, -1] > tolerance).float().mean())}
    return summary


@checked
def ideal_prompts(mask: torch.Tensor, parts=None):
    """An ideal prompt set for ``mask`` (H, W): one positive click at the deepest point of every
    connected region of ``parts`` (default: of the mask itself), i.e. one click per object part
    (a ring and its inside each get one). Returns (points (P, 2), labels (P,))."""
    from scipy import ndimage

    m = _check_mask(mask, mask.shape[-2:]) if isinstance(mask, torch.Tensor) and mask.dim() == 2 else None
    if m is None:
        raise ValueError("mask must be a boolean tensor of shape (H, W)")
    regions = m if parts is None else _check_mask(parts, m.shape, "parts")
    lab, n = ndimage.label(regions)
    points = [_deepest(lab == i)[0] for i in range(1, n + 1)]
    return torch.tensor(points, dtype=torch.long).reshape(-1, 2), torch.ones(len(points), dtype=torch.bool)
