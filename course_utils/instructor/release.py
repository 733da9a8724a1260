"""The student release of the course notebooks, built with nbgrader's own preprocessors.

Source notebooks (notebooks/) hold the instructor's solutions between ``### BEGIN SOLUTION``
and ``### END SOLUTION`` in cells carrying nbgrader metadata. The release (release/, same file
names) has

- every solution region replaced by nbgrader's stub ``# YOUR CODE HERE`` /
  ``raise NotImplementedError()``,
- every ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` region removed,
- all outputs and execution counts cleared, solution and check cells locked against deletion,
  and nbgrader's checksums added, exactly as ``nbgrader generate_assignment`` would (without
  its database).

Command line (what ``make release`` runs)::

    python -m course_utils.instructor.release [--source notebooks] [--out release]

nbgrader is an instructor extra (``pip install -e ".[instructor]"``); students never need it.
It is imported only when a release is built (:func:`release_preprocessors`), and nbformat only
when a notebook is read, written or a cell built: importing this module and ``--help`` need
neither. The cell builders :func:`solution_cell` and :func:`check_cell` and the validator
:func:`nbgrader_problems` work without nbgrader, so scripts that build notebooks do too.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from course_utils.core.colab import repository_url
from course_utils.instructor.stamp import stamp_file, stamp_notebook

if TYPE_CHECKING:
    from nbformat import NotebookNode

__all__ = [
    "BEGIN_HIDDEN_TESTS",
    "BEGIN_SOLUTION",
    "END_HIDDEN_TESTS",
    "END_SOLUTION",
    "NBGRADER_SCHEMA_VERSION",
    "check_cell",
    "main",
    "nbgrader_problems",
    "release_all",
    "release_notebook",
    "release_preprocessors",
    "solution_cell",
    "source_notebooks",
    "validate_nbgrader_metadata",
]

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN_TESTS = "### BEGIN HIDDEN TESTS"
END_HIDDEN_TESTS = "### END HIDDEN TESTS"
NBGRADER_SCHEMA_VERSION = 3
# What nbgrader's ClearSolutions / ClearHiddenTests actually look for: ANY line containing these
# words is a delimiter, in any cell, including markdown prose that merely mentions them.
_SOLUTION_WORDS = ("BEGIN SOLUTION", "END SOLUTION")
_HIDDEN_WORDS = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
_GRADE_ID = re.compile(
    r"^[A-Za-z0-9_-]{1,64}$"
)  # nbgrader's pattern; also a valid nbformat cell id


# --------------------------------------------------------------------------------------------------
# Building assignment cells
# --------------------------------------------------------------------------------------------------


def solution_cell(source: str, grade_id: str) -> NotebookNode:
    """A code cell the student completes: nbgrader "Autograded answer" metadata, cell id = grade_id.

    ``source`` must contain a ``### BEGIN SOLUTION`` / ``### END SOLUTION`` region (put it inside a
    ``def`` so the released stub still defines the function); the release replaces that region by
    ``# YOUR CODE HERE`` / ``raise NotImplementedError()``.
    """
    _require_grade_id(grade_id)
    regions = _regions(source, *_SOLUTION_WORDS)
    if regions is None or not regions:
        raise ValueError(
            f"solution cell {grade_id!r} needs one or more regions between {BEGIN_SOLUTION!r} "
            f"and {END_SOLUTION!r}"
        )
    return _code_cell(source, grade_id, grade=False, solution=True, locked=False)


def check_cell(source: str, grade_id: str, points: float) -> NotebookNode:
    """A graded, read-only check cell ("Autograder tests"): it must raise when the answer is wrong.

    ``points`` (> 0) is what nbgrader awards when the cell runs without an error. An optional
    ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS`` region is removed from the release.
    """
    _require_grade_id(grade_id)
    if isinstance(points, bool) or not isinstance(points, (int, float)) or not points > 0:
        raise ValueError(f"check cell {grade_id!r} needs points > 0, got {points!r}")
    if any(word in source for word in _SOLUTION_WORDS):
        raise ValueError(f"check cell {grade_id!r} must not contain a solution region")
    if _regions(source, *_HIDDEN_WORDS) is None:
        raise ValueError(f"check cell {grade_id!r} has unbalanced hidden-test delimiters")
    return _code_cell(source, grade_id, grade=True, solution=False, locked=True, points=points)


# --------------------------------------------------------------------------------------------------
# Validating nbgrader metadata
# --------------------------------------------------------------------------------------------------


def nbgrader_problems(nb: NotebookNode) -> list[str]:
    """Everything wrong with a source notebook's nbgrader metadata (empty list when it is valid).

    Checks: schema_version 3 with the required keys; grade_ids present, well formed and
    unique; solution code cells hold balanced BEGIN/END SOLUTION regions and no other cell
    does; graded cells have points > 0; hidden-test regions are balanced and only in graded
    cells; markdown solution cells are also graded.
    """
    problems: list[str] = []
    seen: dict[str, int] = {}
    for index, cell in enumerate(nb.cells):
        where = f"cell {index}"
        meta = cell.get("metadata", {}).get("nbgrader")
        source = cell.get("source", "")
        if meta is None:
            words = [w for w in _SOLUTION_WORDS + _HIDDEN_WORDS if w in source]
            if words:
                problems.append(
                    f"{where} ({cell.cell_type}) contains {' / '.join(repr(w) for w in words)} "
                    "but has no nbgrader metadata: nbgrader treats every line containing these "
                    "words as a delimiter, even in prose; reword it (e.g. 'between the solution "
                    "markers')"
                )
            continue
        problems += [f"{where}: {p}" for p in _cell_problems(cell, meta, source)]
        grade_id = meta.get("grade_id")
        if isinstance(grade_id, str) and grade_id:
            if grade_id in seen:
                problems.append(
                    f"{where}: grade_id {grade_id!r} is also used by cell {seen[grade_id]}"
                )
            seen.setdefault(grade_id, index)
    return problems


def validate_nbgrader_metadata(nb: NotebookNode, name: str = "notebook") -> None:
    """Raise ValueError listing every problem :func:`nbgrader_problems` finds in ``nb``."""
    problems = nbgrader_problems(nb)
    if problems:
        raise ValueError(f"{name} has invalid nbgrader metadata:\n  " + "\n  ".join(problems))


# --------------------------------------------------------------------------------------------------
# Releasing
# --------------------------------------------------------------------------------------------------


def release_preprocessors() -> list[Any]:
    """nbgrader's preprocessors in ``nbgrader generate_assignment``'s order, minus the header
    and database steps. Raises ``ImportError`` (with the install command) without nbgrader."""
    try:
        from nbgrader.preprocessors import (
            CheckCellMetadata,
            ClearHiddenTests,
            ClearMarkScheme,
            ClearOutput,
            ClearSolutions,
            ComputeChecksums,
            LockCells,
        )
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "building the student release needs nbgrader, an instructor extra: "
            "pip install -e '.[instructor]'"
        ) from error
    return [
        LockCells(),
        ClearSolutions(),
        ClearOutput(),
        CheckCellMetadata(),
        ClearHiddenTests(),
        ClearMarkScheme(),
        ComputeChecksums(),
        CheckCellMetadata(),
    ]


def release_notebook(src_path: str | Path, url: str | None = None) -> NotebookNode:
    """The student version of the source notebook at ``src_path`` (the file is not modified),
    its set-up cell and Colab badges pointing at ``url`` (default: ``repository_url()``)."""
    import nbformat

    src_path = Path(src_path)
    nb = nbformat.read(src_path, as_version=4)
    validate_nbgrader_metadata(nb, name=str(src_path))
    nb = copy.deepcopy(nb)
    resources: dict[str, Any] = {}
    for preprocessor in release_preprocessors():
        nb, resources = preprocessor.preprocess(nb, resources)
    stamp_notebook(nb, repository_url() if url is None else url)
    nbformat.validate(nb)
    return nb


def source_notebooks(source: str | Path) -> list[Path]:
    """The notebooks directly in ``source`` (``*.ipynb``, sorted; hidden files and checkpoints
    ignored)."""
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"no notebook folder {source}")
    return sorted(p for p in source.glob("*.ipynb") if p.is_file() and not p.name.startswith("."))


def release_all(
    source: str | Path = "notebooks",
    out: str | Path = "release",
    *,
    prune: bool = True,
    url: str | None = None,
) -> list[Path]:
    """Write the release of every notebook in ``source`` to ``out`` (same names); return the
    written paths.

    First the source notebooks themselves are stamped with ``url`` (default:
    ``repository_url()``, pyproject's ``[project.urls] Repository``): their set-up cell and Colab
    badges, nothing else (``instructor.stamp``). With ``prune`` (default), notebooks in ``out``
    without a source notebook are deleted (other files are kept). Notebooks are written only when
    their content changes, so unchanged files keep their timestamps.
    """
    import nbformat

    url = repository_url() if url is None else url
    sources = source_notebooks(source)
    for src in sources:
        stamp_file(src, url)
    out = Path(out)
    if out.resolve() == Path(source).resolve():
        raise ValueError("the release folder must differ from the source folder")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for src in sources:
        target = out / src.name
        text = nbformat.writes(release_notebook(src, url)) + "\n"
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
        written.append(target)
    if prune:
        names = {src.name for src in sources}
        for stale in sorted(out.glob("*.ipynb")):
            if stale.name not in names:
                stale.unlink()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m course_utils.instructor.release [--source notebooks]
    [--out release] [--no-prune]``; returns the exit status (1 when the release failed)."""
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.instructor.release",
        description="Write the student version of every notebook.",
    )
    parser.add_argument(
        "--source", default="notebooks", help="folder of source notebooks (default: notebooks)"
    )
    parser.add_argument(
        "--out", default="release", help="folder for the student notebooks (default: release)"
    )
    parser.add_argument(
        "--no-prune", action="store_true", help="keep notebooks in --out that have no source"
    )
    args = parser.parse_args(argv)
    try:
        written = release_all(args.source, args.out, prune=not args.no_prune)
    except (ValueError, FileNotFoundError) as error:
        print(f"release failed: {error}", file=sys.stderr)
        return 1
    print(f"released {len(written)} notebook(s) from {args.source}/ to {args.out}/")
    return 0


