"""Checks for the non-maximum suppression assignments: plain NMS and NMS per class.

Boxes are float tensors (N, 4) in (x1, y1, x2, y2) absolute pixels, scores (N,) float, as in
torchvision. Any result a greedy NMS could give is accepted (tied scores may be broken either way),
so the comparator checks the result's properties rather than equality with the reference
(torchvision.ops). The cases: boxes that do not overlap, chains, IoU exactly at the threshold,
tied scores, random clusters kept away from the threshold, one box, no boxes, one class vs many.

Usage in a notebook::

    check_nms(nms)        # graded cell: raises on a wrong answer, prints one line on success
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torchvision

from course_utils.grading.assignments import assignment_check
from course_utils.grading.compare import describe, not_a_tensor_problem
from course_utils.grading.runner import Case, with_device_copies

__all__ = ["CHECKS", "batched_nms_cases", "check_batched_nms", "check_nms", "nms_cases"]

_SEED = 2024
_MARGIN = 1e-3  # random NMS cases keep every pairwise IoU at least this far from the threshold


def _compare_nms(got: Any, expected: torch.Tensor, case: Case) -> str | None:
    """None if ``got`` is a valid (batched) NMS result for the case's inputs, else what is wrong."""
    boxes, scores = case.args[0], case.args[1]
    classes = case.args[2] if len(case.args) == 4 else torch.zeros(len(scores), dtype=torch.long)
    threshold = float(case.args[-1])
    problem = _keep_type_problem(got, expected, len(boxes))
    if problem:
        return problem
    keep = got.cpu()
    boxes, scores, classes = boxes.cpu().double(), scores.cpu().double(), classes.cpu()
    iou = torchvision.ops.box_iou(boxes, boxes)
    same_class = classes[:, None] == classes[None, :]
    kept_scores = scores[keep]
    for a in range(len(keep) - 1):
        if kept_scores[a] < kept_scores[a + 1]:
            return (
                f"the kept indices are not in decreasing score order: index {int(keep[a])} (score "
                f"{float(kept_scores[a]):.3g}) comes before index {int(keep[a + 1])} (score "
                f"{float(kept_scores[a + 1]):.3g}). Return them sorted by score, highest first."
            )
    for a in range(len(keep)):
        for b in range(a + 1, len(keep)):
            i, j = int(keep[a]), int(keep[b])
            if same_class[i, j] and iou[i, j] > threshold:
                return (
                    f"kept boxes {i} and {j} overlap with IoU {float(iou[i, j]):.3f} > "
                    f"iou_threshold {threshold}: "
                    f"box {j} (score {float(scores[j]):.3g}) should have been suppressed by box "
                    f"{i}."
                )
    kept = torch.zeros(len(scores), dtype=torch.bool)
    kept[keep] = True
    for i in range(len(scores)):
        if kept[i]:
            continue
        killers = kept & same_class[i] & (iou[i] > threshold) & (scores >= scores[i])
        if not bool(killers.any()):
            return (
                f"box {i} (score {float(scores[i]):.3g}) was dropped, but no kept box with a score "
                "at least as "
                f"high overlaps it with IoU > iou_threshold {threshold}: it should have been kept."
            )
    return None


def _keep_type_problem(got: Any, expected: torch.Tensor, num_boxes: int) -> str | None:
    """None if ``got`` is a 1-D int64 tensor of distinct, in-range indices on the right device."""
    problem = not_a_tensor_problem(got)
    if problem:
        return problem
    if got.dim() == 2 and got.shape[-1] == 4:
        return (
            f"returned boxes (shape {tuple(got.shape)}); return the indices of the kept boxes, a "
            "(K,) torch.long "
            "tensor (keep, not boxes[keep])."
        )
    if got.dtype == torch.bool:
        return (
            f"returned a boolean mask (shape {tuple(got.shape)}); return the indices of the kept "
            "boxes, sorted by "
            "decreasing score, as a torch.long tensor."
        )
    if got.dim() != 1:
        return f"returned shape {tuple(got.shape)}; expected a 1-D tensor of indices, shape (K,)."
    if got.dtype != torch.long:
        return (
            f"returned dtype {got.dtype}; expected torch.int64 (torch.long) indices, like "
            "torchvision.ops.nms."
        )
    if got.device != expected.device:
        return (
            f"returned a tensor on {got.device}, but the inputs were on {expected.device}: keep "
            "the indices on the "
            "boxes' device."
        )
    if len(got) and (int(got.min()) < 0 or int(got.max()) >= num_boxes):
        return f"returned index {describe(got)} out of range for {num_boxes} boxes."
    if len(torch.unique(got)) != len(got):
        return "returned some index more than once: each kept box appears once."
    return None


