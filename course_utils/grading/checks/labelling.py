"""Checks for the proposal-labelling assignment of R-CNN (notebook 03).

``label_proposals(proposals, gt_boxes, gt_labels, fg_threshold, bg_threshold) -> (labels,
matched_gt)`` labels every proposal by its best-overlapping ground-truth box; the reference wraps
torchvision's ``Matcher`` in the assignment's argument names and order. Boxes are float (N, 4)
(x1, y1, x2, y2) pixels.

Usage in a notebook::

    check_label_proposals(label_proposals)    # graded cell: raises on a wrong answer
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torchvision
from torchvision.models.detection._utils import Matcher

from course_utils.grading.assignments import assignment_check
from course_utils.grading.compare import compare_tensors
from course_utils.grading.runner import Case, with_device_copies

__all__ = [
    "CHECKS",
    "check_label_proposals",
    "label_proposals_cases",
    "torchvision_label_proposals",
]

_SEED = 303


def torchvision_label_proposals(
    proposals: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    fg_threshold: float = 0.5,
    bg_threshold: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference ``label_proposals`` with ``torchvision.ops.box_iou`` and torchvision's ``Matcher``.

    labels (P,) int64: the best ground truth's label if its IoU >= fg_threshold, 0 if the best IoU
    lies in [bg_threshold, fg_threshold), -1 below bg_threshold. matched_gt (P,) int64: index of the
    best ground truth (the first among ties), -1 without ground truth (the best IoU then counts as
    0).
    """
    num = len(proposals)
    device = proposals.device
    if len(gt_boxes) == 0 or num == 0:
        labels = torch.zeros(num, dtype=torch.int64, device=device)
        if 0.0 < bg_threshold:
            labels -= 1
        matched = torch.full(
            (num,), -1 if len(gt_boxes) == 0 else 0, dtype=torch.int64, device=device
        )
        return labels, matched
    iou = torchvision.ops.box_iou(
        gt_boxes.to(proposals.dtype), proposals
    )  # (G, P), Matcher's layout
    matches = Matcher(fg_threshold, bg_threshold, allow_low_quality_matches=False)(iou)
    matched = iou.argmax(dim=0)
    labels = gt_labels.to(torch.int64)[matched]
    labels = torch.where(matches == Matcher.BETWEEN_THRESHOLDS, torch.zeros_like(labels), labels)
    labels = torch.where(
        matches == Matcher.BELOW_LOW_THRESHOLD, torch.full_like(labels, -1), labels
    )
    return labels, matched


def label_proposals_cases() -> list[Case]:
    """The cases of :func:`check_label_proposals` (on every available device)."""
    t = torch.tensor
    gt = t([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0], [40.0, 0.0, 60.0, 20.0]])
    gt_labels = t([3, 1, 2])
    threshold_hint = (
        "A proposal is foreground when its best IoU is >= fg_threshold, background when it is >= "
        "bg_threshold but < fg_threshold, ignored (-1) below bg_threshold."
    )
    proposals, random_gt, random_labels = _random_labelling_inputs(_SEED)
    cases = [
        Case(
            "one proposal of each kind: foreground, background, ignored",
            (
                t([[1.0, 1.0, 10.0, 10.0], [0.0, 0.0, 10.0, 40.0], [57.0, 17.0, 67.0, 27.0]]),
                gt,
                gt_labels,
                0.5,
                0.1,
            ),
            hint=threshold_hint,
        ),
        Case(
            "labels are the ground truth's class labels (3, 1, 2), not its index",
            (gt.clone(), gt, gt_labels, 0.5, 0.0),
            hint="labels[i] = gt_labels[matched_gt[i]] for a foreground proposal: not "
            "matched_gt[i] + 1, "
            "not matched_gt[i].",
        ),
        Case(
            "IoU exactly fg_threshold = 0.5: foreground",
            (t([[0.0, 0.0, 10.0, 20.0]]), gt, gt_labels, 0.5, 0.1),
            hint="Foreground means IoU >= fg_threshold (greater or equal), as the paper and "
            "torchvision do.",
        ),
        Case(
            "IoU exactly bg_threshold = 0.25: background, not ignored",
            (t([[0.0, 0.0, 10.0, 40.0]]), gt, gt_labels, 0.5, 0.25),
            hint="Background means bg_threshold <= IoU < fg_threshold; only IoU < bg_threshold is "
            "ignored (-1).",
        ),
        Case(
            "a proposal that overlaps the second ground-truth box most",
            (t([[18.0, 18.0, 29.0, 29.0], [45.0, 2.0, 60.0, 20.0]]), gt, gt_labels, 0.5, 0.0),
            hint="Take the maximum over the ground-truth boxes (one per proposal): iou has shape "
            "(P, G); "
            "use .max(dim=1) or .argmax(dim=1) on it.",
        ),
        Case(
            "a tie: equal IoU with two ground-truth boxes goes to the lower index",
            (
                t([[5.0, 0.0, 15.0, 10.0]]),
                t([[0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 20.0, 10.0]]),
                t([2, 1]),
                0.3,
                0.0,
            ),
            hint="torch.argmax and .max(dim=...) return the first maximum; do not reverse or "
            "re-sort the boxes. "
            "(A proposal overlapping nothing ties at IoU 0 with every box: matched_gt = 0.)",
        ),
        Case(
            "bg_threshold 0: nothing is ignored, every non-foreground proposal is background",
            (t([[57.0, 17.0, 67.0, 27.0], [2.0, 2.0, 9.0, 9.0]]), gt, gt_labels, 0.5, 0.0),
            hint="With bg_threshold = 0 even an IoU near 0 is background (IoU >= 0), "
            "never ignored.",
        ),
        Case(
            "40 random proposals around 5 ground-truth boxes, fg 0.5, bg 0.1",
            (proposals, random_gt, random_labels, 0.5, 0.1),
            hint=threshold_hint,
        ),
        Case(
            "the same with fg 0.7 and bg 0.3",
            (proposals, random_gt, random_labels, 0.7, 0.3),
            hint=threshold_hint,
        ),
        Case(
            "no ground-truth box: every proposal is background, matched_gt = -1",
            (proposals[:4], torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), 0.5, 0.0),
            hint="With G = 0 there is no maximum to take (max of an empty dimension fails): the "
            "best IoU is 0, "
            "labels are 0 (or -1 if bg_threshold > 0) and matched_gt is -1.",
        ),
        Case(
            "one proposal (a batch of one): shapes (1,)",
            (t([[21.0, 21.0, 30.0, 30.0]]), gt, gt_labels, 0.5, 0.1),
            hint="Return 1-D tensors of shape (P,) even for P = 1: avoid .squeeze() and .item().",
        ),
        Case(
            "no proposals: two empty int64 tensors",
            (torch.zeros(0, 4), gt, gt_labels, 0.5, 0.1),
            hint="P = 0 must give shape (0,) tensors of dtype int64.",
        ),
        Case(
            "float64 boxes: labels and indices are still int64",
            (proposals.double(), random_gt.double(), random_labels, 0.5, 0.1),
            hint="labels and matched_gt are indices/classes: "
            "torch.int64 whatever the boxes' dtype.",
        ),
    ]
    return with_device_copies(cases)


def _compare_pair(names: tuple[str, str]) -> Callable[[Any, Any, Case], str | None]:
    """A comparator for functions returning a tuple of two tensors (names say which is which)."""

    def compare(got: Any, expected: Any, case: Case) -> str | None:
        if got is None:
            return "returned None: did you forget the `return` statement?"
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            if isinstance(got, torch.Tensor):
                return (
                    f"returned one tensor (shape {tuple(got.shape)}); return a pair ({names[0]}, "
                    f"{names[1]}): "
                    f"return {names[0]}, {names[1]}"
                )
            return (
                f"returned a {type(got).__name__}; expected a pair of tensors ({names[0]}, "
                f"{names[1]})"
            )
        for name, got_part, expected_part in zip(names, got, expected):
            problem = compare_tensors(got_part, expected_part, case)
            if problem:
                return f"{name}: {problem}"
        return None

    return compare


@assignment_check(
    reference=torchvision_label_proposals,
    cases=label_proposals_cases,
    compare=_compare_pair(("labels", "matched_gt")),
)
def check_label_proposals(
    label_proposals: Callable[..., tuple[torch.Tensor, torch.Tensor]], *, quiet: bool = False
) -> None:
    """Check ``label_proposals(proposals, gt_boxes, gt_labels, fg_threshold, bg_threshold)``.

    proposals (P, 4), gt_boxes (G, 4) float xyxy; gt_labels (G,) int64 in 1..K. Returns the pair
    ``(labels, matched_gt)`` of int64 (P,) tensors: labels (ground truth's label when the best IoU
    >= fg_threshold, 0 when it lies in [bg_threshold, fg_threshold), -1 below) and matched_gt (index
    of the best ground truth, the lowest one among ties; -1 for every proposal when G = 0).
    """


def _random_labelling_inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """40 proposals jittered around 5 ground-truth boxes (float32 xyxy) and their labels.

    No IoU lies within 1e-3 of 0.1, 0.3, 0.5 or 0.7, and each kind (foreground, background,
    ignored at fg 0.5, bg 0.1) has at least 5 proposals.
    """
    for attempt in range(1000):
        g = torch.Generator().manual_seed(seed + 7919 * attempt)
        xy = torch.rand(5, 2, generator=g, dtype=torch.float64) * 80
        wh = torch.rand(5, 2, generator=g, dtype=torch.float64) * 30 + 8
        gt = torch.cat([xy, xy + wh], dim=1)
        base = gt[torch.randint(0, 5, (40,), generator=g)]
        size = (base[:, 2:] - base[:, :2]).repeat(1, 2)
        proposals = base + torch.randn(40, 4, generator=g, dtype=torch.float64) * size * 0.35
        proposals = torch.cat(
            [torch.minimum(proposals[:, :2], proposals[:, 2:] - 1), proposals[:, 2:]], dim=1
        )
        proposals, gt = proposals.float(), gt.float()
        iou = torchvision.ops.box_iou(proposals.double(), gt.double())
        near = [(iou - v).abs().min() for v in (0.1, 0.3, 0.5, 0.7)]
        best = iou.max(dim=1).values
        kinds = ((best >= 0.5).sum(), ((best >= 0.1) & (best < 0.5)).sum(), (best < 0.1).sum())
        if min(near) > 1e-3 and min(int(k) for k in kinds) >= 5:
            return proposals, gt, torch.tensor([1, 2, 3, 2, 1])
    raise RuntimeError(
        "could not draw labelling inputs away from the thresholds"
    )  # pragma: no cover


CHECKS = (check_label_proposals,)
