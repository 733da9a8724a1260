"""The proposal-labelling checks accept correct functions and reject stubs and plausible student
mistakes.

Each ``Wrong`` below is a real, deliberately wrong implementation a student might write; the check
must raise CheckFailed for it, with a message that says what is wrong (``says``);
``tests/test_check_contract.py`` runs them all.
"""

from __future__ import annotations

import torch
import torchvision
from check_contract import Wrong, assert_cases_deterministic_with_hints
from torchvision.models.detection._utils import Matcher

from course_utils.detection import proposal_labels
from course_utils.grading.checks import all_checks
from course_utils.grading.checks.labelling import (
    CHECKS,
    check_label_proposals,
    label_proposals_cases,
    torchvision_label_proposals,
)


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
    """Labels each proposal with the LAST ground truth it overlaps >= fg (a loop over boxes, no
    max)."""
    labels, matched = good_label_proposals(proposals, gt_boxes, gt_labels, fg, bg)
    if len(gt_boxes) and len(proposals):
        iou = torchvision.ops.box_iou(proposals, gt_boxes)
        for j in range(len(gt_boxes)):
            matched = torch.where(iou[:, j] > 0, torch.full_like(matched, j), matched)
    return labels, matched


CORRECT = [
    (check_label_proposals, torchvision_label_proposals),
    (check_label_proposals, proposal_labels.label_proposals),
    (check_label_proposals, good_label_proposals),
    (check_label_proposals, good_label_proposals_loop),
]


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
]


def test_the_module_lists_its_checks():
    assert all_checks()["labelling"] == CHECKS == (check_label_proposals,)
    assert check_label_proposals.reference is torchvision_label_proposals


def test_cases_are_deterministic_and_cover_edge_cases():
    cases = assert_cases_deterministic_with_hints(label_proposals_cases)
    sizes = {len(c.args[0]) for c in cases}
    assert 0 in sizes and 1 in sizes  # no proposals, and a batch of one
    assert any(len(c.args[1]) == 0 for c in cases)  # no ground truth


def test_label_reference_agrees_with_the_course_module_and_matcher():
    for case in label_proposals_cases():
        expected = torchvision_label_proposals(*case.args)
        got = proposal_labels.label_proposals(*case.args)
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


def test_random_labelling_case_has_every_kind_of_proposal():
    case = next(c for c in label_proposals_cases() if c.name.startswith("40 random"))
    labels, _ = torchvision_label_proposals(*case.args)
    assert (labels > 0).sum() >= 5 and (labels == 0).sum() >= 5 and (labels == -1).sum() >= 5
