"""Ranks, row correlations and the bootstrap, from scipy (one definition each for the package).

* :func:`average_ranks`: 1-based ranks with ties sharing their mean rank
  (``scipy.stats.rankdata(method="average")``); NaN values rank last and share the mean of the
  last ranks; ``descending=True`` gives rank 1 to the largest value.
* :func:`bootstrap_ci`: the percentile bootstrap interval of a statistic. The resamples are
  ``numpy.random.default_rng(seed).integers(0, n, (n_resamples, n))``, exactly the draws of
  ``scipy.stats.bootstrap(..., method="percentile", rng=default_rng(seed))`` (the tests' oracle),
  and the interval is the linear-interpolation percentile of the resampled statistics; unlike scipy
  it also answers for a single observation (a zero-width interval).
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["average_ranks", "bootstrap_ci", "pearson_rows"]


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


def bootstrap_ci(values, statistic=np.mean, n_resamples: int = 2000, level: float = 0.95, seed: int = 0
                 ) -> tuple[float, float]:
    """Percentile bootstrap interval ``(low, high)`` of ``statistic`` over ``values`` (n,); (nan, nan)
    when ``values`` is empty.

    ``statistic(array, axis=-1)`` must reduce the last axis (``numpy.mean``, ``numpy.median``).
    Draws as ``scipy.stats.bootstrap(method="percentile")`` with ``rng=numpy.random.default_rng(seed)``.
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    values = np.asarray(values, dtype=np.float64).ravel()
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if values.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(int(seed))
    idx = rng.integers(0, values.size, (n_resamples, values.size))
    stats = statistic(values[idx], axis=-1)
    alpha = (1 - level) / 2
    low, high = np.percentile(stats, [alpha * 100, (1 - alpha) * 100])
    return float(low), float(high)


def pearson_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` (two (N, ...) tensors of the
    same shape, flattened per row), float64 (N,) in [-1, 1]; 0 where either row is constant."""
    a = a.flatten(1).double()
    b = b.flatten(1).double()
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    norm = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(norm > 0, (a * b).sum(1) / norm.clamp_min(1e-300), torch.zeros_like(norm)).clamp(-1, 1)

