"""The student path: the student version of every lesson (``student/``, written by ``python -m
inferml_course sync``) runs top to bottom for a student who has not answered any exercise yet.

Like a student who presses "Run all" and reads past the red cells: every checker cell answers
``[TRY AGAIN]`` with a hint, and no other cell fails. That needs checkers that recompute what they
compare with (never a name made inside a solution cell), exercise cells that keep only hint comments,
and no later cell that reads an answer name (it is ``...`` in the student version). This file checks
those rules statically; the execution is part of the lesson's one run
(:func:`inferml_course.course.check_lesson`, through ``conftest.py``), which runs each exercise's empty
student version and its checker before the solution.
"""
from __future__ import annotations

import ast
import builtins
import json

import pytest

from inferml_course import course

LESSONS = course.lesson_paths()


def _code(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _is_checker(source: str) -> bool:
    return "checks.check_" in source


def _names(source: str, kind) -> set[str]:
    """Names ``source`` reads (``kind=ast.Load``) or binds (``ast.Store``, imports and definitions too)."""
    python = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    tree = ast.parse(python)
    found = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, kind)}
    if kind is ast.Store:
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found |= {(a.asname or a.name).split(".")[0] for a in node.names}
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                found.add(node.name)
    return found


def test_student_folder_is_up_to_date():
    """student/ holds exactly the student versions of today's lessons (run ``python -m inferml_course sync``)."""
    stored = sorted(p.name for p in course.STUDENT_DIR.glob("*.ipynb"))
    assert stored == [p.name for p in LESSONS], "run `python -m inferml_course sync`"
    for path in LESSONS:
        assert (course.STUDENT_DIR / path.name).read_text() == course.student_text(path), \
            f"student/{path.name} is stale: run `python -m inferml_course sync`"


def test_student_badge_opens_the_student_version():
    path = LESSONS[0]
    title = next(c for c in json.loads(course.student_text(path))["cells"] if c["cell_type"] == "markdown")
    text = course._source(title)
    assert course.colab_badge(path, "student") in text and course.colab_badge(path) not in text


def test_exercises_keep_only_hint_comments():
    solution = ("# your answer: an int\n# hint: count the merges\n# merges: 1+1=2, 2+2=4 (the reasoning)\n"
                "total = 2 + 4  # inline reasoning\n")
    student = course.student_source(solution, ["total"])
    assert student == "# your answer: an int\n# hint: count the merges\ntotal = ...  # your answer"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_checkers_read_nothing_made_by_a_solution(path):
    """Every name a checker cell reads (other than its answers) exists before the solution cell runs, and
    no later cell reads an answer name, or any name only the solution made, without assigning it first."""
    cells = _code(json.loads(path.read_text()))
    sources = [course._source(c) for c in cells]
    solution = [course.SOLUTION_TAG in c.get("metadata", {}).get("tags", []) for c in cells]
    for i, source in enumerate(sources):
        if not (_is_checker(source) and i and solution[i - 1]):
            continue
        answers = set(course._checker_answer_names(source))
        defined = set(dir(builtins)).union(*(_names(sources[j], ast.Store) for j in range(i) if not solution[j]))
        missing = _names(source, ast.Load) - defined - answers
        assert not missing, f"code cell {i}: the checker reads {sorted(missing)}, which only the solution makes"
        made = _names(sources[i - 1], ast.Store) - defined  # these exist only in the solution version
        for j in range(i + 1, len(sources)):
            reused = (_names(sources[j], ast.Load) & answers) - _names(sources[j], ast.Store)
            assert not reused, f"code cell {j} reads the answer {sorted(reused)} of the checker in cell {i}"
            if not solution[j]:
                orphans = _names(sources[j], ast.Load) & made - _names(sources[j], ast.Store)
                assert not orphans, f"code cell {j} reads {sorted(orphans)}, made only by the solution in cell {i - 1}"
                made -= _names(sources[j], ast.Store)
