"""Figures for the explanation lessons (02 and 03), readable at slide size.

Every function returns a matplotlib ``Figure`` and never calls ``plt.show()``. Maps are scaled per
image for display only (:func:`normalize_maps`); signed maps use a diverging colour map centred at 0.
"""
from __future__ import annotations

import math
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import torch

from .._core.arguments import checked
from .. import plotting
from .maps import normalize_maps

__all__ = ["show_filters", "show_activations", "show_patches", "show_neighbors", "scatter_embedding",
           "show_method_grid", "show_paradigms", "bar_table"]


def _grey(image: torch.Tensor) -> torch.Tensor:
    """A colour image (3, H, W) as its luminance (1, H, W), so that map colours are not confused with it."""
    if image.shape[0] == 3:
        return (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2])[None]
    return image


def _map_on(ax, image, heatmap, title=None, alpha=None, signed=None):
    """A map over the grey version of its image (signed maps more opaque: their zero is a light colour)."""
    if signed is None:
        signed = bool((heatmap < 0).any())
    plotting.show_image(ax, _grey(image.detach().cpu()), title)
    plotting.overlay_heatmap(ax, heatmap, alpha=alpha or (0.8 if signed else 0.65), signed=signed)


@checked
def show_filters(filters: torch.Tensor, ncols: int = 8, title: str = "first-layer filters"):
    """Convolution filters (F, C, k, k) as small images, each scaled to its own range (RGB when C = 3)."""
    f = filters.detach().float().cpu()
    lo = f.flatten(1).amin(1).view(-1, 1, 1, 1)
    hi = f.flatten(1).amax(1).view(-1, 1, 1, 1)
    scaled = (f - lo) / (hi - lo).clamp_min(1e-12)
    n = scaled.shape[0]
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.1 * ncols, 1.1 * nrows + 0.5), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < n:
            plotting.show_image(ax, scaled[i])
        else:
            ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@checked
def show_activations(image: torch.Tensor, activations: torch.Tensor, n: int = 16, ncols: int = 8,
                     title: str | None = None):
    """One image (C, H, W) followed by the first ``n`` channels of its activations (K, h, w)."""
    acts = activations.detach().float().cpu()[:n]
    total = acts.shape[0] + 1
    ncols = min(ncols, total)
    nrows = math.ceil(total / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.5 * ncols, 1.6 * nrows + 0.4), squeeze=False)
    plotting.show_image(axes.flat[0], image, "input")
    for i, ax in enumerate(list(axes.flat)[1:]):
        if i < acts.shape[0]:
            ax.imshow(acts[i].numpy(), cmap="viridis")
            ax.set_title(f"channel {i}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


@checked
def show_patches(result: dict, title: str | None = None):
    """Rows = channels, columns = their maximally activating patches (from ``max_activating_patches``)."""
    patches, values, channels = result["patches"], result["values"], result["channels"]
    nrows, ncols = patches.shape[:2]
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.2 * ncols + 1.2, 1.25 * nrows + 0.5), squeeze=False)
    for r in range(nrows):
        for c in range(ncols):
            plotting.show_image(axes[r, c], patches[r, c])
            axes[r, c].set_title(f"{float(values[r, c]):.1f}", fontsize=8)
        axes[r, 0].set_ylabel(f"ch {int(channels[r])}", rotation=0, ha="right", va="center", fontsize=10)
    fig.suptitle(title or f"maximally activating {result['size']}x{result['size']} patches (activation above each)")
    fig.tight_layout()
    return fig


@checked
def show_neighbors(queries: torch.Tensor, gallery: torch.Tensor, indices: torch.Tensor, class_names=None,
                    query_labels=None, gallery_labels=None, distances=None):
    """Each query image (row) followed by its nearest gallery images in embedding space."""
    n, k = indices.shape
    fig, axes = plt.subplots(n, k + 1, figsize=(1.5 * (k + 1), 1.75 * n), squeeze=False)
    name = (lambda lab: class_names[int(lab)]) if class_names is not None else (lambda lab: str(int(lab)))
    for r in range(n):
        plotting.show_image(axes[r, 0], queries[r], "query" + (f"\n{name(query_labels[r])}"
                                                               if query_labels is not None else ""))
        for c in range(k):
            j = int(indices[r, c])
            label = name(gallery_labels[j]) if gallery_labels is not None else ""
            dist = f" d={float(distances[r, c]):.2f}" if distances is not None else ""
            plotting.show_image(axes[r, c + 1], gallery[j], f"{label}{dist}")
    fig.tight_layout()
    return fig


