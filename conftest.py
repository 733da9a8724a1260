"""Test-session set-up shared by unit tests and the notebooks run through nbval.

Every run trains from scratch: checkpoints and recorded results go to fresh temporary
folders (notebook kernels inherit these variables), so an old checkpoint can never
stand in for the training a notebook is meant to do. ``$COURSE_TEST_CHECKPOINT_DIR`` names
the notebooks' checkpoint folder instead (CI: so that ``make test-browser`` loads what the
notebooks trained under ``make test``); the nbval run refuses one that already holds files.

The browser tests (marker ``browser``, ``tests/test_browser.py``) run only with ``--browser``
(``make test-browser``); plain ``make test`` leaves them out.
"""

import os
import tempfile

import matplotlib
import pytest

from course_utils.core.kernel_env import apply_kernel_environment

matplotlib.use("Agg")


def pytest_addoption(parser):
    parser.addoption(
        "--browser",
        action="store_true",
        help="run the browser tests (JupyterLab in headless Chromium): make test-browser",
    )


def _checkpoint_dir(config, scratch: str) -> str:
    """A fresh folder, or ``$COURSE_TEST_CHECKPOINT_DIR`` for the notebooks (nbval) and the
    browser tests; nbval refuses a folder that already holds checkpoints."""
    given = os.environ.get("COURSE_TEST_CHECKPOINT_DIR")
    notebooks = bool(config.getoption("nbval_lax", False) or config.getoption("nbval", False))
    browser = config.getoption("--browser")
    if not given or not (notebooks or browser):
        return os.path.join(scratch, "checkpoints")
    controller = not hasattr(config, "workerinput")  # not a pytest-xdist worker
    if notebooks and controller and os.path.isdir(given) and any(os.scandir(given)):
        raise pytest.UsageError(
            f"COURSE_TEST_CHECKPOINT_DIR={given} already holds checkpoints; the notebooks train "
            "from scratch under make test: give it an empty or new folder"
        )
    return given


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: starts servers or runs notebooks (still part of make test)"
    )
    config.addinivalue_line(
        "markers", "browser: drives JupyterLab in headless Chromium (make test-browser only)"
    )
    scratch = tempfile.mkdtemp(prefix="course-test-")
    os.environ["COURSE_CHECKPOINT_DIR"] = _checkpoint_dir(config, scratch)
    os.environ["COURSE_RESULTS_DIR"] = os.path.join(scratch, "results")
    os.environ.setdefault("MPLBACKEND", "Agg")
    # The kernels nbval starts inherit this: OMP_WAIT_POLICY=PASSIVE and the rest of the
    # course's kernel environment (read once when a kernel starts, so it must be set here).
    apply_kernel_environment(os.environ)


def pytest_collection_modifyitems(config, items):
    """Without --browser, leave the browser tests out; with it, run only them."""
    browser = config.getoption("--browser")
    keep = [item for item in items if (item.get_closest_marker("browser") is not None) == browser]
    dropped = [item for item in items if item not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
