"""Figures and live-teaching widgets for lessons 07 (VOICE) and 08 (uncertainty attribution).

Figures return the matplotlib ``Figure`` and never call ``plt.show()``. Widgets follow
:mod:`inferml_course.widgets`: ``.widget`` is the box to display and ``draw(...)`` draws one state
and returns the figure, so it can be called (and tested) without a browser.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..plotting import overlay_heatmap, show_image
from ..widgets import control_panel, show_figure
from .attribution import METHOD_NAMES
from ..explain.gradients import gaussian_blur
from .attribution_eval import _ranking
from .explanations import VoiceResult, iou, snr, voice

__all__ = ["voice_panel", "metric_boxplots", "ua_maps_grid", "blurring_curves", "VoiceExplorer",
           "BlurringExplorer"]


def _name(classes, k):
    k = int(k)
    return classes[k].replace("_", " ") if classes is not None and 0 <= k < len(classes) else str(k)


def voice_panel(images: torch.Tensor, result: VoiceResult, indices, class_names=None, labels=None,
                n_contrast: int = 3, threshold: float = 0.1, suptitle: str | None = None):
    """One row per image: the image, "Why P?", the ``n_contrast`` most probable "Why P, rather than Q?"
    maps, and the VOICE uncertainty map (with its IoU and SNR in the title)."""
    indices = [int(i) for i in indices]
    ncols = 3 + n_contrast
    fig, axes = plt.subplots(len(indices), ncols, figsize=(1.9 * ncols, 2.5 * len(indices)), squeeze=False)
    ious = iou(result.explanation, result.uncertainty, threshold)
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
        show_image(axes[r, -1], images[i], f"VOICE\nIoU {ious[i]:.2f}, SNR {snrs[i]:.2f}")
        overlay_heatmap(axes[r, -1], result.uncertainty[i])
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


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


class VoiceExplorer:
    """Pick an image, the explainer and the IoU threshold: see "Why P?", the VOICE map and their overlap.

    ``images`` (N, C, H, W) and ``labels`` (N,) of the images to browse.
    """

    def __init__(self, model, images: torch.Tensor, labels: torch.Tensor, class_names, samples: int = 8):
        import ipywidgets as w

        self.model, self.images, self.labels, self.classes, self.samples = model, images, labels, class_names, samples
        self.index = w.IntSlider(value=0, min=0, max=len(images) - 1, description="image", continuous_update=False)
        self.explainer = w.Dropdown(options=["contrast_cam", "smoothgrad"], value="contrast_cam",
                                    description="explainer")
        self.threshold = w.FloatSlider(value=0.1, min=0.0, max=0.9, step=0.05, description="threshold",
                                       continuous_update=False)
        self.output, self.widget = control_panel([[self.index, self.explainer, self.threshold]], self._refresh)
        self._refresh()

    def draw(self, index: int, explainer: str = "contrast_cam", threshold: float = 0.1):
        """The figure for one setting: image, explanation, VOICE map and the thresholded overlap."""
        device = next(self.model.parameters()).device
        x = self.images[index:index + 1].to(device)
        r = voice(self.model, x, explainer=explainer, samples=self.samples)
        e, u = r.explanation[0].cpu(), r.uncertainty[0].cpu()
        p, q = int(r.prediction[0]), float(r.probs[0].max())
        fig, axes = plt.subplots(1, 4, figsize=(10.5, 3.1))
        show_image(axes[0], self.images[index], f"true {_name(self.classes, self.labels[index])}\n"
                                                f"pred {_name(self.classes, p)} ({q:.0%})")
        show_image(axes[1], self.images[index], f"Why {_name(self.classes, p)}?")
        overlay_heatmap(axes[1], e)
        show_image(axes[2], self.images[index], f"VOICE (SNR {float(snr(u[None])):.2f})")
        overlay_heatmap(axes[2], u)
        overlap = torch.stack([(e > threshold).float(), (u > threshold).float(), torch.zeros_like(e)], 0)
        show_image(axes[3], overlap, f"red E, green U, yellow both\nIoU {float(iou(e[None], u[None], threshold)):.2f}")
        fig.tight_layout()
        return fig

    def _refresh(self):
        show_figure(self.output, self.draw, self.index.value, self.explainer.value, self.threshold.value)


class BlurringExplorer:
    """Pick a method, an image and a number of pixels: blur the most-attributed pixels and watch U fall.

    ``uncertainty`` is the :class:`~inferml_course.uncertainty.attribution.UncertaintyModel` that was
    attributed, ``maps`` ``{method: (N, H, W)}`` precomputed on ``images``; ``masks`` outlines anomalies.
    """

    def __init__(self, uncertainty, images: torch.Tensor, maps: dict, masks: torch.Tensor | None = None,
                 max_pixels: int = 102):
        import ipywidgets as w

        self.uncertainty, self.images, self.maps, self.masks = uncertainty, images, maps, masks
        self.method = w.Dropdown(options=[(METHOD_NAMES.get(k, k), k) for k in maps], description="method")
        self.index = w.IntSlider(value=0, min=0, max=len(images) - 1, description="image", continuous_update=False)
        self.pixels = w.IntSlider(value=20, min=0, max=max_pixels, description="pixels", continuous_update=False)
        self.output, self.widget = control_panel([[self.method, self.index, self.pixels]], self._refresh)
        self._refresh()

    @torch.no_grad()
    def draw(self, method: str, index: int, pixels: int):
        """The figure for one setting: image, map, the blurred pixels, and U before and after."""
        x = self.images[index:index + 1]
        m = self.maps[method][index:index + 1]
        chosen = torch.zeros(m[0].numel(), dtype=torch.bool)
        chosen[_ranking(m)[0, :pixels]] = True
        blurred = gaussian_blur(x, torch.tensor([2.0], dtype=x.dtype))
        out = torch.where(chosen.view(1, 1, *x.shape[-2:]).to(x.device), blurred, x)
        u = self.uncertainty(torch.cat([x, out])).reshape(-1)
        mask = None if self.masks is None else self.masks[index]
        fig, axes = plt.subplots(1, 3, figsize=(8.4, 3.2))
        show_image(axes[0], x[0], f"U = {float(u[0]):.2f} nats", mask=mask)
        show_image(axes[1], x[0], METHOD_NAMES.get(method, method), mask=mask)
        overlay_heatmap(axes[1], m[0].clamp_min(0), alpha=0.65)
        show_image(axes[2], out[0], f"{pixels} pixels blurred:\nU = {float(u[1]):.2f} nats", mask=mask)
        fig.tight_layout()
        return fig

    def _refresh(self):
        show_figure(self.output, self.draw, self.method.value, self.index.value, self.pixels.value)
