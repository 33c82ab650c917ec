"""check_lesson (the tests' one execution of a lesson) on two small lessons: it passes a good one, and in a
bad one it reports a failing cell, a wrong solution, a checker that crashes on the student's empty answer
(at the call or inside the checker) and a checker that never says [PASS] (two kernels in all, about 2 s
each)."""
from __future__ import annotations

import nbformat
import pytest

from inferml_course import course

SETUP = """from inferml_course.checks._common import checker, fail, passed

@checker(answer="answer")
def _check(answer):
    if answer != 4:
        fail('the answer is 2 + 2; count again')
    passed('right')

@checker(answer="answer")
def _check_pair(answer, other):
    if answer != other.real:      # crashes when other is the student's ...
        fail('not the same number')
    passed('the same')

@checker(answer="answer")
def _check_silent(answer):
    pass                          # never says [PASS]

class checks:
    check_answer = staticmethod(_check)
    check_pair = staticmethod(_check_pair)
    check_silent = staticmethod(_check_silent)
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
        ("pair = 4", "check_pair(4, pair)"),                                        # the checker crashes on it
        ("quiet = 4", "check_silent(quiet)"),                                       # no [PASS]
    ], after="raise RuntimeError('boom')")
    return {name: course.check_lesson(path, timeout=60)[0] for name, path in (("good", good), ("bad", bad))}


def test_a_good_lesson_passes(runs):
    assert runs["good"] == []


def test_a_failing_cell_is_reported_with_its_source(runs):
    assert any("boom" in f and "raise RuntimeError" in f for f in runs["bad"])


def test_a_wrong_solution_fails_its_checker(runs):
    assert any("count again" in f for f in runs["bad"])


def test_a_checker_must_answer_the_empty_exercise_with_a_hint_and_go_on(runs):
    assert any("should show [TRY AGAIN]" in f and "AttributeError" in f and "other.x" in f for f in runs["bad"])
    assert any("should show [TRY AGAIN]" in f and "stopped with AttributeError" in f for f in runs["bad"])


def test_a_checker_must_say_pass_to_the_solution(runs):
    assert any("should print [PASS]" in f for f in runs["bad"])
    assert len(runs["bad"]) == 5
