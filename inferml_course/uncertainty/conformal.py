"""Split conformal classification: prediction sets that contain the true label with probability >= 1 - alpha.

A classifier's softmax says how sure it is; conformal prediction turns that into a *set* of labels with a
guarantee that holds whatever the model, as long as calibration and test images are exchangeable (drawn
from the same distribution). The recipe (Vovk et al.; Angelopoulos & Bates 2023):

1. a **score** ``s(x, y)`` says how badly label ``y`` fits image ``x`` (higher = worse);
2. on ``n`` held-out calibration images, the scores of the true labels are sorted and the threshold
   ``q`` is the ``k``-th smallest, ``k = ceil((n + 1)(1 - alpha))``;
3. the set of a new image is every label whose score is at most ``q``: ``C(x) = {y : s(x, y) <= q}``.

Then ``P(Y in C(X)) >= 1 - alpha`` over calibration and test draws (and ``< 1 - alpha + 1/(n + 1)`` for
continuous scores without ties). ``k`` must not exceed ``n``: for a given alpha the calibration set needs
``n >= ceil(1/alpha) - 1`` images, and :func:`calibrate` refuses fewer with a ValueError that says so.

Scores of label ``y`` ranked ``r`` (1 = most probable) by the probabilities ``p`` of one image:

==========  =============================================================  ===============================
``score``   ``s(x, y)``                                                     reference
==========  =============================================================  ===============================
``"lac"``   ``1 - p_y``                                                     Sadinle, Lei & Wasserman 2019
``"aps"``   mass of the labels ranked before ``y``, plus ``u * p_y``        Romano, Sesia & Candes 2020
``"raps"``  APS plus ``lam * max(0, r - k_reg)``                            Angelopoulos et al. 2021
==========  =============================================================  ===============================

``u = 1`` (``randomized=False``) gives the cumulative sorted mass up to and including ``y``; with
``randomized=True`` ``u`` is uniform on [0, 1], one draw per image (calibration: from ``seed``; prediction:
from ``seed + 1`` unless given), which makes the coverage exact rather than at least ``1 - alpha``, at the
price of sets that depend on a coin. ``classwise=True`` calibrates one threshold per class from the
calibration images of that class (Mondrian, class-conditional conformal prediction): each class is then
covered at ``1 - alpha`` on its own, not only on average.

Conventions (checked against MAPIE 1.6 in ``tests/test_conformal.py``):

* the threshold is the ``k``-th smallest calibration score itself, an order statistic, no interpolation
  (MAPIE's ``np.quantile(scores, k / n, method="lower")``; ``method="higher"`` at that level, as in some
  tutorials, picks the next one up for ``k < n``, one order statistic more conservative). ``k`` is
  computed as ``ceil((n + 1)(1 - alpha) - 1e-9)``: the ``1e-9`` keeps float rounding (``10 * 0.9``) from
  adding one;
* sets are ``s(x, y) <= q`` for every label, the same score as in calibration: they may be empty (LAC when
  no label reaches ``1 - q``; randomised APS), as the guarantee allows. MAPIE instead never returns an
  empty set for APS with ``include_last_label=True`` / ``False`` (see the test);
* the randomised APS score follows the papers, mass *before* ``y`` plus ``u p_y``; MAPIE writes the mass
  *up to* ``y`` minus ``u p_y``, the same score with ``u`` replaced by ``1 - u``;
* ties between equal probabilities are ranked by class index (a stable sort);
* everything is computed in float64 (float32 and float64 inputs of the same values give the same sets);
  probabilities are checked (rows summing to 1 within 1e-3, never softmaxed for you).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .._core.arguments import checked
from .._core.adapter import forward_logits
from .._core.batching import check_batch_size
from .._core.checks import check_choice, check_int_range, check_labels, check_model_input, check_number, \
    check_probs, check_seed, check_unit_interval
from .._core.directions import metric, view
from .._core.modes import guarded

__all__ = ["SCORES", "ConformalPredictor", "SizeCoverage", "calibrate", "label_scores", "conformity_scores",
           "conformal_quantile", "min_calibration_size", "predict_sets", "coverage", "set_size",
           "coverage_by_size", "coverage_by_class", "DIRECTIONS"]

#: The conformity scores :func:`calibrate` knows.
SCORES = ("lac", "aps", "raps")
#: Absolute tolerance on the row sums of the probabilities (float32 softmax rows are off by ~1e-7).
PROB_ATOL = 1e-3
_FAMILY = "uncertainty.conformal"


# ------------------------------------------------------------------------------------------ input checks
def _tensor(value, argument: str):
    """Lists and tuples (of numbers) become tensors; tensors and arrays pass through to the shared checks."""
    if isinstance(value, (list, tuple)):
        try:
            return torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{argument} must be a rectangular array of numbers, got a ragged or mixed "
                             f"{type(value).__name__}: {error}") from None
    return value


def _probs(probs, argument: str = "probs") -> torch.Tensor:
    """Probabilities (N, K) as float64, checked: in [0, 1], rows summing to 1 (softmax outputs, not logits)."""
    probs = check_probs(_tensor(probs, argument), argument, atol=PROB_ATOL)
    return probs.to(torch.float64)


def _labels(labels, n: int, num_classes: int, device) -> torch.Tensor:
    return check_labels(_tensor(labels, "labels"), "labels", n, num_classes).to(device)


def _check_alpha(alpha) -> float:
    return check_unit_interval(alpha, "alpha", low_open=True, high_open=True,
                               what=" (the miscoverage rate: sets miss the true label at most this often)")


def _check_bool(value, argument: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{argument} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def _check_options(score, randomized, lam, k_reg):
    check_choice(score, SCORES, "score")
    randomized = _check_bool(randomized, "randomized")
    if randomized and score == "lac":
        raise ValueError("randomized=True applies to score='aps' and 'raps' (LAC has no cumulative mass to "
                         "randomise); use randomized=False with score='lac'")
    lam = check_number(lam, "lam", allow_zero=True)
    if isinstance(k_reg, bool) or not isinstance(k_reg, (int, np.integer)) or k_reg < 0:
        raise ValueError(f"k_reg must be a non-negative integer (the rank from which RAPS penalises labels), "
                         f"got {k_reg!r}")
    return randomized, lam, int(k_reg)


def _uniforms(u, n: int, randomized: bool, seed: int, device) -> torch.Tensor | None:
    """The (n,) uniforms of a randomised score: ``u`` checked, or drawn from a generator seeded with ``seed``."""
    if u is None:
        if not randomized:
            return None
        g = torch.Generator().manual_seed(seed)
        return torch.rand(n, generator=g, dtype=torch.float64).to(device)
    if not randomized:
        raise ValueError("u is only used by randomised scores (randomized=True); leave it None")
    u = _tensor(u, "u")
    if isinstance(u, np.ndarray):
        u = torch.from_numpy(u)
    if not isinstance(u, torch.Tensor) or not u.is_floating_point() or u.shape != (n,):
        shape = tuple(u.shape) if isinstance(u, torch.Tensor) else type(u).__name__
        raise ValueError(f"u must be a floating tensor of shape ({n},) (one uniform per row of probs), got {shape}")
    if not bool(((u >= 0) & (u <= 1)).all()):
        raise ValueError("u must hold numbers in [0, 1]")
    return u.to(device=device, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------- scores
def _label_scores(p: torch.Tensor, score: str, u: torch.Tensor | None, lam: float, k_reg: int) -> torch.Tensor:
    """Scores (N, K) of every label from checked float64 probabilities (N, K)."""
    if score == "lac":
        return 1 - p
    sorted_p, order = p.sort(dim=1, descending=True, stable=True)
    if u is None:  # mass up to and including the label: the cumulative sum itself
        sorted_s = torch.cumsum(sorted_p, 1)
    else:          # mass strictly before the label, plus u times its own probability
        mass_before = torch.cat([torch.zeros_like(sorted_p[:, :1]), torch.cumsum(sorted_p, 1)[:, :-1]], 1)
        sorted_s = mass_before + u[:, None] * sorted_p
    if score == "raps":
        rank = torch.arange(1, p.shape[1] + 1, device=p.device, dtype=p.dtype)
        sorted_s = sorted_s + lam * (rank - k_reg).clamp_min(0)
    return torch.empty_like(sorted_s).scatter_(1, order, sorted_s)


@checked
def label_scores(probs, score: str = "lac", randomized: bool = False, lam: float = 0.01, k_reg: int = 5,
                 u=None, seed: int = 0) -> torch.Tensor:
    """The conformity score ``s(x, y)`` (higher = the label fits worse) of **every** label: (N, K), float64.

    ``probs``: softmax probabilities (N, K) (a tensor, array or nested list). ``score``, ``randomized``,
    ``lam``, ``k_reg``: see the module docstring. ``u``: the (N,) uniforms of a randomised score (default:
    drawn from a generator seeded with ``seed``).
    """
    randomized, lam, k_reg = _check_options(score, randomized, lam, k_reg)
    p = _probs(probs)
    u = _uniforms(u, p.shape[0], randomized, check_seed(seed), p.device)
    return _label_scores(p, score, u, lam, k_reg)


@checked
def conformity_scores(probs, labels, score: str = "lac", randomized: bool = False, lam: float = 0.01,
                      k_reg: int = 5, u=None, seed: int = 0) -> torch.Tensor:
    """The score of each image's **true** label, (N,) float64: what :func:`calibrate` takes the quantile of."""
    randomized, lam, k_reg = _check_options(score, randomized, lam, k_reg)
    p = _probs(probs)
    y = _labels(labels, p.shape[0], p.shape[1], p.device)
    u = _uniforms(u, p.shape[0], randomized, check_seed(seed), p.device)
    return _label_scores(p, score, u, lam, k_reg).gather(1, y[:, None])[:, 0]


