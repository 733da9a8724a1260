"""The course-wide tables of ``make report``: every detector and every semantic segmenter of the
course, measured on the same scenes, from the rows the notebooks record with
:func:`course_utils.core.results.record_row`.

:func:`format_tables` writes them as Markdown; :func:`update_readme` puts that Markdown
between two marker lines of README.md (``<!-- course-tables:begin -->`` and
``<!-- course-tables:end -->``), and :func:`update_runtimes` writes each notebook's runtime into
the last cell of its row of README's notebook table, so README always shows the last full report.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from course_utils.core.results import TABLE_COLUMNS

__all__ = ["BEGIN_MARKER", "END_MARKER", "format_tables", "update_readme", "update_runtimes"]

BEGIN_MARKER = "<!-- course-tables:begin -->"
END_MARKER = "<!-- course-tables:end -->"

_HEADERS = {
    "AP50": "AP50",
    "AP": "AP",
    "AP_small": "AP small",
    "AP_large": "AP large",
    "mIoU": "mIoU",
    "boundary": "boundary acc.",
    "ms_per_image": "ms/image",
    "train_s": "training s",
    "params": "parameters",
    "val_scenes": "val scenes",
}
_TITLES = {
    "detection": "Detection (box AP on the validation scenes)",
    "segmentation": "Semantic segmentation (7 classes, validation scenes)",
}
_LEGENDS = {
    "detection": (
        "AP is COCO's (IoU 0.50:0.95), computed by pycocotools; AP small / AP large: objects under "
        "12² / over 24² mask pixels (`SceneConfig.object_area_bins`; COCO's 32² and 96² are for "
        "640-pixel photographs, and no object of a 128-pixel scene would be large). ms/image: a "
        "CPU copy of the model, one scene at a time on one thread, the fastest of several passes; "
        "it includes the proposals where a method needs them (Selective Search for R-CNN and Fast "
        "R-CNN). Training s: the model's training time (`History.seconds`), not counting the "
        "trunk that the detectors of notebooks 04-07 and 12 pretrain on crops first. Parameters: "
        "all of the model used at test time, trunk included."
    ),
    "segmentation": (
        "mIoU over the 7 classes (4 stuff, 3 things); boundary acc.: the share of the pixels "
        "within 2 pixels of a true class edge that are labelled right "
        "(`semantic_maps.boundary_accuracy`). "
        "ms/image: a CPU copy of the model, one scene at a time on one thread "
        "(`metrics.one_image_ms`). Training s: the model's training time (`History.seconds`)."
    ),
}


def _format_cell(column: str, value) -> str:
    if value is None:
        return "–"
    if column in ("AP50", "AP", "AP_small", "AP_large"):
        return "–" if value < 0 else f"{value:.3f}"  # COCO's -1: no object in that bin
    if column in ("mIoU", "boundary"):
        return f"{value:.3f}"
    if column == "ms_per_image":
        return f"{value:.1f}" if value < 100 else f"{value:.0f}"
    if column == "train_s":
        return f"{value:.1f}"
    if column in ("params", "val_scenes"):
        return f"{int(round(value)):,}"
    return f"{value:.4g}"


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def format_table(table: str, rows: Sequence[Mapping]) -> list[str]:
    """One Markdown table (a list of lines): a row per method, in the order given."""
    if table not in TABLE_COLUMNS:
        raise ValueError(f"table must be one of {sorted(TABLE_COLUMNS)}, got {table!r}")
    columns = TABLE_COLUMNS[table]
    lines = [
        "| method | notebook | " + " | ".join(_HEADERS[c] for c in columns) + " |",
        "|---|---|" + "---:|" * len(columns),
    ]
    for row in rows:
        method = row["method"] + (f" ({row['note']})" if row.get("note") else "")
        cells = " | ".join(_format_cell(c, row.get(c)) for c in columns)
        lines.append(f"| {_escape(method)} | `{_escape(row['notebook'])}` | {cells} |")
    return lines


def format_tables(rows_by_table: Mapping[str, Sequence[Mapping]], environment: str | None) -> str:
    """Both course-wide tables as Markdown, each with a title and a legend; a table nobody
    recorded a row of says so."""
    lines = []
    if environment:
        lines += [f"Measured by `make report` on: {environment}.", ""]
    for table in TABLE_COLUMNS:
        lines += [f"#### {_TITLES[table]}", ""]
        rows = rows_by_table.get(table, [])
        lines += format_table(table, rows) if rows else ["(no rows recorded)"]
        lines += ["", _LEGENDS[table], ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def update_readme(readme: Path | str, tables: str) -> bool:
    """Replace what stands between the marker lines of ``readme`` by ``tables``.

    Returns whether the file changed. Raises ``ValueError`` (naming the markers) when the
    markers are missing, repeated or out of order: the README is then left untouched.
    """
    path = Path(readme)
    text = path.read_text()
    if text.count(BEGIN_MARKER) != 1 or text.count(END_MARKER) != 1:
        raise ValueError(
            f"{path} must hold exactly one {BEGIN_MARKER} line and one {END_MARKER} line"
        )
    head, rest = text.split(BEGIN_MARKER)
    _, tail = rest.split(END_MARKER) if END_MARKER in rest else (None, None)
    if tail is None:
        raise ValueError(f"{path}: {END_MARKER} must come after {BEGIN_MARKER}")
    new = f"{head}{BEGIN_MARKER}\n{tables.rstrip()}\n{END_MARKER}{tail}"
    if new == text:
        return False
    path.write_text(new)
    return True


def update_runtimes(readme: Path | str, runtimes: Mapping[str, float]) -> list[str]:
    """Write each notebook's runtime (seconds) into the last cell of its README row, the row that
    starts with ``| `<notebook>` |`` and ends with ``| <n> s |``. Returns the notebooks whose row
    was found; a notebook without such a row is left out (the README is not otherwise changed).
    """
    path = Path(readme)
    lines = path.read_text().split("\n")
    found = []
    for notebook, seconds in runtimes.items():
        pattern = re.compile(rf"^(\| `{re.escape(notebook)}` \|.*\| )\d+ s( \|)$")
        for index, line in enumerate(lines):
            match = pattern.match(line)
            if match:
                lines[index] = f"{match.group(1)}{seconds:.0f} s{match.group(2)}"
                found.append(notebook)
                break
    path.write_text("\n".join(lines))
    return found
