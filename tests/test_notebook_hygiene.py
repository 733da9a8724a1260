"""The harness's guarantees: clean notebooks on the course map, one environment, ``make lab`` works.

* every ``notebooks/*.ipynb`` is valid nbformat v4, stored without outputs, named after the
  course map, never calls ``cv2.imshow``, and starts with the canonical Colab set-up cell;
* ``environment.yml`` lists the same packages, with the same ranges, as ``pyproject.toml``;
* ``make lab`` starts a JupyterLab server on ``notebooks/`` that answers on localhost and
  stops with its process group.
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
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from course_utils.core.kernel_env import KERNEL_ENVIRONMENT

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
COURSE_MAP = (
    "00_welcome",
    "01_sliding_window",
    "02_selective_search",
    "03_rcnn",
    "04_fast_rcnn",
    "05_faster_rcnn",
    "06_yolo",
    "07_ssd",
    "08_fcn",
    "09_upsampling",
    "10_dilated_conv",
    "11_unet",
    "12_mask_rcnn",
)
NOTEBOOKS = sorted(path for path in NOTEBOOK_DIR.glob("*.ipynb") if not path.name.startswith("."))
CV2_IMSHOW = re.compile(
    r"\bcv2\s*\.\s*imshow\b|\bcv2_imshow\b|from\s+cv2\s+import\s+[^\n]*\bimshow\b"
)
LAB_TIMEOUT_S = 150  # the first `make lab` may also install the environment


def _read(path: Path):
    return nbformat.read(path, as_version=nbformat.NO_CONVERT)


def _code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


# --------------------------------------------------------------------------- notebooks


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_is_valid_nbformat_4(path):
    notebook = _read(path)
    assert notebook.nbformat == 4, f"{path.name} is nbformat {notebook.nbformat}, expected 4"
    nbformat.validate(notebook)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    notebook = _read(path)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
        and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, (
        f"{path.name}: cells {dirty} have stored outputs or execution counts; clear them "
        "(JupyterLab: Edit > Clear Outputs of All Cells) before committing"
    )
    assert "widgets" not in notebook.metadata, (
        f"{path.name} stores widget state in its metadata; clear it"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_is_on_the_course_map(path):
    assert path.stem in COURSE_MAP, (
        f"{path.name} is not on the course map: expected one of {COURSE_MAP}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_never_uses_cv2_imshow(path):
    offending = [
        index
        for index, cell in enumerate(_read(path).cells)
        if cell.cell_type == "code" and CV2_IMSHOW.search(cell.source)
    ]
    assert not offending, (
        f"{path.name}: cells {offending} call cv2.imshow, which is disabled on Colab; "
        "draw with matplotlib (course_utils.viz.show_image)"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_starts_with_the_colab_setup_cell(path):
    from course_utils.core.colab import repository_url, setup_cell

    cells = _code_cells(_read(path))
    assert cells, f"{path.name} has no code cell"
    assert cells[0].source.strip() == setup_cell(repository_url()).strip(), (
        f"{path.name}: the first code cell must be colab.setup_cell(repository_url()) exactly "
        f"(make release stamps it); got:\n{cells[0].source}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_colab_badges_point_at_the_repository(path):
    from course_utils.core.colab import colab_badge_url, repository_url

    text = "".join(cell.source for cell in _read(path).cells if cell.cell_type == "markdown")
    assert colab_badge_url(path.stem, repository_url()) in text, (
        f"{path.name}: its Colab badge must open release/{path.name} on {repository_url()} "
        "(make release stamps it)"
    )


def _grade_id_problems(notebook, number: str) -> list[str]:
    """What breaks the course's pattern for graded cells: grade_id = cell id = ``<NN>-<name>``, a
    check cell ``<NN>-check_<name>`` right after its solution ``<NN>-<name>``."""
    problems, previous = [], None
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader")
        if not meta:
            continue
        grade_id = meta.get("grade_id", "")
        if not re.fullmatch(rf"{number}-[A-Za-z][A-Za-z0-9_]*", grade_id):
            problems.append(f"grade_id {grade_id!r} is not '{number}-<exercise>'")
        if cell.get("id") != grade_id:
            problems.append(f"cell id {cell.get('id')!r} differs from its grade_id {grade_id!r}")
        if meta.get("grade") and previous is not None:
            expected = previous.replace(f"{number}-", f"{number}-check_", 1)
            if grade_id != expected:
                problems.append(
                    f"check {grade_id!r} follows solution {previous!r}: want {expected!r}"
                )
        previous = grade_id if meta.get("solution") else None
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_grade_ids_follow_the_notebook_exercise_pattern(path):
    assert _grade_id_problems(_read(path), path.name[:2]) == []


def test_the_grade_id_pattern_rejects_what_it_should():
    def notebook(*cells):
        return nbformat.v4.new_notebook(cells=list(cells))

    def graded(grade_id, solution, cell_id=None):
        cell = nbformat.v4.new_code_cell("pass")
        cell.id = cell_id or grade_id
        cell.metadata["nbgrader"] = {
            "grade_id": grade_id,
            "solution": solution,
            "grade": not solution,
        }
        return cell

    good = notebook(graded("05-f", True), graded("05-check_f", False))
    assert _grade_id_problems(good, "05") == []
    assert _grade_id_problems(notebook(graded("f", True)), "05")
    assert _grade_id_problems(notebook(graded("06-f", True)), "05")
    assert _grade_id_problems(notebook(graded("05_f", True)), "05")
    assert _grade_id_problems(notebook(graded("05-f", True, cell_id="other")), "05")
    mismatched = notebook(graded("05-f", True), graded("05-check_g", False))
    assert _grade_id_problems(mismatched, "05")


def test_the_welcome_notebook_exists():
    assert (NOTEBOOK_DIR / "00_welcome.ipynb").is_file()


def test_the_cv2_imshow_pattern_catches_what_it_should():
    for source in (
        "cv2.imshow('x', image)",
        "from google.colab.patches import cv2_imshow",
        "from cv2 import resize, imshow",
        "cv2 . imshow(a, b)",
    ):
        assert CV2_IMSHOW.search(source), source
    for source in ("plt.imshow(image)", "ax.imshow(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))"):
        assert not CV2_IMSHOW.search(source), source


# ------------------------------------------------------------------ environment.yml vs pyproject


def parse_environment_yml(text: str) -> dict[str, list[str]]:
    """The ``dependencies`` of a conda environment file: ``{"conda": [...], "pip": [...]}``.

    Handles the simple block-list format (``- item`` lines, one nested ``- pip:`` list);
    comments and quotes are stripped.
    """
    conda: list[str] = []
    pip: list[str] = []
    in_dependencies = False
    pip_indent = None
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        stripped = line.strip()
        if indent == 0:
            in_dependencies = stripped == "dependencies:"
            pip_indent = None
            continue
        if not in_dependencies or not stripped.startswith("-"):
            continue
        item = stripped[1:].strip().strip("'\"")
        if item == "pip:":
            pip_indent = indent
        elif pip_indent is not None and indent > pip_indent:
            pip.append(item)
        else:
            pip_indent = None
            conda.append(item)
    return {"conda": conda, "pip": pip}


def _load_environment() -> dict[str, list[str]]:
    path = REPO / "environment.yml"
    assert path.is_file(), (
        "environment.yml is missing: conda users need it (same packages as pyproject.toml)"
    )
    text = path.read_text()
    try:
        import yaml
    except ImportError:
        return parse_environment_yml(text)
    dependencies = yaml.safe_load(text).get("dependencies") or []
    conda = [str(item) for item in dependencies if not isinstance(item, dict)]
    pip = [
        str(item)
        for entry in dependencies
        if isinstance(entry, dict)
        for item in entry.get("pip", [])
    ]
    return {"conda": conda, "pip": pip}


_CONDA_ALIASES = {"pytorch": "torch"}


def _requirement(spec: str) -> Requirement | None:
    """A PEP 508 requirement, or None for pip options and paths (``-e .``, ``git+...``)."""
    if spec.startswith(("-", ".", "/", "git+", "http")):
        return None
    try:
        return Requirement(spec)
    except InvalidRequirement:
        return Requirement(
            re.sub(r"(?<![<>=!~])=(?!=)", "==", spec.replace(" ", ""))
        )  # conda's name=1.2


def _environment_requirements() -> dict[str, SpecifierSet]:
    environment = _load_environment()
    wanted: dict[str, SpecifierSet] = {}
    for spec in environment["conda"] + environment["pip"]:
        requirement = _requirement(spec)
        if requirement is None:
            continue
        name = canonicalize_name(_CONDA_ALIASES.get(requirement.name.lower(), requirement.name))
        if name in ("python", "pip"):
            continue
        wanted[name] = requirement.specifier
    return wanted


def _pyproject_requirements() -> dict[str, SpecifierSet]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = list(project.get("dependencies", []))
    extras = project.get("optional-dependencies", {})
    for extra in ("dev", "instructor"):
        specs += extras.get(extra, [])
    requirements = [Requirement(spec) for spec in specs]
    return {
        canonicalize_name(requirement.name): requirement.specifier for requirement in requirements
    }


def test_environment_yml_lists_the_same_packages_as_pyproject():
    in_environment, in_pyproject = set(_environment_requirements()), set(_pyproject_requirements())
    assert in_environment == in_pyproject, (
        f"only in pyproject.toml: {sorted(in_pyproject - in_environment)}; "
        f"only in environment.yml: {sorted(in_environment - in_pyproject)}"
    )


def test_environment_yml_uses_the_same_ranges_as_pyproject():
    environment, pyproject = _environment_requirements(), _pyproject_requirements()
    different = {
        name: (str(environment[name]), str(pyproject[name]))
        for name in set(environment) & set(pyproject)
        if environment[name] != pyproject[name]
    }
    assert not different, f"ranges differ (environment.yml, pyproject.toml): {different}"
    python = [
        _requirement(spec) for spec in _load_environment()["conda"] if spec.startswith("python")
    ]
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"].get(
        "requires-python"
    )
    if python and requires:
        assert python[0].specifier == SpecifierSet(requires), (
            f"environment.yml asks for python{python[0].specifier}, pyproject.toml for {requires}"
        )


def test_environment_yml_installs_the_course_itself():
    pip = _load_environment()["pip"]
    assert any(re.fullmatch(r"-e\s+\.(/)?", spec) for spec in pip), (
        "environment.yml must install the course's helpers (course_utils) with '- -e .' under pip:"
    )


def test_the_fallback_parser_reads_the_simple_format():
    text = """# comment