# -------------------------------------------------------------------------------------------- quantile
def _rank(n: int, alpha: float) -> int:
    """``k = ceil((n + 1)(1 - alpha))``; the 1e-9 absorbs float rounding upwards (10 * 0.9 = 9.000...01)."""
    return math.ceil((n + 1) * (1 - alpha) - 1e-9)


@checked
def min_calibration_size(alpha: float) -> int:
    """The fewest calibration scores for which the ``ceil((n + 1)(1 - alpha))``-th smallest exists:
    ``ceil(1 / alpha) - 1`` (9 for alpha = 0.1, 99 for alpha = 0.01)."""
    alpha = _check_alpha(alpha)
    n = max(1, math.ceil(1 / alpha) - 3)
    while _rank(n, alpha) > n:  # at most a few steps from the closed form
        n += 1
    return n


def _too_small(n: int, alpha: float, what: str = "calibration set") -> ValueError:
    need = min_calibration_size(alpha)
    return ValueError(f"the {what} is too small for alpha={alpha:g}: the threshold is the "
                      f"ceil((n + 1)(1 - alpha)) = {_rank(n, alpha)}-th smallest of n = {n} scores, which does "
                      f"not exist; use at least n = {need} calibration images (n >= ceil(1/alpha) - 1) or a "
                      f"larger alpha")


