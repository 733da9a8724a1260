"""Checks for the box-coding assignments of R-CNN (notebook 03): box regression targets.

* ``encode_boxes(proposals, gt_boxes) -> deltas``: the targets (tx, ty, tw, th) that move each
  proposal onto its ground-truth box;
* ``decode_boxes(proposals, deltas) -> boxes``: the inverse.

The references wrap torchvision's ``BoxCoder`` with weights (1, 1, 1, 1), in the assignments'
argument order. Boxes are float (N, 4) (x1, y1, x2, y2) pixels.

Usage in a notebook::

    check_encode_boxes(encode_boxes)    # graded cell: raises on a wrong answer
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision.models.detection._utils import BoxCoder

from course_utils.grading.assignments import assignment_check
from course_utils.grading.checks._inputs import random_boxes
from course_utils.grading.runner import Case, with_device_copies

__all__ = [
    "CHECKS",
    "check_decode_boxes",
    "check_encode_boxes",
    "decode_boxes_cases",
    "encode_boxes_cases",
    "torchvision_decode_boxes",
    "torchvision_encode_boxes",
]

_SEED = 303


def torchvision_encode_boxes(proposals: torch.Tensor, gt_boxes: torch.Tensor) -> torch.Tensor:
    """Reference ``encode_boxes``: ``BoxCoder(weights=(1, 1, 1, 1)).encode_single(gt_boxes,
    proposals)``."""
    return BoxCoder(weights=(1.0, 1.0, 1.0, 1.0)).encode_single(gt_boxes, proposals)


def torchvision_decode_boxes(proposals: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """Reference ``decode_boxes``: ``BoxCoder(weights=(1, 1, 1, 1)).decode_single(deltas,
    proposals)``."""
    return BoxCoder(weights=(1.0, 1.0, 1.0, 1.0)).decode_single(deltas, proposals)


def encode_boxes_cases() -> list[Case]:
    """The cases of :func:`check_encode_boxes` (on every available device)."""
    t = torch.tensor
    g = torch.Generator().manual_seed(_SEED + 1)
    formula = "tx = (Gx - Px) / Pw, ty = (Gy - Py) / Ph, tw = log(Gw / Pw), th = log(Gh / Ph)."
    cases = [
        Case(
            "identical boxes: all four targets are 0",
            (t([[10.0, 20.0, 30.0, 60.0]]), t([[10.0, 20.0, 30.0, 60.0]])),
            hint="A box that needs no correction has targets (0, 0, 0, 0): shifts divided by "
            "sizes, log(1) = 0.",
        ),
        Case(
            "the ground truth is shifted right by half the proposal's width: tx = 0.5",
            (t([[10.0, 20.0, 30.0, 60.0]]), t([[20.0, 20.0, 40.0, 60.0]])),
            hint="tx is the shift of the centre x divided by the PROPOSAL's width Pw (not the "
            "ground truth's).",
        ),
        Case(
            "the ground truth is shifted down: only ty changes",
            (t([[10.0, 20.0, 30.0, 60.0]]), t([[10.0, 30.0, 30.0, 70.0]])),
            hint="Columns are x1, y1, x2, y2: the y shift goes in the second target, divided by "
            "the height Ph.",
        ),
        Case(
            "the ground truth is twice as wide around the same centre: tw = log 2",
            (t([[10.0, 20.0, 30.0, 60.0]]), t([[0.0, 20.0, 40.0, 60.0]])),
            hint="tw = log(Gw / Pw): a logarithm of the ratio of widths, ground truth over "
            "proposal.",
        ),
        Case(
            "a wide proposal and a tall ground-truth box: every target differs",
            (t([[0.0, 0.0, 40.0, 10.0]]), t([[15.0, -10.0, 25.0, 30.0]])),
            hint="Use centres, not corners: Px = x1 + 0.5 * Pw. " + formula,
        ),
        Case(
            "fractional coordinates (no + 1 in the widths)",
            (
                t([[1.5, 2.25, 7.75, 9.5], [0.5, 0.5, 3.0, 2.0]]),
                t([[2.0, 2.0, 8.0, 10.0], [1.0, 0.25, 2.5, 2.5]]),
            ),
            hint="Widths are x2 - x1 (continuous coordinates, as torchvision), no + 1.",
        ),
        Case(
            "20 random pairs",
            (random_boxes(20, g, min_side=2.0), random_boxes(20, g, min_side=2.0)),
            hint=formula,
        ),
        Case(
            "one pair (a batch of one): shape (1, 4)",
            (t([[3.0, 4.0, 9.0, 8.0]]), t([[2.0, 5.0, 10.0, 9.0]])),
            hint="Keep the (N, 4) shape for N = 1: stack the four targets along dim=1.",
        ),
        Case(
            "no boxes: shape (0, 4)",
            (torch.zeros(0, 4), torch.zeros(0, 4)),
            hint="Column operations and torch.stack(..., dim=1) work for N = 0; return shape (0, "
            "4).",
        ),
        Case(
            "float64 boxes: float64 targets",
            (
                random_boxes(5, g, min_side=2.0, dtype=torch.float64),
                random_boxes(5, g, min_side=2.0, dtype=torch.float64),
            ),
            hint="Let the inputs decide the dtype: no .float().",
        ),
    ]
    return with_device_copies(cases)


@assignment_check(reference=torchvision_encode_boxes, cases=encode_boxes_cases)
def check_encode_boxes(
    encode_boxes: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, quiet: bool = False
) -> None:
    """Check ``encode_boxes(proposals, gt_boxes) -> deltas``, R-CNN's box regression targets.

    proposals, gt_boxes: (N, 4) float xyxy (positive sizes); deltas (N, 4) = (tx, ty, tw, th) with
    tx = (Gx - Px) / Pw, ty = (Gy - Py) / Ph, tw = log(Gw / Pw), th = log(Gh / Ph) (centres and
    sizes, w = x2 - x1), the proposals' dtype and device.
    """


def decode_boxes_cases() -> list[Case]:
    """The cases of :func:`check_decode_boxes` (on every available device); |tw|, |th| < 2 (no
    clipping)."""
    t = torch.tensor
    g = torch.Generator().manual_seed(_SEED + 2)
    formula = (
        "Centre x = Px + Pw * tx, centre y = Py + Ph * ty, width = Pw * exp(tw), height = Ph * "
        "exp(th); "
        "then corners x1 = cx - w / 2, x2 = cx + w / 2 (same for y)."
    )
    proposals, gt = random_boxes(20, g, min_side=2.0), random_boxes(20, g, min_side=2.0)
    cases = [
        Case(
            "zero deltas give the proposal back",
            (t([[10.0, 20.0, 30.0, 60.0]]), t([[0.0, 0.0, 0.0, 0.0]])),
            hint="(0, 0, 0, 0) means no correction: exp(0) = 1 keeps the size, the centre stays.",
        ),
        Case(
            "tx = 0.5 moves the box right by half its width",
            (t([[10.0, 20.0, 30.0, 60.0]]), t([[0.5, 0.0, 0.0, 0.0]])),
            hint="The shift is tx times the proposal's width: cx = Px + Pw * tx.",
        ),
        Case(
            "ty = -0.25 moves the box up by a quarter of its height",
            (t([[10.0, 20.0, 30.0, 60.0]]), t([[0.0, -0.25, 0.0, 0.0]])),
            hint="The second delta moves y, scaled by the height Ph (columns are x1, y1, x2, y2).",
        ),
        Case(
            "tw = log 2 doubles the width around the same centre",
            (t([[10.0, 20.0, 30.0, 60.0]]), t([[0.0, 0.0, 0.6931471805599453, 0.0]])),
            hint="Sizes are predicted in log space: width = Pw * exp(tw), around the centre (not "
            "the corner).",
        ),
        Case(
            "all four deltas at once, fractional proposal",
            (t([[1.5, 2.25, 7.75, 9.5]]), t([[0.3, -0.2, -0.5, 0.4]])),
            hint=formula,
        ),
        Case(
            "decoding the targets of 20 ground-truth boxes gives the boxes back",
            (proposals, torchvision_encode_boxes(proposals, gt)),
            hint=formula,
        ),
        Case(
            "20 random proposals with random deltas",
            (random_boxes(20, g, min_side=2.0), (torch.rand(20, 4, generator=g) - 0.5) * 2),
            hint=formula,
        ),
        Case(
            "one box (a batch of one): shape (1, 4)",
            (t([[3.0, 4.0, 9.0, 8.0]]), t([[0.1, 0.1, 0.1, 0.1]])),
            hint="Keep the (N, 4) shape for N = 1: stack the corners along dim=1.",
        ),
        Case(
            "no boxes: shape (0, 4)",
            (torch.zeros(0, 4), torch.zeros(0, 4)),
            hint="Column operations and torch.stack(..., dim=1) work for N = 0; return shape (0, "
            "4).",
        ),
        Case(
            "float64 deltas: float64 boxes",
            (
                random_boxes(4, g, min_side=2.0, dtype=torch.float64),
                torch.rand(4, 4, generator=g, dtype=torch.float64) - 0.5,
            ),
            hint="Let the inputs decide the dtype: no .float().",
        ),
    ]
    return with_device_copies(cases)


@assignment_check(reference=torchvision_decode_boxes, cases=decode_boxes_cases)
def check_decode_boxes(
    decode_boxes: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, quiet: bool = False
) -> None:
    """Check ``decode_boxes(proposals, deltas) -> boxes``, the inverse of ``encode_boxes``.

    proposals (N, 4) float xyxy, deltas (N, 4) = (tx, ty, tw, th); boxes (N, 4) xyxy with centre
    (Px + Pw tx, Py + Ph ty) and size (Pw exp(tw), Ph exp(th)), the deltas' dtype and device.
    """


CHECKS = (check_encode_boxes, check_decode_boxes)
