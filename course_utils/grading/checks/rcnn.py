"""Checks for the R-CNN and Fast R-CNN assignments (notebooks 03 and 04).

* ``label_proposals(proposals, gt_boxes, gt_labels, fg_threshold, bg_threshold) -> (labels, matched_gt)``:
  label every proposal by its best-overlapping ground-truth box (torchvision's ``Matcher``);
* ``encode_boxes(proposals, gt_boxes) -> deltas`` and ``decode_boxes(proposals, deltas) -> boxes``: R-CNN's
  box regression targets (torchvision's ``BoxCoder`` with weights (1, 1, 1, 1));
* ``roi_pool(features, rois, output_size, spatial_scale) -> pooled``: Fast R-CNN's quantized RoI max pooling
  (``torchvision.ops.roi_pool``);
* ``smooth_l1_box_loss(deltas, targets, labels, beta) -> loss``: the box term of Fast R-CNN's multi-task loss
  (``F.smooth_l1_loss`` on the positive RoIs, divided by the number of RoIs).

Usage in a notebook::

    check_encode_boxes(encode_boxes)    # graded cell: raises on a wrong answer, prints one line on success
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torchvision.models.detection._utils import BoxCoder, Matcher

from course_utils.grading.assignments import (
    Case,
    assignment_check,
    compare_tensors,
    not_a_tensor_problem,
    run_cases,
    with_device_copies,
)

__all__ = [
    "CHECKS",
    "check_decode_boxes",
    "check_encode_boxes",
    "check_label_proposals",
    "check_roi_pool",
    "check_smooth_l1_box_loss",
    "decode_boxes_cases",
    "encode_boxes_cases",
    "label_proposals_cases",
    "roi_pool_cases",
    "smooth_l1_box_loss_cases",
    "torchvision_decode_boxes",
    "torchvision_encode_boxes",
    "torchvision_label_proposals",
    "torchvision_roi_pool",
    "torchvision_smooth_l1_box_loss",
]

_SEED = 303


# ----------------------------------------------------------------------------------------------------------
# The references (torchvision underneath, with the assignments' argument names and order)
# ----------------------------------------------------------------------------------------------------------


def torchvision_label_proposals(
    proposals: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    fg_threshold: float = 0.5,
    bg_threshold: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference ``label_proposals`` with ``torchvision.ops.box_iou`` and torchvision's ``Matcher``.

    labels (P,) int64: the best ground truth's label if its IoU >= fg_threshold, 0 if the best IoU lies in
    [bg_threshold, fg_threshold), -1 below bg_threshold. matched_gt (P,) int64: index of the best ground truth
    (the first among ties), -1 without ground truth (the best IoU then counts as 0).
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


def torchvision_encode_boxes(proposals: torch.Tensor, gt_boxes: torch.Tensor) -> torch.Tensor:
    """Reference ``encode_boxes``: ``BoxCoder(weights=(1, 1, 1, 1)).encode_single(gt_boxes, proposals)``."""
    return BoxCoder(weights=(1.0, 1.0, 1.0, 1.0)).encode_single(gt_boxes, proposals)


def torchvision_decode_boxes(proposals: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """Reference ``decode_boxes``: ``BoxCoder(weights=(1, 1, 1, 1)).decode_single(deltas, proposals)``."""
    return BoxCoder(weights=(1.0, 1.0, 1.0, 1.0)).decode_single(deltas, proposals)


def torchvision_roi_pool(
    features: torch.Tensor, rois: torch.Tensor, output_size: tuple[int, int], spatial_scale: float
) -> torch.Tensor:
    """Reference ``roi_pool``: ``torchvision.ops.roi_pool(features, rois, output_size, spatial_scale)``."""
    return torchvision.ops.roi_pool(features, rois, output_size, spatial_scale)


def torchvision_smooth_l1_box_loss(
    deltas: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor, beta: float
) -> torch.Tensor:
    """Reference ``smooth_l1_box_loss``: ``F.smooth_l1_loss`` (sum) over the positive RoIs, divided by R."""
    positive = labels > 0
    return F.smooth_l1_loss(deltas[positive], targets[positive], beta=beta, reduction="sum") / max(
        len(labels), 1
    )


# ----------------------------------------------------------------------------------------------------------
# label_proposals
# ----------------------------------------------------------------------------------------------------------


@assignment_check("label_proposals", reference=torchvision_label_proposals)
def check_label_proposals(
    label_proposals: Callable[..., tuple[torch.Tensor, torch.Tensor]], *, quiet: bool = False
) -> None:
    """Check ``label_proposals(proposals, gt_boxes, gt_labels, fg_threshold, bg_threshold) -> (labels, matched_gt)``.

    proposals (P, 4), gt_boxes (G, 4) float xyxy; gt_labels (G,) int64 in 1..K. Returns two int64 (P,)
    tensors: labels (ground truth's label when the best IoU >= fg_threshold, 0 when it lies in
    [bg_threshold, fg_threshold), -1 below) and matched_gt (index of the best ground truth, the lowest one
    among ties; -1 for every proposal when G = 0).
    """
    run_cases(
        label_proposals,
        label_proposals_cases(),
        name="label_proposals",
        reference=torchvision_label_proposals,
        compare=_compare_pair(("labels", "matched_gt")),
        quiet=quiet,
    )


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
            hint="labels[i] = gt_labels[matched_gt[i]] for a foreground proposal: not matched_gt[i] + 1, "
            "not matched_gt[i].",
        ),
        Case(
            "IoU exactly fg_threshold = 0.5: foreground",
            (t([[0.0, 0.0, 10.0, 20.0]]), gt, gt_labels, 0.5, 0.1),
            hint="Foreground means IoU >= fg_threshold (greater or equal), as the paper and torchvision do.",
        ),
        Case(
            "IoU exactly bg_threshold = 0.25: background, not ignored",
            (t([[0.0, 0.0, 10.0, 40.0]]), gt, gt_labels, 0.5, 0.25),
            hint="Background means bg_threshold <= IoU < fg_threshold; only IoU < bg_threshold is ignored (-1).",
        ),
        Case(
            "a proposal that overlaps the second ground-truth box most",
            (t([[18.0, 18.0, 29.0, 29.0], [45.0, 2.0, 60.0, 20.0]]), gt, gt_labels, 0.5, 0.0),
            hint="Take the maximum over the ground-truth boxes (one per proposal): iou has shape (P, G); "
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
            hint="torch.argmax and .max(dim=...) return the first maximum; do not reverse or re-sort the boxes. "
            "(A proposal overlapping nothing ties at IoU 0 with every box: matched_gt = 0.)",
        ),
        Case(
            "bg_threshold 0: nothing is ignored, every non-foreground proposal is background",
            (t([[57.0, 17.0, 67.0, 27.0], [2.0, 2.0, 9.0, 9.0]]), gt, gt_labels, 0.5, 0.0),
            hint="With bg_threshold = 0 even an IoU near 0 is background (IoU >= 0), never ignored.",
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
            hint="With G = 0 there is no maximum to take (max of an empty dimension fails): the best IoU is 0, "
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
            hint="labels and matched_gt are indices/classes: torch.int64 whatever the boxes' dtype.",
        ),
    ]
    return with_device_copies(cases)


def _random_labelling_inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """40 proposals jittered around 5 ground-truth boxes, no IoU within 1e-3 of 0.1, 0.3, 0.5 or 0.7."""
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


def _compare_pair(names: tuple[str, str]) -> Callable[[Any, Any, Case], str | None]:
    """A comparator for functions returning a tuple of two tensors (names say which is which)."""

    def compare(got: Any, expected: Any, case: Case) -> str | None:
        if got is None:
            return "returned None: did you forget the `return` statement?"
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            if isinstance(got, torch.Tensor):
                return (
                    f"returned one tensor (shape {tuple(got.shape)}); return a pair ({names[0]}, {names[1]}): "
                    f"return {names[0]}, {names[1]}"
                )
            return f"returned a {type(got).__name__}; expected a pair of tensors ({names[0]}, {names[1]})"
        for name, got_part, expected_part in zip(names, got, expected):
            problem = compare_tensors(got_part, expected_part, case)
            if problem:
                return f"{name}: {problem}"
        return None

    return compare


# ----------------------------------------------------------------------------------------------------------
# encode_boxes / decode_boxes
# ----------------------------------------------------------------------------------------------------------


@assignment_check("encode_boxes", reference=torchvision_encode_boxes)
def check_encode_boxes(
    encode_boxes: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, quiet: bool = False
) -> None:
    """Check ``encode_boxes(proposals, gt_boxes) -> deltas`` against torchvision's BoxCoder (weights 1, 1, 1, 1).

    proposals, gt_boxes: (N, 4) float xyxy (positive sizes); deltas (N, 4) = (tx, ty, tw, th) with
    tx = (Gx - Px) / Pw, ty = (Gy - Py) / Ph, tw = log(Gw / Pw), th = log(Gh / Ph) (centres and sizes,
    w = x2 - x1), the proposals' dtype and device.
    """
    run_cases(
        encode_boxes,
        encode_boxes_cases(),
        name="encode_boxes",
        reference=torchvision_encode_boxes,
        quiet=quiet,
    )


def encode_boxes_cases() -> list[Case]:
    """The cases of :func:`check_encode_boxes` (on every available device)."""
    t = torch.tensor
    g = torch.Generator().manual_seed(_SEED + 1)
    formula = "tx = (Gx - Px) / Pw, ty = (Gy - Py) / Ph, tw = log(Gw / Pw), th = log(Gh / Ph)."
    cases = [
        Case(
            "identical boxes: all four targets are 0",
            (t([[10.0, 20.0, 30.0, 60.0]]), t([[10.0, 20.0, 30.0, 60.0]])),
            hint="A box that needs no correction has targets (0, 0, 0, 0): shifts divided by sizes, log(1) = 0.",
        ),
        Case(
            "the ground truth is shifted right by half the proposal's width: tx = 0.5",
            (t([[10.0, 20.0, 30.0, 60.0]]), t([[20.0, 20.0, 40.0, 60.0]])),
            hint="tx is the shift of the centre x divided by the PROPOSAL's width Pw (not the ground truth's).",
        ),
        Case(
            "the ground truth is shifted down: only ty changes",
            (t([[10.0, 20.0, 30.0, 60.0]]), t([[10.0, 30.0, 30.0, 70.0]])),
            hint="Columns are x1, y1, x2, y2: the y shift goes in the second target, divided by the height Ph.",
        ),
        Case(
            "the ground truth is twice as wide around the same centre: tw = log 2",
            (t([[10.0, 20.0, 30.0, 60.0]]), t([[0.0, 20.0, 40.0, 60.0]])),
            hint="tw = log(Gw / Pw): a logarithm of the ratio of widths, ground truth over proposal.",
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
        Case("20 random pairs", (_random_boxes(20, g), _random_boxes(20, g)), hint=formula),
        Case(
            "one pair (a batch of one): shape (1, 4)",
            (t([[3.0, 4.0, 9.0, 8.0]]), t([[2.0, 5.0, 10.0, 9.0]])),
            hint="Keep the (N, 4) shape for N = 1: stack the four targets along dim=1.",
        ),
        Case(
            "no boxes: shape (0, 4)",
            (torch.zeros(0, 4), torch.zeros(0, 4)),
            hint="Column operations and torch.stack(..., dim=1) work for N = 0; return shape (0, 4).",
        ),
        Case(
            "float64 boxes: float64 targets",
            (_random_boxes(5, g, torch.float64), _random_boxes(5, g, torch.float64)),
            hint="Let the inputs decide the dtype: no .float().",
        ),
    ]
    return with_device_copies(cases)


@assignment_check("decode_boxes", reference=torchvision_decode_boxes)
def check_decode_boxes(
    decode_boxes: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, quiet: bool = False
) -> None:
    """Check ``decode_boxes(proposals, deltas) -> boxes`` against torchvision's BoxCoder (weights 1, 1, 1, 1).

    proposals (N, 4) float xyxy, deltas (N, 4) = (tx, ty, tw, th); boxes (N, 4) xyxy with centre
    (Px + Pw tx, Py + Ph ty) and size (Pw exp(tw), Ph exp(th)), the deltas' dtype and device.
    """
    run_cases(
        decode_boxes,
        decode_boxes_cases(),
        name="decode_boxes",
        reference=torchvision_decode_boxes,
        quiet=quiet,
    )


def decode_boxes_cases() -> list[Case]:
    """The cases of :func:`check_decode_boxes` (on every available device); |tw|, |th| < 2 (no clipping)."""
    t = torch.tensor
    g = torch.Generator().manual_seed(_SEED + 2)
    formula = (
        "Centre x = Px + Pw * tx, centre y = Py + Ph * ty, width = Pw * exp(tw), height = Ph * exp(th); "
        "then corners x1 = cx - w / 2, x2 = cx + w / 2 (same for y)."
    )
    proposals, gt = _random_boxes(20, g), _random_boxes(20, g)
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
            hint="Sizes are predicted in log space: width = Pw * exp(tw), around the centre (not the corner).",
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
            (_random_boxes(20, g), (torch.rand(20, 4, generator=g) - 0.5) * 2),
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
            hint="Column operations and torch.stack(..., dim=1) work for N = 0; return shape (0, 4).",
        ),
        Case(
            "float64 deltas: float64 boxes",
            (
                _random_boxes(4, g, torch.float64),
                torch.rand(4, 4, generator=g, dtype=torch.float64) - 0.5,
            ),
            hint="Let the inputs decide the dtype: no .float().",
        ),
    ]
    return with_device_copies(cases)


def _random_boxes(n: int, g: torch.Generator, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``n`` boxes (n, 4) xyxy with fractional corners in a 150-pixel image, sides 2..50 pixels."""
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 100
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * 48 + 2
    return torch.cat([xy, xy + wh], dim=1).to(dtype)


