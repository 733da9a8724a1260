"""The Faster R-CNN checks (anchors, matching, the RPN head, proposals) accept correct answers and
reject stubs and plausible student mistakes.

Each ``Wrong`` below is a real, deliberately wrong implementation a student might write (written in
``tests/rpn_wrongs.py``); the check must raise CheckFailed for it, with a message that says what is
wrong (``says``); ``tests/test_check_contract.py`` runs them all. The other tests prove that the
references are torchvision's and that the cases have no knife-edge values.
"""

from __future__ import annotations

import pytest
import rpn_wrongs as w
import torch
from check_contract import Wrong, assert_cases_deterministic_with_hints
from torch import nn
from torchvision.models.detection import rpn as tv_rpn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import box_iou, clip_boxes_to_image

from course_utils.detection import anchors, box_coding, rpn
from course_utils.grading.checks import all_checks
from course_utils.grading.checks.rpn import (
    CHECKS,
    anchor_boxes_cases,
    check_anchor_boxes,
    check_match_anchors,
    check_rpn_proposals,
    check_RPNHead,
    match_anchors_cases,
    rpn_head_cases,
    rpn_proposals_cases,
    torchvision_anchor_boxes,
    torchvision_match_anchors,
)

CORRECT = [
    (check_anchor_boxes, anchors.anchor_boxes),
    (check_anchor_boxes, w.good_anchor_boxes),
    (check_anchor_boxes, w.good_anchor_boxes_loops),
    (check_match_anchors, anchors.match_anchors),
    (check_match_anchors, w.good_match_anchors),
    (check_match_anchors, w.good_match_anchors_loops),
    (check_RPNHead, rpn.RPNHead),
    (check_RPNHead, w.GoodRPNHead),
    (check_RPNHead, w.GoodRPNHeadReLUModule),
    (check_rpn_proposals, rpn.rpn_proposals),
    (check_rpn_proposals, w.good_rpn_proposals),
    (check_rpn_proposals, w.good_rpn_proposals_box_coder),
]

_ANCHORS, _MATCH, _HEAD, _PROPOSALS = CHECKS

WRONG = [
    Wrong(_ANCHORS, w.anchors_at_cell_centres, "expected -16, got -8"),
    Wrong(_ANCHORS, w.anchors_ratio_as_w_over_h, "tall ratio"),
    Wrong(_ANCHORS, w.anchors_area_not_kept, "kept in area"),
    Wrong(_ANCHORS, w.anchors_x_y_swapped, "x goes along the w columns"),
    Wrong(_ANCHORS, w.anchors_stride_twice, "expected 0, got 240"),
    Wrong(_ANCHORS, w.anchors_not_rounded, "got -11.3137"),
    Wrong(_ANCHORS, w.anchors_sizes_major, "ratio-major"),
    Wrong(_ANCHORS, w.anchors_templates_outer, "cells row by row"),
    Wrong(_ANCHORS, w.anchors_full_sides, "expected -16, got -32"),
    Wrong(_ANCHORS, w.anchors_not_flattened, "returned shape (2, 3, 1, 4), expected (6, 4)"),
    Wrong(_ANCHORS, w.anchors_float64, "returned dtype torch.float64"),
    Wrong(_MATCH, w.match_without_low_quality, "a tiny 4x4 object"),
    Wrong(_MATCH, w.match_one_best_anchor_per_gt, "two anchors tie"),
    Wrong(_MATCH, w.match_strict_high, "exactly equal to high"),
    Wrong(_MATCH, w.match_loose_low, "should be -2 (ignored), got -1 (background)"),
    Wrong(_MATCH, w.match_thresholds_swapped, "anchor 3 should be -2 (ignored), got 0"),
    Wrong(_MATCH, w.match_crashes_without_gt, "raised IndexError"),
    Wrong(_MATCH, w.match_zeros_without_gt, "should be -1 (background), got 0"),
    Wrong(_MATCH, w.match_ignored_as_background, "should be -2 (ignored), got -1"),
    Wrong(_MATCH, w.match_low_quality_to_their_gt, "OWN best ground-truth box"),
    Wrong(_MATCH, w.match_low_quality_before_thresholds, "apply it AFTER the thresholds"),
    Wrong(_MATCH, w.match_returns_labels, "not labels"),
    Wrong(_MATCH, w.match_float_dtype, "expected torch.int64"),
    Wrong(_HEAD, w.HeadWithoutReLU, "objectness values differ"),
    Wrong(_HEAD, w.HeadOneByOneConv, "self.conv has kernel_size (1, 1), expected (3, 3)"),
    Wrong(_HEAD, w.HeadUnpadded, "self.conv has padding (0, 0), expected (1, 1)"),
    Wrong(_HEAD, w.HeadStride2, "self.conv has stride (2, 2)"),
    Wrong(_HEAD, w.HeadSigmoidObjectness, "return the raw logits"),
    Wrong(_HEAD, w.HeadFourBoxChannels, "self.bbox_pred has out_channels 4, expected 12"),
    Wrong(_HEAD, w.HeadReLUOnOutputs, "no ReLU after cls_logits"),
    Wrong(_HEAD, w.HeadClsReadsFeatures, "cls_logits and bbox_pred both read"),
    Wrong(_HEAD, w.HeadSoftmaxLogits, "torchvision and the course use ONE sigmoid"),
    Wrong(_HEAD, w.HeadOutputsSwapped, "forward returns"),
    Wrong(_HEAD, w.HeadBatchNorm, "besides its three convolutions"),
    Wrong(_HEAD, w.HeadInEvalMode, "eval mode"),
    Wrong(_HEAD, w.HeadConvInSequential, "must be an nn.Conv2d, found a Sequential"),
    Wrong(_PROPOSALS, w.proposals_without_sigmoid, "sigmoid(objectness), not the logit"),
    Wrong(_PROPOSALS, w.proposals_without_clipping, "sticks out of the"),
    Wrong(_PROPOSALS, w.proposals_clipped_after_nms, "expected 58: too many"),
    Wrong(_PROPOSALS, w.proposals_ignore_pre_nms_top_n, "expected 10: too many"),
    Wrong(_PROPOSALS, w.proposals_ignore_post_nms_top_n, "more than post_nms_top_n = 6"),
    Wrong(_PROPOSALS, w.proposals_without_nms, "too many"),
    Wrong(_PROPOSALS, w.proposals_nms_threshold_fixed, "nms_threshold 0.4"),
    Wrong(_PROPOSALS, w.proposals_fast_rcnn_weights, "expected 58: too few"),
    Wrong(_PROPOSALS, w.proposals_without_exp, "too few"),
    Wrong(_PROPOSALS, w.proposals_small_boxes_before_clipping, "the min_size filter"),
    Wrong(_PROPOSALS, w.proposals_ignore_min_size, "the min_size filter"),
    Wrong(_PROPOSALS, w.proposals_x_y_swapped, "other boxes were kept"),
    Wrong(_PROPOSALS, w.proposals_unsorted, "not sorted by decreasing score"),
]


