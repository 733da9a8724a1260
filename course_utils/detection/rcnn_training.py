"""R-CNN's training, every stage in one call (notebook 04 trains it next to Fast R-CNN).

Notebook 03 runs the stages one by one; :func:`train_rcnn` chains them:

1. warp and label the proposals (``warped_regions.build_region_set``, ``proposal_labels``);
2. fine-tune the "pre-trained" CNN on mini-batches with a fixed fraction of positives
   (``warped_regions.MinibatchDataset``; AdamW, one-cycle schedule, ``course_utils.engine.fit``);
3. fit the class-specific box regressors on its features
   (``box_regression.fit_region_regressors``);

and returns the :class:`~course_utils.detection.rcnn.RCNN` detector they make.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from course_utils.detection.box_regression import fit_region_regressors, region_features
from course_utils.detection.rcnn import RCNN
from course_utils.detection.warped_regions import MinibatchDataset, build_region_set
from course_utils.engine import TrainConfig, classification_loss, fit

__all__ = ["train_rcnn"]


def train_rcnn(
    cnn: nn.Module,
    images: Sequence[torch.Tensor],
    targets: Sequence[dict],
    proposals: Sequence[torch.Tensor],
    *,
    steps: int,
    batch_size: int = 128,
    positive_fraction: float = 0.25,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    size: int = 32,
    context: float = 0.25,
    fg_threshold: float = 0.5,
    bg_threshold: float = 0.0,
    regression_iou: float = 0.6,
    ridge: float = 1000.0,
    hflip: bool = True,
    checkpoint: str | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    label_fn: Callable | None = None,
    **detector_kwargs,
):
    """R-CNN's training, all stages: warp and label the regions, fine-tune ``cnn`` (in place),
    fit the box regressors.

    Args:
        cnn: a crop classifier with ``features`` and ``head`` (``CropClassifier``) taking
            (B, C, size, size) crops.
        images: float (C, H, W) in [0, 1]; targets: dicts with ``boxes`` (G, 4) xyxy and
            ``labels`` (G,); proposals: float (P_i, 4) xyxy, one per image.
        steps: fine-tuning steps, each one mini-batch of ``batch_size`` regions with
            ``positive_fraction`` positives (drawn from a generator seeded by ``seed``).
        lr, weight_decay: AdamW's; the one-cycle schedule peaks at ``lr``.
        size, context: the warp; fg_threshold, bg_threshold: the labels
            (``label_fn`` replaces ``label_proposals``, same signature).
        regression_iou, ridge: the box regressors' ``min_iou`` and L2 penalty.
        hflip: mirror a random half of each mini-batch.
        checkpoint, seed, device, progress: ``TrainConfig``'s.
        detector_kwargs: go to :class:`~course_utils.detection.rcnn.RCNN` (thresholds...).

    Returns:
        ``(detector, history, regions)``: an ``RCNN`` ready for testing, fit's ``History`` and
        the ``RegionSet`` it trained on.
    """
    regions = build_region_set(
        images,
        targets,
        proposals,
        size=size,
        context=context,
        fg_threshold=fg_threshold,
        bg_threshold=bg_threshold,
        label_fn=label_fn,
    )
    batches = MinibatchDataset(
        regions, steps, batch_size, positive_fraction, seed=seed, hflip=hflip
    )
    optimizer = torch.optim.AdamW(cnn.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=steps, pct_start=0.1
    )
    config = TrainConfig(
        steps=steps,
        batch_size=1,
        seed=seed,
        checkpoint=checkpoint,
        device=device,
        progress=progress,
    )
    history = fit(
        cnn,
        batches,
        classification_loss,
        optimizer,
        config,
        scheduler=scheduler,
        collate_fn=MinibatchDataset.collate,
    )
    num_classes = int(region_features(cnn, regions.crops[:1])[1].shape[1])
    weights = fit_region_regressors(cnn, regions, num_classes, min_iou=regression_iou, ridge=ridge)
    detector = RCNN(cnn, weights, size=size, context=context, **detector_kwargs)
    return detector, history, regions
