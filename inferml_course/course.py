"""Course tooling: the Colab setup block, slide metadata, student versions and the course book.

The repository address and the tested version live here and nowhere else; ``python -m
inferml_course sync`` rewrites every lesson's badge, setup block and slide metadata from them.

Command line (``python -m inferml_course --help``)::

    python -m inferml_course book [--out _book] [--lessons 00 02]   # execute lessons, render a static site
    python -m inferml_course student [--out student]                 # lessons without solutions
    python -m inferml_course sync [--lessons 03 07]                  # badges, setup blocks, slide metadata,
                                                                     # and the student versions in student/
    python -m inferml_course runtimes                                # execute every lesson, print its time
"""
from __future__ import annotations

import ast
import copy
import html
import hashlib
import json
import re
import textwrap
import time
from pathlib import Path

from . import __version__
from .checks import PASS, REPORT, STRICT_ENV, TRY_AGAIN
from .config import PACKAGE_DIR

#: GitHub ``owner/name`` of the course: the one place the address is written down.
REPOSITORY = "inferml-course/inferml-course"
#: The git ref the notebooks were tested with (a tag named after the package version).
TESTED_REF = f"v{__version__}"
NOTEBOOK_DIR = PACKAGE_DIR.parent / "notebooks"
#: The student versions of the lessons (written by ``sync``; committed, so that Colab can open them).
STUDENT_DIR = PACKAGE_DIR.parent / "student"
SOLUTION_TAG = "solution"
#: The comments of a solution cell that its exercise keeps: the answer's form and marked hints. Every
#: other comment is the solution's reasoning and is dropped from the student version.
HINT_PREFIXES = ("# your answer", "# hint")

_SETUP_START = "# Setup: on Colab, install the course package"
_SETUP_END = "ic.require("


