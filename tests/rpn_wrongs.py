"""Right and deliberately wrong implementations of the Faster R-CNN assignments (notebook 05).

``good_*`` are right; their keyword arguments, and the small functions and classes below them,
make the plausible student mistakes that ``tests/test_checks_rpn.py`` lists in its ``WRONG``
table.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection._utils import BoxCoder
from torchvision.ops import box_iou, clip_boxes_to_image, nms, remove_small_boxes


def _variant(good, name, **options):
    """``good`` with the keyword arguments ``options``, named ``name`` (the test's id)."""

    def wrong(*args):
        return good(*args, **options)

    wrong.__name__ = wrong.__qualname__ = name
    return wrong


# ----------------------------------------------------------------------------------------------
# anchor_boxes
# ----------------------------------------------------------------------------------------------


def good_anchor_boxes(
    feature_size,
    stride,
    sizes,
    aspect_ratios,
    *,
    cell_centre=False,
    ratio_is_h_over_w=True,
    keep_area=True,
    swap_xy=False,
    stride_twice=False,
    rounding=True,
    sizes_major=False,
    cells_inner=False,
    half=True,
    flatten=True,
    dtype=torch.float32,
):
    """Vectorised; the keyword arguments make the wrong variants."""
    height, width = feature_size
    s = torch.tensor(sizes, dtype=torch.float32)
    r = torch.tensor(aspect_ratios, dtype=torch.float32)
    h_ratio = r.sqrt() if ratio_is_h_over_w else 1 / r.sqrt()
    if keep_area:
        heights, widths = h_ratio[:, None] * s[None], s[None] / h_ratio[:, None]
    else:
        heights, widths = s[None] * r[:, None], s[None].expand(len(r), len(s))
    if sizes_major:
        heights, widths = heights.T, widths.T
    heights, widths = heights.reshape(-1), widths.reshape(-1)
    templates = torch.stack([-widths, -heights, widths, heights], dim=1) / (2 if half else 1)
    if rounding:
        templates = templates.round()
    step = stride * stride if stride_twice else stride
    offset = stride / 2 if cell_centre else 0.0
    ys = torch.arange(height, dtype=torch.float32) * step + offset
    xs = torch.arange(width, dtype=torch.float32) * step + offset
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    if swap_xy:
        grid_x, grid_y = torch.meshgrid(
            torch.arange(height, dtype=torch.float32) * step,
            torch.arange(width, dtype=torch.float32) * step,
            indexing="ij",
        )
    shifts = torch.stack([grid_x, grid_y, grid_x, grid_y], dim=-1).reshape(-1, 1, 4)
    anchors = templates[:, None] + shifts[None, :, 0] if cells_inner else shifts + templates[None]
    if not flatten:
        return anchors.reshape(height, width, -1, 4).to(dtype)
    return anchors.reshape(-1, 4).to(dtype)


def good_anchor_boxes_loops(feature_size, stride, sizes, aspect_ratios):
    """Python loops, float64 arithmetic, Python's round (also half to even)."""
    rows = []
    for i in range(feature_size[0]):
        for j in range(feature_size[1]):
            for ratio in aspect_ratios:
                for size in sizes:
                    w, h = size / math.sqrt(ratio), size * math.sqrt(ratio)
                    x, y, half_w, half_h = j * stride, i * stride, round(w / 2), round(h / 2)
                    rows.append([x - half_w, y - half_h, x + half_w, y + half_h])
    return torch.tensor(rows, dtype=torch.float32)


anchors_at_cell_centres = _variant(good_anchor_boxes, "anchors_at_cell_centres", cell_centre=True)
anchors_ratio_as_w_over_h = _variant(
    good_anchor_boxes, "anchors_ratio_as_w_over_h", ratio_is_h_over_w=False
)
anchors_area_not_kept = _variant(good_anchor_boxes, "anchors_area_not_kept", keep_area=False)
anchors_x_y_swapped = _variant(good_anchor_boxes, "anchors_x_y_swapped", swap_xy=True)
anchors_stride_twice = _variant(good_anchor_boxes, "anchors_stride_twice", stride_twice=True)
anchors_not_rounded = _variant(good_anchor_boxes, "anchors_not_rounded", rounding=False)
anchors_sizes_major = _variant(good_anchor_boxes, "anchors_sizes_major", sizes_major=True)
anchors_templates_outer = _variant(good_anchor_boxes, "anchors_templates_outer", cells_inner=True)
anchors_full_sides = _variant(good_anchor_boxes, "anchors_full_sides", half=False)
anchors_not_flattened = _variant(good_anchor_boxes, "anchors_not_flattened", flatten=False)
anchors_float64 = _variant(good_anchor_boxes, "anchors_float64", dtype=torch.float64)


# ----------------------------------------------------------------------------------------------
# match_anchors
# ----------------------------------------------------------------------------------------------


def good_match_anchors(
    anchors,
    gt_boxes,
    high,
    low,
    *,
    low_quality=True,
    ties=True,
    strict_high=False,
    loose_low=False,
    empty="all -1",
    ignored=-2,
    own_best=True,
    low_quality_first=False,
    labels=False,
    dtype=torch.int64,
):
    """Vectorised; the keyword arguments make the wrong variants."""
    if len(gt_boxes) == 0 and empty != "crash":
        fill = -1 if empty == "all -1" else 0
        return torch.full((len(anchors),), fill, dtype=dtype, device=anchors.device)
    iou = box_iou(gt_boxes, anchors)
    best, index = iou.max(dim=0)
    positive = best > high if strict_high else best >= high
    negative = best <= low if loose_low else best < low
    matches = torch.where(positive, index, torch.where(negative, -1, ignored))
    if low_quality_first:  # the thresholds below overwrite the low-quality matches
        matches[negative] = -1
    elif low_quality:
        if ties:
            gts, chosen = torch.nonzero(iou == iou.max(dim=1, keepdim=True).values).unbind(1)
        else:
            chosen, gts = iou.argmax(dim=1), torch.arange(len(gt_boxes), device=iou.device)
        matches[chosen] = index[chosen] if own_best else gts
    if labels:
        return torch.where(matches >= 0, 1, torch.where(matches == -1, 0, -1))
    return matches.to(dtype)


def good_match_anchors_loops(anchors, gt_boxes, high, low):
    """Python loops over anchors and boxes."""
    iou = box_iou(gt_boxes, anchors).tolist() if len(gt_boxes) else []
    out = []
    for a in range(len(anchors)):
        column = [row[a] for row in iou]
        best = max(column, default=0.0)
        code = column.index(best) if best >= high else (-1 if best < low else -2)
        if any(column[g] == max(iou[g]) for g in range(len(iou))):
            code = column.index(best)
        out.append(code)
    return torch.tensor(out, dtype=torch.int64, device=anchors.device)


match_without_low_quality = _variant(
    good_match_anchors, "match_without_low_quality", low_quality=False
)
match_one_best_anchor_per_gt = _variant(
    good_match_anchors, "match_one_best_anchor_per_gt", ties=False
)
match_strict_high = _variant(good_match_anchors, "match_strict_high", strict_high=True)
match_loose_low = _variant(good_match_anchors, "match_loose_low", loose_low=True)


def match_thresholds_swapped(anchors, gt_boxes, high, low):
    return good_match_anchors(anchors, gt_boxes, low, high)


match_crashes_without_gt = _variant(good_match_anchors, "match_crashes_without_gt", empty="crash")
match_zeros_without_gt = _variant(good_match_anchors, "match_zeros_without_gt", empty="all 0")
match_ignored_as_background = _variant(
    good_match_anchors, "match_ignored_as_background", ignored=-1
)
match_low_quality_to_their_gt = _variant(
    good_match_anchors, "match_low_quality_to_their_gt", own_best=False
)
match_low_quality_before_thresholds = _variant(
    good_match_anchors, "match_low_quality_before_thresholds", low_quality_first=True
)
match_returns_labels = _variant(good_match_anchors, "match_returns_labels", labels=True)
match_float_dtype = _variant(good_match_anchors, "match_float_dtype", dtype=torch.float32)


# ----------------------------------------------------------------------------------------------
# RPNHead
# ----------------------------------------------------------------------------------------------


class GoodRPNHead(nn.Module):
    """The class attributes make some of the wrong variants below."""

    kernel, padding, stride, logits_per_anchor, box_channels = 3, 1, 1, 1, None

    def __init__(self, in_channels, num_anchors):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, self.kernel, self.stride, self.padding)
        self.cls_logits = nn.Conv2d(in_channels, self.logits_per_anchor * num_anchors, 1)
        self.bbox_pred = nn.Conv2d(in_channels, self.box_channels or 4 * num_anchors, 1)

    def forward(self, features):
        hidden = F.relu(self.conv(features))
        return self.cls_logits(hidden), self.bbox_pred(hidden)


