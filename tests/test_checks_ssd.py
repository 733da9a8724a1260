"""The SSD checks (default boxes, matching, hard negative mining, the heads) accept correct answers
and reject stubs and plausible student mistakes.

Each ``Wrong`` below is a real, deliberately wrong implementation a student might write (written in
``tests/ssd_wrongs.py`` and ``tests/ssd_heads_wrongs.py``); the check must raise CheckFailed for it,
with a message that says what is wrong (``says``); ``tests/test_check_contract.py`` runs them all.
The other tests prove that the references agree with torchvision on every case and that the cases
have no knife-edge values.
"""

from __future__ import annotations

import pytest
import ssd_heads_wrongs as h
import ssd_wrongs as w
import torch
from check_contract import Wrong, assert_cases_deterministic_with_hints
from torch import nn
from torchvision.models.detection import ssd as tv_ssd
from torchvision.models.detection._utils import SSDMatcher
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import box_iou

from course_utils.detection import ssd, ssd_boxes
from course_utils.grading import runner
from course_utils.grading.checks import all_checks
from course_utils.grading.checks.ssd import (
    CHECKS,
    check_default_boxes,
    check_hard_negative_mining,
    check_match_default_boxes,
    check_SSDHeads,
    default_boxes_cases,
    hard_negative_mining_cases,
    match_default_boxes_cases,
    ssd_heads_cases,
)

CORRECT = [
    (check_default_boxes, ssd_boxes.default_boxes),
    (check_default_boxes, w.good_default_boxes),
    (check_default_boxes, w.good_default_boxes_loops),
    (check_match_default_boxes, ssd_boxes.match_default_boxes),
    (check_match_default_boxes, w.good_match_default_boxes),
    (check_match_default_boxes, w.good_match_default_boxes_loops),
    (check_hard_negative_mining, ssd_boxes.hard_negative_mining),
    (check_hard_negative_mining, w.good_hard_negative_mining),
    (check_hard_negative_mining, w.good_hard_negative_mining_loops),
    (check_SSDHeads, ssd.SSDHeads),
    (check_SSDHeads, h.GoodSSDHeads),
    (check_SSDHeads, h.GoodSSDHeadsLoops),
]

_BOXES, _MATCH, _MINING, _HEADS = CHECKS