def test_the_module_lists_its_checks():
    assert all_checks()["rpn"] == CHECKS
    assert [check.function_name for check in CHECKS] == [
        "anchor_boxes",
        "match_anchors",
        "RPNHead",
        "rpn_proposals",
    ]
    assert check_anchor_boxes.reference is torchvision_anchor_boxes
    assert check_match_anchors.reference is torchvision_match_anchors
    assert check_RPNHead.reference is rpn.RPNHead
    assert check_rpn_proposals.reference is rpn.rpn_proposals


@pytest.mark.parametrize(
    "make_cases",
    [anchor_boxes_cases, match_anchors_cases, rpn_head_cases, rpn_proposals_cases],
)
def test_cases_are_deterministic_and_have_hints(make_cases):
    assert len(assert_cases_deterministic_with_hints(make_cases)) >= 3


def test_anchor_cases_never_round_a_half():
    """No half-side is near x.5, where float32 vs float64 or round-half-even vs half-up differ;
    every case's anchors are the course's too."""
    for case in anchor_boxes_cases():
        _, _, sizes, ratios = case.args
        sides = torch.tensor([[s / r**0.5, s * r**0.5] for r in ratios for s in sizes]) / 2
        assert ((sides - sides.floor() - 0.5).abs() > 1e-3).all(), case.name
        assert torch.equal(torchvision_anchor_boxes(*case.args), anchors.anchor_boxes(*case.args))
    non_square = [c for c in anchor_boxes_cases() if c.args[0][0] != c.args[0][1]]
    assert len(non_square) >= 4


def _match_case(words: str):
    return next(c for c in match_anchors_cases() if words in c.name)


def test_match_cases_avoid_torchvision_degenerate_inputs():
    """Every ground-truth box overlaps an anchor, and no anchor's best IoU is shared by two
    boxes (where the argmax would be arbitrary)."""
    for case in match_anchors_cases():
        anchor_boxes, gt_boxes, high, low = case.args
        assert 0 <= low < high <= 1
        if len(gt_boxes) == 0:
            continue
        iou = box_iou(gt_boxes, anchor_boxes)
        assert (iou.max(dim=1).values > 0).all(), case.name
        if len(gt_boxes) > 1:
            top2 = iou.topk(2, dim=0).values
            assert ((top2[0] > top2[1]) | (top2[0] == 0)).all(), case.name


def test_match_cases_hit_the_thresholds_exactly():
    for words, threshold in [("equal to high", 2), ("equal to low", 3)]:
        case = _match_case(words)
        iou = box_iou(case.args[1], case.args[0])
        assert (iou == case.args[threshold]).any()
    tiny = _match_case("tiny")
    assert box_iou(tiny.args[1], tiny.args[0]).max() < tiny.args[3]
    tie = box_iou(*_match_case("tie").args[1::-1])[0]
    assert (tie == tie.max()).sum() == 2


