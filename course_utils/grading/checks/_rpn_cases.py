"""The cases of the region proposal network's checks (``checks.rpn``; private: not a topic module).

Every case is deterministic (fixed seeds) and small; the boxes whose IoUs sit exactly on a
threshold are built so that the IoU is exactly representable (0.5, 0.25).
"""

from __future__ import annotations

import torch

from course_utils.detection.anchors import anchor_boxes
from course_utils.grading.runner import Case, with_device_copies

__all__ = [
    "anchor_boxes_cases",
    "match_anchors_cases",
    "rpn_head_cases",
    "rpn_proposals_cases",
]

_SEED = 505

_TEMPLATE = (
    "A template of size s and ratio r (height / width) has width s / sqrt(r) and height "
    "s * sqrt(r) (area s², as the paper: the size is kept in area); its corners are "
    "(-w/2, -h/2, w/2, h/2) with the half-sides rounded (.round()), as torchvision."
)
_ORDER = (
    "Row (i * w + j) * k + t is template t at cell (i, j): cells row by row (i is the row, y), "
    "then the k templates of the cell; template t = r * len(sizes) + s (ratio-major, sizes "
    "inner), like torchvision's AnchorGenerator."
)
_CENTRE = (
    "Cell (i, j) (row i, column j) puts its anchors' centre at pixel (x, y) = (j * stride, "
    "i * stride): the cell's top-left corner, torchvision's convention (not the cell's centre)."
)


def anchor_boxes_cases() -> list[Case]:
    """The cases of ``check_anchor_boxes`` (CPU only: the function takes no tensor)."""
    return [
        Case(
            "a 2x3 map (h = 2 rows, w = 3 columns), stride 16, one square anchor of size 32",
            ((2, 3), 16, (32.0,), (1.0,)),
            hint=_CENTRE + " x goes along the w columns, y along the h rows.",
        ),
        Case(
            "one size (32) and one tall ratio (2: height = 2 x width) on a 2x3 map",
            ((2, 3), 16, (32.0,), (2.0,)),
            hint="The aspect ratio is height / width, not width / height. " + _TEMPLATE,
        ),
        Case(
            "one size (10) and a wide ratio (0.5): the half-sides 7.07 and 3.54 are rounded",
            ((1, 2), 8, (10.0,), (0.5,)),
            hint="Round the half-sides of the templates (torchvision rounds (-w/2, -h/2, w/2, "
            "h/2) with .round()), then add the centres. " + _TEMPLATE,
        ),
        Case(
            "two sizes (16, 32) and three ratios (0.5, 1, 2): k = 6 templates per cell",
            ((2, 3), 8, (16.0, 32.0), (0.5, 1.0, 2.0)),
            hint=_ORDER,
        ),
        Case(
            "three sizes and one ratio on a tall 4x2 map, stride 4",
            ((4, 2), 4, (8.0, 12.0, 20.0), (1.0,)),
            hint=_ORDER + " " + _CENTRE,
        ),
        Case(
            "stride 1: the centres are the cells' indices",
            ((3, 4), 1, (6.0,), (0.5, 2.0)),
            hint=_CENTRE,
        ),
        Case(
            "a single cell (1x1 map): only the k templates, centred at (0, 0)",
            ((1, 1), 32, (64.0, 128.0), (0.5, 1.0, 2.0)),
            hint=_TEMPLATE + " Return a flat (h * w * k, 4) tensor.",
        ),
        Case(
            "the paper's 3 sizes x 3 ratios on a 3x2 map, stride 16",
            ((3, 2), 16, (32.0, 64.0, 128.0), (0.5, 1.0, 2.0)),
            hint=_ORDER + " " + _TEMPLATE,
        ),
    ]


# ----------------------------------------------------------------------------------------------
# match_anchors
# ----------------------------------------------------------------------------------------------

