"""Live-teaching widgets for lessons 05, 06 and 12 (ipywidgets 7 and 8, JupyterLab and Colab).

As in :mod:`inferml_course.widgets`: ``.widget`` is the box to display, and ``draw(...)`` draws one
state and returns the figure, so it can be called (and tested) without a browser.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from .. import plotting
from ..widgets import control_panel, show_figure

from .calibration import calibration_summary, fit_temperature
from .conformal import calibrate, coverage, set_size
from .experiments import TUTORIAL_NAMES
from .metrics import auac, misprediction_auroc
from .plots import conformal_set_bars, reliability_diagram, score_histograms
from .scores import score_batch
from ..datasets.corruptions import corrupt

__all__ = ["TemperatureExplorer", "ScoreDistributionExplorer", "ConformalExplorer"]


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


class ConformalExplorer:
    """Drag the miscoverage rate alpha and watch one image's conformal prediction set grow or shrink.

    ``cal_probs`` (n, K), ``cal_labels`` (n,): the calibration split; ``images`` (N, C, H, W), ``probs``
    (N, K), ``labels`` (N,): the images to browse. Scores ``"lac"``, ``"aps"`` and ``"raps"`` (the last two
    randomised, with the uniforms fixed by ``seed``, so the sets of one image are nested as alpha moves; RAPS
    with ``lam``, ``k_reg``). The title gives the coverage and mean set size over all N images at that alpha.
    """

    SCORES = ("lac", "aps", "raps")

    def __init__(self, cal_probs, cal_labels, images, probs, labels, class_names, seed: int = 0, lam: float = 0.1,
                 k_reg: int = 1, index: int = 0):
        import ipywidgets as w

        self.cal_probs, self.cal_labels = cal_probs.detach().cpu(), cal_labels.cpu()
        self.images, self.probs, self.labels = images.detach().cpu(), probs.detach().cpu(), labels.cpu()
        self.class_names, self.seed, self.lam, self.k_reg = list(class_names), seed, lam, k_reg
        self._cache = {}
        self.alpha = w.FloatSlider(value=0.1, min=0.01, max=0.3, step=0.01, description="alpha",
                                   continuous_update=False, readout_format=".2f")
        self.score = w.Dropdown(options=list(self.SCORES), value="lac", description="score")
        self.index = w.IntSlider(value=index, min=0, max=len(self.images) - 1, description="image",
                                 continuous_update=False)
        self.output, self.widget = control_panel([[self.alpha, self.score, self.index]], self._refresh)
        self._refresh()

    def sets(self, alpha: float, score: str):
        """(threshold, sets (N, K) of every image) at one setting (cached)."""
        key = (round(float(alpha), 4), score)
        if key not in self._cache:
            predictor = calibrate(self.cal_probs, self.cal_labels, key[0], score, randomized=score != "lac",
                                  lam=self.lam, k_reg=self.k_reg, seed=self.seed)
            self._cache[key] = (predictor.threshold, predictor.predict(self.probs))
        return self._cache[key]

    def draw(self, alpha: float, score: str, index: int):
        threshold, sets = self.sets(alpha, score)
        fig, (ax_img, ax_bar) = plt.subplots(1, 2, figsize=(9.0, 3.8), gridspec_kw={"width_ratios": [1, 1.8]})
        members = [self.class_names[k] for k in sets[index].nonzero()[:, 0].tolist()]
        plotting.show_image(ax_img, self.images[index], f"true: {self.class_names[int(self.labels[index])]}")
        conformal_set_bars(self.probs[index], sets[index], self.class_names, int(self.labels[index]), ax=ax_bar,
                           title=f"set: {{{', '.join(members)}}}" if members else "set: {} (empty)")
        fig.suptitle(f"{score.upper()}, alpha = {alpha:.2f}, threshold {threshold:.3f}: coverage "
                     f"{coverage(sets, self.labels):.1%} and mean set size {set_size(sets).float().mean():.2f} "
                     f"over {len(self.labels)} images", fontsize=10)
        fig.tight_layout()
        return fig

    def _refresh(self):
        show_figure(self.output, self.draw, self.alpha.value, self.score.value, self.index.value)
