"""``make report`` (course_utils.instructor.report) on two tiny notebooks: one records a result,
one fails; then its pieces (finding notebooks, budget, the table, the command line)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_utils.instructor import execution, report

OK_SOURCE = """\
import json, os
from course_utils.core.results import record
record("tiny_ok", "accuracy", 0.5, "%")
record("tiny_ok", "speed-up", 3.25, "x")
from course_utils.core.results import record_row
record_row("detection", "Tiny detector", "tiny_ok", AP50=0.5, AP=-1.0, params=1234)
checkpoints = os.environ["COURSE_CHECKPOINT_DIR"]
files = os.listdir(checkpoints) if os.path.isdir(checkpoints) else []
print(json.dumps({"cwd": os.getcwd(), "results": os.environ["COURSE_RESULTS_DIR"],
                  "checkpoints": checkpoints, "checkpoint_files": files}))"""


def _write(folder: Path, name: str, *cells) -> Path:
    path = folder / f"{name}.ipynb"
    nbformat.write(new_notebook(cells=list(cells)), path)
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Run the report once on the two notebooks; every test below reads what it wrote."""
    root = tmp_path_factory.mktemp("report")
    notebooks = root / "nbs"
    notebooks.mkdir()
    ok = _write(
        notebooks,
        "tiny_ok",
        new_markdown_cell("# A tiny notebook"),
        new_code_cell(OK_SOURCE),
        new_code_cell("print(6 * 7)"),
    )
    failing = _write(
        notebooks,
        "tiny_fail",
        new_code_cell(
            "from course_utils.core.results import record\nrecord('tiny_fail', 'loss', 1.0)"
        ),
        new_code_cell("1 / 0"),
        new_code_cell("print('never reached')"),
    )
    out = root / "build"
    (out / "results").mkdir(parents=True)
    stale = [{"notebook": "old", "name": "stale", "value": 1.0, "unit": "", "note": ""}]
    (out / "results" / "old.json").write_text(json.dumps(stale))
    code = report.main(
        ["--notebooks", str(ok), str(failing), "--out", str(out), "--timeout", "120"]
    )
    summary = json.loads((out / "report.json").read_text())
    runs = {run["notebook"]: run for run in summary["notebooks"]}
    return {
        "code": code,
        "out": out,
        "notebooks": notebooks,
        "summary": summary,
        "runs": runs,
        "markdown": (out / "report.md").read_text(),
        "tables": (out / "tables.md").read_text(),
    }


def test_exit_status_is_non_zero_when_a_notebook_fails(finished):
    assert finished["code"] == 1
    assert finished["summary"]["ok"] is False


def test_the_good_notebook_is_ok_timed_and_measured(finished):
    run = finished["runs"]["tiny_ok"]
    assert run["status"] == "ok" and run["error"] is None
    assert 0 < run["runtime_s"] < 60
    assert 20 < run["peak_mb"] < 3000  # a Python kernel with course_utils imported
    assert Path(run["python"]).name.startswith("python")
    assert run["over_budget"] == []


def test_the_failing_notebook_is_reported_with_its_error_name(finished):
    run = finished["runs"]["tiny_fail"]
    assert run["status"] == "failed"
    assert run["error"].startswith("ZeroDivisionError") and "cell 1" in run["error"]
    assert run["peak_mb"] is not None and run["peak_mb"] > 0


def test_recorded_results_are_gathered_per_notebook_and_stale_ones_dropped(finished):
    ok_results = {entry["name"]: entry for entry in finished["runs"]["tiny_ok"]["results"]}
    assert ok_results["accuracy"]["value"] == 0.5 and ok_results["accuracy"]["unit"] == "%"
    assert set(ok_results) == {"accuracy", "speed-up"}
    assert [entry["name"] for entry in finished["runs"]["tiny_fail"]["results"]] == ["loss"]
    assert finished["summary"]["other_results"] == []
    assert "stale" not in finished["markdown"]


def test_markdown_has_one_table_row_per_notebook(finished):
    lines = finished["markdown"].splitlines()
    header = lines.index("| notebook | status | runtime s | peak MB | recorded results |")
    end = lines.index("## Course-wide tables")
    rows = [line for line in lines[header + 2 : end] if line.startswith("|")]
    assert len(rows) == 2
    ok_row = next(row for row in rows if row.startswith("| tiny_ok "))
    fail_row = next(row for row in rows if row.startswith("| tiny_fail "))
    cells = [cell.strip() for cell in ok_row.strip("|").split("|")]
    assert cells[1] == "ok"
    assert float(cells[2]) == pytest.approx(finished["runs"]["tiny_ok"]["runtime_s"], abs=0.06)
    assert "accuracy = 0.5 %" in cells[4] and "speed-up = 3.25 x" in cells[4]
    assert "failed" in fail_row and "ZeroDivisionError" in fail_row
    assert "## Failures" in finished["markdown"]


