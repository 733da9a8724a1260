"""The box-coding checks accept correct functions and reject stubs and plausible student mistakes.

Each ``Wrong`` below is a real, deliberately wrong implementation a student might write; the check
must raise CheckFailed for it, with a message that says what is wrong (``says``);
``tests/test_check_contract.py`` runs them all.
"""

from __future__ import annotations

import pytest
import torch
from check_contract import Wrong, assert_cases_deterministic_with_hints

from course_utils.detection import box_coding
from course_utils.grading.checks import all_checks
from course_utils.grading.checks.box_coding import (
    CHECKS,
    check_decode_boxes,
    check_encode_boxes,
    decode_boxes_cases,
    encode_boxes_cases,
    torchvision_decode_boxes,
    torchvision_encode_boxes,
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


CORRECT = [
    (check_encode_boxes, good_encode),
    (check_encode_boxes, box_coding.encode_boxes),
    (check_decode_boxes, good_decode),
    (check_decode_boxes, box_coding.decode_boxes),
]


WRONG = [
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
]


def test_the_module_lists_its_checks():
    assert all_checks()["box_coding"] == CHECKS == (check_encode_boxes, check_decode_boxes)
    assert check_encode_boxes.reference is torchvision_encode_boxes
    assert check_decode_boxes.reference is torchvision_decode_boxes


@pytest.mark.parametrize("make_cases", [encode_boxes_cases, decode_boxes_cases])
def test_cases_are_deterministic_and_cover_edge_cases(make_cases):
    cases = assert_cases_deterministic_with_hints(make_cases)
    sizes = {len(c.args[0]) for c in cases}
    assert 0 in sizes and 1 in sizes  # no boxes, and a batch of one
    assert any(c.args[0].dtype == torch.float64 for c in cases)


def test_the_references_are_inverse_and_match_the_formulas():
    case = next(c for c in encode_boxes_cases() if c.name == "20 random pairs")
    proposals, gt = case.args
    deltas = torchvision_encode_boxes(proposals, gt)
    torch.testing.assert_close(deltas, good_encode(proposals, gt), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        torchvision_decode_boxes(proposals, deltas), gt, rtol=1e-4, atol=1e-4
    )
