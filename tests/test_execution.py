"""course_utils.instructor.execution, without a kernel: a run's error text, the kernel's
environment, the peak memory read from /proc, and an unreadable notebook."""

import os
import resource
from pathlib import Path

import pytest
from nbclient.exceptions import CellExecutionError

from course_utils.instructor import execution


def test_an_unreadable_notebook_is_a_failed_run(tmp_path):
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{ not json")
    run = execution.run_notebook(
        broken, tmp_path / "executed" / "broken.ipynb", tmp_path / "results"
    )
    assert run.status == "failed" and run.notebook == "broken" and run.path == str(broken)
    assert run.error and run.error.split(":")[0].endswith("Error")
    assert run.runtime_s is None and run.peak_mb is None
    assert run.executed is None and not (tmp_path / "executed").exists()


def test_describe_error_names_the_error_and_the_cell():
    describe = execution._describe_error
    assert describe(ValueError("bad value\nsecond line"), 3) == "ValueError: bad value (cell 3)"
    assert describe(RuntimeError(""), None) == "RuntimeError"
    assert describe(KeyError("k"), 0) == "KeyError: 'k' (cell 0)"
    long = describe(ValueError("x" * 300), None)
    assert long == "ValueError: " + "x" * 157 + "..."
    kernel = CellExecutionError("traceback", "ZeroDivisionError", "division by zero")
    assert describe(kernel, 1) == "ZeroDivisionError: division by zero (cell 1)"


def test_peak_memory_from_proc_matches_getrusage():
    if not Path("/proc/self/status").exists():
        pytest.skip("no /proc on this system")
    peak = execution._proc_peak_bytes(os.getpid())
    expected = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert peak == pytest.approx(expected, rel=0.2)
    assert execution._proc_peak_bytes(None) is None
    assert execution._proc_peak_bytes(2**30) is None


def test_kernel_environment_sets_fresh_folders_and_drops_the_agg_backend(tmp_path, monkeypatch):
    base = {"MPLBACKEND": "Agg", "HOME": "/h", "OMP_WAIT_POLICY": "ACTIVE"}
    env = execution.kernel_environment(tmp_path / "r", tmp_path / "c", base)
    assert env["COURSE_RESULTS_DIR"] == str(tmp_path / "r")
    assert env["COURSE_CHECKPOINT_DIR"] == str(tmp_path / "c")
    assert "MPLBACKEND" not in env and env["HOME"] == "/h"
    assert env["OMP_WAIT_POLICY"] == "ACTIVE"  # set by the caller: kept
    assert base["MPLBACKEND"] == "Agg"  # the caller's mapping is not modified
    # relative folders become absolute: the kernel runs in the notebook's folder
    monkeypatch.chdir(tmp_path)
    env = execution.kernel_environment(Path("build/results"), Path("ckpt"), {})
    assert env["COURSE_RESULTS_DIR"] == str(tmp_path / "build" / "results")
    assert env["COURSE_CHECKPOINT_DIR"] == str(tmp_path / "ckpt")
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert execution.kernel_environment(tmp_path, tmp_path)["PATH"] == os.environ["PATH"]
