"""Perturbation-based explanations: change part of the image, watch the class score.

No gradients: every method only runs forward passes (under ``torch.no_grad()``), all perturbed
images of all N inputs batched together (``batch_size`` caps the images per forward pass).

============== ========================================================== ============================
function       definition                                                 forward passes (images)
============== ========================================================== ============================
``occlusion``  mean, over the windows covering a pixel, of the score drop N * (1 + #windows)
               when that window is set to the baseline (Zeiler and Fergus)
``rise``       sum_i score(x with random smooth mask M_i) * M_i / (n p)   N * n_masks (+ N if target=None)
               (Petsiuk et al. 2018)
``lime``       weighted ridge fit of the score on which SLIC superpixels  N * samples
               are kept (Ribeiro et al. 2016)
``kernel_shap`` Shapley-kernel linear fit on superpixel coalitions        N * samples
               (Lundberg and Lee 2017)
============== ========================================================== ============================

Scores: ``output="probability"`` (default: the softmax probability of the target class, as in
Zeiler and Fergus, RISE and LIME) or ``output="logit"`` (the raw logit, Captum's convention and
the one in which Kernel SHAP's values add up exactly).

The baseline, what "removed" pixels become, defaults to ``"mean"``: the per-channel mean colour
of the training set, read from the model's ``normalize.mean`` buffer (for the course models it
*is* the training-set mean, set by ``Normalize.fit`` on the training images). A network whose
inputs are centred on that mean sees this grey as "no evidence"; a black patch (0) is a strong,
unusual input that itself changes the prediction. This is the same reason the original RISE and
SHAPE code zero the *normalised* tensor. Pass ``baseline=0.0`` (Captum's default), a number or a
tensor to change it.

Where we differ from Captum (0.9):

* ``occlusion``: our window always spans all channels (Captum's ``sliding_window_shapes=(C, k, k)``)
  and we return one map (N, H, W); otherwise the rule is Captum's (windows start at 0, the last one
  may be cropped, per-pixel mean over the covering windows), so ``Occlusion.attribute(x,
  sliding_window_shapes=(C, k, k), strides=(C, s, s), baselines=b, target=t)[:, 0]`` equals our
  ``occlusion(..., output="logit")``. Captum's default ``perturbations_per_eval=1`` runs one window
  at a time; we batch all windows.
* ``lime``: LIME's image defaults (Bernoulli(0.5) superpixel samples with the first sample the full
  image, kernel sqrt(exp(-d^2 / 0.25^2)) on cosine distance, ridge regression), fitted on *all*
  superpixels (LIME's ``lime_image`` first selects ``num_features``). Captum's ``Lime`` defaults to a
  Lasso with an exp(-d^2 / 2) kernel.
* ``kernel_shap``: Captum's scheme (the full and the empty coalition with weight 1e6, then
  coalition sizes drawn with probability proportional to (M-1) / (k (M-k))), fitted by weighted
  least squares in float64.

Modes (``policy="as_is"`` of :mod:`inferml_course._core.modes`): the model runs in the mode it is
in; a dropout or batch-norm module in training mode gets one warning per call (the result is random,
batch norm mixes the samples of a batch), and every module's flag and every batch-norm statistic are
restored afterwards, also on errors.
"""
from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._core.arguments import checked
from .._core.checks import check_images, check_number, check_positive_int, check_seed, check_segments, check_unit_interval
from .._core.modes import guarded
from .._core.adapter import resolve_baseline
from .._core.batching import check_batch_size
from .._core.perturb import OUTPUTS, first_pass, masked_scores
from .._core.targets import output_dtype
from .registry import explainer

__all__ = ["occlusion", "rise", "rise_scores", "RiseScores", "lime", "kernel_shap", "superpixels", "occlusion_windows",
           "rise_masks", "OUTPUTS"]

def _pair(value, argument):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (int(value), int(value))
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ValueError(f"{argument} must be a positive int or a pair of positive ints (h, w), got {value!r}")
    return int(value[0]), int(value[1])


# --- occlusion -----------------------------------------------------------------------------------------------