# ----------------------------------------------------------------------------------------------------------
# roi_pool
# ----------------------------------------------------------------------------------------------------------


@assignment_check("roi_pool", reference=torchvision_roi_pool)
def check_roi_pool(roi_pool: Callable[..., torch.Tensor], *, quiet: bool = False) -> None:
    """Check ``roi_pool(features, rois, output_size, spatial_scale) -> pooled`` against torchvision.ops.roi_pool.

    features (N, C, H, W) float; rois (K, 5) float rows [batch_index, x1, y1, x2, y2] in image pixels;
    output_size (h, w) ints; spatial_scale float (feature map / image). pooled (K, C, h, w): quantized max
    pooling as in torchvision (RoI corners rounded half away from zero after scaling, end inclusive, bin
    b covers floor(b * size / n) .. ceil((b + 1) * size / n), clipped to the map; empty bins are 0).
    """
    run_cases(
        roi_pool, roi_pool_cases(), name="roi_pool", reference=torchvision_roi_pool, quiet=quiet
    )


def roi_pool_cases() -> list[Case]:
    """The cases of :func:`check_roi_pool` (on every available device)."""
    t = torch.tensor
    g = torch.Generator().manual_seed(_SEED + 3)
    ramp = torch.arange(64, dtype=torch.float32).reshape(1, 1, 8, 8)  # value = 8 * row + column
    two_images = torch.randn(2, 3, 6, 7, generator=g)
    quantize = (
        "Scale the corners, then round them (round half away from zero, like C's round: "
        "floor(v + 0.5) for v >= 0); the RoI spans x1..x2 INCLUSIVE: width = x2 - x1 + 1 (at least 1)."
    )
    bins = (
        "Bin j of n over a RoI of width w starting at x1 covers columns x1 + floor(j * w / n) up to "
        "x1 + ceil((j + 1) * w / n) (exclusive): neighbouring bins may overlap by one cell."
    )
    cases = [
        Case(
            "the whole 8x8 map into a 2x2 grid: the maximum of each quadrant",
            (ramp, t([[0.0, 0.0, 0.0, 7.0, 7.0]]), (2, 2), 1.0),
            hint="Split the RoI into output_size bins and take the maximum of each; corners are inclusive, so "
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
            "spatial_scale 0.25 with corners landing on .5 after scaling: round half away from zero",
            (ramp, t([[0.0, 2.0, 6.0, 18.0, 22.0], [0.0, 10.0, 2.0, 26.0, 14.0]]), (2, 2), 0.25),
            hint="2 * 0.25 = 0.5 must round to 1 (C's round, as torchvision), while torch.round rounds half to "
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
            hint="rois[k, 0] says which image of the batch the RoI is on: pool features[int(rois[k, 0])].",
        ),
        Case(
            "negative features: the maximum can be negative",
            (-ramp - 1.0, t([[0.0, 0.0, 0.0, 7.0, 7.0], [0.0, 3.0, 3.0, 4.0, 4.0]]), (2, 2), 1.0),
            hint="Start the maximum at -inf (or use .amax), not at 0: all these features are negative.",
        ),
        Case(
            "a 1x1 RoI pooled to 3x3: every bin sees the same cell",
            (ramp, t([[0.0, 5.0, 2.0, 5.0, 2.0]]), (3, 3), 1.0),
            hint="A RoI at least 1 cell wide: width = max(x2 - x1 + 1, 1); bins smaller than a cell still cover "
            "one cell each (floor start, ceil end).",
        ),
        Case(
            "a RoI hanging over the edge of the map: clipped to the map",
            (ramp, t([[0.0, 5.0, -3.0, 11.0, 4.0]]), (2, 2), 1.0),
            hint="Clip every bin's start and end to [0, W] and [0, H] after adding the RoI's corner.",
        ),
        Case(
            "a RoI entirely outside the map: every bin is empty and pools to 0",
            (ramp, t([[0.0, 9.0, 9.0, 12.0, 12.0]]), (2, 2), 1.0),
            hint="An empty bin (end <= start after clipping) outputs 0, not -inf and not a neighbour's value.",
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
            hint="K = 0 must return an empty (0, C, h, w) tensor: torch.stack of an empty list fails; create the "
            "output with features.new_zeros((K, C, h, w)) first.",
        ),
        Case(
            "float64 features: float64 output",
            (two_images.double(), t([[0.0, 0.0, 0.0, 5.0, 4.0]], dtype=torch.float64), (2, 2), 1.0),
            hint="Create the output with the features' dtype (features.new_zeros(...)).",
        ),
    ]
    return with_device_copies(cases)


