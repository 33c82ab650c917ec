"""Figures for the lessons, readable at slide size: image grids, probability bars, heatmaps, curves.

Every function returns the matplotlib ``Figure`` (or draws on a given ``ax``) and never calls
``plt.show()``, so lessons decide when to display.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

#: rcParams for slide-size figures (applied by :func:`use_course_style`).
COURSE_STYLE = {
    "figure.dpi": 100,
    "font.size": 12,
    "axes.titlesize": 13,
    "axes.labelsize": 13,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "legend.fontsize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.interpolation": "nearest",
}


def use_course_style() -> None:
    """Apply :data:`COURSE_STYLE` (bigger fonts, no top/right spines, nearest-pixel images)."""
    plt.rcParams.update(COURSE_STYLE)


def _to_hwc(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) tensor in [0, 1] -> (H, W, 3) or (H, W) array for imshow."""
    image = image.detach().float().cpu().clamp(0, 1)
    if image.dim() == 3 and image.shape[0] == 1:
        image = image[0]
    return image.permute(1, 2, 0).numpy() if image.dim() == 3 else image.numpy()


def show_image(ax, image: torch.Tensor, title: str | None = None, mask: torch.Tensor | None = None,
               mask_color: str = "cyan") -> None:
    """Draw one image (C, H, W) on ``ax``, optionally outlining a boolean mask (H, W)."""
    ax.imshow(_to_hwc(image), cmap="gray", vmin=0, vmax=1)
    if mask is not None and mask.any():
        ax.contour(mask.detach().cpu().float().numpy(), levels=[0.5], colors=mask_color, linewidths=1.5)
    if title:
        ax.set_title(title, fontsize=11)
    ax.set_xticks([])
    ax.set_yticks([])


def _grid(n: int, ncols: int, size: float = 1.9, extra_height: float = 0.4):
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + extra_height) * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes.flat


def show_images(images: torch.Tensor, labels=None, class_names=None, probs: torch.Tensor | None = None,
                masks: torch.Tensor | None = None, titles=None, ncols: int = 8, mask_color: str = "cyan",
                suptitle: str | None = None):
    """A labelled grid of images (N, C, H, W).

    Titles are, in order of preference: ``titles``; the predicted class with its probability
    (from ``probs`` (N, K)), marked with a check or a cross when ``labels`` are given; the class
    name of ``labels``. ``masks`` (N, H, W) are outlined on top of the images.
    """
    n = images.shape[0]
    fig, axes = _grid(n, ncols)
    for i, ax in zip(range(n), axes):
        title = None
        if titles is not None:
            title = titles[i]
        elif probs is not None:
            p, k = probs[i].max(0)
            name = class_names[k] if class_names is not None else str(int(k))
            title = f"{name}\n{p:.0%}"
            if labels is not None and int(labels[i]) >= 0:
                title += " ✓" if int(k) == int(labels[i]) else " ✗"
        elif labels is not None:
            label = int(labels[i])
            title = class_names[label] if class_names is not None and 0 <= label < len(class_names) else str(label)
        show_image(ax, images[i], title, None if masks is None else masks[i], mask_color)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def probability_bars(ax, probs: torch.Tensor, class_names, true_label: int | None = None, top: int | None = None):
    """Horizontal bars of one probability vector (K,), the predicted class in orange, the true in green."""
    probs = probs.detach().cpu().float()
    order = probs.argsort(descending=True)[: top or len(probs)].flip(0)
    colours = []
    for k in order.tolist():
        colours.append("tab:green" if k == true_label else "tab:orange" if k == int(probs.argmax()) else "tab:blue")
    ax.barh([class_names[k] for k in order.tolist()], probs[order].numpy(), color=colours)
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")