@checked
def occlusion_windows(size, window, stride, device=None) -> torch.Tensor:
    """The occlusion windows as boolean masks (P, H, W), row-major, in Captum's layout: windows start
    at 0 and step by ``stride``; there are ceil((D - w) / s) + 1 per dimension, the last one may be cropped."""
    (h, w), (wh, ww), (sh, sw) = size, window, stride
    if wh > h or ww > w:
        raise ValueError(f"window {window} is larger than the image ({h}, {w})")
    if sh > wh or sw > ww:
        raise ValueError(f"stride {stride} is larger than the window {window}: some pixels would never be occluded")
    ys = torch.arange(0, -(-(h - wh) // sh) + 1, device=device) * sh
    xs = torch.arange(0, -(-(w - ww) // sw) + 1, device=device) * sw
    r, c = torch.arange(h, device=device), torch.arange(w, device=device)
    rows = (r[None] >= ys[:, None]) & (r[None] < ys[:, None] + wh)  # (Py, H)
    cols = (c[None] >= xs[:, None]) & (c[None] < xs[:, None] + ww)  # (Px, W)
    return (rows[:, None, :, None] & cols[None, :, None, :]).reshape(-1, h, w)


@explainer("occlusion", family="perturbation", signed=True, label="Occlusion", order=90)
@guarded()
@torch.no_grad()
@checked
def occlusion(model: nn.Module, x: torch.Tensor, target=None, window: int | tuple = 8, stride: int | tuple = 2,
              baseline="mean",
              output: str = "probability", batch_size="auto", normalize=None) -> torch.Tensor:
    """Occlusion saliency (Zeiler and Fergus 2014): slide a ``window`` of ``baseline`` colour over the
    image with ``stride``; each pixel gets the mean score drop, score(x) - score(x occluded), over the
    windows that cover it. Positive = the region supports the target class. Signed.

    ``window`` and ``stride``: an int or (h, w). ``baseline``: ``"mean"`` (default: the training-set
    mean colour), a number, or a tensor (see the module docstring for why grey and not black).
    ``batch_size``: the most occluded images per forward pass (``"auto"``: the measured fastest chunk,
    see :mod:`inferml_course._core.batching`; None: all at once).
    """
    window = _pair(window, "window")
    stride = _pair(stride, "stride")
    check_batch_size(batch_size)  # fail before the forward pass
    x, t, base, _ = first_pass(model, x, target, output)
    n, c, h, w = x.shape
    masks = occlusion_windows((h, w), window, stride, x.device)  # (P, H, W)
    p = masks.shape[0]
    batch_size = check_batch_size(batch_size, x, model=model, work=p * n)
    b = resolve_baseline(model, x, baseline, normalize=normalize).expand_as(x)
    kept = ~masks[:, None]  # (P, 1, H, W): the pixels each window leaves as they are
    drops = base[None] - masked_scores(model, x, t, lambda i, j: kept[i:j], p, b, output, batch_size)  # (P, N)
    flat = masks.reshape(p, -1).to(x.dtype)
    attr = (drops.t() @ flat) / flat.sum(0)
    return attr.view(n, h, w).to(output_dtype(x))


# --- RISE ----------------------------------------------------------------------------------------------------

@checked
def rise_masks(n_masks: int, size, grid_size: int = 6, p_keep: float = 0.5, seed: int = 0, device=None,
               dtype=torch.float32) -> torch.Tensor:
    """RISE's random smooth masks (n_masks, H, W) in [0, 1].

    A binary grid (grid_size x grid_size) keeps each cell with probability ``p_keep``; it is upsampled
    bilinearly to (grid_size + 1) * cell pixels, cell = ceil(H / grid_size), and cropped at a random
    offset in [0, cell) so the cell borders fall anywhere (Petsiuk et al. 2018). Randomness from a
    local generator seeded with ``seed``.
    """
    check_positive_int(n_masks, "n_masks")
    check_positive_int(grid_size, "grid_size")
    p_keep = check_unit_interval(p_keep, "p_keep", low_open=True, what=" (the probability of keeping a grid cell)")
    h, w = _pair(size, "size")
    gen = torch.Generator(device=device or "cpu").manual_seed(check_seed(seed))
    cell_h, cell_w = -(-h // grid_size), -(-w // grid_size)
    up_h, up_w = (grid_size + 1) * cell_h, (grid_size + 1) * cell_w
    grid = (torch.rand((n_masks, 1, grid_size, grid_size), generator=gen, device=device) < p_keep).to(dtype)
    up = F.interpolate(grid, size=(up_h, up_w), mode="bilinear", align_corners=False)[:, 0]
    dy = torch.randint(0, cell_h, (n_masks,), generator=gen, device=device)
    dx = torch.randint(0, cell_w, (n_masks,), generator=gen, device=device)
    rows = dy[:, None] + torch.arange(h, device=device)[None]
    cols = dx[:, None] + torch.arange(w, device=device)[None]
    return up[torch.arange(n_masks, device=device)[:, None, None], rows[:, :, None], cols[:, None, :]]


class RiseScores(NamedTuple):
    """What :func:`rise_scores` returns: ``x`` (N, C, H, W) in the model's dtype, ``target`` (N,), ``score``
    (N,) the score of ``x``, ``masks`` (M, H, W) and ``scores`` (M, N) of ``x`` masked by each mask."""

    x: torch.Tensor
    target: torch.Tensor
    score: torch.Tensor
    masks: torch.Tensor
    scores: torch.Tensor


@guarded()
@torch.no_grad()
@checked
def rise_scores(model: nn.Module, x: torch.Tensor, target=None, n_masks: int = 1000, grid_size: int = 6,
                p_keep: float = 0.5, baseline="mean", output: str = "probability", seed: int = 0,
                batch_size="auto", normalize=None) -> RiseScores:
    """RISE's random interventions (:class:`RiseScores`): the class score of each image blended with
    ``baseline`` by each of the :func:`rise_masks`, ``b + M (x - b)``; read by :func:`rise` and by SHAPE
    (:func:`inferml_course.intervene.rise_and_shape`). Cost: N * n_masks forward images (+ N)."""
    check_positive_int(n_masks, "n_masks")
    check_positive_int(grid_size, "grid_size")
    check_unit_interval(p_keep, "p_keep", low_open=True, what=" (the probability of keeping a grid cell)")
    check_seed(seed)
    check_batch_size(batch_size)  # fail before the forward pass
    x, t, score, _ = first_pass(model, x, target, output)
    n, c, h, w = x.shape
    batch_size = check_batch_size(batch_size, x, model=model, work=n_masks * n)
    masks = rise_masks(n_masks, (h, w), grid_size, p_keep, seed, x.device, x.dtype)
    b = resolve_baseline(model, x, baseline, normalize=normalize).expand_as(x)
    s = masked_scores(model, x, t, lambda i, j: masks[i:j, None], n_masks, b, output, batch_size)
    return RiseScores(x, t, score, masks, s)


@explainer("rise", family="perturbation", interactive={"n_masks": 1000}, label="RISE", order=100)
@guarded()
@checked
def rise(model: nn.Module, x: torch.Tensor, target=None, n_masks: int = 1000, grid_size: int = 6,
         p_keep: float = 0.5, baseline="mean", output: str = "probability", seed: int = 0,
         batch_size="auto", normalize=None) -> torch.Tensor:
    """RISE (Petsiuk, Das and Saenko 2018): saliency = sum_i score(x masked by M_i) M_i / (n_masks p_keep).

    The masks (:func:`rise_masks`, the same for every image) blend each pixel between the image
    (mask 1) and ``baseline`` (mask 0; default the training-set mean colour, which is what
    multiplying a zero-centred *normalised* image by the mask does in the original code).
    Unsigned for probabilities. Cost: N * n_masks forward images (+ N for ``target=None``).
    """
    r = rise_scores(model, x, target, n_masks, grid_size, p_keep, baseline, output, seed, batch_size, normalize)
    n, _, h, w = r.x.shape
    total = r.scores.t() @ r.masks.reshape(n_masks, h * w)
    return (total / (n_masks * p_keep)).view(n, h, w).to(output_dtype(r.x))


# --- superpixel surrogates: LIME and Kernel SHAP -------------------------------------------------------------

@checked
def superpixels(x: torch.Tensor, n_segments: int = 16, compactness: float = 10.0) -> torch.Tensor:
    """SLIC superpixels (``skimage.segmentation.slic``) of each image: labels (N, H, W), 0..F_n - 1.

    Segmentation runs on the CPU, one image at a time (scikit-image has no batched SLIC); it is
    deterministic. Grey images (C = 1) are segmented as such.
    """
    from skimage.segmentation import slic

    x = check_images(x)
    check_positive_int(n_segments, "n_segments")
    check_number(compactness, "compactness")
    images = x.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    labels = []
    for img in images:
        grey = img.shape[-1] == 1
        seg = slic(img[..., 0] if grey else img, n_segments=n_segments, compactness=compactness, start_label=0,
                   channel_axis=None if grey else -1)
        labels.append(np.unique(seg, return_inverse=True)[1].reshape(seg.shape))
    return torch.from_numpy(np.stack(labels)).long().to(x.device)


def _coalition_scores(model, x, t, seg, z, baseline, output, batch_size):
    """Scores (N, S) of the images in which the superpixels with z = 1 (N, S, F) are kept."""
    n, _, h, w = x.shape
    index = seg.view(n, 1, h * w)

    def keep(a, b):  # (b - a, N, H, W): sample-major
        za = z[:, a:b]
        return za.to(x.dtype).gather(2, index.expand(n, za.shape[1], h * w)).transpose(0, 1).reshape(-1, n, h, w)

    return masked_scores(model, x, t, keep, z.shape[1], baseline.expand_as(x), output, batch_size).t()


def _weighted_fit(z, y, weights, valid, ridge):
    """Weighted (ridge) least squares with intercept, batched over images, in float64.

    z (N, S, F) {0, 1}, y (N, S), weights (N, S), valid (N, F) bool: columns of padded features
    are zeroed and pinned to 0. Returns the coefficients (N, F)."""
    z, y, wt = z.double() * valid[:, None].double(), y.double(), weights.double()
    wsum = wt.sum(1, keepdim=True)
    z_mean = (wt[..., None] * z).sum(1, keepdim=True) / wsum[..., None]
    y_mean = (wt * y).sum(1, keepdim=True) / wsum
    zc, yc = z - z_mean, y - y_mean
    gram = zc.transpose(1, 2) @ (wt[..., None] * zc)
    # padded features get a unit diagonal (their coefficient is 0); a 1e-9 floor keeps ridge = 0 solvable
    diag = torch.where(valid, torch.full(valid.shape, ridge + 1e-9, dtype=torch.float64, device=valid.device),
                       torch.ones(valid.shape, dtype=torch.float64, device=valid.device))
    gram = gram + torch.diag_embed(diag)
    rhs = zc.transpose(1, 2) @ (wt * yc)[..., None]
    return torch.linalg.solve(gram, rhs)[..., 0] * valid


def _surrogate_setup(model, x, target, segments, n_segments, output, method, samples, batch_size):
    check_positive_int(samples, "samples")
    check_batch_size(batch_size)  # fail before the forward pass
    x, t, _, _ = first_pass(model, x, target, output)
    batch_size = check_batch_size(batch_size, x, model=model, work=samples * x.shape[0])
    seg = superpixels(x, n_segments) if segments is None else check_segments(segments, x)
    count = seg.flatten(1).amax(1) + 1  # F_n
    f = int(count.max())
    valid = torch.arange(f, device=x.device)[None] < count[:, None]
    return x, t, seg, count, f, valid, batch_size


def _paint(coef, seg, x):
    n, _, h, w = x.shape
    return coef.to(x.dtype).gather(1, seg.view(n, -1)).view(n, h, w).to(output_dtype(x))


@explainer("lime", family="perturbation", signed=True, interactive={"samples": 200}, label="LIME", order=110)
@guarded()
@torch.no_grad()
@checked
def lime(model: nn.Module, x: torch.Tensor, target=None, samples: int = 200, n_segments: int = 16,
         kernel_width: float = 0.25, ridge: float = 1.0, segments: torch.Tensor | None = None, baseline="mean",
         output: str = "probability", seed: int = 0, batch_size="auto", normalize=None) -> torch.Tensor:
    """LIME (Ribeiro, Singh and Guestrin 2016) on SLIC superpixels; each pixel gets its superpixel's weight.

    ``samples`` binary vectors keep each superpixel with probability 1/2 (the first keeps all);
    removed superpixels take the ``baseline`` colour. A ridge regression (``ridge``, LIME's alpha = 1)
    of the target score on the vectors, weighted by sqrt(exp(-d^2 / kernel_width^2)) with d the
    cosine distance to the all-ones vector, gives one weight per superpixel. Signed.
    ``segments`` (N, H, W) reuses a segmentation (default :func:`superpixels` with ``n_segments``).
    """
    kernel_width = check_number(kernel_width, "kernel_width")
    ridge = check_number(ridge, "ridge", allow_zero=True)
    check_seed(seed)
    x, t, seg, count, f, valid, batch_size = _surrogate_setup(model, x, target, segments, n_segments, output,
                                                              "lime", samples, batch_size)
    n = x.shape[0]
    gen = torch.Generator(device=x.device).manual_seed(check_seed(seed))
    z = (torch.rand((n, samples, f), generator=gen, device=x.device) < 0.5) & valid[:, None]
    z[:, 0] = valid
    kept = z.sum(2).double()
    cosine = kept / (kept.sqrt() * count[:, None].double().sqrt()).clamp_min(1e-12)
    distance = torch.where(kept > 0, 1 - cosine, torch.ones_like(cosine))
    weights = torch.exp(-distance ** 2 / kernel_width ** 2).sqrt()
    y = _coalition_scores(model, x, t, seg, z, resolve_baseline(model, x, baseline, normalize=normalize), output,
                         batch_size)
    return _paint(_weighted_fit(z, y, weights, valid, float(ridge)), seg, x)


@explainer("kernel_shap", family="perturbation", signed=True,
            interactive={"samples": 200}, label="Kernel SHAP", order=120)
@guarded()
@torch.no_grad()
@checked
def kernel_shap(model: nn.Module, x: torch.Tensor, target=None, samples: int = 200, n_segments: int = 16,
                segments: torch.Tensor | None = None, baseline="mean", output: str = "probability", seed: int = 0,
                batch_size="auto", normalize=None) -> torch.Tensor:
    """Kernel SHAP (Lundberg and Lee 2017) on SLIC superpixels: Shapley values of the superpixels,
    estimated by a weighted linear fit on random coalitions; each pixel gets its superpixel's value.

    Removed superpixels take the ``baseline`` colour. The first two coalitions are "all" and "none"
    with weight 1e6 (so the values add up to score(x) - score(baseline)); the others have sizes k
    drawn with probability proportional to (M - 1) / (k (M - k)) and weight 1. With an additive model
    and ``output="logit"`` the values are exact. Signed.
    """
    x, t, seg, count, f, valid, batch_size = _surrogate_setup(model, x, target, segments, n_segments, output,
                                                              "kernel_shap", samples, batch_size)
    if samples < 3:
        raise ValueError(f"samples must be at least 3 for kernel_shap, got {samples}")
    n = x.shape[0]
    gen = torch.Generator(device=x.device).manual_seed(check_seed(seed))
    k = torch.arange(1, max(f, 2), device=x.device, dtype=torch.float64)  # sizes 1 .. F_max - 1
    m = count[:, None].double()
    prob = torch.where(k[None] < m, (m - 1) / (k[None] * (m - k[None])), torch.zeros_like(m))
    prob[:, 0] = torch.where(count < 2, torch.ones_like(prob[:, 0]), prob[:, 0])  # one superpixel: keep it
    sizes = torch.multinomial(prob, samples - 2, replacement=True, generator=gen) + 1  # (N, S - 2)
    keys = torch.rand((n, samples - 2, f), generator=gen, device=x.device).masked_fill(~valid[:, None], 2.0)
    ranks = keys.argsort(2).argsort(2)
    z = torch.cat([valid[:, None], torch.zeros_like(valid)[:, None], ranks < sizes[..., None]], 1)
    weights = torch.ones((n, samples), dtype=torch.float64, device=x.device)
    weights[:, :2] = 1e6
    y = _coalition_scores(model, x, t, seg, z, resolve_baseline(model, x, baseline, normalize=normalize), output,
                         batch_size)
    return _paint(_weighted_fit(z, y, weights, valid, 0.0), seg, x)
