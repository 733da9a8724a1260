"""Anchors (Ren et al., NIPS 2015): reference boxes at every cell of a feature map, and which ones
are objects.

At each cell of a (h, w) feature map of stride s, Faster R-CNN places k = len(sizes) x
len(aspect_ratios) *anchors*: boxes of area size² and height / width = ratio, centred on the
cell. The region proposal network predicts, for every anchor, whether it covers an object and how
to move it onto that object::

    anchors = anchor_boxes((32, 32), 4, sizes=(16, 32, 64), aspect_ratios=(0.5, 1.0, 2.0))
    matches = match_anchors(anchors, gt_boxes)      # gt index, NEGATIVE (-1) or IGNORED (-2)

Conventions are torchvision's (``AnchorGenerator``, ``Matcher``), so that the course's detector
and ``torchvision.models.detection.FasterRCNN`` use the very same anchors: the centre of the anchors
of cell (i, j) is pixel (j * s, i * s), the top-left corner of the cell (py-faster-rcnn put it at
((s - 1) / 2) further); the half-sides of each template are rounded to whole pixels; anchors are
ordered cell by cell (row-major), then template by template (ratio-major, sizes inner). Boxes are
float32 (N, 4) ``(x1, y1, x2, y2)`` pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchvision.ops import box_iou

from course_utils.core.tensors import plain
from course_utils.core.validate import check_boxes, check_int, check_number

__all__ = [
    "IGNORED",
    "NEGATIVE",
    "anchor_boxes",
    "anchor_templates",
    "anchors_per_cell",
    "match_anchors",
    "matches_to_labels",
]

#: ``match_anchors``'s code of an anchor whose best IoU is below the low threshold: background.
NEGATIVE = -1
#: ``match_anchors``'s code of an anchor between the thresholds: never trained on.
IGNORED = -2


def _positive_numbers(values: Sequence[float], name: str) -> tuple[float, ...]:
    try:
        numbers = tuple(float(v) for v in values)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of positive numbers, got {values!r}") from None
    if not numbers or not all(math.isfinite(v) and v > 0 for v in numbers):
        raise ValueError(f"{name} must be a non-empty sequence of positive numbers, got {values!r}")
    return numbers


def anchors_per_cell(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> int:
    """k, the number of anchors at each cell: ``len(sizes) * len(aspect_ratios)``."""
    return len(_positive_numbers(sizes, "sizes")) * len(
        _positive_numbers(aspect_ratios, "aspect_ratios")
    )


def anchor_templates(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> torch.Tensor:
    """The k anchors of a cell centred at (0, 0): float32 (k, 4) xyxy pixels.

    Template ``r * len(sizes) + s`` has height / width = ``aspect_ratios[r]`` and area
    ``sizes[s]²`` (width = size / sqrt(ratio), height = size * sqrt(ratio)); its half-sides are
    rounded to whole pixels, as torchvision's ``AnchorGenerator`` does.
    """
    sizes = torch.tensor(_positive_numbers(sizes, "sizes"), dtype=torch.float32)
    ratios = torch.tensor(_positive_numbers(aspect_ratios, "aspect_ratios"), dtype=torch.float32)
    heights = (ratios.sqrt()[:, None] * sizes[None, :]).flatten()
    widths = ((1 / ratios.sqrt())[:, None] * sizes[None, :]).flatten()
    return (torch.stack([-widths, -heights, widths, heights], dim=1) / 2).round()


def anchor_boxes(
    feature_size: tuple[int, int],
    stride: int,
    sizes: Sequence[float],
    aspect_ratios: Sequence[float],
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Every anchor of an (h, w) feature map of the given stride: float32 (h * w * k, 4) xyxy.

    Row ``(i * w + j) * k + t`` is template t (:func:`anchor_templates`) centred at pixel
    (j * stride, i * stride). Anchors may stick out of the image: Faster R-CNN's proposals are
    clipped to it later.
    """
    if not (isinstance(feature_size, (tuple, list)) and len(feature_size) == 2):
        raise TypeError(f"feature_size must be (h, w), got {feature_size!r}")
    height = check_int(feature_size[0], "feature_size[0] (h)")
    width = check_int(feature_size[1], "feature_size[1] (w)")
    stride = check_int(stride, "stride")
    templates = anchor_templates(sizes, aspect_ratios).to(device)
    ys = torch.arange(height, dtype=torch.float32, device=device) * stride
    xs = torch.arange(width, dtype=torch.float32, device=device) * stride
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    shifts = torch.stack([grid_x, grid_y, grid_x, grid_y], dim=-1).reshape(-1, 1, 4)
    return (shifts + templates[None]).reshape(-1, 4)


def match_anchors(
    anchors: torch.Tensor,
    gt_boxes: torch.Tensor,
    high: float = 0.7,
    low: float = 0.3,
    allow_low_quality_matches: bool = True,
) -> torch.Tensor:
    """The region proposal network's labels: which ground-truth box each anchor stands for.

    An anchor whose best IoU with a ground-truth box is ``>= high`` matches that box (the first of
    equals); ``< low`` makes it :data:`NEGATIVE` (background); in between it is :data:`IGNORED`.
    With ``allow_low_quality_matches`` (the paper's rule (i)), for each ground-truth box, the
    anchors whose IoU with it equals its highest IoU over all anchors (ties included) match too,
    each to *its own* best ground-truth box, even below ``high``: no object is left without a
    positive anchor. Exactly ``torchvision``'s ``Matcher(high, low, allow_low_quality_matches)``.

    Args:
        anchors: float (A, 4) xyxy pixels.
        gt_boxes: float (G, 4) xyxy pixels; G = 0 makes every anchor NEGATIVE.
        high, low: the IoU thresholds (paper: 0.7 and 0.3), 0 <= low <= high <= 1.

    Returns:
        int64 (A,): a ground-truth index in 0..G-1, :data:`NEGATIVE` or :data:`IGNORED`.
    """
    anchors = check_boxes(plain(anchors), "anchors")
    gt_boxes = check_boxes(plain(gt_boxes), "gt_boxes").to(anchors)
    high = check_number(high, "high", 0.0, 1.0)
    low = check_number(low, "low", 0.0, high)
    if len(gt_boxes) == 0:
        return torch.full((len(anchors),), NEGATIVE, dtype=torch.int64, device=anchors.device)
    iou = box_iou(gt_boxes, anchors)  # (G, A)
    best, matches = iou.max(dim=0)
    kept = matches.clone()
    matches[best < high] = IGNORED
    matches[best < low] = NEGATIVE
    if allow_low_quality_matches:
        best_for_each_gt = iou.max(dim=1, keepdim=True).values  # (G, 1)
        anchors_of_best = torch.nonzero(iou == best_for_each_gt)[:, 1]
        matches[anchors_of_best] = kept[anchors_of_best]
    return matches


def matches_to_labels(matches: torch.Tensor) -> torch.Tensor:
    """Objectness labels of the matched anchors: float (A,) 1 (object), 0 (background), -1
    (ignored)."""
    matches = plain(matches)
    labels = (matches >= 0).to(torch.float32)
    labels[matches == IGNORED] = -1.0
    return labels
