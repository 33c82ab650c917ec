import re
import subprocess
import sys
import tomllib
from pathlib import Path

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


def test_import_is_light():
    code = ("import sys, torch; before = set(sys.modules); import inferml_course; "
            "heavy = [m for m in ('matplotlib', 'sklearn', 'skimage', 'ipywidgets', 'torchvision') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
