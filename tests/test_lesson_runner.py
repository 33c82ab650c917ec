"""check_lesson (the tests' one execution of a lesson) on two small lessons: it passes a good one, and in a
bad one it reports a failing cell, a wrong solution and a checker that crashes on the student's empty answer
(two kernels in all, about 2 s each)."""
from __future__ import annotations

import nbformat
import pytest

from inferml_course import course

SETUP = """from inferml_course.checks._common import fail, passed, require_answer

def _check(answer):
    require_answer(answer, 'answer')
    if answer != 4:
        fail('the answer is 2 + 2; count again')
    return passed('right')

class checks:
    check_answer = staticmethod(_check)
"""


def _exercise(solution: str, checker: str):
    cell = nbformat.v4.new_code_cell(f"# your answer: an int\n{solution}")
    cell.metadata["tags"] = [course.SOLUTION_TAG]
    return [cell, nbformat.v4.new_code_cell(f"checks.{checker}")]


def _lesson(folder, exercises, after="x = 1"):
    cells = [nbformat.v4.new_markdown_cell("# A toy lesson"), nbformat.v4.new_code_cell(SETUP)]
    for solution, checker in exercises:
        cells += _exercise(solution, checker)
    path = folder / "99_toy.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells + [nbformat.v4.new_code_cell(after)]), path)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    good = _lesson(tmp_path_factory.mktemp("good"), [("answer = 2 + 2", "check_answer(answer)")])
    bad = _lesson(tmp_path_factory.mktemp("bad"), [
        ("answer = 5", "check_answer(answer)"),                                    # a wrong solution
        ("other = 4", "check_answer(other + 0 if other is not ... else other.x)"),  # crashes on the empty answer
    ], after="raise RuntimeError('boom')")
    return {name: course.check_lesson(path, timeout=60)[0] for name, path in (("good", good), ("bad", bad))}


def test_a_good_lesson_passes(runs):
    assert runs["good"] == []


def test_a_failing_cell_is_reported_with_its_source(runs):
    assert any("boom" in f and "raise RuntimeError" in f for f in runs["bad"])


def test_a_wrong_solution_fails_its_checker(runs):
    assert any("count again" in f for f in runs["bad"])


def test_a_checker_must_answer_the_empty_exercise_with_a_hint(runs):
    assert any("should say [TRY AGAIN]" in f and "AttributeError" in f for f in runs["bad"])
    assert len(runs["bad"]) == 3
