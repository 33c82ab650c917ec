"""Figures of lesson 08 (uncertainty attribution); each returns the matplotlib ``Figure`` and never calls
``plt.show()``."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from ..._core.arguments import checked
from ...plotting import overlay_heatmap, show_image
from .methods import METHOD_NAMES

__all__ = ["ua_maps_grid", "blurring_curves"]


@checked
def ua_maps_grid(images: torch.Tensor, maps: dict, masks: torch.Tensor | None = None, titles=None,
                 suptitle: str | None = None):
    """Rows = images, columns = the image and one attribution map per method ({name: (N, H, W)}),
    each map on its own colour scale; ``masks`` (N, H, W) outlines the anomaly in cyan."""
    n = images.shape[0]
    names = list(maps)
    fig, axes = plt.subplots(n, len(names) + 1, figsize=(1.75 * (len(names) + 1), 1.9 * n + 0.4), squeeze=False)
    for r in range(n):
        mask = None if masks is None else masks[r]
        show_image(axes[r, 0], images[r], None if titles is None else titles[r], mask=mask)
        for c, name in enumerate(names):
            show_image(axes[r, c + 1], images[r], METHOD_NAMES.get(name, name) if r == 0 else None, mask=mask)
            overlay_heatmap(axes[r, c + 1], maps[name][r].clamp_min(0), alpha=0.65)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


@checked
def blurring_curves(results: dict, ax=None, title: str | None = None):
    """Mean remaining uncertainty U_k / U_0 against the number of blurred pixels k, one line per method
    (``{name: BlurringResult}``); a curve that falls faster (smaller area, AUC-URR) is better."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8.6, 4.4))
    colours = plt.get_cmap("tab10").colors
    for i, (name, r) in enumerate(results.items()):
        ax.plot(r.pixels.numpy(), r.ratios.mean(0).numpy(), marker="." if i < 10 else "x",
                linestyle="-" if i < 10 else "--", color=colours[i % 10], label=METHOD_NAMES.get(name, name))
    ax.axhline(1.0, color="gray", linestyle=":", linewidth=1)
    ax.set_xlabel("blurred pixels (most attributed first)")
    ax.set_ylabel("remaining uncertainty U_k / U_0")
    ax.set_title(title or "Blurring test: lower curves are better")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=10, bbox_to_anchor=(1.02, 1), loc="upper left")
    ax.figure.tight_layout()
    return ax.figure

