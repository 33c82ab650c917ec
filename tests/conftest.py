"""Shared test setup: the checkpoint cache, Hypothesis profiles and :func:`require` for oracle libraries.

Hypothesis profiles (``HYPOTHESIS_PROFILE`` picks one; ``pytest --hypothesis-profile=NAME`` too):

* ``ci`` (the default, so ``.ci/run`` and a plain ``pytest`` are deterministic): ``derandomize=True``,
  the examples are a function of the test alone, so a property test cannot pass on one run and
  fail on the next draw; no deadline, no example database, and ``print_blob=True`` so a failure
  prints the ``@reproduce_failure`` line to paste.
* ``dev``: random examples (a fresh seed each run), no deadline. To hunt with other draws, or to
  replay the seed a failure printed::

      HYPOTHESIS_PROFILE=dev pytest tests/test_intervene_membership.py --hypothesis-seed=N

  (``--hypothesis-seed`` has no effect under ``ci``: derandomize takes precedence over it.)
  Pin what such a run finds with an ``@example(...)`` on the test.

Exercise checkers return None and print ``[PASS] ...``; under the tests (strict mode, set by the root
``conftest.py``) a wrong answer raises ``AssertionError("[TRY AGAIN] ...")``. Assert a right answer with
``from conftest import passes`` and ``assert passes(checks.check_ece, answer, probs, labels)``.

Oracle libraries (captum, torchattacks, pytorch_grad_cam, torchmetrics, hypothesis, torchvision,
ipywidgets): import them with ``from conftest import require`` and ``require("captum.attr")``
instead of ``pytest.importorskip``. An oracle that fails to import skips its tests on a laptop but
is an error in CI (``CI`` set, or ``INFERML_REQUIRE_ORACLES=1``, which ``.ci/run`` exports), so a
broken install cannot turn the oracle comparisons into silent skips.
"""
import contextlib
import importlib
import io
import os

import pytest

# tests never train the full zoo on a cache miss unexpectedly: they use the shipped checkpoints
os.environ.setdefault("INFERML_CACHE", os.path.join(os.path.dirname(__file__), "..", ".pytest_inferml_cache"))

try:
    from hypothesis import HealthCheck, settings
except ModuleNotFoundError:  # the tests that need it say so through require("hypothesis") or their imports
    pass
else:
    settings.register_profile("ci", derandomize=True, deadline=None, database=None, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("dev", derandomize=False, deadline=None, print_blob=True)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def oracles_required() -> bool:
    """True in CI (``CI`` set to anything but ``""``/``0``/``false``/``no``) or with ``INFERML_REQUIRE_ORACLES=1``."""
    if os.environ.get("INFERML_REQUIRE_ORACLES", "").strip() == "1":
        return True
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(module: str):
    """Import and return ``module`` (an oracle library, e.g. ``"captum.attr"``).

    When it is not installed (``ModuleNotFoundError``): a skip, at module level too, unless
    :func:`oracles_required`, where it is a failure (a collection error at module level). A
    library that is installed but raises some other ``ImportError`` is always an error, as
    ``pytest.importorskip`` will make it from pytest 9.1.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if oracles_required():
            raise pytest.fail.Exception(
                f"oracle library {module!r} could not be imported ({exc}); in CI (CI / "
                f"INFERML_REQUIRE_ORACLES=1) that is an error, not a skip: pip install -e \".[test]\"",
                pytrace=False) from exc
        raise pytest.skip.Exception(f"could not import {module!r}: {exc}", allow_module_level=True) from exc


def forget_direction(name: str) -> None:
    """Remove a name a test registered in the direction registry (``_core.directions``), so the
    process-wide registry is the same before and after the test."""
    from inferml_course._core import directions

    directions._ENTRIES.pop(name, None)
    directions._BOOLS.pop(name, None)
    directions._DERIVED.pop(name, None)


def passes(check, *args, **kwargs) -> bool:
    """Whether the exercise checker ``check`` passes the answer in ``args``: it returns None after printing
    ``[PASS] ...`` (printed again here, for a test that reads it). A wrong answer raises
    ``AssertionError("[TRY AGAIN] ...")`` under the tests' strict mode."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = check(*args, **kwargs)
    print(out.getvalue(), end="")
    return result is None and out.getvalue().startswith("[PASS]")
