"""The R-CNN per-region forward-pass check (notebook 03) accepts correct answers and rejects stubs
and plausible student mistakes.

Each ``Wrong`` below is a real, deliberately wrong ``score_regions`` a student might write (in
``tests/rcnn_forward_wrongs.py``); the check must raise CheckFailed for it, with a message that
says what is wrong (``says``); ``tests/test_check_contract.py`` runs them all. The other tests
prove that the cases cover what the assignment asks (zero and one proposal, border boxes, several
images, no regression, CNNs in both modes), that the reference leaves every case's CNN as it
found it, and that every mistake the check names really differs from the reference somewhere.
"""

from __future__ import annotations

import copy

import rcnn_forward_wrongs as w
import torch
from check_contract import Wrong, assert_cases_deterministic_with_hints

from course_utils.detection import rcnn
from course_utils.detection.classifiers import CropClassifier
from course_utils.grading.checks import all_checks
from course_utils.grading.checks._rcnn_forward_cases import cnn_change
from course_utils.grading.checks.rcnn_forward import (
    _MISTAKES,
    CHECKS,
    _same,
    check_score_regions,
    score_regions_cases,
)

CORRECT = [
    (check_score_regions, rcnn.score_regions),
    (check_score_regions, w.good_score_regions),
    (check_score_regions, w.good_score_regions_one_batch),
]

_SCORE = check_score_regions

WRONG = [
    Wrong(_SCORE, w.score_no_context, "warped without context"),
    Wrong(_SCORE, w.score_default_warp, "warp_regions' defaults (32 x 32 crops, context 0.25)"),
    Wrong(_SCORE, w.score_default_size, "the crops are 32 x 32 (warp_regions' default size)"),
    Wrong(_SCORE, w.score_default_context, "warped with 25 % context"),
    Wrong(_SCORE, w.score_xy_swapped, "read as (y1, x1, y2, x2)"),
    Wrong(_SCORE, w.score_first_proposals, "scored with the proposals of image 0"),
    Wrong(_SCORE, w.score_first_image, "warped out of image 0"),
    Wrong(_SCORE, w.score_logits, "the class scores are the head's logits"),
    Wrong(_SCORE, w.score_softmax_over_regions, "the softmax runs over the regions (dim=0)"),
    Wrong(_SCORE, w.score_sigmoid, "come from a sigmoid"),
    Wrong(_SCORE, w.score_log_softmax, "log-probabilities (log_softmax)"),
    Wrong(_SCORE, w.score_regress_logits, "the box regressors read the class scores (logits)"),
    Wrong(_SCORE, w.score_regress_probs, "the box regressors read the class probabilities"),
    Wrong(_SCORE, w.score_no_bias, "the regressors' bias is missing"),
    Wrong(_SCORE, w.score_bias_first_row, "the bias was taken from the first row"),
    Wrong(_SCORE, w.score_deltas_reshaped, "computed as (P, 4, K+1) and reshaped"),
    Wrong(_SCORE, w.score_class_agnostic, "every class gets the same deltas"),
    Wrong(_SCORE, w.score_wrong_class, "the deltas of class 0 come from the regressor of class"),
    Wrong(_SCORE, w.score_in_training_mode, "the CNN ran in training mode"),
    Wrong(_SCORE, w.score_left_in_eval_mode, "the CNN was left in eval mode"),
    Wrong(_SCORE, w.score_forces_training_mode, "the CNN was put in training mode"),
    Wrong(_SCORE, w.score_zero_deltas_without_weights, "return None as the deltas"),
    Wrong(_SCORE, w.score_first_image_only, "returned 1 item(s) for 3 image(s)"),
    Wrong(_SCORE, w.score_pair_of_lists, "a list of pairs, not a pair of lists"),
    Wrong(_SCORE, w.score_squeezed, "returned shape (3,), expected (1, 3)"),
    Wrong(_SCORE, w.score_on_cpu, "but the inputs were on cuda", cuda_only=True),
]


def test_the_module_lists_its_check():
    assert all_checks()["rcnn_forward"] == CHECKS == (check_score_regions,)
    assert check_score_regions.function_name == "score_regions"
    assert check_score_regions.reference is rcnn.score_regions


def test_cases_are_deterministic_and_have_hints():
    assert len(assert_cases_deterministic_with_hints(score_regions_cases)) >= 7


def test_cases_cover_what_the_assignment_asks():
    """Zero and one proposal, several images, boxes on the border, no regression, CNNs in
    training and eval mode (one the course's CropClassifier), sizes and contexts that are not
    warp_regions' defaults, and a CNN whose D equals K+1 (so that regressing the class scores
    runs instead of crashing)."""
    cases = [c for c in score_regions_cases() if c.args[0][0].device.type == "cpu"]
    counts = {len(boxes) for c in cases for boxes in c.args[1]}
    assert {0, 1} <= counts and max(counts) >= 3
    assert max(len(c.args[0]) for c in cases) >= 3
    touching = False
    for case in cases:
        images, proposals, cnn, weights, size, context = case.args
        assert size != 32 and context != 0.25 and len(images) == len(proposals)
        for image, boxes in zip(images, proposals):
            height, width = image.shape[-2:]
            edges = (boxes[:, 0] == 0) | (boxes[:, 1] == 0)
            edges |= (boxes[:, 2] == width) | (boxes[:, 3] == height)
            touching |= bool(edges.any())
    assert touching
    assert any(c.args[3] is None for c in cases)
    assert {c.args[2].training for c in cases} == {True, False}
    assert any(isinstance(c.args[2], CropClassifier) for c in cases)
    first = cases[0].args
    assert first[3].shape[0] == first[3].shape[1] - 1  # K+1 = D
    assert first[0][0].shape[-1] != first[0][0].shape[-2]  # not square: x/y mix-ups show


def test_the_reference_leaves_every_cnn_as_it_found_it():
    for case in score_regions_cases():
        rcnn.score_regions(*case.args)
        assert cnn_change(case.args[2]) is None, case.name
    cnn = score_regions_cases()[0].args[2]
    cnn.eval()
    assert "left in eval mode" in cnn_change(cnn)
    assert cnn_change(copy.deepcopy(cnn)) is None  # not a case's network: nothing to say


def test_every_named_mistake_differs_from_the_reference_on_some_case():
    cases = score_regions_cases()
    for text, mistake in _MISTAKES:
        differs = False
        for case in cases:
            expected = rcnn.score_regions(*case.args)
            try:
                wrong = mistake(case.args)
            except (RuntimeError, ValueError, IndexError):
                continue
            differs |= not _same(wrong, expected)
        assert differs, text


def test_the_mistakes_do_not_touch_the_case():
    case = score_regions_cases()[0]
    before = copy.deepcopy(case.args[2].state_dict())
    for _, mistake in _MISTAKES:
        mistake(case.args)
    assert case.args[2].training
    for key, value in case.args[2].state_dict().items():
        assert torch.equal(value, before[key]), key
