"""Figures for lessons 05, 06 and 12: reliability diagrams, toy uncertainty maps, score histograms,
trust curves, the GradTrust-vs-confidence quadrant scatter, conformal sets and their label co-occurrence.

Each function draws on a given ``ax`` (or makes a figure) and returns the Figure; none calls
``plt.show()``. Labelled axes and titles, readable at slide size.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from .._core.arguments import checked
from .calibration import expected_calibration_error, reliability_bins, top_label

__all__ = ["reliability_diagram", "uncertainty_maps", "score_histograms", "trust_curves", "quadrant_scatter",
           "ood_histograms", "conformal_set_bars", "set_cooccurrence"]

CORRECT_COLOR, WRONG_COLOR = "#2a9d3f", "#d62728"


def _np(t) -> np.ndarray:
    return t.detach().cpu().double().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, dtype=float)


def _axes(ax, figsize):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


@checked
def reliability_diagram(probs, labels, ax=None, n_bins: int = 15, rule: str = "left_closed", title: str | None = None,
                        color: str = "#3b75af", count_ax=None):
    """Accuracy per confidence bin (bars) against the diagonal of perfect calibration.

    The red hatched part of each bar is the gap between accuracy and mean confidence; the ECE
    (lower is better) is in the legend. Bars are drawn at the bins' edges. ``count_ax``: an axis (e.g.
    a short one below ``ax``) that gets the number of predictions per bin on a log scale, so a bin's
    weight in the ECE can be read off.
    """
    ax = _axes(ax, (4.6, 4.4))
    conf, correct = top_label(probs, labels)
    bins = reliability_bins(conf, correct, n_bins, rule)
    edges = _np(bins["edges"])
    acc, mean_conf, count = _np(bins["accuracy"]), _np(bins["confidence"]), _np(bins["count"])[:n_bins]
    acc, mean_conf = acc[:n_bins], mean_conf[:n_bins]
    width = np.diff(edges)
    filled = count > 0
    ece = expected_calibration_error(probs, labels, n_bins, rule)
    ax.bar(edges[:-1][filled], acc[filled], width=width[filled], align="edge", color=color, edgecolor="white",
           label=f"accuracy (ECE {100 * ece:.1f} %)")
    ax.bar(edges[:-1][filled], (mean_conf - acc)[filled], bottom=acc[filled], width=width[filled], align="edge",
           color="none", edgecolor=WRONG_COLOR, hatch="//", linewidth=0.8, label="gap to confidence")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (max softmax probability)")
    ax.set_ylabel("accuracy in the bin")
    ax.set_title(title or "reliability diagram")
    ax.legend(frameon=False, loc="upper left", fontsize=10)
    if count_ax is not None:
        count_ax.bar(edges[:-1][filled], count[filled], width=width[filled], align="edge", color="0.55",
                     edgecolor="white")
        for left, w, n in zip(edges[:-1][filled], width[filled], count[filled]):
            count_ax.text(left + w / 2, n, f"{int(n)}", ha="center", va="bottom", fontsize=7)
        count_ax.set_yscale("log")
        count_ax.set_ylim(0.8, 3 * max(count.max(), 1))
        count_ax.set_xlim(0, 1)
        count_ax.set_xlabel(ax.get_xlabel())
        count_ax.set_ylabel("predictions\n(log scale)")
        ax.set_xlabel("")
    return ax.figure


@checked
def uncertainty_maps(grid, maps: dict, data=None, parts=("total", "aleatoric", "epistemic"), suptitle=None):
    """One row per method, one column per part of the decomposition, data points on top.

    ``grid`` is a :class:`~.toy.ToyGrid`; ``maps`` maps a method name to a
    :class:`~.bayesian.Decomposition` evaluated at ``grid.points``. Colour scales are shared per column.
    """
    rows = list(maps)
    fig, axes = plt.subplots(len(rows), len(parts), figsize=(4.3 * len(parts), 3.6 * len(rows)), squeeze=False)
    for j, part in enumerate(parts):
        vmax = max(float(getattr(maps[r], part).max()) for r in rows) or 1.0
        for i, r in enumerate(rows):
            ax = axes[i, j]
            im = ax.contourf(grid.xx, grid.yy, grid.reshape(getattr(maps[r], part)), levels=np.linspace(0, vmax, 16),
                             cmap="magma")
            if data is not None:
                ax.scatter(_np(data.x[:, 0]), _np(data.x[:, 1]), c=_np(data.y), cmap="coolwarm", s=5,
                           edgecolors="none", alpha=0.8)
                for center, radius, style in ((data.noisy_center, data.noisy_radius, "-"),
                                              (data.gap_center, data.gap_radius, "--")):
                    ax.add_patch(plt.Circle(center, radius, fill=False, color="white", linestyle=style, linewidth=1.5))
            ax.set_title(f"{r}: {part}")
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label="nats")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


@checked
def score_histograms(scores, correct, ax=None, title: str | None = None, xlabel: str = "uncertainty score",
                     bins: int = 30, log_y: bool = False):
    """Histograms of a score for correct (green) and wrong (red) predictions, each normalised to area 1.

    ``log_y=True`` puts the density on a log axis (when most predictions pile up in one bin)."""
    ax = _axes(ax, (5.2, 3.6))
    s, c = _np(scores), _np(correct).astype(bool)
    edges = np.histogram_bin_edges(s, bins=bins)
    ax.hist(s[c], bins=edges, density=True, alpha=0.6, color=CORRECT_COLOR, label=f"correct ({c.sum()})")
    if (~c).any():
        ax.hist(s[~c], bins=edges, density=True, alpha=0.6, color=WRONG_COLOR, label=f"wrong ({(~c).sum()})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density (log scale)" if log_y else "density")
    if log_y:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend(frameon=False)
    return ax.figure


@checked
def trust_curves(curves: dict, ax=None, ylabel: str = "accuracy of the retained images", title: str | None = None,
                 reference: dict | None = None):
    """Curves ``{name: (percentiles, values)}`` (e.g. from :func:`~.metrics.accuracy_curve`), with
    optional flat ``reference`` lines (e.g. ``{"random": a}``)."""
    ax = _axes(ax, (6.4, 4.2))
    for name, (x, y) in curves.items():
        ax.plot(100 * _np(x), 100 * _np(y), label=str(name), linewidth=1.8)
    for name, value in (reference or {}).items():
        ax.axhline(100 * value, color="gray", linestyle=":", linewidth=1.2)
        ax.text(22, 100 * value, f" {name}", va="bottom", ha="left", color="gray", fontsize=10)
    ax.set_xlabel("percentile of trust (least trusted images removed, %)")
    ax.set_ylabel(ylabel + " (%)")
    ax.set_title(title or "trust curves (higher is better)")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=9, ncol=2)
    return ax.figure


@checked
def quadrant_scatter(trust, confidence, correct, ax=None, trust_split: float | None = None,
                     confidence_split: float | None = None, title: str | None = None, log_trust: bool = True):
    """The tutorial's scatter: trust on x, softmax confidence on y, correct green, wrong red.

    Dashed lines mark the splits (medians by default), and each quadrant shows its wrong/total count.
    """
    from .experiments import quadrant_counts

    ax = _axes(ax, (6.0, 4.8))
    t, cf, c = _np(trust), _np(confidence), _np(correct).astype(bool)
    counts = quadrant_counts(torch.as_tensor(t), torch.as_tensor(cf), torch.as_tensor(c), trust_split,
                             confidence_split)
    ts, cs = counts["splits"]["trust"], counts["splits"]["confidence"]
    ax.scatter(t[c], cf[c], s=10, color=CORRECT_COLOR, alpha=0.5, label="correct", edgecolors="none")
    ax.scatter(t[~c], cf[~c], s=14, color=WRONG_COLOR, alpha=0.8, label="wrong", edgecolors="none")
    ax.axvline(ts, color="gray", linestyle="--", linewidth=1)
    ax.axhline(cs, color="gray", linestyle="--", linewidth=1)
    if log_trust and (t > 0).all():
        ax.set_xscale("log")
    ylo, yhi = ax.get_ylim()
    pad = 0.12 * (yhi - ylo)
    ylo, yhi = ylo - pad, yhi + pad                     # room for the count boxes above and below the points
    ax.set_ylim(ylo, yhi)
    xlo, xhi = ax.get_xlim()
    for name, (x, y, ha, va) in {"low trust, high confidence": (xlo, yhi, "left", "top"),
                                 "high trust, high confidence": (xhi, yhi, "right", "top"),
                                 "low trust, low confidence": (xlo, ylo, "left", "bottom"),
                                 "high trust, low confidence": (xhi, ylo, "right", "bottom")}.items():
        q = counts[name]
        ax.text(x, y, f"{q['wrong']} wrong / {q['wrong'] + q['correct']}", ha=ha, va=va, fontsize=10,
                bbox=dict(boxstyle="round", facecolor="white", alpha=0.8, edgecolor="none"))
    ax.set_xlabel("GradTrust (higher = more trust)")
    ax.set_ylabel("softmax confidence")
    ax.set_title(title or "GradTrust vs softmax confidence")
    ax.legend(frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.figure.tight_layout()
    return ax.figure


@checked
def ood_histograms(id_scores, ood_scores: dict, ax=None, title: str | None = None,
                   xlabel: str = "uncertainty score", bins: int = 30, log_x: bool = False):
    """Density histograms of a score on in-distribution images and on each OOD set.

    ``log_x=True`` uses logarithmic bins and axis (for positive, heavy-tailed scores such as distances).
    """
    ax = _axes(ax, (5.6, 3.8))
    all_values = np.concatenate([_np(id_scores)] + [_np(v) for v in ood_scores.values()])
    if log_x:
        positive = all_values[all_values > 0]
        edges = np.logspace(np.log10(positive.min()), np.log10(positive.max()), bins + 1)
        ax.set_xscale("log")
    else:
        edges = np.histogram_bin_edges(all_values, bins=bins)
    ax.hist(_np(id_scores), bins=edges, density=True, alpha=0.55, color="gray", label="in-distribution")
    for name, values in ood_scores.items():
        ax.hist(_np(values), bins=edges, density=True, histtype="step", linewidth=1.8, label=name.replace("_", " "))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    if title:
        ax.set_title(title)
    ax.legend(frameon=False, fontsize=9)
    return ax.figure


@checked
def conformal_set_bars(probs, in_set, class_names, true_label: int | None = None, ax=None, title: str | None = None):
    """One image's softmax probabilities (K,) as horizontal bars in class order: the labels of its conformal
    set ``in_set`` (K,) bool in orange, the others grey; the true label's name in bold, marked covered or
    missed."""
    ax = _axes(ax, (5.0, 3.6))
    p, member = _np(probs), _np(in_set).astype(bool)
    k = np.arange(len(p))
    ax.barh(k, p, color=np.where(member, "tab:orange", "0.75"))
    names = [str(c) for c in class_names]
    if true_label is not None:
        y = int(true_label)
        names[y] = f"{names[y]} ({'covered' if member[y] else 'missed'})"
    ax.set_yticks(k, names)
    if true_label is not None:
        ax.get_yticklabels()[int(true_label)].set_fontweight("bold")
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("softmax probability (orange: in the set)")
    if title:
        ax.set_title(title)
    return ax.figure


@checked
def set_cooccurrence(sets, class_names, ax=None, title: str | None = None):
    """How often two labels share a prediction set with more than one label: a (K, K) heatmap of counts
    (diagonal: sets of two or more labels that contain the class), with a colour bar."""
    ax = _axes(ax, (6.4, 5.2))
    member = _np(sets).astype(float)
    member = member[member.sum(1) > 1]
    counts = member.T @ member
    im = ax.imshow(counts, cmap="viridis")
    ax.set_xticks(range(len(class_names)), list(class_names), rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), list(class_names))
    ax.figure.colorbar(im, ax=ax, label="sets with more than one label that hold both")
    ax.set_title(title or f"labels that share a set ({len(member)} sets with 2+ labels)")
    return ax.figure
