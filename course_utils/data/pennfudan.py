"""The Penn-Fudan pedestrian dataset: 170 street photographs, a mask for each labelled pedestrian.

Wang, Shi, Song and Shen, "Object detection combining recognition and segmentation", ACCV 2007
(https://www.cis.upenn.edu/~jshi/ped_html/). The archive ``PennFudanPed.zip`` (about 50 MB)
holds the folder ``PennFudanPed/`` with ``PNGImages/<name>.png`` (RGB photographs of various
sizes; names ``FudanPed00001`` ... and ``PennPed00001`` ...) and ``PedMasks/<name>_mask.png``
(8-bit instance-id images: 0 background, 1..N one id per pedestrian); its ``Annotation/`` text
files and ``added-object-list.txt`` are not used here.

    folder = download_pennfudan()                     # data_dir()/"PennFudanPed", once
    dataset = PennFudanPed(download=True)             # items like SceneDataset's detection items
    train_set, val_set = pennfudan_split(dataset)     # 120 / 50 images, seeded

Downloading happens only when asked (``download_pennfudan`` or ``download=True``). The archive
goes to a temporary ``.part`` file, its SHA-256 is checked, it is extracted into a temporary
folder and checked (``PNGImages`` and ``PedMasks``, a mask for every image), and only then is
the folder renamed into place: an interrupted download or a truncated archive never leaves a
half dataset behind. Without internet, put ``PennFudanPed.zip`` (downloaded elsewhere) in the
data folder by hand: the same call extracts it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Subset
from torchvision import tv_tensors

from course_utils.core.validate import check_int
from course_utils.data.datasets import check_transforms, image_from_pixels
from course_utils.data.downloads import (
    CorruptArchive,
    DatasetUnavailable,
    data_root,
    download_file,
    extract_zip,
    remove_quietly,
    sha256_of,
)
from course_utils.data.scenes import boxes_from_masks

__all__ = [
    "PENNFUDAN_CLASSES",
    "PENNFUDAN_SHA256",
    "PENNFUDAN_URL",
    "PennFudanPed",
    "download_pennfudan",
    "masks_from_ids",
    "pennfudan_problems",
    "pennfudan_split",
]

#: Where the authors publish the archive.
PENNFUDAN_URL = "https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip"
#: SHA-256 of ``PennFudanPed.zip``, 64 hex digits. Not recorded yet: it must be computed from the
#: published archive, never invented. A maintainer with network access records it (``sha256sum
#: PennFudanPed.zip``; the downloader also prints it). While it is ``None``, the downloader
#: relies on the structural checks alone; once it is a string, a mismatch is an error.
PENNFUDAN_SHA256: str | None = None
#: Label names: label 1 = pedestrian (0 is background).
PENNFUDAN_CLASSES: tuple[str, ...] = ("pedestrian",)

_FOLDER = "PennFudanPed"
_ARCHIVE = "PennFudanPed.zip"


def _check_sha256(sha256) -> str | None:
    """``sha256`` as lower-case hex, or None; TypeError / ValueError otherwise."""
    if sha256 is None:
        return None
    if not isinstance(sha256, str):
        raise TypeError(f"sha256 must be a hex string or None, got {type(sha256).__name__}")
    text = sha256.strip().lower()
    if len(text) != 64 or any(char not in "0123456789abcdef" for char in text):
        raise ValueError(
            f"sha256 must be 64 hex digits (as sha256sum prints) or None, got {sha256!r}"
        )
    return text


def _image_stems(folder: Path) -> list[str]:
    """Sorted stems of ``folder/PNGImages/*.png``."""
    return sorted(path.stem for path in (folder / "PNGImages").glob("*.png"))


def pennfudan_problems(folder: str | Path) -> list[str]:
    """What keeps ``folder`` (a ``PennFudanPed`` folder) from being a complete dataset.

    An empty list means complete: ``PNGImages/`` holds at least one ``.png`` and
    ``PedMasks/`` a ``<name>_mask.png`` for every one of them.
    """
    folder = Path(folder)
    for sub in ("PNGImages", "PedMasks"):
        if not (folder / sub).is_dir():
            return [f"no {sub}/ folder in {folder}"]
    stems = _image_stems(folder)
    if not stems:
        return [f"no .png image in {folder / 'PNGImages'}"]
    return [
        f"no mask {folder / 'PedMasks' / (stem + '_mask.png')} for image {stem}.png"
        for stem in stems
        if not (folder / "PedMasks" / f"{stem}_mask.png").is_file()
    ]


# ------------------------------------------------------------------------------------ download


def _install(archive: Path, root: Path, expected: str | None, label: str, advice: str) -> Path:
    """Check ``archive``'s SHA-256 against ``expected``, extract it into a temporary folder in
    ``root``, check the files and rename the folder into place; returns that folder.

    ``label`` names the archive in messages, ``advice`` says what to do when it is bad. With
    ``expected=None`` the SHA-256 is printed once the archive proved complete, so that a
    maintainer can record it. The temporary folder is always removed.
    """
    actual = sha256_of(archive)
    if expected is not None and actual != expected:
        raise DatasetUnavailable(
            f"{label} has the wrong SHA-256 checksum: expected {expected}, got {actual} "
            f"(the published archive changed, or the file is damaged): {advice}"
        )
    scratch = Path(tempfile.mkdtemp(prefix=f".{_FOLDER}-", dir=root))
    try:
        try:
            extract_zip(archive, scratch)
        except CorruptArchive as error:
            raise DatasetUnavailable(
                f"{label} is truncated or corrupt ({error.__cause__}): {advice}"
            ) from error
        problems = pennfudan_problems(scratch / _FOLDER)
        if problems:
            raise DatasetUnavailable(
                f"{label} does not hold the Penn-Fudan dataset in a {_FOLDER}/ folder "
                f"({problems[0].replace(str(scratch), '<archive>')}): {advice}"
            )
        (scratch / _FOLDER).rename(root / _FOLDER)
    finally:
        remove_quietly(scratch)
    if expected is None:
        print(f"Penn-Fudan unpacked: every photo has its mask (archive SHA-256 {actual}).")
    return root / _FOLDER


def _offline_message(url: str, archive: Path, error: Exception) -> str:
    """What to do when ``url`` cannot be downloaded: put the archive at ``archive`` by hand."""
    return (
        f"could not download the Penn-Fudan dataset from {url} ({error}). Without internet, "
        f"download {_ARCHIVE} on another machine and put it at {archive}: "
        "download_pennfudan() (or PennFudanPed(download=True)) then uses it"
    )


def _download_and_install(url: str, root: Path, expected: str | None) -> Path:
    """Download ``url`` to a ``.part`` file in ``root``, check it, install it; the ``.part``
    file is always removed."""
    handle, name = tempfile.mkstemp(prefix=f"{_ARCHIVE}.", suffix=".part", dir=root)
    part = Path(name)
    try:
        os.close(handle)
        try:
            download_file(url, part)
        except OSError as error:
            raise DatasetUnavailable(_offline_message(url, root / _ARCHIVE, error)) from error
        label = f"the archive downloaded from {url}"
        advice = (
            f"it was deleted: run the cell again; if that fails again, download {url} in a "
            f"browser and put it at {root / _ARCHIVE}"
        )
        return _install(part, root, expected, label, advice)
    finally:
        remove_quietly(part)


def download_pennfudan(
    root: str | Path | None = None,
    *,
    url: str = PENNFUDAN_URL,
    sha256: str | None = PENNFUDAN_SHA256,
) -> Path:
    """Make sure ``root/"PennFudanPed"`` holds the dataset and return that folder.

    Args:
        root: the data folder (default ``data_dir()``); created if missing.
        url: where to download ``PennFudanPed.zip`` from (``file://`` URLs work too).
        sha256: the archive's expected SHA-256 (hex). A string: a mismatch raises. None: only
            the archive's structure is checked, and its SHA-256 is printed once it proved
            complete (for a maintainer to record as ``PENNFUDAN_SHA256``).

    A complete folder is returned as it is, without network. Otherwise an archive put by hand
    at ``root/"PennFudanPed.zip"`` is used (and left there), else ``url`` is downloaded to a
    temporary ``.part`` file (deleted afterwards, whatever happens). The archive is extracted
    into a temporary folder in ``root``, checked (see ``pennfudan_problems``) and renamed into
    place only if complete. Raises ``DatasetUnavailable`` when offline (the message names the
    URL and where to put the archive by hand), on a wrong checksum (expected and actual hash),
    and on a truncated or corrupt archive (what to delete).
    """
    root = data_root(root)
    if not isinstance(url, str):
        raise TypeError(f"url must be a string (https:// or file://), got {type(url).__name__}")
    expected = _check_sha256(sha256)
    folder, archive = root / _FOLDER, root / _ARCHIVE
    if folder.exists():
        problems = pennfudan_problems(folder)
        if problems:
            raise DatasetUnavailable(
                f"{folder} is incomplete ({problems[0]}): delete that folder and run the cell "
                "again (download_pennfudan() or PennFudanPed(download=True) unpacks it anew)"
            )
        return folder
    root.mkdir(parents=True, exist_ok=True)
    if archive.is_file():
        label = f"{archive} (put there by hand)"
        advice = f"delete {archive} or replace it with a complete copy of {url}"
        return _install(archive, root, expected, label, advice)
    return _download_and_install(url, root, expected)


# ------------------------------------------------------------------------------------- dataset


def _read_rgb(path: Path) -> np.ndarray:
    """The image at ``path`` as uint8 (H, W, 3) RGB."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def masks_from_ids(ids: np.ndarray) -> np.ndarray:
    """An instance-id image (H, W) (0 background, one id per object) -> bool (N, H, W) masks,
    one per id present, in increasing id order."""
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"an instance-id mask must have shape (H, W), got {ids.shape}")
    present = np.unique(ids)
    present = present[present != 0]
    return ids[None] == present[:, None, None]


class PennFudanPed(Dataset):
    """The Penn-Fudan pedestrians as a map-style detection dataset.

    Items are those of ``SceneDataset`` (task "detection", see ``course_utils.data.datasets``)
    without the semantic map: ``(Image float32 (3, H, W) in [0, 1], target)`` with
    ``target["boxes"]`` ``BoundingBoxes`` XYXY float32 (N, 4), ``canvas_size=(H, W)``, computed
    from the masks: ``torchvision.ops.masks_to_boxes`` + (0, 0, 1, 1), since torchvision gives
    the last covered column / row and the course's x2 / y2 are exclusive; ``target["labels"]``
    int64 ones (N,) (``PENNFUDAN_CLASSES``); ``target["masks"]`` ``Mask`` uint8 (N, H, W) in the
    order of the ids of ``PedMasks``; ``target["image_id"]`` the index (int). Photographs differ
    in size (about 300-500 px a side): batch them with ``detection_collate``.

    Args:
        root: the data folder holding ``PennFudanPed/`` (default ``data_dir()``).
        transforms: optional ``transforms.v2`` callable applied to ``(image, target)``.
        download: call ``download_pennfudan(root)`` first (needs internet, or the archive put by
            hand at ``root/"PennFudanPed.zip"``). Without it, a missing folder raises
            ``DatasetUnavailable``.

    ``names``: the image stems, sorted (``names[i]`` is item i); ``folder``: the dataset folder.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        transforms: Callable | None = None,
        download: bool = False,
    ) -> None:
        check_transforms(transforms)
        if not isinstance(download, bool):
            raise TypeError(f"download must be True or False, got {type(download).__name__}")
        root = data_root(root)
        self.folder = download_pennfudan(root) if download else self._existing(root)
        self.transforms = transforms
        self.classes: tuple[str, ...] = PENNFUDAN_CLASSES
        self.names: list[str] = _image_stems(self.folder)

    @staticmethod
    def _existing(root: Path) -> Path:
        """``root/"PennFudanPed"`` if complete, else ``DatasetUnavailable`` saying what to do."""
        folder = root / _FOLDER
        problems = pennfudan_problems(folder) if folder.exists() else [f"no folder {folder}"]
        if problems and folder.exists():
            raise DatasetUnavailable(
                f"{folder} is incomplete ({problems[0]}): delete that folder and pass "
                "download=True (needs internet, or the archive put by hand at "
                f"{root / _ARCHIVE})"
            )
        if problems:
            raise DatasetUnavailable(
                f"the Penn-Fudan dataset is not in {root} ({problems[0]}): pass download=True "
                f"(needs internet), or put {_ARCHIVE} at {root / _ARCHIVE} and pass "
                "download=True to extract it"
            )
        return folder

    def __len__(self) -> int:
        return len(self.names)

    def _index(self, index) -> int:
        """``index`` in [-len, len) as a non-negative int (TypeError / IndexError otherwise)."""
        check_int(index, "index", minimum=None)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        return int(index) % len(self)

    def __getitem__(self, index: int):
        index = self._index(index)
        name = self.names[index]
        pixels = _read_rgb(self.folder / "PNGImages" / f"{name}.png")
        with Image.open(self.folder / "PedMasks" / f"{name}_mask.png") as mask_image:
            masks = masks_from_ids(np.asarray(mask_image))
        height, width = pixels.shape[:2]
        if masks.shape[1:] != (height, width):
            raise ValueError(
                f"{name}_mask.png is {masks.shape[1]}x{masks.shape[2]} but {name}.png is "
                f"{height}x{width}: the mask must have the image's size"
            )
        boxes = torch.from_numpy(boxes_from_masks(masks))
        target = {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(height, width)),
            "labels": torch.ones(len(masks), dtype=torch.int64),
            "masks": tv_tensors.Mask(torch.from_numpy(masks.astype(np.uint8))),
            "image_id": index,
        }
        image = image_from_pixels(pixels)
        return self.transforms(image, target) if self.transforms is not None else (image, target)

    def __repr__(self) -> str:
        return f"PennFudanPed(folder={str(self.folder)!r}, images={len(self)})"


def pennfudan_split(dataset, val_count: int = 50, seed: int = 0) -> tuple[Subset, Subset]:
    """A seeded random held-out split: ``(train Subset, val Subset)`` with ``val_count`` images
    in val and the rest in train (indices sorted within each).

    The same ``seed`` and length give the same indices, so training with augmentation and
    validating without is ``train, _ = pennfudan_split(PennFudanPed(transforms=augment))``
    and ``_, val = pennfudan_split(PennFudanPed())``.
    """
    if not isinstance(dataset, Dataset) or not hasattr(dataset, "__len__"):
        raise TypeError(
            f"dataset must be a torch Dataset with a length, got {type(dataset).__name__}"
        )
    count = len(dataset)
    if count < 2:
        raise ValueError(f"dataset must hold at least 2 items to be split, got {count}")
    check_int(val_count, "val_count", 1, count - 1)
    check_int(seed, "seed", minimum=0)
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(dataset, sorted(order[val_count:])), Subset(dataset, sorted(order[:val_count]))