class GoodRPNHeadReLUModule(nn.Module):
    """padding="same", an nn.ReLU(inplace=True) attribute and a list as the output."""

    def __init__(self, in_channels, num_anchors):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, 3, padding="same")
        self.relu = nn.ReLU(inplace=True)
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(in_channels, num_anchors * 4, 1)

    def forward(self, features):
        hidden = self.relu(self.conv(features))
        return [self.cls_logits(hidden), self.bbox_pred(hidden)]


class HeadWithoutReLU(GoodRPNHead):
    def forward(self, features):
        hidden = self.conv(features)
        return self.cls_logits(hidden), self.bbox_pred(hidden)


class HeadOneByOneConv(GoodRPNHead):
    kernel, padding = 1, 0


class HeadUnpadded(GoodRPNHead):
    padding = 0


class HeadStride2(GoodRPNHead):
    stride = 2


class HeadSigmoidObjectness(GoodRPNHead):
    def forward(self, features):
        objectness, deltas = super().forward(features)
        return torch.sigmoid(objectness), deltas


class HeadFourBoxChannels(GoodRPNHead):
    box_channels = 4


class HeadReLUOnOutputs(GoodRPNHead):
    def forward(self, features):
        objectness, deltas = super().forward(features)
        return F.relu(objectness), F.relu(deltas)


