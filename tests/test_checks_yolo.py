"""The YOLO v1 checks (targets, loss, head, decoding) accept correct answers and reject stubs and
plausible student mistakes.

Each ``Wrong`` below is a real, deliberately wrong implementation a student might write (written in
``tests/yolo_wrongs.py`` and ``tests/yolo_head_wrongs.py``); the check must raise CheckFailed for
it, with a message that says what is wrong (``says``); ``tests/test_check_contract.py`` runs them
all. The other tests prove that the references do what their docstrings say on hand-computed
examples, and that the cases have no knife-edge values.
"""

from __future__ import annotations

import pytest
import torch
import yolo_head_wrongs as h
import yolo_wrongs as w
from check_contract import Wrong, assert_cases_deterministic_with_hints
from torch import nn
from torchvision.ops import box_iou

from course_utils.detection import yolo
from course_utils.grading.checks import all_checks
from course_utils.grading.checks.yolo import (
    CHECKS,
    check_decode_predictions,
    check_encode_targets,
    check_yolo_loss,
    check_YOLOHead,
    decode_predictions_cases,
    encode_targets_cases,
    yolo_head_cases,
    yolo_loss_cases,
)

CORRECT = [
    (check_encode_targets, yolo.encode_targets),
    (check_encode_targets, w.good_encode_targets),
    (check_encode_targets, w.good_encode_targets_vectorised),
    (check_yolo_loss, yolo.yolo_loss),
    (check_yolo_loss, w.good_yolo_loss),
    (check_yolo_loss, w.good_yolo_loss_loops),
    (check_YOLOHead, yolo.YOLOHead),
    (check_YOLOHead, h.GoodYOLOHead),
    (check_YOLOHead, h.GoodYOLOHeadModules),
    (check_decode_predictions, yolo.decode_predictions),
    (check_decode_predictions, w.good_decode_predictions),
    (check_decode_predictions, w.good_decode_predictions_loops),
]

_ENCODE, _LOSS, _HEAD, _DECODE = CHECKS

WRONG = [
    Wrong(_ENCODE, w.encode_xy_swapped, "objects in (row 2, column 1)"),
    Wrong(_ENCODE, w.encode_image_offsets, "x expected 0.625, got 0.65625"),
    Wrong(_ENCODE, w.encode_wh_pixels, "w expected 0.5, got 32"),
    Wrong(_ENCODE, w.encode_wh_cells, "w expected 0.5, got 2"),
    Wrong(_ENCODE, w.encode_round, "objects in (row 1, column 3)"),
    Wrong(_ENCODE, w.encode_no_clamp, "raised IndexError"),
    Wrong(_ENCODE, w.encode_last_wins, "x expected 0.5625, got 0.375"),
    Wrong(_ENCODE, w.encode_label_index, "class 2 (entry 6) expected 1, got 0"),
    Wrong(_ENCODE, w.encode_confidence_0, "its confidence is 0"),
    Wrong(_ENCODE, w.encode_float64, "the target grid is float32"),
    Wrong(_ENCODE, w.encode_sqrt_wh, "w expected 0.5, got 0.707107"),
    Wrong(_LOSS, w.loss_predictor_0, "the responsible one"),
    Wrong(_LOSS, w.loss_lowest_iou, "coord_xy expected 0.3125, got 0"),
    Wrong(_LOSS, w.loss_no_roots, "coord_wh expected 0, got 0.625"),
    Wrong(_LOSS, w.loss_root_of_prediction, "coord_wh expected 0, got 0.428932"),
    Wrong(_LOSS, w.loss_lambdas_swapped, "coord_xy expected 0.3125, got 0.03125"),
    Wrong(_LOSS, w.loss_noobj_skips_object_cells, "noobj expected 0.145, got 0.1 "),
    Wrong(_LOSS, w.loss_class_per_predictor, "class expected 0.13, got 0.26"),
    Wrong(_LOSS, w.loss_confidence_target_1, "obj expected 0.0711111, got 0.16"),
    Wrong(_LOSS, w.loss_mean, "0.125 times the expected"),
    Wrong(_LOSS, w.loss_not_divided_by_n, "class expected 1.15531, got 2.31062"),
    Wrong(_LOSS, w.loss_lambda_coord_on_obj, "obj expected 0.0711111, got 0.355556"),
    Wrong(_LOSS, w.loss_floats, "A Python float has no gradient"),
    Wrong(_HEAD, h.HeadReLU, "the activation is a ReLU"),
    Wrong(_HEAD, h.HeadNoActivation, "there is no activation between fc1 and fc2"),
    Wrong(_HEAD, h.HeadSlope001, "slope is 0.01"),
    Wrong(_HEAD, h.HeadWrongHidden, "self.fc1 has out_features 512, expected 16"),
    Wrong(_HEAD, h.HeadDropoutFirst, "not on the input features"),
    Wrong(_HEAD, h.HeadDropoutLast, "applied after fc2"),
    Wrong(_HEAD, h.HeadDropoutUnused, "the output is not random"),
    Wrong(_HEAD, h.HeadWithoutDropout, "the head has no nn.Dropout"),
    Wrong(_HEAD, h.HeadFixedDropout, "nn.Dropout has p = [0.5], expected 0.0"),
    Wrong(_HEAD, h.HeadChannelsFirst, "not channels first"),
    Wrong(_HEAD, h.HeadSigmoid, "looks like sigmoid"),
    Wrong(_HEAD, h.HeadNoFlatten, "Flatten the (N, D, h, w) features first"),
    Wrong(_HEAD, h.HeadBatchNorm, "besides fc1 and fc2: norm.weight"),
    Wrong(_HEAD, h.HeadInEvalMode, "eval mode after YOLOHead"),
    Wrong(_DECODE, w.decode_confidence_only, "your closest: label 2, score 0.9,"),
    Wrong(_DECODE, w.decode_class_only, "your closest: label 2, score 0.8,"),
    Wrong(_DECODE, w.decode_argmax_class, "(label 2, score 0.32, box"),
    Wrong(_DECODE, w.decode_not_squared, "box [56, 0, 96, 20]"),
    Wrong(_DECODE, w.decode_no_cell_offset, "box [4, 5, 28, 11]"),
    Wrong(_DECODE, w.decode_xy_swapped, "box [68, 4, 92, 28]"),
    Wrong(_DECODE, w.decode_no_clipping, "sticks out of the 96x96 image"),
    Wrong(_DECODE, w.decode_class_agnostic_nms, "(label 2, score 0.6, box"),
    Wrong(_DECODE, w.decode_labels_from_0, "your closest: label 1, score 0.72"),
    Wrong(_DECODE, w.decode_no_threshold, "54 detections, expected 2"),
    Wrong(_DECODE, w.decode_image_units, "box [0.7083, 0.05208,"),
]


