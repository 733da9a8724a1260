"""Checks for the box assignments: area and IoU.

Boxes are float tensors (N, 4) in (x1, y1, x2, y2) absolute pixels, as in torchvision. Each check
compares the student's function with its reference (torchvision.ops) on random boxes and on the
edge cases students get wrong (no boxes, one box, degenerate and touching boxes, integer and float64
boxes), on the CPU and, when available, on CUDA.

Usage in a notebook::

    check_box_iou(box_iou)   # graded cell: raises on a wrong answer, prints one line on success
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torchvision

from course_utils.grading.assignments import assignment_check
from course_utils.grading.checks._inputs import random_boxes
from course_utils.grading.runner import Case, with_device_copies

__all__ = ["CHECKS", "box_area_cases", "box_iou_cases", "check_box_area", "check_box_iou"]

_SEED = 2024


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
            (random_boxes(5, g, min_side=0.5),),
            hint="area = (x2 - x1) * (y2 - y1) for every row; boxes are (x1, y1, x2, y2), not (x, "
            "y, w, h).",
        ),
        Case(
            "one box (a batch of one): the result has shape (1,)",
            (torch.tensor([[1.5, 2.0, 4.5, 6.0]]),),
            hint="Index columns with boxes[:, k] and do not .squeeze() the result: one box gives "
            "shape (1,), not ().",
        ),
        Case(
            "no boxes at all: shape (0, 4) gives shape (0,)",
            (torch.zeros(0, 4),),
            hint="Column arithmetic on the whole tensor works for N = 0; torch.stack of an empty "
            "list does not.",
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
            (random_boxes(3, g, min_side=0.5, dtype=torch.float64),),
            hint="Let the input decide the dtype: no .float(), and no torch.tensor([...]) built "
            "from Python numbers.",
        ),
        Case(
            "boxes in a 4000 x 3000 photo",
            (torch.tensor([[120.5, 80.25, 3900.0, 2950.75], [1000.0, 1000.0, 1000.5, 1001.0]]),),
            hint="Use the coordinates as they are: no normalisation and no conversion to integers.",
        ),
    ]
    return with_device_copies(cases)


@assignment_check(reference=torchvision.ops.box_area, cases=box_area_cases)
def check_box_area(
    box_area: Callable[[torch.Tensor], torch.Tensor], *, quiet: bool = False
) -> None:
    """Check ``box_area(boxes) -> areas``.

    boxes: (N, 4) float (x1, y1, x2, y2) pixels; areas: (N,) with the boxes' dtype and device.
    Raises NotImplementedError for the release stub and CheckFailed for a wrong answer.
    """


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
            hint="The intersection's corners are max(x1), max(y1) (top-left) and min(x2), min(y2) "
            "(bottom-right).",
        ),
        Case(
            "a wide box crossing a tall box",
            (t([[0.0, 4.0, 10.0, 6.0]]), t([[4.0, 0.0, 6.0, 10.0]])),
            hint="Intersect x with x and y with y: width from columns 0 and 2, height from columns "
            "1 and 3.",
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
            hint="Touching boxes share an edge but no area. Coordinates are continuous: no '+ 1' "
            "in widths.",
        ),
        Case(
            "boxes touching at a corner: IoU 0",
            (t([[0.0, 0.0, 2.0, 2.0]]), t([[2.0, 2.0, 4.0, 4.0]])),
            hint="The intersection has zero width and zero height, so zero area.",
        ),
        Case(
            "a small box inside a big one: IoU = small area / big area",
            (t([[0.0, 0.0, 10.0, 10.0]]), t([[2.0, 2.0, 4.0, 6.0]])),
            hint="Divide by the union (area1 + area2 - intersection), not by the smaller area or "
            "by area1 + area2.",
        ),
        Case(
            "a zero-area box inside a normal box: IoU 0",
            (t([[2.0, 2.0, 2.0, 5.0]]), t([[0.0, 0.0, 10.0, 10.0]])),
            hint="Degenerate boxes have area 0; the union is still the other box's area.",
        ),
        Case(
            "5 random boxes against 7 random boxes",
            (random_boxes(5, g, min_side=0.5), random_boxes(7, g, min_side=0.5)),
            hint="iou[i, j] compares boxes1[i] with boxes2[j], so the result has shape "
            "(len(boxes1), len(boxes2)). "
            "union = area1 + area2 - intersection.",
        ),
        Case(
            "3 random boxes against 3 others (the matrix is not symmetric)",
            (random_boxes(3, g, min_side=0.5), random_boxes(3, g, min_side=0.5)),
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
            (torch.zeros(0, 4), random_boxes(3, g, min_side=0.5)),
            hint="Broadcasting works for empty tensors; torch.stack of an empty list does not.",
        ),
        Case(
            "no boxes in boxes2: shape (2, 0)",
            (random_boxes(2, g, min_side=0.5), torch.zeros(0, 4)),
            hint="Broadcasting works for empty tensors; torch.stack of an empty list does not.",
        ),
        Case(
            "integer (int64) boxes: the IoU is still a float32 fraction",
            (t([[0, 0, 4, 4], [1, 1, 3, 5]]), t([[2, 2, 6, 6], [0, 0, 4, 4], [0, 0, 1, 1]])),
            hint="Divide with / (true division): // or converting to integers truncates every IoU "
            "below 1 to 0.",
        ),
        Case(
            "float64 boxes: the IoU keeps dtype float64",
            (
                random_boxes(3, g, min_side=0.5, dtype=torch.float64),
                random_boxes(2, g, min_side=0.5, dtype=torch.float64),
            ),
            hint="Let the inputs decide the dtype: no .float() and no torch.zeros(N, M) with the "
            "default dtype.",
        ),
    ]
    return with_device_copies(cases)


@assignment_check(reference=torchvision.ops.box_iou, cases=box_iou_cases)
def check_box_iou(
    box_iou: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, quiet: bool = False
) -> None:
    """Check ``box_iou(boxes1, boxes2) -> iou``.

    boxes1: (N, 4), boxes2: (M, 4), (x1, y1, x2, y2) pixels; iou: (N, M) float, iou[i, j] =
    IoU(boxes1[i], boxes2[j]), on the boxes' device (float64 boxes give float64, integer boxes give
    float32).
    """


CHECKS = (check_box_area, check_box_iou)