@checked
def conformal_quantile(scores, alpha: float) -> float:
    """The split-conformal threshold of calibration ``scores`` (n,): the ``ceil((n + 1)(1 - alpha))``-th
    smallest score (an order statistic, no interpolation). ValueError when ``n < ceil(1/alpha) - 1``."""
    alpha = _check_alpha(alpha)
    scores = _tensor(scores, "scores")
    if isinstance(scores, np.ndarray):
        scores = torch.from_numpy(scores)
    if not isinstance(scores, torch.Tensor) or not scores.is_floating_point() or scores.dim() != 1:
        raise ValueError(f"scores must be a 1-D floating tensor (one score per calibration image), got "
                         f"{tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__}")
    if not bool(torch.isfinite(scores).all()):
        raise ValueError("scores contains NaN or infinite values")
    n = scores.numel()
    k = _rank(n, alpha)
    if k > n:
        raise _too_small(n, alpha)
    return float(torch.kthvalue(scores.to(torch.float64).cpu(), k).values)


# ------------------------------------------------------------------------------------------- predictor
@dataclass(eq=False)
class ConformalPredictor:
    """A calibrated split-conformal classifier (made by :func:`calibrate`).

    ``threshold``: the score threshold ``q`` (a float, or a (K,) float64 tensor with ``classwise=True``,
    one per class); ``score``, ``alpha``, ``randomized``, ``classwise``, ``lam``, ``k_reg``, ``seed``: the
    options it was calibrated with; ``n``: the calibration size; ``num_classes``: K.
    """

    threshold: float | torch.Tensor
    score: str
    alpha: float
    randomized: bool
    classwise: bool
    lam: float
    k_reg: int
    seed: int
    n: int
    num_classes: int

    def label_scores(self, probs, u=None, seed: int | None = None) -> torch.Tensor:
        """Scores (N, K) of every label of new images (``u``, ``seed``: as in :meth:`predict`)."""
        p = _probs(probs)
        if p.shape[1] != self.num_classes:
            raise ValueError(f"probs has {p.shape[1]} classes, but the predictor was calibrated on "
                             f"{self.num_classes}")
        seed = (self.seed + 1) % 2 ** 63 if seed is None else check_seed(seed)
        u = _uniforms(u, p.shape[0], self.randomized, seed, p.device)
        return _label_scores(p, self.score, u, self.lam, self.k_reg)

    def predict(self, probs, u=None, seed: int | None = None) -> torch.Tensor:
        """Prediction sets (N, K) bool of images with softmax probabilities ``probs`` (N, K): label ``y`` is
        in the set of image ``i`` when its score is at most the threshold (of class ``y`` when classwise).

        Randomised scores draw one uniform per image from a generator seeded with ``seed`` (default: the
        calibration seed + 1, so test draws are independent of calibration draws), or take ``u`` (N,).
        """
        s = self.label_scores(probs, u, seed)
        q = self.threshold.to(s.device)[None, :] if isinstance(self.threshold, torch.Tensor) else self.threshold
        return s <= q

    def predict_images(self, model: nn.Module, images: torch.Tensor, batch_size="auto", u=None,
                       seed: int | None = None) -> torch.Tensor:
        """Prediction sets (N, K) of ``images`` (N, C, H, W) through ``model`` (see :func:`predict_sets`)."""
        return predict_sets(model, images, self, batch_size=batch_size, u=u, seed=seed)

    def __repr__(self) -> str:
        q = (f"per class {[round(v, 4) for v in self.threshold.tolist()]}" if self.classwise
             else f"{self.threshold:.4f}")
        extra = f", lam={self.lam:g}, k_reg={self.k_reg}" if self.score == "raps" else ""
        return (f"ConformalPredictor(score={self.score!r}, alpha={self.alpha:g}, randomized={self.randomized}, "
                f"classwise={self.classwise}{extra}, n={self.n}, threshold={q})")


