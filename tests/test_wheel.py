"""The course wheel (``make wheel``): what the Colab set-up cell installs when no repository is
reachable. Installing it with ``--no-deps`` into an environment that already holds the course's
dependencies (Colab's, or this one's) must install the course and nothing else."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from course_utils.core import colab

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (found,) = out.glob("detseg_course-*.whl")
    return found


@pytest.mark.slow
def test_the_wheel_holds_the_package_and_matches_the_setup_cells_pattern(wheel):
    assert any(wheel.match(Path(place).name) for place in colab.WHEEL_PLACES)
    names = zipfile.ZipFile(wheel).namelist()
    assert "course_utils/__init__.py" in names
    assert "course_utils/detection/mask_rcnn.py" in names
    assert not [name for name in names if name.endswith(".ipynb") or name.startswith("tests/")]


@pytest.mark.slow
def test_installing_the_wheel_without_dependencies_changes_no_other_package(wheel, tmp_path):
    report = tmp_path / "report.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--dry-run",
            "--quiet",
            "--report",
            str(report),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    installs = json.loads(report.read_text())["install"]
    assert [item["metadata"]["name"] for item in installs] == [colab.DISTRIBUTION]