def test_the_module_lists_its_checks():
    assert all_checks()["yolo"] == CHECKS
    assert [check.function_name for check in CHECKS] == [
        "encode_targets",
        "yolo_loss",
        "YOLOHead",
        "decode_predictions",
    ]
    assert check_encode_targets.reference is yolo.encode_targets
    assert check_yolo_loss.reference is yolo.yolo_loss
    assert check_YOLOHead.reference is yolo.YOLOHead
    assert check_decode_predictions.reference is yolo.decode_predictions


@pytest.mark.parametrize(
    "make_cases",
    [encode_targets_cases, yolo_loss_cases, yolo_head_cases, decode_predictions_cases],
)
def test_cases_are_deterministic_and_have_hints(make_cases):
    assert len(assert_cases_deterministic_with_hints(make_cases)) >= 4


# ---------------------------------------------------------------- the references, by hand


def test_encode_targets_follows_its_docstring():
    boxes = torch.tensor([[26.0, 6.0, 58.0, 30.0], [24.0, 40.0, 40.0, 56.0], [60, 62, 68, 66]])
    target = yolo.encode_targets(boxes, torch.tensor([2, 1, 3]), (64, 64), 4, 3)
    assert target.shape == (4, 4, 8) and target.dtype == torch.float32
    torch.testing.assert_close(target[1, 2], torch.tensor([0.625, 0.125, 0.5, 0.375, 1, 0, 1, 0]))
    torch.testing.assert_close(target[3, 2], torch.tensor([0.0, 0.0, 0.25, 0.25, 1, 1, 0, 0]))
    torch.testing.assert_close(target[3, 3], torch.tensor([1.0, 1.0, 0.125, 0.0625, 1, 0, 0, 1]))
    assert target[..., 4].sum() == 3 and target.abs().sum() == target[[1, 3, 3], [2, 2, 3]].sum()
    shared = yolo.encode_targets(boxes[[0, 0]] + torch.tensor([0, 0, 2, 0]), torch.tensor([1, 3]),
                                 (64, 64), 4, 3)  # fmt: skip
    assert shared[..., 4].sum() == 1 and shared[1, 2, 5] == 1 and shared[1, 2, 7] == 0