# --------------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------------


def _require_grade_id(grade_id: str) -> None:
    if not isinstance(grade_id, str) or not _GRADE_ID.match(grade_id):
        raise ValueError(f"grade_id must be 1-64 letters, digits, '_' or '-', got {grade_id!r}")


def _code_cell(source: str, grade_id: str, **nbgrader: Any) -> NotebookNode:
    from nbformat.v4 import new_code_cell

    cell = new_code_cell(source)
    cell.id = grade_id
    meta = {
        "schema_version": NBGRADER_SCHEMA_VERSION,
        "grade_id": grade_id,
        "task": False,
        **nbgrader,
    }
    cell.metadata["nbgrader"] = dict(sorted(meta.items()))
    return cell


def _regions(source: str, begin: str, end: str) -> list[tuple[int, int]] | None:
    """(begin line, end line) of each delimited region; None when the delimiters are unbalanced
    or nested."""
    regions, start = [], None
    for number, line in enumerate(source.split("\n")):
        if begin in line:
            if start is not None:
                return None
            start = number
        elif end in line:
            if start is None:
                return None
            regions.append((start, number))
            start = None
    return None if start is not None else regions


def _cell_problems(cell: NotebookNode, meta: dict, source: str) -> list[str]:
    """Problems of one cell that has nbgrader metadata."""
    problems = []
    required = {"schema_version", "grade", "solution", "locked"}
    missing = sorted(required - set(meta))
    if missing:
        return [f"nbgrader metadata lacks {', '.join(missing)}"]
    if meta["schema_version"] != NBGRADER_SCHEMA_VERSION:
        problems.append(
            f"nbgrader schema_version is {meta['schema_version']}, "
            f"expected {NBGRADER_SCHEMA_VERSION}"
        )
    grade, solution, locked = bool(meta["grade"]), bool(meta["solution"]), bool(meta["locked"])
    grade_id = meta.get("grade_id")
    if (grade or solution or locked) and not (
        isinstance(grade_id, str) and _GRADE_ID.match(grade_id)
    ):
        problems.append(f"grade_id {grade_id!r} is missing or not 1-64 letters, digits, '_' or '-'")
    if grade and not (isinstance(meta.get("points"), (int, float)) and meta["points"] > 0):
        problems.append(f"graded cell {grade_id!r} needs points > 0, has {meta.get('points')!r}")
    solution_regions = _regions(source, *_SOLUTION_WORDS)
    if solution_regions is None:
        problems.append(
            f"cell {grade_id!r} has unbalanced or nested {BEGIN_SOLUTION!r} / {END_SOLUTION!r}"
        )
    elif solution and cell.cell_type == "code" and not solution_regions:
        problems.append(
            f"solution cell {grade_id!r} has no {BEGIN_SOLUTION!r} ... {END_SOLUTION!r} region"
        )
    elif solution_regions and not solution:
        problems.append(f"cell {grade_id!r} has a solution region but is not a solution cell")
    hidden = _regions(source, *_HIDDEN_WORDS)
    if hidden is None:
        problems.append(
            f"cell {grade_id!r} has unbalanced {BEGIN_HIDDEN_TESTS!r} / {END_HIDDEN_TESTS!r}"
        )
    elif hidden and not grade:
        problems.append(f"cell {grade_id!r} has hidden tests but is not a graded cell")
    if cell.cell_type == "markdown" and solution and not grade:
        problems.append(
            f"markdown solution cell {grade_id!r} must also be graded (nbgrader's rule)"
        )
    if cell.cell_type == "markdown" and grade and not solution:
        problems.append(
            f"markdown graded cell {grade_id!r} must also be a solution cell (nbgrader's rule)"
        )
    return problems


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
