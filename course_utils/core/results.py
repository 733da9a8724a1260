"""Record a notebook's headline numbers; ``make report`` gathers them into tables.

Two kinds of record, one JSON file of each per notebook under ``results_dir()``:

* :func:`record`: one named number (``<notebook>.json``), listed per notebook in the report;
* :func:`record_row`: one method's row of a course-wide table (``<notebook>.rows.json``):
  every detector of the course in the ``"detection"`` table, every semantic segmenter in the
  ``"segmentation"`` table, with the columns of :data:`TABLE_COLUMNS`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

from course_utils.core.paths import results_dir

#: The columns of each course-wide table, in order (a row may leave a column out: "–").
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "detection": (
        "AP50",
        "AP",
        "AP_small",
        "AP_large",
        "ms_per_image",
        "train_s",
        "params",
        "val_scenes",
    ),
    "segmentation": ("mIoU", "boundary", "ms_per_image", "train_s", "params", "val_scenes"),
}
_ROWS_SUFFIX = ".rows.json"


def _results_file(notebook: str, folder: Path) -> Path:
    return folder / f"{notebook}.json"


def _check_notebook(notebook) -> None:
    if not isinstance(notebook, str) or not notebook:
        raise ValueError(
            f"notebook must be a non-empty name like '01_sliding_window', got {notebook!r}"
        )


def _finite(value, name: str) -> float:
    """``value`` as a float; TypeError unless a number, ValueError unless finite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"value of {name!r} must be a number, got {type(value).__name__}") from None
    if not math.isfinite(number):
        raise ValueError(f"value of {name!r} must be finite, got {number}")
    return number


def _replace_entries(path: Path, entries: list[dict], key) -> None:
    """Write ``entries`` into the JSON list at ``path`` (atomically), replacing the old entries
    with the same ``key(entry)``."""
    old = json.loads(path.read_text()) if path.exists() else []
    new_keys = {key(entry) for entry in entries}
    kept = [entry for entry in old if key(entry) not in new_keys]
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "w") as stream:
        json.dump(kept + entries, stream, indent=1)
    os.replace(tmp, path)


def record(notebook: str, name: str, value: float, unit: str = "", note: str = "") -> None:
    """Record one headline number of a notebook, e.g. ``record("04_fast_rcnn", "AP50", 0.71)``.

    Re-recording the same ``name`` replaces the old value. ``value`` must be a finite
    number; ``unit`` is free text ("s", "ms/image", "x", "" for ratios and scores).
    """
    _check_notebook(notebook)
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    entry = {
        "notebook": notebook,
        "name": name,
        "value": _finite(value, name),
        "unit": unit,
        "note": note,
    }
    _replace_entries(_results_file(notebook, results_dir()), [entry], key=lambda e: e["name"])


def record_row(table: str, method: str, notebook: str, note: str = "", **columns) -> dict:
    """Record ``method``'s row of a course-wide table and return it, e.g.
    ``record_row("detection", "Fast R-CNN", "04_fast_rcnn", AP50=0.71, ms_per_image=12.0)``.

    ``table`` is a key of :data:`TABLE_COLUMNS`; ``columns`` are some of that table's columns,
    finite numbers (a column left out shows as "–"): AP scores in [0, 1] (``AP_small`` and
    ``AP_large`` with the scenes' size bins: ``metrics.scene_size_ap``), mIoU and boundary
    accuracy in [0, 1], milliseconds per image (``metrics.one_image_ms``), training seconds,
    parameters, and how many validation scenes the scores come from. ``note`` is shown beside
    the method. Re-recording the same (table, method) replaces the old row.
    """
    if table not in TABLE_COLUMNS:
        raise ValueError(f"table must be one of {sorted(TABLE_COLUMNS)}, got {table!r}")
    if not isinstance(method, str) or not method:
        raise ValueError(f"method must be a non-empty string like 'Fast R-CNN', got {method!r}")
    _check_notebook(notebook)
    unknown = sorted(set(columns) - set(TABLE_COLUMNS[table]))
    if unknown:
        raise ValueError(
            f"unknown column(s) {unknown} for the {table} table; its columns are "
            f"{list(TABLE_COLUMNS[table])}"
        )
    row = {"table": table, "method": method, "notebook": notebook, "note": note}
    for name in TABLE_COLUMNS[table]:
        if name in columns:
            row[name] = _finite(columns[name], name)
    path = results_dir() / f"{notebook}{_ROWS_SUFFIX}"
    _replace_entries(path, [row], key=lambda r: (r["table"], r["method"]))
    return row


def load_all(folder: Path | str | None = None) -> list[dict]:
    """Every recorded number, as dicts with keys notebook, name, value, unit, note; sorted by
    notebook."""
    folder = Path(folder) if folder is not None else results_dir()
    entries: list[dict] = []
    for path in sorted(folder.glob("*.json")):
        if not path.name.endswith(_ROWS_SUFFIX):
            entries.extend(json.loads(path.read_text()))
    return entries


def load_rows(folder: Path | str | None = None) -> dict[str, list[dict]]:
    """The recorded rows of each course-wide table, ``{table: [row, ...]}``, in notebook order
    and, within a notebook, in the order it recorded them."""
    folder = Path(folder) if folder is not None else results_dir()
    rows: dict[str, list[dict]] = {table: [] for table in TABLE_COLUMNS}
    for path in sorted(folder.glob(f"*{_ROWS_SUFFIX}")):
        for row in json.loads(path.read_text()):
            rows.setdefault(row["table"], []).append(row)
    return rows