name: demo
channels:
  - conda-forge
dependencies:
  - python>=3.11  # inline comment
  - pip
  - "numpy>=1.24"
  - pip:
      - torch>=2.2
      - -e .
variables:
  - not-a-dependency
"""
    assert parse_environment_yml(text) == {
        "conda": ["python>=3.11", "pip", "numpy>=1.24"],
        "pip": ["torch>=2.2", "-e ."],
    }
    try:
        import yaml
    except ImportError:
        return
    real = (REPO / "environment.yml").read_text()
    data = yaml.safe_load(real)["dependencies"]
    assert parse_environment_yml(real)["pip"] == [
        str(item) for entry in data if isinstance(entry, dict) for item in entry["pip"]
    ]
    assert parse_environment_yml(real)["conda"] == [str(x) for x in data if not isinstance(x, dict)]


# --------------------------------------------------------------------------- make lab


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies waiting for their parent do not
    count)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for status in proc.glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _server_process(pgid: int) -> Path | None:
    """The /proc folder of the JupyterLab process in process group ``pgid`` (None without /proc):
    the shell, make and launchers that started it are passed over."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        if int(fields[2]) != pgid:
            continue
        launcher = Path(cmdline[0].decode(errors="replace")).name
        if launcher in ("sh", "bash", "dash", "make", "env", "setpriv"):
            continue
        if any(b"jupyter" in part for part in cmdline):
            return stat.parent
    return None


