"""``make report``: the course's benchmark. Runs every notebook headless and tabulates it.

Usage::

    python -m course_utils.instructor.report [--notebooks notebooks/ | a.ipynb ...] [--out build]

Each notebook runs top to bottom in a fresh kernel (working directory: the notebook's
folder; at most ``--timeout`` seconds per cell) with

* ``COURSE_CHECKPOINT_DIR`` set to a fresh, empty temporary folder, so training always
  runs and is timed, never loaded from an old checkpoint;
* ``COURSE_RESULTS_DIR=<out>/results`` (emptied first), where the notebook records its
  headline numbers with :func:`course_utils.core.results.record` and its methods' rows of the
  course-wide tables with :func:`course_utils.core.results.record_row`.

Written under ``<out>``: ``executed/<notebook>.ipynb`` (the run, outputs included),
``report.md`` (one Markdown table: notebook, status, runtime, peak memory and the
recorded numbers), ``tables.md`` (the course-wide detection and segmentation tables,
:mod:`course_utils.instructor.tables`) and ``report.json`` (all of it, for tools). With
``--readme README.md`` (as ``make report`` does) the tables also replace README's, and each
notebook's runtime goes into its row of README's notebook table, when every notebook ran.
Running and measuring one notebook (runtime of the cells, kernel start excluded; the kernel's
peak resident set size) is :func:`course_utils.instructor.execution.run_notebook`; this
module finds the notebooks, runs them one after the other and writes the tables. Notebooks
over the budget (120 s, 3 GB by default) are flagged. The command exits with status 1 when a
notebook failed (and, with ``--strict-budget``, when one is over budget).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from course_utils.core.paths import repo_root
from course_utils.core.results import load_all, load_rows
from course_utils.instructor.execution import CELL_TIMEOUT, NotebookRun, run_notebook
from course_utils.instructor.tables import format_tables, update_readme, update_runtimes

__all__ = [
    "BUDGET_MB",
    "BUDGET_SECONDS",
    "budget_flags",
    "find_notebooks",
    "format_markdown",
    "format_result",
    "main",
    "run_report",
]

BUDGET_SECONDS = 120.0
BUDGET_MB = 3000.0  # 3 GB, decimal megabytes

# --------------------------------------------------------------------------- what to run


def find_notebooks(paths: Sequence[str | Path]) -> list[Path]:
    """The notebooks to run: files as given, folders expanded to their ``*.ipynb`` (sorted).

    Raises ``FileNotFoundError`` for a path that does not exist and ``ValueError`` for a
    file that is not an ``.ipynb``.
    """
    found: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            found.extend(
                sorted(child for child in path.glob("*.ipynb") if not child.name.startswith("."))
            )
        elif path.is_file():
            if path.suffix != ".ipynb":
                raise ValueError(
                    f"{path} is not a notebook: expected a .ipynb file or a folder of them"
                )
            found.append(path)
        else:
            raise FileNotFoundError(f"no notebook or folder at {path}")
    unique: list[Path] = []
    for path in found:
        if path.resolve() not in {seen.resolve() for seen in unique}:
            unique.append(path)
    return unique


# ------------------------------------------------------------------------------------ over budget


def budget_flags(
    runtime_s: float | None,
    peak_mb: float | None,
    budget_s: float = BUDGET_SECONDS,
    budget_mb: float = BUDGET_MB,
) -> list[str]:
    """Why a run is over budget, e.g. ``["runtime 131 s > 120 s"]``; empty when within it."""
    flags = []
    if runtime_s is not None and runtime_s > budget_s:
        flags.append(f"runtime {runtime_s:.0f} s > {budget_s:.0f} s")
    if peak_mb is not None and peak_mb > budget_mb:
        flags.append(f"peak memory {peak_mb:.0f} MB > {budget_mb:.0f} MB")
    return flags


# --------------------------------------------------------------------------- the report


def _format_value(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def format_result(entry: Mapping) -> str:
    """One recorded number as text: ``"AP50 = 0.712"``, ``"speed-up = 9.3 x"``."""
    unit = str(entry.get("unit") or "")
    text = f"{entry.get('name', '?')} = {_format_value(entry.get('value'))}"
    return f"{text} {unit}" if unit else text


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _status_text(run: NotebookRun) -> str:
    if run.status == "failed":
        name = (run.error or "error").split(":")[0].split(" (")[0]
        return f"**failed**: {name}"
    if run.over_budget:
        return "ok, **over budget**"
    return "ok"


def format_markdown(
    runs: Sequence[NotebookRun],
    other_results: Sequence[Mapping] = (),
    budget_s: float = BUDGET_SECONDS,
    budget_mb: float = BUDGET_MB,
    environment: str | None = None,
) -> str:
    """``report.md``: a title, the budget, one table row per notebook, then failures and flags."""
    lines = ["# Notebook report", ""]
    if environment:
        lines += [f"Environment: {environment}", ""]
    lines += [
        f"Budget per notebook: {budget_s:.0f} s, {budget_mb:.0f} MB peak memory (kernel RSS). "
        "Runtime is the cells' time; each run trained from an empty checkpoint folder.",
        "",
        "| notebook | status | runtime s | peak MB | recorded results |",
        "|---|---|---:|---:|---|",
    ]
    for run in runs:
        runtime = "–" if run.runtime_s is None else f"{run.runtime_s:.1f}"
        peak = "–" if run.peak_mb is None else f"{run.peak_mb:.0f}"
        if run.over_budget:
            runtime = (
                f"**{runtime}**"
                if any(f.startswith("runtime") for f in run.over_budget)
                else runtime
            )
            peak = f"**{peak}**" if any(f.startswith("peak") for f in run.over_budget) else peak
        results = "; ".join(format_result(entry) for entry in run.results) or "–"
        lines.append(
            f"| {_cell(run.notebook)} | {_cell(_status_text(run))} | {runtime} | {peak} "
            f"| {_cell(results)} |"
        )
    failed = [run for run in runs if run.status == "failed"]
    flagged = [run for run in runs if run.over_budget]
    total = sum(run.runtime_s or 0.0 for run in runs)
    lines += [
        "",
        f"{len(runs)} notebooks, {len(failed)} failed, {len(flagged)} over budget, "
        f"{total:.0f} s in total.",
    ]
    if failed:
        lines += ["", "## Failures", ""]
        lines += [
            f"- {run.notebook}: {_cell(run.error or 'unknown error')}"
            + (f" (see {run.executed})" if run.executed else "")
            for run in failed
        ]
    if flagged:
        lines += ["", "## Over budget", ""]
        lines += [f"- {run.notebook}: {', '.join(run.over_budget)}" for run in flagged]
    if other_results:
        lines += ["", "## Results recorded under other names", ""]
        lines += [
            f"- {_cell(str(entry.get('notebook')))}: {_cell(format_result(entry))}"
            for entry in other_results
        ]
    return "\n".join(lines) + "\n"


def _environment_line() -> str | None:
    """The device/library line of ``core.device`` (imported here: it imports torch, which
    ``--help`` and the table do not need); ``None`` when it fails."""
    try:
        from course_utils.core.device import environment_report

        return environment_report()
    except Exception:  # noqa: BLE001 - the report works without it
        return None


def run_report(
    notebooks: Sequence[Path],
    out: Path,
    budget_s: float = BUDGET_SECONDS,
    budget_mb: float = BUDGET_MB,
    timeout: int = CELL_TIMEOUT,
    kernel_name: str = "python3",
    log=print,
) -> tuple[list[NotebookRun], list[dict]]:
    """Run ``notebooks`` one after the other; write ``report.md`` / ``report.json`` under ``out``.

    Returns the runs and the recorded results that belong to no run notebook.
    """
    out = Path(out)
    results_dir = out / "results"
    shutil.rmtree(results_dir, ignore_errors=True)
    results_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for path in notebooks:
        log(f"running {path} ...", flush=True)
        run = run_notebook(
            Path(path), out / "executed" / Path(path).name, results_dir, timeout, kernel_name
        )
        run.over_budget = budget_flags(run.runtime_s, run.peak_mb, budget_s, budget_mb)
        runtime = "?" if run.runtime_s is None else f"{run.runtime_s:.1f} s"
        peak = "?" if run.peak_mb is None else f"{run.peak_mb:.0f} MB"
        log(
            f"  {run.status}{': ' + run.error if run.error else ''}, {runtime}, {peak}"
            + (f"  OVER BUDGET ({', '.join(run.over_budget)})" if run.over_budget else ""),
            flush=True,
        )
        runs.append(run)
    entries = load_all(results_dir)
    by_name = {run.notebook: run for run in runs}
    others = []
    for entry in entries:
        owner = by_name.get(str(entry.get("notebook")))
        (owner.results if owner is not None else others).append(entry)
    environment = _environment_line()
    rows = load_rows(results_dir)
    tables = format_tables(rows, environment)
    (out / "tables.md").write_text(tables)
    report_text = format_markdown(runs, others, budget_s, budget_mb, environment)
    (out / "report.md").write_text(f"{report_text}\n## Course-wide tables\n\n{tables}")
    summary = {
        "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": environment,
        "budget": {"runtime_s": budget_s, "peak_mb": budget_mb, "cell_timeout_s": timeout},
        "ok": all(run.status == "ok" for run in runs),
        "notebooks": [asdict(run) for run in runs],
        "other_results": others,
        "tables": rows,
    }
    (out / "report.json").write_text(json.dumps(summary, indent=1))
    return runs, others


def _default_notebooks() -> list[str]:
    root = repo_root()
    return [str((root or Path.cwd()) / "notebooks")]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.instructor.report", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--notebooks",
        nargs="+",
        default=None,
        help="notebooks and/or folders of notebooks (default: the repository's notebooks/)",
    )
    parser.add_argument("--out", default="build", help="output folder (default: build)")
    parser.add_argument(
        "--timeout", type=int, default=CELL_TIMEOUT, help="seconds allowed per cell (default: 600)"
    )
    parser.add_argument(
        "--budget-seconds", type=float, default=BUDGET_SECONDS, help="runtime budget (default: 120)"
    )
    parser.add_argument(
        "--budget-mb",
        type=float,
        default=BUDGET_MB,
        help="peak memory budget in MB (default: 3000)",
    )
    parser.add_argument(
        "--strict-budget", action="store_true", help="exit non-zero when a notebook is over budget"
    )
    parser.add_argument(
        "--kernel", default="python3", help="Jupyter kernel name (default: python3)"
    )
    parser.add_argument(
        "--readme",
        default=None,
        help="a README whose course-tables markers get the new tables (only when every "
        "notebook ran)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (1 when a notebook failed)."""
    args = _parser().parse_args(argv)
    try:
        notebooks = find_notebooks(args.notebooks or _default_notebooks())
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not notebooks:
        print("warning: no notebooks found; the report is empty", file=sys.stderr)
    runs, _ = run_report(
        notebooks, Path(args.out), args.budget_seconds, args.budget_mb, args.timeout, args.kernel
    )
    out = Path(args.out)
    print(f"wrote {out / 'report.md'}, {out / 'tables.md'} and {out / 'report.json'}")
    failed = [run.notebook for run in runs if run.status != "ok"]
    if args.readme and not failed:
        try:
            changed = update_readme(args.readme, (out / "tables.md").read_text())
            update_runtimes(args.readme, {run.notebook: run.runtime_s for run in runs})
        except (OSError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"{'updated' if changed else 'unchanged'}: the course-wide tables in {args.readme}")
    elif args.readme:
        print(f"{args.readme} left as it was: a notebook failed", file=sys.stderr)
    flagged = [run.notebook for run in runs if run.over_budget]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    if flagged:
        print(f"over budget: {', '.join(flagged)}", file=sys.stderr)
    return 1 if failed or (args.strict_budget and flagged) else 0


if __name__ == "__main__":
    sys.exit(main())
