"""Human evaluation, the pointing game: people sharpen the regions they need to answer a question.

The lecture's *pointing game* is a second human protocol (not Zhang et al.'s max-in-mask metric,
which is :func:`~inferml_course.evaluate.localization.pointing_game`): a participant sees a blurred
image and a question and sharpens the regions they need to answer it; the sharpened regions are the
human attention map, and explanations are scored against it.

* :class:`PointingStudy` splits each image into square cells of ``cell`` pixels (our choice, an
  argument: the lecture lets people paint freely), shows the image blurred with ``blur_sigma`` (also
  ours) and a grid of toggle buttons, one per cell: a click sharpens (or blurs again) that cell. The
  answer is saved together with the attention map (which cells were sharp) and appended to a CSV file.
  All state changes go through :meth:`~PointingStudy.toggle`, :meth:`~PointingStudy.submit` and
  friends, so they can be tested without a browser.
* :class:`SimulatedParticipant` stands in for people in continuous integration: it sharpens every cell
  in which a given region (e.g. the discriminative part) covers at least ``min_share`` of the pixels and
  gives the true answer. Deterministic; its records are ``participant_kind="simulated"`` and every
  table of them says so. **It is not human data.**
* :func:`pointing_evaluation` scores explainers against collected maps: mean IoU, Pearson correlation
  and pixel accuracy over every (participant, image) answer, **higher is better** for all three.
"""
from __future__ import annotations

import csv
import datetime as _dt
import os
import warnings
from dataclasses import dataclass, field

import torch

from .._core.arguments import checked
from .._core.checks import check_images, check_number, check_positive_int, check_unit_interval
from .._core.directions import describe, higher_is_better
from .._core.images import gaussian_blur
from .._core.tables import format_table
from .human import _KINDS, _Form, _one_kind, _read_records, _write_records

__all__ = ["POINTING_FIELDS", "PointingStudy", "SimulatedParticipant", "PointingResult", "pointing_evaluation",
           "cell_masks", "load_pointing", "save_pointing"]


#: Columns of a pointing-game record (and of its CSV file). ``cells`` is the attention map on the
#: cell grid as a string of 0/1, row by row (``rows`` x ``cols`` characters).
POINTING_FIELDS = ("participant", "participant_kind", "item", "image", "question", "answer", "truth", "correct",
                   "rows", "cols", "cells", "sharpened", "time")


