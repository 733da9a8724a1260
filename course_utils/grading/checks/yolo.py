"""Checks for the YOLO v1 assignments (notebook 06): targets, loss, head and decoding.

* ``encode_targets(boxes, labels, image_size, grid_size, num_classes) -> target``: float32
  (S, S, 5 + C), ``[x, y, w, h, 1, one-hot]`` in the cell of each object's centre;
* ``yolo_loss(output, targets, boxes_per_cell, lambda_coord, lambda_noobj) -> terms``: a dict of
  the five 0-dim terms ``coord_xy, coord_wh, obj, noobj, class``;
* ``YOLOHead(in_features, grid_size, boxes_per_cell, num_classes, hidden, dropout)``: an
  ``nn.Module`` (flatten, fc1, leaky ReLU 0.1, dropout, fc2) returning (N, S, S, 5B + C);
* ``decode_predictions(output, image_size, boxes_per_cell, score_threshold, nms_threshold) ->
  {"boxes", "scores", "labels"}``: one image's detections, best first.

The references are the course's ``course_utils.detection.yolo``. ``check_YOLOHead`` runs on the
CPU, the three others on every available device.

Usage in a notebook::

    check_yolo_loss(yolo_loss)   # graded cell: raises on a wrong answer
    check_YOLOHead(YOLOHead)     # the class itself, not an instance
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from course_utils.detection import yolo
from course_utils.grading.assignments import assignment_check
from course_utils.grading.checks._yolo_cases import (
    decode_predictions_cases,
    encode_targets_cases,
    yolo_head_cases,
    yolo_loss_cases,
)
from course_utils.grading.checks._yolo_head import compare_head
from course_utils.grading.compare import describe, not_a_tensor_problem, tensor_type_problem
from course_utils.grading.runner import Case

__all__ = [
    "CHECKS",
    "check_YOLOHead",
    "check_decode_predictions",
    "check_encode_targets",
    "check_yolo_loss",
    "decode_predictions_cases",
    "encode_targets_cases",
    "yolo_head_cases",
    "yolo_loss_cases",
]

_ENTRIES = ("x", "y", "w", "h", "confidence")


# ----------------------------------------------------------------------------------------------
# encode_targets
# ----------------------------------------------------------------------------------------------


def _entry_name(k: int) -> str:
    return _ENTRIES[k] if k < 5 else f"class {k - 4} (entry {k})"


def _compare_grid(got: Any, expected: torch.Tensor, case: Case) -> str | None:
    """Type, then the first wrong cell: where the objects are, then which entries differ."""
    if isinstance(got, torch.Tensor) and got.is_floating_point() and got.dtype != expected.dtype:
        return (
            f"returned dtype {got.dtype}, expected {expected.dtype}: the target grid is float32 "
            "(torch.zeros(S, S, 5 + C, device=boxes.device))."
        )
    problem = tensor_type_problem(got, expected)
    if problem:
        return problem
    close = torch.isclose(got, expected, rtol=1e-4, atol=1e-5)
    if bool(close.all()):
        return None
    cells = (~close).any(dim=-1).nonzero().tolist()
    i, j = cells[0]
    where = f"cell (row {i}, column {j})"
    if expected[i, j, 4] == 1 and got[i, j, 4] == 0:
        return (
            f"{where} should hold an object, but its confidence is 0. Your grid has objects in "
            f"{_object_cells(got)}; expected in {_object_cells(expected)}."
        )
    if expected[i, j, 4] == 0 and got[i, j].abs().sum() > 0:
        return (
            f"{where} should be empty (all zeros), got {describe(got[i, j])}: only the cell of an "
            "object's centre gets numbers."
        )
    wrong = (~close[i, j]).nonzero().flatten().tolist()
    details = "; ".join(
        f"{_entry_name(k)} expected {float(expected[i, j, k]):.6g}, got {float(got[i, j, k]):.6g}"
        for k in wrong
    )
    return f"{where}: {details} ({len(cells)} of {expected[..., 0].numel()} cells wrong)."


def _object_cells(grid: torch.Tensor) -> str:
    """The cells whose confidence is not 0, as text: "(row 1, column 2), (row 3, column 0)"."""
    cells = (grid[..., 4] != 0).nonzero().tolist()
    return ", ".join(f"(row {r}, column {c})" for r, c in cells) or "no cell"


@assignment_check(reference=yolo.encode_targets, cases=encode_targets_cases, compare=_compare_grid)
def check_encode_targets(
    encode_targets: Callable[..., torch.Tensor], *, quiet: bool = False
) -> None:
    """Check ``encode_targets(boxes, labels, image_size, grid_size, num_classes) -> target``.

    boxes float (N, 4) xyxy pixels; labels int64 (N,) in 1..C; image_size (H, W). target: float32
    (S, S, 5 + C) on the boxes' device: the cell (row floor(cy / H * S), column floor(cx / W * S),
    clamped to S - 1) of each box's centre holds [x, y, w, h, 1, one-hot of label - 1], x, y the
    centre's offsets in the cell, w, h relative to the image; the first box keeps a shared cell;
    other cells are 0.
    """


# ----------------------------------------------------------------------------------------------
# yolo_loss
# ----------------------------------------------------------------------------------------------


def _term_problem(name: str, got: Any, want: torch.Tensor) -> str | None:
    """What is wrong with one term's type (a 0-dim tensor like the reference's)."""
    problem = not_a_tensor_problem(got)
    if problem:
        if isinstance(got, float):
            problem += " A Python float has no gradient: keep the loss a tensor (no .item())."
        return f"{name}: {problem}"
    if got.dim() != 0:
        return (
            f"{name} has shape {tuple(got.shape)}; each term is a single number, a 0-dim "
            "tensor (shape ()): sum it, then divide by N."
        )
    problem = tensor_type_problem(got, want)
    return f"{name}: {problem}" if problem else None


def _ratio(got: float, want: float) -> str:
    if want != 0 and got != 0:
        return f", {got / want:.4g} times the expected"
    return ""


def _compare_terms(got: Any, expected: dict[str, torch.Tensor], case: Case) -> str | None:
    """A dict of the five terms, each a 0-dim tensor, each close to the reference's."""
    if not isinstance(got, Mapping):
        return (
            f"returned {describe(got)}, expected a dict of the five terms {{'coord_xy', "
            "'coord_wh', 'obj', 'noobj', 'class'}, each a 0-dim tensor."
        )
    missing = [name for name in yolo.LOSS_TERMS if name not in got]
    if missing:
        return (
            f"the dict has no {', '.join(repr(m) for m in missing)}: its keys must be "
            f"{', '.join(yolo.LOSS_TERMS)} (got {', '.join(map(repr, got))})."
        )
    for name in yolo.LOSS_TERMS:
        problem = _term_problem(name, got[name], expected[name])
        if problem:
            return problem
    wrong = []
    for name in yolo.LOSS_TERMS:
        value, want = float(got[name]), float(expected[name])
        if value != value:  # NaN
            return (
                f"{name} is nan (expected {want:.6g}): a square root of a negative number? The "
                "network's √w, √h may be negative: never take their square root."
            )
        if abs(value - want) > 1e-5 + 1e-4 * abs(want):
            wrong.append(
                f"{name} expected {want:.6g}, got {value:.6g} (off by {value - want:+.4g}"
                f"{_ratio(value, want)})"
            )
    if wrong:
        right = [name for name in yolo.LOSS_TERMS if not any(w.startswith(name) for w in wrong)]
        text = "; ".join(wrong) + "."
        return text + (f" Right: {', '.join(right)}." if right else "")
    return None


