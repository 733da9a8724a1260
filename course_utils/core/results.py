"""Record a notebook's headline numbers; ``make report`` gathers them into one table."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

from course_utils.core.paths import results_dir


def _results_file(notebook: str, folder: Path) -> Path:
    return folder / f"{notebook}.json"


def record(notebook: str, name: str, value: float, unit: str = "", note: str = "") -> None:
    """Record one headline number of a notebook, e.g. ``record("04_fast_rcnn", "AP50", 0.71)``.

    Re-recording the same ``name`` replaces the old value. ``value`` must be a finite
    number; ``unit`` is free text ("s", "ms/image", "x", "" for ratios and scores).
    """
    if not isinstance(notebook, str) or not notebook:
        raise ValueError(
            f"notebook must be a non-empty name like '01_sliding_window', got {notebook!r}"
        )
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"value of {name!r} must be a number, got {type(value).__name__}") from None
    if not math.isfinite(number):
        raise ValueError(f"value of {name!r} must be finite, got {number}")
    folder = results_dir()
    path = _results_file(notebook, folder)
    entries = json.loads(path.read_text()) if path.exists() else []
    entries = [entry for entry in entries if entry["name"] != name]
    entries.append(
        {"notebook": notebook, "name": name, "value": number, "unit": unit, "note": note}
    )
    handle, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(handle, "w") as stream:
        json.dump(entries, stream, indent=1)
    os.replace(tmp, path)


def load_all(folder: Path | str | None = None) -> list[dict]:
    """Every recorded number, as dicts with keys notebook, name, value, unit, note; sorted by
    notebook."""
    folder = Path(folder) if folder is not None else results_dir()
    entries: list[dict] = []
    for path in sorted(folder.glob("*.json")):
        entries.extend(json.loads(path.read_text()))
    return entries
