"""The student release: nbgrader metadata, the release itself, what a student sees running it.

For every source notebook in notebooks/ (none, some or all may exist) and for the worked example
tests/fixtures/assignment_example.ipynb:

- its nbgrader metadata is valid;
- the release contains none of the solution or hidden-test lines, and no outputs;
- executed in a fresh kernel, the release stops with NotImplementedError (or CheckFailed) no later
  than the first graded check cell, and with USE_REFERENCE_SOLUTIONS = True the fallback cell then
  switches to the reference.

release/ is committed; a test keeps it identical to what ``make release`` generates.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbgrader.nbgraderformat import MetadataValidator

from course_utils.instructor.release import (
    BEGIN_HIDDEN_TESTS,
    check_cell,
    main,
    nbgrader_problems,
    release_all,
    release_notebook,
    release_preprocessors,
    solution_cell,
    source_notebooks,
    validate_nbgrader_metadata,
)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
RELEASE = ROOT / "release"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "assignment_example.ipynb"
SOURCE_NOTEBOOKS = source_notebooks(NOTEBOOKS) if NOTEBOOKS.is_dir() else []
SOURCES = SOURCE_NOTEBOOKS + [FIXTURE]
STUB = "raise NotImplementedError()"


def _ids(paths):
    return [p.stem if p != FIXTURE else "fixture-assignment_example" for p in paths]


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _is_check(cell) -> bool:
    return bool(_nbgrader(cell).get("grade")) and not _nbgrader(cell).get("solution")


def _region_lines(source: str, begin: str, end: str) -> list[str]:
    """Stripped, non-empty lines strictly inside begin/end regions."""
    lines, inside = [], False
    for line in source.split("\n"):
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


def _secret_lines(nb) -> set[str]:
    """Solution and hidden-test lines that appear nowhere else in the source notebook."""
    secret, public = set(), set()
    for cell in nb.cells:
        inside = _region_lines(
            cell.source, "BEGIN SOLUTION", "END SOLUTION"
        )  # nbgrader's own delimiters
        inside += _region_lines(cell.source, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
        if (
            _nbgrader(cell).get("solution") and not inside
        ):  # a whole-cell solution (markdown answers)
            inside = [line.strip() for line in cell.source.split("\n") if line.strip()]
        secret.update(inside)
        public.update(
            line.strip() for line in cell.source.split("\n") if line.strip() not in inside
        )
    return secret - public


def _all_lines(nb) -> set[str]:
    return {line.strip() for cell in nb.cells for line in cell.source.split("\n")}


# --------------------------------------------------------------------------------------------------
# Building cells and validating metadata
# --------------------------------------------------------------------------------------------------

SOLUTION_SOURCE = "def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"


def test_solution_and_check_cells_carry_nbgrader_metadata():
    solution = solution_cell(SOLUTION_SOURCE, "f")
    check = check_cell("check_f(f)", "check_f", points=2)
    assert solution.id == "f" and check.id == "check_f"
    assert solution.metadata.nbgrader == {
        "grade": False,
        "grade_id": "f",
        "locked": False,
        "schema_version": 3,
        "solution": True,
        "task": False,
    }
    assert check.metadata.nbgrader == {
        "grade": True,
        "grade_id": "check_f",
        "locked": True,
        "points": 2,
        "schema_version": 3,
        "solution": False,
        "task": False,
    }
    nb = nbformat.v4.new_notebook(cells=[solution, check])
    nbformat.validate(nb)
    MetadataValidator().validate_nb(nb)  # nbgrader's own validator agrees
    assert nbgrader_problems(nb) == []


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: solution_cell("def f(x):\n    return 2 * x", "f"), "needs one or more regions"),
        (lambda: solution_cell("### BEGIN SOLUTION\nx = 1", "f"), "needs one or more regions"),
        (lambda: solution_cell(SOLUTION_SOURCE, "has space"), "grade_id"),
        (lambda: solution_cell(SOLUTION_SOURCE, ""), "grade_id"),
        (lambda: check_cell("check_f(f)", "c", points=0), "points > 0"),
        (lambda: check_cell("check_f(f)", "c", points=True), "points > 0"),
        (lambda: check_cell(SOLUTION_SOURCE, "c", points=1), "must not contain a solution"),
        (lambda: check_cell("### BEGIN HIDDEN TESTS\nassert 1", "c", points=1), "unbalanced"),
    ],
)
def test_cell_builders_reject_bad_input(build, words):
    with pytest.raises(ValueError, match=words):
        build()


def _nb(*cells):
    return nbformat.v4.new_notebook(cells=list(cells))


def test_nbgrader_problems_finds_each_mistake():
    good = solution_cell(SOLUTION_SOURCE, "f")
    duplicate = check_cell("check(f)", "f", points=1)
    duplicate.id = (
        "f-again"  # nbformat cell ids must stay unique; the grade_id is what is duplicated
    )
    no_points = check_cell("check(f)", "c", points=1)
    del no_points.metadata.nbgrader["points"]
    old_schema = check_cell("check(f)", "old", points=1)
    old_schema.metadata.nbgrader["schema_version"] = 2
    no_region = solution_cell(SOLUTION_SOURCE, "g")
    no_region.source = "def g(x):\n    return x"
    loose = nbformat.v4.new_code_cell(SOLUTION_SOURCE)
    hidden_outside = solution_cell(
        SOLUTION_SOURCE + "\n### BEGIN HIDDEN TESTS\nassert 1\n### END HIDDEN TESTS", "h"
    )
    region_in_check = check_cell("check(f)", "k", points=1)
    region_in_check.source = SOLUTION_SOURCE
    missing_keys = nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {"grade": True}})
    prose = nbformat.v4.new_markdown_cell(
        "Write code between the `### BEGIN SOLUTION` and\n`### END SOLUTION` lines."
    )
    cells = [
        good,
        duplicate,
        no_points,
        old_schema,
        no_region,
        loose,
        hidden_outside,
        region_in_check,
        missing_keys,
    ]
    problems = nbgrader_problems(_nb(*cells, prose))
    text = "\n".join(problems)
    for words in [
        "grade_id 'f' is also used by cell 0",
        "needs points > 0",
        "schema_version is 2",
        "solution cell 'g' has no",
        "cell 5 (code) contains 'BEGIN SOLUTION' / 'END SOLUTION' but has no nbgrader metadata",
        "has hidden tests but is not a graded cell",
        "has a solution region but is not a solution cell",
        "lacks locked, schema_version, solution",
        "cell 9 (markdown) contains 'BEGIN SOLUTION' / 'END SOLUTION' but has no nbgrader metadata",
    ]:
        assert words in text, (words, problems)
    with pytest.raises(ValueError, match="invalid nbgrader metadata"):
        validate_nbgrader_metadata(_nb(good, duplicate))
    validate_nbgrader_metadata(_nb(good))


@pytest.mark.parametrize("path", SOURCES, ids=_ids(SOURCES))
def test_notebook_nbgrader_metadata_is_valid(path):
    nb = nbformat.read(path, as_version=4)
    assert nbgrader_problems(nb) == []
    MetadataValidator().validate_nb(nb)


# --------------------------------------------------------------------------------------------------
# The release
# --------------------------------------------------------------------------------------------------


def test_release_of_the_example(tmp_path):
    source = nbformat.read(FIXTURE, as_version=4)
    for index, cell in enumerate(source.cells):  # give it outputs, as if it had been run
        if cell.cell_type == "code":
            cell.execution_count = index
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ran\n")]
    path = tmp_path / "example.ipynb"
    nbformat.write(source, path)
    released = release_notebook(path)
    assert nbformat.read(path, as_version=4) == source  # the source file is left alone
    assert len(released.cells) == len(source.cells)
    for before, after in zip(source.cells, released.cells):
        if after.cell_type == "code":
            assert after.outputs == [] and after.execution_count is None
        meta = _nbgrader(before)
        if meta.get("solution"):
            assert STUB in after.source and "# YOUR CODE HERE" in after.source
            assert after.source.split("\n")[0] == before.source.split("\n")[0]  # the def line stays
            assert after.metadata["deletable"] is False
            assert len(_nbgrader(after)["checksum"]) == 32
        elif meta.get("grade"):
            assert (
                BEGIN_HIDDEN_TESTS not in after.source
                and "check_box_area(box_area)" in after.source
            )
            assert after.metadata["editable"] is False
        else:
            assert after.source == before.source
    assert not _secret_lines(source) & _all_lines(released)
    assert _secret_lines(source)  # the example has secrets to hide


@pytest.mark.parametrize("path", SOURCES, ids=_ids(SOURCES))
def test_release_hides_every_solution_line(path):
    source = nbformat.read(path, as_version=4)
    released = release_notebook(path)
    leaked = _secret_lines(source) & _all_lines(released)
    assert not leaked, f"solution lines left in the release: {sorted(leaked)}"
    assert "BEGIN SOLUTION" not in json.dumps(released) and "END SOLUTION" not in json.dumps(
        released
    )
    assert all(c.outputs == [] for c in released.cells if c.cell_type == "code")
    solutions = sum(bool(_nbgrader(c).get("solution")) for c in source.cells)
    assert sum(STUB in c.source for c in released.cells) >= solutions - sum(
        c.cell_type == "markdown" and bool(_nbgrader(c).get("solution")) for c in source.cells
    )


def test_release_all_writes_prunes_and_keeps_other_files(tmp_path, capsys):
    source, out = tmp_path / "src", tmp_path / "out"
    source.mkdir()
    (source / "a.ipynb").write_text(FIXTURE.read_text())
    (source / "b.ipynb").write_text(
        nbformat.writes(_nb(nbformat.v4.new_markdown_cell("no assignment")))
    )
    out.mkdir()
    (out / "stale.ipynb").write_text("{}")
    (out / "README.md").write_text("kept")
    (source / ".hidden.ipynb").write_text("not a notebook")
    written = release_all(source, out)
    assert [p.name for p in written] == ["a.ipynb", "b.ipynb"]
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "a.ipynb", "b.ipynb"]
    assert STUB in (out / "a.ipynb").read_text()
    mtime = (out / "a.ipynb").stat().st_mtime_ns
    assert main(["--source", str(source), "--out", str(out)]) == 0
    assert "released 2 notebook(s)" in capsys.readouterr().out
    assert (out / "a.ipynb").stat().st_mtime_ns == mtime  # unchanged content is not rewritten
    with pytest.raises(ValueError, match="must differ"):
        release_all(source, source)


def test_main_reports_invalid_notebooks_and_missing_folders(tmp_path, capsys):
    bad = _nb(nbformat.v4.new_code_cell(SOLUTION_SOURCE))
    (tmp_path / "bad.ipynb").write_text(nbformat.writes(bad))
    assert main(["--source", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    assert "no nbgrader metadata" in capsys.readouterr().err
    assert main(["--source", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 1
    with pytest.raises(FileNotFoundError):
        source_notebooks(tmp_path / "missing")


def test_release_uses_nbgraders_preprocessors_in_generate_assignments_order():
    names = [type(step).__name__ for step in release_preprocessors()]
    assert names == [
        "LockCells",
        "ClearSolutions",
        "ClearOutput",
        "CheckCellMetadata",
        "ClearHiddenTests",
        "ClearMarkScheme",
        "ComputeChecksums",
        "CheckCellMetadata",
    ]


def test_release_without_nbgrader_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "nbgrader.preprocessors", None)  # import raises ImportError
    with pytest.raises(ImportError, match=r"pip install -e '\.\[instructor\]'"):
        release_preprocessors()
    with pytest.raises(ImportError, match="needs nbgrader"):
        release_notebook(FIXTURE)


WITHOUT_NOTEBOOK_TOOLING = """
import sys

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("nbgrader", "nbformat", "nbclient", "nbconvert"):
            raise ImportError(f"{name} is blocked by the test")
        return None