def lesson_paths(notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered lessons ``NN_name.ipynb`` in order."""
    return sorted(p for p in Path(notebook_dir).glob("[0-9][0-9]_*.ipynb"))


def select_lessons(lessons=None, notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """The lesson files of ``lessons`` (numbers such as ``["00", "05"]``; None: all), in course order; an
    unknown number is a ValueError that lists the lessons (``book --lessons 00 99`` must not half-succeed)."""
    paths = lesson_paths(notebook_dir)
    if lessons is None:
        return paths
    if isinstance(lessons, str):
        lessons = [lessons]
    known = {p.name[:2]: p for p in paths}
    unknown = [str(n) for n in lessons if str(n) not in known]
    if unknown:
        raise ValueError(f"lessons: no lesson {', '.join(unknown)}; the lessons are {', '.join(known)}")
    return [p for p in paths if p.name[:2] in set(map(str, lessons))]


def colab_url(path: Path | str, folder: str = "notebooks") -> str:
    """The 'Open in Colab' address of a lesson (on the main branch); ``folder="student"``: its student version."""
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/main/{folder}/{Path(path).name}"


def colab_badge(path: Path | str, folder: str = "notebooks") -> str:
    """Markdown for the 'Open in Colab' badge of a lesson (``folder="student"``: of its student version)."""
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(path, folder)})"


def setup_block() -> str:
    """The first lines of every lesson's setup cell.

    On Colab it clones the repository (so the shipped checkpoints in ``data/`` come along) at
    :data:`TESTED_REF`, or at the default branch when that tag does not exist, installs it, and
    stops with a clear message when GitHub cannot be reached; re-running the cell reuses the clone.
    Everywhere it checks that the installed package is the version the lesson was tested with.
    Elsewhere than Colab it installs nothing.
    """
    url = f"https://github.com/{REPOSITORY}"
    return "\n".join([
        f"{_SETUP_START} at the version these lessons were tested with.",
        "import os, sys, subprocess",
        'if "google.colab" in sys.modules:',
        f'    here, url = "/content/inferml-course", "{url}"',
        '    clone = ["git", "clone", "-q", "--depth", "1"]',
        '    quiet = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}  # fail rather than ask for a password',
        f'    for ref in (["--branch", "{TESTED_REF}"], []):  # the tested release, else the default branch',
        '        if os.path.isdir(here) or subprocess.run(clone + ref + [url, here], env=quiet).returncode == 0:',
        '            break',
        '    else:',
        '        raise RuntimeError(f"Could not download the course from {url}: check that this Colab runtime "',
        '                           "has internet access, then run this cell again.")',
        '    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", here], check=True)',
        '    sys.path.insert(0, here)',
        "import inferml_course as ic",
        f'ic.require("{__version__}")  # the lesson and the package must match',
    ])


# --- look inside --------------------------------------------------------------------------------

def source_of(obj, docstring: bool = False) -> str:
    """The source code of a package function, class or method, headed by its file and first line.

    Decorators such as ``@guarded`` are looked through (:func:`inspect.unwrap`); ``docstring=False``
    leaves the docstring out, so that what remains is the method itself.
    """
    import inspect

    target = inspect.unwrap(obj)
    try:
        lines, start = inspect.getsourcelines(target)
        path = Path(inspect.getsourcefile(target)).resolve()
    except (TypeError, OSError):
        raise TypeError(f"show_source needs a Python function, class or method, got {type(obj).__name__} {obj!r}") \
            from None
    text = textwrap.dedent("".join(lines))
    if not docstring:
        tree = ast.parse(text)
        body = tree.body[0].body if tree.body and hasattr(tree.body[0], "body") else []
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str):
            doc = body[0]
            kept = text.splitlines(keepends=True)
            text = "".join(kept[:doc.lineno - 1] + kept[doc.end_lineno:])
    where = path.relative_to(PACKAGE_DIR.parent) if path.is_relative_to(PACKAGE_DIR.parent) else path
    return f"# {where}, line {start}\n{text}"


def show_source(obj, docstring: bool = False) -> None:
    """Show the source of a package function in the notebook (highlighted in Jupyter, plain text elsewhere),
    e.g. ``ic.show_source(explain.grad_cam)``; see :func:`source_of`."""
    text = source_of(obj, docstring)
    try:
        from IPython import get_ipython
        from IPython.display import Code, display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(Code(text, language="python"))
    else:
        print(text)


# --- notebook editing ---------------------------------------------------------------------------

def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _set_source(cell, text: str) -> None:
    cell["source"] = text.splitlines(keepends=True)  # nbformat's on-disk layout


def _first_code_cell(nb):
    return next(c for c in nb["cells"] if c["cell_type"] == "code")


def with_setup_block(source: str) -> str:
    """``source`` with its Colab lines replaced by :func:`setup_block`, every other line kept in order.

    The Colab lines are the marker comment, ``import os, sys, subprocess``, the ``if "google.colab"``
    block, ``import inferml_course as ic`` and the ``ic.require(...)`` line.
    """
    kept, in_colab_if = [], False
    for line in source.splitlines():
        if in_colab_if and (line.startswith((" ", "\t")) or not line.strip()):
            continue
        in_colab_if = line.startswith('if "google.colab" in sys.modules')
        if in_colab_if or line.startswith((_SETUP_START, _SETUP_END)) or line.strip() in (
                "import sys, subprocess", "import os, sys, subprocess", "import inferml_course as ic"):
            continue
        kept.append(line)
    rest = "\n".join(kept).strip("\n")
    return setup_block() + ("\n\n" + rest if rest else "")


def with_badge(source: str, path: Path | str, folder: str = "notebooks") -> str:
    """Markdown ``source`` (the title cell) with the lesson's Colab badge after its first line."""
    badge = colab_badge(path, folder)
    lines = [line for line in source.splitlines() if "colab-badge.svg" not in line]
    while len(lines) > 1 and not lines[1].strip() and (len(lines) < 3 or not lines[2].strip()):
        lines.pop(1)
    return "\n".join(lines[:1] + ["", badge] + lines[1:])


def _slide_type(cell, is_setup: bool) -> str:
    src = _source(cell).lstrip()
    if cell["cell_type"] == "markdown":
        if src.startswith("# ") or src.startswith("## "):
            return "slide"
        return "subslide" if src.startswith("### ") else "-"
    if is_setup or re.fullmatch(r"(#[^\n]*\n|\s)*(assert [^\n]*\n?)+", src + "\n"):
        return "skip"            # setup and assert-only cells run but are not shown
    if ".widget" in src or "interact(" in src:
        return "slide"           # widgets get a slide of their own
    if SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
        return "fragment"        # reveal the solution after the question
    return "-"


def add_slide_metadata(nb) -> None:
    """Set ``metadata.slideshow.slide_type`` on every cell (RISE / ``nbconvert --to slides``).

    Level-1 and level-2 headings start a slide, level-3 a sub-slide, widget cells get their own
    slide, solutions appear as fragments, setup and assert-only cells are skipped in the deck.
    """
    setup = _first_code_cell(nb)
    for cell in nb["cells"]:
        cell.setdefault("metadata", {})["slideshow"] = {"slide_type": _slide_type(cell, cell is setup)}


def with_cell_ids(nb) -> None:
    """Declare nbformat 4.5 and give every cell an id (a hash of its position and kind, so a resync keeps it):
    the form JupyterLab validates without "Notebook JSON is invalid"."""
    nb["nbformat"], nb["nbformat_minor"] = 4, max(5, int(nb.get("nbformat_minor", 0)))
    used = {c["id"] for c in nb["cells"] if "id" in c}
    for i, cell in enumerate(nb["cells"]):
        if "id" not in cell:
            k = 0
            while (new := hashlib.sha1(f"{i}-{cell['cell_type']}-{k}".encode()).hexdigest()[:8]) in used:
                k += 1
            cell["id"] = new
            used.add(new)


def sync_notebook(path: Path) -> bool:
    """Rewrite a lesson's badge, setup block and slide metadata in place; True if it changed."""
    path = Path(path)
    text = path.read_text()
    nb = json.loads(text)
    title = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    _set_source(title, with_badge(_source(title), path))
    setup = _first_code_cell(nb)
    _set_source(setup, with_setup_block(_source(setup)))
    add_slide_metadata(nb)
    with_cell_ids(nb)
    new = json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if new != text:
        path.write_text(new)
        return True
    return False


def _checker_answer_names(checker_source: str) -> list[str]:
    """Names in the first argument of the first ``checks.check_*(...)`` call of a cell."""
    try:
        tree = ast.parse(checker_source)
    except SyntaxError:
        return []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr.startswith("check_") and node.args):
            return [n.id for n in ast.walk(node.args[0]) if isinstance(n, ast.Name)]
    return []


