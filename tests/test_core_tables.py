"""The one table formatter (``inferml_course.format_table``, in _core.tables) and the tables that use it."""
import math

import pytest

from inferml_course import evaluate as ev
from inferml_course._core import tables as T
import inferml_course as ic


def _columns(line):
    return line.split()


def test_layout_widths_and_alignment():
    text = T.format_table({"short": {"a": 0.5, "name": "x"}, "a much longer label": {"a": 12.25, "name": "yy"}},
                          label="row", fmt=".2f", title="T", header="h")
    lines = text.splitlines()
    assert lines[:2] == ["T", "h"]
    head, first, second = lines[2:]
    assert head.startswith("row ") and len({len(first), len(second)}) <= 2
    assert first.index("0.50") + 4 == second.index("12.25") + 5  # numbers right-aligned
    assert first.endswith("x") and second.endswith("yy")  # text left-aligned (trailing spaces stripped)
    assert first.index("short") == 0 and second.index("a much longer label") == 0


def test_numbers_scale_integers_missing_and_callables():
    text = T.format_table({"r": {"p": 0.123, "n": 7, "b": True, "none": None}}, ["p", "n", "b", "none", "absent"],
                          fmt=".1f", scale=100)
    row = text.splitlines()[-1].split()
    assert row == ["r", "12.3", "700.0", "True", "-", "-"]
    assert T.format_table({"r": {"n": 7}}).splitlines()[-1].split() == ["r", "7"]
    text = T.format_table({"r": {"v": 1.0}}, fmt=lambda v, r, c: f"<{r}:{c}:{v:g}>")
    assert "<r:v:1>" in text
    assert "renamed" in T.format_table({"r": {"v": 1.0}}, headers={"v": "renamed"})


def test_best_marks_follow_the_registry():
    rows = {"a": {"AUROC": 0.9, "ECE": 0.3}, "b": {"AUROC": 0.7, "ECE": 0.1}, "c": {"AUROC": math.nan, "ECE": 0.2}}
    text = T.format_table(rows, marks=True)
    lines = {line.split()[0]: line for line in text.splitlines()[1:-1]}
    assert "0.900*" in lines["a"] and "0.700+" in lines["b"]  # AUROC: higher is better; NaN is skipped
    assert "0.100*" in lines["b"] and "0.200+" in lines["c"]  # ECE: lower is better
    assert text.splitlines()[-1] == T.MARKS_NOTE
    assert T.best_marks({"x": 1.0, "y": 1.0, "z": 0.0}, higher=True) == {"x": "*", "y": "+"}  # ties: first wins
    assert T.best_marks({"x": None, "y": math.nan}, higher=True) == {}
    # explicit directions and base names; unknown column names are errors
    assert "0.100*" in T.format_table({"a": {"m": 0.1}, "b": {"m": 0.2}}, marks=True, directions={"m": False})
    assert "0.200*" in T.format_table({"a": {"m 2%": 0.1}, "b": {"m 2%": 0.2}}, marks=True, base={"m 2%": "MURR"})
    with pytest.raises(ValueError, match="direction"):
        T.format_table({"a": {"mystery": 1.0}, "b": {"mystery": 2.0}}, marks=True)
    # one row: nothing to compare, no marks
    assert "*" not in T.format_table({"a": {"AUROC": 0.5}}, marks=True)


def test_grid_style_list_rows():
    text = T.format_table([{"a": "x", "b": 0.5}, {"a": "yyy", "b": -1.25, "c": 3}], ["a", "b", "c"], grid=True,
                          missing="")
    lines = text.splitlines()
    assert lines[0].split(" | ")[0].strip() == "a" and set(lines[1]) <= {"-", "+"}
    assert lines[2].split(" | ")[:2] == ["x  ", " 0.500"] and lines[3].endswith("| 3")


def test_one_public_table_states_directions_and_bases():
    assert ic.format_table is T.format_table
    uq = ic.format_table({"a": {"AUAC": 0.9, "FPR95": 0.2}, "b": {"AUAC": 0.8, "FPR95": 0.1}}, title="title",
                         marks=True, scale=100, fmt=".1f")
    assert uq.splitlines()[:2] == ["title", "AUAC higher is better; FPR95 lower is better"]
    assert "90.0*" in uq and "10.0*" in uq and uq.splitlines()[-1] == T.MARKS_NOTE
    descriptive = ic.format_table({"a": {"x": 0.5}}, title="mean uncertainty")
    assert descriptive.splitlines()[0] == "mean uncertainty" and "better" not in descriptive and "0.500" in descriptive
    quiet = ic.format_table({"a": {"ECE": 0.1}, "b": {"ECE": 0.2}}, marks=True, state_directions=False)
    assert "better" not in quiet and "0.100*" in quiet
    # one metric for every column (one column per OOD set), or the metric as a function of the label
    per_set = ic.format_table({"msp": {"fog": 0.7, "noise": 0.6}, "energy": {"fog": 0.8, "noise": 0.5}},
                              marks=True, base="AUROC")
    assert per_set.splitlines()[0] == "AUROC higher is better" and "0.800*" in per_set and "0.600*" in per_set
    prefixed = ic.format_table({"a": {"cost 1": 3.0}, "b": {"cost 1": 2.0}}, marks=True,
                               base=lambda c: c.split()[0], directions={"cost": False})
    assert prefixed.splitlines()[0] == "cost lower is better" and "2.000*" in prefixed
    # the posters' registered column labels print their root metric once
    from inferml_course.uncertainty.attribution import evaluation  # noqa: F401  (registers the labels)
    ua = ic.format_table({"a": {"MURR 2%": 0.5, "MURR 5%": 0.6, "NLL": 0.5}, "b": {"MURR 2%": 0.7, "MURR 5%": 0.1,
                                                                                 "NLL": 0.4}}, marks=True)
    assert ua.splitlines()[0] == "MURR higher is better; NLL lower is better"
    assert "0.700*" in ua and "0.600*" in ua and "0.400*" in ua
    grid = ic.format_table([{"set": "ood", "auroc": 0.75}], ["set", "auroc"], title="T", grid=True)
    assert grid.splitlines()[0] == "T" and " | " in grid and "0.750" in grid
    ranking = ev.format_ranking({"insertion_auc": {"a": 0.5, "b": 0.7}, "deletion_auc": {"a": 0.1, "b": 0.2}})
    head, *rows, note = ranking.splitlines()
    assert _columns(head) == ["method", "insertion_auc", "↑", "deletion_auc", "↓", "mean", "rank"]
    assert _columns(rows[0])[0] in ("a", "b") and "(" in rows[0] and note.startswith("↑ higher is better")