def nms_cases() -> list[Case]:
    """The cases of :func:`check_nms` (on every available device)."""
    t = torch.tensor
    greedy_hint = (
        "Visit boxes from the highest score down; keep a box unless a box you already kept "
        "overlaps it "
        "with IoU > iou_threshold."
    )
    cases = [
        Case(
            "boxes that do not overlap: all kept, highest score first",
            (_grid_boxes(4), t([0.2, 0.9, 0.5, 0.7]), 0.5),
            hint="Return indices into the original boxes, sorted by decreasing score (like "
            "torchvision.ops.nms).",
        ),
        Case(
            "two identical boxes: only the higher-scoring one survives",
            (t([[1.0, 1.0, 5.0, 5.0], [1.0, 1.0, 5.0, 5.0]]), t([0.3, 0.8]), 0.5),
            hint="Sort by score in decreasing order (descending=True) and keep the best box first.",
        ),
        Case(
            "a chain: A overlaps B, B overlaps C, A and C do not; A and C are kept",
            (
                t([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0], [10.0, 0.0, 20.0, 10.0]]),
                t([0.9, 0.8, 0.7]),
                0.3,
            ),
            hint="Only kept boxes suppress others: B is suppressed by A, so B cannot suppress C.",
        ),
        Case(
            "IoU exactly equal to iou_threshold: both boxes are kept",
            (t([[0.0, 0.0, 4.0, 1.0], [0.0, 0.0, 2.0, 1.0]]), t([0.9, 0.6]), 0.5),
            hint="Suppress only when IoU > iou_threshold (strictly greater), as torchvision does.",
        ),
        Case(
            "IoU 1/3 with iou_threshold 0.35: both kept",
            (t([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]]), t([0.6, 0.9]), 0.35),
            hint="Compute the IoU with continuous coordinates (no '+ 1' in widths): these boxes "
            "have IoU 50 / 150.",
        ),
        Case(
            "low-scoring boxes are kept too: the threshold is on IoU, not on scores",
            (_grid_boxes(3), t([0.1, 0.05, 0.3]), 0.5),
            hint="iou_threshold compares overlaps; NMS never drops a box because of its score "
            "alone.",
        ),
        Case(
            "tied scores: of two identical boxes with the same score exactly one is kept",
            (
                t([[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 4.0, 4.0], [10.0, 10.0, 14.0, 14.0]]),
                t([0.5, 0.5, 0.7]),
                0.5,
            ),
            hint="With equal scores either box may survive, but not both and not neither.",
        ),
        Case(
            "30 random boxes in 4 clusters, iou_threshold 0.5",
            _random_nms_inputs(30, 4, 0.5, _SEED + 2),
            greedy_hint,
        ),
        Case(
            "20 random boxes in 3 clusters, iou_threshold 0.3",
            _random_nms_inputs(20, 3, 0.3, _SEED + 3),
            greedy_hint,
        ),
        Case(
            "one box (a batch of one): keep = [0]",
            (t([[3.0, 3.0, 9.0, 8.0]]), t([0.4]), 0.5),
            hint="A single box is always kept; return a 1-D tensor of shape (1,), not a number.",
        ),
        Case(
            "no boxes at all: an empty int64 tensor",
            (torch.zeros(0, 4), torch.zeros(0), 0.5),
            hint="Return torch.zeros(0, dtype=torch.long) (or an empty index tensor) when there "
            "are no boxes.",
        ),
    ]
    return with_device_copies(cases)


@assignment_check(reference=torchvision.ops.nms, cases=nms_cases, compare=_compare_nms)
def check_nms(
    nms: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor], *, quiet: bool = False
) -> None:
    """Check ``nms(boxes, scores, iou_threshold) -> keep``.

    boxes: (N, 4) float (x1, y1, x2, y2); scores: (N,) float; keep: (K,) int64 indices of the kept
    boxes in decreasing score order. A box is suppressed when its IoU with a kept, higher-scoring
    box is > iou_threshold. With tied scores any valid choice is accepted.
    """


