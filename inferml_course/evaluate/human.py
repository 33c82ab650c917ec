"""Human evaluation: "which robot is more reasonable?", a blind two-alternative study.

The lecture's human evaluation (after Selvaraju et al.'s Grad-CAM study on Mechanical Turk) shows
people an image and the explanations of two "robots" (two methods, names hidden) and asks which
robot's reasoning is more reasonable, on a five-point scale. Each answer becomes a preference in
{+2, +1, 0, -1, -2} for robot A, and, after undoing the random left/right placement, a preference
for one *method* over another.

* :class:`PairwiseStudy` builds the items (every pair of methods on every image, shuffled, the
  sides swapped at random), shows them as an ipywidgets form (ipywidgets 7 and 8), records each
  answer with :meth:`~PairwiseStudy.answer` (what the form's button calls) and appends human
  answers to a CSV file as they come in.
* :class:`SimulatedRater` stands in for a class when there is none (continuous integration,
  self-study): it prefers the map with more of its energy on the sign, plus noise. Its answers are
  marked ``rater_kind="simulated"`` and every table of them says so. **They are not human data**,
  and no human data ship with the course.
* :func:`aggregate` gives each method's mean preference (in [-2, 2], **higher is better**) and
  each pair's, with percentile bootstrap confidence intervals (resampling answers).

The lecture's second protocol, the pointing game, is :mod:`.pointing`.
"""
from __future__ import annotations

import csv
import datetime as _dt
import itertools
import os
from dataclasses import dataclass, field

import torch

from .._core.arguments import checked
from .._core.checks import check_seed
from .._core.directions import describe, higher_is_better, register
from .._core.ranks import bootstrap_ci
from .._core.tables import format_table

__all__ = ["SCALE", "FIELDS", "StudyItem", "PairwiseStudy", "SimulatedRater", "aggregate", "StudyResult",
           "load_responses", "save_responses"]

# the direction of each metric defined here (the package's direction registry, _core.directions)
register('human_preference', True, quantity='mean preference in [-2, 2] of a pairwise human study', family="evaluate")

#: The five answers of the lecture's form and the preference each gives robot A.
SCALE = (
    ("Robot A seems clearly more reasonable than robot B", 2),
    ("Robot A seems slightly more reasonable than robot B", 1),
    ("Both robots seem equally reasonable", 0),
    ("Robot B seems slightly more reasonable than robot A", -1),
    ("Robot B seems clearly more reasonable than robot A", -2),
)
#: Columns of a response (and of the CSV file).
FIELDS = ("rater", "rater_kind", "item", "image", "robot_a", "robot_b", "choice", "preference_a", "time")
_KINDS = ("human", "simulated")


@dataclass(frozen=True)
class StudyItem:
    """One question: image ``image`` with method ``robot_a`` on the left and ``robot_b`` on the right."""

    index: int
    image: int
    robot_a: str
    robot_b: str


def _choice_index(choice) -> int:
    """An answer as 1..5 (1 = robot A clearly better), from 1..5 or the answer's text."""
    if isinstance(choice, str):
        for k, (label, _) in enumerate(SCALE):
            if choice == label:
                return k + 1
        raise ValueError(f"choice {choice!r} is not one of the five answers: {[label for label, _ in SCALE]}")
    if isinstance(choice, bool) or not isinstance(choice, int) or not 1 <= choice <= 5:
        raise ValueError(f"choice must be 1..5 (1 = 'robot A clearly more reasonable') or an answer's text, "
                         f"got {choice!r}")
    return choice


def _write_records(records, path, fields) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in records:
            writer.writerow({k: r[k] for k in fields})


def _read_records(path, fields, what: str, integers, kind: str) -> list:
    """The rows of a CSV file written by :func:`_write_records`: every column of ``fields`` present, the
    ``integers`` columns as ints, the ``kind`` column one of the rater kinds."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(fields) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path} is not a {what} file: columns {sorted(missing)} are missing")
        out = []
        for row in reader:
            row = dict(row)
            for key in integers:
                row[key] = int(row[key])
            if row[kind] not in _KINDS:
                raise ValueError(f"{path}: {kind} must be one of {_KINDS}, got {row[kind]!r}")
            out.append(row)
    return out


@checked
def save_responses(responses, path) -> None:
    """Write responses (a list of dicts with :data:`FIELDS`) to a CSV file."""
    _write_records(responses, path, FIELDS)


@checked
def load_responses(path) -> list:
    """Read responses written by a study or :func:`save_responses` (numbers converted back)."""
    return _read_records(path, FIELDS, "response", ("item", "image", "choice", "preference_a"), "rater_kind")


class _Form:
    """A study with an ipywidgets form: :attr:`widget` builds it (``_build_widget``) on first use."""

    _widget = None

    @property
    def widget(self):
        """The study's ipywidgets form, built once."""
        if self._widget is None:
            self._widget = self._build_widget()
        return self._widget


