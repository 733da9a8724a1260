"""The R-CNN / Fast R-CNN checks accept correct functions and reject stubs and plausible student mistakes.

Each ``Wrong`` below is a real, deliberately wrong implementation a student might write; the check must raise
CheckFailed for it, with a message that says what is wrong (``says``);
``tests/test_check_contract.py`` runs them all.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from check_contract import Wrong
from torchvision.models.detection._utils import Matcher

from course_utils.detection import box_coding, fast_rcnn, rcnn
from course_utils.grading.checks import all_checks
from course_utils.grading.checks.rcnn import (
    CHECKS,
    check_decode_boxes,
    check_encode_boxes,
    check_label_proposals,
    check_roi_pool,
    check_smooth_l1_box_loss,
    decode_boxes_cases,
    encode_boxes_cases,
    label_proposals_cases,
    roi_pool_cases,
    smooth_l1_box_loss_cases,
    torchvision_label_proposals,
)

# ------------------------------------------------------------------------------------------------------------
# Correct implementations, written the way a student would
# ------------------------------------------------------------------------------------------------------------


def good_label_proposals(proposals, gt_boxes, gt_labels, fg_threshold, bg_threshold):
    num = len(proposals)
    if len(gt_boxes) == 0:
        best = torch.zeros(num, dtype=proposals.dtype, device=proposals.device)
        matched = torch.full((num,), -1, dtype=torch.long, device=proposals.device)
        labels = torch.zeros(num, dtype=torch.long, device=proposals.device)
    else:
        iou = torchvision.ops.box_iou(proposals, gt_boxes)
        best, matched = iou.max(dim=1)
        labels = gt_labels[matched].clone()
    labels[best < fg_threshold] = 0
    labels[best < bg_threshold] = -1
    return labels, matched


def good_label_proposals_loop(proposals, gt_boxes, gt_labels, fg_threshold, bg_threshold):
    labels, matched = [], []
    for box in proposals:
        best, index = 0.0, -1
        for j, gt in enumerate(gt_boxes):
            iou = float(torchvision.ops.box_iou(box[None], gt[None])[0, 0])
            if iou > best or index == -1:
                best, index = iou, j
        matched.append(index)
        if best >= fg_threshold:
            labels.append(int(gt_labels[index]))
        elif best >= bg_threshold:
            labels.append(0)
        else:
            labels.append(-1)
    device = proposals.device
    return (
        torch.tensor(labels, dtype=torch.long, device=device),
        torch.tensor(matched, dtype=torch.long, device=device),
    )


def good_encode(proposals, gt_boxes):
    pw, ph = proposals[:, 2] - proposals[:, 0], proposals[:, 3] - proposals[:, 1]
    px, py = proposals[:, 0] + 0.5 * pw, proposals[:, 1] + 0.5 * ph
    gw, gh = gt_boxes[:, 2] - gt_boxes[:, 0], gt_boxes[:, 3] - gt_boxes[:, 1]
    gx, gy = gt_boxes[:, 0] + 0.5 * gw, gt_boxes[:, 1] + 0.5 * gh
    return torch.stack(
        [(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], dim=1
    )


def good_decode(proposals, deltas):
    pw, ph = proposals[:, 2] - proposals[:, 0], proposals[:, 3] - proposals[:, 1]
    px, py = proposals[:, 0] + 0.5 * pw, proposals[:, 1] + 0.5 * ph
    cx, cy = px + pw * deltas[:, 0], py + ph * deltas[:, 1]
    w, h = pw * torch.exp(deltas[:, 2]), ph * torch.exp(deltas[:, 3])
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)


def _c_round(v: float) -> int:
    return math.floor(v + 0.5) if v >= 0 else -math.floor(-v + 0.5)


def good_roi_pool(
    features,
    rois,
    output_size,
    spatial_scale,
    *,
    rounding=_c_round,
    inclusive=1,
    start=math.floor,
    end=math.ceil,
    use_scale=True,
    use_batch=True,
    reduce="max",
    empty=0.0,
    clip=True,
):
    """A loop implementation; the keyword arguments make the wrong variants below."""
    _, channels, height, width = features.shape
    out_h, out_w = output_size
    out = features.new_zeros((len(rois), channels, out_h, out_w))
    for k, roi in enumerate(rois.tolist()):
        image = int(roi[0]) if use_batch else 0
        scale = spatial_scale if use_scale else 1.0
        x1, y1, x2, y2 = (rounding(v * scale) for v in roi[1:])
        roi_w, roi_h = max(x2 - x1 + inclusive, 1), max(y2 - y1 + inclusive, 1)
        for i in range(out_h):
            h0, h1 = start(i * roi_h / out_h) + y1, end((i + 1) * roi_h / out_h) + y1
            if clip:
                h0, h1 = min(max(h0, 0), height), min(max(h1, 0), height)
            for j in range(out_w):
                w0, w1 = start(j * roi_w / out_w) + x1, end((j + 1) * roi_w / out_w) + x1
                if clip:
                    w0, w1 = min(max(w0, 0), width), min(max(w1, 0), width)
                if h1 <= h0 or w1 <= w0:
                    out[k, :, i, j] = empty
                    continue
                region = features[image, :, max(h0, 0) : h1, max(w0, 0) : w1]
                if reduce == "max":
                    out[k, :, i, j] = region.amax(dim=(1, 2))
                elif reduce == "mean":
                    out[k, :, i, j] = region.mean(dim=(1, 2))
                else:  # a running maximum started at 0
                    out[k, :, i, j] = region.amax(dim=(1, 2)).clamp(min=0)
    return out


def good_smooth_l1(deltas, targets, labels, beta):
    positive = labels > 0
    x = (deltas[positive] - targets[positive]).abs()
    loss = torch.where(x < beta, 0.5 * x**2 / beta, x - 0.5 * beta)
    return loss.sum() / max(len(labels), 1)


def good_smooth_l1_masked(deltas, targets, labels, beta):
    x = (deltas - targets).abs()
    loss = torch.where(x < beta, 0.5 * x * x / beta, x - 0.5 * beta)
    return (loss.sum(dim=1) * (labels > 0)).sum() / max(labels.numel(), 1)


CORRECT = [
    (check_label_proposals, torchvision_label_proposals),
    (check_label_proposals, rcnn.label_proposals),
    (check_label_proposals, good_label_proposals),
    (check_label_proposals, good_label_proposals_loop),
    (check_encode_boxes, good_encode),
    (check_encode_boxes, box_coding.encode_boxes),
    (check_decode_boxes, good_decode),
    (check_decode_boxes, box_coding.decode_boxes),
    (check_roi_pool, torchvision.ops.roi_pool),
    (check_roi_pool, good_roi_pool),
    (check_smooth_l1_box_loss, good_smooth_l1),
    (check_smooth_l1_box_loss, good_smooth_l1_masked),
    (check_smooth_l1_box_loss, fast_rcnn.smooth_l1_box_loss),
]


# ------------------------------------------------------------------------------------------------------------
# Wrong label_proposals
# ------------------------------------------------------------------------------------------------------------


def labels_index_plus_one(proposals, gt_boxes, gt_labels, fg, bg):
    labels, matched = good_label_proposals(proposals, gt_boxes, gt_labels, fg, bg)
    return torch.where(labels > 0, matched + 1, labels), matched


def labels_off_by_one(proposals, gt_boxes, gt_labels, fg, bg):
    labels, matched = good_label_proposals(proposals, gt_boxes, gt_labels, fg, bg)
    return torch.where(labels > 0, labels - 1, labels), matched


def foreground_strictly_above(proposals, gt_boxes, gt_labels, fg, bg):
    labels, matched = good_label_proposals(proposals, gt_boxes, gt_labels, fg, bg)
    if len(gt_boxes) and len(proposals):
        best = torchvision.ops.box_iou(proposals, gt_boxes).max(dim=1).values
        labels = torch.where((best == fg) & (labels > 0), torch.zeros_like(labels), labels)
    return labels, matched


def background_threshold_inclusive(proposals, gt_boxes, gt_labels, fg, bg):
    labels, matched = good_label_proposals(proposals, gt_boxes, gt_labels, fg, bg)
    if len(gt_boxes) and len(proposals):
        best = torchvision.ops.box_iou(proposals, gt_boxes).max(dim=1).values
        labels = torch.where(best <= bg, torch.full_like(labels, -1), labels)
    return labels, matched


def background_threshold_ignored(proposals, gt_boxes, gt_labels, fg, bg):
    return good_label_proposals(proposals, gt_boxes, gt_labels, fg, 0.0)


def background_and_ignored_swapped(proposals, gt_boxes, gt_labels, fg, bg):
    labels, matched = good_label_proposals(proposals, gt_boxes, gt_labels, fg, bg)
    swapped = torch.where(
        labels == 0, torch.full_like(labels, -1), torch.where(labels == -1, 0, labels)
    )
    return swapped, matched


def ties_to_the_last_box(proposals, gt_boxes, gt_labels, fg, bg):
    if len(gt_boxes) == 0 or len(proposals) == 0:
        return good_label_proposals(proposals, gt_boxes, gt_labels, fg, bg)
    iou = torchvision.ops.box_iou(proposals, gt_boxes.flip(0))
    best, matched = iou.max(dim=1)
    matched = len(gt_boxes) - 1 - matched
    labels = gt_labels[matched].clone()
    labels[best < fg] = 0
    labels[best < bg] = -1
    return labels, matched


def max_over_the_wrong_dimension(proposals, gt_boxes, gt_labels, fg, bg):
    if len(gt_boxes) == 0 or len(proposals) == 0:
        return good_label_proposals(proposals, gt_boxes, gt_labels, fg, bg)
    iou = torchvision.ops.box_iou(proposals, gt_boxes)
    best, matched = iou.max(dim=0)
    labels = gt_labels[matched.clamp(max=len(gt_labels) - 1)].clone()
    labels[best < fg] = 0
    labels[best < bg] = -1
    return labels, matched


def labels_of_the_first_box(proposals, gt_boxes, gt_labels, fg, bg):
    labels, matched = good_label_proposals(proposals, gt_boxes, gt_labels, fg, bg)
    if len(gt_labels):
        labels = torch.where(labels > 0, gt_labels[0].expand_as(labels), labels)
    return labels, matched


def matched_minus_one_for_background(proposals, gt_boxes, gt_labels, fg, bg):
    labels, matched = good_label_proposals(proposals, gt_boxes, gt_labels, fg, bg)
    return labels, torch.where(labels > 0, matched, torch.full_like(matched, -1))


def crashes_without_ground_truth(proposals, gt_boxes, gt_labels, fg, bg):
    iou = torchvision.ops.box_iou(proposals, gt_boxes)
    best, matched = iou.max(dim=1)
    labels = gt_labels[matched].clone()
    labels[best < fg] = 0
    labels[best < bg] = -1
    return labels, matched


def labels_only(proposals, gt_boxes, gt_labels, fg, bg):
    return good_label_proposals(proposals, gt_boxes, gt_labels, fg, bg)[0]


def labels_as_float(proposals, gt_boxes, gt_labels, fg, bg):
    labels, matched = good_label_proposals(proposals, gt_boxes, gt_labels, fg, bg)
    return labels.float(), matched


def label_pairs_instead_of_best(proposals, gt_boxes, gt_labels, fg, bg):
    """Labels each proposal with the LAST ground truth it overlaps >= fg (a loop over boxes, no max)."""
    labels, matched = good_label_proposals(proposals, gt_boxes, gt_labels, fg, bg)
    if len(gt_boxes) and len(proposals):
        iou = torchvision.ops.box_iou(proposals, gt_boxes)
        for j in range(len(gt_boxes)):
            matched = torch.where(iou[:, j] > 0, torch.full_like(matched, j), matched)
    return labels, matched


# ------------------------------------------------------------------------------------------------------------
# Wrong encode_boxes / decode_boxes
# ------------------------------------------------------------------------------------------------------------


def _cs(boxes):
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + 0.5 * w, boxes[:, 1] + 0.5 * h, w, h


def encode_x_y_swapped(proposals, gt_boxes):
    return good_encode(proposals, gt_boxes)[:, [1, 0, 3, 2]]


def encode_divides_by_the_wrong_side(proposals, gt_boxes):
    px, py, pw, ph = _cs(proposals)
    gx, gy, gw, gh = _cs(gt_boxes)
    return torch.stack(
        [(gx - px) / ph, (gy - py) / pw, torch.log(gw / pw), torch.log(gh / ph)], dim=1
    )


def encode_corners_instead_of_centres(proposals, gt_boxes):
    _, _, pw, ph = _cs(proposals)
    _, _, gw, gh = _cs(gt_boxes)
    return torch.stack(
        [
            (gt_boxes[:, 0] - proposals[:, 0]) / pw,
            (gt_boxes[:, 1] - proposals[:, 1]) / ph,
            torch.log(gw / pw),
            torch.log(gh / ph),
        ],
        dim=1,
    )


def encode_without_log(proposals, gt_boxes):
    px, py, pw, ph = _cs(proposals)
    gx, gy, gw, gh = _cs(gt_boxes)
    return torch.stack([(gx - px) / pw, (gy - py) / ph, gw / pw, gh / ph], dim=1)


def encode_divides_by_the_ground_truth(proposals, gt_boxes):
    px, py, pw, ph = _cs(proposals)
    gx, gy, gw, gh = _cs(gt_boxes)
    return torch.stack(
        [(gx - px) / gw, (gy - py) / gh, torch.log(gw / pw), torch.log(gh / ph)], dim=1
    )


def encode_inverted_ratio(proposals, gt_boxes):
    px, py, pw, ph = _cs(proposals)
    gx, gy, gw, gh = _cs(gt_boxes)
    return torch.stack(
        [(gx - px) / pw, (gy - py) / ph, torch.log(pw / gw), torch.log(ph / gh)], dim=1
    )


def encode_arguments_swapped(proposals, gt_boxes):
    return good_encode(gt_boxes, proposals)


def encode_plus_one_widths(proposals, gt_boxes):
    def cs(b):
        w, h = b[:, 2] - b[:, 0] + 1, b[:, 3] - b[:, 1] + 1
        return b[:, 0] + 0.5 * w, b[:, 1] + 0.5 * h, w, h

    px, py, pw, ph = cs(proposals)
    gx, gy, gw, gh = cs(gt_boxes)
    return torch.stack(
        [(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], dim=1
    )


def encode_centre_without_half(proposals, gt_boxes):
    def cs(b):
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        return b[:, 0] + w, b[:, 1] + h, w, h

    px, py, pw, ph = cs(proposals)
    gx, gy, gw, gh = cs(gt_boxes)
    return torch.stack(
        [(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], dim=1
    )


def encode_always_float32(proposals, gt_boxes):
    return good_encode(proposals.float(), gt_boxes.float())


def encode_stacked_on_dim0(proposals, gt_boxes):
    return good_encode(proposals, gt_boxes).T


def decode_without_exp(proposals, deltas):
    px, py, pw, ph = _cs(proposals)
    cx, cy = px + pw * deltas[:, 0], py + ph * deltas[:, 1]
    w, h = pw * deltas[:, 2], ph * deltas[:, 3]
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)


def decode_x_y_swapped(proposals, deltas):
    return good_decode(proposals, deltas[:, [1, 0, 3, 2]])


def decode_shift_not_scaled(proposals, deltas):
    px, py, pw, ph = _cs(proposals)
    cx, cy = px + deltas[:, 0], py + deltas[:, 1]
    w, h = pw * torch.exp(deltas[:, 2]), ph * torch.exp(deltas[:, 3])
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)


def decode_from_the_corner(proposals, deltas):
    _, _, pw, ph = _cs(proposals)
    x1, y1 = proposals[:, 0] + pw * deltas[:, 0], proposals[:, 1] + ph * deltas[:, 1]
    w, h = pw * torch.exp(deltas[:, 2]), ph * torch.exp(deltas[:, 3])
    return torch.stack([x1, y1, x1 + w, y1 + h], dim=1)


def decode_returns_centres_and_sizes(proposals, deltas):
    px, py, pw, ph = _cs(proposals)
    return torch.stack(
        [
            px + pw * deltas[:, 0],
            py + ph * deltas[:, 1],
            pw * torch.exp(deltas[:, 2]),
            ph * torch.exp(deltas[:, 3]),
        ],
        dim=1,
    )


def decode_full_width_each_side(proposals, deltas):
    px, py, pw, ph = _cs(proposals)
    cx, cy = px + pw * deltas[:, 0], py + ph * deltas[:, 1]
    w, h = pw * torch.exp(deltas[:, 2]), ph * torch.exp(deltas[:, 3])
    return torch.stack([cx - w, cy - h, cx + w, cy + h], dim=1)


def decode_log_instead_of_exp(proposals, deltas):
    px, py, pw, ph = _cs(proposals)
    cx, cy = px + pw * deltas[:, 0], py + ph * deltas[:, 1]
    w, h = pw * (1 + deltas[:, 2]), ph * (1 + deltas[:, 3])  # exp(t) ~ 1 + t: only right near 0
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)


def decode_width_and_height_swapped(proposals, deltas):
    px, py, pw, ph = _cs(proposals)
    cx, cy = px + pw * deltas[:, 0], py + ph * deltas[:, 1]
    w, h = pw * torch.exp(deltas[:, 3]), ph * torch.exp(deltas[:, 2])
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)


def decode_always_float32(proposals, deltas):
    return good_decode(proposals.float(), deltas.float())


def decode_in_place(proposals, deltas):
    deltas[:, 2:] = deltas[:, 2:].exp()
    px, py, pw, ph = _cs(proposals)
    cx, cy = px + pw * deltas[:, 0], py + ph * deltas[:, 1]
    w, h = pw * deltas[:, 2], ph * deltas[:, 3]
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)


# ------------------------------------------------------------------------------------------------------------
# Wrong roi_pool
# ------------------------------------------------------------------------------------------------------------


def roi_pool_no_rounding(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size, spatial_scale, rounding=math.floor)


def roi_pool_round_half_to_even(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size, spatial_scale, rounding=round)


def roi_pool_end_exclusive(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size, spatial_scale, inclusive=0)


def roi_pool_floor_both_ends(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size, spatial_scale, end=math.floor)


def roi_pool_ceil_both_ends(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size, spatial_scale, start=math.ceil)


def roi_pool_bins_one_too_wide(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size, spatial_scale, end=lambda v: math.ceil(v) + 1)


def roi_pool_ignores_spatial_scale(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size, spatial_scale, use_scale=False)


def roi_pool_ignores_batch_index(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size, spatial_scale, use_batch=False)


def roi_pool_average(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size, spatial_scale, reduce="mean")


def roi_pool_max_starts_at_zero(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size, spatial_scale, reduce="max0")


def roi_pool_empty_bins_minus_inf(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size, spatial_scale, empty=float("-inf"))


def roi_pool_transposed_grid(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size[::-1], spatial_scale).transpose(2, 3)


def roi_pool_stacks_a_list(features, rois, output_size, spatial_scale):
    return torch.stack(
        [good_roi_pool(features, roi[None], output_size, spatial_scale)[0] for roi in rois]
    )


def roi_pool_float32(features, rois, output_size, spatial_scale):
    return good_roi_pool(features.float(), rois.float(), output_size, spatial_scale)


def roi_pool_adaptive_max_pool(features, rois, output_size, spatial_scale):
    """Crops the rounded RoI and uses adaptive_max_pool2d: other bin boundaries, no 1-cell minimum."""
    out = []
    for roi in rois:
        x1, y1, x2, y2 = (_c_round(float(v) * spatial_scale) for v in roi[1:])
        region = features[int(roi[0]), :, max(y1, 0) : max(y2 + 1, 1), max(x1, 0) : max(x2 + 1, 1)]
        out.append(F.adaptive_max_pool2d(region, output_size))
    return torch.stack(out) if out else features.new_zeros((0, features.shape[1], *output_size))


# ------------------------------------------------------------------------------------------------------------
# Wrong smooth_l1_box_loss
# ------------------------------------------------------------------------------------------------------------


def _smooth(x, beta):
    x = x.abs()
    return torch.where(x < beta, 0.5 * x**2 / beta, x - 0.5 * beta)


def smooth_l1_beta_ignored(deltas, targets, labels, beta):
    return good_smooth_l1(deltas, targets, labels, 1.0)


def smooth_l1_without_half(deltas, targets, labels, beta):
    x = (deltas - targets)[labels > 0].abs()
    return torch.where(x < beta, x**2 / beta, x - 0.5 * beta).sum() / max(len(labels), 1)


def smooth_l1_is_l2_everywhere(deltas, targets, labels, beta):
    x = (deltas - targets)[labels > 0]
    return (0.5 * x**2 / beta).sum() / max(len(labels), 1)


def smooth_l1_is_l1_everywhere(deltas, targets, labels, beta):
    return (deltas - targets)[labels > 0].abs().sum() / max(len(labels), 1)


def smooth_l1_summed(deltas, targets, labels, beta):
    return _smooth(deltas - targets, beta)[labels > 0].sum()


def smooth_l1_mean_over_elements(deltas, targets, labels, beta):
    return F.smooth_l1_loss(deltas[labels > 0], targets[labels > 0], beta=beta)


def smooth_l1_over_positives_only(deltas, targets, labels, beta):
    positive = labels > 0
    return _smooth(deltas - targets, beta)[positive].sum() / max(int(positive.sum()), 1)


def smooth_l1_on_background_too(deltas, targets, labels, beta):
    return _smooth(deltas - targets, beta).sum() / max(len(labels), 1)


def smooth_l1_linear_part_divided_by_beta(deltas, targets, labels, beta):
    x = (deltas - targets)[labels > 0].abs()
    return torch.where(x < beta, 0.5 * x**2 / beta, (x - 0.5 * beta) / beta).sum() / max(
        len(labels), 1
    )


def smooth_l1_nan_without_rois(deltas, targets, labels, beta):
    return _smooth(deltas - targets, beta)[labels > 0].sum() / len(labels)


def smooth_l1_returns_a_float(deltas, targets, labels, beta):
    return good_smooth_l1(deltas, targets, labels, beta).item()


def smooth_l1_per_roi(deltas, targets, labels, beta):
    return _smooth(deltas - targets, beta).sum(dim=1) * (labels > 0) / max(len(labels), 1)


def smooth_l1_always_float32(deltas, targets, labels, beta):
    return good_smooth_l1(deltas.float(), targets.float(), labels, beta)


WRONG = [
    Wrong(check_label_proposals, labels_index_plus_one, "labels: values differ"),
    Wrong(check_label_proposals, labels_off_by_one, "labels: values differ"),
    Wrong(check_label_proposals, foreground_strictly_above, "IoU exactly fg_threshold"),
    Wrong(check_label_proposals, background_threshold_inclusive, "IoU exactly bg_threshold"),
    Wrong(check_label_proposals, background_threshold_ignored, "ignored"),
    Wrong(check_label_proposals, background_and_ignored_swapped, "labels: values differ"),
    Wrong(check_label_proposals, ties_to_the_last_box, "a tie"),
    Wrong(check_label_proposals, max_over_the_wrong_dimension, "labels: values differ"),
    Wrong(check_label_proposals, labels_of_the_first_box, "class labels (3, 1, 2)"),
    Wrong(check_label_proposals, matched_minus_one_for_background, "matched_gt: values differ"),
    Wrong(check_label_proposals, crashes_without_ground_truth, "raised"),
    Wrong(check_label_proposals, labels_only, "return a pair"),
    Wrong(check_label_proposals, labels_as_float, "dtype"),
    Wrong(check_label_proposals, label_pairs_instead_of_best, "matched_gt: values differ"),
    Wrong(check_encode_boxes, encode_x_y_swapped, "shifted right"),
    Wrong(check_encode_boxes, encode_divides_by_the_wrong_side, "values differ"),
    Wrong(check_encode_boxes, encode_corners_instead_of_centres, "twice as wide"),
    Wrong(check_encode_boxes, encode_without_log, "identical boxes"),
    Wrong(check_encode_boxes, encode_divides_by_the_ground_truth, "values differ"),
    Wrong(check_encode_boxes, encode_inverted_ratio, "twice as wide"),
    Wrong(check_encode_boxes, encode_arguments_swapped, "shifted right"),
    Wrong(check_encode_boxes, encode_plus_one_widths, "values differ"),
    Wrong(check_encode_boxes, encode_centre_without_half, "twice as wide"),
    Wrong(check_encode_boxes, encode_always_float32, "dtype"),
    Wrong(check_encode_boxes, encode_stacked_on_dim0, "shape"),
    Wrong(check_decode_boxes, decode_without_exp, "zero deltas"),
    Wrong(check_decode_boxes, decode_x_y_swapped, "tx = 0.5"),
    Wrong(check_decode_boxes, decode_shift_not_scaled, "tx = 0.5"),
    Wrong(check_decode_boxes, decode_from_the_corner, "tw = log 2"),
    Wrong(check_decode_boxes, decode_returns_centres_and_sizes, "zero deltas"),
    Wrong(check_decode_boxes, decode_full_width_each_side, "zero deltas"),
    Wrong(check_decode_boxes, decode_log_instead_of_exp, "tw = log 2"),
    Wrong(check_decode_boxes, decode_width_and_height_swapped, "values differ"),
    Wrong(check_decode_boxes, decode_always_float32, "dtype"),
    Wrong(check_decode_boxes, decode_in_place, "in place"),
    Wrong(check_roi_pool, roi_pool_no_rounding, "values differ"),
    Wrong(check_roi_pool, roi_pool_round_half_to_even, "round half away from zero"),
    Wrong(check_roi_pool, roi_pool_end_exclusive, "2x2 grid"),
    Wrong(check_roi_pool, roi_pool_floor_both_ends, "values differ"),
    Wrong(check_roi_pool, roi_pool_ceil_both_ends, "values differ"),
    Wrong(check_roi_pool, roi_pool_bins_one_too_wide, "values differ"),
    Wrong(check_roi_pool, roi_pool_ignores_spatial_scale, "spatial_scale 0.25"),
    Wrong(check_roi_pool, roi_pool_ignores_batch_index, "batch index"),
    Wrong(check_roi_pool, roi_pool_average, "2x2 grid"),
    Wrong(check_roi_pool, roi_pool_max_starts_at_zero, "negative features"),
    Wrong(check_roi_pool, roi_pool_empty_bins_minus_inf, "expected 0, got -inf"),
    Wrong(check_roi_pool, roi_pool_transposed_grid, "values differ"),
    Wrong(check_roi_pool, roi_pool_stacks_a_list, "no RoIs"),
    Wrong(check_roi_pool, roi_pool_float32, "dtype"),
    Wrong(check_roi_pool, roi_pool_adaptive_max_pool, "values differ"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_beta_ignored, "beta = 1/9"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_without_half, "quadratic part"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_is_l2_everywhere, "linear part"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_is_l1_everywhere, "quadratic part"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_summed, "background RoIs"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_mean_over_elements, "quadratic part"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_over_positives_only, "background RoIs"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_on_background_too, "background RoIs"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_linear_part_divided_by_beta, "beta = 1/9"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_nan_without_rois, "no RoIs at all"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_returns_a_float, "no .item()"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_per_roi, "0-dim tensor"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_always_float32, "dtype"),
]


def test_the_module_lists_its_checks():
    assert all_checks()["rcnn"] == CHECKS
    assert len({c.function_name for c in CHECKS}) == len(CHECKS)


def test_label_reference_agrees_with_the_course_module_and_matcher():
    for case in label_proposals_cases():
        expected = torchvision_label_proposals(*case.args)
        got = rcnn.label_proposals(*case.args)
        assert all(torch.equal(a, b) for a, b in zip(expected, got)), case.name


def test_matcher_semantics_are_what_the_reference_assumes():
    iou = torch.tensor([[0.05, 0.1, 0.3, 0.5, 0.7]])
    matches = Matcher(0.5, 0.1, allow_low_quality_matches=False)(iou)
    assert matches.tolist() == [
        Matcher.BELOW_LOW_THRESHOLD,
        Matcher.BETWEEN_THRESHOLDS,
        Matcher.BETWEEN_THRESHOLDS,
        0,
        0,
    ]


@pytest.mark.parametrize(
    "make_cases",
    [
        label_proposals_cases,
        encode_boxes_cases,
        decode_boxes_cases,
        roi_pool_cases,
        smooth_l1_box_loss_cases,
    ],
)
def test_cases_are_deterministic_and_cover_edge_cases(make_cases):
    first, second = make_cases(), make_cases()
    assert [c.name for c in first] == [c.name for c in second]
    for a, b in zip(first, second):
        assert all(
            torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y
            for x, y in zip(a.args, b.args)
        )
        assert a.hint, f"case {a.name!r} needs a hint"
    index = 1 if make_cases is roi_pool_cases else 0  # the RoIs, or the boxes/deltas
    sizes = {len(c.args[index]) for c in first}
    assert 0 in sizes and 1 in sizes  # nothing, and a batch of one


def test_roi_pool_cases_cover_the_quantization_traps():
    """The .5 case really separates C's rounding from torch.round, and the empty case is really empty."""
    case = next(c for c in roi_pool_cases() if "round half away" in c.name)
    features, rois, size, scale = case.args
    assert not torch.equal(
        good_roi_pool(features, rois, size, scale),
        roi_pool_round_half_to_even(features, rois, size, scale),
    )
    outside = next(c for c in roi_pool_cases() if "entirely outside" in c.name)
    assert torchvision.ops.roi_pool(*outside.args).abs().max() == 0


def test_smooth_l1_reference_is_torchvision_fastrcnn_style():
    g = torch.Generator().manual_seed(0)
    deltas, targets = torch.randn(10, 4, generator=g), torch.randn(10, 4, generator=g)
    labels = torch.tensor([0, 1, 2, 0, 0, 3, 0, 1, 0, 0])
    expected = (
        F.smooth_l1_loss(deltas[labels > 0], targets[labels > 0], beta=1 / 9, reduction="sum") / 10
    )
    torch.testing.assert_close(
        fast_rcnn.smooth_l1_box_loss(deltas, targets, labels, 1 / 9), expected
    )


def test_checks_are_fast():
    import time

    for check, fn in [
        (check_label_proposals, good_label_proposals),
        (check_roi_pool, good_roi_pool),
        (check_encode_boxes, good_encode),
        (check_decode_boxes, good_decode),
        (check_smooth_l1_box_loss, good_smooth_l1),
    ]:
        start = time.perf_counter()
        check(fn, quiet=True)
        assert time.perf_counter() - start < 2.0, check.function_name  # generous: the CPU is shared
