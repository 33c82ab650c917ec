"""A lesson's explorer in a real browser: Voilà serves it, Debian's Chromium (driven by Playwright)
changes its controls, and the figure must redraw with the new state.

The unit tests call the widgets' ``draw`` methods directly; this one checks the part they cannot:
that the ipywidgets front end (ipywidgets 8 here, Voilà's widget manager) sends a control change
to the kernel, that the explorer's callback redraws into its ``Output``, and that the browser shows
exactly one figure, the one for the new state. Each browser figure is compared with the PNG the
explorer's own ``draw`` gives for the expected state, rendered here the way IPython renders a
figure for ``display`` (``print_figure(fig, "png", bbox_inches="tight")``).

Nothing is downloaded: Playwright launches the installed Chromium (``executable_path``) and every
request that is not for the local Voilà server is aborted. Without Chromium the test is skipped
(``.ci/run`` installs Debian's ``chromium``); a missing ``playwright`` or ``voila`` package is a
skip on a laptop and an error in CI (``conftest.require``).
"""
import base64
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import require

sync_api = require("playwright.sync_api")
require("voila")

TIMEOUT_MS = 120_000  # to load the page: kernel start, torch import and the first draw on 2 busy cores
REDRAW_MS = 30_000  # a redraw with the kernel warm takes well under a second
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
N_SIGNS, SEED = 16, 0
TOLERANCE = 2e-4  # mean absolute pixel difference (in [0, 1]) allowed between the browser's PNG and ours

NOTEBOOK_SOURCE = f"""\
from inferml_course import models
from inferml_course.datasets.signs import generate_signs
from inferml_course.widgets import CorruptionExplorer

# lesson 00's explorer, on a few signs (generating the whole test split would take longer than the test)
explorer = CorruptionExplorer(models.load_model("signs_cnn", "cpu"), generate_signs({N_SIGNS}, seed={SEED}))
explorer.widget
"""

IMAGE = ".widget-output img"
HANDLE = ".noUi-handle, .ui-slider-handle"  # ipywidgets 8 (noUiSlider), ipywidgets 7 (jQuery UI)


@pytest.fixture
def chromium():
    """The installed Chromium (Debian's ``chromium`` in CI), else a skip before any server starts."""
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        pytest.skip("no Chromium (.ci/run installs Debian's chromium)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def voila_url(tmp_path, chromium):
    """Serve a one-cell notebook that displays lesson 00's CorruptionExplorer; yield its URL."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NOTEBOOK_SOURCE)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "explorer.ipynb")
    log_path = tmp_path / "voila.log"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "PYTHONUNBUFFERED": "1"}
    env.pop("MPLBACKEND", None)  # the kernel's own inline backend, as in a lesson (Agg would show no figure)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "voila", "explorer.ipynb", "--no-browser", f"--port={_free_port()}",
             "--Voila.ip=127.0.0.1", "--show_tracebacks=True"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            found = re.search(r"Voil\S* is running at:\s*(http://\S+)", log_path.read_text())
            if found:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Voilà did not start (exit code {proc.poll()}):\n{log_path.read_text()}")
            time.sleep(0.2)
        yield found.group(1)
    finally:
        proc.terminate()  # SIGTERM: Voilà stops its loop and shuts its kernels down
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: Voilà and the kernel it started
            proc.wait(timeout=10)
        print(log_path.read_text())  # shown by pytest only when the test fails


def _expected_pngs(states):
    """PNG pixels of the explorer's figure for each (corruption, severity, index), rendered here."""
    import matplotlib
    import matplotlib.image
    import matplotlib.pyplot as plt
    from IPython.core.pylabtools import print_figure

    from inferml_course import models
    from inferml_course.datasets.signs import generate_signs
    from inferml_course.widgets import CorruptionExplorer

    explorer = CorruptionExplorer(models.load_model("signs_cnn", "cpu"), generate_signs(N_SIGNS, seed=SEED))
    defaults = {k: v for k, v in matplotlib.rc_params().items() if k != "backend"}
    pngs = {}
    with matplotlib.rc_context(defaults):  # the fresh kernel's settings, whatever other tests changed here
        for state in states:
            fig = explorer.draw(*state)
            pngs[state] = matplotlib.image.imread(io.BytesIO(print_figure(fig, "png", bbox_inches="tight")))
            plt.close(fig)
    return pngs


def _pixels(src: str):
    import matplotlib.image

    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:80]
    return matplotlib.image.imread(io.BytesIO(base64.b64decode(src[len(prefix):])))


def test_corruption_explorer_redraws_in_chromium(chromium, voila_url):
    import numpy as np

    states = [("none", 3, 0), ("fog", 3, 0), ("fog", 4, 0), ("fog", 4, 1)]
    expected = {}  # state -> the PNG pixels the explorer's draw() gives for it, rendered here

    def distance(seen, state):  # mean absolute pixel difference to the figure for `state` (inf: other size)
        want = expected[state]
        return float(np.abs(seen - want).mean()) if seen.shape == want.shape else float("inf")

    def check_shows(state, src):
        seen = _pixels(src)
        away = {s: round(distance(seen, s), 5) for s in states}
        assert away[state] < TOLERANCE, f"the browser's figure is not the explorer's figure for {state}: {away}"

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            local = voila_url.split("/")[2]
            context.route("**/*", lambda route: route.continue_() if route.request.url.split("/")[2] == local
                          else route.abort())  # no download, not even the template's CDN icons
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            # Voilà streams the page while its kernel runs the notebook: draw our figures meanwhile
            page.goto(voila_url, timeout=TIMEOUT_MS, wait_until="commit")
            expected.update(_expected_pngs(states))
            for a in states:  # the states are told apart by their figures (fog 3 vs 4: 0.003)
                assert all(distance(expected[a], b) > 10 * TOLERANCE for b in states if b != a)
            page.wait_for_selector(IMAGE)
            assert "Traceback" not in page.inner_text("body"), page.inner_text("body")[-3000:]

            dropdown = page.locator(".widget-dropdown select")
            severity, index = (page.locator(".widget-slider").nth(i).locator(HANDLE) for i in (0, 1))
            readouts = page.locator(".widget-slider .widget-readout")
            assert dropdown.input_value() == "none" and readouts.all_inner_texts() == ["3", "0"]
            src = page.get_attribute(IMAGE, "src")
            check_shows(states[0], src)

            actions = [lambda: dropdown.select_option("fog"), lambda: severity.press("ArrowRight"),
                       lambda: index.press("ArrowRight")]
            for act, state in zip(actions, states[1:]):
                act()
                try:
                    page.wait_for_function("old => [...document.querySelectorAll('.widget-output img')]"
                                           ".some(i => i.src !== old)", arg=src, timeout=REDRAW_MS)
                except sync_api.TimeoutError:
                    pytest.fail(f"the figure did not change within {REDRAW_MS / 1000:.0f} s of setting {state}")
                page.wait_for_timeout(300)  # a second figure appended (a clear_output that failed) would show by now
                assert page.locator(IMAGE).count() == 1, "the Output shows more than one figure"
                src = page.get_attribute(IMAGE, "src")
                assert dropdown.input_value() == state[0]
                assert readouts.all_inner_texts() == [str(state[1]), str(state[2])]
                check_shows(state, src)
            assert not errors, errors
        finally:
            browser.close()
