"""The plain-text table formatter behind every printed table of the package.

:func:`format_table` lays out rows (a dict ``{row label: {column: value}}`` or a list of dicts),
formats numbers one way (``fmt``, times ``scale``; integers stay integers when ``scale`` is 1), aligns numbers right and
text left, sizes each column to its content, and marks the best (``*``) and runner-up (``+``) value
of each marked column in the direction the registry (:mod:`._core.directions`) gives that column.
It is public as ``inferml_course.format_table``; the families' printed tables (``evaluate.format_ranking``,
the studies' ``table()`` methods) call it too.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence

from .arguments import checked
from .directions import describe, higher_is_better, root

__all__ = ["MARKS_NOTE", "best_marks", "format_table", "is_number"]

#: The footnote of a table with best / runner-up marks.
MARKS_NOTE = "* best, + runner-up in each column"


def is_number(value) -> bool:
    """A real number (int, float, numpy scalar), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _missing(value) -> bool:
    return value is None or (is_number(value) and math.isnan(float(value)))


def best_marks(values: Mapping, higher: bool) -> dict:
    """``{key: "*"}`` for the best value and ``{key: "+"}`` for the runner-up of ``values`` ({key: number});
    None and NaN are skipped; among equal values the first key wins."""
    valid = [(float(v), i, k) for i, (k, v) in enumerate(values.items()) if not _missing(v)]
    valid.sort(key=lambda t: (-t[0] if higher else t[0], t[1]))
    return {k: mark for mark, (_, _, k) in zip("*+", valid)}


@checked
def format_table(rows, columns: Sequence | None = None, *, label: str = "", fmt: str | Callable = ".3f",
                 scale: float = 1.0, marks: bool | Sequence = False, directions: Mapping | None = None, base: Mapping | None = None,
                 headers: Mapping | None = None, title: str | None = None, header: str | Sequence[str] | None = None,
                 notes: Sequence[str] = (), missing: str = "-", sep: str = "  ", grid: bool = False,
                 min_width: int = 0, state_directions: bool | None = None) -> str:
    """A plain-text table.

    ``rows``: ``{row label: {column: value}}`` (a first column of row labels headed ``label``) or a
    list of dicts (no label column; name the ``columns``). ``columns`` defaults to every column in
    order of appearance. Numbers are ``format(value * scale, fmt)`` (integers print as integers when ``scale`` is 1);
    ``fmt`` may be a callable ``fmt(value, row, column) -> str``. ``None`` or an absent cell prints
    ``missing``. Numbers are right-aligned, text left-aligned; a column is as wide as its widest
    cell (at least ``min_width``); ``headers`` renames columns for display.

    ``marks``: False, True (every column) or the columns to mark: the best value gets ``*`` and the
    runner-up ``+``, in the direction :func:`~._core.directions.higher_is_better` gives the column
    (``directions`` as there), and the note :data:`MARKS_NOTE` is added. ``base`` names the registered
    metric behind a column: a dict ``{column: metric}``, one metric for every column (``base="AUROC"``: one
    column per OOD set) or a function of the column label (``base=lambda c: c.split()[0]`` for ``"MURR 2%"``).
    ``state_directions`` (default: on when marking) adds a line with each marked metric's direction.
    ``title`` and ``header`` (a line or lines) come first, ``notes`` last.

    >>> print(format_table({"msp": {"AUROC": 0.81, "FPR95": 0.62}, "energy": {"AUROC": 0.84, "FPR95": 0.55}},
    ...                    label="score", marks=True))  # doctest: +NORMALIZE_WHITESPACE
    AUROC higher is better; FPR95 lower is better
    score   AUROC   FPR95
    msp     0.810+  0.620+
    energy  0.840*  0.550*
    * best, + runner-up in each column
    ``grid``: columns separated by ``" | "`` with a rule under the header.
    """
    if isinstance(rows, Mapping):
        labels = list(rows)
        records = [rows[r] for r in labels]
        has_labels = True
    else:
        records = list(rows)
        labels = [None] * len(records)
        has_labels = False
    if columns is None:
        columns = list(dict.fromkeys(c for rec in records for c in rec))
    columns = list(columns)
    headers = dict(headers or {})
    marked = columns if marks is True else [] if not marks else [c for c in columns if c in set(marks)]
    if isinstance(base, str):
        base = dict.fromkeys(columns, base)
    elif callable(base):
        base = {c: base(c) for c in columns}
    mark_of = {}
    for c in marked:
        higher = higher_is_better(c, directions, base)
        for i, mark in best_marks({i: rec.get(c) for i, rec in enumerate(records)}, higher).items():
            mark_of[(i, c)] = mark
    use_marks = bool(mark_of) and len(records) > 1

    def text(value, i, c):
        if value is None:
            out = missing
        elif callable(fmt):
            out = fmt(value, labels[i], c)
        elif isinstance(value, numbers.Integral) and not isinstance(value, bool) and scale == 1:
            out = str(int(value))
        elif is_number(value):
            out = format(float(value) * scale, fmt)
        else:
            out = str(value)
        if use_marks and c in marked:
            out += mark_of.get((i, c), " ")
        return out

    body = [[text(rec.get(c), i, c) for c in columns] for i, rec in enumerate(records)]
    numeric = [any(is_number(rec.get(c)) for rec in records) for c in columns]
    heads = [str(headers.get(c, c)) for c in columns]
    widths = [max(min_width, len(h), *(len(b[j]) for b in body)) for j, h in enumerate(heads)]
    cells_h = [h.rjust(w) if num else h.ljust(w) for h, w, num in zip(heads, widths, numeric)]
    if has_labels:
        first = max(len(str(label)), *(len(str(r)) for r in labels)) if labels else len(str(label))
        cells_h = [str(label).ljust(first), *cells_h]
        widths_all = [first, *widths]
    else:
        widths_all = widths
    join = " | " if grid else sep
    lines = [title] if title else []
    if header:
        lines.extend([header] if isinstance(header, str) else list(header))
    if marked and (state_directions is None or state_directions):
        named = dict.fromkeys(root((base or {}).get(c, c)) for c in marked)
        lines.append("; ".join(f"{m} {describe(higher_is_better(m, directions))}" for m in named))
    lines.append(join.join(cells_h).rstrip())
    if grid:
        lines.append("-+-".join("-" * w for w in widths_all))
    for i, b in enumerate(body):
        cells = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(b, widths, numeric)]
        if has_labels:
            cells = [str(labels[i]).ljust(widths_all[0]), *cells]
        line = join.join(cells).rstrip()
        lines.append(line.rstrip(" |") if grid else line)  # no dangling separator before empty cells
    if use_marks:
        lines.append(MARKS_NOTE)
    lines.extend(notes)
    return "\n".join(lines)