def test_kernel_runs_in_the_notebook_folder_with_fresh_checkpoints(finished):
    executed = nbformat.read(finished["out"] / "executed" / "tiny_ok.ipynb", as_version=4)
    stream = executed.cells[1].outputs[0]["text"]
    seen = json.loads(stream)
    assert Path(seen["cwd"]).resolve() == finished["notebooks"].resolve()
    assert Path(seen["results"]) == finished["out"] / "results"
    assert seen["checkpoint_files"] == []
    assert seen["checkpoints"] != os.environ.get("COURSE_CHECKPOINT_DIR")
    assert not Path(seen["checkpoints"]).exists()  # removed after the run


def test_executed_copies_keep_outputs_but_not_the_memory_cell(finished):
    for name, cells in (("tiny_ok", 3), ("tiny_fail", 3)):
        executed = nbformat.read(finished["out"] / "executed" / f"{name}.ipynb", as_version=4)
        assert len(executed.cells) == cells
        assert execution._MARKER not in nbformat.writes(executed)
    ok = nbformat.read(finished["out"] / "executed" / "tiny_ok.ipynb", as_version=4)
    assert ok.cells[2].outputs[0]["text"].strip() == "42"
    failed = nbformat.read(finished["out"] / "executed" / "tiny_fail.ipynb", as_version=4)
    assert failed.cells[1].outputs[0]["ename"] == "ZeroDivisionError"
    assert failed.cells[2].get("outputs") == []


# ------------------------------------------------------------------------ pieces, without kernels


def test_find_notebooks_expands_folders_and_rejects_what_is_not_a_notebook(tmp_path):
    for name in ("b.ipynb", "a.ipynb", ".hidden.ipynb", "notes.txt"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in report.find_notebooks([tmp_path])] == ["a.ipynb", "b.ipynb"]
    assert [p.name for p in report.find_notebooks([tmp_path / "b.ipynb", tmp_path])] == [
        "b.ipynb",
        "a.ipynb",
    ]
    with pytest.raises(FileNotFoundError):
        report.find_notebooks([tmp_path / "missing.ipynb"])
    with pytest.raises(ValueError, match="not a notebook"):
        report.find_notebooks([tmp_path / "notes.txt"])


def test_budget_flags():
    assert report.budget_flags(119.0, 2999.0) == []
    assert report.budget_flags(121.0, 100.0) == ["runtime 121 s > 120 s"]
    assert report.budget_flags(10.0, 3500.0, budget_mb=3000.0) == ["peak memory 3500 MB > 3000 MB"]
    assert len(report.budget_flags(200.0, 5000.0)) == 2
    assert report.budget_flags(None, None) == []
    assert report.budget_flags(120.0, 3000.0) == []  # the budget itself is within it
    assert report.budget_flags(61.0, 10.0, budget_s=60.0) == ["runtime 61 s > 60 s"]


def test_format_markdown_flags_over_budget_and_escapes_pipes():
    runs = [
        execution.NotebookRun(
            "03_rcnn",
            "a",
            "ok",
            runtime_s=150.0,
            peak_mb=100.0,
            over_budget=report.budget_flags(150.0, 100.0),
            results=[{"name": "AP|50", "value": 0.123456, "unit": ""}],
        ),
        execution.NotebookRun(
            "04_fast_rcnn", "b", "failed", error="CellTimeoutError: too slow (cell 5)"
        ),
    ]
    text = report.format_markdown(
        runs, [{"notebook": "zz", "name": "x", "value": 2.0, "unit": "s"}]
    )
    assert "| 03_rcnn | ok, **over budget** | **150.0** | 100 | AP\\|50 = 0.1235 |" in text
    assert "| 04_fast_rcnn | **failed**: CellTimeoutError | – | – | – |" in text
    assert "03_rcnn: runtime 150 s > 120 s" in text
    assert "zz: x = 2 s" in text
    assert (
        report.format_result({"name": "speed", "value": 12.0, "unit": "ms/image"})
        == "speed = 12 ms/image"
    )
    assert report.format_result({"name": "count", "value": 7}) == "count = 7"
    assert report.format_result({"value": 0.123456}) == "? = 0.1235"
    assert "2 notebooks, 1 failed, 1 over budget" in text
    assert text.index("## Failures") < text.index("## Over budget") < text.index("## Results")