class HeadClsReadsFeatures(GoodRPNHead):
    def forward(self, features):
        hidden = F.relu(self.conv(features))
        return self.cls_logits(features), self.bbox_pred(hidden)


class HeadSoftmaxLogits(GoodRPNHead):
    logits_per_anchor = 2


class HeadOutputsSwapped(GoodRPNHead):
    def forward(self, features):
        objectness, deltas = super().forward(features)
        return deltas, objectness


class HeadBatchNorm(GoodRPNHead):
    def __init__(self, in_channels, num_anchors):
        super().__init__(in_channels, num_anchors)
        self.norm = nn.BatchNorm2d(in_channels)

    def forward(self, features):
        hidden = F.relu(self.norm(self.conv(features)))
        return self.cls_logits(hidden), self.bbox_pred(hidden)


class HeadInEvalMode(GoodRPNHead):
    def __init__(self, in_channels, num_anchors):
        super().__init__(in_channels, num_anchors)
        self.eval()


class HeadConvInSequential(GoodRPNHead):
    """torchvision's layout: conv = Sequential(Conv2d, ReLU)."""

    def __init__(self, in_channels, num_anchors):
        super().__init__(in_channels, num_anchors)
        self.conv = nn.Sequential(nn.Conv2d(in_channels, in_channels, 3, padding=1), nn.ReLU())


# ----------------------------------------------------------------------------------------------
# rpn_proposals
# ----------------------------------------------------------------------------------------------


def _decode(anchors, deltas, weights=(1.0, 1.0, 1.0, 1.0), use_exp=True, swap_xy=False):
    widths, heights = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    cx, cy = anchors[:, 0] + 0.5 * widths, anchors[:, 1] + 0.5 * heights
    dx, dy, dw, dh = (deltas / deltas.new_tensor(weights)).unbind(1)
    if swap_xy:
        dx, dy, dw, dh = dy, dx, dh, dw
    dw, dh = dw.clamp(max=math.log(1000 / 16)), dh.clamp(max=math.log(1000 / 16))
    x, y = cx + dx * widths, cy + dy * heights
    w, h = (widths * dw.exp(), heights * dh.exp()) if use_exp else (widths * dw, heights * dh)
    return torch.stack([x - 0.5 * w, y - 0.5 * h, x + 0.5 * w, y + 0.5 * h], dim=1)


