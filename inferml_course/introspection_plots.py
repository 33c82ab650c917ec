"""Figures and a live-teaching widget for lesson 04 (introspective learning).

Every function returns a matplotlib ``Figure`` and never calls ``plt.show()``.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from . import plotting
from .datasets import ImageDataset
from .datasets.corruptions import CORRUPTIONS
from .fisher_plots import format_table
from .introspection import IntrospectiveClassifier, question_gradient_norms
from .widgets import CorruptedImageExplorer

__all__ = ["show_question_gradients", "plot_corruption_comparison", "corruption_rows", "IntrospectionExplorer",
           "format_table"]


def _short(name: str) -> str:
    return name.replace("pedestrian_crossing", "pedestrian").replace("_", " ")


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


def corruption_rows(result: dict) -> list[dict]:
    """One row per corruption (mean over severities) plus a mean row, for :func:`format_table`."""
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


class IntrospectionExplorer(CorruptedImageExplorer):
    """Pick an image, a corruption and a severity; see the introspective gradients and both predictions.

    Usage: ``explorer = IntrospectionExplorer(intro, test_set); display(explorer.widget)``.
    """

    def __init__(self, classifier: IntrospectiveClassifier, dataset: ImageDataset, corruptions=CORRUPTIONS,
                 seed: int = 0):
        self.classifier = classifier
        super().__init__(dataset, corruptions, seed)

    def compute(self, corruption: str, severity: int, index: int) -> dict:
        """Image, question-gradient norms (K, K) and both probability vectors for one setting."""
        x = self.image(corruption, severity, index)
        device = next(self.classifier.parameters()).device
        x = x.to(device)
        ff, intro = self.classifier.both_proba(x)
        norms = question_gradient_norms(self.classifier.sensing, x, loss=self.classifier.loss,
                                        layer=self.classifier.layer)[0]
        return {"image": x[0].cpu(), "norms": norms.cpu(), "feed_forward": ff[0].cpu(), "introspective": intro[0].cpu()}

    def draw(self, corruption: str, severity: int, index: int):
        """The figure for one setting: image, gradient heatmap, and the two probability vectors."""
        r = self.compute(corruption, severity, index)
        label = int(self.dataset.labels[index])
        classes = self.dataset.classes
        fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), gridspec_kw={"width_ratios": [0.8, 1.2, 1.4]})
        plotting.show_image(axes[0], r["image"], f"{self.setting(corruption, severity)}\ntrue: {_short(classes[label])}")
        show_question_gradients(r["norms"], classes, axes[1], predicted=int(r["feed_forward"].argmax()))
        k = len(classes)
        pos = np.arange(k)
        axes[2].barh(pos + 0.2, r["feed_forward"].numpy(), height=0.4, label="feed-forward")
        axes[2].barh(pos - 0.2, r["introspective"].numpy(), height=0.4, label="introspective")
        axes[2].set_yticks(pos, [_short(c) for c in classes], fontsize=9)
        axes[2].invert_yaxis()
        axes[2].set_xlim(0, 1)
        axes[2].set_xlabel("probability")
        axes[2].legend(loc="lower right")
        f_pred, i_pred = int(r["feed_forward"].argmax()), int(r["introspective"].argmax())
        axes[2].set_title(f"f: {_short(classes[f_pred])} ({r['feed_forward'][f_pred]:.0%}), "
                          f"H: {_short(classes[i_pred])} ({r['introspective'][i_pred]:.0%})", fontsize=11)
        fig.tight_layout()
        return fig