def batched_nms_cases() -> list[Case]:
    """The cases of :func:`check_batched_nms` (on every available device)."""
    t = torch.tensor
    per_class = (
        "Run NMS per class: a box can only be suppressed by a kept box of the same class "
        "(same idxs value)."
    )
    boxes, scores, _ = _random_nms_inputs(24, 3, 0.5, _SEED + 4)
    classes = torch.randint(0, 3, (24,), generator=torch.Generator().manual_seed(_SEED + 5))
    one_class_boxes, one_class_scores, _ = _random_nms_inputs(12, 2, 0.5, _SEED + 6)
    square = [1.0, 1.0, 5.0, 5.0]
    cases = [
        Case(
            "two identical boxes of different classes: both kept",
            (t([square, square]), t([0.9, 0.8]), t([1, 2]), 0.5),
            hint=per_class,
        ),
        Case(
            "a pair of identical boxes for each class 0, 1, 2, 3: the best of each pair is kept",
            (
                t([square] * 8),
                t([0.5, 0.4, 0.95, 0.1, 0.3, 0.85, 0.6, 0.2]),
                t([0, 0, 1, 1, 2, 2, 3, 3]),
                0.5,
            ),
            hint="Every class id counts, 0 and the largest included; return indices into the "
            "original boxes, "
            "not into each class's subset.",
        ),
        Case(
            "two classes with interleaved scores: one list sorted by score over all classes",
            (_grid_boxes(3), t([0.9, 0.6, 0.3]), t([5, 7, 5]), 0.5),
            hint="Concatenating the per-class results is not enough: sort the kept indices by "
            "score at the end.",
        ),
        Case(
            "IoU exactly equal to iou_threshold within a class: both kept",
            (
                t([[0.0, 0.0, 4.0, 1.0], [0.0, 0.0, 2.0, 1.0], [0.0, 0.0, 2.0, 1.0]]),
                t([0.9, 0.6, 0.8]),
                t([3, 3, 4]),
                0.5,
            ),
            hint="Suppress only when IoU > iou_threshold (strictly greater), as torchvision does.",
        ),
        Case(
            "tied scores across classes: identical boxes with equal scores, both kept",
            (t([square, square]), t([0.5, 0.5]), t([0, 1]), 0.5),
            hint=per_class,
        ),
        Case(
            "24 random boxes of 3 classes, iou_threshold 0.5",
            (boxes, scores, classes, 0.5),
            hint=per_class,
        ),
        Case(
            "12 random boxes, all of class 2: the same as plain NMS",
            (one_class_boxes, one_class_scores, torch.full((12,), 2), 0.5),
            hint="With a single class, batched NMS is plain NMS.",
        ),
        Case(
            "one box (a batch of one): keep = [0]",
            (t([[3.0, 3.0, 9.0, 8.0]]), t([0.4]), t([1]), 0.5),
            hint="A single box is always kept; return a 1-D tensor of shape (1,).",
        ),
        Case(
            "no boxes at all: an empty int64 tensor",
            (torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5),
            hint="Handle N = 0 without calling .max() on an empty tensor.",
        ),
    ]
    return with_device_copies(cases)


@assignment_check(
    reference=torchvision.ops.batched_nms, cases=batched_nms_cases, compare=_compare_nms
)
def check_batched_nms(
    batched_nms: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor],
    *,
    quiet: bool = False,
) -> None:
    """Check ``batched_nms(boxes, scores, idxs, iou_threshold) -> keep``.

    NMS is done separately for each class ``idxs`` (int64 (N,)): boxes of different classes never
    suppress each other. keep: (K,) int64 indices into the original boxes, in decreasing score order
    over all classes.
    """


def _grid_boxes(n: int) -> torch.Tensor:
    """``n`` disjoint 8x8 boxes in a row, 4 pixels apart, float32 (n, 4)."""
    x1 = torch.arange(n, dtype=torch.float32) * 12
    y1 = torch.full((n,), 2.0)
    return torch.stack([x1, y1, x1 + 8, y1 + 8], dim=1)


def _random_nms_inputs(
    n: int, clusters: int, threshold: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``n`` overlapping boxes around ``clusters`` centres and distinct scores, with no IoU near
    ``threshold``.

    Seeds from ``seed`` upward are tried until every pairwise IoU is at least _MARGIN away from the
    threshold, so a correct float32 implementation cannot land on the other side of it by rounding.
    """
    for attempt in range(1000):
        g = torch.Generator().manual_seed(seed + 7919 * attempt)
        centres = torch.rand(clusters, 2, generator=g, dtype=torch.float64) * 120 + 40
        which = torch.randint(0, clusters, (n,), generator=g)
        centre = centres[which] + torch.randn(n, 2, generator=g, dtype=torch.float64) * 6
        half = torch.rand(n, 2, generator=g, dtype=torch.float64) * 15 + 5
        boxes = torch.cat([centre - half, centre + half], dim=1).to(torch.float32)
        scores = torch.rand(n, generator=g, dtype=torch.float64).to(torch.float32)
        iou = torchvision.ops.box_iou(boxes.double(), boxes.double())
        off_diagonal = ~torch.eye(n, dtype=torch.bool)
        if (
            bool(((iou - threshold).abs()[off_diagonal] > _MARGIN).all())
            and len(torch.unique(scores)) == n
        ):
            return boxes, scores, threshold
    raise RuntimeError("could not draw NMS inputs away from the threshold")  # pragma: no cover


CHECKS = (check_nms, check_batched_nms)