sys.meta_path.insert(0, Blocker())
import course_utils.instructor.release as release

cell = None
try:
    release.check_cell("check(f)", "check_f", points=1)
except ImportError as error:
    cell = str(error)
loaded = sorted(n for n in sys.modules if n.split(".")[0] in ("nbgrader", "nbformat", "nbclient"))
print(loaded, cell)
sys.argv = ["release", "--help"]
release.main()
"""


def test_release_imports_and_shows_help_without_nbgrader_or_nbformat():
    """Importing the module needs neither (they are imported when a notebook is handled)."""
    completed = subprocess.run(
        [sys.executable, "-c", WITHOUT_NOTEBOOK_TOOLING],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr
    first, _, help_text = completed.stdout.partition("\n")
    assert first == "[] nbformat is blocked by the test"
    assert "--source" in help_text and "--no-prune" in help_text


def test_committed_release_matches_make_release():
    """release/ is committed for Colab; it must be exactly what `make release` writes."""
    sources = source_notebooks(NOTEBOOKS) if NOTEBOOKS.is_dir() else []
    committed = sorted(RELEASE.glob("*.ipynb")) if RELEASE.is_dir() else []
    assert [p.name for p in committed] == [p.name for p in sources], (
        "run `make release` and commit release/"
    )
    for src in sources:
        generated = json.loads(nbformat.writes(release_notebook(src)))
        assert json.loads((RELEASE / src.name).read_text(encoding="utf-8")) == generated, (
            f"release/{src.name} is out of date: run `make release` and commit release/"
        )


# --------------------------------------------------------------------------------------------------
# Running the release as a student would
# --------------------------------------------------------------------------------------------------


def _client(nb, cwd: Path) -> NotebookClient:
    kernel = nb.metadata.get("kernelspec", {}).get("name", "python3")
    return NotebookClient(
        nb, timeout=300, kernel_name=kernel, resources={"metadata": {"path": str(cwd)}}
    )


def _stdout(cell) -> str:
    return "".join(
        o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout"
    )


def _first_check(nb) -> int | None:
    return next((i for i, c in enumerate(nb.cells) if _is_check(c)), None)


def _write_release(path: Path, tmp_path: Path):
    """The release of ``path`` written to tmp_path/release/ (the folder it is run from)."""
    folder = tmp_path / "release"
    folder.mkdir()
    nb = release_notebook(path)
    nbformat.write(nb, folder / path.name)
    return nb, folder


def _run_until_the_first_check_fails(client: NotebookClient, nb) -> int:
    """Run cells in order up to the first graded check; assert it stops there (or at a solution
    stub before)."""
    first_check = _first_check(nb)
    first_assignment = min(
        i for i, c in enumerate(nb.cells) if _nbgrader(c).get("solution") or _is_check(c)
    )
    for index, cell in enumerate(nb.cells[: first_check + 1]):
        try:
            client.execute_cell(cell, index)
        except CellExecutionError as error:
            assert first_assignment <= index, (
                f"cell {index} failed before any assignment cell: {error.ename}"
            )
            assert error.ename in {"NotImplementedError", "CheckFailed"}, (
                f"cell {index} raised {error.ename}"
            )
            if index == first_check:
                assert "is not written yet" in json.dumps(cell.outputs)
            return first_check
    raise AssertionError(f"the release ran through check cell {first_check} without an error")


def _set_reference_solutions(client: NotebookClient, nb, value: bool) -> bool:
    """Edit and re-run the settings cell, as a student does; False if the notebook has none."""
    index = next(
        (i for i, c in enumerate(nb.cells) if "USE_REFERENCE_SOLUTIONS =" in c.source), None
    )
    if index is None:
        return False
    cell = nb.cells[index]
    cell.source = cell.source.replace(
        f"USE_REFERENCE_SOLUTIONS = {not value}", f"USE_REFERENCE_SOLUTIONS = {value}"
    )
    assert f"USE_REFERENCE_SOLUTIONS = {value}" in cell.source
    client.execute_cell(cell, index)
    return True


def _run_through_the_fallback(client: NotebookClient, nb, after: int) -> int | None:
    """Run the cells after ``after`` up to the next fallback cell; return its index (None if
    there is none)."""
    fallback = next(
        (
            i
            for i in range(after + 1, len(nb.cells))
            if "use_reference_if_stuck(" in nb.cells[i].source
        ),
        None,
    )
    if fallback is None:
        return None
    for index in range(after + 1, fallback + 1):
        client.execute_cell(nb.cells[index], index)
    return fallback


@pytest.mark.slow
@pytest.mark.parametrize("path", SOURCE_NOTEBOOKS, ids=_ids(SOURCE_NOTEBOOKS))
def test_released_notebook_stops_at_the_first_check(path, tmp_path):
    """Fresh kernel, the release's own folder: it must fail at (or before) the first graded
    check, never pass silently; then USE_REFERENCE_SOLUTIONS = True makes the fallback cell
    switch to the reference."""
    if _first_check(nbformat.read(path, as_version=4)) is None:
        pytest.skip("no graded check cell in this notebook")
    nb, folder = _write_release(path, tmp_path)
    client = _client(nb, folder)
    with client.setup_kernel():
        first_check = _run_until_the_first_check_fails(client, nb)
        if _set_reference_solutions(client, nb, True):
            fallback = _run_through_the_fallback(client, nb, first_check)
            if fallback is not None:
                assert "use the reference" in _stdout(nb.cells[fallback])


@pytest.mark.slow
def test_example_notebook_as_a_student_and_as_the_instructor_run_it(tmp_path):
    """The same checks on the worked example, plus what comes after: one kernel for the whole
    story."""
    source = nbformat.read(FIXTURE, as_version=4)
    nb, folder = _write_release(FIXTURE, tmp_path)
    client = _client(nb, folder)
    cell = {c.id: i for i, c in enumerate(nb.cells)}
    with client.setup_kernel():
        # The student runs the release: the graded check fails on the stub, and says so.
        first_check = _run_until_the_first_check_fails(client, nb)
        assert first_check == cell["check_box_area"]
        # Stuck, the student opts in: the fallback switches to the reference, later cells work.
        assert _set_reference_solutions(client, nb, True)
        assert _run_through_the_fallback(client, nb, first_check) == cell["fallback_box_area"]
        note = _stdout(nb.cells[cell["fallback_box_area"]])
        assert "box_area: the cells below use the reference torchvision.ops.boxes.box_area" in note
        client.execute_cell(nb.cells[cell["later"]], cell["later"])
        assert _stdout(nb.cells[cell["later"]]) == "areas: [8.0, 2.0]\n"
        # The instructor's solution passes the check; with the setting off the fallback is silent.
        nb.cells[cell["box_area"]] = source.cells[cell["box_area"]]
        for name in ("box_area", "check_box_area"):
            client.execute_cell(nb.cells[cell[name]], cell[name])
        check_output = _stdout(nb.cells[cell["check_box_area"]])
        first_line = check_output.splitlines()[0]
        assert first_line.startswith("✓ box_area: all ") and first_line.endswith(" cases pass")
        assert _set_reference_solutions(client, nb, False)
        for name in ("fallback_box_area", "later"):
            client.execute_cell(nb.cells[cell[name]], cell[name])
        assert _stdout(nb.cells[cell["fallback_box_area"]]) == ""
        assert _stdout(nb.cells[cell["later"]]) == "areas: [8.0, 2.0]\n"
