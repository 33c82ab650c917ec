"""The student path: the student version of every lesson (``student/``, written by ``python -m
inferml_course sync``) runs top to bottom for a student who has not answered any exercise yet.

Like a student who presses "Run All": every checker cell shows ``[TRY AGAIN]`` with a hint and raises
nothing, and no other cell fails, so the run reaches the last cell. That needs checkers that recompute
what they compare with (never a name made inside a solution cell), exercise cells that keep only hint
comments, and no later cell that reads a name a solution cell assigns (an answer is ``...`` in the student
version, every other name of the solution does not exist). This file checks those rules statically; the
execution is part of the lesson's one run (:func:`inferml_course.course.check_lesson`, through
``conftest.py``), which runs each exercise's empty student version and its checker, not strict, before
the solution, and requires that the checker cell raises nothing.
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


class _Flow:
    """One cell's names in execution order: ``reads`` holds each name the cell reads before it binds it
    (a name a function or class body reads counts when it is defined), ``bound`` each name it binds at
    module level (assignments, loop and ``with`` targets, imports, definitions), ``filled`` each name
    whose object it changes through an attribute or an item it assigns (``d[k] = v``, ``m.x = v``).
    Names bound by a comprehension, a lambda or a function body stay local to it."""

    def __init__(self, source: str):
        self.reads, self.bound, self.filled = set(), set(), set()
        python = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
        self.body(ast.parse(python).body)

    def load(self, name, local=frozenset()):
        if name not in local and name not in self.bound:
            self.reads.add(name)

    def expr(self, node, local=frozenset()):
        if node is None:
            return
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.load(node.id, local)
        elif isinstance(node, ast.Lambda):
            for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
                self.expr(default, local)
            self.expr(node.body, local | _arguments(node.args))
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            inner = set(local)
            for generator in node.generators:
                self.expr(generator.iter, frozenset(inner))
                inner |= {n.id for n in ast.walk(generator.target) if isinstance(n, ast.Name)}
                for condition in generator.ifs:
                    self.expr(condition, frozenset(inner))
            for part in ([node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]):
                self.expr(part, frozenset(inner))
        elif isinstance(node, ast.NamedExpr):
            self.expr(node.value, local)
            self.bound.add(node.target.id)
        else:
            for child in ast.iter_child_nodes(node):
                self.expr(child, local)

    def target(self, node):
        if isinstance(node, ast.Name):
            self.bound.add(node.id)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for item in node.elts:
                self.target(item)
        elif isinstance(node, ast.Starred):
            self.target(node.value)
        else:  # an attribute or an item: reads the object, then changes it
            self.expr(node)
            root = node
            while isinstance(root, (ast.Attribute, ast.Subscript)):
                root = root.value
            if isinstance(root, ast.Name) and root.id not in self.bound:
                self.filled.add(root.id)

    def body(self, statements):
        for node in statements:
            self.statement(node)

    def statement(self, node):
        if isinstance(node, ast.Assign):
            self.expr(node.value)
            for target in node.targets:
                self.target(target)
        elif isinstance(node, ast.AugAssign):
            self.expr(node.value)
            if isinstance(node.target, ast.Name):
                self.load(node.target.id)
            self.target(node.target)
        elif isinstance(node, ast.AnnAssign):
            self.expr(node.annotation)
            if node.value is not None:
                self.expr(node.value)
                self.target(node.target)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self.expr(node.iter)
            self.target(node.target)
            self.body(node.body + node.orelse)
        elif isinstance(node, (ast.While, ast.If)):
            self.expr(node.test)
            self.body(node.body + node.orelse)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                self.expr(item.context_expr)
                if item.optional_vars is not None:
                    self.target(item.optional_vars)
            self.body(node.body)
        elif isinstance(node, ast.Try):
            self.body(node.body)
            for handler in node.handlers:
                self.expr(handler.type)
                if handler.name:
                    self.bound.add(handler.name)
                self.body(handler.body)
            self.body(node.orelse + node.finalbody)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for child in node.decorator_list + getattr(node, "bases", []) + [k.value for k in getattr(
                    node, "keywords", [])]:
                self.expr(child)
            if not isinstance(node, ast.ClassDef):
                for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
                    self.expr(default)
            inner = _Flow("")
            inner.bound |= _arguments(node.args) if not isinstance(node, ast.ClassDef) else set()
            inner.bound |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            inner.body(node.body)
            for name in inner.reads:
                self.load(name)
            self.bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            self.bound |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"}
        else:
            self.expr(node)


def _arguments(args: ast.arguments) -> set[str]:
    every = args.posonlyargs + args.args + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a]
    return {a.arg for a in every}


def solution_readers(path) -> list[str]:
    """Where the student version of a lesson needs a name that only a solution cell makes: for each cell
    tagged ``solution``, the names it assigns (or changes through an item or attribute); its checker (the
    next code cell) may read only the answers the student version keeps; no later cell of the student
    version may read any of them before assigning it again. One line per finding, cells numbered as in
    the notebook (as :func:`inferml_course.course.check_lesson` reports them)."""
    nb, student = json.loads(path.read_text()), json.loads(course.student_text(path))
    index = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]
    cells, exercises = _code(nb), _code(student)
    found = []
    for k, cell in enumerate(cells):
        if course.SOLUTION_TAG not in cell.get("metadata", {}).get("tags", []) or k + 1 >= len(cells):
            continue
        solution = _Flow(course._source(cell))
        if solution.filled:
            found.append(f"cell {index[k]} (a solution) changes {sorted(solution.filled)}, made before it")
        made = solution.bound | solution.filled
        kept = _Flow(course._source(exercises[k])).bound
        extra = _Flow(course._source(cells[k + 1])).reads & (made - kept)
        if extra:
            found.append(f"cell {index[k + 1]} (the checker of cell {index[k]}) reads {sorted(extra)}, which the "
                         "student version does not assign")
        live = set(made)
        for j in range(k + 2, len(cells)):
            later = _Flow(course._source(exercises[j]))
            if later.reads & live:
                found.append(f"cell {index[j]} reads {sorted(later.reads & live)}, assigned by the solution in "
                             f"cell {index[k]}")
            live -= later.bound
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


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_no_later_cell_reads_a_solution(path):
    """A student's "Run All" reaches the last cell. The lesson's one run (``conftest.py``) shows that each
    checker, run on the empty student answer as a student runs it, raises nothing; this test shows that no
    later cell needs what the solution cell made: a name it assigns (or an object it changes through an
    item or attribute) is read by no later code cell of the student version but its checker, and the
    checker reads only the answers the student version keeps (``...``). Together they prove the student
    version runs to the end without executing every student notebook a second time, which the test budget
    (60 s per lesson, 5 minutes for the course) does not allow. Not seen: a solution that changes an
    object through a method call (``model.eval()``, ``items.append(x)``)."""
    found = solution_readers(path)
    assert not found, "a later cell needs a solution:\n" + "\n".join(found)


def test_solution_readers_follow_the_order_of_execution(tmp_path):
    import nbformat

    cells = [nbformat.v4.new_markdown_cell("# A toy lesson"),
             nbformat.v4.new_code_cell("from inferml_course import checks\nd = {}")]
    for solution, checker in (("total = 2 + 2\nhelper = [total]\nd['k'] = 1", "checks.check_answer(total)"),
                              ("answer = 3\nextra = 1", "checks.check_answer(answer, helper, extra)")):
        cells += [nbformat.v4.new_code_cell(solution), nbformat.v4.new_code_cell(checker)]
        cells[-2].metadata["tags"] = [course.SOLUTION_TAG]
    cells += [nbformat.v4.new_code_cell(source) for source in (
        "print([total for total in range(3)], (lambda helper: helper)(1))",   # local names: no read
        "total = 1\nprint(total)",                                            # assigned again first
        "def f():\n    return helper\n",                                     # read when f is defined
        "for answer in range(2):\n    print(answer)",                        # the loop assigns it first
        "print(d, extra)")]
    path = tmp_path / "99_toy.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    assert solution_readers(path) == [
        "cell 2 (a solution) changes ['d'], made before it",
        "cell 5 reads ['helper'], assigned by the solution in cell 2",
        "cell 8 reads ['helper'], assigned by the solution in cell 2",
        "cell 10 reads ['d'], assigned by the solution in cell 2",
        "cell 5 (the checker of cell 4) reads ['extra'], which the student version does not assign",
        "cell 10 reads ['extra'], assigned by the solution in cell 4",
    ]
