"""How the Mask R-CNN checks compare an answer with the reference's (private: not a topic module).

Each comparator checks the type, shape, dtype and device, then the values; a wrong answer is
matched against what the usual mistakes return on the same inputs (``*_variants``, computed
from the case), so that the message names the mistake. Every function returns None when right,
else one sentence.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchvision.ops import masks_to_boxes, roi_align

from course_utils.grading.compare import compare_tensors, not_a_tensor_problem, tensor_type_problem
from course_utils.grading.runner import Case

__all__ = [
    "compare_mask_loss",
    "compare_mask_targets",
    "compare_paste",
    "mask_loss_variants",
    "mask_targets_variants",
    "paste_variants",
]

_ATOL, _RTOL = 1e-5, 1e-4

# ----------------------------------------------------------------------------------------------
# mask_targets
# ----------------------------------------------------------------------------------------------


def _soft(masks, boxes, idxs, size, *, aligned=True, scale=1.0, ratio=-1) -> torch.Tensor:
    """roi_align of each RoI's instance mask: float32 (P, size, size) in [0, 1]."""
    if len(boxes) == 0:
        return torch.zeros(0, size, size, device=boxes.device)
    rois = torch.cat([idxs[:, None].float(), boxes.float()], dim=1)
    return roi_align(masks[:, None].float(), rois, (size, size), scale, ratio, aligned)[:, 0]


def _nearest_crops(masks, boxes, idxs, size) -> torch.Tensor:
    """Each box rounded to whole pixels, clipped, cropped and resized (nearest) to size x size."""
    height, width = masks.shape[-2:]
    crops = []
    for box, index in zip(boxes.round().long().tolist(), idxs.tolist()):
        x1, y1 = min(max(box[0], 0), width - 1), min(max(box[1], 0), height - 1)
        x2, y2 = max(min(box[2], width), x1 + 1), max(min(box[3], height), y1 + 1)
        crop = masks[index, y1:y2, x1:x2].float()[None, None]
        crops.append(F.interpolate(crop, size=(size, size), mode="nearest")[0, 0])
    return torch.stack(crops)


def mask_targets_variants(masks, boxes, idxs, size) -> dict[str, torch.Tensor]:
    """What each usual mistake returns on these inputs (float32 (P, M, M)), by its message."""
    if len(boxes) == 0:
        return {}
    own_boxes = masks_to_boxes(masks.bool())[idxs]
    whole = torch.tensor([[0.0, 0.0, masks.shape[-1], masks.shape[-2]]], device=boxes.device)

    def binary(soft: torch.Tensor) -> torch.Tensor:
        return (soft >= 0.5).float()

    variants = {
        "the boxes were read as (y1, x1, y2, x2): proposals are (x1, y1, x2, y2), x along the "
        "columns": binary(_soft(masks, boxes[:, [1, 0, 3, 2]], idxs, size)),
        "these were cropped with aligned=False (half a pixel right of and below the box): use "
        "roi_align(..., aligned=True), in which pixel j's centre is at j + 0.5 as in the course's "
        "boxes": binary(_soft(masks, boxes, idxs, size, aligned=False)),
        "bins of exactly 0.5 were left out: threshold with >= 0.5, not > 0.5": (
            _soft(masks, boxes, idxs, size) > 0.5
        ).float(),
        "these were cut along each instance's own bounding box (masks_to_boxes): crop along the "
        "PROPOSAL's box, the RoI the head sees, so that the mask sits where the object is in the "
        "RoI": binary(_soft(masks, own_boxes, idxs, size)),
        "these are the whole image's mask resized to M x M: crop it to the proposal's box "
        "first (roi_align does both)": binary(
            _soft(masks, whole.expand(len(boxes), 4), idxs, size)
        ),
        "the crops were resized with nearest-neighbour interpolation after rounding the boxes: "
        "roi_align averages bilinear samples at the exact (fractional) box, then threshold at "
        "0.5": _nearest_crops(masks, boxes, idxs, size),
        "these were sampled with sampling_ratio=2: keep roi_align's default sampling_ratio "
        "(adaptive, ceil(box side / M) samples per bin), so that large boxes see all their "
        "pixels": binary(_soft(masks, boxes, idxs, size, ratio=2)),
    }
    for scale in (0.5, 0.25, 0.125, 1 / 16):
        variants[
            f"these were cropped with spatial_scale={scale:g}: the masks are at the image's "
            "resolution, spatial_scale=1.0 (the feature map's scale is for pooling features)"
        ] = binary(_soft(masks, boxes, idxs, size, scale=scale))
    variants[
        "the targets are inverted (1 on the background, 0 on the object): keep soft >= 0.5"
    ] = (_soft(masks, boxes, idxs, size) < 0.5).float()
    if len(boxes) <= len(masks):
        rows = torch.arange(len(boxes), device=boxes.device)
        variants[
            "RoI p read instance p's mask: it must read its matched instance's, "
            "gt_masks[matched_idxs[p]] (roi_align's first column = matched_idxs)"
        ] = binary(_soft(masks, boxes, rows, size))
    return variants


