"""The non-maximum suppression checks accept correct functions and reject stubs and plausible
student mistakes.

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
from course_utils.grading.checks.nms import (
    CHECKS,
    batched_nms_cases,
    check_batched_nms,
    check_nms,
    nms_cases,
)
from course_utils.grading.runner import CheckFailed


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
    """Correct, but breaks score ties the other way round than argsort(descending=True,
    stable=True)."""
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


def area_plus_one(boxes):
    return (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)


def iou_plus_one(boxes1, boxes2):
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    sides = (bottom_right - top_left + 1).clamp(min=0)
    inter = sides[..., 0] * sides[..., 1]
    return inter / (area_plus_one(boxes1)[:, None] + area_plus_one(boxes2)[None, :] - inter)


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


RAISED = "raised"


DEVICE = "but the inputs were on cuda"


CORRECT = [
    (check_nms, torchvision.ops.nms),
    (check_nms, good_nms),
    (check_nms, good_nms_ties_reversed),
    (check_batched_nms, torchvision.ops.batched_nms),
    (check_batched_nms, good_batched_nms),
]


WRONG = [
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


def test_the_module_lists_its_checks():
    assert all_checks()["nms"] == CHECKS
    assert [c.function_name for c in CHECKS] == ["nms", "batched_nms"]
    assert [c.reference for c in CHECKS] == [torchvision.ops.nms, torchvision.ops.batched_nms]


@pytest.mark.parametrize("check", [check_nms, check_batched_nms])
def test_cases_are_deterministic_and_cover_edge_cases(check):
    cases = assert_cases_deterministic_with_hints(check.cases)
    sizes = {len(c.args[0]) for c in cases}
    assert 0 in sizes and 1 in sizes  # no boxes, and a batch of one
    if torch.cuda.is_available():
        assert any(c.args[0].is_cuda for c in cases)


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
    """The tie case is only meaningful if the two tie-breaking orders keep different boxes."""
    case = next(c for c in nms_cases() if c.name.startswith("tied scores"))
    a, b = good_nms(*case.args), good_nms_ties_reversed(*case.args)
    assert len(a) == len(b) == 2 and not torch.equal(a, b)


def test_nms_message_shows_the_reference_answer():
    with pytest.raises(CheckFailed) as info:
        check_nms(nms_keeps_the_lowest_score)
    message = str(info.value)
    assert "expected: [1, 3, 2, 0]" in message and "got:      [0, 2, 3, 1]" in message
