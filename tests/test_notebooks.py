"""Notebook hygiene: stored without outputs, kernel python3, numbered, importing the package."""
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_lessons():
    assert NOTEBOOKS, "notebooks/ holds the numbered lessons"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_hygiene(path):
    nb = json.loads(path.read_text())
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "strip outputs"
    sources = ["".join(c["source"]) for c in code]
    assert any("inferml_course" in s for s in sources)
    long_defs = [s for s in sources if s.lstrip().startswith(("def ", "class ")) and s.count("\n") > 15]
    assert not long_defs, "long definitions belong in the package"
    text = "".join("".join(c["source"]) for c in nb["cells"])
    assert "assert" in text, "a lesson asserts its quantitative claims"
    assert "inferml_course.checks" in text or "checks." in text, "a lesson has exercises with checkers"


def _headings(nb, level: str) -> list[str]:
    return [line for c in nb["cells"] if c["cell_type"] == "markdown"
            for line in "".join(c["source"]).splitlines() if line.startswith(level + " ")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_template(path):
    """One template: numbered sections ("## 1. ..."), then "## Summary"; exactly one "Try it live" section,
    which shows a widget; formulas in LaTeX (no partial, nabla, odot, approx, transpose, sum, integral,
    square-root, Greek-sigma-as-sum, square, cube, bar or subscript sign outside $...$)."""
    nb = json.loads(path.read_text())
    sections = _headings(nb, "##")
    assert sections[-1] == "## Summary", "a lesson ends with its summary"
    for number, heading in enumerate(sections[:-1], 1):
        assert re.match(rf"## {number}\. \S", heading), f"section {number} should read '## {number}. ...': {heading!r}"
    live = [h for h in sections if re.match(r"## \d+\. Try it live\b", h)]
    assert len(live) == 1, f"one 'Try it live' section, found {live}"
    cells = nb["cells"]
    start = next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and live[0] in "".join(c["source"]))
    end = next((i for i in range(start + 1, len(cells)) if cells[i]["cell_type"] == "markdown"
                and re.search(r"^## ", "".join(cells[i]["source"]), re.M)), len(cells))
    assert any(".widget" in "".join(c["source"]) for c in cells[start:end] if c["cell_type"] == "code"), \
        "the 'Try it live' section shows a widget"
    prose = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    outside_latex = re.sub(r"\$\$.*?\$\$|\$[^$]+\$", "", prose, flags=re.S)
    formula_signs = (r"[\u2202\u2207\u2299\u2248\u1d40\u2211\u222b\u221a"  # partial ... square root
                     r"\u03a3\u00b2\u00b3\u0304"  # a Greek capital sigma used as a sum, squares, cubes, bars
                     r"\u1d62-\u1d6a\u2080-\u209c]")  # subscripts
    plain = sorted(set(re.findall(formula_signs, outside_latex)))
    assert not plain, f"formulas are written in LaTeX ($...$): found {plain} outside it"



@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercises_follow_what_they_practise(path):
    """Exercises are placed one way: each right after the section it practises, as a markdown cell that
    starts with "**Exercise k.**" (k = 1, 2, ... in order) above its solution cell. No lesson collects them
    in an "Exercises" section."""
    nb = json.loads(path.read_text())
    assert not [h for h in _headings(nb, "##") if re.match(r"## \d+\. Exercises\b", h)], \
        "exercises follow the section they practise; no 'Exercises' section"
    cells, numbers = nb["cells"], []
    for i, cell in enumerate(cells):
        if "solution" not in cell.get("metadata", {}).get("tags", []):
            continue
        text = next("".join(cells[j]["source"]) for j in range(i - 1, -1, -1) if cells[j]["cell_type"] == "markdown")
        match = re.match(r"\*\*Exercise (\d+)\b", text.lstrip())
        assert match, f"cell {i}: the text above a solution starts with '**Exercise k.**': {text[:60]!r}"
        numbers.append(int(match.group(1)))
    assert numbers, "a lesson has exercises"
    assert numbers == list(range(1, len(numbers) + 1)), f"exercises numbered 1, 2, ... in order: {numbers}"


def _code_lines(source: str) -> int:
    """Lines of a cell's statements, not counting comments, blank lines, asserts and prints."""
    import ast
    lines = source.splitlines()
    counted = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assert) or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
                                            and getattr(node.value.func, "id", None) == "print"):
            continue
        counted.update(n for n in range(node.lineno, node.end_lineno + 1)
                       if lines[n - 1].strip() and not lines[n - 1].lstrip().startswith("#"))
    return len(counted)


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if not p.name.startswith("00_")], ids=lambda p: p.name)
def test_look_inside(path):
    """Every lesson after the welcome writes the core of at least one of its methods in plain torch, in a
    code cell that starts with "# look inside", keeps to about 15 lines (asserts, prints and comments not
    counted) and asserts that it equals the package."""
    nb = json.loads(path.read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    inside = [s for s in cells if s.lstrip().lower().startswith("# look inside")]
    assert inside, "a '# look inside' cell: the method's core in plain torch, checked against the package"
    for source in inside:
        assert "assert" in source, f"a look-inside cell asserts that it equals the package:\n{source[:200]}"
        assert _code_lines(source) <= 16, f"a look-inside cell keeps to about 15 lines:\n{source[:200]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_imports_in_the_setup_cell(path):
    """A lesson imports what it uses in its setup cell (the first code cell), so that a student who jumps to
    a section after running the setup has every name; only look-inside cells show their own imports
    (``torch.func``), as part of the mechanism."""
    import ast

    nb = json.loads(path.read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    for index, source in enumerate(code[1:], 1):
        if source.lstrip().lower().startswith("# look inside"):
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError:  # an IPython magic: no import statement to find
            continue
        imports = [ast.get_source_segment(source, node) for node in tree.body
                   if isinstance(node, (ast.Import, ast.ImportFrom))]
        assert not imports, f"code cell {index} imports {imports}; lesson imports belong in the setup cell"


STUDENT = sorted((Path(__file__).resolve().parents[1] / "student").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS + STUDENT, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_validates_against_its_declared_format(path):
    """JupyterLab logs "Notebook JSON is invalid" for a file that breaks its declared nbformat (cell ids in a
    4.4 file); `python -m inferml_course sync` writes 4.5 with an id on every cell."""
    import nbformat

    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5)
    ids = [cell.get("id") for cell in nb.cells]
    assert all(ids) and len(set(ids)) == len(ids)
