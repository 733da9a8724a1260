"""Training YOLO v1 with the shared loop: targets encoded on the fly, the five loss terms logged.

    data = MirroredScenes(SceneDataset("train", 300))      # (image, target) items
    history = train_yolo(model, data, steps=600)            # five loss curves

Images are float (3, H, W) in [0, 1], all the same size; targets dicts with ``boxes`` (N, 4) xyxy
pixels and ``labels`` int64 (N,) in 1..C.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import Dataset

from course_utils.data.datasets import detection_collate
from course_utils.detection.detector_training import train_with_loss
from course_utils.detection.yolo import YOLOv1, encode_targets, yolo_loss
from course_utils.engine import History

__all__ = ["train_yolo", "yolo_training_loss"]


def yolo_training_loss(
    model: YOLOv1,
    batch,
    *,
    grid_size: int = 7,
    num_classes: int = 3,
    lambda_coord: float = 5.0,
    lambda_noobj: float = 0.5,
    encode_fn: Callable[..., torch.Tensor] | None = None,
    loss_fn: Callable[..., dict] | None = None,
) -> dict[str, torch.Tensor]:
    """``loss_fn`` for the shared loop: encode each image's targets on the S x S grid, run the
    model on the stacked images, return the five loss terms.

    ``batch = (images, targets)`` (``datasets.detection_collate``). ``encode_fn`` and ``loss_fn``
    replace :func:`~course_utils.detection.yolo.encode_targets` and
    :func:`~course_utils.detection.yolo.yolo_loss` (same signatures): a notebook passes the
    student's own.
    """
    images, targets = batch
    batch_images = torch.stack(list(images))
    size = tuple(batch_images.shape[-2:])
    encode = encode_fn or encode_targets
    grid = torch.stack(
        [encode(t["boxes"], t["labels"], size, grid_size, num_classes) for t in targets]
    ).to(batch_images.device)
    output = model(batch_images)
    return (loss_fn or yolo_loss)(output, grid, model.boxes_per_cell, lambda_coord, lambda_noobj)


def train_yolo(
    model: YOLOv1,
    dataset: Dataset,
    *,
    steps: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 5e-4,
    **options,
) -> History:
    """Train YOLO from scratch with the course's recipe (``detector_training.train_with_loss``:
    AdamW, one-cycle schedule). ``options``: the recipe's ``checkpoint``, ``seed``, ``device``,
    ``progress``; the others go to :func:`yolo_training_loss` (``grid_size``, ``encode_fn``...).

    Returns:
        fit's ``History``, whose records carry the five loss terms.
    """
    return train_with_loss(
        model,
        dataset,
        yolo_training_loss,
        steps=steps,
        collate_fn=detection_collate,
        images_per_batch=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        **options,
    )
