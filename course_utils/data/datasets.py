"""PyTorch datasets over the scenes.

* ``SceneDataset``: the scenes of ``course_utils.data.scenes`` for detection (boxes, labels,
  instance masks, semantic map) or semantic segmentation. Images are generated once,
  kept in memory as uint8 arrays and cached to ``data_dir()/"scenes"`` (one ``.npz`` per
  split, size and configuration, see ``course_utils.data.scene_store``), so indexing costs
  only a tensor conversion.
* ``CropDataset``: class-balanced square crops (objects with context vs background
  windows) for "detection as classification" and sliding windows.
* ``detection_collate``: the ``collate_fn`` for detection ``DataLoader``s.

``course_utils.data.coco`` reads and writes the same detection items as COCO files.

Item formats (torchvision ``tv_tensors``, so ``transforms.v2`` move boxes and masks):

* detection: ``(Image float32 (3, H, W) in [0, 1], target)`` with ``target["boxes"]``
  ``BoundingBoxes`` XYXY float32 (N, 4) in pixels (x2/y2 exclusive: the last covered
  column + 1), ``target["labels"]`` int64 (N,) in 1..K, ``target["masks"]`` ``Mask`` uint8
  (N, H, W), ``target["semantic"]`` ``Mask`` int64 (H, W) (scenes only) and
  ``target["image_id"]`` int. N = 0 is legal (boxes (0, 4), masks (0, H, W)).
* segmentation: ``(Image, Mask int64 (H, W))`` with ids into ``SEMANTIC_CLASSES``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.ops import box_iou
from torchvision.transforms.v2 import functional as F

from course_utils.core.validate import check_int, check_number
from course_utils.data.scene_store import load_or_generate
from course_utils.data.scenes import (
    SEMANTIC_CLASSES,
    THING_CLASSES,
    Scene,
    SceneConfig,
    check_split,
    masks_from_instance_map,
)

TASKS: tuple[str, ...] = ("detection", "segmentation")


def check_transforms(transforms) -> None:
    """TypeError unless ``transforms`` is None or callable (a ``transforms.v2`` pipeline)."""
    if transforms is not None and not callable(transforms):
        raise TypeError(
            "transforms must be callable (e.g. a torchvision.transforms.v2.Compose) or None, "
            f"got {type(transforms).__name__}"
        )


# --------------------------------------------------------------------------- scenes as a dataset


def image_from_pixels(pixels: np.ndarray) -> tv_tensors.Image:
    """uint8 numpy (H, W, 3) -> ``Image`` float32 (3, H, W) in [0, 1] (``pixels / 255``)."""
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
        check_split(split)
        check_int(num_images, "num_images")
        if not isinstance(config, SceneConfig):
            raise TypeError(f"config must be a SceneConfig, got {type(config).__name__}")
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        check_transforms(transforms)
        self.split, self.config, self.transforms, self.task = split, config, transforms, task
        self.classes: tuple[str, ...] = THING_CLASSES
        self.semantic_classes: tuple[str, ...] = SEMANTIC_CLASSES
        self._store = load_or_generate(split, num_images, config, cache=cache, progress=progress)
        self._offsets = np.concatenate([[0], np.cumsum(self._store["counts"])])

    def __len__(self) -> int:
        return len(self._store["counts"])

    def _index(self, index) -> int:
        """``index`` in [-len, len) as a non-negative int (TypeError / IndexError otherwise)."""
        check_int(index, "index", minimum=None)
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
        image = image_from_pixels(scene.image)
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


# ------------------------------------------------------------------------ crops for classification


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
        check_int(crop_size, "crop_size", minimum=4)
        check_int(background_per_image, "background_per_image", minimum=0)
        check_int(seed, "seed", minimum=0)
        check_number(context, "context (a fraction of the object's side)", 0, 2)
        check_transforms(transforms)
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
            f"CropDataset(split={self.scenes.split!r}, crops={len(self)}, "
            f"per_label={len(self) // len(self.classes)}, crop_size={self.crop_size})"
        )
