"""Rank explanation methods under several metrics and show where the metrics disagree.

``scores`` is a nested dict ``{metric: {method: value}}``; the package's direction registry
(:mod:`inferml_course._core.directions`; :data:`DIRECTIONS` shows evaluate's part of it) or your own
``directions`` ({metric: True when higher is better}) says for each metric which way is better. A
metric the registry does not know is an error, not a guess: :func:`merge_summaries` registers the
names its ``prefix`` creates (``"sign iou"`` is ``"iou"`` on the sign masks), other names need
``directions``. :func:`rank_methods` turns each metric into ranks (1 = best; ties share the mean
rank, ``scipy.stats.rankdata``), :func:`kendall_tau` compares two rankings (Kendall's tau-b,
``scipy.stats.kendalltau``: 1 = same order, -1 = reversed) and :func:`format_ranking` prints one
table with a direction arrow in every column header.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .._core.arguments import checked
from .._core import ranks as _ranks
from .._core.directions import arrow, family_view, higher_is_better, register
from .._core.tables import format_table

__all__ = ["DIRECTIONS", "rank_methods", "kendall_tau", "agreement", "format_ranking", "merge_summaries",
           "higher_is_better"]

#: Direction of every metric of the evaluate package (True: higher is better): evaluate's part of the
#: package's direction registry, read-only.
DIRECTIONS = family_view("evaluate")


@checked
def merge_summaries(*summaries, prefix: dict | None = None) -> dict:
    """Merge ``{method: {metric: value}}`` summaries (from the results' ``summary()``) into
    ``{metric: {method: value}}``. ``prefix`` renames metrics: {"iou": "sign iou"}; each new name is
    registered with the direction of the metric it renames (a name that already means the other
    direction is a ValueError)."""
    out = {}
    for summary in summaries:
        for method, row in summary.items():
            for metric, value in row.items():
                name = (prefix or {}).get(metric, metric)
                if name != metric:
                    register(name, base=metric)
                out.setdefault(name, {})[method] = float(value)
    return out


@checked
def rank_methods(scores: dict, directions: dict | None = None) -> dict:
    """``{metric: {method: rank}}`` with 1 the best method under that metric; ties (and NaN values,
    ranked last) share the mean of their ranks."""
    out = {}
    for metric, values in scores.items():
        higher = higher_is_better(metric, directions)
        methods = list(values)
        ranked = _ranks.average_ranks([values[m] for m in methods], descending=higher)
        out[metric] = {m: float(r) for m, r in zip(methods, ranked)}
    return out


@checked
def kendall_tau(ranks_a, ranks_b) -> float:
    """Kendall's tau-b (``scipy.stats.kendalltau``) of two rankings: two dicts {method: rank}, compared on the
    methods they share, or two equally long sequences. 1: same order, -1: reversed, about 0: unrelated; NaN
    when undefined (fewer than two items, a constant ranking, a NaN rank)."""
    from scipy.stats import kendalltau

    if isinstance(ranks_a, Mapping) and isinstance(ranks_b, Mapping):
        methods = sorted(set(ranks_a) & set(ranks_b))
        ranks_a, ranks_b = [ranks_a[m] for m in methods], [ranks_b[m] for m in methods]
    elif isinstance(ranks_a, Mapping) or isinstance(ranks_b, Mapping):
        raise TypeError("ranks_a and ranks_b must both be dicts {method: rank} or both sequences")
    a = np.asarray(ranks_a, dtype=np.float64).ravel()
    b = np.asarray(ranks_b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"ranks_a and ranks_b must have the same length, got {a.size} and {b.size}")
    if a.size < 2 or np.isnan(a).any() or np.isnan(b).any():
        return float("nan")
    return float(kendalltau(a, b, variant="b")[0])


@checked
def agreement(ranks: dict) -> dict:
    """Kendall's tau for every pair of metrics: ``{(metric_a, metric_b): tau}``."""
    metrics = list(ranks)
    return {(a, b): kendall_tau(ranks[a], ranks[b]) for i, a in enumerate(metrics) for b in metrics[i + 1:]}


@checked
def format_ranking(scores: dict, directions: dict | None = None, methods=None, digits: int = 3) -> str:
    """A text table: one row per method, one column per metric with its value and rank, headers
    marked ↑ (higher is better) or ↓ (lower is better); rows sorted by mean rank."""
    ranks = rank_methods(scores, directions)
    metrics = list(scores)
    methods = list(methods) if methods is not None else sorted({m for v in scores.values() for m in v})
    mean_rank = {m: sum(ranks[k].get(m, math.nan) for k in metrics) / len(metrics) for m in methods}
    methods.sort(key=lambda m: mean_rank[m])
    rows = {m: {**{k: scores[k].get(m) for k in metrics}, "mean rank": mean_rank[m]} for m in methods}

    def cell(value, method, metric):
        if metric == "mean rank":
            return f"{value:.2f}"
        return f"{value:.{digits}f} ({ranks[metric][method]:>4.1f})"

    headers = {k: f"{k} {arrow(higher_is_better(k, directions))}" for k in metrics}
    return format_table(rows, [*metrics, "mean rank"], label="method", fmt=cell, headers=headers, min_width=10,
                        notes=["↑ higher is better, ↓ lower is better; (rank) 1 = best under that metric"])
