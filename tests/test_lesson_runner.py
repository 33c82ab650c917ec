"""check_lesson (the tests' one execution of a lesson) on small notebooks: it passes a good lesson and
reports a failing cell, a checker that crashes on the student's empty answer, and a checker that passes it."""
from __future__ import annotations

import nbformat
import pytest

from inferml_course import course

SETUP = "from inferml_course.checks._common import fail, passed, require_answer"
CHECKER = ("def check_answer(answer):\n"
           "    require_answer(answer, 'answer')\n"
           "    if answer != 4:\n        fail('the answer is 2 + 2; count again')\n"
           "    return passed('right')\n")


def _lesson(tmp_path, solution="answer = 2 + 2", checker="check_answer(answer)", after="x = 1"):
    solution_cell = nbformat.v4.new_code_cell(f"# your answer: an int\n{solution}")
    solution_cell.metadata["tags"] = [course.SOLUTION_TAG]
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# A toy lesson"),
        nbformat.v4.new_code_cell(SETUP + "\n" + CHECKER.replace("check_answer", "_check")
                                  + "\nclass checks:\n    check_answer = staticmethod(_check)"),
        solution_cell,
        nbformat.v4.new_code_cell(f"checks.{checker}"),
        nbformat.v4.new_code_cell(after),
    ])
    path = tmp_path / "99_toy.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every case in one module-scoped fixture: each run starts a kernel (about 2 s)."""
    cases = {
        "good": {},
        "failing cell": {"after": "raise RuntimeError('boom')"},
        "wrong solution": {"solution": "answer = 5"},
        "checker crashes on ...": {"checker": "check_answer(answer + 0 if answer is not ... else answer.x)"},
    }
    out = {}
    for name, options in cases.items():
        folder = tmp_path_factory.mktemp(name.replace(" ", "_").replace(".", ""))
        out[name], _ = course.check_lesson(_lesson(folder, **options), timeout=60)
    return out


def test_a_good_lesson_passes(runs):
    assert runs["good"] == []


def test_a_failing_cell_is_reported_with_its_source(runs):
    assert len(runs["failing cell"]) == 1 and "boom" in runs["failing cell"][0]
    assert "raise RuntimeError" in runs["failing cell"][0]


def test_a_wrong_solution_fails_its_checker(runs):
    assert len(runs["wrong solution"]) == 1 and "count again" in runs["wrong solution"][0]


def test_a_checker_must_answer_the_empty_exercise_with_a_hint(runs):
    failures = runs["checker crashes on ..."]
    assert any("should say [TRY AGAIN]" in f and "AttributeError" in f for f in failures)