_CODES = (
    "Each anchor gets the index of its best ground-truth box when its best IoU >= high, -1 "
    "(background) when it is < low, -2 (ignored) in between."
)
_LOW_QUALITY = (
    "Then, for every ground-truth box, ALL the anchors whose IoU with it equals its highest IoU "
    "(ties included) become positive even below high; each gets the index of ITS OWN best "
    "ground-truth box (the argmax you took before applying the thresholds)."
)


def _match_case(
    name: str,
    anchors: list[list[float]],
    gt_boxes: list[list[float]] | torch.Tensor,
    hint: str,
    high: float = 0.7,
    low: float = 0.3,
) -> Case:
    gt = gt_boxes if isinstance(gt_boxes, torch.Tensor) else torch.tensor(gt_boxes)
    return Case(name, (torch.tensor(anchors), gt, high, low), hint=hint)


def _random_gt_boxes(n: int, g: torch.Generator, size: tuple[float, float]) -> torch.Tensor:
    """``n`` float32 boxes (n, 4) xyxy, fractional corners, sides 6..20 pixels, in a (H, W)
    image."""
    height, width = size
    wh = 6 + torch.rand(n, 2, generator=g, dtype=torch.float64) * 14
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * (torch.tensor([width, height]) - wh)
    return torch.cat([xy, xy + wh], dim=1).float()


def match_anchors_cases() -> list[Case]:
    """The cases of ``check_match_anchors`` (on every available device)."""
    g = torch.Generator().manual_seed(_SEED + 2)
    grid = anchor_boxes((3, 4), 8, (12.0,), (0.5, 1.0, 2.0))  # 36 anchors, a 24 x 32 image
    square = [[0.0, 0.0, 10.0, 10.0]]
    cases = [
        _match_case(
            "no ground-truth boxes (G = 0): every anchor is background (-1)",
            grid[:8].tolist(),
            torch.zeros(0, 4),
            "With G = 0 there is no IoU to take a maximum of: return torch.full((A,), -1, "
            "dtype=torch.int64, device=anchors.device) first (not 0, which would mean 'matches "
            "box 0').",
        ),
        _match_case(
            "one ground-truth box equal to anchor 0: IoU 1, anchor 3 in between, others far",
            [*square, [20.0, 0.0, 30.0, 10.0], [0.0, 20.0, 10.0, 30.0], [5.0, 0.0, 15.0, 10.0]],
            square,
            "Return the INDEX of the matched ground-truth box (0 here), -1 or -2; not labels "
            "1 / 0 / -1. " + _CODES,
        ),
        _match_case(
            "a tiny 4x4 object: its best anchor's IoU is 0.0625 < low, yet it is positive",
            [[0.0, 0.0, 16.0, 16.0], [16.0, 0.0, 32.0, 16.0], [0.0, 16.0, 16.0, 32.0]],
            [[2.0, 2.0, 6.0, 6.0]],
            "The low-quality rule (the paper's rule (i)) makes each ground-truth box's best "
            "anchor positive even when its IoU is below low: apply it AFTER the thresholds, or "
            "the thresholds overwrite it. " + _LOW_QUALITY,
        ),
        _match_case(
            "two anchors tie for a ground-truth box's best IoU (1/3): both are positive",
            [[0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 20.0, 10.0], [0.0, 10.0, 10.0, 20.0]],
            [[5.0, 0.0, 15.0, 10.0]],
            "Every anchor whose IoU EQUALS the box's highest IoU counts, not just one argmax: "
            "compare iou == iou.max(dim=1, keepdim=True).values. " + _LOW_QUALITY,
        ),
        _match_case(
            "an IoU exactly equal to high (0.5 here) is positive: >= high",
            [*square, [0.0, 0.0, 10.0, 20.0], [40.0, 40.0, 50.0, 50.0]],
            square,
            "Positive means best IoU >= high (torchvision: values below high are not "
            "positive), so an IoU equal to high is positive. " + _CODES,
            high=0.5,
            low=0.25,
        ),
        _match_case(
            "an IoU exactly equal to low (0.25 here) is ignored (-2), not background",
            [*square, [0.0, 0.0, 10.0, 40.0], [40.0, 40.0, 50.0, 50.0]],
            square,
            "Background means best IoU < low (strictly), so an IoU equal to low is ignored (-2). "
            + _CODES,
            high=0.5,
            low=0.25,
        ),
        _match_case(
            "anchor 1 is box 0's best anchor but overlaps box 1 more: it matches box 1",
            [*square, [5.0, 0.0, 15.0, 10.0], [30.0, 30.0, 40.0, 40.0]],
            [[12.0, 0.0, 22.0, 10.0], *square],
            "A low-quality match takes the anchor's OWN best ground-truth box (IoU 1/3 with box "
            "1), not the box it was the best anchor for (IoU 0.18 with box 0), as torchvision's "
            "Matcher. " + _LOW_QUALITY,
        ),
        _match_case(
            "one anchor and two ground-truth boxes: it takes the one it overlaps most",
            square,
            [[0.0, 0.0, 10.0, 6.0], [0.0, 0.0, 10.0, 9.0]],
            "Take, for every anchor, the maximum over the ground-truth boxes (dim 0 of the "
            "(G, A) IoU matrix) and its argmax. " + _CODES,
        ),
        _match_case(
            "36 anchors of a 3x4 grid and 3 random ground-truth boxes (high 0.7, low 0.3)",
            grid.tolist(),
            _random_gt_boxes(3, g, (24.0, 32.0)),
            _CODES + " " + _LOW_QUALITY,
        ),
        _match_case(
            "the same kind of grid with thresholds high 0.6 and low 0.4",
            grid.tolist(),
            _random_gt_boxes(4, g, (24.0, 32.0)),
            "Use the high and low arguments, not the paper's 0.7 and 0.3. " + _CODES,
            high=0.6,
            low=0.4,
        ),
    ]
    anchors, gt = grid[::3].double(), _random_gt_boxes(2, g, (24.0, 32.0)).double()
    cases.append(
        Case(
            "float64 boxes: still int64 indices",
            (anchors, gt, 0.7, 0.3),
            hint="The result holds indices: int64 whatever the boxes' dtype (torch.full(..., "
            "dtype=torch.int64), or the argmax's indices).",
        )
    )
    return with_device_copies(cases)