@checked
def scatter_embedding(points: torch.Tensor, labels: torch.Tensor, class_names, title: str, ax=None):
    """2-D embedding coordinates (N, 2) coloured by class, with a legend."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.2, 5.0))
    pts = points.detach().cpu().numpy()
    labels = labels.cpu().numpy()
    cmap = plt.get_cmap("tab10")
    for k, name in enumerate(class_names):
        sel = labels == k
        if sel.any():
            ax.scatter(pts[sel, 0], pts[sel, 1], s=9, color=cmap(k % 10), label=name.replace("_", " "), alpha=0.8)
    ax.set_title(title)
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    ax.legend(frameon=False, fontsize=8, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.figure.tight_layout()
    return ax.figure


@checked
def show_method_grid(images: torch.Tensor, maps: dict, row_titles=None, signed: dict | None = None,
                     suptitle: str | None = None):
    """Rows = images, columns = the input and one map per method ({name: (N, H, W)})."""
    n = images.shape[0]
    names = list(maps)
    fig, axes = plt.subplots(n, len(names) + 1, figsize=(1.75 * (len(names) + 1), 1.85 * n + 0.3), squeeze=False)
    for r in range(n):
        plotting.show_image(axes[r, 0], images[r], None if row_titles is None else row_titles[r])
        for c, name in enumerate(names):
            m = maps[name][r]
            is_signed = bool((m < 0).any()) if signed is None else signed.get(name, False)
            shown = normalize_maps(m[None], "absmax" if is_signed else "minmax")[0]
            title = textwrap.fill(name.replace("_", " "), 18) if r == 0 else None
            _map_on(axes[r, c + 1], images[r], shown, title, signed=is_signed)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


@checked
def show_paradigms(image: torch.Tensor, maps: dict, class_names, p: int, q: int, probs: torch.Tensor,
                   contrast_image: torch.Tensor | None = None, mask: torch.Tensor | None = None):
    """One image, a representative image of Q, and the four paradigm maps (keys of ``PARADIGMS``)."""
    from .cam import PARADIGMS

    cols = 2 + len(PARADIGMS) if contrast_image is not None else 1 + len(PARADIGMS)
    fig, axes = plt.subplots(1, cols, figsize=(2.45 * cols, 3.0))
    pn, qn = class_names[p].replace("_", " "), class_names[q].replace("_", " ")
    plotting.show_image(axes[0], image, f"input: {pn}\np = {float(probs[p]):.3f}", mask)
    c = 1
    if contrast_image is not None:
        plotting.show_image(axes[1], contrast_image, f"representative\n{qn}")
        c = 2
    titles = {PARADIGMS[0]: f"Why {pn}?", PARADIGMS[1]: f"What if not {pn}?",
              PARADIGMS[2]: f"Why {pn},\nrather than {qn}?", PARADIGMS[3]: f"Why not {pn}\nwith 100% confidence?"}
    for key in PARADIGMS:
        m = maps[key]
        _map_on(axes[c], image, normalize_maps(m[None])[0], titles[key], signed=False)
        axes[c].set_xlabel(f"max {float(m.max()):.2g}", fontsize=9)
        c += 1
    fig.tight_layout()
    return fig


@checked
def bar_table(table: dict, ylabel: str, title: str, chance: float | None = None):
    """Grouped bars of ``{group: {series: value}}`` (e.g. {pair: {method: score}}) with a chance line."""
    groups = list(table)
    series = list(next(iter(table.values())))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(1.9 * len(groups) + 2.5, 3.8))
    xs = np.arange(len(groups))
    for i, s in enumerate(series):
        ax.bar(xs + (i - (len(series) - 1) / 2) * width, [table[g][s] for g in groups], width, label=s)
    if chance is not None:
        ax.axhline(chance, color="k", ls="--", lw=1, label="chance (mask area)")
    ax.set_xticks(xs)
    ax.set_xticklabels([g.replace("_", " ").replace(" / ", "\nvs ") for g in groups], fontsize=10)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=9, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig
