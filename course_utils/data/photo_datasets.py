"""Two public photo datasets through torchvision's own classes, as course items.

* ``PetTrimaps``: the Oxford-IIIT Pet trimaps (Parkhi et al., CVPR 2012; 7,349 photographs of
  37 cat and dog breeds, about 800 MB) for semantic segmentation: ``(Image float32 (3, S, S) in
  [0, 1], Mask int64 (S, S))`` with ``PET_TRIMAP_CLASSES`` ids, around
  ``torchvision.datasets.OxfordIIITPet``.
* ``voc_detection``: PASCAL VOC detection (about 2 GB for 2012) through
  ``torchvision.datasets.VOCDetection`` wrapped by ``wrap_dataset_for_transforms_v2``, so that
  boxes and labels are ``tv_tensors`` that ``transforms.v2`` move.

Nothing is downloaded unless ``download=True``; without the data, both raise
``DatasetUnavailable`` naming the folder torchvision expects and the URLs it downloads from.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.datasets import OxfordIIITPet, VOCDetection, wrap_dataset_for_transforms_v2
from torchvision.datasets.voc import DATASET_YEAR_DICT
from torchvision.transforms import v2

# torchvision's own list of the labels its VOCDetection wrapper produces (a private module:
# tests/test_photo_datasets.py checks that it is still there and still starts as expected).
from torchvision.tv_tensors._dataset_wrapper import VOC_DETECTION_CATEGORIES

from course_utils.core.validate import check_int
from course_utils.data.datasets import check_transforms
from course_utils.data.downloads import DatasetUnavailable, data_root

__all__ = ["PET_TRIMAP_CLASSES", "PetTrimaps", "VOC_CLASSES", "trimap_classes", "voc_detection"]

#: Class ids of ``PetTrimaps`` masks: 0 background, 1 pet, 2 border (the uncertain outline).
PET_TRIMAP_CLASSES: tuple[str, ...] = ("background", "pet", "border")
#: Names of the labels ``voc_detection`` gives: 0 "__background__" (never a box's label), then
#: VOC's 20 classes in alphabetical order (15 = "person"). Read from torchvision.
VOC_CLASSES: tuple[str, ...] = tuple(VOC_DETECTION_CATEGORIES)

# The trimap PNGs store 1 = pet, 2 = background, 3 = border; index = stored value.
_TRIMAP_TO_CLASS = (0, 1, 0, 2)


def _not_found(error: RuntimeError) -> bool:
    """Whether torchvision's ``RuntimeError`` says that the dataset is not on the disk."""
    return "Dataset not found" in str(error) or "not found or corrupted" in str(error)


def _unavailable(
    name: str, folder: Path, archives: Path, urls: list[str], error: Exception, download: bool
) -> DatasetUnavailable:
    """The error saying where torchvision looks for ``name`` (``folder``), where it downloads
    it from (``urls``) and where it keeps the archives (``archives``)."""
    problem = (
        f"could not be downloaded ({error})"
        if download and isinstance(error, OSError)
        else f"is not (completely) in {folder} ({error})"
    )
    them, those = ("them", "those archives") if len(urls) > 1 else ("it", "that archive")
    fetch = (
        f"Run the cell again (torchvision downloads {' and '.join(urls)} into {archives} and "
        f"extracts {them}); if it stays broken, delete {folder} and run it again."
        if download
        else f"Pass download=True (needs internet): torchvision then downloads "
        f"{' and '.join(urls)} into {archives} and extracts {them}."
    )
    return DatasetUnavailable(
        f"{name} {problem}. {fetch} Without internet, download {those} elsewhere, put {them} "
        f"in {archives} and pass download=True to extract {them}"
    )


def trimap_classes(trimap: torch.Tensor) -> torch.Tensor:
    """Trimap values (1 pet, 2 background, 3 border), any shape -> int64 class ids of
    ``PET_TRIMAP_CLASSES`` (0 background, 1 pet, 2 border); ValueError for other values."""
    values = trimap.as_subclass(torch.Tensor).long()
    if values.numel() and (int(values.min()) < 1 or int(values.max()) > 3):
        raise ValueError(
            "a trimap must hold 1 (pet), 2 (background) or 3 (border), got values "
            f"{values.unique()[:5].tolist()}"
        )
    return torch.tensor(_TRIMAP_TO_CLASS, dtype=torch.int64)[values]


