"""Run one notebook headless in a fresh kernel, and measure it: the engine of ``make report``.

:func:`run_notebook` executes a notebook top to bottom with nbclient (working directory: the
notebook's folder; at most ``timeout`` seconds per cell) in the environment of
:func:`kernel_environment`: ``COURSE_CHECKPOINT_DIR`` a fresh, empty temporary folder (training
always runs and is timed, never loaded from an old checkpoint) and ``COURSE_RESULTS_DIR`` the
folder where the notebook records its headline numbers. It saves the executed copy (outputs
included) and returns a :class:`NotebookRun`: status, error, runtime of the cells (kernel start
excluded) and the kernel's peak resident memory (``getrusage``'s ``ru_maxrss``, read by one
extra cell that is not saved; after a timeout, ``VmHWM`` from ``/proc``).

nbformat and nbclient are imported when a notebook is run, not when this module is imported.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from course_utils.core.kernel_env import apply_kernel_environment

__all__ = ["CELL_TIMEOUT", "NotebookRun", "kernel_environment", "run_notebook"]

#: Seconds a cell may run before the notebook fails.
CELL_TIMEOUT = 600

_MARKER = "@@course-report-memory@@"
_MEASURE_SOURCE = f"""\
import json as _report_json, resource as _report_resource, sys as _report_sys
# ru_maxrss is in bytes on macOS, in KiB on Linux
_report_scale = 1 if _report_sys.platform == "darwin" else 1024
_report_usage = _report_resource.getrusage
print("{_MARKER}" + _report_json.dumps({{
    "self": _report_usage(_report_resource.RUSAGE_SELF).ru_maxrss * _report_scale,
    "children": _report_usage(_report_resource.RUSAGE_CHILDREN).ru_maxrss * _report_scale,
    "python": _report_sys.executable}}))"""


@dataclass
class NotebookRun:
    """What one notebook's run produced (one row of the report)."""

    notebook: str
    path: str
    status: str  # "ok" or "failed"
    error: str | None = None  # "ZeroDivisionError: division by zero (cell 3)"
    runtime_s: float | None = None
    peak_mb: float | None = None
    children_peak_mb: float | None = None
    python: str | None = None
    executed: str | None = None
    over_budget: list[str] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)


def _describe_error(error: BaseException, cell_index: int | None) -> str:
    """``"<ErrorName>: <first line of the message> (cell i)"``: the kernel's error name when
    the kernel raised."""
    from nbclient.exceptions import CellExecutionError

    if isinstance(error, CellExecutionError):
        name, message = error.ename, error.evalue
    else:
        name, message = type(error).__name__, str(error)
    first_line = message.strip().splitlines()[0] if message and message.strip() else ""
    if len(first_line) > 160:
        first_line = first_line[:157] + "..."
    where = f" (cell {cell_index})" if cell_index is not None else ""
    return f"{name}: {first_line}{where}" if first_line else f"{name}{where}"


def _proc_peak_bytes(pid: int | None) -> int | None:
    """``VmHWM`` (peak resident set) of a live process from ``/proc`` (Linux only), in bytes."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _kernel_pid(client) -> int | None:
    provisioner = getattr(client.km, "provisioner", None)
    return getattr(provisioner, "pid", None)


def _measure_in_kernel(client, nb) -> dict | None:
    """Run the memory cell in the live kernel (appended, then removed from ``nb``)."""
    import nbformat

    cell = nbformat.v4.new_code_cell(_MEASURE_SOURCE)
    nb.cells.append(cell)
    try:
        client.execute_cell(cell, len(nb.cells) - 1, store_history=False)
    except Exception:  # noqa: BLE001 - a broken kernel only costs the memory figure
        return None
    finally:
        nb.cells.pop()
    for output in cell.get("outputs", []):
        for line in output.get("text", "").splitlines():
            if line.startswith(_MARKER):
                return json.loads(line[len(_MARKER) :])
    return None


def kernel_environment(
    results_dir: Path, checkpoint_dir: Path, base: Mapping | None = None
) -> dict:
    """The kernel's environment variables: ``base`` (default ``os.environ``) with the course's
    folders set (absolute: the kernel runs in the notebook's folder), and ``MPLBACKEND``
    removed so figures are kept in the executed copy, plus the course's
    :data:`~course_utils.core.kernel_env.KERNEL_ENVIRONMENT` where ``base`` does not set it."""
    env = dict(os.environ if base is None else base)
    env["COURSE_RESULTS_DIR"] = str(Path(results_dir).resolve())
    env["COURSE_CHECKPOINT_DIR"] = str(Path(checkpoint_dir).resolve())
    env.pop("MPLBACKEND", None)
    return apply_kernel_environment(env)


def run_notebook(
    path: Path,
    executed_path: Path,
    results_dir: Path,
    timeout: int = CELL_TIMEOUT,
    kernel_name: str = "python3",
) -> NotebookRun:
    """Execute one notebook in a fresh kernel and save the executed copy to ``executed_path``.

    Never raises for a failing notebook: the error is in the returned run's ``error``.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    path = Path(path)
    run = NotebookRun(notebook=path.stem, path=str(path), status="ok")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as error:  # noqa: BLE001 - an unreadable notebook is a failed notebook
        run.status, run.error = "failed", _describe_error(error, None)
        return run
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=kernel_name,
        allow_errors=False,
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    client.reset_execution_trackers()
    with tempfile.TemporaryDirectory(prefix="course-report-checkpoints-") as checkpoints:
        env = kernel_environment(results_dir, Path(checkpoints))
        try:
            with client.setup_kernel(env=env):
                info = client.wait_for_reply(client.kc.kernel_info())
                if info is not None and "language_info" in info["content"]:
                    nb.metadata["language_info"] = info["content"]["language_info"]
                started = time.perf_counter()
                index = None
                kernel_usable = True
                try:
                    for index, cell in enumerate(nb.cells):
                        client.execute_cell(
                            cell, index, execution_count=client.code_cells_executed + 1
                        )
                except Exception as error:  # noqa: BLE001 - any failure is the notebook's result
                    run.status, run.error = "failed", _describe_error(error, index)
                    kernel_usable = not isinstance(error, (CellTimeoutError, DeadKernelError))
                run.runtime_s = time.perf_counter() - started
                peak = _proc_peak_bytes(_kernel_pid(client))
                measured = _measure_in_kernel(client, nb) if kernel_usable else None
                if measured is not None:
                    peak = measured["self"]
                    run.children_peak_mb = measured["children"] / 1e6
                    run.python = measured["python"]
                run.peak_mb = None if peak is None else peak / 1e6
        except Exception as error:  # noqa: BLE001 - e.g. the kernel would not start
            run.status, run.error = "failed", _describe_error(error, None)
    executed_path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, executed_path)
    run.executed = str(executed_path)
    return run