# ----------------------------------------------------------------------------------------------
# RPNHead and rpn_proposals
# ----------------------------------------------------------------------------------------------


def rpn_head_cases() -> list[Case]:
    """The cases of ``check_RPNHead``: ``(in_channels, num_anchors)`` (CPU only)."""
    layers = (
        "conv = nn.Conv2d(C, C, 3, padding=1), cls_logits = nn.Conv2d(C, k, 1), bbox_pred = "
        "nn.Conv2d(C, 4 * k, 1); forward: h = relu(conv(x)), return (cls_logits(h), "
        "bbox_pred(h))."
    )
    return [
        Case("8 channels, 3 anchors per cell", (8, 3), hint=layers),
        Case(
            "4 channels, 1 anchor per cell (k = 1)",
            (4, 1),
            hint="k = num_anchors objectness channels (one sigmoid logit per anchor) and 4k box "
            "channels. " + layers,
        ),
        Case("6 channels, the paper's 9 anchors per cell", (6, 9), hint=layers),
    ]


_PIPELINE = (
    "1. keep the pre_nms_top_n anchors of highest objectness; 2. decode their deltas as R-CNN "
    "(x = px + pw * dx, w = pw * exp(dw); weights 1, 1, 1, 1, not Fast R-CNN's 10, 10, 5, 5); "
    "3. clip to the image (x to [0, W], y to [0, H]); 4. drop boxes narrower or shorter than "
    "min_size; 5. NMS at nms_threshold on sigmoid(objectness); 6. keep the "
    "post_nms_top_n best."
)


