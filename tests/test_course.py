"""Teaching tooling: Colab setup blocks and badges, slides, student versions, the course book."""
import inspect
import json
import shutil
import subprocess
import sys

import pytest

from inferml_course import checks, course

LESSONS = course.lesson_paths()


def _nb(path):
    return json.loads(path.read_text())


def _code(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_has_badge_and_canonical_setup_block(path):
    nb = _nb(path)
    title = "".join(nb["cells"][0]["source"])
    assert title.startswith("# ") and course.colab_badge(path) in title
    setup = "".join(_code(nb)[0]["source"])
    assert setup.startswith(course.setup_block()), "run `python -m inferml_course sync`"
    assert course.REPOSITORY in setup and course.TESTED_REF in setup


def test_setup_block_installs_only_on_colab(tmp_path):
    # executed here (not on Colab) the block installs nothing and passes the version check
    code = course.setup_block() + "\nprint('ok', ic.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert out.stdout.startswith("ok") and not (tmp_path / "content").exists()


_FAKE_COLAB = """
import json, os, subprocess, sys, types
sys.modules["google.colab"] = types.ModuleType("google.colab")
calls = []
def fake_run(cmd, **kw):
    calls.append({"cmd": cmd, "prompt": kw.get("env", {}).get("GIT_TERMINAL_PROMPT")})
    failing = {SCENARIO!r}
    return types.SimpleNamespace(returncode=128 if cmd[0] == "git" and ("--branch" in cmd or failing == "all")
                                 and failing != "none" else 0)
subprocess.run = fake_run
os.path.isdir = lambda path: {SCENARIO!r} == "cloned" and path == "/content/inferml-course"
"""


@pytest.mark.parametrize("scenario, expected", [
    ("none", ["git --branch", "pip"]),                 # the tested tag exists
    ("tag", ["git --branch", "git", "pip"]),           # no tag: the default branch
    ("cloned", ["pip"]),                               # the cell runs again: reuse the clone
    ("all", None),                                     # no network: a clear error
])
def test_setup_block_on_a_simulated_colab(tmp_path, scenario, expected):
    code = (_FAKE_COLAB.replace("{SCENARIO!r}", repr(scenario)) + course.setup_block()
            + "\nprint(json.dumps(calls))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    if expected is None:
        assert out.returncode != 0 and "internet access" in out.stderr
        return
    assert out.returncode == 0, out.stderr
    calls = json.loads(out.stdout.strip().splitlines()[-1])
    kinds = [c["cmd"][0] + (" --branch" if "--branch" in c["cmd"] else "") if c["cmd"][0] == "git" else "pip"
             for c in calls]
    assert kinds == expected
    assert all(c["prompt"] == "0" for c in calls if c["cmd"][0] == "git")
    if "git --branch" in kinds:
        assert course.TESTED_REF in calls[0]["cmd"] and f"https://github.com/{course.REPOSITORY}" in calls[0]["cmd"]


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_slide_metadata(path):
    nb = _nb(path)
    types = [c.get("metadata", {}).get("slideshow", {}).get("slide_type") for c in nb["cells"]]
    assert None not in types, "run `python -m inferml_course sync`"
    assert types[0] == "slide"
    setup = next(c for c in nb["cells"] if c["cell_type"] == "code")  # imports the widget classes; skipped
    assert types[nb["cells"].index(setup)] == "skip"
    for cell, kind in zip(nb["cells"], types):
        if cell["cell_type"] == "code" and cell is not setup and ".widget" in "".join(cell["source"]):
            assert kind == "slide", "widget cells get a slide of their own"


def test_nbconvert_slides(tmp_path):
    path = LESSONS[0]
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "slides", str(path), "--output-dir",
                    str(tmp_path)], check=True, capture_output=True)
    html = next(tmp_path.glob("*.slides.html")).read_text()
    assert html.count("<section") >= 10


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_student_version_strips_solutions_keeps_checkers(path):
    nb = _nb(path)
    solutions = [c for c in _code(nb) if course.SOLUTION_TAG in c.get("metadata", {}).get("tags", [])]
    assert len(solutions) >= 2, "each lesson has at least two exercises"
    student = course.student_version(nb)
    cells = _code(student)
    assert not any(course.SOLUTION_TAG in c["metadata"].get("tags", []) for c in cells)
    exercises = [i for i, c in enumerate(cells) if "exercise" in c["metadata"].get("tags", [])]
    assert len(exercises) == len(solutions)
    for i in exercises:
        src = "".join(cells[i]["source"])
        placeholders = [line.split("=")[0].strip() for line in src.splitlines() if line.endswith("= ...  # your answer")]
        assert placeholders, src
        checker = "".join(cells[i + 1]["source"])
        assert "checks.check_" in checker, "a checker cell follows each exercise"
        assert all(name in checker for name in placeholders), "the checker reads the answer"