WRONG = [
    Wrong(_BOXES, w.boxes_scales_shifted, "50 wide, 50 tall; yours has centre (50, 50), 80 wide"),
    Wrong(
        _BOXES, w.boxes_extra_next_scale, "63.25 wide, 63.25 tall; yours has centre (50, 50), 80"
    ),
    Wrong(_BOXES, w.boxes_extra_missing, "returned 3 boxes, expected 4 = 1*1*4"),
    Wrong(_BOXES, w.boxes_ratio_inverted, "box 2: ratio 2, wide; yours is the box of map 0, cell"),
    Wrong(_BOXES, w.boxes_corner_centres, "yours has centre (0, 0), 50 wide, 50 tall"),
    Wrong(
        _BOXES,
        w.boxes_box_major,
        "box 1: the extra square sqrt(s_k s_{k+1}); yours is the box of map 0",
    ),
    Wrong(_BOXES, w.boxes_column_major, "yours is the box of map 0, cell (row 1, column 0)"),
    Wrong(_BOXES, w.boxes_clip_corners, "your boxes were cut at the image's border"),
    Wrong(_BOXES, w.boxes_no_clip, "120 wide, 41.57 tall; yours has centre (60, 40), 187.1 wide"),
    Wrong(_BOXES, w.boxes_always_clip, "with clip=False nothing is clamped"),
    Wrong(_BOXES, w.boxes_sizes_by_height, "19.2 wide, 9.6 tall; yours has centre (16, 16), 9.6"),
    Wrong(_BOXES, w.boxes_cxcywh, "these are (cx, cy, w, h) boxes"),
    Wrong(_BOXES, w.boxes_relative, "these are fractions of the image"),
    Wrong(_BOXES, w.boxes_maps_reversed, "yours is the box of map 1, cell (row 0, column 0)"),
    Wrong(_BOXES, w.boxes_float64, "returned dtype torch.float64"),
    Wrong(
        _MATCH,
        w.match_no_forced,
        "best IoU is 0.16, with ground-truth box 0 (iou_threshold 0.5); it is the",
    ),
    Wrong(_MATCH, w.match_forced_then_threshold, "or the threshold undoes it"),
    Wrong(_MATCH, w.match_strict_threshold, "Its best IoU is 0.5, with ground-truth box 0"),
    Wrong(_MATCH, w.match_wrong_dimension, "returned one value per ground-truth box, shape (1,)"),
    Wrong(_MATCH, w.match_returns_labels, "These are 1 / 0 flags"),
    Wrong(_MATCH, w.match_crashes_without_gt, "raised IndexError"),
    Wrong(_MATCH, w.match_zeros_without_gt, "There is no ground-truth box to match"),
    Wrong(_MATCH, w.match_minus_two, "got -2 (8 of 8 default boxes wrong). SSD has no"),
    Wrong(_MATCH, w.match_forced_own_best, "should be 0 (ground-truth box 0), got 1"),
    Wrong(_MATCH, w.match_first_gt_wins, "should be 1 (ground-truth box 1), got 0"),
    Wrong(_MATCH, w.match_ties_all_forced, "only the first is forced"),
    Wrong(_MATCH, w.match_fixed_threshold, "(iou_threshold 0.3)"),
    Wrong(_MATCH, w.match_float, "expected torch.int64"),
    Wrong(_MATCH, w.match_on_cpu, "but the inputs were on cuda", cuda_only=True),
    Wrong(_MINING, w.mining_over_the_batch, "keeps 5 negatives, expected 3"),
    Wrong(_MINING, w.mining_positives_ranked, "keeps 2 negatives, expected 3"),
    Wrong(_MINING, w.mining_ratio_of_negatives, "keeps 2 negatives, expected 6"),
    Wrong(_MINING, w.mining_background_only_none, "keeps 0 negatives, expected 3"),
    Wrong(_MINING, w.mining_background_only_all, "keeps 7 negatives, expected 3"),
    Wrong(_MINING, w.mining_ascending, "Keep the negatives of HIGHEST loss"),
    Wrong(_MINING, w.mining_positives_dropped, "is a positive (label 1) but is not in your mask"),
    Wrong(_MINING, w.mining_k_not_capped, "raised RuntimeError"),
    Wrong(_MINING, w.mining_ties_higher_first, "Their losses are equal"),
    Wrong(_MINING, w.mining_fixed_ratio, "neg_pos_ratio 2) keeps 3 negatives, expected 2"),
    Wrong(_MINING, w.mining_long_mask, "expected torch.bool"),
    Wrong(_MINING, w.mining_on_cpu, "but the inputs were on cuda", cuda_only=True),
    Wrong(_HEADS, h.HeadsOneByOne, "has kernel_size (1, 1), expected (3, 3)"),
    Wrong(_HEADS, h.HeadsUnpadded, "has padding (0, 0), expected (1, 1)"),
    Wrong(_HEADS, h.HeadsOutputsSwapped, "(class_logits, box_deltas), in that order"),
    Wrong(_HEADS, h.HeadsBoxesBeforeCells, "the rows go box by box, then cell by cell"),
    Wrong(_HEADS, h.HeadsNumbersFirst, "not (N, X, b, h, w)"),
    Wrong(_HEADS, h.HeadsNoPermute, "reshaped without moving them last"),
    Wrong(_HEADS, h.HeadsColumnsFirst, "the cells go column by column"),
    Wrong(_HEADS, h.HeadsMapsReversed, "concatenated in reverse order"),
    Wrong(_HEADS, h.HeadsExtraBackground, "out_channels 16, expected 12: b_k * num_classes"),
    Wrong(_HEADS, h.HeadsNoBackground, "out_channels 8, expected 12: b_k * num_classes"),
    Wrong(_HEADS, h.HeadsSharedConv, "holds the same nn.Conv2d several times"),
    Wrong(_HEADS, h.HeadsPythonLists, "Python list: its layers' parameters are not registered"),
    Wrong(_HEADS, h.HeadsSoftmax, "look like softmax"),
    Wrong(_HEADS, h.HeadsBatchNorm, "besides their convolutions: norms.0.weight"),
    Wrong(_HEADS, h.HeadsReLU, "class_logits values differ"),
    Wrong(_HEADS, h.HeadsInEvalMode, "eval mode after SSDHeads"),
]


