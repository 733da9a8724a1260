"""The box checks accept correct functions and reject stubs and the plausible student mistakes.

Each ``Wrong`` below is a real, deliberately wrong implementation a student might write; the check must raise
CheckFailed for it, with a message that says what is wrong (``says``);
``tests/test_check_contract.py`` runs them all.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from check_contract import Wrong

from course_utils.grading.assignments import CheckFailed
from course_utils.grading.checks import all_checks
from course_utils.grading.checks.boxes import (
    CHECKS,
    batched_nms_cases,
    box_area_cases,
    box_iou_cases,
    check_batched_nms,
    check_box_area,
    check_box_iou,
    check_nms,
    nms_cases,
)

# ------------------------------------------------------------------------------------------------------------
# Correct implementations, written the way a student would
# ------------------------------------------------------------------------------------------------------------


def good_area(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def good_iou(boxes1, boxes2):
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    sides = (bottom_right - top_left).clamp(min=0)
    inter = sides[..., 0] * sides[..., 1]
    union = good_area(boxes1)[:, None] + good_area(boxes2)[None, :] - inter
    return inter / union


def good_nms(boxes, scores, iou_threshold):
    iou = good_iou(boxes, boxes)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in scores.argsort(descending=True).tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def good_nms_ties_reversed(boxes, scores, iou_threshold):
    """Correct, but breaks score ties the other way round than argsort(descending=True, stable=True)."""
    iou = good_iou(boxes, boxes)
    order = torch.argsort(scores, stable=True).flip(0)
    keep = []
    for i in order.tolist():
        if all(iou[i, j] <= iou_threshold for j in keep):
            keep.append(i)
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def good_batched_nms(boxes, scores, idxs, iou_threshold):
    keep = [torch.zeros(0, dtype=torch.long, device=boxes.device)]
    for c in torch.unique(idxs):
        members = torch.nonzero(idxs == c).squeeze(1)
        keep.append(members[good_nms(boxes[members], scores[members], iou_threshold)])
    keep = torch.cat(keep)
    return keep[scores[keep].argsort(descending=True)]


CORRECT = [
    (check_box_area, torchvision.ops.box_area),
    (check_box_area, good_area),
    (check_box_iou, torchvision.ops.box_iou),
    (check_box_iou, good_iou),
    (check_nms, torchvision.ops.nms),
    (check_nms, good_nms),
    (check_nms, good_nms_ties_reversed),
    (check_batched_nms, torchvision.ops.batched_nms),
    (check_batched_nms, good_batched_nms),
]


# ------------------------------------------------------------------------------------------------------------
# Wrong box_area
# ------------------------------------------------------------------------------------------------------------


def area_plus_one(boxes):
    return (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)


def area_from_xywh(boxes):
    return boxes[:, 2] * boxes[:, 3]


def area_columns_read_as_x1_x2_y1_y2(boxes):
    return (boxes[:, 1] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 2])


def area_width_squared(boxes):
    width = boxes[:, 2] - boxes[:, 0]
    return width * width


def area_rows_instead_of_columns(boxes):
    return (boxes[2] - boxes[0]) * (boxes[3] - boxes[1])


def area_summed(boxes):
    return good_area(boxes).sum()


def area_keeps_a_column_dimension(boxes):
    return (boxes[:, 2:3] - boxes[:, 0:1]) * (boxes[:, 3:4] - boxes[:, 1:2])


def area_squeezed(boxes):
    return area_keeps_a_column_dimension(boxes).squeeze()


def area_truncated_to_integers(boxes):
    boxes = boxes.long()
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def area_always_float32(boxes):
    return good_area(boxes.float())


def area_in_half_precision(boxes):
    return good_area(boxes.half()).to(boxes.dtype)


def area_python_loop(boxes):
    return torch.tensor([(x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in boxes.tolist()])


def area_stack_of_rows(boxes):
    return torch.stack([(b[2] - b[0]) * (b[3] - b[1]) for b in boxes])


def area_clamped_to_at_least_one(boxes):
    return good_area(boxes).clamp(min=1)


def area_as_numpy(boxes):
    b = boxes.cpu().numpy()
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def area_as_list(boxes):
    return good_area(boxes).tolist()


def area_without_return(boxes):
    area = good_area(boxes)  # noqa: F841


def area_in_place(boxes):
    boxes[:, 2:] -= boxes[:, :2]  # turns the caller's boxes into (x, y, w, h)
    return boxes[:, 2] * boxes[:, 3]


def area_on_cpu(boxes):
    return good_area(boxes).cpu()


# ------------------------------------------------------------------------------------------------------------
# Wrong box_iou
# ------------------------------------------------------------------------------------------------------------


def _inter(boxes1, boxes2):
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    sides = (bottom_right - top_left).clamp(min=0)
    return sides[..., 0] * sides[..., 1]


def iou_plus_one(boxes1, boxes2):
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    sides = (bottom_right - top_left + 1).clamp(min=0)
    inter = sides[..., 0] * sides[..., 1]
    return inter / (area_plus_one(boxes1)[:, None] + area_plus_one(boxes2)[None, :] - inter)


def iou_without_clamp(boxes1, boxes2):
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    sides = bottom_right - top_left
    inter = sides[..., 0] * sides[..., 1]
    return inter / (good_area(boxes1)[:, None] + good_area(boxes2)[None, :] - inter)


def iou_clamp_after_multiplying(boxes1, boxes2):
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    sides = bottom_right - top_left
    inter = (sides[..., 0] * sides[..., 1]).clamp(min=0)
    return inter / (good_area(boxes1)[:, None] + good_area(boxes2)[None, :] - inter)


def iou_union_without_subtracting_intersection(boxes1, boxes2):
    return _inter(boxes1, boxes2) / (good_area(boxes1)[:, None] + good_area(boxes2)[None, :])


def iou_over_the_smaller_box(boxes1, boxes2):
    smaller = torch.min(good_area(boxes1)[:, None], good_area(boxes2)[None, :])
    return _inter(boxes1, boxes2) / smaller


def iou_over_the_first_box(boxes1, boxes2):
    return _inter(boxes1, boxes2) / good_area(boxes1)[:, None]


def iou_transposed(boxes1, boxes2):
    return good_iou(boxes1, boxes2).T


def iou_row_by_row_pairs(boxes1, boxes2):
    top_left = torch.max(boxes1[:, :2], boxes2[:, :2])
    bottom_right = torch.min(boxes1[:, 2:], boxes2[:, 2:])
    sides = (bottom_right - top_left).clamp(min=0)
    inter = sides[:, 0] * sides[:, 1]
    return inter / (good_area(boxes1) + good_area(boxes2) - inter)


def iou_floor_division(boxes1, boxes2):
    inter = _inter(boxes1, boxes2)
    return inter // (good_area(boxes1)[:, None] + good_area(boxes2)[None, :] - inter)


def iou_integer_intersection(boxes1, boxes2):
    inter = _inter(boxes1, boxes2).int()
    return inter / (good_area(boxes1)[:, None] + good_area(boxes2)[None, :] - inter)


def iou_result_in_the_boxes_dtype(boxes1, boxes2):
    iou = torch.zeros(len(boxes1), len(boxes2), dtype=boxes1.dtype, device=boxes1.device)
    iou[:] = good_iou(boxes1, boxes2)
    return iou


def iou_corners_min_max_swapped(boxes1, boxes2):
    top_left = torch.min(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.max(boxes1[:, None, 2:], boxes2[None, :, 2:])
    sides = (bottom_right - top_left).clamp(min=0)
    inter = sides[..., 0] * sides[..., 1]
    return inter / (good_area(boxes1)[:, None] + good_area(boxes2)[None, :] - inter)


def iou_x_and_y_mixed_up(boxes1, boxes2):
    ax1, ay1, ax2, ay2 = boxes1[:, None].unbind(-1)
    bx1, by1, bx2, by2 = boxes2[None, :].unbind(-1)
    width = (torch.min(ax2, bx2) - torch.max(ay1, by1)).clamp(min=0)
    height = (torch.min(ay2, by2) - torch.max(ax1, bx1)).clamp(min=0)
    inter = width * height
    return inter / (good_area(boxes1)[:, None] + good_area(boxes2)[None, :] - inter)


def iou_areas_from_xywh(boxes1, boxes2):
    inter = _inter(boxes1, boxes2)
    return inter / (area_from_xywh(boxes1)[:, None] + area_from_xywh(boxes2)[None, :] - inter)


def iou_python_loops(boxes1, boxes2):
    iou = torch.zeros(len(boxes1), len(boxes2))
    for i in range(len(boxes1)):
        for j in range(len(boxes2)):
            iou[i, j] = good_iou(boxes1[i : i + 1], boxes2[j : j + 1])[0, 0]
    return iou


def iou_stack_of_rows(boxes1, boxes2):
    return torch.stack([good_iou(box[None], boxes2)[0] for box in boxes1])


def iou_squeezed(boxes1, boxes2):
    return good_iou(boxes1, boxes2).squeeze()


def iou_best_match_per_box(boxes1, boxes2):
    return good_iou(boxes1, boxes2).max(dim=1).values


def iou_always_float32(boxes1, boxes2):
    return good_iou(boxes1.float(), boxes2.float())


def iou_as_numpy(boxes1, boxes2):
    return good_iou(boxes1, boxes2).cpu().numpy()


def iou_converts_boxes1_in_place(boxes1, boxes2):
    boxes1[:, 2:] -= boxes1[:, :2]  # (x, y, w, h), then converted back for the formula below
    corners = torch.cat([boxes1[:, :2], boxes1[:, :2] + boxes1[:, 2:]], dim=1)
    boxes1[:, :2] += 0.0
    return good_iou(corners, boxes2)


def iou_on_cpu(boxes1, boxes2):
    return good_iou(boxes1, boxes2).cpu()


# ------------------------------------------------------------------------------------------------------------
# Wrong nms
# ------------------------------------------------------------------------------------------------------------


def _greedy(boxes, order, iou_threshold):
    iou = good_iou(boxes, boxes)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in order.tolist():
        if not suppressed[i]:
            keep.append(i)
            suppressed |= iou[i] > iou_threshold
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def nms_keeps_the_lowest_score(boxes, scores, iou_threshold):
    return _greedy(boxes, scores.argsort(), iou_threshold)


def nms_without_sorting(boxes, scores, iou_threshold):
    return _greedy(boxes, torch.arange(len(boxes)), iou_threshold)


def nms_suppresses_at_equal_iou(boxes, scores, iou_threshold):
    iou = good_iou(boxes, boxes)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for i in scores.argsort(descending=True).tolist():
        if not suppressed[i]:
            keep.append(i)
            suppressed |= (iou[i] >= iou_threshold).cpu()
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def nms_inverted_threshold(boxes, scores, iou_threshold):
    iou = good_iou(boxes, boxes)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in scores.argsort(descending=True).tolist():
        if not suppressed[i]:
            keep.append(i)
            suppressed |= iou[i] < iou_threshold
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def nms_suppressed_boxes_still_suppress(boxes, scores, iou_threshold):
    iou = good_iou(boxes, boxes)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in scores.argsort(descending=True).tolist():
        if not suppressed[i]:
            keep.append(i)
        suppressed[iou[i] > iou_threshold] = True  # also for boxes that were themselves suppressed
        suppressed[i] = i not in keep
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def nms_drops_the_last_box(boxes, scores, iou_threshold):
    order = scores.argsort(descending=True)
    keep = []
    while order.numel() > 1:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        order = rest[good_iou(boxes[best][None], boxes[rest])[0] <= iou_threshold]
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def nms_plus_one_iou(boxes, scores, iou_threshold):
    iou = iou_plus_one(boxes, boxes)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in scores.argsort(descending=True).tolist():
        if not suppressed[i]:
            keep.append(i)
            suppressed |= iou[i] > iou_threshold
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def nms_drops_low_scores(boxes, scores, iou_threshold):
    confident = torch.nonzero(scores >= iou_threshold).squeeze(1)
    return confident[good_nms(boxes[confident], scores[confident], iou_threshold)]


def nms_indices_into_sorted_boxes(boxes, scores, iou_threshold):
    order = scores.argsort(descending=True)
    return good_nms(boxes[order], scores[order], iou_threshold).sort().values


def nms_indices_in_index_order(boxes, scores, iou_threshold):
    return good_nms(boxes, scores, iou_threshold).sort().values


def nms_returns_boxes(boxes, scores, iou_threshold):
    return boxes[good_nms(boxes, scores, iou_threshold)]


def nms_returns_a_mask(boxes, scores, iou_threshold):
    mask = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    mask[good_nms(boxes, scores, iou_threshold)] = True
    return mask


def nms_int32_indices(boxes, scores, iou_threshold):
    return good_nms(boxes, scores, iou_threshold).int()


def nms_python_list(boxes, scores, iou_threshold):
    return good_nms(boxes, scores, iou_threshold).tolist()


def nms_stack_of_indices(boxes, scores, iou_threshold):
    return torch.stack([i for i in good_nms(boxes, scores, iou_threshold)])


def nms_squeezed(boxes, scores, iou_threshold):
    return good_nms(boxes, scores, iou_threshold).squeeze()


def nms_marks_suppressed_scores_in_place(boxes, scores, iou_threshold):
    iou = good_iou(boxes, boxes)
    keep = []
    for i in scores.argsort(descending=True).tolist():
        if scores[i] >= 0:
            keep.append(i)
            scores[
                (iou[i] > iou_threshold) & (torch.arange(len(scores), device=scores.device) != i)
            ] = -1.0
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def nms_on_cpu(boxes, scores, iou_threshold):
    return good_nms(boxes, scores, iou_threshold).cpu()


# ------------------------------------------------------------------------------------------------------------
# Wrong batched_nms
# ------------------------------------------------------------------------------------------------------------


def batched_ignores_classes(boxes, scores, idxs, iou_threshold):
    return good_nms(boxes, scores, iou_threshold)


def batched_offset_too_small(boxes, scores, idxs, iou_threshold):
    shifted = boxes + (idxs.to(boxes) * 10)[:, None]
    return good_nms(shifted, scores, iou_threshold)


def batched_concatenated_by_class(boxes, scores, idxs, iou_threshold):
    keep = [torch.zeros(0, dtype=torch.long, device=boxes.device)]
    for c in torch.unique(idxs):
        members = torch.nonzero(idxs == c).squeeze(1)
        keep.append(members[good_nms(boxes[members], scores[members], iou_threshold)])
    return torch.cat(keep)


def batched_indices_within_each_class(boxes, scores, idxs, iou_threshold):
    keep = [torch.zeros(0, dtype=torch.long, device=boxes.device)]
    for c in torch.unique(idxs):
        members = torch.nonzero(idxs == c).squeeze(1)
        keep.append(good_nms(boxes[members], scores[members], iou_threshold))
    keep = torch.cat(keep)
    return keep[scores[keep].argsort(descending=True)]


def _per_class(boxes, scores, idxs, iou_threshold, classes):
    keep = [torch.zeros(0, dtype=torch.long, device=boxes.device)]
    for c in classes:
        members = torch.nonzero(idxs == c).squeeze(1)
        keep.append(members[good_nms(boxes[members], scores[members], iou_threshold)])
    keep = torch.cat(keep)
    return keep[scores[keep].argsort(descending=True)]


def batched_skips_class_zero(boxes, scores, idxs, iou_threshold):
    classes = range(1, int(idxs.max()) + 1) if len(idxs) else []
    return _per_class(boxes, scores, idxs, iou_threshold, classes)


def batched_misses_the_last_class(boxes, scores, idxs, iou_threshold):
    classes = range(int(idxs.max())) if len(idxs) else []
    return _per_class(boxes, scores, idxs, iou_threshold, classes)


def batched_max_of_empty_classes(boxes, scores, idxs, iou_threshold):
    return _per_class(boxes, scores, idxs, iou_threshold, range(int(idxs.max()) + 1))


def batched_suppresses_at_equal_iou(boxes, scores, idxs, iou_threshold):
    keep = [torch.zeros(0, dtype=torch.long, device=boxes.device)]
    for c in torch.unique(idxs):
        members = torch.nonzero(idxs == c).squeeze(1)
        keep.append(
            members[nms_suppresses_at_equal_iou(boxes[members], scores[members], iou_threshold)]
        )
    keep = torch.cat(keep)
    return keep[scores[keep].argsort(descending=True)]


def batched_keeps_the_lowest_score(boxes, scores, idxs, iou_threshold):
    keep = [torch.zeros(0, dtype=torch.long, device=boxes.device)]
    for c in torch.unique(idxs):
        members = torch.nonzero(idxs == c).squeeze(1)
        keep.append(
            members[nms_keeps_the_lowest_score(boxes[members], scores[members], iou_threshold)]
        )
    keep = torch.cat(keep)
    return keep[scores[keep].argsort(descending=True)]


def batched_list_per_class(boxes, scores, idxs, iou_threshold):
    keep = []
    for c in torch.unique(idxs):
        members = torch.nonzero(idxs == c).squeeze(1)
        keep.append(members[good_nms(boxes[members], scores[members], iou_threshold)])
    return keep


def batched_on_cpu(boxes, scores, idxs, iou_threshold):
    return good_batched_nms(boxes, scores, idxs, iou_threshold).cpu()


# ------------------------------------------------------------------------------------------------------------
# The table: check, wrong implementation, what the message must say
# ------------------------------------------------------------------------------------------------------------


VALUES = "values differ"
SHAPE = "returned shape"
DTYPE = "returned dtype"
RAISED = "raised"
DEVICE = "but the inputs were on cuda"
INPLACE = "in place"

WRONG = [
    Wrong(check_box_area, area_plus_one, VALUES),
    Wrong(check_box_area, area_from_xywh, VALUES),
    Wrong(check_box_area, area_columns_read_as_x1_x2_y1_y2, VALUES),
    Wrong(check_box_area, area_width_squared, VALUES),
    Wrong(check_box_area, area_rows_instead_of_columns, "raised IndexError"),
    Wrong(check_box_area, area_summed, "A dimension is missing"),
    Wrong(check_box_area, area_keeps_a_column_dimension, "extra dimension"),
    Wrong(check_box_area, area_squeezed, "returned shape (), expected (1,)"),
    Wrong(check_box_area, area_truncated_to_integers, DTYPE),
    Wrong(check_box_area, area_always_float32, "dtype torch.float32, expected torch.float64"),
    Wrong(check_box_area, area_in_half_precision, VALUES),
    Wrong(check_box_area, area_python_loop, "dtype torch.float32, expected torch.float64"),
    Wrong(check_box_area, area_stack_of_rows, RAISED),
    Wrong(check_box_area, area_clamped_to_at_least_one, VALUES),
    Wrong(check_box_area, area_as_numpy, "numpy.ndarray"),
    Wrong(check_box_area, area_as_list, "returned a list"),
    Wrong(check_box_area, area_without_return, "forget the `return`"),
    Wrong(check_box_area, area_in_place, "modified its input `boxes` in place"),
    Wrong(check_box_area, area_on_cpu, DEVICE, cuda_only=True),
    Wrong(check_box_iou, iou_plus_one, VALUES),
    Wrong(check_box_iou, iou_without_clamp, VALUES),
    Wrong(check_box_iou, iou_clamp_after_multiplying, VALUES),
    Wrong(check_box_iou, iou_union_without_subtracting_intersection, VALUES),
    Wrong(check_box_iou, iou_over_the_smaller_box, VALUES),
    Wrong(check_box_iou, iou_over_the_first_box, VALUES),
    Wrong(check_box_iou, iou_transposed, "transposed"),
    Wrong(check_box_iou, iou_row_by_row_pairs, SHAPE),
    Wrong(check_box_iou, iou_floor_division, VALUES),
    Wrong(check_box_iou, iou_integer_intersection, VALUES),
    Wrong(
        check_box_iou, iou_result_in_the_boxes_dtype, "dtype torch.int64, expected torch.float32"
    ),
    Wrong(check_box_iou, iou_corners_min_max_swapped, VALUES),
    Wrong(check_box_iou, iou_x_and_y_mixed_up, VALUES),
    Wrong(check_box_iou, iou_areas_from_xywh, VALUES),
    Wrong(check_box_iou, iou_python_loops, "dtype torch.float32, expected torch.float64"),
    Wrong(check_box_iou, iou_stack_of_rows, RAISED),
    Wrong(check_box_iou, iou_squeezed, "A dimension is missing"),
    Wrong(check_box_iou, iou_best_match_per_box, "A dimension is missing"),
    Wrong(check_box_iou, iou_always_float32, "dtype torch.float32, expected torch.float64"),
    Wrong(check_box_iou, iou_as_numpy, "numpy.ndarray"),
    Wrong(check_box_iou, iou_converts_boxes1_in_place, "modified its input `boxes1` in place"),
    Wrong(check_box_iou, iou_on_cpu, DEVICE, cuda_only=True),
    Wrong(check_nms, nms_keeps_the_lowest_score, "decreasing score order"),
    Wrong(check_nms, nms_without_sorting, "decreasing score order"),
    Wrong(check_nms, nms_suppresses_at_equal_iou, "should have been kept"),
    Wrong(check_nms, nms_inverted_threshold, "should have been kept"),
    Wrong(check_nms, nms_suppressed_boxes_still_suppress, "should have been kept"),
    Wrong(check_nms, nms_drops_the_last_box, "should have been kept"),
    Wrong(check_nms, nms_plus_one_iou, "should have been kept"),
    Wrong(check_nms, nms_drops_low_scores, "should have been kept"),
    Wrong(check_nms, nms_indices_into_sorted_boxes, "box"),
    Wrong(check_nms, nms_indices_in_index_order, "decreasing score order"),
    Wrong(check_nms, nms_returns_boxes, "returned boxes"),
    Wrong(check_nms, nms_returns_a_mask, "boolean mask"),
    Wrong(check_nms, nms_int32_indices, "dtype torch.int32"),
    Wrong(check_nms, nms_python_list, "returned a list"),
    Wrong(check_nms, nms_stack_of_indices, RAISED),
    Wrong(check_nms, nms_squeezed, "returned shape ()"),
    Wrong(check_nms, nms_marks_suppressed_scores_in_place, "modified its input `scores` in place"),
    Wrong(check_nms, nms_on_cpu, DEVICE, cuda_only=True),
    Wrong(check_batched_nms, batched_ignores_classes, "should have been kept"),
    Wrong(check_batched_nms, batched_offset_too_small, "should have been kept"),
    Wrong(check_batched_nms, batched_concatenated_by_class, "decreasing score order"),
    Wrong(check_batched_nms, batched_indices_within_each_class, "box"),
    Wrong(check_batched_nms, batched_skips_class_zero, "should have been kept"),
    Wrong(check_batched_nms, batched_misses_the_last_class, "should have been kept"),
    Wrong(check_batched_nms, batched_max_of_empty_classes, RAISED),
    Wrong(check_batched_nms, batched_suppresses_at_equal_iou, "should have been kept"),
    Wrong(check_batched_nms, batched_keeps_the_lowest_score, "should have been kept"),
    Wrong(check_batched_nms, batched_list_per_class, "returned a list"),
    Wrong(check_batched_nms, batched_on_cpu, DEVICE, cuda_only=True),
]


# ------------------------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------------------------


def test_the_module_lists_its_checks():
    assert all_checks()["boxes"] == CHECKS
    assert len({c.function_name for c in CHECKS}) == len(CHECKS)
    assert all(c.reference.__module__.startswith("torchvision") for c in CHECKS)


@pytest.mark.parametrize(
    "make_cases", [box_area_cases, box_iou_cases, nms_cases, batched_nms_cases]
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
    sizes = {len(c.args[0]) for c in first}
    assert 0 in sizes and 1 in sizes  # no boxes, and a batch of one
    if torch.cuda.is_available():
        assert any(c.args[0].is_cuda for c in first)


@pytest.mark.parametrize("make_cases", [nms_cases, batched_nms_cases])
def test_random_nms_cases_keep_every_iou_away_from_the_threshold(make_cases):
    for case in make_cases():
        boxes, threshold = case.args[0].cpu().double(), case.args[-1]
        if len(boxes) < 10:
            continue
        iou = torchvision.ops.box_iou(boxes, boxes)
        off_diagonal = ~torch.eye(len(boxes), dtype=torch.bool)
        assert ((iou - threshold).abs()[off_diagonal] > 1e-3).all(), case.name
        assert ((iou > threshold) & off_diagonal).any(), (
            f"{case.name}: no box should be suppressed?"
        )


def test_nms_tie_case_has_two_valid_answers():
    """The tie case is only meaningful if the two tie-breaking orders really keep different boxes."""
    case = next(c for c in nms_cases() if c.name.startswith("tied scores"))
    a, b = good_nms(*case.args), good_nms_ties_reversed(*case.args)
    assert len(a) == len(b) == 2 and not torch.equal(a, b)


def test_nms_message_shows_the_reference_answer():
    with pytest.raises(CheckFailed) as info:
        check_nms(nms_keeps_the_lowest_score)
    message = str(info.value)
    assert "expected: [1, 3, 2, 0]" in message and "got:      [0, 2, 3, 1]" in message
