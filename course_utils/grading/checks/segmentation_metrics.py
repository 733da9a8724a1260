"""Checks for the segmentation-metric assignments (notebook 08): confusion matrix, IoU, mIoU.

* ``confusion_matrix(pred, target, num_classes, ignore_index=255)`` -> int64 (K, K), ``C[t, p]``
  = pixels of true class ``t`` predicted as ``p``;
* ``segmentation_scores(confusion)`` -> dict with ``iou`` (K,) float (NaN for a class absent from
  both target and prediction), ``mIoU`` (mean of the non-NaN IoUs) and ``pixel_accuracy``.

The references are the course's own ``course_utils.metrics`` functions (each check declares its
own).

Usage in a notebook::

    check_confusion_matrix(confusion_matrix)   # graded cell: raises on a wrong answer
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from course_utils import metrics
from course_utils.grading.assignments import assignment_check
from course_utils.grading.compare import (
    compare_tensors,
    describe,
    not_a_tensor_problem,
    tensor_type_problem,
)
from course_utils.grading.runner import Case, with_device_copies

__all__ = [
    "CHECKS",
    "check_confusion_matrix",
    "check_segmentation_scores",
    "confusion_matrix_cases",
    "segmentation_scores_cases",
]

_SEED = 808


def _random_maps(
    g: torch.Generator, shape: tuple[int, ...], num_classes: int, accuracy: float = 0.6
):
    """A random target map and a prediction that agrees on about ``accuracy`` of the pixels."""
    target = torch.randint(0, num_classes, shape, generator=g)
    noise = torch.randint(0, num_classes, shape, generator=g)
    keep = torch.rand(shape, generator=g) < accuracy
    return torch.where(keep, target, noise), target


def confusion_matrix_cases() -> list[Case]:
    """The cases of :func:`check_confusion_matrix` (on every available device)."""
    g = torch.Generator().manual_seed(_SEED)
    t = torch.tensor
    ignore_hint = (
        "Drop the pixels whose *target* is ignore_index before counting "
        "(valid = target != ignore_index; pred[valid], target[valid])."
    )
    pred_b, target_b = _random_maps(g, (2, 6, 7), 5)
    pred_i, target_i = _random_maps(g, (3, 8, 8), 4)
    target_i[:, :2] = 255
    pred_m, target_m = _random_maps(g, (4, 5), 3)
    target_m[0] = -1
    pred_u, target_u = _random_maps(g, (6, 6), 20)
    cases = [
        Case(
            "six pixels, three classes (asymmetric errors)",
            (t([0, 0, 1, 1, 2, 2]), t([0, 1, 1, 1, 2, 0]), 3),
            hint="C[t, p] += 1 for every pixel with target t and prediction p: rows are the "
            "target, columns "
            "the prediction.",
        ),
        Case(
            "a batch of maps (B, H, W), five classes",
            (pred_b, target_b, 5),
            hint="Flatten pred and target first; every pixel of every image counts once.",
        ),
        Case(
            "target pixels marked 255 (ignored) are not counted",
            (pred_i, target_i, 4),
            hint=ignore_hint,
        ),
        Case(
            "ignore_index=-1 given as an argument",
            (pred_m, target_m, 3),
            kwargs={"ignore_index": -1},
            hint="Use the ignore_index argument, not a hard-coded 255. " + ignore_hint,
        ),
        Case(
            "every target pixel ignored: an all-zero matrix",
            (t([[1, 2], [0, 1]]), t([[255, 255], [255, 255]]), 3),
            hint=ignore_hint,
        ),
        Case(
            "the last classes appear nowhere: the matrix is still num_classes x num_classes",
            (t([0, 1, 1, 0]), t([0, 1, 0, 0]), 4),
            hint="The size comes from num_classes, not from the largest id found "
            "(torch.bincount needs minlength=num_classes ** 2).",
        ),
        Case(
            "a class predicted but absent from the target",
            (t([2, 2, 1, 0]), t([0, 1, 1, 0]), 3),
            hint="Predictions of any class count, in the column of the predicted class.",
        ),
        Case(
            "uint8 maps with 20 classes (t * 20 + p overflows uint8)",
            (pred_u.to(torch.uint8), target_u.to(torch.uint8), 20),
            hint="Convert to int64 (.long()) before computing target * num_classes + pred: uint8 "
            "wraps at 256.",
        ),
        Case(
            "one class only",
            (t([0, 0, 0]), t([0, 0, 0]), 1),
            hint="With one class, every counted pixel is a true positive: [[N]].",
        ),
    ]
    return with_device_copies(cases)


def _compare_confusion(got: Any, expected: torch.Tensor, case: Case) -> str | None:
    problem = tensor_type_problem(got, expected)
    if problem:
        return problem
    if not torch.equal(got, expected) and torch.equal(got, expected.T):
        return (
            "values differ: it looks transposed. Rows are the true class (target), columns the "
            "prediction: "
            "C[t, p] counts pixels of class t predicted as p."
        )
    if not torch.equal(got, expected) and int(got.sum()) != int(expected.sum()):
        return (
            f"values differ: the matrix counts {int(got.sum())} pixels, expected "
            f"{int(expected.sum())} "
            "(every pixel whose target is not ignore_index, exactly once). "
            + (compare_tensors(got, expected, case) or "")
        )
    return compare_tensors(got, expected, case)


@assignment_check(
    reference=metrics.confusion_matrix, cases=confusion_matrix_cases, compare=_compare_confusion
)
def check_confusion_matrix(
    confusion_matrix: Callable[..., torch.Tensor], *, quiet: bool = False
) -> None:
    """Check ``confusion_matrix(pred, target, num_classes, ignore_index=255) -> (K, K) int64``.

    pred, target: integer class ids of the same shape (any shape, e.g. (B, H, W)); target pixels
    equal to ``ignore_index`` are not counted. Result: int64 (num_classes, num_classes) on target's
    device, rows = true class, columns = predicted class.
    """


def segmentation_scores_cases() -> list[Case]:
    """The cases of :func:`check_segmentation_scores` (on every available device)."""
    g = torch.Generator().manual_seed(_SEED + 1)
    t = torch.tensor
    pred, target = _random_maps(g, (4, 16, 16), 7, accuracy=0.5)
    random = metrics.confusion_matrix(pred, target, 7)
    iou_hint = "IoU of class c = C[c, c] / (row sum + column sum - C[c, c]): TP / (TP + FP + FN)."
    cases = [
        Case(
            "a perfect prediction: every IoU is 1",
            (t([[4, 0, 0], [0, 2, 0], [0, 0, 3]]),),
            hint=iou_hint,
        ),
        Case(
            "three classes, errors in both directions",
            (t([[5, 1, 0], [2, 3, 1], [0, 2, 4]]),),
            hint=iou_hint
            + " Forgetting FN (the rest of the row) or FP (the rest of the column) inflates it.",
        ),
        Case(
            "class 1 appears in neither target nor prediction: IoU NaN, left out of the mean",
            (t([[6, 0, 2], [0, 0, 0], [1, 0, 3]]),),
            hint="A class with union 0 has no IoU (0 / 0 = NaN in torch): keep it NaN and average "
            "with "
            "torch.nanmean, so it does not pull the mean down as a 0.",
        ),
        Case(
            "class 2 predicted but absent from the target: IoU 0, and it counts in the mean",
            (t([[5, 0, 1], [1, 4, 2], [0, 0, 0]]),),
            hint="Only a class with union 0 is left out. A class that is predicted but not present "
            "has "
            "TP = 0 and union > 0: IoU 0, which counts.",
        ),
        Case(
            "class 1 present but never predicted: IoU 0 (not left out of the mean)",
            (t([[7, 0, 1], [3, 0, 0], [0, 0, 4]]),),
            hint="Leave out only NaN IoUs (union 0): a missed class has IoU 0 and counts in the "
            "mean.",
        ),
        Case(
            "one large and one tiny class: pixel accuracy is not the mean per-class accuracy",
            (t([[1000, 0], [9, 1]]),),
            hint="Pixel accuracy = trace / total of all counted pixels, not the average of "
            "per-class "
            "accuracies.",
        ),
        Case(
            "seven classes, counts from random 16x16 maps",
            (random,),
            hint=iou_hint + " Compute in floating point: integer division truncates to 0.",
        ),
        Case("one class only", (t([[9]]),), hint=iou_hint),
    ]
    return with_device_copies(cases)


def _as_number(value: Any) -> float | None:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach().cpu())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _same_number(a: float, b: float, tol: float = 1e-6) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol * max(1.0, abs(b))


def _compare_scores(got: Any, expected: Mapping, case: Case) -> str | None:
    if not isinstance(got, Mapping):
        return (
            f"returned {describe(got)}, expected a dict with keys 'iou', 'mIoU' and "
            "'pixel_accuracy'."
        )
    missing = [key for key in ("iou", "mIoU", "pixel_accuracy") if key not in got]
    if missing:
        return (
            f"the dict lacks {missing}: return {{'iou': ..., 'mIoU': ..., 'pixel_accuracy': ...}}."
        )
    iou, want = got["iou"], expected["iou"]
    problem = not_a_tensor_problem(iou)
    if problem:
        return "'iou' " + problem
    if tuple(iou.shape) != tuple(want.shape):
        return (
            f"'iou' has shape {tuple(iou.shape)}, expected {tuple(want.shape)}: one IoU per class."
        )
    if not iou.is_floating_point():
        return (
            f"'iou' has dtype {iou.dtype}, expected a float tensor: was TP // union an integer "
            "division?"
        )
    iou = iou.detach().cpu().double()
    for index in range(len(want)):
        a, b = float(iou[index]), float(want[index])
        if _same_number(a, b):
            continue
        if math.isnan(b):
            return (
                f"'iou'[{index}] is {a:.4g}, expected NaN: class {index} is neither in the target "
                "nor in the "
                "prediction, so its IoU is undefined (0 / 0) and must not count in the mean."
            )
        return f"'iou'[{index}] is {a:.6g}, expected {b:.6g} (TP / (TP + FP + FN))."
    for key in ("mIoU", "pixel_accuracy"):
        number = _as_number(got[key])
        if number is None:
            return f"'{key}' is {describe(got[key])}, expected a number (a float or a 0-d tensor)."
        if not _same_number(number, float(expected[key])):
            return f"'{key}' is {number:.6g}, expected {float(expected[key]):.6g}."
    return None


@assignment_check(
    reference=metrics.segmentation_scores, cases=segmentation_scores_cases, compare=_compare_scores
)
def check_segmentation_scores(
    segmentation_scores: Callable[[torch.Tensor], Mapping], *, quiet: bool = False
) -> None:
    """Check ``segmentation_scores(confusion) -> {"iou", "mIoU", "pixel_accuracy"}``.

    confusion: (K, K) integer counts, rows = true class, columns = prediction. ``iou``: float tensor
    (K,), TP / (TP + FP + FN) per class, NaN for a class absent from both target and prediction;
    ``mIoU``: the mean of the non-NaN IoUs; ``pixel_accuracy``: correct pixels / all counted pixels.
    Numbers may be floats or 0-d tensors; the reference's extra keys are not checked.
    """


CHECKS = (check_confusion_matrix, check_segmentation_scores)
