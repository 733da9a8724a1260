"""Where the course keeps generated data, checkpoints and recorded results.

Every location can be moved with an environment variable, so a Colab user can point
checkpoints at Google Drive (``COURSE_CHECKPOINT_DIR=/content/drive/MyDrive/course``)
and the test harness can give each run a fresh, empty folder.
"""

from __future__ import annotations

import os
from pathlib import Path

_CACHE_HOME = Path.home() / ".cache" / "detseg-course"


def repo_root(start: Path | None = None) -> Path | None:
    """The course repository containing ``start`` (default: the working directory).

    A folder counts as the repository when it holds both ``course_utils/`` and
    ``notebooks/``. Returns ``None`` when running outside a checkout (e.g. on Colab
    with the package installed from git).
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "course_utils").is_dir() and (folder / "notebooks").is_dir():
            return folder
    return None


def _from_env_or(variable: str, in_repo: str, fallback: str) -> Path:
    """Resolve a folder: ``$variable``, else ``<repo>/in_repo``, else the user cache."""
    if os.environ.get(variable):
        path = Path(os.environ[variable]).expanduser()
    elif (root := repo_root()) is not None:
        path = root / in_repo
    else:
        path = _CACHE_HOME / fallback
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """Folder for generated datasets and caches (``$COURSE_DATA_DIR`` or ``<repo>/data``)."""
    return _from_env_or("COURSE_DATA_DIR", "data", "data")


def checkpoint_dir() -> Path:
    """Folder for training checkpoints (``$COURSE_CHECKPOINT_DIR`` or ``<data>/checkpoints``)."""
    if os.environ.get("COURSE_CHECKPOINT_DIR"):
        return _from_env_or("COURSE_CHECKPOINT_DIR", "", "")
    path = data_dir() / "checkpoints"
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir() -> Path:
    """Folder where notebooks record headline numbers (``$COURSE_RESULTS_DIR`` or
    ``<repo>/build/results``)."""
    return _from_env_or("COURSE_RESULTS_DIR", "build/results", "results")