def test_a_perfect_prediction_has_a_zero_loss():
    """Responsible box equal to the truth (IoU 1, confidence 1), every other confidence 0, class
    scores one-hot: all five terms are 0."""
    targets = yolo.encode_targets(torch.tensor([[8.0, 40.0, 24.0, 56.0]]), torch.tensor([2]),
                                  (64, 64), 2, 2)[None]  # fmt: skip
    output = torch.zeros(1, 2, 2, 12)
    output[0, 1, 0, 5:10] = torch.tensor([0.5, 0.5, 0.5, 0.5, 1.0])  # w = h = 0.25, √ = 0.5
    output[0, 1, 0, 10:] = torch.tensor([0.0, 1.0])
    output[0, 1, 0, :4] = torch.tensor([0.1, 0.1, 0.2, 0.2])  # a worse predictor, confidence 0
    terms = yolo.yolo_loss(output, targets)
    assert list(terms) == list(yolo.LOSS_TERMS)
    assert yolo.responsible_predictor(output, targets)[0][0, 1, 0] == 1
    for name, value in terms.items():
        assert value.dim() == 0 and float(value) < 1e-10, name


def test_the_hand_made_loss_case_matches_the_paper_computed_by_hand():
    """Cell (0, 0) holds [0.75, 0.5, 0.25, 0.25], class 1. Predictor 0 = [0.5, 0.5, 0.5, 0.5, 0.6]
    is shifted by a quarter cell (IoU 1/3); predictor 1's box is a quarter as tall (IoU 1/4)."""
    case = yolo_loss_cases()[0]
    output = case.args[0].clone().requires_grad_(True)
    terms = yolo.yolo_loss(output, *case.args[1:])
    want = {
        "coord_xy": 5.0 * 0.25**2,
        "coord_wh": 0.0,
        "obj": (0.6 - 1 / 3) ** 2,
        "noobj": 0.5 * (0.3**2 + 0.2**2 + 0.4**2),  # predictor 1 of cell (0, 0), cell (1, 1)
        "class": 0.3**2 + 0.2**2,  # once, for cell (0, 0) only
    }
    for name, value in want.items():
        assert float(terms[name].detach()) == pytest.approx(value, abs=1e-6), name
    sum(terms.values()).backward()
    assert float(output.grad[0, 0, 0, 4]) == pytest.approx(2 * (0.6 - 1 / 3), abs=1e-6)
    assert float(output.grad[0, 0, 0, 0]) == pytest.approx(5.0 * 2 * -0.25)
    other = yolo.yolo_loss(*yolo_loss_cases()[1].args)  # the same with the predictors swapped
    for name in want:
        assert float(other[name]) == pytest.approx(float(terms[name].detach()), abs=1e-6)


def test_loss_is_divided_by_the_batch_size():
    case = next(c for c in yolo_loss_cases() if "batch of 2" in c.name)
    output, targets = case.args[:2]
    both = yolo.yolo_loss(output, targets)
    halves = [yolo.yolo_loss(output[k : k + 1], targets[k : k + 1]) for k in range(2)]
    for name in yolo.LOSS_TERMS:
        assert float(both[name]) == pytest.approx(float(halves[0][name] + halves[1][name]) / 2)


def test_yolo_head_follows_its_docstring():
    torch.manual_seed(0)
    head = yolo.YOLOHead(48, 3, 2, 3, hidden=32, dropout=0.5)
    assert (head.fc1.in_features, head.fc1.out_features, head.fc2.out_features) == (48, 32, 117)
    assert isinstance(head.dropout, nn.Dropout) and head.dropout.p == 0.5
    features = torch.randn(2, 8, 2, 3)
    head.eval()
    out = head(features)
    hidden = nn.functional.leaky_relu(features.flatten(1) @ head.fc1.weight.T + head.fc1.bias, 0.1)
    torch.testing.assert_close(out, (hidden @ head.fc2.weight.T + head.fc2.bias).view(2, 3, 3, 13))


def test_decode_predictions_follows_its_docstring():
    """Cell (row 0, column 2), predictor 1 = [0.5, 0.25, √0.25, √0.0625, 0.9], class scores (0,
    0.8, 0.02): centre (80, 8), size 24 x 6, score 0.72 for class 2 (0.018 < 0.05 for class 3);
    cell (2, 0), predictor 0: centre (16, 80), 24 x 24, score 0.63 for class 3."""
    two, clipped = (case.args for case in decode_predictions_cases()[:2])
    found = yolo.decode_predictions(*two)
    torch.testing.assert_close(found["boxes"], torch.tensor([[68.0, 5, 92, 11], [4, 68, 28, 92]]))
    torch.testing.assert_close(found["scores"], torch.tensor([0.72, 0.63]))
    assert found["labels"].tolist() == [2, 3] and found["labels"].dtype == torch.int64
    found = yolo.decode_predictions(*clipped)  # (-19, -4, 35, 20) and (76, 53, 100, 107)
    torch.testing.assert_close(found["boxes"], torch.tensor([[0.0, 0, 35, 20], [76, 53, 96, 96]]))
    empty = yolo.decode_predictions(*decode_predictions_cases()[5].args)
    assert empty["boxes"].shape == (0, 4) and empty["labels"].dtype == torch.int64


