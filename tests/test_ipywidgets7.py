"""Colab's kernel side: every explorer of the course builds, and calls back, under ipywidgets 7.7.1.

Colab ships ipywidgets 7.7.1 while ``make lab`` installs 8.x. A throwaway folder gets ipywidgets
7.7.1 from PyPI (``pip install --target``, no dependencies: the rest is this environment's), put
first on the path of a subprocess that rebuilds each ``interact`` of each notebook
(``tests/widget_replay.py``). Without access to PyPI the test skips, except in CI, where it fails.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import widget_replay

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9]*.ipynb"))
COLAB_IPYWIDGETS = "7.7.1"
#: ipywidgets 7 imports ipython_genutils, which 8.x no longer needs.
PACKAGES = (f"ipywidgets=={COLAB_IPYWIDGETS}", "ipython_genutils==0.2.0")


@pytest.fixture(scope="module")
def colab_widgets(tmp_path_factory) -> Path:
    """A folder holding ipywidgets 7.7.1, to put first on PYTHONPATH."""
    target = tmp_path_factory.mktemp("ipywidgets7")
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    command += ["--no-deps", "--target", str(target), *PACKAGES]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        message = (
            f"could not install ipywidgets {COLAB_IPYWIDGETS} from PyPI:\n{done.stderr[-1500:]}"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return target


def _replay(paths, tmp_path: Path, pythonpath: Path | None) -> dict:
    out = tmp_path / "report.json"
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    script = Path(widget_replay.__file__)
    done = subprocess.run(
        [sys.executable, str(script), str(out), *map(str, paths)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def _interact_keywords(path: Path) -> int:
    """How many controls the notebook's interact calls are given (read from its code)."""
    tree = ast.parse(widget_replay.code_of(path))
    return sum(
        len(node.keywords)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("interact", "interactive")
    )


@pytest.mark.slow
def test_every_explorer_builds_and_calls_back_under_colabs_ipywidgets(colab_widgets, tmp_path):
    report = _replay(NOTEBOOKS, tmp_path, colab_widgets)
    assert report["ipywidgets"] == COLAB_IPYWIDGETS
    for path in NOTEBOOKS:
        if "ipywidgets" not in path.read_text():
            continue
        result = report["notebooks"][path.name]
        assert result["problems"] == [], f"{path.name} under ipywidgets 7.7.1: {result['problems']}"
        assert result["explorers"] >= 1, f"{path.name} shows a widget but no explorer was found"
        assert result["controls"] == _interact_keywords(path), (
            f"{path.name}: not every control of its explorers was built"
        )


def _notebook(tmp_path: Path, code: str) -> Path:
    cells = [
        {
            "cell_type": "code",
            "metadata": {},
            "source": code,
            "outputs": [],
            "execution_count": None,
        }
    ]
    path = tmp_path / "probe.ipynb"
    path.write_text(
        json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    )
    return path


PROBE = """\
from ipywidgets import Dropdown, IntSlider, interact

SIZES = [8, 16]
interact(
    lambda size, k, name: None,
    size=Dropdown(options=SIZES, value=16),
    k=IntSlider(value=1, min=0, max=5, tooltip="ipywidgets 8 only"),
    name=["a", "b"],
)
"""


@pytest.mark.slow
def test_the_replay_catches_what_only_ipywidgets_8_has(colab_widgets, tmp_path):
    probe = _notebook(tmp_path, PROBE)
    under_8 = _replay([probe], tmp_path, None)["notebooks"]["probe.ipynb"]
    under_7 = _replay([probe], tmp_path, colab_widgets)["notebooks"]["probe.ipynb"]
    assert under_8["problems"] == [] and under_8["controls"] == 3
    assert len(under_7["problems"]) == 1, under_7["problems"]
    assert "has no trait 'tooltip'" in under_7["problems"][0]
