"""Checks for the SSD assignments (notebook 07): default boxes, matching, hard negative mining and
the prediction heads.

* ``default_boxes(feature_sizes, image_size, scales, aspect_ratios, clip) -> boxes``: float32
  (D, 4) xyxy pixels, torchvision's ``DefaultBoxGenerator`` order and conventions;
* ``match_default_boxes(default_boxes, gt_boxes, iou_threshold) -> matches``: int64 (D,), the
  matched ground-truth index or -1, torchvision's ``SSDMatcher``;
* ``hard_negative_mining(confidence_loss, labels, neg_pos_ratio) -> keep``: bool (N, D), the
  positives and each image's hardest negatives;
* ``SSDHeads(in_channels, boxes_per_location, num_classes)``: an ``nn.Module`` (a 3x3 conv per
  map for the classes and one for the boxes) returning ``(class_logits (N, D, num_classes),
  box_deltas (N, D, 4))``, as torchvision's ``SSDHead``.

The references are the course's ``course_utils.detection.ssd_boxes`` and ``ssd``, which their
tests prove equal to torchvision's. ``check_default_boxes`` and ``check_SSDHeads`` run on the CPU,
the two others on every available device.

Usage in a notebook::

    check_match_default_boxes(match_default_boxes)   # graded cell: raises on a wrong answer
    check_SSDHeads(SSDHeads)                         # the class itself, not an instance
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from course_utils.detection import ssd, ssd_boxes
from course_utils.grading.assignments import assignment_check
from course_utils.grading.checks._ssd_cases import (
    default_boxes_cases,
    hard_negative_mining_cases,
    match_default_boxes_cases,
    ssd_heads_cases,
)
from course_utils.grading.checks._ssd_compare import (
    compare_default_boxes,
    compare_matches,
    compare_mining,
)
from course_utils.grading.checks._ssd_heads import compare_heads

__all__ = [
    "CHECKS",
    "check_SSDHeads",
    "check_default_boxes",
    "check_hard_negative_mining",
    "check_match_default_boxes",
    "default_boxes_cases",
    "hard_negative_mining_cases",
    "match_default_boxes_cases",
    "ssd_heads_cases",
]


@assignment_check(
    reference=ssd_boxes.default_boxes, cases=default_boxes_cases, compare=compare_default_boxes
)
def check_default_boxes(default_boxes: Callable[..., torch.Tensor], *, quiet: bool = False) -> None:
    """Check ``default_boxes(feature_sizes, image_size, scales, aspect_ratios, clip) -> boxes``.

    feature_sizes: K pairs (h_k, w_k); image_size (H, W); scales: K + 1 floats s_0..s_K
    (fractions of the image); aspect_ratios: K lists of ratios r > 1; clip: bool. boxes: float32
    (D, 4) xyxy pixels, map by map, cell by cell (row-major), then per cell [s_k, s_k], [s'_k,
    s'_k] (s'_k = sqrt(s_k s_{k+1})) and for each r [s_k sqrt(r), s_k / sqrt(r)] and its
    transpose (relative width, height; clamped to [0, 1] when clip), centred at ((j + 0.5) / w
    * W, (i + 0.5) / h * H).
    """


@assignment_check(
    reference=ssd_boxes.match_default_boxes,
    cases=match_default_boxes_cases,
    compare=compare_matches,
)
def check_match_default_boxes(
    match_default_boxes: Callable[..., torch.Tensor], *, quiet: bool = False
) -> None:
    """Check ``match_default_boxes(default_boxes, gt_boxes, iou_threshold) -> matches``.

    default_boxes (D, 4), gt_boxes (G, 4) float xyxy pixels; iou_threshold float. matches: int64
    (D,) on default_boxes' device: the index of each default box's best ground-truth box when
    that IoU >= iou_threshold, else -1; then each ground-truth box's best default box (the first
    on ties) is matched to it whatever the IoU (the later ground truth wins a box picked twice).
    G = 0: all -1.
    """


@assignment_check(
    reference=ssd_boxes.hard_negative_mining,
    cases=hard_negative_mining_cases,
    compare=compare_mining,
)
def check_hard_negative_mining(
    hard_negative_mining: Callable[..., torch.Tensor], *, quiet: bool = False
) -> None:
    """Check ``hard_negative_mining(confidence_loss, labels, neg_pos_ratio) -> keep``.

    confidence_loss float (N, D); labels int64 (N, D), 0 = background, > 0 = positive;
    neg_pos_ratio int. keep: bool (N, D) on the inputs' device, True for every positive and, per
    image, for the k = neg_pos_ratio * max(P, 1) negatives of highest loss (P the image's
    positives; k at most its negatives; ties by lower index first).
    """


@assignment_check(reference=ssd.SSDHeads, cases=ssd_heads_cases, compare=compare_heads)
def check_SSDHeads(SSDHeads: type[nn.Module], *, quiet: bool = False) -> None:
    """Check ``SSDHeads(in_channels, boxes_per_location, num_classes)``, a class (an nn.Module):
    pass the class.

    Its attributes: ``classification`` = nn.ModuleList of nn.Conv2d(c_k, b_k * num_classes, 3,
    padding=1), ``regression`` = nn.ModuleList of nn.Conv2d(c_k, b_k * 4, 3, padding=1), one per
    map, nothing else with parameters. ``forward(features: list of (N, c_k, h_k, w_k)) ->
    (class_logits (N, D, num_classes), box_deltas (N, D, 4))``, rows in the default boxes'
    order (map, row, column, box). Run on the CPU with the reference's weights copied in.
    """


CHECKS = (
    check_default_boxes,
    check_match_default_boxes,
    check_hard_negative_mining,
    check_SSDHeads,
)