@assignment_check(reference=yolo.yolo_loss, cases=yolo_loss_cases, compare=_compare_terms)
def check_yolo_loss(yolo_loss: Callable[..., dict], *, quiet: bool = False) -> None:
    """Check ``yolo_loss(output, targets, boxes_per_cell, lambda_coord, lambda_noobj) -> terms``.

    output float (N, S, S, 5B + C), per predictor b [x, y, √w, √h, confidence] at 5b..5b+4 then
    the C class scores; targets float (N, S, S, 5 + C) (encode_targets). terms: a dict of five
    0-dim tensors, each summed over the grid and divided by N: coord_xy and coord_wh (times
    lambda_coord, responsible predictor only: highest IoU, √ of the target's w, h), obj
    (confidence vs that IoU), noobj (times lambda_noobj, every other predictor), class (once per
    object cell).
    """


# ----------------------------------------------------------------------------------------------
# YOLOHead: the student's class is built with the case's arguments, then compared
# (``_yolo_head.compare_head``)
# ----------------------------------------------------------------------------------------------


@assignment_check(reference=yolo.YOLOHead, cases=yolo_head_cases, compare=compare_head)
def check_YOLOHead(YOLOHead: type[nn.Module], *, quiet: bool = False) -> None:
    """Check ``YOLOHead(in_features, grid_size, boxes_per_cell, num_classes, hidden, dropout)``, a
    class (an nn.Module): pass the class.

    Its attributes: ``fc1`` = nn.Linear(in_features, hidden), ``dropout`` = nn.Dropout(dropout),
    ``fc2`` = nn.Linear(hidden, S * S * (5B + C)), nothing else with parameters. ``forward(features
    (N, D, h, w)) -> (N, S, S, 5B + C)``: flatten, fc1, leaky ReLU (slope 0.1), dropout, fc2,
    view. Run on the CPU with the reference's weights copied in, in eval and train mode.
    """


# ----------------------------------------------------------------------------------------------
# decode_predictions
# ----------------------------------------------------------------------------------------------

_KEYS = ("boxes", "scores", "labels")


