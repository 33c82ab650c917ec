"""Live-teaching widget of lesson 08: the blurring test, step by step.

``.widget`` is the box to display and ``draw(...)`` draws one state and returns the figure.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from ..._core.images import gaussian_blur
from ...plotting import overlay_heatmap, show_image
from ...widgets import control_panel, show_figure
from .evaluation import _ranking
from .methods import METHOD_NAMES

__all__ = ["BlurringExplorer"]


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
