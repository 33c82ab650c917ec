"""Live-teaching widgets for lessons 05 and 06 (ipywidgets 7 and 8, JupyterLab and Colab).

As in :mod:`inferml_course.widgets`: ``.widget`` is the box to display, and ``draw(...)`` draws one
state and returns the figure, so it can be called (and tested) without a browser.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from ..widgets import control_panel, show_figure

from .calibration import calibration_summary, fit_temperature
from .experiments import TUTORIAL_NAMES
from .metrics import auac, misprediction_auroc
from .plots import reliability_diagram, score_histograms
from .scores import score_batch
from ..datasets.corruptions import corrupt

__all__ = ["TemperatureExplorer", "ScoreDistributionExplorer"]


class TemperatureExplorer:
    """Drag the temperature T and watch the reliability diagram, ECE and NLL change.

    ``logits`` (N, K) and ``labels`` (N,) of a held-out split. The fitted temperature (on the same
    data, for reference) is marked in the title.
    """

    def __init__(self, logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15):
        import ipywidgets as w

        self.logits, self.labels, self.n_bins = logits.detach().cpu(), labels.cpu(), n_bins
        self.best = fit_temperature(self.logits, self.labels)
        self.temperature = w.FloatLogSlider(value=1.0, base=10, min=-0.7, max=0.9, step=0.02,
                                            description="temperature", continuous_update=False)
        self.output, self.widget = control_panel([[self.temperature]], self._refresh)
        self._refresh()

    def draw(self, temperature: float):
        probs = torch.softmax(self.logits.double() / temperature, 1)
        summary = calibration_summary(probs, self.labels, self.n_bins)
        fig, ax = plt.subplots(figsize=(5.2, 4.6))
        reliability_diagram(probs, self.labels, ax=ax, n_bins=self.n_bins,
                            title=f"T = {temperature:.2f} (best T = {self.best:.2f}); NLL {summary['NLL']:.3f}")
        fig.tight_layout()
        return fig

    def _refresh(self):
        show_figure(self.output, self.draw, self.temperature.value)


class ScoreDistributionExplorer:
    """Pick a corruption, a severity and a score: histograms of the score for correct vs wrong
    predictions, with the score's AUAC and misprediction AUROC (both higher is better).

    Scores for a (corruption, severity) setting are computed once, on the first ``n`` images, and cached.
    """

    DEFAULT_SCORES = ("msp", "entropy", "margin", "nll", "max_logit", "odin", "mc_dropout", "gradnorm", "gradtrust")

    def __init__(self, model, dataset, corruptions, names=DEFAULT_SCORES, n: int = 300, seed: int = 0):
        import ipywidgets as w

        self.model, self.dataset, self.names, self.seed = model, dataset, tuple(names), seed
        self.images, self.labels = dataset.images[:n], dataset.labels[:n].cpu()
        self._cache = {}
        self.corruption = w.Dropdown(options=["none", *corruptions], value=corruptions[0], description="corruption")
        self.severity = w.IntSlider(value=3, min=1, max=5, description="severity", continuous_update=False)
        self.score = w.Dropdown(options=[(TUTORIAL_NAMES.get(s, s), s) for s in self.names], value=self.names[-1],
                                description="score")
        self.output, self.widget = control_panel([[self.corruption, self.severity, self.score]], self._refresh)
        self._refresh()

    def compute(self, corruption: str, severity: int) -> dict:
        """``{"scores": {name: uncertainty}, "correct": (n,) bool}`` for one setting (cached)."""

        key = (corruption, 0 if corruption == "none" else int(severity))
        if key not in self._cache:
            x = self.images if corruption == "none" else corrupt(self.images, corruption, int(severity), seed=self.seed)
            device = next(self.model.parameters()).device
            result = score_batch(self.model, x.to(device), self.names, seed=self.seed)
            correct = result.logits.argmax(1).cpu() == self.labels
            self._cache[key] = {"scores": {k: v.detach().cpu() for k, v in result.scores.items()},
                                "correct": correct}
        return self._cache[key]

    def draw(self, corruption: str, severity: int, score: str):
        data = self.compute(corruption, severity)
        u, correct = data["scores"][score], data["correct"]
        setting = "clean" if corruption == "none" else f"{corruption.replace('_', ' ')}, severity {severity}"
        stats = f"accuracy {correct.float().mean():.0%}, AUAC {100 * auac(u, correct):.1f} %"
        if 0 < int(correct.sum()) < len(correct):
            stats += f", AUROC {100 * misprediction_auroc(u, correct):.1f} %"
        fig, ax = plt.subplots(figsize=(7.0, 3.8))
        score_histograms(u, correct, ax=ax, title=f"{setting}: {stats}",
                         xlabel=f"{TUTORIAL_NAMES.get(score, score)} as uncertainty (higher = more uncertain)")
        fig.tight_layout()
        return fig

    def _refresh(self):
        show_figure(self.output, self.draw, self.corruption.value, self.severity.value, self.score.value)
