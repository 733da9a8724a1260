"""Stamp the course's repository into every notebook: the set-up cell and the Colab badges.

The repository's address is kept in one place, ``pyproject.toml``'s ``[project.urls]``
(``core.colab.repository_url``). An instructor who publishes a copy of the course sets it there and
runs ``make release``, which stamps it into the source notebooks and the released ones::

    stamp_notebook(nb, "https://github.com/my-school/detseg-course")   # in place; True if changed
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from course_utils.core.colab import SETUP_COMMENT, colab_badge_url, setup_cell

__all__ = ["COLAB_LINK", "stamp_file", "stamp_notebook"]

#: A Colab link to a notebook on GitHub's main branch: group 1 is the owner/name part.
COLAB_LINK = re.compile(
    r"https://colab\.research\.google\.com/github/([^/\s)]+/[^/\s)]+)/blob/main/"
    r"(?P<folder>[^/\s)]+)/(?P<name>[^/\s)]+)\.ipynb"
)


def _restamp_links(text: str, url: str) -> str:
    """``text`` with every Colab link pointing at ``url``'s repository (same folder, notebook)."""
    return COLAB_LINK.sub(lambda match: colab_badge_url(match["name"], url, match["folder"]), text)


def stamp_notebook(nb: Any, url: str) -> bool:
    """Point ``nb``'s set-up cell (the first code cell, when it starts with the set-up comment;
    a notebook without one keeps its cells) and every Colab link in its markdown at ``url``.
    Modifies ``nb`` (an nbformat notebook); returns whether anything changed."""
    changed = False
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    wanted = setup_cell(url)
    if code and code[0].source.startswith(SETUP_COMMENT) and code[0].source != wanted:
        code[0].source, changed = wanted, True
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            text = _restamp_links(cell.source, url)
            if text != cell.source:
                cell.source, changed = text, True
    return changed


def stamp_file(path: str | Path, url: str) -> bool:
    """Stamp the notebook file at ``path`` in place (written only when it changes)."""
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    if not stamp_notebook(nb, url):
        return False
    path.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
    return True
