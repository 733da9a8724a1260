"""The box area and IoU checks accept correct functions and reject stubs and plausible student
mistakes.

Each ``Wrong`` below is a real, deliberately wrong implementation a student might write; the check
must raise CheckFailed for it, with a message that says what is wrong (``says``);
``tests/test_check_contract.py`` runs them all.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from check_contract import Wrong, assert_cases_deterministic_with_hints

from course_utils.grading.checks import all_checks
from course_utils.grading.checks.boxes import CHECKS, check_box_area, check_box_iou


def good_area(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def good_iou(boxes1, boxes2):
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    sides = (bottom_right - top_left).clamp(min=0)
    inter = sides[..., 0] * sides[..., 1]
    union = good_area(boxes1)[:, None] + good_area(boxes2)[None, :] - inter
    return inter / union


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


VALUES = "values differ"


SHAPE = "returned shape"


DTYPE = "returned dtype"


RAISED = "raised"


DEVICE = "but the inputs were on cuda"


CORRECT = [
    (check_box_area, torchvision.ops.box_area),
    (check_box_area, good_area),
    (check_box_iou, torchvision.ops.box_iou),
    (check_box_iou, good_iou),
]


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
]


def test_the_module_lists_its_checks():
    assert all_checks()["boxes"] == CHECKS
    assert [c.function_name for c in CHECKS] == ["box_area", "box_iou"]
    assert [c.reference for c in CHECKS] == [torchvision.ops.box_area, torchvision.ops.box_iou]


@pytest.mark.parametrize("check", [check_box_area, check_box_iou])
def test_cases_are_deterministic_and_cover_edge_cases(check):
    cases = assert_cases_deterministic_with_hints(check.cases)
    sizes = {len(c.args[0]) for c in cases}
    assert 0 in sizes and 1 in sizes  # no boxes, and a batch of one
    assert any(c.args[0].dtype == torch.float64 for c in cases)
    if torch.cuda.is_available():
        assert any(c.args[0].is_cuda for c in cases)


def test_iou_cases_include_integer_boxes_and_both_empty_sides():
    cases = check_box_iou.cases()
    assert any(c.args[0].dtype == torch.int64 for c in cases)
    assert any(len(c.args[0]) == 0 and len(c.args[1]) > 0 for c in cases)
    assert any(len(c.args[1]) == 0 and len(c.args[0]) > 0 for c in cases)
