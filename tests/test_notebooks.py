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