@checked
def calibrate(probs, labels, alpha: float = 0.1, score: str = "lac", randomized: bool = False,
              classwise: bool = False, lam: float = 0.01, k_reg: int = 5, seed: int = 0, u=None
              ) -> ConformalPredictor:
    """Calibrate split conformal prediction sets on held-out images.

    Args:
        probs: softmax probabilities (N, K) of the calibration images (a tensor, numpy array or nested
            list; rows must sum to 1: pass ``torch.softmax(logits, 1)``, not logits).
        labels: their true classes (N,), integers in [0, K).
        alpha: the miscoverage rate in (0, 1): sets will contain the true label with probability at least
            ``1 - alpha`` on exchangeable test images.
        score: ``"lac"``, ``"aps"`` or ``"raps"`` (see the module docstring).
        randomized: the randomised APS / RAPS score (exact coverage); only for ``"aps"`` and ``"raps"``.
        classwise: one threshold per class (Mondrian); every class needs ``ceil(1/alpha) - 1`` images.
        lam, k_reg: the RAPS penalty ``lam * max(0, rank - k_reg)`` (ignored by the other scores).
        seed: seeds the uniforms of a randomised score (a local ``torch.Generator``).
        u: the calibration uniforms (N,) instead of drawing them.

    Returns:
        a :class:`ConformalPredictor`; its ``threshold`` is the ``ceil((n + 1)(1 - alpha))``-th smallest
        calibration score (per class with ``classwise=True``).
    """
    alpha = _check_alpha(alpha)
    randomized, lam, k_reg = _check_options(score, randomized, lam, k_reg)
    classwise = _check_bool(classwise, "classwise")
    seed = check_seed(seed)
    p = _probs(probs)
    n, num_classes = p.shape
    y = _labels(labels, n, num_classes, p.device)
    if _rank(n, alpha) > n:
        raise _too_small(n, alpha)
    u = _uniforms(u, n, randomized, seed, p.device)
    s = _label_scores(p, score, u, lam, k_reg).gather(1, y[:, None])[:, 0].cpu()
    if not classwise:
        threshold = conformal_quantile(s, alpha)
    else:
        y = y.cpu()
        counts = torch.bincount(y, minlength=num_classes)
        short = [k for k in range(num_classes) if _rank(int(counts[k]), alpha) > counts[k]]
        if short:
            need = min_calibration_size(alpha)
            raise ValueError(f"classwise=True needs at least {need} calibration images of every class for "
                             f"alpha={alpha:g} (n_k >= ceil(1/alpha) - 1); labels has too few of class(es) "
                             f"{short} (counts {[int(counts[k]) for k in short]}): use more calibration images, "
                             f"a larger alpha or classwise=False")
        threshold = torch.tensor([conformal_quantile(s[y == k], alpha) for k in range(num_classes)],
                                 dtype=torch.float64)
    return ConformalPredictor(threshold, score, alpha, randomized, classwise, lam, k_reg, seed, n, num_classes)


