"""Widgets for live teaching of lessons 02 and 03 (ipywidgets 7 and 8).

Like :class:`inferml_course.widgets.CorruptionExplorer`: ``.widget`` is the box to display and
``draw(...)`` draws one state, so it can be called (and tested) without a browser.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from .. import plotting
from ..datasets import ImageDataset
from ..widgets import control_panel, show_figure
from . import cam
from .indirect import representatives
from .maps import normalize_maps
from .plots import _map_on, show_paradigms
from .registry import EXPLAINERS, INTERACTIVE_OPTIONS, METHODS, SIGNED, explain

__all__ = ["MethodExplorer", "ContrastExplorer", "INTERACTIVE_OPTIONS"]


def _device(model):
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _label(method: str) -> str:
    return EXPLAINERS[method].label if method in EXPLAINERS else method.replace("_", " ")


class MethodExplorer:
    """Pick an image, an explanation method and the class to explain; see the map.

    Usage::

        explorer = MethodExplorer(model, test_set)
        display(explorer.widget)
    """

    def __init__(self, model: torch.nn.Module, dataset: ImageDataset, methods=METHODS, options: dict | None = None):
        """``methods``: names of :data:`~.registry.METHODS`; ``options``: {method: options}, over
        :data:`~.registry.INTERACTIVE_OPTIONS`."""
        import ipywidgets as w

        self.model, self.dataset = model, dataset
        self.options = {**INTERACTIVE_OPTIONS, **(options or {})}
        methods = list(methods)
        self.method = w.Dropdown(options=[(_label(m), m) for m in methods], value=methods[0], description="method")
        self.target = w.Dropdown(options=[("predicted", -1)] + [(c, i) for i, c in enumerate(dataset.classes)],
                                 value=-1, description="explain")
        self.index = w.IntSlider(value=0, min=0, max=len(dataset) - 1, description="image", continuous_update=False)
        self.output, self.widget = control_panel([[self.index, self.method, self.target]], self._refresh)
        self._refresh()

    def explain(self, index: int, method: str, target: int = -1) -> dict:
        """The map (H, W), the class explained and the probabilities for one setting."""
        x = self.dataset.images[index:index + 1].to(_device(self.model))
        with torch.no_grad():
            probs = torch.softmax(self.model(x), 1)[0].cpu()
        t = int(probs.argmax()) if target < 0 else int(target)
        heat = explain(method, self.model, x, t, **self.options.get(method, {}))[0].cpu()
        return {"map": heat, "target": t, "probs": probs}

    def draw(self, index: int, method: str, target: int = -1):
        """Image with its true class, the map over the image, and the raw map with a colour bar."""
        result = self.explain(index, method, target)
        image, label = self.dataset.images[index], int(self.dataset.labels[index])
        name = self.dataset.class_name(result["target"])
        fig, axes = plt.subplots(1, 3, figsize=(9.5, 3.3))
        plotting.show_image(axes[0], image, f"true: {self.dataset.class_name(label)}\n"
                                            f"p({name}) = {float(result['probs'][result['target']]):.2f}")
        signed = method in SIGNED
        _map_on(axes[1], image, normalize_maps(result["map"][None], "absmax" if signed else "minmax")[0],
                f"{_label(method)}\nexplaining '{name}'", signed=signed)
        heat = result["map"].numpy()
        bound = float(abs(heat).max()) or 1.0
        shown = axes[2].imshow(heat, cmap="coolwarm" if signed else "inferno",
                               vmin=-bound if signed else None, vmax=bound if signed else None)
        axes[2].set_title("raw map")
        axes[2].set_xticks([])
        axes[2].set_yticks([])
        fig.colorbar(shown, ax=axes[2], fraction=0.046)
        fig.tight_layout()
        return fig

    def _refresh(self):
        show_figure(self.output, self.draw, self.index.value, self.method.value, self.target.value)


class ContrastExplorer:
    """Pick an image, the class P to explain and the contrast class Q; see the four paradigms.

    A representative image of Q (the image of class Q in ``gallery``, default ``dataset``, that the
    model is surest about) is shown beside the maps, as in the paper's figures.
    """

    def __init__(self, model: torch.nn.Module, dataset: ImageDataset, mask: str | None = "part",
                 gallery: ImageDataset | None = None):
        import ipywidgets as w

        self.model, self.dataset = model, dataset
        self.gallery = dataset if gallery is None else gallery  # where representative images come from
        self.mask = mask if mask in dataset.masks else None
        self.representative = representatives(model, self.gallery.images.to(_device(model)), self.gallery.labels,
                                              range(len(dataset.classes)), batch_size=512, strict=False)
        classes = [(c, i) for i, c in enumerate(dataset.classes)]
        self.p = w.Dropdown(options=[("predicted", -1)] + classes, value=-1, description="P")
        self.q = w.Dropdown(options=[("runner-up", -1)] + classes, value=-1, description="Q")
        self.index = w.IntSlider(value=0, min=0, max=len(dataset) - 1, description="image", continuous_update=False)
        self.output, self.widget = control_panel([[self.index, self.p, self.q]], self._refresh)
        self._refresh()

    def maps(self, index: int, p: int = -1, q: int = -1) -> dict:
        """The paradigm maps of one image (see :func:`explanatory_paradigms`)."""
        x = self.dataset.images[index:index + 1].to(_device(self.model))
        out = cam.explanatory_paradigms(self.model, x, None if p < 0 else p, None if q < 0 else q)
        return {k: v[0].cpu() for k, v in out.items()}

    def draw(self, index: int, p: int = -1, q: int = -1):
        out = self.maps(index, p, q)
        pp, qq = int(out["P"]), int(out["Q"])
        mask = self.dataset.masks[self.mask][index] if self.mask else None
        rep = int(self.representative[qq])
        return show_paradigms(self.dataset.images[index], out, self.dataset.classes, pp, qq, out["probs"],
                              self.gallery.images[rep] if rep >= 0 else None, mask)

    def _refresh(self):
        show_figure(self.output, self.draw, self.index.value, self.p.value, self.q.value)
