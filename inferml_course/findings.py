"""Findings with their uncertainty: a bootstrap interval over test images and the range over retrainings.

A lesson states a comparison (an *effect*, e.g. "AUROC of MSP minus AUROC of GradTrust") through
:func:`finding`, which returns a :class:`Finding` with

* ``value``: the effect on the models the lesson runs (the shipped zoo, or a retrained one);
* ``low, high``: its 95 % percentile bootstrap interval over the test images
  (``scipy.stats.bootstrap(paired=True)``: the rows of every array are resampled together);
* ``seeds``: the effect on each retrained zoo, read from :data:`SEEDS_FILE`, which
  ``python benchmarks/seed_robustness.py --world fashion`` writes by running the lessons on zoos retrained
  with other seeds (each run records its findings through ``$INFERML_FINDINGS``).

``finding.holds`` is the course's rule for asserting a comparison: the interval excludes 0 and the effect
has the same sign on every retraining (at least :data:`MIN_SEEDS` of them). Otherwise the lesson states
the result as seed-dependent with its range (``finding.verdict``). :func:`plot_findings` draws a lesson's
findings in one figure (the robustness ledger).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ._core.arguments import checked
from . import config
from ._core.ranks import paired_bootstrap

__all__ = ["Finding", "finding", "paired_bootstrap", "seed_values", "plot_findings", "SEEDS_FILE", "MIN_SEEDS"]

#: The committed effects on retrained zoos: ``{lesson: {finding name: {zoo label: value}}}``.
SEEDS_FILE = config.REPO_DATA_DIR / "findings" / "fashion_seeds.json"
#: The fewest retrainings a finding needs before a lesson may assert it.
MIN_SEEDS = 5


def _numpy(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


@checked
def seed_values(lesson: str, name: str, path: Path | None = None) -> dict[str, float]:
    """``{zoo label: effect}`` of finding ``name`` of ``lesson`` on the retrained zoos ({} when not measured)."""
    path = SEEDS_FILE if path is None else Path(path)
    if not path.is_file():
        return {}
    return dict(json.loads(path.read_text()).get(lesson, {}).get(name, {}))


@dataclass
class Finding:
    """One comparison of a lesson: the effect, its bootstrap interval and its values on retrained zoos."""

    lesson: str
    name: str
    value: float
    low: float
    high: float
    seeds: dict[str, float] = field(default_factory=dict)

    @property
    def seed_range(self) -> tuple[float, float]:
        """(min, max) of the effect over the retrained zoos, (nan, nan) when none was measured."""
        if not self.seeds:
            return float("nan"), float("nan")
        values = list(self.seeds.values())
        return min(values), max(values)

    @property
    def holds(self) -> bool:
        """The interval excludes 0 and the effect keeps its sign on each of at least MIN_SEEDS retrainings."""
        sign = np.sign(self.value)
        interval = self.low > 0 if sign > 0 else self.high < 0
        lo, hi = self.seed_range
        stable = len(self.seeds) >= MIN_SEEDS and (lo > 0 if sign > 0 else hi < 0)
        return bool(sign != 0 and interval and stable)

    @property
    def verdict(self) -> str:
        """One line: the effect, its interval, its range over retrainings and whether the course asserts it."""
        lo, hi = self.seed_range
        seeds = (f"{lo:+.3f} to {hi:+.3f} over {len(self.seeds)} retrainings" if self.seeds
                 else "not yet measured on retrainings")
        if self.holds:
            state = "holds"
        elif len(self.seeds) < MIN_SEEDS:
            state = f"measured on {len(self.seeds)} of the {MIN_SEEDS} retrainings needed: not asserted"
        else:
            state = "seed-dependent or within noise: not asserted"
        return f"{self.name}: {self.value:+.3f} (95 % CI {self.low:+.3f} to {self.high:+.3f}; {seeds}) -> {state}"

    def __str__(self) -> str:
        return self.verdict


def _record(f: Finding) -> None:
    """Append the effect to ``$INFERML_FINDINGS/<lesson>.json`` when set (the seed script reads it)."""
    folder = os.environ.get("INFERML_FINDINGS")
    if not folder:
        return
    path = Path(folder) / f"{f.lesson}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[f.name] = {"value": f.value, "low": f.low, "high": f.high}
    path.write_text(json.dumps(data, indent=1, sort_keys=True))


@checked
def finding(lesson: str, name: str, statistic, *arrays, n_resamples: int = 1000, seed: int = 0) -> Finding:
    """The effect ``statistic(*arrays)`` with its paired bootstrap interval over the rows of ``arrays`` and its
    values on the retrained zoos (:func:`seed_values`); recorded for the seed script when it runs the lesson."""
    value = float(statistic(*(_numpy(a) for a in arrays)))
    low, high = paired_bootstrap(statistic, *arrays, n_resamples=n_resamples, seed=seed)
    f = Finding(str(lesson), str(name), value, low, high, seed_values(str(lesson), str(name)))
    _record(f)
    return f


@checked
def plot_findings(findings, title: str = "Findings: effect, 95 % bootstrap interval and range over retrainings"):
    """The robustness ledger of a lesson: one row per finding, the effect (dot) with its bootstrap interval
    (bar) and the range over retrained zoos (grey band); green rows hold, orange rows are seed-dependent or
    within noise, grey rows were not measured on enough retrainings (none of them is asserted)."""
    import matplotlib.pyplot as plt

    findings = list(findings)
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(findings) + 1.2))
    labelled = False
    for row, f in enumerate(reversed(findings)):
        lo, hi = f.seed_range
        if not np.isnan(lo):
            ax.fill_betweenx([row - 0.3, row + 0.3], lo, hi, color="0.85", zorder=1,
                             label=None if labelled else "range over retrainings")
            labelled = True
        colour = "tab:green" if f.holds else "tab:orange" if len(f.seeds) >= MIN_SEEDS else "tab:grey"
        ax.errorbar(f.value, row, xerr=[[f.value - f.low], [f.high - f.value]], fmt="o", color=colour,
                    capsize=4, zorder=3)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(findings)), [f.name for f in reversed(findings)])
    ax.set_xlabel("effect (green: holds, asserted; orange: seed-dependent or within noise; "
                  "grey: too few retrainings)")
    ax.set_title(title, fontsize=10)
    if labelled:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig
