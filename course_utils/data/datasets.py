"""PyTorch datasets over the scenes (and over any COCO-format dataset).

* ``SceneDataset``: the scenes of ``course_utils.data.scenes`` for detection (boxes, labels,
  instance masks, semantic map) or semantic segmentation. Images are generated once,
  kept in memory as uint8 arrays and cached to ``data_dir()/"scenes"`` (one ``.npz`` per
  split, size and configuration), so indexing costs only a tensor conversion.
* ``CropDataset``: class-balanced square crops (objects with context vs background
  windows) for "detection as classification" and sliding windows.
* ``detection_collate``: the ``collate_fn`` for detection ``DataLoader``s.
* ``export_coco`` / ``CocoDataset``: write a detection dataset as COCO (PNG images +
  instances json with RLE masks) and read any COCO dataset back in the same item format,
  so your own data works with the course's loaders, metrics and notebooks.

Item formats (torchvision ``tv_tensors``, so ``transforms.v2`` move boxes and masks):

* detection: ``(Image float32 (3, H, W) in [0, 1], target)`` with ``target["boxes"]``
  ``BoundingBoxes`` XYXY float32 (N, 4) in pixels (x2/y2 exclusive: the last covered
  column + 1), ``target["labels"]`` int64 (N,) in 1..K, ``target["masks"]`` ``Mask`` uint8
  (N, H, W), ``target["semantic"]`` ``Mask`` int64 (H, W) (scenes only) and
  ``target["image_id"]`` int. N = 0 is legal (boxes (0, 4), masks (0, H, W)).
* segmentation: ``(Image, Mask int64 (H, W))`` with ids into ``SEMANTIC_CLASSES``.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.ops import box_iou
from torchvision.transforms.v2 import functional as F

from course_utils.data.scenes import (
    SEMANTIC_CLASSES,
    SPLITS,
    THING_CLASSES,
    Scene,
    SceneConfig,
    config_hash,
    generate_scene,
    instance_map_from_masks,
    masks_from_instance_map,
    scene_seed,
)

TASKS: tuple[str, ...] = ("detection", "segmentation")
_STORE_KEYS = ("images", "semantic", "instances", "labels", "boxes", "counts")


# --------------------------------------------------------------------------- argument checks


def _check_split(split) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def _check_count(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_transforms(transforms) -> None:
    if transforms is not None and not callable(transforms):
        raise TypeError(
            f"transforms must be callable (e.g. a torchvision.transforms.v2.Compose) or None, "
            f"got {type(transforms).__name__}"
        )


# --------------------------------------------------------------------------- generation and cache


def generate_store(
    split: str, num_images: int, config: SceneConfig = SceneConfig(), progress: bool = False
) -> dict[str, np.ndarray]:
    """Generate scenes ``0..num_images-1`` of ``split`` into compact arrays.

    Returns a dict: ``images`` uint8 (M, H, W, 3), ``semantic`` uint8 (M, H, W),
    ``instances`` uint8 (M, H, W) (0 = none, i + 1 = instance i of that image),
    ``labels`` int64 (T,) and ``boxes`` float32 (T, 4) of all T instances in image
    order, ``counts`` int64 (M,) instances per image.
    """
    from tqdm.auto import tqdm

    _check_split(split)
    _check_count(num_images, "num_images")
    size = config.size
    store = {
        "images": np.zeros((num_images, size, size, 3), np.uint8),
        "semantic": np.zeros((num_images, size, size), np.uint8),
        "instances": np.zeros((num_images, size, size), np.uint8),
        "counts": np.zeros(num_images, np.int64),
    }
    labels, boxes = [], []
    for index in tqdm(range(num_images), desc=f"scenes/{split}", disable=not progress, leave=False):
        scene = generate_scene(scene_seed(split, index), config)
        store["images"][index] = scene.image
        store["semantic"][index] = scene.semantic
        store["instances"][index] = instance_map_from_masks(scene.masks)
        store["counts"][index] = len(scene.labels)
        labels.append(scene.labels)
        boxes.append(scene.boxes)
    store["labels"] = np.concatenate(labels).astype(np.int64)
    store["boxes"] = np.concatenate(boxes).astype(np.float32).reshape(-1, 4)
    return store


def cache_path(split: str, num_images: int, config: SceneConfig = SceneConfig()) -> Path:
    """``data_dir()/"scenes"/<split>_<num_images>_<config hash>.npz``."""
    from course_utils.core.paths import data_dir

    return (
        data_dir()
        / "scenes"
        / f"{_check_split(split)}_{_check_count(num_images, 'num_images')}_{config_hash(config)}.npz"
    )


def _slice_store(store: dict[str, np.ndarray], num_images: int) -> dict[str, np.ndarray]:
    """The first ``num_images`` images of a store (scenes are index-deterministic)."""
    total = int(store["counts"][:num_images].sum())
    out = {key: store[key][:num_images] for key in ("images", "semantic", "instances", "counts")}
    out["labels"], out["boxes"] = store["labels"][:total], store["boxes"][:total]
    return out


def _read_store(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file, or None when it is missing, truncated or incomplete."""
    try:
        with np.load(path) as archive:
            store = {key: archive[key] for key in _STORE_KEYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    return store


def _write_store(path: Path, store: dict[str, np.ndarray]) -> None:
    """Write a cache file atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=path.stem, suffix=".tmp", delete=False
    )
    try:
        with handle:
            np.savez_compressed(handle, **store)
        os.chmod(handle.name, 0o644)  # NamedTemporaryFile makes 0600 files
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def load_or_generate(
    split: str,
    num_images: int,
    config: SceneConfig = SceneConfig(),
    cache: bool = True,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """The store of ``generate_store``, read from the cache when possible.

    A cached file of the same split and configuration with *at least* ``num_images``
    images is reused (its first ``num_images`` are the same scenes). Otherwise the scenes
    are generated and, with ``cache=True``, written to ``cache_path(...)``.
    """
    path = cache_path(split, num_images, config)
    if cache:
        candidates = []
        for found in path.parent.glob(f"{split}_*_{config_hash(config)}.npz"):
            count = found.stem.split("_")[1]
            if count.isdigit() and int(count) >= num_images:
                candidates.append((int(count), found))
        for _, found in sorted(candidates):
            store = _read_store(found)
            if store is not None and len(store["counts"]) >= num_images:
                return _slice_store(store, num_images)
    store = generate_store(split, num_images, config, progress=progress)
    if cache:
        _write_store(path, store)
    return store


# --------------------------------------------------------------------------- scenes as a dataset


def _to_image(pixels: np.ndarray) -> tv_tensors.Image:
    """uint8 (H, W, 3) -> ``Image`` float32 (3, H, W) in [0, 1]."""
    # numpy, not torch: tiny torch ops pay for intra-op threads on a busy 2-core machine
    return tv_tensors.Image(
        torch.from_numpy(pixels.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0))
    )


class SceneDataset(Dataset):
    """The course's scenes as a map-style dataset (see the module docstring for items).

    Args:
        split: "train", "val" or "test" (disjoint seeds).
        num_images: how many scenes (images ``0..num_images-1`` of the split).
        config: a ``SceneConfig`` (size, object counts and sizes, difficulty).
        transforms: optional ``transforms.v2`` callable applied to ``(image, target)``
            (detection) or ``(image, mask)`` (segmentation).
        task: "detection" or "segmentation".
        cache: read/write the ``.npz`` cache in ``data_dir()/"scenes"``.
        progress: show a progress bar while generating.
    """

    def __init__(
        self,
        split: str = "train",
        num_images: int = 500,
        config: SceneConfig = SceneConfig(),
        transforms: Callable | None = None,
        task: str = "detection",
        cache: bool = True,
        progress: bool = True,
    ) -> None:
        _check_split(split)
        _check_count(num_images, "num_images")
        if not isinstance(config, SceneConfig):
            raise TypeError(f"config must be a SceneConfig, got {type(config).__name__}")
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        _check_transforms(transforms)
        self.split, self.config, self.transforms, self.task = split, config, transforms, task
        self.classes: tuple[str, ...] = THING_CLASSES
        self.semantic_classes: tuple[str, ...] = SEMANTIC_CLASSES
        self._store = load_or_generate(split, num_images, config, cache=cache, progress=progress)
        self._offsets = np.concatenate([[0], np.cumsum(self._store["counts"])])

    def __len__(self) -> int:
        return len(self._store["counts"])

    def _index(self, index) -> int:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} scenes")
        return int(index) % len(self)

    def scene(self, index: int) -> Scene:
        """The raw ``Scene`` (uint8 numpy arrays, no transforms) of image ``index``."""
        index = self._index(index)
        start, stop = self._offsets[index], self._offsets[index + 1]
        masks = masks_from_instance_map(self._store["instances"][index], int(stop - start))
        return Scene(
            image=self._store["images"][index],
            boxes=self._store["boxes"][start:stop],
            labels=self._store["labels"][start:stop],
            masks=masks,
            semantic=self._store["semantic"][index],
        )

    def __getitem__(self, index: int):
        index = self._index(index)
        scene = self.scene(index)
        image = _to_image(scene.image)
        semantic = tv_tensors.Mask(torch.from_numpy(scene.semantic.astype(np.int64)))
        if self.task == "segmentation":
            return (
                self.transforms(image, semantic)
                if self.transforms is not None
                else (image, semantic)
            )
        size = self.config.size
        target = {
            "boxes": tv_tensors.BoundingBoxes(
                torch.from_numpy(scene.boxes.copy()), format="XYXY", canvas_size=(size, size)
            ),
            "labels": torch.from_numpy(scene.labels.copy()),
            "masks": tv_tensors.Mask(torch.from_numpy(scene.masks.astype(np.uint8))),
            "semantic": semantic,
            "image_id": index,
        }
        return self.transforms(image, target) if self.transforms is not None else (image, target)

    def __repr__(self) -> str:
        return (
            f"SceneDataset(split={self.split!r}, num_images={len(self)}, task={self.task!r}, "
            f"size={self.config.size}, instances={len(self._store['labels'])})"
        )


def detection_collate(batch):
    """Collate detection items into ``(list of images, list of targets)`` (sizes may differ)."""
    if not isinstance(batch, (list, tuple)) or not batch:
        raise ValueError("batch must be a non-empty list of (image, target) pairs")
    images, targets = zip(*batch)
    return list(images), list(targets)


# --------------------------------------------------------------------------- crops for classification


def _square_window(box: torch.Tensor, context: float) -> torch.Tensor:
    """Square xyxy window centred on ``box`` with side ``max(w, h) * (1 + 2 * context)``."""
    center_x, center_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = torch.maximum(box[2] - box[0], box[3] - box[1]) * (0.5 + context)
    return torch.stack([center_x - half, center_y - half, center_x + half, center_y + half])


def _crop(image: torch.Tensor, window: torch.Tensor, crop_size: int) -> torch.Tensor:
    """Cut integer-rounded ``window`` (zero-padded outside the image), resize to crop_size."""
    left, top, right, bottom = (int(v) for v in torch.round(window).tolist())
    return F.resized_crop(
        image,
        top,
        left,
        max(bottom - top, 1),
        max(right - left, 1),
        [crop_size, crop_size],
        antialias=True,
    )


def _background_windows(
    rng: np.random.Generator,
    boxes: torch.Tensor,
    count: int,
    size: int,
    low: float,
    high: float,
    attempts: int = 50,
) -> list[torch.Tensor]:
    """Up to ``count`` random square windows (sides log-uniform in [low, high]) inside the image
    with IoU < 0.3 with every box and covering less than half of any box."""
    windows: list[torch.Tensor] = []
    for _ in range(count * attempts):
        if len(windows) == count:
            break
        side = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        x, y = rng.uniform(0, size - side, 2)
        window = torch.tensor([[x, y, x + side, y + side]], dtype=torch.float32)
        if len(boxes):
            iou = box_iou(window, boxes)[0]
            inter_w = (
                torch.minimum(window[0, 2], boxes[:, 2]) - torch.maximum(window[0, 0], boxes[:, 0])
            ).clamp(min=0)
            inter_h = (
                torch.minimum(window[0, 3], boxes[:, 3]) - torch.maximum(window[0, 1], boxes[:, 1])
            ).clamp(min=0)
            inside = inter_w * inter_h / ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
            if (iou >= 0.3).any() or (inside >= 0.5).any():
                continue
        windows.append(window[0])
    return windows


class CropDataset(Dataset):
    """Class-balanced square crops of the scenes: "disk? triangle? star? background?".

    Object crops: each instance's box enlarged by ``context`` (a fraction of its longest
    side on every side), made square, cut (zero padding outside the image) and resized to
    ``crop_size``. Background crops: ``background_per_image`` random square windows per
    scene, sides log-uniform over the object-window sizes, with IoU < 0.3 with every object
    box and covering less than half of any object.

    Balance: every label (0 = background, 1..3 = ``THING_CLASSES``) keeps the same number
    of crops, the smallest count among them; the others are subsampled at random
    (seeded), and the final order is shuffled. Items: ``(float tensor (3, S, S) in [0, 1],
    int label)``. ``windows`` (M, 4) xyxy and ``image_indices`` (M,) say where each crop
    came from; ``scenes`` is the underlying ``SceneDataset``.
    """

    def __init__(
        self,
        split: str = "train",
        num_images: int = 200,
        crop_size: int = 32,
        context: float = 0.25,
        background_per_image: int = 3,
        config: SceneConfig = SceneConfig(),
        transforms: Callable | None = None,
        seed: int = 0,
        cache: bool = True,
    ) -> None:
        _check_count(crop_size, "crop_size", minimum=4)
        _check_count(background_per_image, "background_per_image", minimum=0)
        _check_count(seed, "seed", minimum=0)
        if (
            isinstance(context, bool)
            or not isinstance(context, (int, float))
            or not 0 <= context <= 2
        ):
            raise ValueError(
                f"context must be a number in [0, 2] (fraction of the object's side), got {context!r}"
            )
        _check_transforms(transforms)
        self.scenes = SceneDataset(split, num_images, config, cache=cache, progress=False)
        self.crop_size, self.context, self.transforms = crop_size, float(context), transforms
        self.classes: tuple[str, ...] = ("background",) + THING_CLASSES
        crops, labels, windows, sources = self._collect(
            np.random.default_rng(np.random.SeedSequence([seed, 7])), background_per_image
        )
        keep = self._balance(np.random.default_rng(np.random.SeedSequence([seed, 11])), labels)
        self._crops = (
            torch.stack(crops)[keep]
            if crops
            else torch.zeros((0, 3, crop_size, crop_size), dtype=torch.uint8)
        )
        self.labels = torch.as_tensor(labels, dtype=torch.int64)[keep]
        self.windows = torch.stack(windows)[keep] if windows else torch.zeros((0, 4))
        self.image_indices = torch.as_tensor(sources, dtype=torch.int64)[keep]

    def _collect(self, rng: np.random.Generator, background_per_image: int):
        """All object and background crops (uint8 (3, S, S)), labels, windows, image indices."""
        low, high = self.scenes.config.object_size_range()
        crops, labels, windows, sources = [], [], [], []
        for index in range(len(self.scenes)):
            scene = self.scenes.scene(index)
            image = torch.from_numpy(np.ascontiguousarray(scene.image)).permute(2, 0, 1)
            boxes = torch.from_numpy(scene.boxes)
            found = [
                (_square_window(box, self.context), int(label))
                for box, label in zip(boxes, scene.labels)
            ]
            found += [
                (window, 0)
                for window in _background_windows(
                    rng,
                    boxes,
                    background_per_image,
                    self.scenes.config.size,
                    low,
                    min(high * (1 + 2 * self.context), self.scenes.config.size),
                )
            ]
            for window, label in found:
                crops.append(_crop(image, window, self.crop_size))
                labels.append(label)
                windows.append(window)
                sources.append(index)
        return crops, labels, windows, sources

    def _balance(self, rng: np.random.Generator, labels: list[int]) -> torch.Tensor:
        """Indices keeping the same number of crops per label (the smallest count), shuffled."""
        labels_array = np.asarray(labels, dtype=np.int64)
        counts = np.bincount(labels_array, minlength=len(self.classes))
        if counts.min() == 0:
            missing = [self.classes[i] for i in np.flatnonzero(counts == 0)]
            raise ValueError(
                f"no crops of {missing} in {len(self.scenes)} scenes: use more num_images "
                "(or background_per_image > 0)"
            )
        per_label = int(counts.min())
        keep = np.concatenate(
            [
                rng.permutation(np.flatnonzero(labels_array == label))[:per_label]
                for label in range(len(self.classes))
            ]
        )
        return torch.from_numpy(rng.permutation(keep))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} crops")
        crop = self._crops[index].float().div(255.0)
        if self.transforms is not None:
            crop = self.transforms(crop)
        return crop, int(self.labels[index])

    def __repr__(self) -> str:
        return (
            f"CropDataset(split={self.scenes.split!r}, crops={len(self)}, per_label={len(self) // len(self.classes)}, "
            f"crop_size={self.crop_size})"
        )


# --------------------------------------------------------------------------- COCO format


def _rle(mask: np.ndarray) -> dict:
    """Bool/uint8 (H, W) -> COCO compressed RLE with ``counts`` as str (json-able)."""
    from pycocotools import mask as coco_mask

    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """Float (3, H, W) in [0, 1] -> uint8 (H, W, 3) (exact for images made from uint8)."""
    return (image.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def export_coco(dataset, out_dir: str | Path, categories: tuple[str, ...] = THING_CLASSES) -> Path:
    """Write a detection dataset as COCO: ``out_dir/images/<id>.png`` + ``out_dir/annotations.json``.

    ``dataset`` yields detection items (``SceneDataset(task="detection")`` or
    ``CocoDataset``). Annotations: ``bbox`` ``[x, y, w, h]`` from the XYXY boxes, ``area``
    = mask pixel count (box area when there are no masks), ``iscrowd`` 0, ``segmentation``
    as compressed RLE (``pycocotools.mask.encode``); categories ids 1..K named after
    ``categories``. Returns the path of the json file.
    """
    from PIL import Image as PILImage

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
        masks = target.get("masks")
        for k, (box, label) in enumerate(zip(target["boxes"].tolist(), target["labels"].tolist())):
            annotation = {
                "id": len(annotations) + 1,
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
    coco = {
        "info": {"description": "exported by course_utils.data.datasets.export_coco"},
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
        from torchvision.datasets import CocoDetection, wrap_dataset_for_transforms_v2

        image_dir, ann_file = Path(image_dir), Path(ann_file)
        if not image_dir.is_dir():
            raise ValueError(f"image_dir must be a folder of images, {image_dir} is not one")
        if not ann_file.is_file():
            raise ValueError(
                f"ann_file must be a COCO instances json file, {ann_file} does not exist"
            )
        _check_transforms(transforms)
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
        image = _to_image(np.asarray(pil_image.convert("RGB")))
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