class PairwiseStudy(_Form):
    """A blind "which robot is more reasonable?" study over the maps of several methods.

    ``images`` (N, C, H, W); ``maps`` a dict method -> (N, H, W); ``class_names`` (N,) the class each
    map explains (shown as the question "why <class>?"); ``pairs`` the method pairs to compare
    (default: all); ``seed`` fixes the item order and the sides. ``csv_path``: human answers are
    appended there as they are given (the file is created at the first answer).

    In a lesson::

        study = PairwiseStudy(images, maps, class_names, csv_path="votes.csv")
        display(study.widget)           # the class answers, one item after another
    """

    def __init__(self, images: torch.Tensor, maps: dict, class_names=None, pairs=None, seed: int = 0,
                 csv_path=None, rater: str = "class"):
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[0] == 0:
            raise ValueError("images must be a non-empty tensor of shape (N, C, H, W)")
        if not isinstance(maps, dict) or len(maps) < 2:
            raise ValueError("maps must be a dict with at least two methods: method name -> maps (N, H, W)")
        n, _, h, w = images.shape
        for name, m in maps.items():
            if not isinstance(m, torch.Tensor) or tuple(m.shape) != (n, h, w):
                shape = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
                raise ValueError(f"maps[{name!r}] must have shape {(n, h, w)}, got {shape}")
        if class_names is not None and len(class_names) != n:
            raise ValueError(f"class_names must name one class per image ({n}), got {len(class_names)}")
        methods = list(maps)
        if pairs is None:
            pairs = list(itertools.combinations(methods, 2))
        for a, b in pairs:
            if a not in maps or b not in maps or a == b:
                raise ValueError(f"pairs must hold two different methods of maps {methods}, got {(a, b)!r}")
        self.images, self.maps, self.class_names = images.detach().cpu(), {k: v.detach().cpu() for k, v in
                                                                            maps.items()}, class_names
        self.csv_path, self.rater = csv_path, rater
        gen = torch.Generator().manual_seed(check_seed(seed))
        raw = [(i, a, b) for (a, b) in pairs for i in range(n)]
        order = torch.randperm(len(raw), generator=gen).tolist()
        swap = torch.rand(len(raw), generator=gen) < 0.5
        self.items = []
        for k, j in enumerate(order):
            i, a, b = raw[j]
            if bool(swap[k]):
                a, b = b, a
            self.items.append(StudyItem(k, i, a, b))
        self.responses: list = []
        self.current = 0

    # --- recording ---------------------------------------------------------------------------------------------
    def answer(self, choice, item: int | None = None, rater: str | None = None, kind: str = "human") -> dict:
        """Record one answer (1..5 or its text) to ``item`` (default: the current one) and move on.

        Human answers are appended to ``csv_path``; simulated ones are kept in memory only.
        """
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
        k = _choice_index(choice)
        index = self.current if item is None else item
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.items):
            raise ValueError(f"item must be an item index from 0 to {len(self.items) - 1}, got {index!r}")
        it = self.items[index]
        record = {"rater": rater or self.rater, "rater_kind": kind, "item": it.index, "image": it.image,
                  "robot_a": it.robot_a, "robot_b": it.robot_b, "choice": k, "preference_a": SCALE[k - 1][1],
                  "time": _dt.datetime.now().isoformat(timespec="seconds")}
        self.responses.append(record)
        if kind == "human" and self.csv_path is not None:
            new = not os.path.exists(self.csv_path)
            with open(self.csv_path, "a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=FIELDS)
                if new:
                    writer.writeheader()
                writer.writerow(record)
        if item is None:
            self.current = (self.current + 1) % len(self.items)
        return record

    def simulate(self, rater: "SimulatedRater", n_raters: int = 1, items=None) -> list:
        """Let a simulated rater answer ``items`` (default: all) ``n_raters`` times, through
        :meth:`answer`, marked ``rater_kind="simulated"``. Returns the new records."""
        if not isinstance(rater, SimulatedRater):
            raise TypeError("rater must be a SimulatedRater")
        items = range(len(self.items)) if items is None else items
        new = []
        for r in range(n_raters):
            for k in items:
                it = self.items[k]
                choice = rater.choose(self.maps[it.robot_a][it.image], self.maps[it.robot_b][it.image], it.image)
                new.append(self.answer(choice, item=k, rater=f"{rater.name}-{r}", kind="simulated"))
        return new

    # --- the form -------------------------------------------------------------------------------------------------
    def draw(self, item: int | None = None):
        """The figure of one item: the input, robot A's and robot B's explanation (method names hidden)."""
        import matplotlib.pyplot as plt

        from .. import plotting  # drawing the form: see UPWARD in tests/test_architecture.py

        it = self.items[self.current if item is None else item]
        image = self.images[it.image]
        question = f"why {self.class_names[it.image].replace('_', ' ')}?" if self.class_names is not None else ""
        fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.9))
        plotting.show_image(axes[0], image, f"input: {question}")
        for ax, method, robot in ((axes[1], it.robot_a, "robot A"), (axes[2], it.robot_b, "robot B")):
            plotting.show_image(ax, image, f"{robot} based its decision on")
            plotting.overlay_heatmap(ax, self.maps[method][it.image])
        fig.tight_layout()
        return fig

    def _build_widget(self):
        """The form: the item's figure, the five answers, a rater name and a submit button."""
        import ipywidgets as w

        self._question = w.HTML("<b>Which robot is more reasonable?</b>")
        self._choices = w.RadioButtons(options=[label for label, _ in SCALE], value=None,
                                       layout=w.Layout(width="auto"))
        self._name = w.Text(value=self.rater, description="your name")
        self._submit = w.Button(description="Submit and next", button_style="primary")
        self._status = w.HTML()
        self._figure = w.Output()
        self._submit.on_click(self._on_submit)
        self._refresh()
        return w.VBox([self._figure, self._question, self._choices, w.HBox([self._name, self._submit]),
                       self._status])

    def _on_submit(self, _button=None):
        if self._choices.value is None:
            self._status.value = "Pick one of the five answers first."
            return
        self.answer(self._choices.value, rater=self._name.value or self.rater)
        self._choices.value = None
        self._refresh()

    def _refresh(self):
        from IPython.display import display
        import matplotlib.pyplot as plt

        humans = sum(r["rater_kind"] == "human" for r in self.responses)
        self._status.value = f"item {self.current + 1} of {len(self.items)}; {humans} answers recorded"
        self._figure.clear_output(wait=True)
        with self._figure:
            fig = self.draw()
            display(fig)
            plt.close(fig)