def _detection_type_problem(got: Any, expected: dict[str, torch.Tensor]) -> str | None:
    if not isinstance(got, Mapping) or any(key not in got for key in _KEYS):
        return (
            f"returned {describe(got)}, expected a dict with the keys 'boxes', 'scores', 'labels'."
        )
    for key, shape in zip(_KEYS, ("(K, 4)", "(K,)", "(K,)")):
        value, want = got[key], expected[key]
        problem = not_a_tensor_problem(value)
        if problem:
            return f"{key}: {problem}"
        if value.dim() != want.dim() or value.shape[1:] != want.shape[1:]:
            return f"{key} has shape {tuple(value.shape)}, expected {shape}."
        problem = tensor_type_problem(value[:0], want[:0])
        if problem:
            return f"{key}: {problem}"
    if not len(got["boxes"]) == len(got["scores"]) == len(got["labels"]):
        return "boxes, scores and labels must have the same length K: one of each per detection."
    return None


def _detection(result: Mapping, k: int) -> str:
    box = ", ".join(f"{v:.4g}" for v in result["boxes"][k].tolist())
    return f"label {int(result['labels'][k])}, score {float(result['scores'][k]):.4g}, box [{box}]"


def _unmatched(a: Mapping, b: Mapping) -> int | None:
    """The first detection of ``a`` with no equal one (label, score, box) in ``b``."""
    for k in range(len(a["scores"])):
        same = (b["labels"] == a["labels"][k]) & ((b["scores"] - a["scores"][k]).abs() < 1e-4)
        same &= ((b["boxes"] - a["boxes"][k]).abs() < 1e-2).all(dim=1)
        if not bool(same.any()):
            return k
    return None


def _closest(got: Mapping, expected: Mapping, k: int) -> str:
    """``; your closest: ...`` the detection of ``got`` nearest to ``expected``'s ``k``-th."""
    if len(got["scores"]) == 0:
        return "."
    distance = (got["boxes"] - expected["boxes"][k]).abs().sum(dim=1) / 100
    distance += (got["scores"] - expected["scores"][k]).abs()
    distance += (got["labels"] != expected["labels"][k]).to(distance.dtype)
    return f"; your closest: {_detection(got, int(distance.argmin()))}."


def _compare_detections(got: Any, expected: dict[str, torch.Tensor], case: Case) -> str | None:
    """Types, labels' range, clipping, then the detections one by one, in order."""
    problem = _detection_type_problem(got, expected)
    if problem:
        return problem
    output, (height, width), boxes_per_cell = case.args[:3]
    num_classes = output.shape[-1] - 5 * boxes_per_cell
    labels, boxes, scores = got["labels"], got["boxes"], got["scores"]
    if len(labels) and (int(labels.min()) < 1 or int(labels.max()) > num_classes):
        return f"labels {labels.tolist()} are not in 1..{num_classes}: class c is label c + 1."
    inside = (boxes[:, 0::2] >= 0) & (boxes[:, 0::2] <= width)
    inside = (inside & (boxes[:, 1::2] >= 0) & (boxes[:, 1::2] <= height)).all(dim=1)
    if not bool(inside.all()):
        k = int((~inside).nonzero()[0])
        return (
            f"detection {k} ({_detection(got, k)}) sticks out of the {height}x{width} image "
            "(H x W): clip the boxes to the image (x to [0, W], y to [0, H]) before NMS."
        )
    if len(scores) > 1 and bool((scores[1:] > scores[:-1]).any()):
        return "the detections are not sorted by decreasing score (best first)."
    extra, missing = _unmatched(got, expected), _unmatched(expected, got)
    if missing is not None:
        return (
            f"{len(scores)} detections, expected {len(expected['scores'])}; the expected "
            f"detection {missing} ({_detection(expected, missing)}) is not among yours"
            + _closest(got, expected, missing)
        )
    if extra is not None:
        return (
            f"{len(scores)} detections, expected {len(expected['scores'])}; your detection "
            f"{extra} ({_detection(got, extra)}) should not be there."
        )
    if len(scores) != len(expected["scores"]):
        return f"{len(scores)} detections, expected {len(expected['scores'])}: duplicates?"
    if not torch.equal(labels, expected["labels"]):
        return "the right detections in another order: sort them by decreasing score."
    return None


@assignment_check(
    reference=yolo.decode_predictions, cases=decode_predictions_cases, compare=_compare_detections
)
def check_decode_predictions(
    decode_predictions: Callable[..., dict], *, quiet: bool = False
) -> None:
    """Check ``decode_predictions(output, image_size, boxes_per_cell, score_threshold,
    nms_threshold) -> {"boxes", "scores", "labels"}``.

    output float (S, S, 5B + C), one image's grid; image_size (H, W). Every predictor's box
    (centre ((j + x) / S * W, (i + y) / S * H), size (√w² W, √h² H), clipped to the image) gets
    one score per class, confidence times the cell's class score; pairs below score_threshold
    are dropped, then per-class NMS at nms_threshold. boxes float32 (K, 4) xyxy pixels, scores
    float32 (K,), labels int64 (K,) in 1..C, best first.
    """


CHECKS = (check_encode_targets, check_yolo_loss, check_YOLOHead, check_decode_predictions)
