"""Causal assessment via interventions, and the dangers of incomplete interventions.

**do-interventions on the watermark model.** ``signs_spurious_cnn`` was trained on signs that
carry a class-coloured watermark (``datasets.signs(..., spurious=True)``). Observing that its
accuracy is perfect tells us nothing about *why*; intervening does. ``do(W = w)`` overwrites the
watermark with class w's colour (:func:`set_watermark`), ``do(W = none)`` removes it, and
``do(S = s)`` renders a different sign while the watermark is held fixed. :func:`intervention_probs`
estimates P(y | do(S = s), do(W = w)) for every pair by averaging the softmax over fresh
renderings (backgrounds, positions and lighting vary, so every other factor is intervened on too).

The three rules of the do-calculus (Pearl 2012) frame the reading of that table
(:func:`causal_summary`); the network is not a structural causal model and pixels are not
causal variables, so these are the rules' *recipes*, not proofs:

1. insertion / deletion of observations, P(y | do(x), z, w) = P(y | do(x), w): **fix the
   candidate cause** (the watermark) and check that observing anything else (the sign) no
   longer changes the answer (``sign effect``);
2. action / observation exchange, P(y | do(x), do(z), w) = P(y | do(x), z, w): keep the
   candidate cause fixed and **intervene on everything else** (sign, background, position)
   (``watermark effect`` is its mirror: fix everything else, change the watermark);
3. insertion / deletion of actions, P(y | do(x), do(z), w) = P(y | do(x), w): **revert** an
   intervention (delete the watermark, insert it back) and note how much the answer moves
   (``deletion effect``).

**RISE vs SHAPE.** RISE (in :mod:`inferml_course.explain`) intervenes at random: it keeps random
smooth masks of the image and credits every kept pixel with the score. SHAPE (Chowdhury et al.,
ICIP 2024) estimates *necessity* instead, E_M[f(x) - f(x masked by M) | pixel removed], with the
very same masks inverted:

    RISE(p)  = sum_i f(x . M_i) M_i(p) / (n p_keep)
    SHAPE(p) = sum_i [f(x) - f(x . M_i)] (1 - M_i(p)) / (n (1 - p_keep))

so, with s_bar the mean masked score, Mbar(p) the share of masks that keep pixel p
(:func:`mask_coverage`) and C(p) = mean_i (f(x . M_i) - s_bar) M_i(p),

    RISE(p)  = [C(p) + s_bar Mbar(p)] / p_keep
    SHAPE(p) = [C(p) + (f(x) - s_bar) (1 - Mbar(p))] / (1 - p_keep).

Both maps share the signal C and carry the masks' fingerprint Mbar, which a finite set of random
interventions never makes flat, with different weights: s_bar / p_keep for RISE and
(f(x) - s_bar) / (1 - p_keep) for SHAPE. Whichever weight is large, that map shows where the
masks fell more than what the model used. The insertion and deletion games that score such maps
live in :mod:`inferml_course.evaluate.insertion_deletion`.

Modes (``policy="as_is"`` of :mod:`inferml_course._core.modes`): the model runs in the mode it is
in; a dropout or batch-norm module in training mode gets one warning per call (the result is random,
batch norm mixes the samples of a batch), and every module's flag and every batch-norm statistic are
restored afterwards, also on errors.
"""
from __future__ import annotations

import numbers

import torch
from torch import nn

from .._core.arguments import checked
from .._core.batching import check_batch_size
from .._core.checks import check_choice, check_images, check_model_input, check_positive_int, check_seed
from .._core.modes import guarded
from .._core.perturb import logit_jobs
from .._core.targets import output_dtype
from ..explain.perturbation import rise_masks, rise_scores
from ..datasets.signs import CLASSES, generate_signs, WATERMARK_COLORS, WATERMARK_SIZE
from ..uncertainty.metrics import auroc

__all__ = ["set_watermark", "randomize_watermark", "signs_by_class", "intervention_probs", "do_table",
           "total_variation", "causal_summary", "follow_rates", "shape", "rise_and_shape", "mask_coverage",
           "localization_auroc"]


# ------------------------------------------------------------------------------ the interventions
def _watermark_defaults():

    return WATERMARK_COLORS, WATERMARK_SIZE


def _check_position(position, size, h, w):
    if (not isinstance(position, (tuple, list)) or len(position) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in position)):
        raise ValueError(f"position must be a pair of ints (row, col), got {position!r}")
    r, c = int(position[0]), int(position[1])
    if not (0 <= r <= h - size and 0 <= c <= w - size):
        raise ValueError(f"position {position} puts the {size}x{size} watermark outside the {h}x{w} image; "
                         f"rows 0..{h - size}, cols 0..{w - size}")
    return r, c