def good_rpn_proposals(
    anchors,
    objectness,
    deltas,
    image_size,
    pre_nms_top_n,
    post_nms_top_n,
    nms_threshold,
    min_size,
    *,
    sigmoid=True,
    clip="before nms",
    use_pre=True,
    use_post=True,
    use_nms=True,
    fixed_threshold=None,
    weights=(1.0, 1.0, 1.0, 1.0),
    use_exp=True,
    small_first=False,
    use_min_size=True,
    swap_xy=False,
    sort=True,
):
    """Vectorised; the keyword arguments make the wrong variants."""
    count = min(pre_nms_top_n, len(objectness)) if use_pre else len(objectness)
    origin = objectness.topk(count).indices  # each box's anchor
    boxes = _decode(anchors[origin], deltas[origin], weights, use_exp, swap_xy)
    scores = torch.sigmoid(objectness[origin]) if sigmoid else objectness[origin]
    if clip == "before nms" and not small_first:
        boxes = clip_boxes_to_image(boxes, image_size)
    if use_min_size:
        keep = remove_small_boxes(boxes, min_size)
        boxes, scores, origin = boxes[keep], scores[keep], origin[keep]
    if small_first:
        boxes = clip_boxes_to_image(boxes, image_size)
    if use_nms:
        keep = nms(boxes, scores, nms_threshold if fixed_threshold is None else fixed_threshold)
    else:
        keep = scores.argsort(descending=True)
    if use_post:
        keep = keep[:post_nms_top_n]
    if not sort:  # a boolean mask over the anchors keeps them in anchor order
        keep = keep[origin[keep].argsort()]
    boxes, scores = boxes[keep], scores[keep]
    if clip == "after nms":
        boxes = clip_boxes_to_image(boxes, image_size)
    return boxes, scores


def good_rpn_proposals_box_coder(
    anchors, objectness, deltas, image_size, pre_nms_top_n, post_nms_top_n, nms_threshold, min_size
):
    """torchvision's BoxCoder, sort + slice instead of topk."""
    order = objectness.argsort(descending=True)[:pre_nms_top_n]
    boxes = BoxCoder((1.0, 1.0, 1.0, 1.0)).decode_single(deltas[order], anchors[order])
    boxes = clip_boxes_to_image(boxes, tuple(image_size))
    scores = objectness[order].sigmoid()
    keep = remove_small_boxes(boxes, min_size)
    keep = keep[nms(boxes[keep], scores[keep], nms_threshold)][:post_nms_top_n]
    return boxes[keep], scores[keep]


proposals_without_sigmoid = _variant(good_rpn_proposals, "proposals_without_sigmoid", sigmoid=False)
proposals_without_clipping = _variant(
    good_rpn_proposals, "proposals_without_clipping", clip="never"
)
proposals_clipped_after_nms = _variant(
    good_rpn_proposals, "proposals_clipped_after_nms", clip="after nms"
)
proposals_ignore_pre_nms_top_n = _variant(
    good_rpn_proposals, "proposals_ignore_pre_nms_top_n", use_pre=False
)
proposals_ignore_post_nms_top_n = _variant(
    good_rpn_proposals, "proposals_ignore_post_nms_top_n", use_post=False
)
proposals_without_nms = _variant(good_rpn_proposals, "proposals_without_nms", use_nms=False)
proposals_nms_threshold_fixed = _variant(
    good_rpn_proposals, "proposals_nms_threshold_fixed", fixed_threshold=0.7
)
proposals_fast_rcnn_weights = _variant(
    good_rpn_proposals, "proposals_fast_rcnn_weights", weights=(10.0, 10.0, 5.0, 5.0)
)
proposals_without_exp = _variant(good_rpn_proposals, "proposals_without_exp", use_exp=False)
proposals_small_boxes_before_clipping = _variant(
    good_rpn_proposals, "proposals_small_boxes_before_clipping", small_first=True
)
proposals_ignore_min_size = _variant(
    good_rpn_proposals, "proposals_ignore_min_size", use_min_size=False
)
proposals_x_y_swapped = _variant(good_rpn_proposals, "proposals_x_y_swapped", swap_xy=True)
proposals_unsorted = _variant(good_rpn_proposals, "proposals_unsorted", sort=False)
