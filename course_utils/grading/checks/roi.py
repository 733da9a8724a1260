"""Checks for the Fast R-CNN head assignments (notebook 04): RoI pooling and the box loss.

* ``roi_pool(features, rois, output_size, spatial_scale) -> pooled``: quantized RoI max pooling;
* ``smooth_l1_box_loss(deltas, targets, labels, beta) -> loss``: the box term of Fast R-CNN's
  multi-task loss.

The references wrap torchvision with the assignments' argument names and order; each check
declares its own (and its docstring names it).

Usage in a notebook::

    check_roi_pool(roi_pool)    # graded cell: raises on a wrong answer, prints one line on success
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
import torchvision

from course_utils.grading.assignments import assignment_check
from course_utils.grading.compare import compare_tensors, not_a_tensor_problem
from course_utils.grading.runner import Case, with_device_copies

__all__ = [
    "CHECKS",
    "check_roi_pool",
    "check_smooth_l1_box_loss",
    "roi_pool_cases",
    "smooth_l1_box_loss_cases",
    "torchvision_roi_pool",
    "torchvision_smooth_l1_box_loss",
]

_SEED = 303


def torchvision_roi_pool(
    features: torch.Tensor, rois: torch.Tensor, output_size: tuple[int, int], spatial_scale: float
) -> torch.Tensor:
    """Reference ``roi_pool``: ``torchvision.ops.roi_pool(features, rois, output_size,
    spatial_scale)``."""
    return torchvision.ops.roi_pool(features, rois, output_size, spatial_scale)


def torchvision_smooth_l1_box_loss(
    deltas: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor, beta: float
) -> torch.Tensor:
    """Reference ``smooth_l1_box_loss``: ``F.smooth_l1_loss`` (sum) over the positive RoIs, divided
    by R."""
    positive = labels > 0
    return F.smooth_l1_loss(deltas[positive], targets[positive], beta=beta, reduction="sum") / max(
        len(labels), 1
    )


def roi_pool_cases() -> list[Case]:
    """The cases of :func:`check_roi_pool` (on every available device)."""
    t = torch.tensor
    g = torch.Generator().manual_seed(_SEED + 3)
    ramp = torch.arange(64, dtype=torch.float32).reshape(1, 1, 8, 8)  # value = 8 * row + column
    two_images = torch.randn(2, 3, 6, 7, generator=g)
    quantize = (
        "Scale the corners, then round them (round half away from zero, like C's round: "
        "floor(v + 0.5) for v >= 0); the RoI spans x1..x2 INCLUSIVE: width = x2 - x1 + 1 (at least "
        "1)."
    )
    bins = (
        "Bin j of n over a RoI of width w starting at x1 covers columns x1 + floor(j * w / n) up "
        "to "
        "x1 + ceil((j + 1) * w / n) (exclusive): neighbouring bins may overlap by one cell."
    )
    cases = [
        Case(
            "the whole 8x8 map into a 2x2 grid: the maximum of each quadrant",
            (ramp, t([[0.0, 0.0, 0.0, 7.0, 7.0]]), (2, 2), 1.0),
            hint="Split the RoI into output_size bins and take the maximum of each; corners are "
            "inclusive, so "
            "x1 = 0, x2 = 7 is 8 cells wide.",
        ),
        Case(
            "a 5x5 RoI into 2x2 bins: bins of 2.5 cells overlap in the middle cell",
            (ramp, t([[0.0, 1.0, 1.0, 5.0, 5.0]]), (2, 2), 1.0),
            hint=bins,
        ),
        Case(
            "a 3x5 RoI into a 2x3 grid (h = 2 rows, w = 3 columns)",
            (ramp, t([[0.0, 2.0, 1.0, 6.0, 3.0]]), (2, 3), 1.0),
            hint="output_size is (h, w): h bins along y (rows), w bins along x (columns). " + bins,
        ),
        Case(
            "spatial_scale 0.25: image coordinates are 4 times the map's",
            (ramp, t([[0.0, 4.0, 8.0, 24.0, 28.0]]), (2, 2), 0.25),
            hint="Multiply the RoI's corners by spatial_scale before anything else. " + quantize,
        ),
        Case(
            "spatial_scale 0.25 with corners landing on .5 after scaling: "
            "round half away from zero",
            (ramp, t([[0.0, 2.0, 6.0, 18.0, 22.0], [0.0, 10.0, 2.0, 26.0, 14.0]]), (2, 2), 0.25),
            hint="2 * 0.25 = 0.5 must round to 1 (C's round, as torchvision), while torch.round "
            "rounds half to "
            "even (0.5 -> 0, 2.5 -> 2). Use torch.floor(v * spatial_scale + 0.5). " + quantize,
        ),
        Case(
            "fractional RoI corners (no rounding would be wrong)",
            (ramp, t([[0.0, 1.3, 0.6, 4.4, 6.7]]), (3, 2), 1.0),
            hint=quantize,
        ),
        Case(
            "RoIs on two images: the first column is the batch index",
            (
                two_images,
                t(
                    [
                        [1.0, 0.0, 0.0, 3.0, 3.0],
                        [0.0, 2.0, 1.0, 6.0, 5.0],
                        [1.0, 1.0, 2.0, 6.0, 5.0],
                    ]
                ),
                (2, 2),
                1.0,
            ),
            hint="rois[k, 0] says which image of the batch the RoI is on: pool "
            "features[int(rois[k, 0])].",
        ),
        Case(
            "negative features: the maximum can be negative",
            (-ramp - 1.0, t([[0.0, 0.0, 0.0, 7.0, 7.0], [0.0, 3.0, 3.0, 4.0, 4.0]]), (2, 2), 1.0),
            hint="Start the maximum at -inf (or use .amax), not at 0: all these features are "
            "negative.",
        ),
        Case(
            "a 1x1 RoI pooled to 3x3: every bin sees the same cell",
            (ramp, t([[0.0, 5.0, 2.0, 5.0, 2.0]]), (3, 3), 1.0),
            hint="A RoI at least 1 cell wide: width = max(x2 - x1 + 1, 1); bins smaller than a "
            "cell still cover "
            "one cell each (floor start, ceil end).",
        ),
        Case(
            "a RoI hanging over the edge of the map: clipped to the map",
            (ramp, t([[0.0, 5.0, -3.0, 11.0, 4.0]]), (2, 2), 1.0),
            hint="Clip every bin's start and end to [0, W] and [0, H] after adding the RoI's "
            "corner.",
        ),
        Case(
            "a RoI entirely outside the map: every bin is empty and pools to 0",
            (ramp, t([[0.0, 9.0, 9.0, 12.0, 12.0]]), (2, 2), 1.0),
            hint="An empty bin (end <= start after clipping) outputs 0, not -inf and not a "
            "neighbour's value.",
        ),
        Case(
            "12 random RoIs on a random 2 x 4 x 9 x 11 map, 3x3 grid, spatial_scale 0.5",
            (torch.randn(2, 4, 9, 11, generator=g), _random_rois(12, 2, 22, 18, g), (3, 3), 0.5),
            hint=quantize + " " + bins,
        ),
        Case(
            "one RoI (a batch of one): shape (1, C, h, w)",
            (two_images, t([[0.0, 1.0, 1.0, 4.0, 3.0]]), (2, 2), 1.0),
            hint="Keep the RoI dimension for K = 1: no .squeeze().",
        ),
        Case(
            "no RoIs: shape (0, C, h, w)",
            (two_images, torch.zeros(0, 5), (2, 2), 1.0),
            hint="K = 0 must return an empty (0, C, h, w) tensor: torch.stack of an empty list "
            "fails; create the "
            "output with features.new_zeros((K, C, h, w)) first.",
        ),
        Case(
            "float64 features: float64 output",
            (two_images.double(), t([[0.0, 0.0, 0.0, 5.0, 4.0]], dtype=torch.float64), (2, 2), 1.0),
            hint="Create the output with the features' dtype (features.new_zeros(...)).",
        ),
    ]
    return with_device_copies(cases)


@assignment_check(reference=torchvision_roi_pool, cases=roi_pool_cases)
def check_roi_pool(roi_pool: Callable[..., torch.Tensor], *, quiet: bool = False) -> None:
    """Check ``roi_pool(features, rois, output_size, spatial_scale) -> pooled``.

    features (N, C, H, W) float; rois (K, 5) float rows [batch_index, x1, y1, x2, y2] in image
    pixels; output_size (h, w) ints; spatial_scale float (feature map / image). pooled (K, C, h, w):
    quantized max pooling as in torchvision (RoI corners rounded half away from zero after scaling,
    end inclusive, bin b covers floor(b * size / n) .. ceil((b + 1) * size / n), clipped to the map;
    empty bins are 0).
    """


def _random_rois(
    k: int, num_images: int, width: float, height: float, g: torch.Generator
) -> torch.Tensor:
    """``k`` RoIs (k, 5) [batch_index, x1, y1, x2, y2] with fractional corners, some past the map's
    edge."""
    index = torch.randint(0, num_images, (k, 1), generator=g).float()
    xy = torch.rand(k, 2, generator=g) * torch.tensor([width, height]) - 2
    wh = torch.rand(k, 2, generator=g) * torch.tensor([width, height]) * 0.7
    return torch.cat([index, xy, xy + wh], dim=1)


def smooth_l1_box_loss_cases() -> list[Case]:
    """The cases of :func:`check_smooth_l1_box_loss` (on every available device)."""
    t = torch.tensor
    g = torch.Generator().manual_seed(_SEED + 4)
    formula = (
        "smooth_L1(x) = 0.5 * x**2 / beta where |x| < beta, else |x| - 0.5 * beta; sum it over the "
        "positive RoIs' 4 coordinates and divide by the number of RoIs R (all of them)."
    )
    deltas, targets = torch.randn(16, 4, generator=g), torch.randn(16, 4, generator=g)
    labels = t([1, 0, 2, 0, 0, 3, 1, 0, 0, 0, 2, 0, 0, 1, 0, 0])
    cases = [
        Case(
            "small differences (|x| < beta = 1): the quadratic part 0.5 x^2 / beta",
            (t([[0.2, -0.4, 0.0, 0.6]]), t([[0.0, 0.0, 0.0, 0.0]]), t([1]), 1.0),
            hint="Below beta the loss is 0.5 * x**2 / beta: do not forget the 0.5.",
        ),
        Case(
            "large differences (|x| >= beta = 1): the linear part |x| - 0.5 beta",
            (t([[3.0, -2.0, 1.5, 0.0]]), t([[0.0, 0.0, 0.0, 0.0]]), t([2]), 1.0),
            hint="Above beta the loss grows like |x| - 0.5 * beta (not x**2): that is what makes "
            "it robust.",
        ),
        Case(
            "beta = 1/9 (torchvision's Faster R-CNN): the switch moves to 1/9",
            (t([[0.05, -0.3, 0.1, 0.9]]), t([[0.0, 0.0, 0.0, 0.0]]), t([1]), 1.0 / 9),
            hint="Use the beta argument both in the test |x| < beta and in 0.5 * x**2 / beta and "
            "|x| - 0.5 * beta.",
        ),
        Case(
            "beta = 2: quadratic up to 2",
            (t([[1.5, -0.5, 2.5, -3.0]]), t([[0.0, 0.0, 0.0, 0.0]]), t([3]), 2.0),
            hint="Use the beta argument, not a hard-coded 1. " + formula,
        ),
        Case(
            "background RoIs (label 0) add nothing, but count in R",
            (
                t([[1.0, 1.0, 1.0, 1.0], [5.0, 5.0, 5.0, 5.0]]),
                t([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]),
                t([1, 0]),
                1.0,
            ),
            hint="Only RoIs with labels > 0 have a box to regress ([u >= 1] in the paper); divide "
            "by all R RoIs.",
        ),
        Case(
            "16 random RoIs, 5 of them positive, beta = 1",
            (deltas, targets, labels, 1.0),
            hint=formula,
        ),
        Case("the same RoIs with beta = 0.5", (deltas, targets, labels, 0.5), hint=formula),
        Case(
            "only background RoIs: the loss is 0",
            (deltas[:4], targets[:4], torch.zeros(4, dtype=torch.int64), 1.0),
            hint="No positive RoI: the sum over an empty set is 0 (not nan: do not divide by the "
            "number of "
            "positives).",
        ),
        Case(
            "no RoIs at all: the loss is 0",
            (torch.zeros(0, 4), torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), 1.0),
            hint="R = 0: return 0 (divide by max(R, 1)), not nan.",
        ),
        Case(
            "float64 inputs: a float64 loss",
            (deltas.double(), targets.double(), labels, 1.0),
            hint="Let the inputs decide the dtype: no .float(), no torch.tensor(0.0) with the "
            "default dtype.",
        ),
    ]
    return with_device_copies(cases)


def _compare_loss(got: Any, expected: torch.Tensor, case: Case) -> str | None:
    """A loss must be a 0-dim tensor (so that .backward() works) close to the reference."""
    problem = not_a_tensor_problem(got)
    if problem:
        if isinstance(got, float):
            problem += " A Python float has no gradient: keep the loss a tensor (no .item())."
        return problem
    if got.dim() != 0:
        return (
            f"returned shape {tuple(got.shape)}; a loss is a single number, a 0-dim tensor (shape "
            "()): "
            "sum everything, then divide."
        )
    return compare_tensors(got, expected, case)


@assignment_check(
    reference=torchvision_smooth_l1_box_loss, cases=smooth_l1_box_loss_cases, compare=_compare_loss
)
def check_smooth_l1_box_loss(
    smooth_l1_box_loss: Callable[..., torch.Tensor], *, quiet: bool = False
) -> None:
    """Check ``smooth_l1_box_loss(deltas, targets, labels, beta) -> loss``.

    deltas, targets (R, 4) float; labels (R,) int64 (0 = background). loss: a 0-dim tensor, the sum
    over the positive RoIs (labels > 0) and their 4 coordinates of smooth_L1(deltas - targets) (0.5
    x^2 / beta if |x| < beta else |x| - 0.5 beta), divided by R (0 when R = 0).
    """


CHECKS = (check_roi_pool, check_smooth_l1_box_loss)
