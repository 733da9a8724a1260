"""Which ground-truth objects a detector found: recall object by object, for any subset.

COCO's AP summarises a whole dataset; to ask *which* objects are missed (small ones, ones sharing a
grid cell...), notebooks need a yes/no per object::

    found = objects_found(predictions, targets)        # bool (total objects,), images in order
    print(found[small].float().mean())                 # recall of the small objects

Predictions and targets are one dict per image (boxes float (N, 4) ``(x1, y1, x2, y2)`` pixels,
labels int64), matched by position.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torchvision.ops import box_iou

from course_utils.core.tensors import plain
from course_utils.core.validate import check_boxes, check_number

__all__ = ["objects_found"]


def objects_found(
    predictions: Sequence[Mapping],
    targets: Sequence[Mapping],
    iou_threshold: float = 0.5,
    score_threshold: float = 0.0,
) -> torch.Tensor:
    """For every ground-truth object of every image, whether some detection of its class with
    ``score >= score_threshold`` overlaps it with IoU >= ``iou_threshold``.

    Returns:
        bool (G,) on the CPU, the images' objects concatenated in order (G = all objects).
    """
    if len(predictions) != len(targets):
        raise ValueError(
            f"one prediction per target: got {len(predictions)} predictions, {len(targets)} targets"
        )
    check_number(iou_threshold, "iou_threshold", 0.0, 1.0)
    check_number(score_threshold, "score_threshold", 0.0, 1.0)
    found = []
    for index, (prediction, target) in enumerate(zip(predictions, targets)):
        truth = check_boxes(plain(target["boxes"]).cpu().float(), f"targets[{index}]['boxes']")
        boxes = check_boxes(
            plain(prediction["boxes"]).cpu().float(), f"predictions[{index}]['boxes']"
        )
        keep = plain(prediction["scores"]).cpu() >= score_threshold
        boxes, labels = boxes[keep], plain(prediction["labels"]).cpu()[keep]
        same_class = plain(target["labels"]).cpu()[:, None] == labels[None, :]
        overlap = box_iou(truth, boxes) >= iou_threshold if len(boxes) else same_class
        found.append((overlap & same_class).any(dim=1))
    return torch.cat(found) if found else torch.zeros(0, dtype=torch.bool)