def show_predictions(images: torch.Tensor, probs: torch.Tensor, class_names, labels=None, top: int = 4,
                     ncols: int = 4):
    """Each image (N, C, H, W) above the bars of its ``top`` class probabilities (N, K)."""
    n = images.shape[0]
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(2 * nrows, ncols, figsize=(3.2 * ncols, 4.6 * nrows), squeeze=False,
                             gridspec_kw={"height_ratios": [1.2, 1] * nrows})
    for i in range(n, nrows * ncols):
        r, c = divmod(i, ncols)
        axes[2 * r, c].axis("off")
        axes[2 * r + 1, c].axis("off")
    for i in range(n):
        r, c = divmod(i, ncols)
        label = None if labels is None else int(labels[i])
        name = class_names[label] if label is not None and 0 <= label < len(class_names) else "unknown"
        show_image(axes[2 * r, c], images[i], f"true: {name}" if labels is not None else None)
        probability_bars(axes[2 * r + 1, c], probs[i], class_names, label, top)
    fig.tight_layout()
    return fig


def show_heatmaps(images: torch.Tensor, maps: torch.Tensor, titles=None, ncols: int = 8, alpha: float = 0.55,
                  signed: bool | None = None, suptitle: str | None = None):
    """Heatmaps (N, H, W) over their images (N, C, H, W), each scaled to its own range.

    Signed maps (any negative value, or ``signed=True``) use a diverging colour map centred
    at zero; unsigned maps use ``inferno``.
    """
    n = images.shape[0]
    fig, axes = _grid(n, ncols)
    for i, ax in zip(range(n), axes):
        show_image(ax, images[i], None if titles is None else titles[i])
        overlay_heatmap(ax, maps[i], alpha=alpha, signed=signed)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def overlay_heatmap(ax, heatmap: torch.Tensor, alpha: float = 0.55, signed: bool | None = None):
    """Draw one heatmap (H, W) semi-transparently on ``ax`` (over an image already drawn there)."""
    h = heatmap.detach().float().cpu().numpy()
    if signed is None:
        signed = bool((h < 0).any())
    if signed:
        bound = float(np.abs(h).max()) or 1.0
        return ax.imshow(h, cmap="coolwarm", vmin=-bound, vmax=bound, alpha=alpha)
    return ax.imshow(h, cmap="inferno", vmin=float(h.min()), vmax=float(h.max()) or 1.0, alpha=alpha)


def plot_curves(x, curves: dict, xlabel: str, ylabel: str, title: str | None = None, ax=None, marker: str = "o"):
    """Line plot of ``{label: y}`` against ``x`` with labelled axes and a legend."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4.2))
    for label, y in curves.items():
        y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
        ax.plot(x, y, marker=marker, label=str(label))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend(frameon=False, loc="best")
    ax.figure.tight_layout()
    return ax.figure


def severity_strip(image: torch.Tensor, corrupted: dict, title: str | None = None):
    """One clean image (C, H, W) followed, per row, by its corrupted versions.

    ``corrupted`` maps a corruption name to a tensor (S, C, H, W) of severities 1..S.
    """
    rows = list(corrupted.items())
    ncols = 1 + max(v.shape[0] for _, v in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.6 * ncols, 1.75 * len(rows)), squeeze=False)
    for r, (name, images) in enumerate(rows):
        show_image(axes[r, 0], image, "clean" if r == 0 else None)
        axes[r, 0].set_ylabel(name.replace("_", " "), rotation=0, ha="right", va="center", fontsize=11)
        for s in range(images.shape[0]):
            show_image(axes[r, s + 1], images[s], f"severity {s + 1}" if r == 0 else None)
        for s in range(images.shape[0] + 1, ncols):
            axes[r, s].axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_image_rows(rows: dict, ncols: int = 8, masks: dict | None = None, suptitle: str | None = None):
    """One labelled row per entry of ``rows`` ({row name: images (N, C, H, W)}), ``ncols`` images each."""
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.6 * ncols + 1.4, 1.65 * len(rows)), squeeze=False)
    for r, (name, images) in enumerate(rows.items()):
        for c in range(ncols):
            if c < images.shape[0]:
                mask = None if masks is None or name not in masks else masks[name][c]
                show_image(axes[r, c], images[c], mask=mask)
            else:
                axes[r, c].axis("off")
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=12)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