@checked
def set_watermark(images: torch.Tensor, watermark, position=(1, 1), size: int | None = None,
                  fill="surround", colors: torch.Tensor | None = None) -> torch.Tensor:
    """do(W := w): a copy of ``images`` (N, 3, H, W) with a ``size`` x ``size`` square at ``position``
    (top-left (row, col); the dataset's watermark sits at (1, 1)) painted in watermark colour(s).

    ``watermark``: a class index (int), a tensor / sequence (N,) of class indices, or ``None`` to
    *remove* the square: ``fill="surround"`` paints it with each image's mean colour of the
    one-pixel ring around it (the local background), a number or a (3,) tensor paints that colour.
    ``colors`` defaults to :data:`inferml_course.datasets.signs.WATERMARK_COLORS`.
    """
    check_images(images, "images", channels=3)
    default_colors, default_size = _watermark_defaults()
    colors = default_colors if colors is None else colors
    size = default_size if size is None else check_positive_int(size, "size")
    n, c, h, w = images.shape
    r, col = _check_position(position, size, h, w)
    out = images.clone()
    if watermark is None:
        if isinstance(fill, str):
            check_choice(fill, ("surround",), "fill")
            r0, r1, c0, c1 = max(r - 1, 0), min(r + size + 1, h), max(col - 1, 0), min(col + size + 1, w)
            ring = torch.zeros(h, w, dtype=torch.bool, device=images.device)
            ring[r0:r1, c0:c1] = True
            ring[r:r + size, col:col + size] = False
            paint = images[:, :, ring].mean(2)[:, :, None, None]
        else:
            paint = torch.as_tensor(fill, dtype=images.dtype, device=images.device)
            if paint.numel() not in (1, c):
                raise ValueError(f"fill must be 'surround', a number or a tensor of {c} values, "
                                 f"got {tuple(paint.shape)}")
            if not torch.isfinite(paint).all() or bool((paint < 0).any() or (paint > 1).any()):
                raise ValueError("fill must hold colour values in [0, 1]")
            paint = paint.reshape(1, -1, 1, 1)
        out[:, :, r:r + size, col:col + size] = paint
        return out
    if isinstance(watermark, bool):
        raise TypeError("watermark must be None, an int or a tensor of class indices, got a bool")
    k = torch.as_tensor(watermark)
    if k.is_floating_point() or k.dtype == torch.bool:
        raise TypeError(f"watermark must hold integer class indices, got dtype {k.dtype}")
    if k.dim() == 0:
        k = k.expand(n)
    if k.shape != (n,):
        raise ValueError(f"watermark must be an int or have shape ({n},), got {tuple(k.shape)}")
    if bool(((k < 0) | (k >= len(colors))).any()):
        raise ValueError(f"watermark out of range: class indices must be from 0 to {len(colors) - 1}")
    paint = colors.to(device=images.device, dtype=images.dtype)[k.to(colors.device).long()]
    out[:, :, r:r + size, col:col + size] = paint[:, :, None, None]
    return out


@checked
def randomize_watermark(images: torch.Tensor, num_classes: int = 9, seed: int = 0, **options) -> torch.Tensor:
    """do(W ~ uniform): each image gets the watermark of a class drawn uniformly at random (seeded),
    independent of its label: the randomised experiment that breaks a spurious correlation."""
    check_images(images, "images", channels=3)
    gen = torch.Generator().manual_seed(check_seed(seed))
    k = torch.randint(num_classes, (images.shape[0],), generator=gen)
    return set_watermark(images, k, **options)


@checked
def signs_by_class(n_per_class: int, seed: int = 0, classes=None) -> torch.Tensor:
    """Fresh renderings without watermark, grouped by sign: a tensor (S, n_per_class, 3, 32, 32) for
    the S sign classes (default: the nine training classes, in label order)."""

    check_positive_int(n_per_class, "n_per_class")
    classes = tuple(CLASSES if classes is None else classes)
    data = generate_signs(n_per_class * len(classes), seed=seed, classes=classes, spurious=False)
    order = data.labels.argsort(stable=True)
    return data.images[order].view(len(classes), n_per_class, *data.images.shape[1:])


@guarded()
@torch.no_grad()
@checked
def intervention_probs(model: nn.Module, signs: torch.Tensor, watermarks=None, include_removed: bool = True,
                       position=(1, 1), batch_size="auto") -> torch.Tensor:
    """Per-image predictions under do(S = s), do(W = w): probabilities (S, W', n, K).

    ``signs`` (S, n, 3, H, W) holds unwatermarked renderings of each sign (:func:`signs_by_class`);
    ``watermarks`` the classes w to stamp (default 0..S-1); with ``include_removed`` the last
    column is do(W = none), the signs as rendered. The model's mode is left as found.
    """
    if not isinstance(signs, torch.Tensor) or signs.dim() != 5:
        raise ValueError("signs must be a tensor (S, n, 3, H, W) of renderings grouped by sign class")
    s, n = signs.shape[:2]
    flat = signs.reshape(s * n, *signs.shape[2:])
    check_images(flat, "signs", channels=3)
    flat = check_model_input(model, flat, "signs")
    check_batch_size(batch_size)
    watermarks = list(range(s)) if watermarks is None else [int(w) for w in watermarks]
    device = next(model.parameters()).device
    columns = []
    for w in watermarks + ([None] if include_removed else []):
        x = flat if w is None else set_watermark(flat, w, position=position)
        x = x.to(device)
        size = check_batch_size(batch_size, x, model=model, work=len(x))
        logits = logit_jobs(model, len(x), lambda a, b: x[a:b], size)
        columns.append(torch.softmax(logits.float(), 1).cpu().view(s, n, -1))
    return torch.stack(columns, 1)


@checked
def do_table(probs: torch.Tensor) -> torch.Tensor:
    """P(y | do(S = s), do(W = w)) (S, W', K): the mean of :func:`intervention_probs` over renderings."""
    if not isinstance(probs, torch.Tensor) or probs.dim() != 4:
        raise ValueError("probs must be the (S, W', n, K) output of intervention_probs")
    return probs.mean(2)


@checked
def total_variation(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Total-variation distance 0.5 sum |p - q| over the last axis (0 = same distribution, 1 = disjoint)."""
    return 0.5 * (p - q).abs().sum(-1)


@checked
def causal_summary(table: torch.Tensor, has_removed: bool = True) -> dict:
    """The table's three readings (total-variation distances in [0, 1]):

    * ``sign effect`` (rules 1 and 2): with the watermark held fixed, how far the prediction moves
      when the sign changes: mean over w and s of TV(P(y | do(s), do(w)), mean_s P(y | do(s), do(w)));
    * ``watermark effect``: with the sign held fixed, how far it moves when the watermark changes;
    * ``deletion effect`` (rule 3): how far it moves when the watermark is deleted, mean over s, w
      of TV(P(y | do(s), do(w)), P(y | do(s), do(W = none))) (needs ``has_removed``).
    """
    if not isinstance(table, torch.Tensor) or table.dim() != 3:
        raise ValueError("table must be a (S, W', K) tensor from do_table")
    stamped = table[:, :-1] if has_removed else table
    out = {"sign effect": float(total_variation(stamped, stamped.mean(0, keepdim=True)).mean()),
           "watermark effect": float(total_variation(stamped, stamped.mean(1, keepdim=True)).mean())}
    if has_removed:
        out["deletion effect"] = float(total_variation(stamped, table[:, -1:]).mean())
    return out


@checked
def follow_rates(probs: torch.Tensor, watermarks=None) -> dict:
    """Which factor the *decisions* follow, from :func:`intervention_probs` output (S, W', n, K) whose
    first W columns stamp ``watermarks`` (default 0..W-1) and whose last column removes the mark.

    ``watermark``: the share of conflicting pairs (s != w) predicted as w; ``sign``: the share of
    conflicting pairs predicted as s; ``sign, no watermark``: accuracy on the unwatermarked signs.
    """
    s, wp, n, k = probs.shape
    watermarks = list(range(wp - 1)) if watermarks is None else list(watermarks)
    pred = probs.argmax(-1)  # (S, W', n)
    sign_ids = torch.arange(s).view(s, 1, 1)
    wm_ids = torch.tensor(watermarks).view(1, -1, 1)
    stamped = pred[:, :len(watermarks)]
    conflict = (sign_ids != wm_ids).expand_as(stamped)
    return {"watermark": float((stamped == wm_ids)[conflict].float().mean()),
            "sign": float((stamped == sign_ids)[conflict].float().mean()),
            "sign, no watermark": float((pred[:, -1] == torch.arange(s).view(s, 1)).float().mean())}


# ------------------------------------------------------------------------------------ RISE vs SHAPE
@checked
def mask_coverage(n_masks: int, size, grid_size: int = 6, p_keep: float = 0.5, seed: int = 0) -> torch.Tensor:
    """Mbar (H, W): the share of RISE / SHAPE masks that keep each pixel (its expectation is p_keep;
    the deviation from it is the masks' fingerprint that both maps inherit)."""
    return rise_masks(n_masks, size, grid_size, p_keep, seed).mean(0)


def _check_p_keep(p_keep):
    if isinstance(p_keep, bool) or not isinstance(p_keep, numbers.Real) or not 0 < p_keep < 1:
        raise ValueError(f"p_keep must be a probability strictly between 0 and 1 (SHAPE divides by 1 - p_keep), "
                         f"got {p_keep!r}")
    return float(p_keep)


@guarded()
@torch.no_grad()
@checked
def rise_and_shape(model: nn.Module, x: torch.Tensor, target=None, n_masks: int = 1000, grid_size: int = 6,
                   p_keep: float = 0.5, baseline="mean", output: str = "probability", seed: int = 0,
                   batch_size="auto", normalize=None) -> tuple[torch.Tensor, torch.Tensor]:
    """RISE and SHAPE maps (N, H, W) each, from one set of masked forward passes (shared masks).

    The RISE map equals :func:`inferml_course.explain.rise` with the same options (both read
    :func:`~inferml_course.explain.rise_scores`: the same masks, the same ``baseline`` blend); SHAPE uses the
    inverted masks and the score drop f(x) - f(x masked). ``output``: ``"probability"`` (default,
    as our RISE) or ``"logit"`` (the released SHAPE code scores raw logits). Cost: N (1 + n_masks)
    forward images.
    """
    p_keep = _check_p_keep(p_keep)
    r = rise_scores(model, x, target, n_masks, grid_size, p_keep, baseline, output, seed, batch_size, normalize)
    x, n, (h, w) = r.x, r.x.shape[0], r.x.shape[-2:]
    flat = r.masks.reshape(n_masks, h * w)
    rise_sum = r.scores.t() @ flat
    shape_sum = (r.score[None] - r.scores).t() @ (1 - flat)  # f(x) - f(x masked)
    dtype = output_dtype(x)
    return ((rise_sum / (n_masks * p_keep)).view(n, h, w).to(dtype),
            (shape_sum / (n_masks * (1 - p_keep))).view(n, h, w).to(dtype))


@guarded()
@checked
def shape(model: nn.Module, x: torch.Tensor, target=None, n_masks: int = 1000, grid_size: int = 6,
          p_keep: float = 0.5, baseline="mean", output: str = "probability", seed: int = 0,
          batch_size="auto", normalize=None) -> torch.Tensor:
    """SHAPE (Chowdhury, Prabhushankar, AlRegib and Deriche, ICIP 2024): the necessity map (N, H, W),
    sum_i [f(x) - f(x masked by M_i)] (1 - M_i) / (n_masks (1 - p_keep)).

    Explainer contract ``f(model, x, target=None, **options)``; the masks are RISE's
    (:func:`~inferml_course.explain.perturbation.rise_masks`) for the same ``n_masks``,
    ``grid_size``, ``p_keep`` and ``seed``, so :func:`~inferml_course.explain.rise` and ``shape``
    intervene identically. Signed (a pixel whose removal *raises* the score is negative).
    Cost: N (1 + n_masks) forward images.
    """
    return rise_and_shape(model, x, target, n_masks, grid_size, p_keep, baseline, output, seed, batch_size,
                          normalize)[1]


@checked
def localization_auroc(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per map (N,): the AUROC with which the map's values separate the pixels inside ``masks``
    (N, H, W) bool from those outside, **higher is better** (0.5 = a map unrelated to the region,
    1 = every region pixel ranked above every other pixel). Unaffected by offsets and positive
    scaling of a map, so RISE and SHAPE maps compare fairly. One rank-based AUROC per image."""

    if not isinstance(maps, torch.Tensor) or maps.dim() != 3:
        raise ValueError("maps must be a tensor of shape (N, H, W)")
    if not isinstance(masks, torch.Tensor) or masks.shape != maps.shape or masks.dtype != torch.bool:
        raise ValueError(f"masks must be a boolean tensor of the maps' shape {tuple(maps.shape)}")
    return torch.tensor([auroc(m.flatten().double(), k.flatten()) for m, k in zip(maps.detach().cpu(), masks.cpu())])