@guarded(policy="eval")
@checked
def predict_sets(model: nn.Module, images: torch.Tensor, predictor: ConformalPredictor, batch_size="auto",
                 u=None, seed: int | None = None) -> torch.Tensor:
    """Prediction sets (N, K) bool of ``images`` (N, C, H, W): ``model`` runs in eval mode, in batches
    (``batch_size``: ``"auto"``, an int or None, as everywhere), its softmax goes to ``predictor.predict``.
    The sets are on the images' device."""
    if not isinstance(predictor, ConformalPredictor):
        raise TypeError(f"predictor must be a ConformalPredictor (from calibrate), got {type(predictor).__name__}")
    images = check_model_input(model, images, "images")
    check_batch_size(batch_size)
    logits = forward_logits(model, images, batch_size)
    return predictor.predict(torch.softmax(logits.float(), 1), u=u, seed=seed)


# --------------------------------------------------------------------------------------------- metrics
def _sets(sets, argument: str = "sets") -> torch.Tensor:
    sets = _tensor(sets, argument)
    if isinstance(sets, np.ndarray):
        sets = torch.from_numpy(sets)
    if not isinstance(sets, torch.Tensor):
        raise TypeError(f"{argument} must be a bool tensor (N, K), got {type(sets).__name__}")
    if sets.dim() != 2 or sets.shape[0] == 0:
        raise ValueError(f"{argument} must have shape (N, K) with N >= 1 (one row of K flags per image), "
                         f"got {tuple(sets.shape)}")
    if sets.dtype != torch.bool:
        if sets.is_floating_point() or sets.is_complex() or not bool(((sets == 0) | (sets == 1)).all()):
            raise ValueError(f"{argument} must be a bool (or 0/1 integer) tensor (N, K), got dtype {sets.dtype}")
        sets = sets != 0
    return sets


def _hits(sets, labels):
    """Checked sets (N, K) bool, labels (N,) long and whether each set holds its label, (N,) float64."""
    sets = _sets(sets)
    y = _labels(labels, sets.shape[0], sets.shape[1], sets.device)
    return sets, y, sets.gather(1, y[:, None])[:, 0].double()


class SizeCoverage(NamedTuple):
    """Coverage of the images whose set has one size, and how many images that is."""

    coverage: float
    count: int


@metric("set coverage", True, quantity="share of images whose conformal prediction set holds the true label "
        "(guaranteed >= 1 - alpha on exchangeable data)", family=_FAMILY)
@checked
def coverage(sets, labels) -> float:
    """Share of images whose set contains the true label (the guarantee: >= 1 - alpha)."""
    _, _, hit = _hits(sets, labels)
    return float(hit.mean())


@metric("set size", False, quantity="mean number of labels in a conformal prediction set (at a given coverage)",
        family=_FAMILY)
@checked
def set_size(sets) -> torch.Tensor:
    """Number of labels in each set, (N,) long (0 for an empty set). Smaller sets at the same coverage are
    more informative; their mean is the usual summary."""
    return _sets(sets).sum(1)


@checked
def coverage_by_size(sets, labels) -> dict[int, SizeCoverage]:
    """``{size: SizeCoverage(coverage, count)}`` for each set size that occurs, in increasing order: are
    small sets as reliable as large ones? (Conformal sets only promise the average.)"""
    sets, _, hit = _hits(sets, labels)
    size = sets.sum(1)
    sizes, index, counts = torch.unique(size, return_inverse=True, return_counts=True)
    hits = torch.zeros(len(sizes), dtype=torch.float64, device=sets.device).index_add_(0, index, hit)
    return {int(s): SizeCoverage(float(h / c), int(c)) for s, h, c in zip(sizes.tolist(), hits, counts)}


@checked
def coverage_by_class(sets, labels) -> torch.Tensor:
    """Coverage of the images of each true class, (K,) float64 (NaN for a class with no image): the
    marginal guarantee allows some classes far below ``1 - alpha``; ``calibrate(classwise=True)`` covers
    each class."""
    sets, y, hit = _hits(sets, labels)
    k = sets.shape[1]
    counts = torch.bincount(y, minlength=k).double()
    hits = torch.zeros(k, dtype=torch.float64, device=sets.device).index_add_(0, y, hit)
    return torch.where(counts > 0, hits / counts.clamp_min(1), torch.full_like(hits, float("nan")))


#: metric name -> True when higher is better: this module's part of the direction registry, read-only.
DIRECTIONS = view(("set coverage", "set size"))