def _grid(h: int, w: int, cell: int) -> tuple[int, int]:
    return -(-h // cell), -(-w // cell)


@checked
def cell_masks(cells: torch.Tensor, cell: int, size) -> torch.Tensor:
    """Pixel maps (N, H, W) bool from cell maps (N, rows, cols) bool: every pixel of a sharpened cell is
    True. ``size`` = (H, W); the last row / column of cells is cut where H or W is not a multiple of
    ``cell``."""
    cell = check_positive_int(cell, "cell")
    if not isinstance(cells, torch.Tensor) or cells.dim() != 3:
        shape = tuple(cells.shape) if isinstance(cells, torch.Tensor) else type(cells).__name__
        raise ValueError(f"cells must be a tensor of shape (N, rows, cols), got {shape}")
    h, w = (int(v) for v in size)
    if tuple(cells.shape[1:]) != _grid(h, w, cell):
        raise ValueError(f"cells must have the grid shape {_grid(h, w, cell)} of {h} x {w} pixels in cells of {cell}, "
                         f"got {tuple(cells.shape[1:])}")
    big = cells.bool().repeat_interleave(cell, 1).repeat_interleave(cell, 2)
    return big[:, :h, :w]


def _cells_to_text(cells: torch.Tensor) -> str:
    return "".join("1" if bool(v) else "0" for v in cells.flatten().tolist())


def _text_to_cells(text: str, rows: int, cols: int) -> torch.Tensor:
    if len(text) != rows * cols or set(text) - {"0", "1"}:
        raise ValueError(f"cells must be {rows * cols} characters of 0/1, got {text!r}")
    return torch.tensor([c == "1" for c in text], dtype=torch.bool).view(rows, cols)


@checked
def save_pointing(records, path) -> None:
    """Write pointing-game records (dicts with :data:`POINTING_FIELDS`) to a CSV file."""
    _write_records(records, path, POINTING_FIELDS)


@checked
def load_pointing(path) -> list:
    """Read pointing-game records written by a :class:`PointingStudy` or :func:`save_pointing`."""
    rows = _read_records(path, POINTING_FIELDS, "pointing-game", ("item", "image", "rows", "cols", "sharpened"),
                         "participant_kind")
    for row in rows:
        row["correct"] = row["correct"] == "True"
        _text_to_cells(row["cells"], row["rows"], row["cols"])
    return rows


class PointingStudy(_Form):
    """The lecture's pointing game: a blurred image, a question, and cells to sharpen until one can answer.

    ``images`` (N, C, H, W) in [0, 1]; ``questions`` one string per image (or one for all);
    ``truths`` the right answer per image (recorded with each answer, so ``correct`` can be checked);
    ``options`` the answers offered (default: the distinct truths, sorted); ``cell`` the cell size in
    pixels (default 4: an 8 x 8 grid on 32 x 32 images); ``blur_sigma`` the blur of the cells not yet
    sharpened (default 2.5 pixels: our signs' arrows and bars are not readable under it). Human answers
    are appended to ``csv_path`` as they are given.

    State: ``current`` (the item shown), ``sharp`` (rows, cols) bool, the cells sharpened so far for it;
    ``records`` every answer. In a lesson::

        study = PointingStudy(images, "Which sign is this?", truths=names, csv_path="pointing.csv")
        display(study.widget)      # click cells to sharpen them, pick the answer, submit
    """

    def __init__(self, images: torch.Tensor, questions, truths, options=None, cell: int = 4,
                 blur_sigma: float = 2.5, csv_path=None, participant: str = "participant"):
        images = check_images(images, "images").detach().cpu()
        n, _, h, w = images.shape
        self.cell = check_positive_int(cell, "cell")
        if self.cell > min(h, w):
            raise ValueError(f"cell must be at most the image size {min(h, w)}, got {cell}")
        self.blur_sigma = check_number(blur_sigma, "blur_sigma")
        if isinstance(questions, str):
            questions = [questions] * n
        if len(questions) != n or not all(isinstance(q, str) for q in questions):
            raise ValueError(f"questions must be one string or {n} strings (one per image)")
        truths = [str(t) for t in truths]
        if len(truths) != n:
            raise ValueError(f"truths must give one answer per image ({n}), got {len(truths)}")
        options = sorted(set(truths)) if options is None else [str(o) for o in options]
        if not set(truths) <= set(options):
            raise ValueError(f"options must contain every true answer; missing {sorted(set(truths) - set(options))}")
        self.images, self.questions, self.truths, self.options = images, list(questions), truths, options
        self.blurred = gaussian_blur(images, self.blur_sigma).clamp(0, 1)
        self.rows, self.cols = _grid(h, w, self.cell)
        self.csv_path, self.participant = csv_path, participant
        self.records: list = []
        self.current = 0
        self.sharp = torch.zeros(self.rows, self.cols, dtype=torch.bool)

    # --- state -----------------------------------------------------------------------------------------------
    def _check_cell(self, row, col):
        for value, high, name in ((row, self.rows, "row"), (col, self.cols, "col")):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < high:
                raise ValueError(f"{name} must be an int from 0 to {high - 1}, got {value!r}")

    def toggle(self, row: int, col: int) -> bool:
        """Sharpen cell (row, col), or blur it again if it was sharp; returns its new state."""
        self._check_cell(row, col)
        self.sharp[row, col] = not bool(self.sharp[row, col])
        return bool(self.sharp[row, col])

    def clear(self) -> None:
        """Blur every cell of the current item again."""
        self.sharp.zero_()

    def goto(self, item: int) -> None:
        """Show item ``item`` (its cells start blurred)."""
        if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item < len(self.images):
            raise ValueError(f"item must be an int from 0 to {len(self.images) - 1}, got {item!r}")
        self.current = item
        self.clear()

    def view(self, item: int | None = None, sharp: torch.Tensor | None = None) -> torch.Tensor:
        """What the participant sees (C, H, W): the image where ``sharp`` (default: the current cells) is
        set, its blurred copy elsewhere."""
        i = self.current if item is None else item
        sharp = self.sharp if sharp is None else sharp
        h, w = self.images.shape[-2:]
        keep = cell_masks(sharp[None], self.cell, (h, w))[0]
        return torch.where(keep, self.images[i], self.blurred[i])

    def attention_map(self, sharp: torch.Tensor | None = None) -> torch.Tensor:
        """The current (or given) cells as a pixel map (H, W) bool: the human attention map."""
        sharp = self.sharp if sharp is None else sharp
        return cell_masks(sharp[None], self.cell, self.images.shape[-2:])[0]

    def submit(self, answer, participant: str | None = None, kind: str = "human", sharp=None) -> dict:
        """Save ``answer`` (one of ``options``) with the current attention map (or ``sharp`` (rows, cols)
        bool), then move to the next item with every cell blurred. Human records are appended to
        ``csv_path``; simulated ones are kept in memory only."""
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
        answer = str(answer)
        if answer not in self.options:
            raise ValueError(f"answer must be one of {self.options}, got {answer!r}")
        if sharp is None:
            sharp = self.sharp
        elif not isinstance(sharp, torch.Tensor) or tuple(sharp.shape) != (self.rows, self.cols):
            raise ValueError(f"sharp must be a bool tensor of shape {(self.rows, self.cols)}")
        i = self.current
        record = {"participant": participant or self.participant, "participant_kind": kind, "item": len(self.records),
                  "image": i, "question": self.questions[i], "answer": answer, "truth": self.truths[i],
                  "correct": answer == self.truths[i], "rows": self.rows, "cols": self.cols,
                  "cells": _cells_to_text(sharp), "sharpened": int(sharp.sum()),
                  "time": _dt.datetime.now().isoformat(timespec="seconds")}
        self.records.append(record)
        if kind == "human" and self.csv_path is not None:
            new = not os.path.exists(self.csv_path)
            with open(self.csv_path, "a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=POINTING_FIELDS)
                if new:
                    writer.writeheader()
                writer.writerow(record)
        self.goto((i + 1) % len(self.images))
        return record

    def simulate(self, participant: "SimulatedParticipant") -> list:
        """Let a simulated participant answer every item once (records marked ``"simulated"``)."""
        if not isinstance(participant, SimulatedParticipant):
            raise TypeError("participant must be a SimulatedParticipant")
        new = []
        for i in range(len(self.images)):
            self.goto(i)
            sharp, answer = participant.respond(i, self)
            new.append(self.submit(answer, participant=participant.name, kind="simulated", sharp=sharp))
        return new

    def maps(self, records=None, kind: str | None = None):
        """(images (M,), attention maps (M, H, W) bool, records) of the records of one kind (default: the
        study's records; ``kind`` None accepts a single kind only)."""
        records, _ = _one_kind(self.records if records is None else records, kind, "participant_kind", "records")
        h, w = self.images.shape[-2:]
        cells = torch.stack([_text_to_cells(r["cells"], r["rows"], r["cols"]) for r in records])
        return torch.tensor([r["image"] for r in records]), cell_masks(cells, self.cell, (h, w)), records

    # --- the form -------------------------------------------------------------------------------------------------
    def draw(self, item: int | None = None):
        """The figure of what the participant sees now, with the cell grid and the question."""
        import matplotlib.pyplot as plt

        i = self.current if item is None else item
        fig, ax = plt.subplots(figsize=(3.2, 3.4))
        ax.imshow(self.view(i).permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
        h, w = self.images.shape[-2:]
        for k in range(1, self.rows):
            ax.axhline(k * self.cell - 0.5, color="white", lw=0.4, alpha=0.6)
        for k in range(1, self.cols):
            ax.axvline(k * self.cell - 0.5, color="white", lw=0.4, alpha=0.6)
        ax.set_title(self.questions[i], fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.tight_layout()
        return fig

    def _build_widget(self):
        """The form: the image, a grid of cell buttons (click to sharpen), the answer and submit."""
        import ipywidgets as w

        self._buttons = []
        rows = []
        for r in range(self.rows):
            row = []
            for c in range(self.cols):
                b = w.ToggleButton(value=False, description="", tooltip=f"cell ({r}, {c})",
                                   layout=w.Layout(width="26px", height="26px", padding="0px"))
                b.observe(self._on_toggle(r, c), names="value")
                row.append(b)
            self._buttons.append(row)
            rows.append(w.HBox(row))
        self._answer = w.Dropdown(options=self.options, value=None, description="answer")
        self._name = w.Text(value=self.participant, description="your name")
        self._submit = w.Button(description="Submit and next", button_style="primary")
        self._clear = w.Button(description="Blur all again")
        self._status = w.HTML()
        self._figure = w.Output()
        self._submit.on_click(self._on_submit)
        self._clear.on_click(self._on_clear)
        self._refresh()
        grid = w.VBox([w.HTML("<b>click a cell to sharpen it</b>"), *rows])
        return w.VBox([w.HBox([self._figure, grid]), w.HBox([self._answer, self._name]),
                       w.HBox([self._submit, self._clear]), self._status])

    def _on_toggle(self, r, c):
        def handler(change):
            if bool(change["new"]) != bool(self.sharp[r, c]):
                self.toggle(r, c)
                self._refresh()
        return handler

    def _sync_buttons(self):
        for r, row in enumerate(self._buttons):
            for c, b in enumerate(row):
                if b.value != bool(self.sharp[r, c]):
                    b.value = bool(self.sharp[r, c])

    def _on_clear(self, _button=None):
        self.clear()
        self._sync_buttons()
        self._refresh()

    def _on_submit(self, _button=None):
        if self._answer.value is None:
            self._status.value = "Pick an answer first."
            return
        self.submit(self._answer.value, participant=self._name.value or self.participant)
        self._answer.value = None
        self._sync_buttons()
        self._refresh()

    def _refresh(self):
        from IPython.display import display
        import matplotlib.pyplot as plt

        humans = sum(r["participant_kind"] == "human" for r in self.records)
        self._status.value = (f"image {self.current + 1} of {len(self.images)}; {int(self.sharp.sum())} of "
                              f"{self.rows * self.cols} cells sharp; {humans} answers recorded")
        self._figure.clear_output(wait=True)
        with self._figure:
            fig = self.draw()
            display(fig)
            plt.close(fig)


class SimulatedParticipant:
    """A stand-in for a person in the pointing game, **not** human data: it sharpens every cell in which
    ``regions`` (N, H, W) bool (e.g. the discriminative parts) cover at least ``min_share`` of the cell's
    pixels (at least one cell: the best-covered one) and answers with the true answer.

    Deterministic (no randomness at all); ``name`` appears in its records, whose kind is ``"simulated"``.
    """

    def __init__(self, regions: torch.Tensor, min_share: float = 0.25, name: str = "simulated participant"):
        if not isinstance(regions, torch.Tensor) or regions.dim() != 3:
            raise ValueError("regions must be a boolean tensor of shape (N, H, W)")
        self.regions = regions.detach().cpu().bool()
        self.min_share = check_unit_interval(min_share, "min_share", low_open=True)
        self.name = name

    def cells(self, image: int, cell: int) -> torch.Tensor:
        """The cells (rows, cols) bool it sharpens on image ``image`` for cells of ``cell`` pixels."""
        region = self.regions[image].double()
        h, w = region.shape
        rows, cols = _grid(h, w, cell)
        padded = torch.zeros(rows * cell, cols * cell, dtype=torch.float64)
        padded[:h, :w] = region
        area = torch.zeros_like(padded)
        area[:h, :w] = 1
        pool = lambda t: t.view(rows, cell, cols, cell).sum((1, 3))  # noqa: E731
        share = pool(padded) / pool(area)
        chosen = share >= self.min_share
        if not chosen.any():
            chosen.view(-1)[int(share.flatten().argmax())] = True
        return chosen

    def respond(self, image: int, study: PointingStudy):
        """(cells to sharpen (rows, cols) bool, answer) for one item of ``study``."""
        if tuple(self.regions.shape[1:]) != tuple(study.images.shape[-2:]) or image >= self.regions.shape[0]:
            raise ValueError(f"regions {tuple(self.regions.shape)} do not match the study's images "
                             f"{tuple(study.images.shape)}")
        return self.cells(image, study.cell), study.truths[image]


@dataclass
class PointingResult:
    """Explainers scored against pointing-game attention maps. ``scores[method]`` holds ``iou``,
    ``correlation`` and ``pixel_accuracy`` (nanmeans over the answers, **higher is better**) and ``n``."""

    scores: dict
    kind: str
    participants: int
    answers: int
    threshold: float
    notes: list = field(default_factory=list)

    @property
    def label(self) -> str:
        return "SIMULATED participant (not human data)" if self.kind == "simulated" else "human participants"

    def summary(self) -> dict:
        """{method: {"iou", "correlation", "pixel_accuracy"}} (for :func:`~inferml_course.evaluate.merge_summaries`)."""
        return {m: {k: v[k] for k in ("iou", "correlation", "pixel_accuracy")} for m, v in self.scores.items()}

    def table(self) -> str:
        header = (f"Maps against pointing-game attention maps ({self.label}, {self.participants} participant(s), "
                  f"{self.answers} answers); maps binarised at {self.threshold} of their min-max range; "
                  f"every column: {describe(higher_is_better('iou'))}")
        rows = self.summary()
        order = sorted(rows, key=lambda m: -rows[m]["iou"] if rows[m]["iou"] == rows[m]["iou"] else 0)
        return format_table({m: rows[m] for m in order}, ["iou", "correlation", "pixel_accuracy"], label="method",
                            fmt=lambda v, *_: f"{v:.3f}", header=header,
                            headers={"iou": "mean IoU"}, notes=[f"note: {n}" for n in self.notes])


@checked
def pointing_evaluation(maps: dict, records, study: PointingStudy, kind: str | None = None,
                        threshold: float = 0.5, correct_only: bool = False) -> PointingResult:
    """Score every explainer against the attention maps of the pointing game.

    ``maps``: dict method -> (N, H, W) maps of the study's N images; ``records``: pointing-game records
    (from :attr:`PointingStudy.records` or :func:`load_pointing`) of one ``kind``; ``study`` gives the
    cell size and image size. Every record (participant, image) is one comparison: the map of that image
    against that participant's attention map (M, H, W), with
    :func:`~inferml_course.evaluate.localization.iou` and
    :func:`~inferml_course.evaluate.localization.pixel_accuracy` (map binarised at ``threshold`` of its
    min-max range) and :func:`~inferml_course.evaluate.localization.correlation` (the raw map). The
    scores are means over the comparisons (NaN ones, e.g. an answer with no cell sharpened, left out);
    **higher is better** for all three. ``correct_only`` keeps the right answers only.
    """
    from . import localization as loc

    if not isinstance(study, PointingStudy):
        raise TypeError("study must be the PointingStudy the records come from")
    if not isinstance(maps, dict) or not maps:
        raise ValueError("maps must be a non-empty dict: method name -> maps (N, H, W)")
    threshold = check_unit_interval(threshold, "threshold")
    records, _ = _one_kind(records, kind, "participant_kind", "records")
    kind = records[0]["participant_kind"]
    if correct_only:
        records = [r for r in records if r["correct"]]
        if not records:
            raise ValueError("no record has a correct answer")
    images, attention, records = study.maps(records)
    n, _, h, w = study.images.shape
    scores = {}
    for name, m in maps.items():
        if not isinstance(m, torch.Tensor) or tuple(m.shape) != (n, h, w):
            shape = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
            raise ValueError(f"maps[{name!r}] must have shape {(n, h, w)}, got {shape}")
        chosen = m.detach().cpu()[images]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            values = {"iou": loc.iou(chosen, attention, threshold),
                      "correlation": loc.correlation(chosen, attention),
                      "pixel_accuracy": loc.pixel_accuracy(chosen, attention, threshold)}
        scores[name] = {k: float(v.nanmean()) for k, v in values.items()}
        scores[name]["n"] = len(records)
    result = PointingResult(scores, kind, len({r["participant"] for r in records}), len(records), threshold)
    empty = sum(r["sharpened"] == 0 for r in records)
    if empty:
        result.notes.append(f"{empty} answer(s) with no cell sharpened have no IoU or correlation")
    if len(records) < 30:
        result.notes.append(f"only {len(records)} answers: a small sample")
    return result