def test_main_exit_status_and_strict_budget(tmp_path, monkeypatch):
    notebook = _write(tmp_path, "slow_one", new_code_cell("pass"))

    def fake_run(path, executed_path, results_dir, timeout, kernel_name):
        return execution.NotebookRun(
            Path(path).stem, str(path), "ok", runtime_s=500.0, peak_mb=10.0
        )

    monkeypatch.setattr(report, "run_notebook", fake_run)
    out = tmp_path / "out"
    assert report.main(["--notebooks", str(notebook), "--out", str(out)]) == 0
    assert "over budget" in (out / "report.md").read_text()
    summary = json.loads((out / "report.json").read_text())
    assert summary["ok"] is True and summary["budget"]["runtime_s"] == report.BUDGET_SECONDS
    assert summary["notebooks"][0]["over_budget"] == ["runtime 500 s > 120 s"]
    assert report.main(["--notebooks", str(notebook), "--out", str(out), "--strict-budget"]) == 1
    assert report.main(["--notebooks", str(tmp_path / "nope.ipynb"), "--out", str(out)]) == 2


def test_runs_as_a_module():
    completed = subprocess.run(
        [sys.executable, "-m", "course_utils.instructor.report", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0
    assert "--notebooks" in completed.stdout and "--out" in completed.stdout


def test_a_relative_out_folder_still_gathers_the_results(tmp_path, monkeypatch):
    # `make report` passes "--out build"; the kernel runs in the notebooks' folder, not in the
    # working directory
    (tmp_path / "nbs").mkdir()
    notebook = _write(
        tmp_path / "nbs",
        "tiny_relative",
        new_code_cell(
            "from course_utils.core.results import record\n"
            "record('tiny_relative', 'accuracy', 0.75)"
        ),
    )
    monkeypatch.chdir(tmp_path)
    assert (
        report.main(
            [
                "--notebooks",
                str(notebook.relative_to(tmp_path)),
                "--out",
                "build",
                "--timeout",
                "120",
            ]
        )
        == 0
    )
    assert "accuracy = 0.75" in (tmp_path / "build" / "report.md").read_text()
    assert not (tmp_path / "nbs" / "build").exists()


def test_importing_the_report_needs_no_notebook_tooling():
    """nbformat and nbclient are imported when a notebook runs, not for ``--help``."""
    script = (
        "import sys\n"
        "class Blocker:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('nbformat', 'nbclient', 'jupyter_client', 'torch'):\n"
        "            raise ImportError(name + ' is blocked by the test')\n"
        "sys.meta_path.insert(0, Blocker())\n"
        "from course_utils.instructor import report\n"
        "sys.exit(report.main(['--help']))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    assert "--strict-budget" in completed.stdout


def test_the_course_wide_tables_hold_the_recorded_rows(finished):
    row = next(line for line in finished["tables"].splitlines() if "Tiny detector" in line)
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[:4] == ["Tiny detector", "`tiny_ok`", "0.500", "–"]  # AP -1: "–"
    assert cells[-2:] == ["1,234", "–"]
    assert "(no rows recorded)" in finished["tables"]  # nobody recorded a segmentation row
    assert finished["tables"] in finished["markdown"]
    assert finished["summary"]["tables"]["detection"][0]["method"] == "Tiny detector"


def test_main_updates_the_readme_only_when_every_notebook_ran(tmp_path, monkeypatch):
    from course_utils.instructor import tables

    def fake_run(path, executed_path, results_dir, timeout, kernel_name):
        status = "failed" if "bad" in Path(path).name else "ok"
        return execution.NotebookRun(Path(path).stem, str(path), status, runtime_s=1.0)

    monkeypatch.setattr(report, "run_notebook", fake_run)
    monkeypatch.setattr(report, "_environment_line", lambda: "a test machine")
    readme = tmp_path / "README.md"
    original = (
        f"# Course\n\n| `good` | a notebook | 999 s |\n\n{tables.BEGIN_MARKER}\nold\n"
        f"{tables.END_MARKER}\nafter\n"
    )
    readme.write_text(original)
    good, bad = tmp_path / "good.ipynb", tmp_path / "bad.ipynb"
    for path in (good, bad):
        nbformat.write(new_notebook(cells=[]), path)
    out = str(tmp_path / "out")
    args = ["--out", out, "--readme", str(readme)]
    assert report.main(["--notebooks", str(good), str(bad), *args]) == 1
    assert readme.read_text() == original
    assert report.main(["--notebooks", str(good), *args]) == 0
    text = readme.read_text()
    assert "old" not in text and text.endswith(f"{tables.END_MARKER}\nafter\n")
    assert "a test machine" in text and "#### Detection" in text
    assert "| `good` | a notebook | 1 s |" in text  # the runtime written into its row