def _pixels(got: torch.Tensor, expected: torch.Tensor) -> str:
    wrong = (got != expected).nonzero()
    p, i, j = (int(v) for v in wrong[0])
    return (
        f"{len(wrong)} of {expected.numel()} target pixels differ from roi_align's, first at "
        f"RoI {p}, row {i}, column {j} (expected {expected[p, i, j]:g}, got {got[p, i, j]:g})"
    )


def compare_mask_targets(got: Any, expected: torch.Tensor, case: Case) -> str | None:
    """float32 (P, M, M) 0/1 targets equal to the reference's; a wrong one is matched against
    the usual mistakes."""
    masks, boxes, idxs, size = case.args
    problem = not_a_tensor_problem(got)
    if problem:
        return problem
    if got.shape != expected.shape:
        hint = ""
        if got.dim() == 3 and got.shape[0] == expected.shape[0] and got.shape[1] != size:
            hint = f" The targets are mask_size x mask_size = {size} x {size}: use the argument."
        return f"returned shape {tuple(got.shape)}, expected {tuple(expected.shape)}.{hint}"
    if got.dtype == torch.bool:
        return (
            "returned dtype torch.bool, expected torch.float32: the loss takes float targets, "
            "return (soft >= 0.5).float()."
        )
    problem = tensor_type_problem(got, expected)
    if problem:
        return problem
    values = got.detach().float()
    if not bool(((values == 0) | (values == 1)).all()):
        soft = _soft(masks, boxes, idxs, size)
        if torch.allclose(values, soft, atol=1e-5):
            return (
                "these are roi_align's soft values (torchvision's project_masks_on_boxes keeps "
                "them): the course's targets are binary, threshold them with (soft >= 0.5).float()."
            )
        return "the targets hold values other than 0 and 1: threshold roi_align's values at 0.5."
    if torch.equal(values, expected):
        return None
    for text, variant in mask_targets_variants(masks, boxes, idxs, size).items():
        if variant.shape == values.shape and torch.equal(values, variant):
            return text + "."
    return _pixels(values, expected) + ". " + "Use roi_align as the hint says."


# ----------------------------------------------------------------------------------------------
# mask_loss
# ----------------------------------------------------------------------------------------------