def test_rpn_head_reference_is_torchvision_with_the_same_weights():
    g = torch.Generator().manual_seed(0)
    ours, theirs = rpn.RPNHead(6, 3), tv_rpn.RPNHead(6, 3)
    with torch.no_grad():
        for parameter in ours.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=g))
    state = {k.replace("conv.", "conv.0.0.", 1): v for k, v in ours.state_dict().items()}
    theirs.load_state_dict(state)
    features = torch.randn(2, 6, 5, 7, generator=g)
    objectness, deltas = ours(features)
    (want_objectness,), (want_deltas,) = theirs([features])
    torch.testing.assert_close(objectness, want_objectness)
    torch.testing.assert_close(deltas, want_deltas)
    assert objectness.shape == (2, 3, 5, 7) and deltas.shape == (2, 12, 5, 7)


@pytest.mark.parametrize(
    ("pre", "post", "threshold", "min_size"), [(1000, 1000, 0.7, 1e-3), (30, 10, 0.5, 6.0)]
)
def test_rpn_proposals_reference_is_torchvision_filter_proposals(pre, post, threshold, min_size):
    g = torch.Generator().manual_seed(1)
    sizes, ratios = (16.0, 32.0), (0.5, 1.0, 2.0)
    anchor_boxes = anchors.anchor_boxes((4, 6), 8, sizes, ratios)
    objectness = torch.randn(len(anchor_boxes), generator=g)
    deltas = torch.randn(len(anchor_boxes), 4, generator=g) * 0.3
    network = tv_rpn.RegionProposalNetwork(
        AnchorGenerator((sizes,), (ratios,)),
        tv_rpn.RPNHead(8, 6),
        0.7,
        0.3,
        256,
        0.5,
        pre_nms_top_n={"training": pre, "testing": pre},
        post_nms_top_n={"training": post, "testing": post},
        nms_thresh=threshold,
    ).eval()
    network.min_size = min_size
    proposals = network.box_coder.decode(deltas, [anchor_boxes]).view(1, -1, 4)
    (want_boxes,), (want_scores,) = network.filter_proposals(
        proposals, objectness[None], [(32, 48)], [len(anchor_boxes)]
    )
    boxes, scores = rpn.rpn_proposals(
        anchor_boxes, objectness, deltas, (32, 48), pre, post, threshold, min_size
    )
    assert 0 < len(boxes) < len(anchor_boxes)
    torch.testing.assert_close(boxes, want_boxes)
    torch.testing.assert_close(scores, want_scores)


def test_proposal_cases_have_no_knife_edges():
    """No tied logits; no clipped box's side within 0.01 pixel of min_size (or min_size / 2);
    no pair of candidate boxes within 0.001 of the NMS threshold; some boxes stick out of the
    image."""
    sticking_out = 0
    for case in rpn_proposals_cases():
        anchor_boxes, objectness, deltas, size, pre, _, threshold, min_size = case.args
        assert len(objectness.unique()) == len(objectness), case.name
        top = objectness.topk(min(pre, len(objectness))).indices
        decoded = box_coding.decode_boxes(anchor_boxes[top], deltas[top])
        boxes = clip_boxes_to_image(decoded, size)
        sticking_out += int((boxes != decoded).any(dim=1).sum())
        sides = torch.cat([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]])
        assert ((sides - min_size).abs() > min(0.01, min_size / 2)).all(), case.name
        kept = boxes[(sides.view(2, -1) >= min_size).all(dim=0)]
        assert ((box_iou(kept, kept) - threshold).abs() > 1e-3).all(), case.name
    assert sticking_out > 50


@pytest.mark.parametrize("words", ["pre_nms_top_n = 12", "post_nms_top_n = 6", "min_size 9"])
def test_each_proposal_setting_changes_the_answer(words):
    case = next(c for c in rpn_proposals_cases() if words in c.name)
    default = (*case.args[:4], 1000, 1000, case.args[6], 1e-3)
    assert len(rpn.rpn_proposals(*case.args)[0]) < len(rpn.rpn_proposals(*default)[0])


class _StubInInit(nn.Module):
    def __init__(self, in_channels, num_anchors):
        super().__init__()
        raise NotImplementedError()


class _StubInForward(w.GoodRPNHead):
    def forward(self, features):
        raise NotImplementedError()


@pytest.mark.parametrize("stub", [_StubInInit, _StubInForward])
def test_rpn_head_check_says_a_stub_class_is_not_written_yet(stub):
    with pytest.raises(NotImplementedError, match="RPNHead is not written yet"):
        check_RPNHead(stub)


def test_rpn_head_check_leaves_the_reference_class_alone():
    """The check copies random weights into its own instances only."""
    check_RPNHead(w.GoodRPNHead, quiet=True)
    head = rpn.RPNHead(8, 3)
    assert head.conv.bias.abs().max() == 0 and head.conv.weight.std() < 0.02
