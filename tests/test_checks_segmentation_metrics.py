"""The segmentation-metric checks accept correct functions and reject stubs and plausible student
mistakes.

Each ``Wrong`` below is a real, deliberately wrong implementation a student might write; the check
must raise CheckFailed for it, with a message that says what is wrong (``says``);
``tests/test_check_contract.py`` runs them all.
"""

from __future__ import annotations

import pytest
import torch
from check_contract import Wrong, assert_cases_deterministic_with_hints

from course_utils import metrics
from course_utils.grading.checks import all_checks
from course_utils.grading.checks.segmentation_metrics import (
    CHECKS,
    check_confusion_matrix,
    check_segmentation_scores,
    confusion_matrix_cases,
    segmentation_scores_cases,
)
from course_utils.grading.runner import CheckFailed


def good_confusion(pred, target, num_classes, ignore_index=255):
    pred, target = pred.flatten().long(), target.flatten().long()
    valid = target != ignore_index
    index = target[valid] * num_classes + pred[valid]
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def good_confusion_loops(pred, target, num_classes, ignore_index=255):
    out = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=target.device)
    for t in range(num_classes):
        for p in range(num_classes):
            out[t, p] = ((target == t) & (pred == p)).sum()
    return out


def good_scores(confusion):
    confusion = confusion.double()
    tp = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - tp
    iou = tp / union
    return {
        "iou": iou,
        "mIoU": iou.nanmean().item(),
        "pixel_accuracy": (tp.sum() / confusion.sum()).item(),
    }


def good_scores_float32_tensors(confusion):
    confusion = confusion.float()
    tp = confusion.diagonal()
    iou = tp / (confusion.sum(dim=1) + confusion.sum(dim=0) - tp)
    present = ~torch.isnan(iou)
    return {"iou": iou, "mIoU": iou[present].mean(), "pixel_accuracy": tp.sum() / confusion.sum()}


def confusion_transposed(pred, target, num_classes, ignore_index=255):
    return good_confusion(pred, target, num_classes, ignore_index).T


