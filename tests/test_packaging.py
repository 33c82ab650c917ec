import ast
import re
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (requires-python's floor): the test extra installs tomli there
    import tomli as tomllib

import pytest

import inferml_course

ROOT = Path(__file__).resolve().parents[1]


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _normalise(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    """environment.yml stays in step by construction: its pip section installs this package with
    its extras, and lists nothing by hand that pyproject.toml already names."""
    text = (ROOT / "environment.yml").read_text()
    pip_section = text.split("- pip:")[1]
    listed = [_normalise(line.strip()[2:]) for line in pip_section.splitlines() if line.strip().startswith("- ")]
    assert listed == ["-e.[lab,test]"]
    extras = _pyproject()["project"]["optional-dependencies"]
    assert {"lab", "test"} <= set(extras)
    minimum = _pyproject()["project"]["requires-python"].removeprefix(">=")
    assert f"python>={minimum}" in text


def test_no_upper_pins_that_fight_colab():
    for req in _pyproject()["project"]["dependencies"]:
        assert "<" not in req and "==" not in req, req


def test_versions_agree():
    assert _pyproject()["project"]["version"] == inferml_course.__version__
    inferml_course.require(inferml_course.__version__)
    with pytest.raises(RuntimeError, match="pip install"):
        inferml_course.require("0.0.0")


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = 'pip install -e ".[test]" && pytest'
    assert command in readme and 'pip install -e ".[lab]" && jupyter lab notebooks/' in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in ci and command in ci
    # an oracle library that fails to import fails CI instead of skipping (conftest.require)
    export = "export INFERML_REQUIRE_ORACLES=1"
    assert export in ci and ci.index(export) < ci.index(command)


def test_import_is_light():
    code = ("import sys, torch; before = set(sys.modules); import inferml_course; "
            "heavy = [m for m in ('matplotlib', 'sklearn', 'skimage', 'ipywidgets', 'torchvision') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _floor(spec: str, name: str) -> tuple[int, ...]:
    match = re.fullmatch(rf"{name}\s*>=\s*([0-9]+(?:\.[0-9]+)*)", spec.strip())
    assert match, f"expected {name}>=X.Y, got {spec!r}"
    return tuple(int(part) for part in match.group(1).split("."))


def test_setuptools_floor_knows_pep_639():
    """``license = "MIT"`` (an SPDX string) and ``license-files`` are PEP 639: setuptools 77+."""
    project = _pyproject()["project"]
    assert isinstance(project["license"], str) and "license-files" in project
    (setuptools,) = [r for r in _pyproject()["build-system"]["requires"] if r.startswith("setuptools")]
    assert _floor(setuptools, "setuptools") >= (77,)


# standard-library modules newer than a Python we might claim: name -> first version that has it
_NEW_STDLIB = {"tomllib": (3, 11)}


def _unguarded_imports(node, guarded=False):
    """(module, node) for every import, except those in a ``try`` that catches ImportError."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if not guarded:
                yield alias.name, node
        return
    if isinstance(node, ast.ImportFrom):
        if not guarded and node.level == 0:
            yield node.module, node
        return
    if isinstance(node, ast.Try):
        caught = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
        catches = bool(caught & {"ImportError", "ModuleNotFoundError"}) or any(h.type is None for h in node.handlers)
        for child in node.body:
            yield from _unguarded_imports(child, guarded or catches)
        for child in [*node.handlers, *node.orelse, *node.finalbody]:
            yield from _unguarded_imports(child, guarded)
        return
    for child in ast.iter_child_nodes(node):
        yield from _unguarded_imports(child, guarded)


def test_requires_python_floor_runs_every_test_module():
    """Every test module parses and imports on requires-python's floor: no newer syntax, no newer
    standard-library module unless guarded by a fallback (tomllib -> tomli, which the test extra
    then installs below 3.11)."""
    floor = _floor(_pyproject()["project"]["requires-python"], "")[:2]
    assert floor >= (3, 10)
    for path in sorted((ROOT / "tests").glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path), feature_version=floor)
        for module, node in _unguarded_imports(tree):
            since = _NEW_STDLIB.get(module.split(".")[0])
            assert since is None or since <= floor, (
                f"{path.name}:{node.lineno} imports {module} (Python {since}+) unguarded, "
                f"but requires-python allows {floor}")
    if floor < (3, 11):
        test_extra = [_normalise(r).replace('"', "'") for r in _pyproject()["project"]["optional-dependencies"]["test"]]
        assert any(r.startswith("tomli") and "python-version<'3.11'" in r for r in test_extra), test_extra


def test_require_fails_in_ci_and_skips_elsewhere(monkeypatch):
    from conftest import require

    missing = "inferml_course_no_such_oracle"
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("INFERML_REQUIRE_ORACLES", raising=False)
    assert require("math") is sys.modules["math"]
    with pytest.raises(pytest.skip.Exception, match=missing):
        require(missing)
    for name, value in (("CI", "false"), ("CI", "0"), ("INFERML_REQUIRE_ORACLES", "0")):
        monkeypatch.setenv(name, value)
        with pytest.raises(pytest.skip.Exception):
            require(missing)
        monkeypatch.delenv(name)
    for name, value in (("CI", "true"), ("CI", "1"), ("INFERML_REQUIRE_ORACLES", "1")):
        monkeypatch.setenv(name, value)
        with pytest.raises(pytest.fail.Exception, match="not a skip"):
            require(missing)
        monkeypatch.delenv(name)
