"""The segmentation checks accept correct functions and reject stubs and the plausible student mistakes.

Each ``Wrong`` is a real, deliberately wrong implementation a student might write; its check must raise
CheckFailed with a message containing ``says``;
``tests/test_check_contract.py`` runs them all.
"""

from __future__ import annotations

import pkgutil

import pytest
import torch
from check_contract import Wrong
from torch import nn

import course_utils.grading.checks
from course_utils import metrics
from course_utils.grading.assignments import CheckFailed
from course_utils.grading.checks.segmentation import (
    CHECKS,
    check_confusion_matrix,
    check_linear_to_conv,
    check_segmentation_scores,
    confusion_matrix_cases,
    linear_to_conv_cases,
    segmentation_scores_cases,
)
from course_utils.segmentation import fcn

# ------------------------------------------------------------------------------------------------------------
# Correct implementations, written the way a student would
# ------------------------------------------------------------------------------------------------------------


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


def good_linear_to_conv(linear, in_channels, kernel_size=1):
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    conv = nn.Conv2d(
        in_channels,
        linear.out_features,
        (kh, kw),
        bias=linear.bias is not None,
        device=linear.weight.device,
        dtype=linear.weight.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(linear.weight.view(linear.out_features, in_channels, kh, kw))
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def good_linear_to_conv_parameters(linear, in_channels, kernel_size=1):
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    conv = nn.Conv2d(in_channels, linear.out_features, (kh, kw), bias=linear.bias is not None).to(
        linear.weight
    )
    conv.weight = nn.Parameter(linear.weight.detach().reshape(conv.weight.shape).clone())
    if linear.bias is not None:
        conv.bias = nn.Parameter(linear.bias.detach().clone())
    return conv


CORRECT = [
    (check_confusion_matrix, good_confusion),
    (check_confusion_matrix, good_confusion_loops),
    (check_confusion_matrix, metrics.confusion_matrix),
    (check_segmentation_scores, good_scores),
    (check_segmentation_scores, good_scores_float32_tensors),
    (check_segmentation_scores, metrics.segmentation_scores),
    (check_linear_to_conv, good_linear_to_conv),
    (check_linear_to_conv, good_linear_to_conv_parameters),
    (check_linear_to_conv, fcn.linear_to_conv),
]

# ------------------------------------------------------------------------------------------------------------
# Wrong confusion_matrix
# ------------------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------------------
# Wrong segmentation_scores
# ------------------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------------------
# Wrong linear_to_conv
# ------------------------------------------------------------------------------------------------------------


def _kernel(kernel_size):
    return (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)


def conv_weight_not_reshaped(linear, in_channels, kernel_size=1):
    conv = good_linear_to_conv(linear, in_channels, kernel_size)
    conv.weight = nn.Parameter(linear.weight.detach().clone())
    return conv


def conv_weight_transposed(linear, in_channels, kernel_size=1):
    kh, kw = _kernel(kernel_size)
    conv = nn.Conv2d(
        in_channels,
        linear.out_features,
        (kh, kw),
        device=linear.weight.device,
        dtype=linear.weight.dtype,
        bias=linear.bias is not None,
    )
    with torch.no_grad():
        conv.weight.copy_(linear.weight.T.reshape(conv.weight.shape))
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def conv_bias_dropped(linear, in_channels, kernel_size=1):
    kh, kw = _kernel(kernel_size)
    conv = nn.Conv2d(
        in_channels,
        linear.out_features,
        (kh, kw),
        bias=False,
        device=linear.weight.device,
        dtype=linear.weight.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(linear.weight.reshape(conv.weight.shape))
    return conv


def conv_random_bias_when_none(linear, in_channels, kernel_size=1):
    kh, kw = _kernel(kernel_size)
    conv = nn.Conv2d(
        in_channels,
        linear.out_features,
        (kh, kw),
        device=linear.weight.device,
        dtype=linear.weight.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(linear.weight.reshape(conv.weight.shape))
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def conv_channels_last_order(linear, in_channels, kernel_size=1):
    kh, kw = _kernel(kernel_size)
    conv = good_linear_to_conv(linear, in_channels, kernel_size)
    with torch.no_grad():
        conv.weight.copy_(
            linear.weight.reshape(linear.out_features, kh, kw, in_channels).permute(0, 3, 1, 2)
        )
    return conv


def conv_kernel_ignored(linear, in_channels, kernel_size=1):
    conv = nn.Conv2d(
        linear.in_features,
        linear.out_features,
        1,
        bias=linear.bias is not None,
        device=linear.weight.device,
        dtype=linear.weight.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(linear.weight[:, :, None, None])
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def conv_fresh_weights(linear, in_channels, kernel_size=1):
    return nn.Conv2d(
        in_channels,
        linear.out_features,
        _kernel(kernel_size),
        bias=linear.bias is not None,
        device=linear.weight.device,
        dtype=linear.weight.dtype,
    )


def conv_padded(linear, in_channels, kernel_size=1):
    conv = good_linear_to_conv(linear, in_channels, kernel_size)
    conv.padding = (1, 1)
    return conv


def conv_strided(linear, in_channels, kernel_size=1):
    conv = good_linear_to_conv(linear, in_channels, kernel_size)
    conv.stride = _kernel(kernel_size) if _kernel(kernel_size) != (1, 1) else (2, 2)
    return conv


def conv_kh_kw_swapped(linear, in_channels, kernel_size=1):
    kh, kw = _kernel(kernel_size)
    return good_linear_to_conv(linear, in_channels, (kw, kh))


def conv_default_dtype(linear, in_channels, kernel_size=1):
    conv = nn.Conv2d(
        in_channels, linear.out_features, _kernel(kernel_size), bias=linear.bias is not None
    )
    with torch.no_grad():
        conv.weight.copy_(linear.weight.reshape(conv.weight.shape))
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def conv_returns_linear(linear, in_channels, kernel_size=1):
    return linear


def conv_reshapes_in_place(linear, in_channels, kernel_size=1):
    conv = good_linear_to_conv(linear, in_channels, kernel_size)
    linear.weight.data = linear.weight.data.reshape(conv.weight.shape)
    return conv


# ------------------------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------------------------


VALUES = "values differ"
SHAPE = "returned shape"
DTYPE = "returned dtype"
RAISED = "raised"
DEVICE = "but the inputs were on cuda"

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
    Wrong(check_linear_to_conv, conv_weight_not_reshaped, "reshape the linear weight"),
    Wrong(check_linear_to_conv, conv_weight_transposed, "weight values differ"),
    Wrong(check_linear_to_conv, conv_bias_dropped, "bias is missing"),
    Wrong(check_linear_to_conv, conv_random_bias_when_none, "has none"),
    Wrong(check_linear_to_conv, conv_channels_last_order, "channel-major"),
    Wrong(check_linear_to_conv, conv_kernel_ignored, "weight has shape"),
    Wrong(check_linear_to_conv, conv_fresh_weights, "weight values differ"),
    Wrong(check_linear_to_conv, conv_padded, "padding"),
    Wrong(check_linear_to_conv, conv_strided, "stride"),
    Wrong(check_linear_to_conv, conv_kh_kw_swapped, "weight has shape"),
    Wrong(check_linear_to_conv, conv_default_dtype, "dtype=linear.weight.dtype"),
    Wrong(check_linear_to_conv, conv_returns_linear, "expected an nn.Conv2d"),
    Wrong(check_linear_to_conv, conv_reshapes_in_place, "changed shape"),
]


def test_the_module_lists_its_checks():
    # all_checks() imports every topic module (slow on this machine); the discovery it uses is pkgutil's
    assert "segmentation" in {
        info.name for info in pkgutil.iter_modules(course_utils.grading.checks.__path__)
    }
    assert all(callable(c.reference) for c in CHECKS)
    assert [c.function_name for c in CHECKS] == [
        "linear_to_conv",
        "confusion_matrix",
        "segmentation_scores",
    ]


@pytest.mark.parametrize(
    "make_cases", [confusion_matrix_cases, segmentation_scores_cases, linear_to_conv_cases]
)
def test_cases_are_deterministic_and_have_hints(make_cases):
    first, second = make_cases(), make_cases()
    assert [c.name for c in first] == [c.name for c in second]
    for a, b in zip(first, second):
        assert a.hint, f"case {a.name!r} needs a hint"
        for x, y in zip(a.args, b.args):
            if isinstance(x, torch.Tensor):
                assert torch.equal(x, y)
            elif isinstance(x, nn.Module):
                assert all(torch.equal(p, q) for p, q in zip(x.parameters(), y.parameters()))


def test_score_cases_cover_absent_and_false_positive_classes():
    """The cases are only useful if they contain NaN IoUs (absent) and 0 IoUs (predicted, not present)."""
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
