"""Rank explanation methods under several metrics and show where the metrics disagree.

``scores`` is a nested dict ``{metric: {method: value}}``; :data:`DIRECTIONS` (or your own
``directions``) says for each metric whether higher or lower is better. :func:`rank_methods`
turns each metric into ranks (1 = best; ties share the mean rank), :func:`kendall_tau` compares two
rankings (1 = same order, -1 = reversed) and :func:`format_ranking` prints one table with a
direction arrow in every column header.
"""
from __future__ import annotations

import math

__all__ = ["DIRECTIONS", "rank_methods", "kendall_tau", "agreement", "format_ranking", "merge_summaries"]

#: Direction of every metric of the evaluate package: True when higher is better.
DIRECTIONS = {
    "insertion_auc": True, "deletion_auc": False,
    "structure_insertion_auc": True, "structure_deletion_auc": False,
    "expected_score": True, "masked_accuracy": True, "average_drop": False, "increase_in_confidence": True,
    "pointing_game": True, "energy_pointing_game": True, "iou": True, "correlation": True, "pixel_accuracy": True,
    "human_preference": True,
}


def _direction(metric, directions):
    """True when higher is better: from ``directions``, else :data:`DIRECTIONS`, else the last word of
    the metric's name ("sign iou" -> "iou")."""
    table = {**DIRECTIONS, **(directions or {})}
    for name in (metric, metric.split(" ")[-1]):
        if name in table:
            return bool(table[name])
    raise ValueError(f"the direction of metric {metric!r} is unknown; pass directions={{{metric!r}: True}} "
                     "(True: higher is better)")


def merge_summaries(*summaries, prefix: dict | None = None) -> dict:
    """Merge ``{method: {metric: value}}`` summaries (from the results' ``summary()``) into
    ``{metric: {method: value}}``. ``prefix`` renames metrics: {"iou": "sign iou"}."""
    out = {}
    for summary in summaries:
        for method, row in summary.items():
            for metric, value in row.items():
                name = (prefix or {}).get(metric, metric)
                out.setdefault(name, {})[method] = float(value)
    return out


def rank_methods(scores: dict, directions: dict | None = None) -> dict:
    """``{metric: {method: rank}}`` with 1 the best method under that metric; ties (and NaN values,
    ranked last) share the mean of their ranks."""
    ranks = {}
    for metric, values in scores.items():
        higher = _direction(metric, directions)

        def key(m):
            v = values[m]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                return math.inf
            return -v if higher else v

        ordered = sorted(values, key=key)
        r, i = {}, 0
        while i < len(ordered):
            j = i
            while j + 1 < len(ordered) and key(ordered[j + 1]) == key(ordered[i]):
                j += 1
            for m in ordered[i:j + 1]:
                r[m] = (i + j) / 2 + 1
            i = j + 1
        ranks[metric] = r
    return ranks


def kendall_tau(ranks_a: dict, ranks_b: dict) -> float:
    """Kendall's tau-b between two rankings {method: rank} of the same methods (1: same order,
    -1: reversed, about 0: unrelated)."""
    methods = sorted(set(ranks_a) & set(ranks_b))
    if len(methods) < 2:
        return float("nan")
    concordant = discordant = ties_a = ties_b = 0
    for i in range(len(methods)):
        for j in range(i + 1, len(methods)):
            da = ranks_a[methods[i]] - ranks_a[methods[j]]
            db = ranks_b[methods[i]] - ranks_b[methods[j]]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                concordant += 1
            else:
                discordant += 1
    denom = math.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return (concordant - discordant) / denom if denom else float("nan")


def agreement(ranks: dict) -> dict:
    """Kendall's tau for every pair of metrics: ``{(metric_a, metric_b): tau}``."""
    metrics = list(ranks)
    return {(a, b): kendall_tau(ranks[a], ranks[b]) for i, a in enumerate(metrics) for b in metrics[i + 1:]}


def format_ranking(scores: dict, directions: dict | None = None, methods=None, digits: int = 3) -> str:
    """A text table: one row per method, one column per metric with its value and rank, headers
    marked ↑ (higher is better) or ↓ (lower is better); rows sorted by mean rank."""
    ranks = rank_methods(scores, directions)
    metrics = list(scores)
    methods = list(methods) if methods is not None else sorted({m for v in scores.values() for m in v})
    mean_rank = {m: sum(ranks[k].get(m, math.nan) for k in metrics) / len(metrics) for m in methods}
    methods.sort(key=lambda m: mean_rank[m])
    heads = []
    for k in metrics:
        higher = _direction(k, directions)
        heads.append(f"{k} {'↑' if higher else '↓'}")
    width = max(10, *(len(m) for m in methods))
    cols = [max(len(h), digits + 9) for h in heads]
    lines = [f"{'method':<{width}}  " + "  ".join(f"{h:>{c}}" for h, c in zip(heads, cols)) + "  mean rank"]
    for m in methods:
        cells = []
        for k, c in zip(metrics, cols):
            v = scores[k].get(m)
            cells.append(f"{'-':>{c}}" if v is None else f"{v:.{digits}f} ({ranks[k][m]:>4.1f})".rjust(c))
        lines.append(f"{m:<{width}}  " + "  ".join(cells) + f"  {mean_rank[m]:>9.2f}")
    lines.append("↑ higher is better, ↓ lower is better; (rank) 1 = best under that metric")
    return "\n".join(lines)