def _server_environment(pgid: int) -> dict[str, str] | None:
    """The environment of the JupyterLab process in process group ``pgid`` (None without /proc)."""
    folder = _server_process(pgid)
    if folder is None:
        return None
    raw = (folder / "environ").read_bytes().split(b"\0")
    pairs = (item.decode(errors="replace").partition("=") for item in raw if b"=" in item)
    return {name: value for name, _, value in pairs}


def _server_command(pgid: int) -> list[str] | None:
    """The command line of the JupyterLab process in process group ``pgid`` (None without
    /proc)."""
    folder = _server_process(pgid)
    if folder is None:
        return None
    return [
        part.decode(errors="replace")
        for part in (folder / "cmdline").read_bytes().split(b"\0")
        if part
    ]


def _as_normal_user(home: Path) -> list[str]:
    """A command prefix that runs as ``nobody`` (uid 65534) with ``home`` as its own, or skip.

    The course's interpreter may live under /root (pyenv), which only root can enter: the process
    keeps one capability, reading any file (CAP_DAC_READ_SEARCH), and nothing else of root's.
    """
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("not root: the test's own user is already a normal user (the other case)")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to start make lab as a normal user")
    home.mkdir(mode=0o755)
    os.chown(home, 65534, 65534)
    caps = ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *caps]


