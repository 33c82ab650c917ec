"""Live-teaching widget of lesson 01: the Bernoulli coin's Fisher information (ipywidgets 7 and 8)."""
from __future__ import annotations

from ..widgets import control_panel, show_figure
from .plots import plot_bernoulli_fisher

__all__ = ["BernoulliFisherExplorer"]


class BernoulliFisherExplorer:
    """Slide the coin's bias and the number of Monte-Carlo draws; see the curvature and the estimates.

    Usage: ``explorer = BernoulliFisherExplorer(); display(explorer.widget)``.
    """

    def __init__(self, theta: float = 0.3, n: int = 2000, seed: int = 0):
        import ipywidgets as w

        self.seed = seed
        self.theta = w.FloatSlider(value=theta, min=0.02, max=0.98, step=0.02, description="bias θ",
                                   continuous_update=False)
        self.n = w.IntSlider(value=n, min=50, max=20000, step=50, description="draws", continuous_update=False)
        self.output, self.widget = control_panel([[self.theta, self.n]], self._refresh)
        self._refresh()

    def draw(self, theta: float, n: int):
        """The figure for one setting (see :func:`plot_bernoulli_fisher`)."""
        return plot_bernoulli_fisher(theta, n, self.seed)

    def _refresh(self):
        show_figure(self.output, self.draw, self.theta.value, self.n.value)