def _random_rois(
    k: int, num_images: int, width: float, height: float, g: torch.Generator
) -> torch.Tensor:
    """``k`` RoIs (k, 5) [batch_index, x1, y1, x2, y2] with fractional corners, some past the map's edge."""
    index = torch.randint(0, num_images, (k, 1), generator=g).float()
    xy = torch.rand(k, 2, generator=g) * torch.tensor([width, height]) - 2
    wh = torch.rand(k, 2, generator=g) * torch.tensor([width, height]) * 0.7
    return torch.cat([index, xy, xy + wh], dim=1)


# ----------------------------------------------------------------------------------------------------------
# smooth_l1_box_loss
# ----------------------------------------------------------------------------------------------------------


@assignment_check("smooth_l1_box_loss", reference=torchvision_smooth_l1_box_loss)
def check_smooth_l1_box_loss(
    smooth_l1_box_loss: Callable[..., torch.Tensor], *, quiet: bool = False
) -> None:
    """Check ``smooth_l1_box_loss(deltas, targets, labels, beta) -> loss`` against F.smooth_l1_loss.

    deltas, targets (R, 4) float; labels (R,) int64 (0 = background). loss: a 0-dim tensor, the sum over the
    positive RoIs (labels > 0) and their 4 coordinates of smooth_L1(deltas - targets) (0.5 x^2 / beta if
    |x| < beta else |x| - 0.5 beta), divided by R (0 when R = 0).
    """
    run_cases(
        smooth_l1_box_loss,
        smooth_l1_box_loss_cases(),
        name="smooth_l1_box_loss",
        reference=torchvision_smooth_l1_box_loss,
        compare=_compare_loss,
        quiet=quiet,
    )


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
            hint="Above beta the loss grows like |x| - 0.5 * beta (not x**2): that is what makes it robust.",
        ),
        Case(
            "beta = 1/9 (torchvision's Faster R-CNN): the switch moves to 1/9",
            (t([[0.05, -0.3, 0.1, 0.9]]), t([[0.0, 0.0, 0.0, 0.0]]), t([1]), 1.0 / 9),
            hint="Use the beta argument both in the test |x| < beta and in 0.5 * x**2 / beta and |x| - 0.5 * beta.",
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
            hint="Only RoIs with labels > 0 have a box to regress ([u >= 1] in the paper); divide by all R RoIs.",
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
            hint="No positive RoI: the sum over an empty set is 0 (not nan: do not divide by the number of "
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
            hint="Let the inputs decide the dtype: no .float(), no torch.tensor(0.0) with the default dtype.",
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
            f"returned shape {tuple(got.shape)}; a loss is a single number, a 0-dim tensor (shape ()): "
            "sum everything, then divide."
        )
    return compare_tensors(got, expected, case)


CHECKS = (
    check_label_proposals,
    check_encode_boxes,
    check_decode_boxes,
    check_roi_pool,
    check_smooth_l1_box_loss,
)