def test_write_student_versions(tmp_path):
    written = course.write_student_versions(tmp_path)
    assert [p.name for p in written] == [p.name for p in LESSONS]
    assert "exercise" in written[0].read_text()


@pytest.mark.parametrize("name", checks.__all__)
def test_every_checker_fails_on_an_empty_answer(name):
    fn = getattr(checks, name)
    params = list(inspect.signature(fn).parameters.values())
    args = [...] + [None for p in params[1:] if p.default is inspect.Parameter.empty]
    with pytest.raises(AssertionError, match=r"TRY AGAIN"):
        fn(*args)


def test_book_renders_a_lesson_that_loads_in_chromium(tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium (.ci/run installs Debian's chromium)")
    # a small lesson with five figures: the real lessons are executed once, by their own test (conftest.py)
    import nbformat

    lessons = tmp_path / "lessons"
    lessons.mkdir()
    figures = ("import matplotlib\nmatplotlib.use('agg')\nimport matplotlib.pyplot as plt\n%matplotlib inline\n"
               "for k in range(5):\n    plt.figure(figsize=(2, 2)); plt.plot([0, k]); plt.show()")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 00 · A small lesson"),
                                         nbformat.v4.new_code_cell(figures), nbformat.v4.new_code_cell("print(6 * 7)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, lessons / "00_small.ipynb")
    out = tmp_path / "book"
    index = course.build_book(out, lessons=["00"], progress=False, notebook_dir=lessons)
    page = out / "00_small.html"
    assert page.is_file() and "00_small" in index.read_text()
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120).stdout
    assert 'class="course-nav"' in dom
    loaded = dom.split('data-images-loaded="')[1].split('"')[0]
    ok, total = map(int, loaded.split("/"))
    assert total >= 5 and ok == total, f"images loaded: {loaded}"
    assert "jp-OutputArea-output" in dom
    assert "Traceback (most recent call last)" not in dom, "a cell shows an error"


def test_runtimes_table(tmp_path):
    import nbformat

    for name in ("00_a.ipynb", "01_b.ipynb"):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1 + 1")])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, tmp_path / name)
    lines = []
    total = course.print_runtimes(["01"], out=lines.append, notebook_dir=tmp_path)
    assert lines[:2] == ["| lesson | seconds |\n|---|---|", f"| 01_b | {total:.0f} |"]
    assert lines[-1] == f"| total | {total:.0f} |" and len(lines) == 3


def test_show_source_prints_a_package_function_without_its_docstring(capsys):
    import inferml_course as ic
    from inferml_course import explain

    ic.show_source(explain.saliency)  # outside IPython: plain text
    text = capsys.readouterr().out
    assert text.startswith("# inferml_course/explain/gradients.py, line ")
    assert "def saliency(" in text and "_single_pass(" in text
    assert "Vanilla gradient" not in text, "the docstring is left out by default"
    assert "Vanilla gradient" in course.source_of(explain.saliency, docstring=True)
    assert "@guarded()" in text, "the decorator is shown: the mode guard is part of the method"
    with pytest.raises(TypeError, match="show_source needs a Python function"):
        course.source_of(len)
