"""The set-up cell every notebook starts with, and the repository it installs from, in one place.

On Colab (or any Python where ``course_utils`` is missing) the cell installs the course's
helpers with ``--no-deps``: Colab already ships torch, torchvision, numpy, matplotlib,
scikit-image, pycocotools, tqdm and ipywidgets, and nothing of those is reinstalled, so no
runtime restart is needed. It installs a course wheel (``make wheel``) when one was uploaded next
to the notebook or to Drive's ``MyDrive``, else the repository named in ``pyproject.toml``'s
``[project.urls]`` (``Repository``), which :func:`repository_url` reads. ``make release`` stamps
that address into every notebook's set-up cell and Colab badge (``instructor.stamp``)::

    setup_cell(repository_url())                    # the first code cell of every notebook
    colab_badge_url("05_faster_rcnn", repository_url())
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

from course_utils.core.paths import repo_root

__all__ = [
    "DEFAULT_REPOSITORY_URL",
    "DISTRIBUTION",
    "SETUP_COMMENT",
    "WHEEL_PLACES",
    "colab_badge_url",
    "repository_url",
    "setup_cell",
]

#: Where the course lives when nothing else says (pyproject's value as shipped).
DEFAULT_REPOSITORY_URL = "https://github.com/detseg-course/detseg-course"
#: The course's distribution name (pyproject's ``[project] name``).
DISTRIBUTION = "detseg-course"
#: The glob patterns the set-up cell tries for a course wheel, in order: next to the notebook
#: (Colab's working folder, where the Files panel uploads), then Drive's MyDrive once mounted.
WHEEL_PLACES = ("detseg_course-*.whl", "/content/drive/MyDrive/detseg_course-*.whl")
#: The first line of the set-up cell (how a notebook's set-up cell is recognised).
SETUP_COMMENT = (
    "# Set-up: on Colab this installs the course's helpers (and nothing else); locally it does "
    "nothing."
)


def _check_url(url: str) -> str:
    if not isinstance(url, str) or not url.startswith("https://github.com/"):
        raise ValueError(
            f"the repository must be an https://github.com/<owner>/<name> URL, got {url!r}"
        )
    parts = url.removeprefix("https://github.com/").strip("/").split("/")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"the repository must be https://github.com/<owner>/<name>, got {url!r}")
    return url.rstrip("/")


def repository_url(pyproject: str | Path | None = None) -> str:
    """The course's repository, ``https://github.com/<owner>/<name>``: ``[project.urls]
    Repository`` of ``pyproject`` (default: the checkout's ``pyproject.toml``), else of the
    installed package's metadata, else :data:`DEFAULT_REPOSITORY_URL`."""
    if pyproject is None and repo_root() is not None:
        pyproject = repo_root() / "pyproject.toml"
    if pyproject is not None and Path(pyproject).is_file():
        with open(pyproject, "rb") as file:
            urls = tomllib.load(file).get("project", {}).get("urls", {})
        if "Repository" in urls:
            return _check_url(urls["Repository"])
    try:
        entries = importlib.metadata.metadata(DISTRIBUTION).get_all("Project-URL") or []
    except importlib.metadata.PackageNotFoundError:
        entries = []
    for entry in entries:
        label, _, url = entry.partition(",")
        if label.strip() == "Repository":
            return _check_url(url.strip())
    return DEFAULT_REPOSITORY_URL


def setup_cell(url: str = DEFAULT_REPOSITORY_URL) -> str:
    """The first code cell of every notebook, installing from ``url`` when no wheel is there."""
    url = _check_url(url)
    return f"""{SETUP_COMMENT}
try:
    import course_utils  # noqa: F401
except ImportError:
    import glob

    # a course wheel uploaded next to this notebook or to Drive's MyDrive, else the repository
    wheels = sorted(glob.glob("{WHEEL_PLACES[0]}"))
    wheels += sorted(glob.glob("{WHEEL_PLACES[1]}"))
    source = wheels[0] if wheels else "git+{url}"
    %pip install --quiet --no-deps "{{source}}"
    import course_utils  # noqa: F401"""


def colab_badge_url(
    notebook: str, url: str = DEFAULT_REPOSITORY_URL, folder: str = "release"
) -> str:
    """The "Open in Colab" address of ``folder/notebook.ipynb`` on ``url``'s main branch."""
    path = _check_url(url).removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{path}/blob/main/{folder}/{notebook}.ipynb"
