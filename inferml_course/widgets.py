"""Interactive widgets for live teaching (ipywidgets 7 and 8, JupyterLab and Colab).

Each widget is a small class: ``.widget`` is the ipywidgets box to display, and the method
that draws one state is public, so it can be called (and tested) without a browser.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from IPython.display import display

from . import plotting
from .datasets import ImageDataset
from .datasets.corruptions import CORRUPTIONS, corrupt


def control_panel(rows, on_change, observed=None):
    """Rows of controls above an ``Output``: returns (output, box). ``on_change()`` runs whenever the
    value of a control in ``observed`` (default: every control in ``rows``) changes."""
    import ipywidgets as w

    output = w.Output()
    for control in observed if observed is not None else [c for row in rows for c in row]:
        control.observe(lambda _change: on_change(), names="value")
    return output, w.VBox([w.HBox(list(row)) for row in rows] + [output])


def show_figure(output, draw, *args) -> None:
    """Replace what an ipywidgets ``Output`` shows with the figure ``draw(*args)`` returns, then close
    the figure (so the notebook does not show it twice, whatever the matplotlib backend)."""
    output.clear_output(wait=True)
    with output:
        fig = draw(*args)
        display(fig)
        plt.close(fig)


class CorruptedImageExplorer:
    """Base of the explorers with an image slider, a corruption dropdown and a severity slider.

    A subclass sets its own attributes, calls ``super().__init__(dataset, corruptions, seed)`` and
    implements ``draw(corruption, severity, index)`` returning a matplotlib figure.
    """

    def __init__(self, dataset: ImageDataset, corruptions=CORRUPTIONS, seed: int = 0):
        import ipywidgets as w

        self.dataset, self.seed = dataset, seed
        self.corruption = w.Dropdown(options=["none", *corruptions], value="none", description="corruption")
        self.severity = w.IntSlider(value=3, min=1, max=5, description="severity", continuous_update=False)
        self.index = w.IntSlider(value=0, min=0, max=len(dataset) - 1, description="image", continuous_update=False)
        self.output, self.widget = control_panel([[self.corruption, self.severity, self.index]], self._refresh)
        self._refresh()

    def image(self, corruption: str, severity: int, index: int) -> torch.Tensor:
        """Image ``index`` of the dataset as a batch of one (1, C, H, W), corrupted unless ``"none"``."""
        x = self.dataset.images[index:index + 1]
        return x if corruption == "none" else corrupt(x, corruption, severity, seed=self.seed)

    @staticmethod
    def setting(corruption: str, severity: int) -> str:
        """A short title for one setting: "clean" or "fog, severity 3"."""
        return "clean" if corruption == "none" else f"{corruption.replace('_', ' ')}, severity {severity}"

    def draw(self, corruption: str, severity: int, index: int):
        raise NotImplementedError

    def _refresh(self):
        show_figure(self.output, self.draw, self.corruption.value, self.severity.value, self.index.value)


class CorruptionExplorer(CorruptedImageExplorer):
    """Pick an image, a corruption and a severity; see the image and the model's probabilities.

    Usage in a lesson::

        explorer = CorruptionExplorer(model, test_set)
        display(explorer.widget)
    """

    def __init__(self, model: torch.nn.Module, dataset: ImageDataset, corruptions=CORRUPTIONS, seed: int = 0):
        self.model = model
        super().__init__(dataset, corruptions, seed)

    @torch.no_grad()
    def predict(self, corruption: str, severity: int, index: int) -> dict:
        """Image (C, H, W), probabilities (K,) and the predicted class for one setting."""
        x = self.image(corruption, severity, index)
        device = next(self.model.parameters()).device
        probs = torch.softmax(self.model(x.to(device)), dim=1)[0].cpu()
        k = int(probs.argmax())
        return {"image": x[0], "probs": probs, "predicted": self.dataset.classes[k], "confidence": float(probs[k])}

    def draw(self, corruption: str, severity: int, index: int):
        """The figure for one setting: the image and its probability bars."""
        result = self.predict(corruption, severity, index)
        label = int(self.dataset.labels[index])
        fig, (ax_img, ax_bar) = plt.subplots(1, 2, figsize=(8.5, 3.4), gridspec_kw={"width_ratios": [1, 1.6]})
        plotting.show_image(ax_img, result["image"], self.setting(corruption, severity))
        plotting.probability_bars(ax_bar, result["probs"], self.dataset.classes, label)
        ax_bar.set_title(f"predicted {result['predicted']} ({result['confidence']:.0%}), "
                         f"true {self.dataset.class_name(label)}")
        fig.tight_layout()
        return fig
