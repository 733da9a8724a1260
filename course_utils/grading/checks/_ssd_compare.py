"""How the SSD checks compare a student's default boxes, matches and mining mask with the
reference's (private: not a topic module). Each comparator names the first wrong box, what it
should be and, when it recognises the mistake, what it is."""

from __future__ import annotations

from typing import Any

import torch
from torchvision.ops import box_iou

from course_utils.grading.compare import compare_tensors, tensor_type_problem
from course_utils.grading.runner import Case

__all__ = ["compare_default_boxes", "compare_matches", "compare_mining"]

# ----------------------------------------------------------------------------------------------
# default_boxes
# ----------------------------------------------------------------------------------------------


def _per_cell(aspect_ratios) -> list[int]:
    return [2 + 2 * len(ratios) for ratios in aspect_ratios]


def _where(n: int, feature_sizes, aspect_ratios) -> str:
    """Row ``n`` of the default boxes as 'map k, cell (row i, column j), box t (what it is)'."""
    for k, ((h, w), ratios) in enumerate(zip(feature_sizes, aspect_ratios)):
        b = 2 + 2 * len(ratios)
        if n < h * w * b:
            cell, t = divmod(n, b)
            if t < 2:
                kind = "the square s_k" if t == 0 else "the extra square sqrt(s_k s_{k+1})"
            else:
                kind = f"ratio {ratios[(t - 2) // 2]:g}, " + ("wide" if t % 2 == 0 else "tall")
            return f"map {k}, cell (row {cell // w}, column {cell % w}), box {t}: {kind}"
        n -= h * w * b
    return "past the last default box"


def _cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    return torch.cat([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], dim=1)


