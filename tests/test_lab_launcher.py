"""tools/lab.py, the launcher behind make lab: root flag, kernel environment, student config."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from course_utils.core.kernel_env import KERNEL_ENVIRONMENT

REPO = Path(__file__).resolve().parents[1]


def _launcher():
    spec = importlib.util.spec_from_file_location("course_lab", REPO / "tools" / "lab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_allow_root_is_added_only_for_root():
    lab = _launcher()
    assert lab.lab_command(["--port=1"], python="py", as_root=True)[-1] == "--allow-root"
    assert "--allow-root" not in lab.lab_command(["--port=1"], python="py", as_root=False)
    twice = lab.lab_command(["--allow-root"], python="py", as_root=True)
    assert twice.count("--allow-root") == 1
    assert lab.lab_command([], python="py", as_root=False)[:3] == ["py", "-m", "jupyterlab"]


def test_students_get_the_student_config_first_and_every_kernel_variable():
    lab = _launcher()
    env = lab.lab_environment({"JUPYTER_CONFIG_PATH": "/mine", "OMP_WAIT_POLICY": "ACTIVE"})
    assert env["JUPYTER_CONFIG_PATH"].split(os.pathsep) == [str(lab.STUDENT_CONFIG), "/mine"]
    assert env["OMP_WAIT_POLICY"] == "ACTIVE", "a variable the caller set is kept"
    assert all(name in env for name in KERNEL_ENVIRONMENT)
    instructor = lab.lab_environment({}, instructor=True)
    assert "JUPYTER_CONFIG_PATH" not in instructor
    assert all(instructor[name] == value for name, value in KERNEL_ENVIRONMENT.items())


def test_the_student_config_switches_off_every_nbgrader_extension():
    lab = _launcher()
    page = json.loads((lab.STUDENT_CONFIG / "labconfig" / "page_config.json").read_text())
    assert page["disabledExtensions"] == {"@jupyter/nbgrader": True}
    server = json.loads((lab.STUDENT_CONFIG / "jupyter_server_config.json").read_text())
    switched = server["ServerApp"]["jpserver_extensions"]
    assert switched
    assert all(name.startswith("nbgrader.") and not on for name, on in switched.items())
    assert server["LabApp"]["news_url"] is None
