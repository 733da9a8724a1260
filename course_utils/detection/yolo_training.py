"""Training YOLO v1 with the shared loop, the five loss terms logged.

Notebook 06 trains YOLO's own layers on a frozen pre-trained trunk, whose features it computes
once (a CPU trains thousands of steps in seconds); :func:`train_yolo` trains the whole network
on the images (the paper's fine-tuning)::

    data = grid_dataset(trunk, MirroredScenes(SceneDataset("train", 600)))  # (features, grid)
    history = train_yolo_layers(nn.Sequential(neck, head), data, steps=800)
    history = train_yolo(model, MirroredScenes(scenes), steps=600)         # end to end

Images are float (3, H, W) in [0, 1], all the same size; targets dicts with ``boxes`` (N, 4) xyxy
pixels and ``labels`` int64 (N,) in 1..C.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from course_utils.core.tensors import plain
from course_utils.data.datasets import detection_collate
from course_utils.detection.detector_training import train_with_loss
from course_utils.detection.yolo import YOLOv1, encode_targets, yolo_loss
from course_utils.engine import History

__all__ = [
    "grid_dataset",
    "grid_feature_loss",
    "train_yolo",
    "train_yolo_layers",
    "yolo_training_loss",
]


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


@torch.no_grad()
def grid_dataset(
    trunk: nn.Module,
    scenes: Dataset,
    *,
    grid_size: int = 7,
    num_classes: int = 3,
    encode_fn: Callable[..., torch.Tensor] | None = None,
    batch_size: int = 64,
    device: torch.device | str | None = None,
) -> TensorDataset:
    """The frozen ``trunk``'s features of every scene with its S x S target grid, computed once.

    ``scenes`` items are ``(image float (3, H, W), target {"boxes", "labels"})``, all the same
    size. ``trunk`` runs in eval mode (restored afterwards) on ``device`` (default: the trunk's),
    ``batch_size`` images at a time; ``encode_fn`` replaces
    :func:`~course_utils.detection.yolo.encode_targets`.

    Returns:
        ``TensorDataset(features float32 (N, D, h, w), grids float32 (N, S, S, 5 + C))`` on the
        CPU.
    """
    if len(scenes) == 0:
        raise ValueError("scenes is empty: grid_dataset needs at least one (image, target)")
    encode = encode_fn or encode_targets
    parameter = next(trunk.parameters(), None)
    device = (
        torch.device(device)
        if device is not None
        else (parameter.device if parameter is not None else torch.device("cpu"))
    )
    was_training = trunk.training
    trunk.eval()
    features, grids = [], []
    try:
        for start in range(0, len(scenes), batch_size):
            items = [scenes[i] for i in range(start, min(start + batch_size, len(scenes)))]
            images = torch.stack([plain(image) for image, _ in items])
            size = tuple(images.shape[-2:])
            features.append(trunk(images.to(device)).float().cpu())
            grids += [
                encode(t["boxes"], t["labels"], size, grid_size, num_classes).cpu()
                for _, t in items
            ]
    finally:
        trunk.train(was_training)
    return TensorDataset(torch.cat(features), torch.stack(grids).float())


def grid_feature_loss(
    layers: nn.Module,
    batch,
    *,
    boxes_per_cell: int = 2,
    lambda_coord: float = 5.0,
    lambda_noobj: float = 0.5,
    loss_fn: Callable[..., dict] | None = None,
) -> dict[str, torch.Tensor]:
    """``loss_fn`` for the shared loop on :func:`grid_dataset` batches ``(features, grids)``:
    the five terms of ``loss_fn`` (default :func:`~course_utils.detection.yolo.yolo_loss`) on
    ``layers(features)`` (N, S, S, B * 5 + C)."""
    features, grids = batch
    output = layers(features).float()  # the loss in float32, also under mixed precision
    return (loss_fn or yolo_loss)(output, grids, boxes_per_cell, lambda_coord, lambda_noobj)


def train_yolo_layers(
    layers: nn.Module,
    dataset: Dataset,
    *,
    steps: int,
    batch_size: int = 32,
    lr: float = 1e-2,
    weight_decay: float = 5e-4,
    **options,
) -> History:
    """Train the layers YOLO adds to a frozen trunk (e.g. ``nn.Sequential(neck, head)``) on a
    :func:`grid_dataset`, with the course's recipe (AdamW, one-cycle schedule). ``options``: the
    recipe's ``checkpoint``, ``seed``, ``device``, ``progress``; the others go to
    :func:`grid_feature_loss` (``boxes_per_cell``, ``loss_fn``...).

    Returns:
        fit's ``History``, whose records carry the five loss terms.
    """
    return train_with_loss(
        layers,
        dataset,
        grid_feature_loss,
        steps=steps,
        images_per_batch=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        **options,
    )