def confusion_rows_are_predictions(pred, target, num_classes, ignore_index=255):
    pred, target = pred.flatten().long(), target.flatten().long()
    valid = target != ignore_index
    index = pred[valid] * num_classes + target[valid]
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def confusion_counts_ignored(pred, target, num_classes, ignore_index=255):
    pred, target = pred.flatten().long(), target.flatten().long().clamp(max=num_classes - 1)
    return torch.bincount(target * num_classes + pred, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def confusion_ignore_from_pred(pred, target, num_classes, ignore_index=255):
    pred, target = pred.flatten().long(), target.flatten().long()
    valid = pred != ignore_index
    return torch.bincount(
        target[valid] * num_classes + pred[valid], minlength=num_classes**2
    ).reshape(num_classes, num_classes)


def confusion_hardcoded_255(pred, target, num_classes, ignore_index=255):
    return good_confusion(pred, target, num_classes, 255)


def confusion_size_from_data(pred, target, num_classes, ignore_index=255):
    pred, target = pred.flatten().long(), target.flatten().long()
    valid = target != ignore_index
    k = int(torch.cat([pred[valid], target[valid]]).max()) + 1 if valid.any() else num_classes
    return torch.bincount(target[valid] * k + pred[valid], minlength=k * k).reshape(k, k)


def confusion_float(pred, target, num_classes, ignore_index=255):
    return good_confusion(pred, target, num_classes, ignore_index).float()


def confusion_normalised_rows(pred, target, num_classes, ignore_index=255):
    counts = good_confusion(pred, target, num_classes, ignore_index)
    return counts // counts.sum(1, keepdim=True).clamp(min=1)


def confusion_uint8_overflow(pred, target, num_classes, ignore_index=255):
    pred, target = pred.flatten(), target.flatten()
    valid = target != ignore_index
    index = (target[valid] * num_classes + pred[valid]).long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def confusion_on_cpu(pred, target, num_classes, ignore_index=255):
    return good_confusion(pred, target, num_classes, ignore_index).cpu()


def confusion_first_image_only(pred, target, num_classes, ignore_index=255):
    if pred.ndim == 3:
        pred, target = pred[0], target[0]
    return good_confusion(pred, target, num_classes, ignore_index)


def _parts(confusion):
    confusion = confusion.double()
    tp = confusion.diag()
    return confusion, tp, confusion.sum(0) - tp, confusion.sum(1) - tp  # counts, TP, FP, FN


def _pack(iou, confusion, tp, mean=None):
    return {
        "iou": iou,
        "mIoU": float(iou.nanmean() if mean is None else mean),
        "pixel_accuracy": float(tp.sum() / confusion.sum()),
    }


def scores_absent_as_zero(confusion):
    confusion, tp, fp, fn = _parts(confusion)
    iou = tp / (tp + fp + fn).clamp(min=1)
    return _pack(iou, confusion, tp)


def scores_plain_mean_absent_zero(confusion):
    confusion, tp, fp, fn = _parts(confusion)
    iou = tp / (tp + fp + fn)
    return _pack(iou, confusion, tp, mean=torch.nan_to_num(iou).mean())


def scores_precision(confusion):
    confusion, tp, fp, fn = _parts(confusion)
    return _pack(tp / (tp + fp), confusion, tp)


def scores_recall(confusion):
    confusion, tp, fp, fn = _parts(confusion)
    return _pack(tp / (tp + fn), confusion, tp)


def scores_union_without_minus_tp(confusion):
    confusion, tp, fp, fn = _parts(confusion)
    return _pack(tp / (confusion.sum(0) + confusion.sum(1)), confusion, tp)


def scores_dice(confusion):
    confusion, tp, fp, fn = _parts(confusion)
    return _pack(2 * tp / (2 * tp + fp + fn), confusion, tp)


def scores_mean_class_accuracy(confusion):
    result = metrics.segmentation_scores(confusion)
    return {**result, "pixel_accuracy": result["mean_accuracy"]}


def scores_mean_over_target_classes(confusion):
    confusion, tp, fp, fn = _parts(confusion)
    iou = tp / (tp + fp + fn)
    return _pack(iou, confusion, tp, mean=iou[confusion.sum(1) > 0].mean())


def scores_mean_over_positive(confusion):
    confusion, tp, fp, fn = _parts(confusion)
    iou = tp / (tp + fp + fn)
    return _pack(iou, confusion, tp, mean=iou[iou > 0].mean())


def scores_integer_division(confusion):
    tp = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - tp
    iou = tp // union.clamp(min=1)
    return {
        "iou": iou,
        "mIoU": float(iou.double().mean()),
        "pixel_accuracy": float(tp.sum() / confusion.sum()),
    }


def scores_list(confusion):
    result = good_scores(confusion)
    return {**result, "iou": result["iou"].tolist()}


def scores_tuple(confusion):
    result = good_scores(confusion)
    return result["iou"], result["mIoU"], result["pixel_accuracy"]


def scores_pixel_accuracy_from_first_row(confusion):
    result = good_scores(confusion)
    confusion = confusion.double()
    return {**result, "pixel_accuracy": float(confusion.diag().sum() / confusion.sum(1)[0])}


VALUES = "values differ"


SHAPE = "returned shape"


DTYPE = "returned dtype"


RAISED = "raised"


DEVICE = "but the inputs were on cuda"


CORRECT = [
    (check_confusion_matrix, good_confusion),
    (check_confusion_matrix, good_confusion_loops),
    (check_confusion_matrix, metrics.confusion_matrix),
    (check_segmentation_scores, good_scores),
    (check_segmentation_scores, good_scores_float32_tensors),
    (check_segmentation_scores, metrics.segmentation_scores),
]


WRONG = [
    Wrong(check_confusion_matrix, confusion_transposed, "transposed"),
    Wrong(check_confusion_matrix, confusion_rows_are_predictions, "transposed"),
    Wrong(check_confusion_matrix, confusion_counts_ignored, "counts"),
    Wrong(check_confusion_matrix, confusion_ignore_from_pred, RAISED),
    Wrong(check_confusion_matrix, confusion_hardcoded_255, RAISED),
    Wrong(check_confusion_matrix, confusion_size_from_data, SHAPE),
    Wrong(check_confusion_matrix, confusion_float, DTYPE),
    Wrong(check_confusion_matrix, confusion_normalised_rows, VALUES),
    Wrong(check_confusion_matrix, confusion_uint8_overflow, VALUES),
    Wrong(check_confusion_matrix, confusion_first_image_only, VALUES),
    Wrong(check_confusion_matrix, confusion_on_cpu, DEVICE, cuda_only=True),
    Wrong(check_segmentation_scores, scores_absent_as_zero, "expected NaN"),
    Wrong(check_segmentation_scores, scores_plain_mean_absent_zero, "'mIoU'"),
    Wrong(check_segmentation_scores, scores_precision, "'iou'"),
    Wrong(check_segmentation_scores, scores_recall, "'iou'"),
    Wrong(check_segmentation_scores, scores_union_without_minus_tp, "'iou'"),
    Wrong(check_segmentation_scores, scores_dice, "'iou'"),
    Wrong(check_segmentation_scores, scores_mean_class_accuracy, "'pixel_accuracy'"),
    Wrong(check_segmentation_scores, scores_mean_over_target_classes, "'mIoU'"),
    Wrong(check_segmentation_scores, scores_mean_over_positive, "'mIoU'"),
    Wrong(check_segmentation_scores, scores_integer_division, "dtype torch.int64"),
    Wrong(check_segmentation_scores, scores_list, "expected a torch.Tensor"),
    Wrong(check_segmentation_scores, scores_tuple, "expected a dict"),
    Wrong(check_segmentation_scores, scores_pixel_accuracy_from_first_row, "'pixel_accuracy'"),
]


def test_the_module_lists_its_checks():
    assert all_checks()["segmentation_metrics"] == CHECKS
    assert [c.function_name for c in CHECKS] == ["confusion_matrix", "segmentation_scores"]
    assert [c.reference for c in CHECKS] == [
        metrics.confusion_matrix,
        metrics.segmentation_scores,
    ]


@pytest.mark.parametrize("make_cases", [confusion_matrix_cases, segmentation_scores_cases])
def test_cases_are_deterministic_and_have_hints(make_cases):
    assert_cases_deterministic_with_hints(make_cases)


def test_score_cases_cover_absent_and_false_positive_classes():
    """The cases are only useful if they contain NaN IoUs (absent) and 0 IoUs (predicted, not
    present)."""
    ious = [
        metrics.segmentation_scores(case.args[0])["iou"] for case in segmentation_scores_cases()
    ]
    assert any(torch.isnan(iou).any() for iou in ious)
    assert any((iou == 0).any() for iou in ious)
    confusions = [case.args[0].double() for case in segmentation_scores_cases()]
    assert any(((c.sum(1) == 0) & (c.sum(0) > 0)).any() for c in confusions)  # predicted but absent


def test_confusion_message_names_the_transpose():
    with pytest.raises(CheckFailed, match="Rows are the true class"):
        check_confusion_matrix(confusion_rows_are_predictions)
