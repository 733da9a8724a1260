"""Getting a real dataset onto the disk: one error type and the steps every download shares.

* ``DatasetUnavailable``: the data is not on the disk and could not be obtained (no internet,
  a wrong checksum, a truncated archive). Its message says what to do: where to put the
  archive by hand, or what to delete and download again.
* ``data_root``: the folder a dataset lives in (``data_dir()`` unless one is given).
* ``sha256_of``: the SHA-256 of a file, as the hex string ``sha256sum`` prints.
* ``download_file``: ``url`` (``http(s)://`` or ``file://``) to a file, with a progress bar.
* ``extract_zip``: a zip archive into a folder, refusing members that would land outside it
  and turning a truncated or corrupt archive into ``CorruptArchive`` (a ``DatasetUnavailable``).
* ``remove_quietly``: delete a temporary file or folder if it is there.

Nothing here runs at import; a download happens only when a function is called.
``course_utils.data.pennfudan`` builds its download on these; ``photo_datasets`` raises the same
error when torchvision finds no data.
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from course_utils.core.paths import data_dir
from course_utils.core.progress import progress_bar

__all__ = [
    "CorruptArchive",
    "DatasetUnavailable",
    "data_root",
    "download_file",
    "extract_zip",
    "remove_quietly",
    "sha256_of",
]

_CHUNK = 1 << 20


class DatasetUnavailable(RuntimeError):
    """The dataset is not on the disk and could not be obtained; the message says what to do."""


class CorruptArchive(DatasetUnavailable):
    """An archive is truncated or corrupt (its ``__cause__`` is the error reading it)."""


def data_root(root) -> Path:
    """``root`` (a folder, str or Path) as an absolute Path (so that messages say exactly where
    to put files); ``data_dir()`` for None; TypeError otherwise."""
    if root is None:
        return data_dir().absolute()
    if not isinstance(root, (str, Path)):
        raise TypeError(f"root must be a folder (str or Path) or None, got {type(root).__name__}")
    return Path(root).expanduser().absolute()


def sha256_of(path: str | Path) -> str:
    """The SHA-256 of the file at ``path``: 64 lower-case hex digits (as ``sha256sum`` prints)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(url: str, destination: str | Path, timeout: float = 60.0) -> Path:
    """Copy ``url`` (``http(s)://`` or ``file://``) to ``destination``, showing a progress bar.

    Writes ``destination`` as it goes: pass a temporary ``.part`` path and rename it once the
    file is checked. Raises ``OSError`` (``urllib.error.URLError`` included) when the URL
    cannot be reached or the copy fails; the caller turns it into a message that fits.
    """
    destination = Path(destination)
    with urllib.request.urlopen(url, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        with (
            open(destination, "wb") as file,
            progress_bar(
                total=total, unit="B", unit_scale=True, desc=Path(url).name, leave=False
            ) as bar,
        ):
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                file.write(chunk)
                bar.update(len(chunk))
    return destination


def _check_member_names(archive: zipfile.ZipFile, source: Path) -> None:
    """``DatasetUnavailable`` if a member is absolute or climbs out with ``..``."""
    for name in archive.namelist():
        path = PurePosixPath(name.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or ":" in name:
            raise DatasetUnavailable(
                f"{source} holds a file named {name!r} that would be written outside the "
                "folder it is extracted into: this is not the expected archive; delete it"
            )


def extract_zip(archive: str | Path, destination: str | Path) -> Path:
    """Extract the zip ``archive`` into the existing folder ``destination`` (returned).

    Every member's CRC is checked while it is read. A truncated or corrupt archive
    (``zipfile.BadZipFile``, ``EOFError``, a zlib error, a CRC mismatch) raises
    ``CorruptArchive`` (a ``DatasetUnavailable``) naming the archive; a member whose name
    would land outside ``destination`` raises ``DatasetUnavailable``. The caller extracts into
    a temporary folder that it deletes on failure.
    """
    archive, destination = Path(archive), Path(destination)
    try:
        with zipfile.ZipFile(archive) as opened:
            _check_member_names(opened, archive)
            opened.extractall(destination)
    except (zipfile.BadZipFile, EOFError, zlib.error) as error:
        raise CorruptArchive(
            f"{archive} is truncated or corrupt ({type(error).__name__}: {error}): delete it and "
            "download it again"
        ) from error
    return destination


def remove_quietly(path: str | Path | None) -> None:
    """Delete the file or folder ``path`` if it exists (clean-up after a failed step)."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
