"""Driving the course's JupyterLab in headless Chromium, as a student would (the browser test).

* :class:`LabServer` starts ``tools/lab.py`` (the launcher behind ``make lab``, so the student's
  configuration) on a free port with a random token, in a folder of its own;
* the page helpers open a notebook, run all its cells from the Run menu, wait for the kernel,
  and read what the page shows: error outputs, widget errors, progress bars, the explorers'
  controls and the output each control drives;
* :func:`move_control` moves a slider, dropdown, checkbox or button with the keyboard or the
  mouse, never by setting a widget's value from the kernel.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAUNCHER = REPO / "tools" / "lab.py"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = (
    "the browser test needs Chromium and Playwright: `apt-get install chromium` (Debian/Ubuntu) "
    "and `make install-browser` (or set CHROMIUM=/path/to/chrome)"
)

#: JupyterLab settings for the test: every cell in the page (no windowing, so cells far below
#: the fold can be read), no news or update pop-ups.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}

#: tqdm's text bar: `` 40%|████      | 120/300 [00:05<00:07, 21.3step/s]``.
TEXT_BAR = re.compile(r"\d+%\|[^|\n]*\|\s*\d+/\d+")

#: What a page's state is read from: the text and images of an element (a hash of each image).
FINGERPRINT_JS = """(element) => {
    const hash = (s) => { let h = 0; for (let i = 0; i < s.length; i++) {
        h = (h * 31 + s.charCodeAt(i)) | 0; } return h; };
    const images = [...element.querySelectorAll('img')].map((img) => hash(img.src));
    return JSON.stringify({text: element.innerText, images});
}"""


def find_chromium() -> str | None:
    """The Chromium executable: ``$CHROMIUM``, else the first of CHROMIUM_NAMES on PATH."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LabServer:
    """A JupyterLab server serving ``root`` (started by :meth:`start`, stopped by :meth:`stop`).

    ``env`` adds variables for the server and its kernels (checkpoint and result folders).
    ``instructor`` starts the instructor's lab (nbgrader's menus on) instead of a student's.
    """

    root: Path
    scratch: Path
    env: dict[str, str] = field(default_factory=dict)
    instructor: bool = False
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 90) -> LabServer:
        settings = self.scratch / "settings"
        for name, values in LAB_SETTINGS.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = dict(
            os.environ,
            JUPYTERLAB_SETTINGS_DIR=str(settings),
            JUPYTERLAB_WORKSPACES_DIR=str(self.scratch / "workspaces"),
            JUPYTER_RUNTIME_DIR=str(self.scratch / "runtime"),
            **self.env,
        )
        env.pop("MPLBACKEND", None)  # the tests' Agg would hide every figure: kernels use inline
        args = [
            f"--notebook-dir={self.root}",
            "--no-browser",
            f"--port={self.port}",
            f"--IdentityProvider.token={self.token}",
            "--LabApp.expose_app_in_browser=True",
        ]
        if self.instructor:
            args.insert(0, "--instructor")
        self.log = self.scratch / "lab.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(LAUNCHER), *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited:\n{self.log_tail()}")
            try:
                self.api("GET", "status")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer within {timeout_s} s:\n{self.log_tail()}")

    def api(self, method: str, path: str, body: dict | None = None):
        """A call to the server's REST API; the decoded JSON answer (None when empty)."""
        request = urllib.request.Request(
            f"{self.url}/api/{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def shut_down_kernels(self) -> None:
        for session in self.api("GET", "sessions"):
            self.api("DELETE", f"sessions/{session['id']}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


# ----------------------------------------------------------------------------- the notebook page


def open_notebook(page, server: LabServer, name: str, timeout_s: float = 90) -> None:
    """Open ``name`` in a JupyterLab workspace of its own (so no tab of an earlier notebook is
    restored beside it) and wait until its kernel is idle."""
    workspace = "".join(c if c.isalnum() else "-" for c in Path(name).stem)
    page.goto(f"{server.url}/lab/workspaces/{workspace}/tree/{name}?token={server.token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=timeout_s * 1000)
    wait_for_kernel_idle(page, timeout_s)


def kernel_status(page) -> str | None:
    """The status of the current notebook's kernel (``idle``, ``busy``, ...), read from the app."""
    return page.evaluate(
        """() => {
            const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
            const kernel = widget && widget.sessionContext && widget.sessionContext.session
                && widget.sessionContext.session.kernel;
            return kernel ? kernel.status : null;
        }"""
    )


def wait_for_kernel_idle(page, timeout_s: float, settle_s: float = 1.0) -> None:
    """Wait until the kernel has been idle for ``settle_s`` and no cell is queued (``[*]``)."""
    deadline, idle_since = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        queued = page.locator(".jp-InputPrompt", has_text="*").count()
        if kernel_status(page) == "idle" and queued == 0:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= settle_s:
                return
        else:
            idle_since = None
        page.wait_for_timeout(250)
    raise TimeoutError(f"the kernel was still busy after {timeout_s} s")


def click_menu(page, menu: str, item: str) -> None:
    """Open a menu of the menu bar and click one of its items, as with the mouse."""
    page.locator(".lm-MenuBar-itemLabel", has_text=menu).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


def run_all_cells(page, timeout_s: float) -> float:
    """Run > Run All Cells; wait until every cell ran or one failed. Returns the seconds taken."""
    start = time.monotonic()
    click_menu(page, "Run", "Run All Cells")
    page.wait_for_timeout(1000)
    wait_for_kernel_idle(page, timeout_s)
    return time.monotonic() - start


def unrun_code_cells(page) -> int:
    """Code cells with source whose prompt shows no execution count (``[ ]:``)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('.jp-CodeCell')].filter((cell) => {
            const prompt = cell.querySelector('.jp-InputPrompt');
            const source = cell.querySelector('.jp-InputArea-editor');
            return source && source.innerText.trim() && !/\\[\\d+\\]/.test(prompt.innerText);
        }).length"""
    )


def error_outputs(page) -> list[str]:
    """The text of every error output (a traceback) in the notebook."""
    return page.locator('[data-mime-type="application/vnd.jupyter.error"]').all_inner_texts()


def widget_errors(page) -> list[str]:
    """Every "Error displaying widget" message in the page."""
    return page.get_by_text("Error displaying widget").all_inner_texts()


def text_progress_bars(page) -> list[str]:
    """Outputs that look like tqdm's text bar (``40%|████  | 120/300``) instead of a widget."""
    texts = page.locator(".jp-OutputArea-output").all_inner_texts()
    return [text[:120] for text in texts if TEXT_BAR.search(text)]


def widget_progress_bars(page):
    """The locator of the progress-bar widgets (tqdm in a notebook)."""
    return page.locator(".jupyter-widgets.widget-hprogress, .widget-hprogress")


# ----------------------------------------------------------------------------- the explorers


CONTROL_SELECTOR = ", ".join(
    [
        ".widget-slider",
        ".widget-hslider",
        ".widget-dropdown",
        ".widget-checkbox",
        ".widget-toggle-button",
        ".widget-button",
    ]
)


def explorers(page):
    """The locator of every ``interact`` explorer (controls plus their output)."""
    return page.locator(".widget-interact")


def wait_for_explorers(page, count: int, timeout_s: float, settle_s: float = 1.0) -> None:
    """Wait until the page shows ``count`` explorers, then ``settle_s`` more for the other
    widgets; a timeout leaves the caller's own check to fail with what is missing."""
    try:
        page.wait_for_function(
            "(n) => document.querySelectorAll('.widget-interact').length >= n",
            arg=count,
            timeout=timeout_s * 1000,
        )
    except Exception:  # playwright's TimeoutError: the caller asserts on the count
        pass
    page.wait_for_timeout(settle_s * 1000)


def explorer_controls(explorer) -> list:
    """The controls of one explorer, top to bottom."""
    return explorer.locator(CONTROL_SELECTOR).all()


def control_label(control) -> str:
    """The control's description (``index``, ``score >``), else its kind."""
    labels = control.locator(".widget-label, .widget-label-basic").all_inner_texts()
    text = " ".join(label.replace("\u200b", "").strip() for label in labels).strip()
    classes = control.get_attribute("class") or ""
    kind = next(
        (k for k in ("slider", "dropdown", "checkbox", "button") if k in classes), "control"
    )
    return text or kind


def control_value(control) -> str:
    """What the control shows as its value: a slider's readout, the selected option, the box."""
    return control.evaluate(
        """(el) => {
            const readout = el.querySelector('.widget-readout');
            if (readout) return readout.innerText || readout.value;
            const select = el.querySelector('select');
            if (select) return select.value;
            const box = el.querySelector('input[type=checkbox]');
            if (box) return String(box.checked);
            return el.innerText;
        }"""
    )


def move_control(page, control) -> str:
    """Move ``control`` one notch as a student would; returns how it was moved.

    Slider: focus its (first) handle with a click and press the right arrow, or the left one
    at the end of the range. Dropdown: choose the next option (the first after the last).
    Checkbox and button: a click.
    """
    classes = control.get_attribute("class") or ""
    if "slider" in classes:
        handle = control.locator(".noUi-handle").first
        handle.focus()
        before = control_value(control)
        handle.press("ArrowRight")
        if control_value(control) == before:
            handle.press("ArrowLeft")
            return "slider: left arrow"
        return "slider: right arrow"
    if "dropdown" in classes:
        select = control.locator("select")
        options = select.locator("option").all_inner_texts()
        current = select.evaluate("(s) => s.selectedIndex")
        select.select_option(index=(current + 1) % len(options))
        return f"dropdown: option {options[(current + 1) % len(options)]!r}"
    if "checkbox" in classes:
        control.locator("input[type=checkbox]").click()
        return "checkbox: click"
    control.click()
    return "button: click"


def fingerprint(element) -> str:
    """The text and images an element shows, in one string that changes when either does."""
    return element.evaluate(FINGERPRINT_JS)


def wait_for_change(page, element, before: str, timeout_s: float) -> str:
    """Wait until ``element`` shows something other than ``before`` and the kernel is idle;
    returns the new fingerprint (``before`` if nothing changed in time)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        page.wait_for_timeout(300)
        if kernel_status(page) != "idle":
            continue
        now = fingerprint(element)
        if now != before:
            page.wait_for_timeout(300)
            return fingerprint(element)
    return before


def save_notebook(page) -> None:
    """File > Save Notebook, then wait until the document is no longer marked dirty."""
    click_menu(page, "File", "Save Notebook")
    page.wait_for_function(
        "() => !document.querySelector('.jp-mod-current.jp-mod-dirty')", timeout=30_000
    )
    page.wait_for_timeout(500)


def menu_bar_labels(page) -> list[str]:
    """The labels of the top menu bar (File, Edit, ..., and any extension's menu)."""
    page.wait_for_selector(".lm-MenuBar-itemLabel")
    return [label.strip() for label in page.locator(".lm-MenuBar-itemLabel").all_inner_texts()]
