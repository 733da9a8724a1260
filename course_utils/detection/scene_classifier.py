"""Notebook 01's crop classifier for the scenes: its training set and the trained network.

The training crops are ``CropDataset``'s (centred objects + random background) plus
*hard* background crops cut from the sliding-window grid itself (:func:`hard_background_crops`):
windows that touch an object (a part of it, or a window far too large or too small) are what a
classifier trained on centred objects fires on, so it has to learn to reject them.

Boxes are float32 (N, 4) ``(x1, y1, x2, y2)`` in absolute pixels; crops float (C, S, S) in [0, 1].

    train_set, object_crops, hard_crops = scene_classifier_training_set(400)
    model, history = pretrained_crop_classifier()   # the same network as notebook 01 (checkpoint)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import ConcatDataset, Dataset
from torchvision.ops import box_iou

from course_utils.core.tensors import plain
from course_utils.core.validate import check_boxes, check_int, check_number
from course_utils.data.datasets import CropDataset
from course_utils.detection.classifiers import (
    CropClassifier,
    crop_augmentation,
    train_crop_classifier,
)
from course_utils.detection.windows import (
    best_window_iou,
    crop_windows,
    multiscale_windows,
    shrink_boxes,
)

__all__ = [
    "DEFAULT_WINDOWS",
    "WindowCrops",
    "background_mask",
    "hard_background_crops",
    "pretrained_crop_classifier",
    "scene_classifier_training_set",
]


#: Window sides (pixels) of notebook 01's detector: objects of 12..50 px (the scenes' objects are
#: 14..56 px; with stride = window / 4 nearly every object is covered at IoU >= 0.5) seen with
#: ``CropDataset``'s context of 0.25 (window = 1.5 x object), neighbouring sizes a factor ~1.33
#: apart.
DEFAULT_WINDOWS: tuple[int, ...] = (18, 24, 32, 42, 56, 75)


def background_mask(
    gt_boxes: torch.Tensor, windows: torch.Tensor, context: float = 0.0, max_iou: float = 0.3
) -> torch.Tensor:
    """bool (N,): the windows (N, 4) xyxy whose object box (``shrink_boxes``) has IoU <
    ``max_iou`` with every ground-truth box (G, 4) xyxy: the windows a detector must call
    background. G = 0 makes every window background."""
    check_boxes(gt_boxes, "gt_boxes")
    max_iou = check_number(max_iou, "max_iou", 0.0, 1.0)
    if len(gt_boxes) == 0:
        return torch.ones(len(windows), dtype=torch.bool, device=windows.device)
    return best_window_iou(shrink_boxes(windows, context), gt_boxes.float()) < max_iou


class WindowCrops(Dataset):
    """Labelled crops as a dataset of ``(float (C, S, S) in [0, 1], int label)`` items, like
    ``CropDataset``.

    Args:
        crops: uint8 (N, C, S, S) (0-255) or float (N, C, S, S) in [0, 1]; stored as uint8.
        labels: int64 (N,).
        windows: optional float (N, 4) xyxy, where each crop came from.
        image_indices: optional int64 (N,), which image each crop came from.
        transforms: optional callable applied to each float crop (augmentation).
    """

    def __init__(
        self,
        crops: torch.Tensor,
        labels: torch.Tensor,
        windows: torch.Tensor | None = None,
        image_indices: torch.Tensor | None = None,
        transforms=None,
    ) -> None:
        if not isinstance(crops, torch.Tensor) or crops.ndim != 4:
            raise ValueError("crops must be a tensor (N, C, S, S)")
        if not isinstance(labels, torch.Tensor) or labels.shape != (crops.shape[0],):
            raise ValueError(f"labels must be a tensor ({crops.shape[0]},), one per crop")
        if crops.is_floating_point():
            crops = crops.clamp(0, 1).mul(255).round().to(torch.uint8)
        self.crops, self.labels, self.transforms = crops, labels.long(), transforms
        self.windows, self.image_indices = windows, image_indices

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        crop = self.crops[index].float().div(255.0)
        if self.transforms is not None:
            crop = self.transforms(crop)
        return crop, int(self.labels[index])


def _pick_hard_windows(
    grid: torch.Tensor,
    gt_boxes: torch.Tensor,
    context: float,
    max_iou: float,
    per_image: int,
    generator: torch.Generator,
) -> torch.Tensor | None:
    """Indices (int64) of up to ``per_image`` background windows of ``grid`` (N, 4): those
    touching an object first, random background ones to fill up; None when there is none."""
    background = background_mask(gt_boxes, grid, context, max_iou)
    touching = background & (
        box_iou(grid, gt_boxes).amax(dim=1) > 0 if len(gt_boxes) else background & False
    )
    chosen = []
    for pool in (
        torch.nonzero(touching).flatten(),
        torch.nonzero(background & ~touching).flatten(),
    ):
        need = per_image - sum(len(c) for c in chosen)
        if need > 0 and len(pool):
            chosen.append(pool[torch.randperm(len(pool), generator=generator)[:need]])
    return torch.cat(chosen) if chosen else None


def hard_background_crops(
    scenes,
    windows: Sequence[float],
    strides: Sequence[float],
    *,
    context: float = 0.25,
    per_image: int = 8,
    max_iou: float = 0.3,
    crop_size: int = 32,
    seed: int = 0,
    transforms=None,
) -> WindowCrops:
    """Background crops taken from the sliding-window grid itself, ``per_image`` per scene.

    Among the grid's windows that are background (:func:`background_mask`), those that overlap an
    object (a piece of it, or a window much larger or smaller than it) are drawn first: they are
    the ones a classifier trained on centred objects and random background has never seen, so it
    fires on them. Random background windows fill up when a scene has too few.

    Args:
        scenes: a ``SceneDataset``-like dataset (``scenes[i] -> (image, target)``).
        windows, strides, context: the grid, as in ``multiscale_windows``.
        per_image: crops per scene; max_iou: see :func:`background_mask`.
        crop_size: side S of the crops; seed: seeds the draws (one generator for all scenes).

    Returns:
        :class:`WindowCrops` of uint8 (N, C, S, S) crops with label 0, ``windows`` and
        ``image_indices`` filled in.
    """
    check_int(per_image, "per_image")
    check_int(crop_size, "crop_size")
    generator = torch.Generator().manual_seed(seed)
    crops, boxes, sources = [], [], []
    for index in range(len(scenes)):
        image, target = scenes[index]
        image = plain(image)
        gt_boxes = plain(target["boxes"]).float()
        grid, _ = multiscale_windows(tuple(image.shape[-2:]), windows, strides, context)
        chosen = _pick_hard_windows(grid, gt_boxes, context, max_iou, per_image, generator)
        if chosen is None:
            continue
        picked = grid[chosen]
        crops.append(crop_windows(image, picked, crop_size))
        boxes.append(picked)
        sources.append(torch.full((len(picked),), index, dtype=torch.int64))
    if not crops:
        raise ValueError("no background window found in these scenes")
    crops_tensor = torch.cat(crops)
    return WindowCrops(
        crops_tensor,
        torch.zeros(len(crops_tensor), dtype=torch.int64),
        torch.cat(boxes),
        torch.cat(sources),
        transforms=transforms,
    )


def scene_classifier_training_set(
    num_scenes: int = 400,
    *,
    crop_size: int = 32,
    context: float = 0.25,
    hard_per_image: int = 8,
    windows: Sequence[float] = DEFAULT_WINDOWS,
    stride_fraction: float = 0.25,
    seed: int = 0,
) -> tuple[ConcatDataset, CropDataset, WindowCrops]:
    """Notebook 01's training crops: ``CropDataset`` (objects + random background) plus
    :func:`hard_background_crops` from the dense grid (``stride = window * stride_fraction``),
    both augmented with ``crop_augmentation()``. Items are ``(float (3, S, S) in [0, 1], int
    label)``.

    Returns:
        ``(ConcatDataset of both, crop_dataset, hard_crops)``.
    """
    crops = CropDataset(
        "train",
        num_images=num_scenes,
        crop_size=crop_size,
        context=context,
        transforms=crop_augmentation(),
        seed=seed,
    )
    hard = hard_background_crops(
        crops.scenes,
        windows,
        [w * stride_fraction for w in windows],
        context=context,
        per_image=hard_per_image,
        crop_size=crop_size,
        seed=seed,
        transforms=crop_augmentation(),
    )
    return ConcatDataset([crops, hard]), crops, hard


def pretrained_crop_classifier(
    *,
    num_scenes: int = 400,
    steps: int = 350,
    checkpoint: str | None = "01_classifier",
    device: torch.device | str | None = None,
    progress: bool = True,
):
    """Notebook 01's crop classifier, trained (or loaded from ``checkpoint`` when notebook 01
    already ran).

    ``CropClassifier(num_classes=4, crop_size=32, width=16)`` trained with
    ``train_crop_classifier`` on :func:`scene_classifier_training_set`: the same recipe and
    checkpoint name as notebook 01, so code run after it (the tests, an instructor's script)
    starts from the same network.

    Returns:
        ``(model in eval mode, History)``.
    """
    train_set, _, _ = scene_classifier_training_set(num_scenes)
    model = CropClassifier(num_classes=4, crop_size=32, width=16)
    history = train_crop_classifier(
        model, train_set, steps=steps, checkpoint=checkpoint, device=device, progress=progress
    )
    return model.eval(), history