def _proposal_inputs(
    feature_size: tuple[int, int], stride: int, seed: int, delta_std: float = 0.3
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, int]]:
    """Anchors (A, 4) of a small grid (sizes 16, 32; ratios 0.5, 1, 2), objectness logits (A,)
    without ties, deltas (A, 4) ~ N(0, delta_std) and the image size (H, W) = map x stride."""
    g = torch.Generator().manual_seed(seed)
    anchors = anchor_boxes(feature_size, stride, (16.0, 32.0), (0.5, 1.0, 2.0))
    objectness = torch.randn(len(anchors), generator=g) * 2
    deltas = torch.randn(len(anchors), 4, generator=g) * delta_std
    size = (feature_size[0] * stride, feature_size[1] * stride)
    return anchors, objectness, deltas, size


def rpn_proposals_cases() -> list[Case]:
    """The cases of ``check_rpn_proposals`` (on every available device): all 8 arguments
    positional, ``(anchors, objectness, deltas, image_size, pre_nms_top_n, post_nms_top_n,
    nms_threshold, min_size)``."""
    # The seeds put every IoU at least 0.001 away from the cases' NMS thresholds (tests check).
    wide = _proposal_inputs((3, 5), 8, 1093)  # 90 anchors, a 24 x 40 image
    tall = _proposal_inputs((4, 3), 8, 516)  # 72 anchors, a 32 x 24 image
    anchors, objectness, _, size = wide
    zero = torch.zeros_like(anchors)
    cases = [
        Case(
            "90 anchors of a 3x5 map on a 24x40 image: clip, NMS 0.7, nothing truncated",
            (*wide, 1000, 1000, 0.7, 1e-3),
            hint="Clip AFTER decoding and BEFORE NMS: image_size is (H, W), so x is clipped to "
            "[0, W] and y to [0, H]. " + _PIPELINE,
        ),
        Case(
            "zero deltas: the proposals are the clipped anchors themselves",
            (anchors, objectness, zero, size, 1000, 1000, 0.7, 1e-3),
            hint="Deltas of 0 leave an anchor unchanged: centre + 0 * size, size * exp(0). "
            "Scores are sigmoid(objectness), highest first.",
        ),
        Case(
            "pre_nms_top_n = 12: only the 12 best-scoring anchors go on to NMS",
            (*wide, 12, 1000, 0.7, 1e-3),
            hint="Take the pre_nms_top_n anchors of highest objectness FIRST (objectness.topk), "
            "before decoding and NMS. " + _PIPELINE,
        ),
        Case(
            "post_nms_top_n = 6: only the 6 best proposals after NMS are returned",
            (*wide, 1000, 6, 0.7, 1e-3),
            hint="Truncate to post_nms_top_n AFTER NMS (nms returns indices sorted by "
            "decreasing score). " + _PIPELINE,
        ),
        Case(
            "nms_threshold 0.4: a stricter NMS keeps fewer boxes",
            (*wide, 1000, 1000, 0.4, 1e-3),
            hint="Pass nms_threshold to nms (torchvision.ops.nms(boxes, scores, nms_threshold)); "
            "do not hard-code 0.7.",
        ),
        Case(
            "min_size 9: boxes narrower or shorter than 9 pixels after clipping are dropped",
            (*wide, 1000, 1000, 0.9, 9.0),
            hint="Drop the small boxes AFTER clipping (a clipped box can become thin): keep "
            "width >= min_size and height >= min_size (torchvision.ops.remove_small_boxes).",
        ),
        Case(
            "a tall 4x3 map on a 32x24 image, every step at once",
            (*tall, 40, 15, 0.6, 4.0),
            hint=_PIPELINE,
        ),
        Case(
            "large deltas (std 1): sizes grow by exp(tw), not by (1 + tw)",
            (*_proposal_inputs((3, 4), 8, 517, delta_std=1.0), 1000, 1000, 0.7, 1e-3),
            hint="Decode as R-CNN: x = px + pw * dx, y = py + ph * dy, w = pw * exp(dw), h = "
            "ph * exp(dh), with weights (1, 1, 1, 1), not Fast R-CNN's (10, 10, 5, 5).",
        ),
    ]
    return with_device_copies(cases)