def _page_config(html: str) -> dict:
    """The JSON page configuration JupyterLab embeds in /lab."""
    found = re.search(
        r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', html, re.S
    )
    assert found, "no jupyter-config-data in JupyterLab's page"
    return json.loads(found.group(1))


@pytest.mark.slow
@pytest.mark.parametrize("user", ["current", "normal"])
def test_make_lab_serves_the_notebooks_folder(user, tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    port, token = _free_port(), secrets.token_hex(16)
    # No --allow-root here: as root (containers, CI) `make lab` must add it by itself.
    lab_args = (
        f"--no-browser --port={port} --IdentityProvider.token={token} "
        "--ServerApp.open_browser=False"
    )
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), PYTHON=sys.executable)
    command = ["make", "lab", f"LAB_ARGS={lab_args}"]
    if user == "normal":
        home = Path(tempfile.mkdtemp(prefix="course-lab-user-")) / "home"
        env.update(HOME=str(home), JUPYTER_RUNTIME_DIR=str(home / "runtime"))
        # What `make lab` runs. (GNU make checks a program with access(), which ignores the
        # capability _as_normal_user keeps, so make itself cannot start the /root interpreter.)
        launcher = [sys.executable, "tools/lab.py", "--notebook-dir=notebooks"]
        command = [*_as_normal_user(home), *launcher, *lab_args.split()]
    for name in KERNEL_ENVIRONMENT:
        env.pop(name, None)  # make lab must set the kernels' environment itself
    log_path = tmp_path / "lab.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/api/contents"
    try:
        listing = None
        deadline = time.monotonic() + LAB_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status, body = _get(f"{url}?token={token}")
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                time.sleep(1)
                continue
            assert status == 200
            listing = json.loads(body)
            break
        log_tail = log_path.read_text(errors="replace")[-3000:]
        assert process.poll() is None, f"make lab exited with {process.returncode}:\n{log_tail}"
        assert listing is not None, (
            f"JupyterLab did not answer on port {port} within {LAB_TIMEOUT_S} s:\n{log_tail}"
        )
        assert listing["type"] == "directory"
        names = {entry["name"] for entry in listing["content"]}
        expected = {path.name for path in NOTEBOOK_DIR.iterdir() if not path.name.startswith(".")}
        assert expected <= names, f"missing from the server's listing: {sorted(expected - names)}"
        assert "pyproject.toml" not in names and "Makefile" not in names, (
            "the server must serve notebooks/"
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            _get(url)  # without the token
        assert refused.value.code in (401, 403)
        server_env = _server_environment(process.pid)
        if server_env is not None:  # Linux: kernels inherit the server's environment
            for name, value in KERNEL_ENVIRONMENT.items():
                assert server_env.get(name) == value, f"make lab must start JupyterLab with {name}"
        # A student's lab: nbgrader's menus and pages are off (instructors: make lab-instructor).
        _, page = _get(f"http://127.0.0.1:{port}/lab?token={token}")
        assert "@jupyter/nbgrader" in _page_config(page.decode()).get("disabledExtensions", [])
        with pytest.raises(urllib.error.HTTPError) as formgrader:
            _get(f"http://127.0.0.1:{port}/formgrader?token={token}")
        assert formgrader.value.code == 404
        command = _server_command(process.pid)
        if command is not None:
            as_root = os.geteuid() == 0 and user == "current"
            assert ("--allow-root" in command) == as_root, (
                f"--allow-root must be added exactly when run as root: {command}"
            )
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    deadline = time.monotonic() + 30
    while _group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    still_running = _group_alive(process.pid)
    if still_running:
        os.killpg(process.pid, signal.SIGKILL)
    assert not still_running, "JupyterLab kept running after SIGTERM to its process group"
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        _get(f"{url}?token={token}")