class SimulatedRater:
    """A stand-in for a human rater, **not** human data: it prefers the map whose positive energy
    lies more on the ground-truth region (``masks`` (N, H, W), e.g. the sign masks).

    latent = ``sharpness`` * (energy_A - energy_B) + ``noise`` * standard normal, cut at -1.5, -0.5,
    0.5, 1.5 into the five answers. Seeded, so its answers are reproducible.
    """

    def __init__(self, masks: torch.Tensor, sharpness: float = 4.0, noise: float = 0.5, seed: int = 0,
                 name: str = "simulated"):
        if not isinstance(masks, torch.Tensor) or masks.dim() != 3:
            raise ValueError("masks must be a boolean tensor of shape (N, H, W)")
        self.masks = masks.detach().cpu().bool()
        self.sharpness, self.noise, self.name = float(sharpness), float(noise), name
        self.generator = torch.Generator().manual_seed(check_seed(seed))

    def energy(self, heat: torch.Tensor, image: int) -> float:
        pos = heat.detach().double().clamp_min(0)
        total = float(pos.sum())
        return float((pos * self.masks[image]).sum()) / total if total > 0 else 0.0

    def choose(self, map_a: torch.Tensor, map_b: torch.Tensor, image: int) -> int:
        """An answer 1..5 for one item."""
        diff = self.energy(map_a, image) - self.energy(map_b, image)
        latent = self.sharpness * diff + self.noise * float(torch.randn((), generator=self.generator))
        preference = 2 if latent > 1.5 else 1 if latent > 0.5 else 0 if latent >= -0.5 else -1 if latent >= -1.5 else -2
        return 3 - preference