def student_source(source: str, answers=None) -> str:
    """A solution cell turned into an exercise: its hint comments, and each answer name set to ``...``.

    Only comments that start with one of :data:`HINT_PREFIXES` (``# your answer: ...``, ``# hint: ...``)
    are kept; any other comment explains the solution and would give it away. ``answers`` are the
    names the checker reads (see :func:`student_version`); by default the last name the cell assigns.
    """
    comments = [line for line in source.splitlines() if line.lstrip().lower().startswith(HINT_PREFIXES)]
    assigned = []
    for node in ast.walk(ast.parse(source)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AnnAssign, ast.AugAssign)) else []
        assigned += [(n.lineno, n.id) for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    names = [name for _, name in sorted(assigned)]
    chosen = [n for n in (answers or []) if n in names] or names[-1:]
    body = [f"{name} = ...  # your answer" for name in dict.fromkeys(chosen)] or ["..."]
    return "\n".join(comments + body)


def student_version(nb, path: Path | str | None = None):
    """A copy of ``nb`` in which every cell tagged ``solution`` holds placeholders instead.

    The placeholders are the names that the next code cell's checker reads as its answer. With the
    lesson's ``path``, the title's Colab badge opens the student version (in :data:`STUDENT_DIR`).
    """
    nb = copy.deepcopy(nb)
    if path is not None:
        title = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
        _set_source(title, with_badge(_source(title), path, folder=STUDENT_DIR.name))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for i, cell in enumerate(code):
        tags = cell.get("metadata", {}).get("tags", [])
        if SOLUTION_TAG in tags:
            answers = _checker_answer_names(_source(code[i + 1])) if i + 1 < len(code) else []
            _set_source(cell, student_source(_source(cell), answers))
            cell["metadata"]["tags"] = [t for t in tags if t != SOLUTION_TAG] + ["exercise"]
            cell["outputs"], cell["execution_count"] = [], None
    return nb


def student_text(path: Path | str) -> str:
    """The student version of the lesson at ``path``, as the text of an ``.ipynb`` file."""
    nb = student_version(json.loads(Path(path).read_text()), path)
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def write_student_versions(out_dir: Path = STUDENT_DIR, notebook_dir: Path = NOTEBOOK_DIR,
                           lessons=None) -> list[Path]:
    """Write the student version of every lesson (or of ``lessons``, e.g. ``["03"]``) to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in select_lessons(lessons, notebook_dir):
        target = out_dir / path.name
        text = student_text(path)
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
        written.append(target)
    return written


# --- execution and the book ---------------------------------------------------------------------

def execute_lesson(path: Path, timeout: int = 600, progress: bool = True):
    """Execute a lesson with nbclient in its own folder; returns (notebook, seconds)."""
    import nbformat
    from nbclient import NotebookClient
    from tqdm.auto import tqdm

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    n_code = sum(c.cell_type == "code" for c in nb.cells)
    bar = tqdm(total=n_code, desc=path.stem, disable=not progress, leave=False)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}},
                            on_cell_executed=lambda **_: bar.update())
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        bar.close()
    return nb, time.perf_counter() - start


def _said(cell) -> str:
    """The text an executed cell showed: its streams, the plain-text form of its displays and results, its error."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") in ("display_data", "execute_result"):
            text = out.get("data", {}).get("text/plain", "")
            parts.append(text if isinstance(text, str) else "".join(text))
        elif out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
    return "\n".join(parts)


