"""Checks for the box assignments: area, IoU, non-maximum suppression (plain and per class).

Boxes are float tensors (N, 4) in (x1, y1, x2, y2) absolute pixels, as in torchvision. Each check compares the
student's function with torchvision.ops on random boxes and on the edge cases students get wrong (no boxes,
one box, degenerate and touching boxes, tied scores, one class vs many), on the CPU and, when available, on
CUDA.

Usage in a notebook::

    check_box_iou(box_iou)        # graded cell: raises on a wrong answer, prints one line on success
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torchvision

from course_utils.grading.assignments import (
    Case,
    assignment_check,
    describe,
    not_a_tensor_problem,
    run_cases,
    with_device_copies,
)

__all__ = ["CHECKS", "check_batched_nms", "check_box_area", "check_box_iou", "check_nms"]

_SEED = 2024
_MARGIN = 1e-3  # random NMS cases keep every pairwise IoU at least this far from the threshold


# ----------------------------------------------------------------------------------------------------------
# Box area
# ----------------------------------------------------------------------------------------------------------


@assignment_check("box_area", reference=torchvision.ops.box_area)
def check_box_area(
    box_area: Callable[[torch.Tensor], torch.Tensor], *, quiet: bool = False
) -> None:
    """Check ``box_area(boxes) -> areas`` against torchvision.ops.box_area.

    boxes: (N, 4) float (x1, y1, x2, y2) pixels; areas: (N,) with the boxes' dtype and device.
    Raises NotImplementedError for the release stub and CheckFailed for a wrong answer.
    """
    run_cases(
        box_area, box_area_cases(), name="box_area", reference=torchvision.ops.box_area, quiet=quiet
    )


def box_area_cases() -> list[Case]:
    """The cases of :func:`check_box_area` (on every available device)."""
    g = torch.Generator().manual_seed(_SEED)
    cases = [
        Case(
            "a wide box, a tall box and a square",
            (torch.tensor([[0.0, 0.0, 10.0, 2.0], [0.0, 0.0, 2.0, 10.0], [3.0, 1.0, 6.0, 4.0]]),),
            hint="The columns are x1, y1, x2, y2: width = boxes[:, 2] - boxes[:, 0], "
            "height = boxes[:, 3] - boxes[:, 1].",
        ),
        Case(
            "unit boxes: [0, 0, 1, 1] has area 1",
            (torch.tensor([[0.0, 0.0, 1.0, 1.0], [2.0, 3.0, 5.0, 7.0]]),),
            hint="Coordinates are continuous, so there is no '+ 1' in the width or height.",
        ),
        Case(
            "5 random boxes with fractional coordinates",
            (_random_boxes(5, g),),
            hint="area = (x2 - x1) * (y2 - y1) for every row; boxes are (x1, y1, x2, y2), not (x, y, w, h).",
        ),
        Case(
            "one box (a batch of one): the result has shape (1,)",
            (torch.tensor([[1.5, 2.0, 4.5, 6.0]]),),
            hint="Index columns with boxes[:, k] and do not .squeeze() the result: one box gives shape (1,), not ().",
        ),
        Case(
            "no boxes at all: shape (0, 4) gives shape (0,)",
            (torch.zeros(0, 4),),
            hint="Column arithmetic on the whole tensor works for N = 0; torch.stack of an empty list does not.",
        ),
        Case(
            "degenerate boxes: zero width, zero height, a single point",
            (
                torch.tensor(
                    [
                        [2.0, 2.0, 2.0, 5.0],
                        [1.0, 3.0, 4.0, 3.0],
                        [7.0, 7.0, 7.0, 7.0],
                        [0.0, 0.0, 2.0, 3.0],
                    ]
                ),
            ),
            hint="A box with x1 == x2 or y1 == y2 has area 0: no clamping to a minimum of 1.",
        ),
        Case(
            "float64 boxes: the areas keep dtype float64",
            (_random_boxes(3, g, dtype=torch.float64),),
            hint="Let the input decide the dtype: no .float(), and no torch.tensor([...]) built from Python numbers.",
        ),
        Case(
            "boxes in a 4000 x 3000 photo",
            (torch.tensor([[120.5, 80.25, 3900.0, 2950.75], [1000.0, 1000.0, 1000.5, 1001.0]]),),
            hint="Use the coordinates as they are: no normalisation and no conversion to integers.",
        ),
    ]
    return with_device_copies(cases)


# ----------------------------------------------------------------------------------------------------------
# Box IoU
# ----------------------------------------------------------------------------------------------------------


@assignment_check("box_iou", reference=torchvision.ops.box_iou)
def check_box_iou(
    box_iou: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, quiet: bool = False
) -> None:
    """Check ``box_iou(boxes1, boxes2) -> iou`` against torchvision.ops.box_iou.

    boxes1: (N, 4), boxes2: (M, 4), (x1, y1, x2, y2) pixels; iou: (N, M) float, iou[i, j] = IoU(boxes1[i],
    boxes2[j]), on the boxes' device (float64 boxes give float64, integer boxes give float32).
    """
    run_cases(
        box_iou, box_iou_cases(), name="box_iou", reference=torchvision.ops.box_iou, quiet=quiet
    )


def box_iou_cases() -> list[Case]:
    """The cases of :func:`check_box_iou` (on every available device)."""
    g = torch.Generator().manual_seed(_SEED + 1)
    t = torch.tensor
    clamp_hint = (
        "Clamp the intersection's width and height at 0 separately, before multiplying: "
        "two negative sides multiply to a positive area."
    )
    cases = [
        Case(
            "boxes against themselves: IoU 1 on the diagonal",
            (
                t([[1.0, 2.0, 5.0, 7.0], [0.0, 0.0, 3.0, 3.0]]),
                t([[1.0, 2.0, 5.0, 7.0], [0.0, 0.0, 3.0, 3.0]]),
            ),
            hint="The intersection's corners are max(x1), max(y1) (top-left) and min(x2), min(y2) (bottom-right).",
        ),
        Case(
            "a wide box crossing a tall box",
            (t([[0.0, 4.0, 10.0, 6.0]]), t([[4.0, 0.0, 6.0, 10.0]])),
            hint="Intersect x with x and y with y: width from columns 0 and 2, height from columns 1 and 3.",
        ),
        Case(
            "disjoint boxes, apart in both x and y: IoU 0",
            (t([[0.0, 0.0, 2.0, 2.0]]), t([[5.0, 5.0, 8.0, 9.0]])),
            hint=clamp_hint,
        ),
        Case(
            "disjoint boxes, apart in x only: IoU 0",
            (t([[0.0, 0.0, 2.0, 4.0]]), t([[3.0, 0.0, 5.0, 4.0]])),
            hint=clamp_hint,
        ),
        Case(
            "boxes touching along an edge: IoU 0",
            (t([[0.0, 0.0, 2.0, 2.0]]), t([[2.0, 0.0, 4.0, 2.0]])),
            hint="Touching boxes share an edge but no area. Coordinates are continuous: no '+ 1' in widths.",
        ),
        Case(
            "boxes touching at a corner: IoU 0",
            (t([[0.0, 0.0, 2.0, 2.0]]), t([[2.0, 2.0, 4.0, 4.0]])),
            hint="The intersection has zero width and zero height, so zero area.",
        ),
        Case(
            "a small box inside a big one: IoU = small area / big area",
            (t([[0.0, 0.0, 10.0, 10.0]]), t([[2.0, 2.0, 4.0, 6.0]])),
            hint="Divide by the union (area1 + area2 - intersection), not by the smaller area or by area1 + area2.",
        ),
        Case(
            "a zero-area box inside a normal box: IoU 0",
            (t([[2.0, 2.0, 2.0, 5.0]]), t([[0.0, 0.0, 10.0, 10.0]])),
            hint="Degenerate boxes have area 0; the union is still the other box's area.",
        ),
        Case(
            "5 random boxes against 7 random boxes",
            (_random_boxes(5, g), _random_boxes(7, g)),
            hint="iou[i, j] compares boxes1[i] with boxes2[j], so the result has shape (len(boxes1), len(boxes2)). "
            "union = area1 + area2 - intersection.",
        ),
        Case(
            "3 random boxes against 3 others (the matrix is not symmetric)",
            (_random_boxes(3, g), _random_boxes(3, g)),
            hint="Row i belongs to boxes1[i], column j to boxes2[j]: "
            "broadcast boxes1[:, None, :] against boxes2[None, :, :].",
        ),
        Case(
            "one box against one box: shape (1, 1)",
            (t([[0.5, 0.5, 3.5, 2.5]]), t([[1.0, 1.0, 4.0, 4.0]])),
            hint="Do not .squeeze() the result: one box against one box is still a (1, 1) matrix.",
        ),
        Case(
            "no boxes in boxes1: shape (0, 3)",
            (torch.zeros(0, 4), _random_boxes(3, g)),
            hint="Broadcasting works for empty tensors; torch.stack of an empty list does not.",
        ),
        Case(
            "no boxes in boxes2: shape (2, 0)",
            (_random_boxes(2, g), torch.zeros(0, 4)),
            hint="Broadcasting works for empty tensors; torch.stack of an empty list does not.",
        ),
        Case(
            "integer (int64) boxes: the IoU is still a float32 fraction",
            (t([[0, 0, 4, 4], [1, 1, 3, 5]]), t([[2, 2, 6, 6], [0, 0, 4, 4], [0, 0, 1, 1]])),
            hint="Divide with / (true division): // or converting to integers truncates every IoU below 1 to 0.",
        ),
        Case(
            "float64 boxes: the IoU keeps dtype float64",
            (_random_boxes(3, g, dtype=torch.float64), _random_boxes(2, g, dtype=torch.float64)),
            hint="Let the inputs decide the dtype: no .float() and no torch.zeros(N, M) with the default dtype.",
        ),
    ]
    return with_device_copies(cases)


# ----------------------------------------------------------------------------------------------------------
# Non-maximum suppression
# ----------------------------------------------------------------------------------------------------------


@assignment_check("nms", reference=torchvision.ops.nms)
def check_nms(
    nms: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor], *, quiet: bool = False
) -> None:
    """Check ``nms(boxes, scores, iou_threshold) -> keep`` against torchvision.ops.nms.

    boxes: (N, 4) float (x1, y1, x2, y2); scores: (N,) float; keep: (K,) int64 indices of the kept boxes in
    decreasing score order. A box is suppressed when its IoU with a kept, higher-scoring box is > iou_threshold.
    With tied scores any valid choice is accepted.
    """
    run_cases(
        nms,
        nms_cases(),
        name="nms",
        reference=torchvision.ops.nms,
        compare=_compare_nms,
        quiet=quiet,
    )


def nms_cases() -> list[Case]:
    """The cases of :func:`check_nms` (on every available device)."""
    t = torch.tensor
    greedy_hint = (
        "Visit boxes from the highest score down; keep a box unless a box you already kept overlaps it "
        "with IoU > iou_threshold."
    )
    cases = [
        Case(
            "boxes that do not overlap: all kept, highest score first",
            (_grid_boxes(4), t([0.2, 0.9, 0.5, 0.7]), 0.5),
            hint="Return indices into the original boxes, sorted by decreasing score (like torchvision.ops.nms).",
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
            hint="Compute the IoU with continuous coordinates (no '+ 1' in widths): these boxes have IoU 50 / 150.",
        ),
        Case(
            "low-scoring boxes are kept too: the threshold is on IoU, not on scores",
            (_grid_boxes(3), t([0.1, 0.05, 0.3]), 0.5),
            hint="iou_threshold compares overlaps; NMS never drops a box because of its score alone.",
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
            hint="Return torch.zeros(0, dtype=torch.long) (or an empty index tensor) when there are no boxes.",
        ),
    ]
    return with_device_copies(cases)


@assignment_check("batched_nms", reference=torchvision.ops.batched_nms)
def check_batched_nms(
    batched_nms: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor],
    *,
    quiet: bool = False,
) -> None:
    """Check ``batched_nms(boxes, scores, idxs, iou_threshold) -> keep`` against torchvision.ops.batched_nms.

    NMS is done separately for each class ``idxs`` (int64 (N,)): boxes of different classes never suppress each
    other. keep: (K,) int64 indices into the original boxes, in decreasing score order over all classes.
    """
    run_cases(
        batched_nms,
        batched_nms_cases(),
        name="batched_nms",
        reference=torchvision.ops.batched_nms,
        compare=_compare_nms,
        quiet=quiet,
    )


def batched_nms_cases() -> list[Case]:
    """The cases of :func:`check_batched_nms` (on every available device)."""
    t = torch.tensor
    per_class = "Run NMS per class: a box can only be suppressed by a kept box of the same class (same idxs value)."
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
            hint="Every class id counts, 0 and the largest included; return indices into the original boxes, "
            "not into each class's subset.",
        ),
        Case(
            "two classes with interleaved scores: one list sorted by score over all classes",
            (_grid_boxes(3), t([0.9, 0.6, 0.3]), t([5, 7, 5]), 0.5),
            hint="Concatenating the per-class results is not enough: sort the kept indices by score at the end.",
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


CHECKS = (check_box_area, check_box_iou, check_nms, check_batched_nms)


# ----------------------------------------------------------------------------------------------------------
# Comparing NMS results: any result a greedy NMS could give (with some order among tied scores) is right
# ----------------------------------------------------------------------------------------------------------


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
                    f"kept boxes {i} and {j} overlap with IoU {float(iou[i, j]):.3f} > iou_threshold {threshold}: "
                    f"box {j} (score {float(scores[j]):.3g}) should have been suppressed by box {i}."
                )
    kept = torch.zeros(len(scores), dtype=torch.bool)
    kept[keep] = True
    for i in range(len(scores)):
        if kept[i]:
            continue
        killers = kept & same_class[i] & (iou[i] > threshold) & (scores >= scores[i])
        if not bool(killers.any()):
            return (
                f"box {i} (score {float(scores[i]):.3g}) was dropped, but no kept box with a score at least as "
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
            f"returned boxes (shape {tuple(got.shape)}); return the indices of the kept boxes, a (K,) torch.long "
            "tensor (keep, not boxes[keep])."
        )
    if got.dtype == torch.bool:
        return (
            f"returned a boolean mask (shape {tuple(got.shape)}); return the indices of the kept boxes, sorted by "
            "decreasing score, as a torch.long tensor."
        )
    if got.dim() != 1:
        return f"returned shape {tuple(got.shape)}; expected a 1-D tensor of indices, shape (K,)."
    if got.dtype != torch.long:
        return f"returned dtype {got.dtype}; expected torch.int64 (torch.long) indices, like torchvision.ops.nms."
    if got.device != expected.device:
        return (
            f"returned a tensor on {got.device}, but the inputs were on {expected.device}: keep the indices on the "
            "boxes' device."
        )
    if len(got) and (int(got.min()) < 0 or int(got.max()) >= num_boxes):
        return f"returned index {describe(got)} out of range for {num_boxes} boxes."
    if len(torch.unique(got)) != len(got):
        return "returned some index more than once: each kept box appears once."
    return None


# ----------------------------------------------------------------------------------------------------------
# Random inputs
# ----------------------------------------------------------------------------------------------------------


def _random_boxes(
    n: int, g: torch.Generator, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``n`` boxes (n, 4) xyxy with fractional corners in a 150-pixel image, sides 0.5..50 pixels."""
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 100
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * 49.5 + 0.5
    return torch.cat([xy, xy + wh], dim=1).to(dtype)


def _grid_boxes(n: int) -> torch.Tensor:
    """``n`` disjoint 8x8 boxes in a row, 4 pixels apart, float32 (n, 4)."""
    x1 = torch.arange(n, dtype=torch.float32) * 12
    y1 = torch.full((n,), 2.0)
    return torch.stack([x1, y1, x1 + 8, y1 + 8], dim=1)


def _random_nms_inputs(
    n: int, clusters: int, threshold: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``n`` overlapping boxes around ``clusters`` centres and distinct scores, with no IoU near ``threshold``.

    Seeds from ``seed`` upward are tried until every pairwise IoU is at least _MARGIN away from the threshold,
    so a correct float32 implementation cannot land on the other side of it by rounding.
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
