"""Live-teaching widget of lesson 07: VOICE maps of one image under noise and explainer choices.

``.widget`` is the box to display and ``draw(...)`` draws one state and returns the figure, so it can be
called (and tested) without a browser.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from ...plotting import overlay_heatmap, show_image
from ...widgets import control_panel, show_figure
from .maps import explanation_overlap, snr, voice
from .plots import _name

__all__ = ["VoiceExplorer"]


class VoiceExplorer:
    """Pick an image, the explainer and the threshold: see "Why P?", the VOICE map and their overlap
    (:func:`~.maps.explanation_overlap`, the paper's IoU).

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
        value = float(explanation_overlap(e[None], u[None], threshold))
        show_image(axes[3], overlap, f"red E, green U, yellow both\noverlap (IoU) {value:.2f}")
        fig.tight_layout()
        return fig

    def _refresh(self):
        show_figure(self.output, self.draw, self.index.value, self.explainer.value, self.threshold.value)