# ---------------------------------------------------------------- no knife edges


def test_encode_cases_put_centres_on_borders_only_on_purpose():
    for case in encode_targets_cases():
        boxes, _, (height, width), grid, _ = case.args
        scaled = torch.cat([(boxes[:, 0] + boxes[:, 2]) / 2 / width,
                            (boxes[:, 1] + boxes[:, 3]) / 2 / height]) * grid  # fmt: skip
        gap = (scaled - scaled.round()).abs()
        on_purpose = "border" in case.name or "edge" in case.name
        assert ((gap > 1e-3) | (on_purpose & (gap == 0))).all(), case.name
        half = (scaled - scaled.floor() - 0.5).abs()
        assert (half > 1e-3).all(), case.name  # round vs floor never ties


def test_loss_cases_have_one_clear_responsible_predictor_per_object():
    """In every object's cell the best IoU is > 0 and 0.001 above the second; predictor 0 is not
    always the best; the negative case has negative roots on the responsible predictors."""
    best_predictors = set()
    for case in yolo_loss_cases():
        output, targets, boxes_per_cell = case.args[:3]
        predicted = yolo._predicted_boxes(output, boxes_per_cell)
        truth = yolo.cell_boxes(targets[..., :4])
        has = targets[..., 4] > 0
        for b, i, j in has.nonzero().tolist():
            ious = box_iou(predicted[b, i, j], truth[b, i, j][None])[:, 0]
            top = ious.sort(descending=True).values
            assert top[0] > 0.01, case.name
            assert boxes_per_cell == 1 or top[0] - top[1] > 1e-3, case.name
            best_predictors.add(int(ious.argmax()))
    assert best_predictors == {0, 1, 2}
    case = next(c for c in yolo_loss_cases() if "negative" in c.name)
    index, _ = yolo.responsible_predictor(*case.args[:3])
    has = case.args[1][..., 4] > 0
    roots = case.args[0][..., :10].unflatten(-1, (2, 5))[..., 2:4]  # √w, √h of predictors 0, 1
    picked = roots.gather(-2, index[..., None, None].expand(-1, -1, -1, 1, 2))[has]
    assert (picked < 0).all()
    terms = w.loss_root_of_prediction(*case.args)
    assert torch.isnan(terms["coord_wh"])


def test_decode_cases_have_no_knife_edges():
    """No (box, class) score within 0.001 of score_threshold, no two kept-candidate scores tied,
    no same-class pair of candidates within 0.001 of nms_threshold."""
    for case in decode_predictions_cases():
        output, size, boxes_per_cell, score_threshold, nms_threshold = case.args
        scores = w.good_decode_predictions(output, size, boxes_per_cell, 0.0, 1.0)
        assert ((scores["scores"] - score_threshold).abs() > 1e-3).all(), case.name
        keep = scores["scores"] >= score_threshold
        boxes, values, labels = (scores[k][keep] for k in ("boxes", "scores", "labels"))
        assert len(values.unique()) == len(values), case.name
        same = labels[:, None] == labels[None]
        iou = box_iou(boxes, boxes)[same & ~torch.eye(len(boxes), dtype=torch.bool)]
        assert ((iou - nms_threshold).abs() > 1e-3).all(), case.name


def test_decode_cases_exercise_clipping_nms_and_several_labels():
    cases = decode_predictions_cases()
    found = [yolo.decode_predictions(*c.args) for c in cases]
    unclipped = [w.decode_no_clipping(*c.args) for c in cases]
    assert sum(not torch.equal(a["boxes"], b["boxes"]) for a, b in zip(found, unclipped)) >= 3
    no_nms = [w.good_decode_predictions(*c.args[:4], 1.0) for c in cases]
    assert all(len(a["scores"]) < len(b["scores"]) for a, b in zip(found[6:], no_nms[6:]))
    assert all(len(set(f["labels"].tolist())) >= 2 for f in found[6:])


# ---------------------------------------------------------------- the head's stubs


class _StubInInit(nn.Module):
    def __init__(self, *args):
        super().__init__()
        raise NotImplementedError()


class _StubInForward(h.GoodYOLOHead):
    def forward(self, features):
        raise NotImplementedError()


@pytest.mark.parametrize("stub", [_StubInInit, _StubInForward])
def test_yolo_head_check_says_a_stub_class_is_not_written_yet(stub):
    with pytest.raises(NotImplementedError, match="YOLOHead is not written yet"):
        check_YOLOHead(stub)