class PetTrimaps(Dataset):
    """Oxford-IIIT Pet photographs and trimaps, resized to ``size`` x ``size``.

    Items: ``(Image float32 (3, size, size) in [0, 1], Mask int64 (size, size))`` with ids of
    ``PET_TRIMAP_CLASSES``: 0 background, 1 pet, 2 border. The photograph is resized bilinearly
    (antialiased), the trimap by nearest neighbour (it is a ``tv_tensors.Mask``); both are
    squashed to a square, the aspect ratio is not kept.

    Args:
        root: the data folder; torchvision keeps the data in ``root/"oxford-iiit-pet"``
            (default ``data_dir()``).
        split: "trainval" (3,680 images) or "test" (3,669).
        size: output side in pixels.
        download: let torchvision download the two archives (about 800 MB, internet needed).

    ``pets`` is the underlying torchvision dataset (wrapped for ``transforms.v2``).
    """

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "trainval",
        size: int = 128,
        download: bool = False,
    ) -> None:
        check_int(size, "size", minimum=8)
        root = data_root(root)
        try:
            pets = OxfordIIITPet(
                root, split=split, target_types="segmentation", download=bool(download)
            )
        except (RuntimeError, OSError) as error:
            if isinstance(error, RuntimeError) and not _not_found(error):
                raise
            folder = root / "oxford-iiit-pet"
            urls = [url for url, _ in OxfordIIITPet._RESOURCES]
            raise _unavailable(
                "The Oxford-IIIT Pet dataset", folder, folder, urls, error, bool(download)
            ) from error
        self.pets = wrap_dataset_for_transforms_v2(pets)
        self.folder = root / "oxford-iiit-pet"
        self.size, self.split = size, split
        self.classes: tuple[str, ...] = PET_TRIMAP_CLASSES
        self._prepare = v2.Compose(
            [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Resize((size, size))]
        )

    def __len__(self) -> int:
        return len(self.pets)

    def __getitem__(self, index: int):
        try:
            image, trimap = self._prepare(*self.pets[index])
        except FileNotFoundError as error:  # an extraction cut short leaves the folders
            raise DatasetUnavailable(
                f"{error.filename} is missing: the Oxford-IIIT Pet files in {self.folder} are "
                f"incomplete. Delete {self.folder} and run the cell again with download=True"
            ) from error
        return tv_tensors.Image(image.clamp(0, 1)), tv_tensors.Mask(trimap_classes(trimap[0]))

    def __repr__(self) -> str:
        return f"PetTrimaps(split={self.split!r}, images={len(self)}, size={self.size})"


def voc_detection(
    root: str | Path | None = None,
    year: str = "2012",
    image_set: str = "val",
    download: bool = False,
    transforms: Callable | None = None,
):
    """PASCAL VOC detection: ``torchvision.datasets.VOCDetection`` wrapped for
    ``transforms.v2`` (``wrap_dataset_for_transforms_v2``).

    Items: ``(Image float32 (3, H, W) in [0, 1], target)`` with ``target["boxes"]``
    ``BoundingBoxes`` XYXY float32 (N, 4), ``canvas_size=(H, W)``, and ``target["labels"]``
    int64 (N,) indexing ``VOC_CLASSES`` (1..20; 0 is "__background__"). The boxes are VOC's
    ``xmin, ymin, xmax, ymax`` as torchvision reads them: VOC counts pixels from 1 and its
    ``xmax`` is the last covered column, so in the course's convention (0-based, x2 exclusive)
    x2 / y2 are right and x1 / y1 one pixel too large. ``transforms`` (a ``transforms.v2``
    callable) is applied after that conversion, to ``(image, target)``. Photographs differ in
    size: batch them with ``detection_collate``.

    Args:
        root: the data folder; torchvision keeps the data in ``root/"VOCdevkit"/"VOC<year>"``
            (default ``data_dir()``).
        year: "2007" to "2012".
        image_set: "train", "trainval" or "val" ("test" too for 2007).
        download: let torchvision download the year's archive (internet needed).
        transforms: optional ``transforms.v2`` callable applied to ``(image, target)``.
    """
    check_transforms(transforms)
    root = data_root(root)
    dtypes = {tv_tensors.Image: torch.float32, tv_tensors.BoundingBoxes: torch.float32}
    steps = [v2.ToImage(), v2.ToDtype({**dtypes, "others": None}, scale=True)]
    try:
        voc = VOCDetection(
            root,
            year=year,
            image_set=image_set,
            download=bool(download),
            transforms=v2.Compose(steps + ([transforms] if transforms is not None else [])),
        )
    except (RuntimeError, OSError) as error:
        if isinstance(error, RuntimeError) and not _not_found(error):
            raise
        key = "2007-test" if year == "2007" and image_set == "test" else year
        folder = root / DATASET_YEAR_DICT[key]["base_dir"]
        urls = [DATASET_YEAR_DICT[key]["url"]]
        raise _unavailable(
            f"PASCAL VOC {key}", folder, root, urls, error, bool(download)
        ) from error
    return wrap_dataset_for_transforms_v2(voc)
