"""Figures of lesson 04 (introspective learning).

Every function returns a matplotlib ``Figure`` and never calls ``plt.show()``.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from .._core.arguments import checked


__all__ = ["show_question_gradients", "plot_corruption_comparison", "corruption_rows"]


def _short(name: str) -> str:
    return name.replace("pedestrian_crossing", "pedestrian").replace("_", " ")


@checked
def show_question_gradients(norms: torch.Tensor, class_names, ax=None, title: str | None = None,
                            predicted: int | None = None):
    """Heatmap of one image's question-gradient norms (K, K): row I = "Why y_hat, rather than I?",
    column c = the gradient of the last layer's row for class c."""
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.2, 4.6))
    image = ax.imshow(norms.detach().cpu().numpy(), cmap="magma")
    ticks = range(len(class_names))
    ax.set_xticks(ticks, [_short(c) for c in class_names], rotation=70, fontsize=9)
    ax.set_yticks(ticks, [_short(c) for c in class_names], fontsize=9)
    ax.set_xlabel("gradient of the last layer's row for class c")
    ax.set_ylabel("question: rather than I?")
    if predicted is not None:
        ax.axvline(predicted, color="cyan", lw=1, ls=":")
    ax.set_title(title or "introspective gradients")
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="norm")
    return fig if fig is not None else ax.figure


@checked
def plot_corruption_comparison(result: dict, title: str = "feed-forward vs introspective under corruptions"):
    """Two panels from :func:`inferml_course.introspection.corruption_benchmark`: accuracy and ECE
    against severity (mean over corruptions; severity 0 = clean)."""
    sev = [0, *result["severities"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.9))
    for i, name in enumerate(result["accuracy"]):
        acc = [result["clean"]["accuracy"][name], *result["accuracy"][name].mean(0).tolist()]
        ece = [result["clean"]["ece"][name], *result["ece"][name].mean(0).tolist()]
        style = dict(marker="o" if i == 0 else "s", lw=2, ls="-" if i == 0 else "--", label=name)
        ax1.plot(sev, acc, **style)
        ax2.plot(sev, ece, **style)
    ax1.set_xlabel("severity (0 = clean)")
    ax1.set_ylabel("accuracy (higher is better)")
    ax2.set_xlabel("severity (0 = clean)")
    ax2.set_ylabel("ECE (lower is better)")
    for ax in (ax1, ax2):
        ax.set_xticks(sev)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@checked
def corruption_rows(result: dict) -> list[dict]:
    """One row per corruption (mean over severities) plus a mean row, for :func:`inferml_course.format_table`."""
    names = list(result["accuracy"])
    rows = []
    for i, corruption in enumerate(result["corruptions"] + ["mean"]):
        row = {"corruption": corruption}
        for name in names:
            acc, ece = result["accuracy"][name], result["ece"][name]
            row[f"acc {name}"] = float((acc.mean() if corruption == "mean" else acc[i].mean()))
            row[f"ECE {name}"] = float((ece.mean() if corruption == "mean" else ece[i].mean()))
        rows.append(row)
    return rows

