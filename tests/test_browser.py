"""The explorers in a real browser: ``make test-browser`` (pytest marker ``browser``).

Each notebook that shows a widget is opened in the course's JupyterLab (``tools/lab.py``, the
student's configuration) in headless Chromium and run with Run > Run All Cells. Then:

* no cell may fail, no "Error displaying widget" may appear, and progress bars must be widgets,
  not tqdm's text fallback (00 trains in the page: its bars are widgets, the stopped one red);
* every control of every explorer is moved the way a student moves it (arrow keys on a slider,
  the next option of a dropdown, a click) and the output it drives must change;
* after File > Save and a reload of the page (the kernel still running), no widget is broken;
* the browser console shows no error outside :data:`ALLOWED_CONSOLE_ERRORS`.

Screenshots of each explorer before and after each move, and a list of the controls moved, go to
``build/browser/<notebook>/``.

Checkpoints: the notebooks' training is checked by ``make test``; here the widgets are. The
kernels use ``$COURSE_TEST_CHECKPOINT_DIR`` when it is set (CI runs ``make test`` first with the
same folder, so the notebooks load what it trained, exactly as a student's second run of a
notebook does), else ``build/browser/checkpoints`` (the first run trains, later runs load).

Without Chromium or Playwright the tests skip with the install command, except in CI (``$CI``
set), where they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import lab_browser as lb
import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
SHOTS_DIR = REPO / "build" / "browser"
RUN_TIMEOUT_S = 400  # a notebook that trains from scratch in a loaded browser
CONTROL_TIMEOUT_S = 30  # one explorer callback (a detector on one scene, a figure): a few s

#: Browser console errors that are expected, each with its reason: (text or URL part, reason).
ALLOWED_CONSOLE_ERRORS = (
    (
        "colab-badge.svg",
        "each notebook's title shows the 'Open in Colab' badge, an image on "
        "colab.research.google.com that an offline machine cannot load",
    ),
)


def _shows_widgets(path: Path) -> bool:
    return "ipywidgets" in path.read_text()


WIDGET_NOTEBOOKS = sorted(
    path.name for path in NOTEBOOK_DIR.glob("[0-9]*.ipynb") if _shows_widgets(path)
)


def _require_browser():
    """Chromium's path and Playwright's sync API, or skip (fail in CI) naming the install."""
    chromium = lb.find_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if chromium is None or sync_playwright is None:
        missing = "Chromium" if chromium is None else "Playwright"
        message = f"{missing} not found: {lb.INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return chromium, sync_playwright


@pytest.fixture(scope="module")
def browser():
    chromium, sync_playwright = _require_browser()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        yield browser
        browser.close()


def _kernel_env(scratch: Path) -> dict[str, str]:
    """Checkpoints as the module's docstring says; recorded numbers thrown away; a data folder
    without the scenes, so that the scenes' own progress bars (``leave=False``) run in the page,
    and with the Selective Search proposals of the repository's data folder (slow to redo)."""
    checkpoints = os.environ.get("COURSE_TEST_CHECKPOINT_DIR") or str(SHOTS_DIR / "checkpoints")
    proposals = REPO / "data" / "proposals"
    proposals.mkdir(parents=True, exist_ok=True)
    (scratch / "data").mkdir()
    (scratch / "data" / "proposals").symlink_to(proposals, target_is_directory=True)
    return {
        "COURSE_CHECKPOINT_DIR": checkpoints,
        "COURSE_RESULTS_DIR": str(scratch / "results"),
        "COURSE_DATA_DIR": str(scratch / "data"),
    }


@pytest.fixture(scope="module")
def lab(tmp_path_factory, browser):
    root, scratch = tmp_path_factory.mktemp("notebooks"), tmp_path_factory.mktemp("lab")
    server = lb.LabServer(root=root, scratch=scratch, env=_kernel_env(scratch))
    server.start()
    yield server
    server.stop()


def _allowed(message: str, url: str) -> bool:
    return any(part in message or part in url for part, _ in ALLOWED_CONSOLE_ERRORS)


