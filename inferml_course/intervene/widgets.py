"""Live-teaching widgets of lesson 09 (ipywidgets 7 and 8).

* :class:`WatermarkExplorer`: recolour, remove or move the watermark of a sign and watch the
  prediction of the shortcut model follow it (an instructor's do(W = w)).
* :class:`PromptExplorer`: place positive and negative point prompts on a sign and see the
  promptable segmenter's mask and its IoU after every click.

Each class has ``.widget`` (the box to display) and a public ``draw(...)`` that renders one state
and can be called, and tested, without a browser.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import plotting
from ..widgets import control_panel, show_figure
from .causal import set_watermark
from .plots import draw_prompts
from .._core.images import mask_iou
from .prompting import segment
from ..datasets.signs import WATERMARK_SIZE


class WatermarkExplorer:
    """Pick a sign, a watermark colour ("none" removes it) and the watermark's position.

    ``dataset``: a spurious signs dataset (its watermark sits at (1, 1)); the original mark is
    removed first, then the chosen colour is stamped at (row, col).
    """

    def __init__(self, model: torch.nn.Module, dataset, size: int | None = None):
        import ipywidgets as w

        self.model, self.dataset = model, dataset
        self.size = WATERMARK_SIZE if size is None else size
        side = dataset.images.shape[-1]
        options = ["none", *dataset.classes]
        self.index = w.IntSlider(value=0, min=0, max=len(dataset) - 1, description="image", continuous_update=False)
        self.colour = w.Dropdown(options=options, value=self._own_colour(0), description="watermark")
        self.row = w.IntSlider(value=1, min=0, max=side - self.size, description="row", continuous_update=False)
        self.col = w.IntSlider(value=1, min=0, max=side - self.size, description="column", continuous_update=False)
        self.index.observe(self._new_image, names="value")
        self.output, self.widget = control_panel([[self.index, self.colour], [self.row, self.col]], self._refresh,
                                                 observed=[self.colour, self.row, self.col])
        self._refresh()

    def _own_colour(self, index: int) -> str:
        k = self.dataset.attributes.get("watermark_class")
        return "none" if k is None else self.dataset.classes[int(k[index])]

    def image(self, index: int, colour: str, row: int, col: int) -> torch.Tensor:
        """The intervened image (3, H, W): original mark removed, ``colour`` stamped at (row, col)."""
        x = set_watermark(self.dataset.images[index:index + 1], None, size=self.size)
        if colour != "none":
            x = set_watermark(x, self.dataset.classes.index(colour), position=(row, col), size=self.size)
        return x[0]

    @torch.no_grad()
    def draw(self, index: int, colour: str, row: int = 1, col: int = 1):
        """The figure for one setting: the intervened image and the model's probabilities."""
        x = self.image(index, colour, row, col)
        device = next(self.model.parameters()).device
        probs = torch.softmax(self.model(x[None].to(device)), 1)[0].cpu()
        sign = int(self.dataset.attributes.get("sign_class", self.dataset.labels)[index])
        k = int(probs.argmax())
        fig, (a, b) = plt.subplots(1, 2, figsize=(8.5, 3.4), gridspec_kw={"width_ratios": [1, 1.6]})
        plotting.show_image(a, x, f"do(W = {colour.replace('_', ' ')}) at ({row}, {col})")
        plotting.probability_bars(b, probs, self.dataset.classes, sign)
        b.set_title(f"predicted {self.dataset.classes[k]} ({probs[k]:.0%}); sign drawn: "
                    f"{self.dataset.classes[sign]}")
        fig.tight_layout()
        return fig

    def _new_image(self, _change):
        self.colour.value = self._own_colour(self.index.value)
        self._refresh()

    def _refresh(self):
        show_figure(self.output, self.draw, self.index.value, self.colour.value, self.row.value, self.col.value)


class PromptExplorer:
    """Place point prompts on a sign: choose (row, col) and positive / negative, press "add".

    The segmenter (:func:`~inferml_course.intervene.prompting.segment`) reruns after every prompt;
    the title shows the IoU with the true sign mask, as PointPrompt's annotators saw it.
    """

    def __init__(self, dataset, beta: float = 400.0, mask_key: str = "sign"):
        import ipywidgets as w

        self.dataset, self.beta, self.mask_key = dataset, beta, mask_key
        side = dataset.images.shape[-1]
        self.points: list[tuple[int, int]] = []
        self.labels: list[bool] = []
        self.index = w.IntSlider(value=0, min=0, max=len(dataset) - 1, description="image", continuous_update=False)
        self.row = w.IntSlider(value=side // 2, min=0, max=side - 1, description="row", continuous_update=False)
        self.col = w.IntSlider(value=side // 2, min=0, max=side - 1, description="column", continuous_update=False)
        self.kind = w.ToggleButtons(options=["positive", "negative"], value="positive", description="prompt")
        self.add = w.Button(description="add prompt")
        self.undo = w.Button(description="undo")
        self.clear = w.Button(description="clear")
        self.output = w.Output()
        self.index.observe(lambda _c: self._reset(), names="value")
        for control in (self.row, self.col):
            control.observe(lambda _c: self._refresh(), names="value")
        self.add.on_click(lambda _b: self._add())
        self.undo.on_click(lambda _b: self._undo())
        self.clear.on_click(lambda _b: self._reset())
        self.widget = w.VBox([w.HBox([self.index, self.kind]), w.HBox([self.row, self.col]),
                              w.HBox([self.add, self.undo, self.clear]), self.output])
        self._refresh()

    def draw(self, index: int, points, labels, cursor=None):
        """The figure for one prompt set: image with prompts and true outline; the mask and its IoU."""
        image = self.dataset.images[index]
        truth = self.dataset.masks[self.mask_key][index]
        pred = segment(image, points, labels, beta=self.beta)
        score = float(mask_iou(pred, truth))
        fig, (a, b) = plt.subplots(1, 2, figsize=(7.5, 3.8))
        plotting.show_image(a, image, f"{len(points)} prompt{'s' if len(points) != 1 else ''}", mask=truth)
        draw_prompts(a, points, labels)
        if cursor is not None:
            a.scatter([cursor[1]], [cursor[0]], marker="o", s=90, facecolors="none", edgecolors="yellow", linewidths=2)
        overlay = np.zeros((*truth.shape, 4))
        overlay[pred.numpy()] = (1.0, 0.55, 0.0, 0.55)
        plotting.show_image(b, image, f"mask: IoU {score:.2f}", mask=truth)
        b.imshow(overlay)
        draw_prompts(b, points, labels)
        for ax in (a, b):
            ax.set_xticks([])
            ax.set_yticks([])
        fig.tight_layout()
        return fig

    def _add(self):
        self.points.append((self.row.value, self.col.value))
        self.labels.append(self.kind.value == "positive")
        self._refresh()

    def _undo(self):
        if self.points:
            self.points.pop()
            self.labels.pop()
        self._refresh()

    def _reset(self):
        self.points, self.labels = [], []
        self._refresh()

    def _refresh(self):
        show_figure(self.output, self.draw, self.index.value, self.points, self.labels,
                    (self.row.value, self.col.value))