def check_lesson(path: Path | str, timeout: int = 600) -> tuple[list[str], float]:
    """Execute a lesson once, as the tests do, and play the student who has not answered yet on the way.

    One kernel (``python3``) in the lesson's folder; the cells run in order, with the checkers in strict mode
    (``INFERML_STRICT_CHECKS=1``: a wrong answer raises, so a wrong solution fails its checker cell). Before
    each exercise (a cell tagged ``solution``) its student version (the answer names set to ``...``, see
    :func:`student_version`) runs, then the exercise's checker as a student runs it (not strict): the cell
    must not raise, so "Run All" goes on, and must show ``[TRY AGAIN]`` with a hint (not a checker's own
    crash, not ``[PASS]``). Then the solution and the checker run, and the checker cell must print ``[PASS]``
    and echo no value (no ``Out:``). A failing cell does not stop the run. Returns the failures (each with
    the cell's index, source and traceback or output; empty when the lesson passes) and the seconds taken.

    With ``tests/test_student_path.py`` (no later cell reads a name a solution cell assigns, other than its
    checker) this shows that the student version runs top to bottom without executing it a second time.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    student = nbformat.reads(student_text(path), as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    failures = []

    def run(cell, index):
        for attempt in (1, 2):
            try:
                client.execute_cell(cell, index)
            except CellTimeoutError as error:
                # Seen intermittently on this machine: the kernel sits idle while the client still waits for
                # the reply to a widget cell (a lost message, not a slow cell). Execute the cell once more.
                if attempt == 2:
                    return error
            except CellExecutionError as error:
                return error
            else:
                return None

    def strict(on: bool):
        run(nbformat.v4.new_code_cell(f'__import__("os").environ[{STRICT_ENV!r}] = "{int(on)}"'), 0)

    start = time.perf_counter()
    with client.setup_kernel():
        strict(True)
        code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        checkers = set()
        for k, index in enumerate(code):
            cell = nb.cells[index]
            if SOLUTION_TAG in cell.metadata.get("tags", []) and k + 1 < len(code):
                empty = nbformat.v4.new_code_cell(student.cells[index].source)
                if (error := run(empty, index)) is not None:
                    failures.append(f"cell {index}, the student's empty exercise:\n{empty.source}\n{error}")
                checker = nbformat.v4.new_code_cell(nb.cells[code[k + 1]].source)
                strict(False)
                error = run(checker, code[k + 1])
                strict(True)
                said = _said(checker)
                hint = said.split(TRY_AGAIN, 1)[1].strip() if TRY_AGAIN in said else ""
                if error is not None or PASS in said or REPORT in said or len(hint) <= 20:
                    failures.append(f"cell {code[k + 1]}, the checker on the student's empty answer should show "
                                    "[TRY AGAIN] with a hint and let the run go on, got: "
                                    f"{error or said or 'no output'}")
                checkers.add(code[k + 1])
            if (error := run(cell, index)) is not None:
                failures.append(f"cell {index}:\n{cell.source}\n{error}")
            elif index in checkers:
                said = _said(cell)
                if PASS not in said or any(o.get("output_type") == "execute_result" for o in cell.outputs):
                    failures.append(f"cell {index}, the checker on the solution should print [PASS] and return "
                                    f"nothing, got: {said or 'no output'}")
    return failures, time.perf_counter() - start


def print_runtimes(lessons=None, out=print, notebook_dir: Path = NOTEBOOK_DIR) -> float:
    """Execute the lessons (numbers such as ``["00", "05"]``; default all) one after another and print
    a markdown table of their wall-clock seconds, with the total; returns the total."""
    out("| lesson | seconds |\n|---|---|")
    total = 0.0
    for path in select_lessons(lessons, notebook_dir):
        _, seconds = execute_lesson(path, progress=False)
        total += seconds
        out(f"| {path.stem} | {seconds:.0f} |")
    out(f"| total | {total:.0f} |")
    return total


def _lesson_title(nb, path: Path) -> str:
    for cell in nb.cells if hasattr(nb, "cells") else nb["cells"]:
        if cell["cell_type"] == "markdown":
            first = _source(cell).strip().splitlines()[0]
            return first.lstrip("# ").strip()
    return path.stem


_IMAGE_CHECK = """<script>
window.addEventListener("load", function () {
  // the page's own images (figures are embedded); external badges need a network
  var imgs = Array.prototype.slice.call(document.images).filter(function (i) {
    return !/^https?:/.test(i.getAttribute("src") || ""); });
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images-loaded", ok + "/" + imgs.length);
});
</script>"""


def _page(body_html: str, nav: str) -> str:
    """Insert the navigation bar and the image check into an nbconvert page."""
    body_html = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + nav, body_html, count=1)
    return body_html.replace("</body>", _IMAGE_CHECK + nav + "</body>", 1)


def _nav(entries, i: int | None) -> str:
    links = ['<a href="index.html">Course home</a>']
    if i is not None and i > 0:
        links.append(f'<a href="{entries[i - 1][0]}">&larr; {html.escape(entries[i - 1][1])}</a>')
    if i is not None and i + 1 < len(entries):
        links.append(f'<a href="{entries[i + 1][0]}">{html.escape(entries[i + 1][1])} &rarr;</a>')
    return ('<nav class="course-nav" style="padding:8px 16px;background:#f3f4f6;font:15px sans-serif">'
            + " &middot; ".join(links) + "</nav>")


def build_book(out_dir: Path, lessons=None, execute: bool = True, timeout: int = 600, progress: bool = True,
               notebook_dir: Path = NOTEBOOK_DIR) -> Path:
    """Execute the lessons and render a static HTML site; returns the path of ``index.html``.

    Args:
        lessons: lesson numbers such as ``["00", "02"]`` (default: all).
        execute: run each lesson first (with a progress bar); otherwise render the stored notebooks.
    """
    import nbformat
    from nbconvert import HTMLExporter
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = select_lessons(lessons, notebook_dir)
    if not paths:
        raise ValueError(f"lessons: none chosen; the lessons are {[p.name[:2] for p in lesson_paths(notebook_dir)]}")
    exporter = HTMLExporter(template_name="lab")
    rendered, rows = [], []
    for path in tqdm(paths, desc="course book", disable=not progress):
        if execute:
            nb, seconds = execute_lesson(path, timeout, progress)
        else:
            nb, seconds = nbformat.read(path, as_version=4), None
        rendered.append((path.stem + ".html", _lesson_title(nb, path), nb))
        rows.append((path, seconds))
    entries = [(name, title) for name, title, _ in rendered]
    for i, (name, title, nb) in enumerate(rendered):
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
        (out_dir / name).write_text(_page(body, _nav(entries, i)))
    items = "\n".join(
        f'<tr><td>{path.name[:2]}</td><td><a href="{name}">{html.escape(title)}</a></td>'
        f'<td>{"" if seconds is None else f"{seconds:.0f} s"}</td>'
        f'<td><a href="{colab_url(path)}">with solutions</a> · '
        f'<a href="{colab_url(path, STUDENT_DIR.name)}">student version</a></td></tr>'
        for (name, title, _), (path, seconds) in zip(rendered, rows))
    index = out_dir / "index.html"
    index.write_text(f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>Inferential machine learning</title>
<style>body{{font:16px sans-serif;max-width:860px;margin:2em auto}}td{{padding:4px 12px}}</style></head>
<body>{_nav(entries, None)}<h1>Inferential machine learning</h1>
<p>The executed lessons of the inferml-course (version {__version__}). Source and instructions:
<a href="https://github.com/{REPOSITORY}">github.com/{REPOSITORY}</a>.</p>
<table><tr><th>#</th><th>lesson</th><th>execution time</th><th>open in Colab</th></tr>
{items}
</table></body></html>
""")
    return index