def _close(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.isclose(a, b, rtol=1e-4, atol=1e-3)


def _box_text(cxcywh: torch.Tensor) -> str:
    cx, cy, w, h = cxcywh.tolist()
    return f"centre ({cx:.4g}, {cy:.4g}), {w:.4g} wide, {h:.4g} tall"


def _count_problem(got: torch.Tensor, expected: torch.Tensor, case: Case) -> str | None:
    feature_sizes, aspect_ratios = case.args[0], case.args[3]
    if got.dim() != 2 or got.shape[1] != 4 or len(got) == len(expected):
        return None
    counts = " + ".join(
        f"{h}*{w}*{b}" for (h, w), b in zip(feature_sizes, _per_cell(aspect_ratios))
    )
    return (
        f"returned {len(got)} boxes, expected {len(expected)} = {counts} (h * w cells times b = "
        "2 + 2 * len(ratios) boxes per cell: the two squares, s_k and the extra sqrt(s_k "
        "s_{k+1}), then a wide and a tall box per ratio)."
    )


def _order_problem(got, expected, case) -> str | None:
    """When every returned box is an expected box, in another order: where the first one is."""
    distance = torch.cdist(got.double(), expected.double())
    nearest = distance.argmin(dim=1)
    if not bool((distance.min(dim=1).values < 1e-2).all()):
        return None
    if sorted(nearest.tolist()) != list(range(len(expected))):
        return None
    n = int((nearest != torch.arange(len(expected))).nonzero()[0])
    feature_sizes, aspect_ratios = case.args[0], case.args[3]
    return (
        f"the right boxes in another order: row {n} should be the box of "
        f"{_where(n, feature_sizes, aspect_ratios)}; yours is the box of "
        f"{_where(int(nearest[n]), feature_sizes, aspect_ratios)}."
    )


def compare_default_boxes(got: Any, expected: torch.Tensor, case: Case) -> str | None:
    """Type and count; then the format, the clipping, the order; then the first wrong box."""
    if isinstance(got, torch.Tensor):
        problem = _count_problem(got, expected, case)
        if problem:
            return problem
    problem = tensor_type_problem(got, expected)
    if problem:
        return problem
    if bool(_close(got, expected).all()):
        return None
    feature_sizes, (height, width) = case.args[:2]
    scale = torch.tensor([width, height, width, height], dtype=got.dtype)
    if bool(_close(got, _cxcywh(expected)).all()):
        return "these are (cx, cy, w, h) boxes: return the corners (x1, y1, x2, y2) in pixels."
    if bool(_close(got * scale, expected).all()):
        return (
            "these are fractions of the image: multiply x and the widths by W, y and the heights "
            "by H to get pixels."
        )
    inside = bool(((got >= -1e-3) & (got <= scale + 1e-3)).all())
    if inside and not bool(((expected >= 0) & (expected <= scale)).all()):
        if not case.args[4]:
            return (
                "clip=False, yet your boxes stay inside the image where the expected ones stick "
                "out of it: with clip=False nothing is clamped."
            )
        return (
            "your boxes were cut at the image's border, the expected ones stick out of it: "
            "clip clamps the relative widths and heights to [0, 1], not the corners."
        )
    problem = _order_problem(got, expected, case)
    if problem:
        return problem
    wrong = (~_close(got, expected).all(dim=1)).nonzero().flatten()
    n = int(wrong[0])
    mine, want = _cxcywh(got[n : n + 1])[0], _cxcywh(expected[n : n + 1])[0]
    text = (
        f"box {n} ({_where(n, feature_sizes, case.args[3])}) should have "
        f"{_box_text(want)}; yours has {_box_text(mine)} ({len(wrong)} of {len(expected)} "
        "boxes wrong)."
    )
    same_size = bool(_close(mine[2:], want[2:]).all())
    if bool(_close(mine[2:], want[2:].flip(0)).all()) and not same_size:
        text += " Its width and height are swapped: the first box of a ratio r is the wide one."
    elif bool(_close(mine[:2], want[:2]).all()):
        text += " Its centre is right, its size is not."
    elif same_size:
        text += " Its size is right, its centre is not."
    return text


# ----------------------------------------------------------------------------------------------
# match_default_boxes
# ----------------------------------------------------------------------------------------------


def _code(value: int) -> str:
    if value >= 0:
        return f"{value} (ground-truth box {value})"
    return "-1 (unmatched)" if value == -1 else str(value)


def compare_matches(got: Any, expected: torch.Tensor, case: Case) -> str | None:
    """compare_tensors, then for a wrong value: which default box, what it should be, its IoUs."""
    defaults, gt_boxes, threshold = case.args
    if isinstance(got, torch.Tensor) and got.shape == (len(gt_boxes),) != expected.shape:
        return (
            f"returned one value per ground-truth box, shape {tuple(got.shape)}, expected one per "
            f"default box, {tuple(expected.shape)}: for each default box take the best over the "
            "ground-truth boxes (the max over dim 0 of the (G, D) IoU matrix)."
        )
    problem = compare_tensors(got, expected, case)
    if problem is None or not problem.startswith("values differ"):
        return problem
    wrong = (got != expected).nonzero().flatten()
    box = int(wrong[0])
    mine, want = int(got[box]), int(expected[box])
    text = (
        f"default box {box} should be {_code(want)}, got {_code(mine)} ({len(wrong)} of "
        f"{len(expected)} default boxes wrong)."
    )
    if mine == -2:
        text += " SSD has no 'ignored' code: every default box not matched is -1."
    if bool((got > 0).any()) and bool(torch.equal(got, (expected >= 0).to(got.dtype))):
        text += " These are 1 / 0 flags: return the matched ground truth's index, or -1."
    if len(gt_boxes) == 0:
        text += " There is no ground-truth box to match: every default box is -1."
    if len(gt_boxes):
        iou = box_iou(gt_boxes, defaults).cpu()
        best, gt = iou[:, box].max(dim=0)
        text += (
            f" Its best IoU is {float(best):.4g}, with ground-truth box {int(gt)} "
            f"(iou_threshold {threshold})"
        )
        picked_by = (iou.argmax(dim=1) == box).nonzero().flatten().tolist()
        if picked_by:
            text += (
                f"; it is the best default box of ground-truth box {', '.join(map(str, picked_by))}"
            )
        text += "."
    return text


# ----------------------------------------------------------------------------------------------
# hard_negative_mining
# ----------------------------------------------------------------------------------------------


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _negative_problem(got, expected, loss, labels, ratio, n) -> str:
    """What is wrong with image ``n``'s negatives (its positives are right)."""
    negatives = labels[n] == 0
    kept, want = int((got[n] & negatives).sum()), int((expected[n] & negatives).sum())
    positives = int((labels[n] > 0).sum())
    if kept != want:
        return (
            f"image {n} ({_count(positives, 'positive')}, "
            f"{_count(int(negatives.sum()), 'negative')}, neg_pos_ratio "
            f"{ratio}) keeps {kept} negatives, expected {want} = min(neg_pos_ratio * max(P, 1), "
            "number of negatives), P its number of positives."
        )
    extra = int((got[n] & ~expected[n]).nonzero()[0])
    missing = int((expected[n] & ~got[n]).nonzero()[0])
    text = (
        f"image {n} keeps the right number of negatives ({kept}) but not the right ones: "
        f"negative {extra} (loss {float(loss[n, extra]):.4g}) instead of negative {missing} "
        f"(loss {float(loss[n, missing]):.4g})."
    )
    if float(loss[n, extra]) == float(loss[n, missing]):
        text += " Their losses are equal: on ties the lower index is kept first (a stable sort)."
    elif float(loss[n, extra]) < float(loss[n, missing]):
        text += " Keep the negatives of HIGHEST loss (sort in descending order)."
    return text


def compare_mining(got: Any, expected: torch.Tensor, case: Case) -> str | None:
    """Type, then per image: the positives, how many negatives, which negatives."""
    if isinstance(got, torch.Tensor) and got.shape == expected.shape and got.dtype != torch.bool:
        return (
            f"returned dtype {got.dtype}, expected torch.bool: a mask of the default boxes to "
            "train on (True = keep), e.g. positive | chosen_negatives."
        )
    problem = tensor_type_problem(got, expected)
    if problem:
        return problem
    if torch.equal(got, expected):
        return None
    loss, labels, ratio = case.args
    got, expected = got.cpu(), expected.cpu()
    loss, labels = loss.cpu(), labels.cpu()
    dropped = (labels > 0) & ~got
    if bool(dropped.any()):
        n, d = (int(i) for i in dropped.nonzero()[0])
        return (
            f"default box {d} of image {n} is a positive (label {int(labels[n, d])}) but is not "
            "in your mask: keep every positive, the mask is positives OR the hard negatives."
        )
    n = int((got != expected).any(dim=1).nonzero()[0])
    return _negative_problem(got, expected, loss, labels, ratio, n) + (
        f" (the mask differs in {int((got != expected).any(dim=1).sum())} of {len(got)} images)"
    )