@dataclass
class StudyResult:
    """Aggregated preferences. ``methods[name]`` and ``pairs[(a, b)]`` hold dicts with ``mean``
    (in [-2, 2], higher = preferred), ``low``, ``high`` (bootstrap interval) and ``n`` answers."""

    methods: dict
    pairs: dict
    kind: str
    level: float
    raters: int = 0
    notes: list = field(default_factory=list)

    @property
    def label(self) -> str:
        return "SIMULATED rater (not human data)" if self.kind == "simulated" else "human raters"

    def ranking(self) -> list:
        """Methods from most to least preferred."""
        return sorted(self.methods, key=lambda m: -self.methods[m]["mean"])

    def table(self) -> str:
        pct = round(100 * self.level)
        header = (f"Mean preference in [-2, 2] ({describe(higher_is_better('human_preference'))}), {pct}% bootstrap "
                  f"interval; {self.label}, {self.raters} rater(s)")
        rows = {m: {"mean": self.methods[m]["mean"], "interval": self.methods[m]["low"],
                    "answers": self.methods[m]["n"]} for m in self.ranking()}

        def cell(value, method, column):
            if column == "interval":
                r = self.methods[method]
                return f"[{r['low']:>+6.2f}, {r['high']:>+6.2f}]"
            return f"{value:>+6.2f}" if column == "mean" else str(value)

        return format_table(rows, ["mean", "interval", "answers"], label="method", fmt=cell, header=header,
                            headers={"interval": f"{pct}% interval"}, notes=[f"note: {n}" for n in self.notes])


def _one_kind(records, kind, field: str, what: str):
    """``(records of one kind, that kind)``: human and simulated records are never pooled; ``kind=None``
    accepts records of a single kind only. ``field`` holds each record's kind, ``what`` names the records."""
    records = list(records)
    kinds = {r[field] for r in records}
    if kind is None:
        if len(kinds) > 1:
            raise ValueError(f"{what} mix human and simulated participants; pass kind='human' or kind='simulated'")
        kind = kinds.pop() if kinds else "human"
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    records = [r for r in records if r[field] == kind]
    if not records:
        raise ValueError(f"there are no {kind} {what}")
    return records, kind


@checked
def aggregate(responses, kind: str | None = None, n_boot: int = 2000, level: float = 0.95,
              seed: int = 0) -> StudyResult:
    """Mean preferences with bootstrap intervals, per method and per ordered method pair.

    A method's preference is the answer's preference seen from that method's side (robot A:
    ``preference_a``, robot B: its negative), averaged over every answer that showed it;
    **higher is better**. ``kind``: ``"human"`` or ``"simulated"``; responses of both kinds are
    never pooled (None accepts responses of a single kind only).
    """
    responses, kind = _one_kind(responses, kind, "rater_kind", "responses")
    per_method, per_pair = {}, {}
    for r in responses:
        a, b, p = r["robot_a"], r["robot_b"], int(r["preference_a"])
        per_method.setdefault(a, []).append(p)
        per_method.setdefault(b, []).append(-p)
        key, value = ((a, b), p) if a < b else ((b, a), -p)
        per_pair.setdefault(key, []).append(value)

    def summarise(values, salt):
        v = torch.tensor(values, dtype=torch.float64)
        low, high = bootstrap_ci(v, n_resamples=int(n_boot), level=level, seed=seed + salt)
        return {"mean": float(v.mean()), "low": low, "high": high, "n": len(values)}

    methods = {m: summarise(v, k) for k, (m, v) in enumerate(sorted(per_method.items()))}
    pairs = {p: summarise(v, 1000 + k) for k, (p, v) in enumerate(sorted(per_pair.items()))}
    raters = len({r["rater"] for r in responses})
    result = StudyResult(methods, pairs, kind, level, raters)
    if len(responses) < 30:
        result.notes.append(f"only {len(responses)} answers: expect wide intervals")
    return result


# ==================================================================================================
# the lecture's pointing game: sharpen the cells you need to answer the question
# ==================================================================================================
