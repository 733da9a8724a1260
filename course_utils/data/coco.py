"""COCO files: write the course's detection items as COCO, read any COCO dataset back.

* ``export_coco``: a detection dataset -> ``images/<id>.png`` + ``annotations.json``
  (``bbox`` ``[x, y, w, h]``, masks as compressed RLE);
* ``CocoDataset``: any COCO instances file -> the same items as ``SceneDataset``'s
  detection task, so your own data works with the course's loaders, metrics and notebooks.

Items: ``(Image float32 (3, H, W) in [0, 1], target)`` with ``target["boxes"]``
``BoundingBoxes`` XYXY float32 (N, 4) pixels, ``"labels"`` int64 (N,) (the COCO
``category_id``), ``"masks"`` ``Mask`` uint8 (N, H, W) and ``"image_id"`` int.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage
from pycocotools import mask as coco_mask
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.datasets import CocoDetection, wrap_dataset_for_transforms_v2

from course_utils.data.datasets import check_transforms, image_from_pixels
from course_utils.data.scenes import THING_CLASSES


def _rle(mask: np.ndarray) -> dict:
    """Bool/uint8 (H, W) -> COCO compressed RLE with ``counts`` as str (json-able)."""
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """Float (3, H, W) in [0, 1] -> uint8 (H, W, 3) (exact for images made from uint8)."""
    return (image.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def _annotations(target: dict, image_id: int, first_id: int) -> list[dict]:
    """COCO annotations (ids ``first_id``, ``first_id + 1``, ...) of one detection target:
    ``bbox`` ``[x, y, w, h]`` from the XYXY boxes, ``area`` = mask pixel count (box area
    without masks), ``segmentation`` compressed RLE when the target has masks."""
    masks = target.get("masks")
    annotations = []
    for k, (box, label) in enumerate(zip(target["boxes"].tolist(), target["labels"].tolist())):
        annotation = {
            "id": first_id + k,
            "image_id": image_id,
            "category_id": int(label),
            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
            "iscrowd": 0,
            "area": float((box[2] - box[0]) * (box[3] - box[1])),
        }
        if masks is not None:
            mask = masks[k].cpu().numpy()
            annotation["segmentation"] = _rle(mask)
            annotation["area"] = float(mask.astype(bool).sum())
        annotations.append(annotation)
    return annotations


def export_coco(dataset, out_dir: str | Path, categories: tuple[str, ...] = THING_CLASSES) -> Path:
    """Write a detection dataset as COCO: ``out_dir/images/<id>.png`` and
    ``out_dir/annotations.json``.

    ``dataset`` yields detection items (``SceneDataset(task="detection")`` or
    ``CocoDataset``). Annotations: ``bbox`` ``[x, y, w, h]`` from the XYXY boxes, ``area``
    = mask pixel count (box area when there are no masks), ``iscrowd`` 0, ``segmentation``
    as compressed RLE (``pycocotools.mask.encode``); categories ids 1..K named after
    ``categories``. Returns the path of the json file.
    """
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise TypeError(
            f"dataset must be a map-style dataset of detection items, got {type(dataset).__name__}"
        )
    if getattr(dataset, "task", "detection") != "detection":
        raise ValueError(
            "export_coco needs detection items: use SceneDataset(..., task='detection')"
        )
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for position in range(len(dataset)):
        image, target = dataset[position]
        image_id = int(target.get("image_id", position))
        file_name = f"{image_id:06d}.png"
        PILImage.fromarray(_to_uint8(image)).save(out_dir / "images" / file_name)
        height, width = image.shape[-2:]
        images.append(
            {"id": image_id, "file_name": file_name, "height": int(height), "width": int(width)}
        )
        annotations += _annotations(target, image_id, first_id=len(annotations) + 1)
    coco = {
        "info": {"description": "exported by course_utils.data.coco.export_coco"},
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i + 1, "name": name, "supercategory": "thing"}
            for i, name in enumerate(categories)
        ],
    }
    ann_file = out_dir / "annotations.json"
    ann_file.write_text(json.dumps(coco))
    return ann_file


class CocoDataset(Dataset):
    """Any COCO-format detection dataset, with the same items as ``SceneDataset`` detection.

    Wraps ``torchvision.datasets.CocoDetection`` with ``wrap_dataset_for_transforms_v2``;
    images become float ``Image`` in [0, 1], labels int64 (= COCO ``category_id``, so keep
    your category ids 1..K), masks uint8 ``Mask`` (N, H, W) (all zero for annotations
    without ``segmentation``), boxes XYXY. Images without annotations give empty targets.
    There is no ``"semantic"`` entry (COCO instances have no stuff). ``classes`` lists the
    category names ordered by id.
    """

    def __init__(
        self, image_dir: str | Path, ann_file: str | Path, transforms: Callable | None = None
    ) -> None:
        image_dir, ann_file = Path(image_dir), Path(ann_file)
        if not image_dir.is_dir():
            raise ValueError(f"image_dir must be a folder of images, {image_dir} is not one")
        if not ann_file.is_file():
            raise ValueError(
                f"ann_file must be a COCO instances json file, {ann_file} does not exist"
            )
        check_transforms(transforms)
        self.transforms = transforms
        self._coco = CocoDetection(str(image_dir), str(ann_file))
        self._with_masks = all(
            "segmentation" in a for a in self._coco.coco.dataset.get("annotations", [])
        )
        keys = ("image_id", "boxes", "labels") + (("masks",) if self._with_masks else ())
        self._wrapped = wrap_dataset_for_transforms_v2(self._coco, target_keys=keys)
        categories = sorted(self._coco.coco.dataset.get("categories", []), key=lambda c: c["id"])
        self.classes: tuple[str, ...] = tuple(c["name"] for c in categories)

    def __len__(self) -> int:
        return len(self._wrapped)

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        pil_image, raw = self._wrapped[index]
        image = image_from_pixels(np.asarray(pil_image.convert("RGB")))
        height, width = image.shape[-2:]
        boxes = raw.get("boxes")
        if boxes is None:
            boxes = tv_tensors.BoundingBoxes(
                torch.zeros((0, 4)), format="XYXY", canvas_size=(height, width)
            )
        count = boxes.shape[0]
        masks = raw.get("masks")
        masks = (
            tv_tensors.Mask(masks.to(torch.uint8))
            if masks is not None
            else tv_tensors.Mask(torch.zeros((count, height, width), dtype=torch.uint8))
        )
        target = {
            "boxes": tv_tensors.wrap(boxes.to(torch.float32), like=boxes),
            "labels": torch.as_tensor(raw.get("labels", []), dtype=torch.int64).reshape(count),
            "masks": masks,
            "image_id": int(raw["image_id"]),
        }
        return self.transforms(image, target) if self.transforms is not None else (image, target)

    def __repr__(self) -> str:
        return f"CocoDataset(images={len(self)}, classes={self.classes})"