def mask_loss_variants(logits, targets, labels) -> dict[str, float]:
    """What each usual mistake returns on these inputs (a float), by its message."""
    count, classes, size = logits.shape[0], logits.shape[1], logits.shape[-1]
    if count == 0:
        return {}
    rows = torch.arange(count, device=labels.device)
    own = logits[rows, labels]
    bce = F.binary_cross_entropy_with_logits
    right = float(bce(own, targets))
    one_hot = F.one_hot(labels, classes).to(logits.dtype)[:, :, None, None] * targets[:, None]
    zeros = torch.zeros_like(targets)
    cut = "no softmax across the classes: each class's mask has its own sigmoid"
    return {
        f"this is a per-pixel softmax cross-entropy over the classes (FCN's loss): {cut}, and "
        "only channel labels[p] is trained": float(
            F.cross_entropy(logits, (targets * labels[:, None, None]).long())
        ),
        "every channel was trained on the RoI's mask: only channel labels[p] is, the others get "
        "no loss (the paper's decoupling of masks and classes)": float(
            bce(logits, targets[:, None].expand_as(logits))
        ),
        "every channel was trained, the other classes on an empty mask: only channel labels[p] "
        "counts, the other classes get no loss": float(bce(logits, one_hot)),
        "the background channel 0 was trained too (on an empty mask): mask_loss gets positive "
        "RoIs only and trains channel labels[p] alone": float(
            bce(torch.cat([own, logits[:, 0]]), torch.cat([targets, zeros]))
        ),
        "the background channel 0's loss was added: train channel labels[p] alone": right
        + float(bce(logits[:, 0], zeros)),
        "each pixel used its highest channel (max over the classes): use the channel of the RoI's "
        "ground-truth class, mask_logits[torch.arange(P), labels]": float(
            bce(logits.max(dim=1).values, targets)
        ),
        "each RoI used its predicted class (argmax): the loss uses the ground-truth class, "
        "labels[p] (the prediction picks the channel only at test time)": float(
            bce(logits[rows, logits.mean(dim=(2, 3)).argmax(dim=1)], targets)
        ),
        "this is the sum over the pixels: the loss is their mean (reduction='mean', the "
        "default)": float(bce(own, targets, reduction="sum")),
        "this is the sum over the RoIs of each RoI's mean: average over all P * M * M pixels": (
            right * count
        ),
        "this is the mean over the RoIs of each mask's pixel sum: average over all P * M * M "
        "pixels": right * size * size,
        "the logits went through a sigmoid before binary_cross_entropy_with_logits, which "
        "applies its own: pass the raw logits": float(bce(own.sigmoid(), targets)),
        "channel labels[p] - 1 was used: the head has num_classes = K + 1 channels, background "
        "included, so class c's mask is channel c": float(bce(logits[rows, labels - 1], targets)),
    }


def compare_mask_loss(got: Any, expected: torch.Tensor, case: Case) -> str | None:
    """A 0-dim tensor close to the reference's loss; a wrong value is matched against the usual
    mistakes."""
    problem = not_a_tensor_problem(got)
    if problem:
        if isinstance(got, float):
            problem += " A Python float has no gradient: keep the loss a tensor (no .item())."
        return problem
    if got.dim() != 0:
        per_roi = " (one loss per RoI?)" if got.dim() == 1 else ""
        return (
            f"returned shape {tuple(got.shape)}{per_roi}, expected a 0-dim tensor (shape ()): "
            "the loss is one number, the mean over all RoIs and pixels."
        )
    problem = tensor_type_problem(got, expected)
    if problem:
        return problem
    value, want = float(got), float(expected)
    if value != value:
        return (
            "the loss is nan: with no positive RoI the mean is over nothing. Return "
            "mask_logits.sum() * 0 when P = 0."
        )
    if abs(value - want) <= _ATOL + _RTOL * abs(want):
        return None
    for text, variant in mask_loss_variants(*case.args).items():
        if abs(value - variant) <= _ATOL + _RTOL * abs(variant):
            return text + "."
    return f"expected {want:.6g}, got {value:.6g} (off by {value - want:+.4g})."


# ----------------------------------------------------------------------------------------------
# paste_masks
# ----------------------------------------------------------------------------------------------


def _paste(masks, boxes, image_size, threshold=None, **how) -> torch.Tensor:
    """``paste_masks`` done the way ``how`` says: ``padding`` (1), ``grow`` (True), ``mode``
    ("bilinear"), ``align_corners`` (False), ``extra`` (1 = both corners inclusive), ``rounding``
    ("trunc"); the defaults are the reference."""
    padding, extra = how.get("padding", 1), how.get("extra", 1)
    size = masks.shape[-1]
    masks = F.pad(masks, (padding,) * 4)
    scale = (size + 2 * padding) / size if how.get("grow", True) else 1.0
    half = (boxes[:, 2:] - boxes[:, :2]) * 0.5 * scale
    centre = (boxes[:, 2:] + boxes[:, :2]) * 0.5
    corners = torch.cat([centre - half, centre + half], dim=1)
    rounding = how.get("rounding", "trunc")
    corners = {"trunc": corners, "floor": corners.floor(), "round": corners.round()}[rounding]
    out = masks.new_zeros((len(masks), *image_size))
    mode, corners_aligned = how.get("mode", "bilinear"), how.get("align_corners", False)
    for mask, (x1, y1, x2, y2), canvas in zip(masks, corners.long().tolist(), out):
        width, height = max(x2 - x1 + extra, 1), max(y2 - y1 + extra, 1)
        options = {"align_corners": corners_aligned} if mode == "bilinear" else {}
        resized = F.interpolate(mask[None, None], size=(height, width), mode=mode, **options)[0, 0]
        left, top = max(x1, 0), max(y1, 0)
        right, bottom = min(x1 + width, image_size[1]), min(y1 + height, image_size[0])
        if left < right and top < bottom:
            canvas[top:bottom, left:right] = resized[top - y1 : bottom - y1, left - x1 : right - x1]
    return out if threshold is None else out >= threshold


