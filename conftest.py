"""Every lesson is a test, executed once: ``pytest notebooks/`` (or one ``.ipynb``) runs each lesson with
:func:`inferml_course.course.check_lesson`: the cells in order in a fresh kernel and, at every exercise, the
student who has not answered yet (the checker, run as in a student's notebook, must show ``[TRY AGAIN]``
with a hint and raise nothing, so "Run All" goes on) before the solution (the checker, strict, must print
``[PASS]``). The report lists every failing cell with its source and traceback.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).parent / "notebooks"


def pytest_configure(config):
    """The exercise checkers run strict (``INFERML_STRICT_CHECKS``, see ``inferml_course/checks/_common.py``),
    here and in the lesson kernels: a wrong answer raises ``AssertionError("[TRY AGAIN] ...")`` instead of
    showing a box, and an unexpected exception propagates, so a wrong solution or a bug in a checker fails
    the tests.

    Under pytest-xdist (the default, ``-n auto``) every worker and the lesson kernels it starts use one
    thread: two workers that each spread torch over every core slow each other down (measured: four
    lessons on 2 cores, 104 s with the default threads, 73 s with one thread per worker)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        os.environ["MKL_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)
    os.environ.setdefault("INFERML_STRICT_CHECKS", "1")


def pytest_collect_file(file_path: Path, parent):
    if file_path.suffix == ".ipynb" and file_path.parent == NOTEBOOKS:
        return LessonFile.from_parent(parent, path=file_path)
    return None


class LessonFile(pytest.File):
    def collect(self):
        yield LessonRun.from_parent(self, name="run")


class LessonFailure(Exception):
    pass


class LessonRun(pytest.Item):
    """One execution of a lesson, with the student's unanswered exercises checked on the way."""

    def runtest(self):
        from inferml_course import course

        failures, _ = course.check_lesson(self.path, timeout=180)  # no lesson cell needs a tenth of that
        if failures:
            raise LessonFailure(f"{len(failures)} failing cell(s) in {self.path.name}:\n\n" + "\n\n".join(failures))

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, LessonFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"lesson {self.path.name}"
