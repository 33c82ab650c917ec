"""Ranks, row correlations and the bootstrap, from scipy (one definition each for the package).

* :func:`average_ranks`: 1-based ranks with ties sharing their mean rank
  (``scipy.stats.rankdata(method="average")``); NaN values rank last and share the mean of the
  last ranks; ``descending=True`` gives rank 1 to the largest value.
* :func:`bootstrap_ci`: the percentile bootstrap interval of a statistic. The resamples are
  ``numpy.random.default_rng(seed).integers(0, n, (n_resamples, n))``, exactly the draws of
  ``scipy.stats.bootstrap(..., method="percentile", rng=default_rng(seed))`` (the tests' oracle),
  and the interval is the linear-interpolation percentile of the resampled statistics; unlike scipy
  it also answers for a single observation (a zero-width interval).
* :func:`paired_bootstrap`: the same draws for a statistic of several arrays whose rows go together.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .arguments import checked
from .checks import check_seed

__all__ = ["MAX_RESAMPLES", "average_ranks", "bootstrap_ci", "paired_bootstrap", "pearson_rows"]

#: The most bootstrap resamples an interval draws (the index array is n_resamples x n integers).
MAX_RESAMPLES = 100_000


def _ranks_1d(values: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    nan = np.isnan(values)
    if not nan.any():
        return rankdata(values, method="average").astype(np.float64)
    out = np.empty(values.shape, dtype=np.float64)
    n_valid = int((~nan).sum())
    if n_valid:
        out[~nan] = rankdata(values[~nan], method="average")
    out[nan] = (n_valid + 1 + values.size) / 2  # the mean of the ranks n_valid + 1 .. n
    return out


def average_ranks(values, *, descending: bool = False, axis: int = -1):
    """1-based average ranks of ``values`` along ``axis`` (ties share their mean rank; NaN last).

    ``values``: a torch tensor (the ranks come back as a float64 tensor on its device) or anything
    ``numpy.asarray`` takes (the ranks come back as a float64 numpy array); ``None`` counts as NaN.
    ``descending=True``: rank 1 is the largest value.
    """
    is_tensor = isinstance(values, torch.Tensor)
    if is_tensor:
        array = values.detach().cpu().double().numpy()
    else:
        array = np.asarray([math.nan if v is None else v for v in values] if isinstance(values, (list, tuple))
                           else values, dtype=np.float64)
    if array.ndim == 0:
        raise ValueError("values must have at least one dimension")
    if descending:
        array = -array
    if array.size == 0:
        ranks = np.zeros(array.shape, dtype=np.float64)
    elif np.isnan(array).any():
        ranks = np.apply_along_axis(_ranks_1d, axis, array)
    else:
        from scipy.stats import rankdata

        ranks = rankdata(array, method="average", axis=axis).astype(np.float64)
    if is_tensor:
        return torch.from_numpy(np.ascontiguousarray(ranks)).to(values.device)
    return ranks


def _numpy(values) -> np.ndarray:
    """An array of the same dtype (a boolean mask stays a mask for the statistic)."""
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _resamples(n: int, n_resamples, level, seed) -> np.ndarray:
    """The bootstrap's row indices, (n_resamples, n), after checking the arguments every interval shares."""
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or not 1 <= n_resamples <= MAX_RESAMPLES:
        raise ValueError(f"n_resamples must be an integer in [1, {MAX_RESAMPLES}], got {n_resamples!r}")
    return np.random.default_rng(check_seed(seed)).integers(0, n, (n_resamples, n))


def _percentiles(stats: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1 - level) / 2
    low, high = np.percentile(stats, [alpha * 100, (1 - alpha) * 100])
    return float(low), float(high)


@checked
def bootstrap_ci(values, statistic=np.mean, n_resamples: int = 2000, level: float = 0.95, seed: int = 0
                 ) -> tuple[float, float]:
    """Percentile bootstrap interval ``(low, high)`` of ``statistic`` over ``values`` (n,); (nan, nan)
    when ``values`` is empty.

    ``statistic(array, axis=-1)`` must reduce the last axis (``numpy.mean``, ``numpy.median``): all
    resamples are scored in one call. Draws as ``scipy.stats.bootstrap(method="percentile")`` with
    ``rng=numpy.random.default_rng(seed)``.
    """
    values = np.asarray(_numpy(values), dtype=np.float64).ravel()
    idx = _resamples(max(values.size, 1), n_resamples, level, seed)
    if values.size == 0:
        return float("nan"), float("nan")
    return _percentiles(statistic(values[idx], axis=-1), level)


@checked
def paired_bootstrap(statistic, *arrays, n_resamples: int = 1000, level: float = 0.95, seed: int = 0
                     ) -> tuple[float, float]:
    """Percentile bootstrap interval ``(low, high)`` of ``statistic(*arrays) -> float``, resampling the rows
    of all ``arrays`` (each (N, ...), tensors or arrays, N >= 2) together: the draws and interval of
    ``scipy.stats.bootstrap(paired=True, method="percentile")``. The statistic may be any function (an
    AUROC difference), so it runs once per resample (``n_resamples`` calls, at most :data:`MAX_RESAMPLES`)."""
    data = [_numpy(a) for a in arrays]
    if not data:
        raise ValueError("paired_bootstrap needs at least one array")
    n = len(data[0])
    if n < 2 or any(len(a) != n for a in data):
        raise ValueError(f"arrays must share a length of at least 2, got {[len(a) for a in data]}")
    idx = _resamples(n, n_resamples, level, seed)
    stats = np.array([float(statistic(*(a[rows] for a in data))) for rows in idx])
    return _percentiles(stats, level)


def pearson_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` (two (N, ...) tensors of the
    same shape, flattened per row), float64 (N,) in [-1, 1]; 0 where either row is constant."""
    a = a.flatten(1).double()
    b = b.flatten(1).double()
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    norm = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(norm > 0, (a * b).sum(1) / norm.clamp_min(1e-300), torch.zeros_like(norm)).clamp(-1, 1)