def paste_variants(masks, boxes, image_size, threshold=None) -> dict[str, torch.Tensor]:
    """What each usual mistake returns on these inputs, by its message."""

    def paste(masks=masks, boxes=boxes, **how):
        return _paste(masks, boxes, image_size, threshold, **how)

    variants = {
        "the mask was not padded and its box not grown: pad the mask with one pixel of zeros "
        "and grow the box by (M + 2) / M, so that the mask fades out at the box's edge": paste(
            padding=0
        ),
        "the mask was padded but its box not grown: grow the box about its centre by (M + 2) / M "
        "to make room for the padding": paste(grow=False),
        "the boxes were read as (y1, x1, y2, x2): boxes are (x1, y1, x2, y2), x along the "
        "columns": paste(boxes=boxes[:, [1, 0, 3, 2]]),
        "the masks are transposed: a mask's rows follow y (row i of the mask is higher up than "
        "row i + 1), its columns x": paste(masks=masks.transpose(1, 2)),
        "this is nearest-neighbour interpolation: resize with mode='bilinear'": paste(
            mode="nearest"
        ),
        "this is bilinear interpolation with align_corners=True: use align_corners=False (pixel "
        "centres at (i + 0.5) * scale, torchvision's paste)": paste(align_corners=True),
        "each box is one pixel too small: torchvision's paste counts both corners, width = x2 - "
        "x1 + 1 (after the truncation), height = y2 - y1 + 1": paste(extra=0),
        "the grown corners were rounded down (floor): truncate them toward zero with .long() as "
        "torchvision does (it differs for negative corners, boxes leaving the image on the left "
        "or top)": paste(rounding="floor"),
        "the grown corners were rounded to the nearest pixel: truncate them toward zero with "
        ".long(), as torchvision does": paste(rounding="round"),
    }
    if threshold is not None and threshold != 0.5:
        variants[f"this is thresholded at 0.5: use the threshold given ({threshold:g})"] = _paste(
            masks, boxes, image_size, 0.5
        )
    return variants


def compare_paste(got: Any, expected: torch.Tensor, case: Case) -> str | None:
    """(N, H, W) pasted probabilities (or bool masks) equal to the reference's; a wrong one is
    matched against the usual mistakes."""
    threshold = case.kwargs.get("threshold")
    problem = not_a_tensor_problem(got)
    if problem:
        return problem
    if got.shape == expected.shape and got.dtype != expected.dtype:
        if threshold is None and got.dtype == torch.bool:
            return (
                "returned a bool mask although threshold is None: without a threshold return the "
                "pasted probabilities (the masks' float dtype)."
            )
        if threshold is not None and expected.dtype == torch.bool:
            return (
                f"returned dtype {got.dtype} although threshold={threshold}: with a threshold "
                "return the bool mask pasted >= threshold."
            )
    problem = tensor_type_problem(got, expected)
    if problem:
        return problem
    if compare_tensors(got, expected, case, atol=_ATOL, rtol=_RTOL) is None:
        return None
    for text, variant in paste_variants(*case.args, threshold).items():
        if compare_tensors(got, variant, case, atol=_ATOL, rtol=_RTOL) is None:
            return text + "."
    return compare_tensors(got, expected, case, atol=_ATOL, rtol=_RTOL)