def _watch_console(page) -> list[str]:
    """Collect the page's console errors and uncaught exceptions (allowed ones left out)."""
    errors: list[str] = []

    def on_console(message):
        url = (message.location or {}).get("url", "")
        if message.type == "error" and not _allowed(message.text, url):
            errors.append(f"console: {message.text} ({url})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    return errors


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "control"


def _move_every_control(page, shots: Path) -> list[dict]:
    """Move each control of each explorer; one record per move (screenshots in ``shots``)."""
    moves = []
    for e, explorer in enumerate(lb.explorers(page).all()):
        output = explorer.locator(".widget-output").first
        for c, control in enumerate(lb.explorer_controls(explorer)):
            label = lb.control_label(control)
            explorer.scroll_into_view_if_needed()
            stem = shots / f"explorer{e}-{c:02d}-{_slug(label)}"
            before_value, before = lb.control_value(control), lb.fingerprint(output)
            explorer.screenshot(path=f"{stem}-before.png")
            how = lb.move_control(page, control)
            after = lb.wait_for_change(page, output, before, CONTROL_TIMEOUT_S)
            explorer.screenshot(path=f"{stem}-after.png")
            moves.append(
                {
                    "explorer": e,
                    "control": label,
                    "moved": how,
                    "value": [before_value, lb.control_value(control)],
                    "output_changed": after != before,
                }
            )
    return moves


@pytest.mark.slow
@pytest.mark.parametrize("name", WIDGET_NOTEBOOKS, ids=[Path(n).stem for n in WIDGET_NOTEBOOKS])
def test_every_explorer_responds_in_the_browser(name, lab, browser):
    shutil.copy(NOTEBOOK_DIR / name, lab.root / name)
    shots = SHOTS_DIR / Path(name).stem
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    console_errors = _watch_console(page)
    record = {"notebook": name}
    try:
        lb.open_notebook(page, lab, name)
        record["run_all_s"] = round(lb.run_all_cells(page, RUN_TIMEOUT_S), 1)
        errors = lb.error_outputs(page)
        assert not errors, f"a cell failed in the browser:\n{errors[0][-2000:]}"
        assert lb.unrun_code_cells(page) == 0, "Run All Cells stopped before the last cell"
        assert not lb.widget_errors(page), "a widget could not be displayed"
        assert not lb.text_progress_bars(page), (
            f"tqdm fell back to text bars: {lb.text_progress_bars(page)}"
        )
        record["progress_widgets"] = lb.widget_progress_bars(page).count()
        if name.startswith("00_"):  # it trains in the page: a stopped (red) and a finished bar
            assert record["progress_widgets"] >= 2, "00's training bars must render as widgets"
            assert page.locator(".progress-bar-danger").count() >= 1, "00's stopped bar is red"
        page.screenshot(path=str(shots / "notebook-after-run.png"))

        record["moves"] = _move_every_control(page, shots)
        assert record["moves"], "no control found in the notebook's explorers"
        dead = [m for m in record["moves"] if not m["output_changed"]]
        assert not dead, f"moving these controls changed nothing in their output: {dead}"
        assert not lb.widget_errors(page), "a widget broke while its controls were moved"

        explorers = lb.explorers(page).count()
        lb.save_notebook(page)
        page.reload()
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
        lb.wait_for_kernel_idle(page, 60)
        lb.wait_for_explorers(page, explorers, timeout_s=30)  # restored from the live kernel
        page.screenshot(path=str(shots / "notebook-reopened.png"))
        assert not lb.widget_errors(page), (
            f"reopened with its kernel running, the notebook shows {lb.widget_errors(page)}"
        )
        assert lb.explorers(page).count() == explorers, "an explorer did not come back on reload"
        assert not console_errors, f"browser console errors: {console_errors}"
    finally:
        (shots / "controls.json").write_text(json.dumps(record, indent=1) + "\n")
        page.close()
        lab.shut_down_kernels()


@pytest.mark.slow
def test_the_students_lab_shows_no_nbgrader_menu_and_the_instructors_does(tmp_path, browser, lab):
    page = browser.new_page()
    try:
        page.goto(f"{lab.url}/lab?token={lab.token}")
        student_menus = lb.menu_bar_labels(page)
        instructor = lb.LabServer(root=lab.root, scratch=tmp_path, instructor=True).start()
        try:
            page.goto(f"{instructor.url}/lab?token={instructor.token}")
            instructor_menus = lb.menu_bar_labels(page)
        finally:
            instructor.stop()
    finally:
        page.close()
    assert "Run" in student_menus and "Kernel" in student_menus
    assert not [m for m in student_menus if "nbgrader" in m.lower()], student_menus
    assert [m for m in instructor_menus if "nbgrader" in m.lower()], (
        f"the instructor's lab should show nbgrader's menu: {instructor_menus}"
    )
