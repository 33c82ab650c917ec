"""A widget for live teaching of lesson 10 (ipywidgets 7 and 8): play the pixel-wise games by hand.

Like :class:`inferml_course.widgets.CorruptionExplorer`: ``.widget`` is the box to display and
:meth:`GameExplorer.draw` draws one state, so it can be called (and tested) without a browser.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from .. import plotting
from .._core.directions import describe, higher_is_better
from ..widgets import control_panel, show_figure
from ._common import substrate_images
from .insertion_deletion import GameResult, auc

__all__ = ["GameExplorer"]


class GameExplorer:
    """Pick a map, an image and a step of a precomputed :class:`GameResult`: see the game image at that
    step, the map, and the curve with the current point marked.

    ``x`` (N, C, H, W) and ``maps`` (name -> (N, H, W)) are the ones the result was computed with;
    ``substrate`` must match too (it is only used to draw the frames).
    """

    def __init__(self, model, x: torch.Tensor, maps: dict, result: GameResult, substrate="blur"):
        import ipywidgets as w

        self.x, self.maps, self.result = x.detach().cpu(), {k: v.detach().cpu() for k, v in maps.items()}, result
        self.substrate = substrate_images(model, x, substrate).detach().cpu()
        steps = result.fractions.numel() - 1
        self.method = w.Dropdown(options=list(maps), value=list(maps)[0], description="map")
        self.game = w.Dropdown(options=["deletion", "insertion"], value="deletion", description="game")
        self.index = w.IntSlider(value=0, min=0, max=x.shape[0] - 1, description="image", continuous_update=False)
        self.step = w.IntSlider(value=steps // 4, min=0, max=steps, description="step", continuous_update=False)
        self.output, self.widget = control_panel([[self.method, self.game], [self.index, self.step]], self._refresh)
        self._refresh()

    def frame(self, method: str, game: str, index: int, step: int) -> torch.Tensor:
        """The game image (C, H, W) after ``step`` steps."""
        m = self.maps[method][index]
        h, w = m.shape
        count = int(round(float(self.result.fractions[step]) * h * w))
        order = torch.argsort(m.flatten(), descending=True, stable=True)
        moved = torch.zeros(h * w, dtype=torch.bool)
        moved[order[:count]] = True
        keep = (moved if game == "insertion" else ~moved).view(1, h, w).to(self.x.dtype)
        sub = self.substrate[index]
        return sub + keep * (self.x[index] - sub)

    def draw(self, method: str, game: str, index: int, step: int):
        """Three panels: the map over the image, the game image at ``step``, the curve with that point."""
        curve = getattr(self.result, game)[method][index]
        fractions = self.result.fractions
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), gridspec_kw={"width_ratios": [1, 1, 1.6]})
        plotting.show_image(axes[0], self.x[index], method)
        plotting.overlay_heatmap(axes[0], self.maps[method][index])
        plotting.show_image(axes[1], self.frame(method, game, index, step),
                            f"{game} after {float(fractions[step]):.0%} of the pixels")
        axes[2].plot(fractions.numpy(), curve.numpy(), lw=2)
        axes[2].plot([float(fractions[step])], [float(curve[step])], "o", color="tab:red", ms=9)
        area = float(auc(curve[None], fractions)[0])
        axes[2].set_title(f"AUC = {area:.3f} ({describe(higher_is_better(f'{game}_auc'))})")
        axes[2].set_xlabel(f"fraction of pixels {'inserted' if game == 'insertion' else 'deleted'}")
        axes[2].set_ylabel(self.result.output)
        axes[2].set_ylim(-0.02, max(1.02, float(curve.max()) * 1.05))
        fig.tight_layout()
        return fig

    def _refresh(self):
        show_figure(self.output, self.draw, self.method.value, self.game.value, self.index.value, self.step.value)
