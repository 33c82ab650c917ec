"""Figures of lesson 07 (VOICE). Every function returns the matplotlib ``Figure`` and never calls ``plt.show()``."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..._core.arguments import checked
from ...plotting import overlay_heatmap, show_image
from .maps import VoiceResult, explanation_overlap, snr

__all__ = ["voice_panel", "metric_boxplots"]


def _name(classes, k):
    k = int(k)
    return classes[k].replace("_", " ") if classes is not None and 0 <= k < len(classes) else str(k)


@checked
def voice_panel(images: torch.Tensor, result: VoiceResult, indices, class_names=None, labels=None,
                n_contrast: int = 3, threshold: float = 0.1, suptitle: str | None = None, colorbar: bool = True):
    """One row per image: the image, "Why P?", the ``n_contrast`` most probable "Why P, rather than Q?"
    maps, and the VOICE uncertainty map (with its explanation overlap, the paper's IoU, and SNR in
    the title). ``colorbar``: one shared scale at the right (every map is min-max normalised to [0, 1])."""
    indices = [int(i) for i in indices]
    ncols = 3 + n_contrast
    fig, axes = plt.subplots(len(indices), ncols, figsize=(1.9 * ncols, 2.5 * len(indices)), squeeze=False)
    overlaps = explanation_overlap(result.explanation, result.uncertainty, threshold)
    snrs = snr(result.uncertainty)
    for r, i in enumerate(indices):
        p = int(result.prediction[i])
        truth = "" if labels is None else f"true {_name(class_names, labels[i])}\n"
        show_image(axes[r, 0], images[i], f"{truth}pred {_name(class_names, p)}")
        show_image(axes[r, 1], images[i], f"Why {_name(class_names, p)}?")
        overlay_heatmap(axes[r, 1], result.explanation[i])
        probs = result.probs[i][result.contrast[i]]
        for c, j in enumerate(probs.argsort(descending=True)[:n_contrast].tolist()):
            q = int(result.contrast[i, j])
            show_image(axes[r, 2 + c], images[i], f"rather than\n{_name(class_names, q)}?")
            overlay_heatmap(axes[r, 2 + c], result.contrast_maps[i, j])
        show_image(axes[r, -1], images[i], f"VOICE\noverlap (IoU) {overlaps[i]:.2f}, SNR {snrs[i]:.2f}")
        overlay_heatmap(axes[r, -1], result.uncertainty[i])
    if suptitle:
        fig.suptitle(suptitle)
    if not colorbar:
        fig.tight_layout()
        return fig
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    fig.tight_layout(rect=(0, 0, 0.88, 1))
    cax = fig.add_axes((0.9, 0.25, 0.015, 0.5))
    fig.colorbar(ScalarMappable(Normalize(0, 1), cmap="inferno"), cax=cax, label="map value (min-max, 0 to 1)")
    return fig


@checked
def metric_boxplots(groups: dict, ylabel: str, title: str | None = None, ax=None):
    """Box plots of ``{group label: values (N,)}`` with the mean marked, for comparing distributions."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 3.8))
    data = [np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v, dtype=float) for v in groups.values()]
    ax.boxplot(data, showmeans=True, widths=0.55)
    ax.set_xticks(range(1, len(groups) + 1), [f"{k}\n(n={len(d)})" for k, d in zip(groups, data)])
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.figure.tight_layout()
    return ax.figure