def test_the_module_lists_its_checks():
    assert all_checks()["ssd"] == CHECKS
    assert [check.function_name for check in CHECKS] == [
        "default_boxes",
        "match_default_boxes",
        "hard_negative_mining",
        "SSDHeads",
    ]
    assert check_default_boxes.reference is ssd_boxes.default_boxes
    assert check_match_default_boxes.reference is ssd_boxes.match_default_boxes
    assert check_hard_negative_mining.reference is ssd_boxes.hard_negative_mining
    assert check_SSDHeads.reference is ssd.SSDHeads


@pytest.mark.parametrize(
    "make_cases",
    [default_boxes_cases, match_default_boxes_cases, hard_negative_mining_cases, ssd_heads_cases],
)
def test_cases_are_deterministic_and_have_hints(make_cases):
    assert len(assert_cases_deterministic_with_hints(make_cases)) >= 3


# ---------------------------------------------------------------- the cases, against torchvision


@pytest.mark.parametrize("case", default_boxes_cases(), ids=lambda case: case.name[:40])
def test_default_box_cases_are_torchvision_default_boxes(case):
    feature_sizes, (height, width), scales, ratios, clip = case.args
    generator = DefaultBoxGenerator(ratios, scales=list(scales), clip=clip)
    images = ImageList(torch.zeros(1, 3, height, width), [(height, width)])
    maps = [torch.zeros(1, 1, h, w) for h, w in feature_sizes]
    torch.testing.assert_close(ssd_boxes.default_boxes(*case.args), generator(images, maps)[0])


def test_default_box_cases_show_each_rule():
    """Boxes stick out of the image (clip moves nothing), a size is clamped, images are not
    square, and a map is not square."""
    cases = default_boxes_cases()
    sticking_out = clamped = 0
    for case in cases:
        boxes = ssd_boxes.default_boxes(*case.args)
        height, width = case.args[1]
        limit = torch.tensor([width, height, width, height])
        sticking_out += int(((boxes < 0) | (boxes > limit)).any(dim=1).sum())
        unclipped = ssd_boxes.default_boxes(*case.args[:4], False)
        clamped += int((unclipped != boxes).any(dim=1).sum())
    assert sticking_out >= 10 and clamped >= 2
    assert any(c.args[1][0] != c.args[1][1] for c in cases)
    assert any(h != w for c in cases for h, w in c.args[0])


def _cpu_match_cases():
    return [case for case in match_default_boxes_cases() if "(on " not in case.name]


@pytest.mark.parametrize("case", _cpu_match_cases(), ids=lambda case: case.name[:40])
def test_match_cases_are_torchvision_ssd_matcher(case):
    defaults, gt_boxes, threshold = case.args
    matches = ssd_boxes.match_default_boxes(*case.args)
    if len(gt_boxes) == 0:
        assert (matches == -1).all()
    else:
        want = SSDMatcher(threshold)(box_iou(gt_boxes, defaults))
        assert torch.equal(matches, want)


def test_match_cases_hit_the_threshold_and_ties_exactly():
    named = {case.name.split(":")[0]: case for case in _cpu_match_cases()}
    case = named["an IoU exactly equal to the threshold (0.5) matches"]
    assert (box_iou(case.args[1], case.args[0]) == case.args[2]).any()
    case = next(c for c in _cpu_match_cases() if "tie for" in c.name)
    iou = box_iou(case.args[1], case.args[0])[0]
    assert (iou == iou.max()).sum() == 2 and iou.max() < case.args[2]
    case = next(c for c in _cpu_match_cases() if "pick the same" in c.name)
    assert len(set(box_iou(case.args[1], case.args[0]).argmax(dim=1).tolist())) == 1


def test_random_match_cases_have_no_knife_edges():
    """No IoU within 0.001 of the threshold; each gt's best box is clear by 0.001; no default
    box has two ground truths within 0.001 of its best IoU; each random case has forced matches
    and threshold matches."""
    for case in _cpu_match_cases():
        defaults, gt_boxes, threshold = case.args
        if "random" not in case.name and "float64" not in case.name:
            continue
        iou = box_iou(gt_boxes, defaults)
        assert ((iou - threshold).abs() > 1e-3).all(), case.name
        top = iou.topk(2, dim=1).values
        assert (top[:, 0] - top[:, 1] > 1e-3).all(), case.name
        pair = iou.topk(2, dim=0).values
        assert ((pair[0] - pair[1] > 1e-3) | (pair[0] < threshold - 1e-3)).all(), case.name
        if "random" in case.name:
            assert (top[:, 0] < threshold).sum() >= 1, case.name
            assert (iou.max(dim=0).values >= threshold).sum() >= 2, case.name


def test_the_shared_best_box_case_is_never_copied_to_another_device(monkeypatch):
    """On CUDA a repeated index in ``matches[best] = arange(G)`` keeps an arbitrary value."""
    devices = [torch.device("cpu"), torch.device("meta")]
    monkeypatch.setattr(runner, "check_devices", lambda: devices)
    cases = match_default_boxes_cases()
    copies = [case.name for case in cases if case.name.endswith("(on meta)")]
    assert len(copies) == len(cases) // 2
    assert not any("pick the same" in name for name in copies)


# ---------------------------------------------------------------- mining and heads


def test_mining_reference_keeps_torchvision_negatives_when_every_image_has_a_positive():
    """torchvision's SSD.compute_loss: -inf on the positives, sort, the neg_pos_ratio * P_n
    first; the random case's first two images both have positives."""
    case = next(c for c in hard_negative_mining_cases() if "random" in c.name)
    loss, labels, ratio = case.args
    loss, labels = loss[:2], labels[:2]
    positive = labels > 0
    ranked = loss.masked_fill(positive, -float("inf")).sort(dim=1, descending=True).indices
    negatives = ranked.sort(dim=1).indices < ratio * positive.sum(1, keepdim=True)
    assert positive.sum(1).min() > 0
    assert torch.equal(ssd_boxes.hard_negative_mining(loss, labels, ratio), positive | negatives)


def test_ssd_heads_reference_is_torchvision_with_the_same_weights():
    g = torch.Generator().manual_seed(0)
    ours, theirs = ssd.SSDHeads([6, 4], [4, 6], 3), tv_ssd.SSDHead([6, 4], [4, 6], 3)
    with torch.no_grad():
        for k in range(2):
            pairs = (
                (ours.classification[k], theirs.classification_head.module_list[k]),
                (ours.regression[k], theirs.regression_head.module_list[k]),
            )
            for mine, their in pairs:
                for name in ("weight", "bias"):
                    values = torch.randn(getattr(mine, name).shape, generator=g)
                    getattr(mine, name).copy_(values)
                    getattr(their, name).copy_(values)
    features = [torch.randn(2, 6, 5, 3, generator=g), torch.randn(2, 4, 2, 1, generator=g)]
    logits, deltas = ours(features)
    want = theirs(features)
    torch.testing.assert_close(logits, want["cls_logits"])
    torch.testing.assert_close(deltas, want["bbox_regression"])
    assert logits.shape == (2, 15 * 4 + 2 * 6, 3)


class _StubInInit(nn.Module):
    def __init__(self, *args):
        super().__init__()
        raise NotImplementedError()


class _StubInForward(h.GoodSSDHeads):
    def forward(self, features):
        raise NotImplementedError()


@pytest.mark.parametrize("stub", [_StubInInit, _StubInForward])
def test_ssd_heads_check_says_a_stub_class_is_not_written_yet(stub):
    with pytest.raises(NotImplementedError, match="SSDHeads is not written yet"):
        check_SSDHeads(stub)


def test_ssd_heads_check_leaves_the_reference_class_alone():
    """The check copies random weights into its own instances only."""
    check_SSDHeads(h.GoodSSDHeads, quiet=True)
    heads = ssd.SSDHeads([8], [4], 3)
    assert heads.classification[0].bias.abs().max() == 0
