"""Input checks shared by every module: each names what was expected and what came.

The course's conventions (README.md, "Conventions"; notebook 00):

* images: float tensors, CHW, values in [0, 1];
* boxes: float tensors of shape (N, 4), ``(x1, y1, x2, y2)`` in absolute pixels;
* labels: int64, 1..K for things, 0 is background;
* instance masks: bool or uint8, (N, H, W); semantic maps: integer (H, W).

Empty targets (N = 0) are legal everywhere.

Settings (counts, sizes, thresholds) are checked by :func:`check_int` and :func:`check_number`:
a wrong type raises ``TypeError``, a value out of range ``ValueError``, and both messages name
the argument and the range it must lie in.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import torch

_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _require_tensor(value, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def _range_text(minimum, maximum, open_minimum: bool = False, open_maximum: bool = False) -> str:
    left, right = "(" if open_minimum else "[", ")" if open_maximum else "]"
    if minimum is not None and maximum is not None:
        return f"in {left}{minimum}, {maximum}{right}"
    if minimum is not None:
        return f"{'>' if open_minimum else '>='} {minimum}"
    if maximum is not None:
        return f"{'<' if open_maximum else '<='} {maximum}"
    return "any value"


def check_int(
    value, name: str, minimum: int | None = 1, maximum: int | None = None, allow_none: bool = False
) -> int | None:
    """``value`` as an ``int`` in ``[minimum, maximum]`` (either bound may be None = open).

    Python and NumPy integers pass; ``bool``, floats and strings raise ``TypeError``; an int
    out of range raises ``ValueError``. ``allow_none=True`` lets ``None`` through unchanged.
    The default ``minimum=1`` checks "a positive int".
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be an int {_range_text(minimum, maximum)}, "
            f"got {type(value).__name__} {value!r}"
        )
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an int {_range_text(minimum, maximum)}, got {value}")
    return int(value)


def check_number(
    value,
    name: str,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    open_minimum: bool = False,
    open_maximum: bool = False,
) -> float:
    """``value`` as a finite ``float`` in ``[minimum, maximum]`` (either bound may be None = open).

    ints, floats and NumPy scalars pass; ``bool`` and non-numbers raise ``TypeError``; NaN,
    infinities and values out of range raise ``ValueError``. ``check_number(x, "iou", 0, 1)``
    checks a fraction; ``open_minimum=True`` / ``open_maximum=True`` exclude the bound itself
    (``check_number(p, "dropout", 0, 1, open_maximum=True)``: p in [0, 1)).
    """
    expected = _range_text(minimum, maximum, open_minimum, open_maximum)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number {expected}, got {type(value).__name__} {value!r}")
    number = float(value)
    below = minimum is not None and (number <= minimum if open_minimum else number < minimum)
    above = maximum is not None and (number >= maximum if open_maximum else number > maximum)
    if number != number or number in (float("inf"), float("-inf")) or below or above:
        raise ValueError(f"{name} must be a number {expected}, got {value}")
    return number


def check_image(image, name: str = "image") -> torch.Tensor:
    """An image as the course expects it: float tensor (3, H, W) or (1, H, W), values in [0, 1].

    A uint8 image, or a float image with values up to 255, is rejected with the fix
    (``torchvision.transforms.v2.functional.to_dtype(img, torch.float32, scale=True)``).
    """
    image = _require_tensor(image, name)
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(
            f"{name} must be CHW with 1 or 3 channels, got shape {tuple(image.shape)}"
            + (
                " (looks like HWC: use image.permute(2, 0, 1))"
                if image.ndim == 3 and image.shape[-1] in (1, 3)
                else ""
            )
        )
    if not image.is_floating_point():
        raise TypeError(
            f"{name} must be a float tensor in [0, 1], got dtype {image.dtype}; "
            "convert with v2.functional.to_dtype(image, torch.float32, scale=True)"
        )
    if image.numel():
        low, high = float(image.min()), float(image.max())
        if high > 1.0 + 1e-3 or low < -1e-3:
            hint = " (values look like 0-255: divide by 255)" if high > 1.5 else ""
            raise ValueError(
                f"{name} values must lie in [0, 1], got range [{low:.3g}, {high:.3g}]{hint}"
            )
    return image


def check_boxes(
    boxes, name: str = "boxes", canvas_size: tuple[int, int] | None = None
) -> torch.Tensor:
    """Boxes as the course expects them: float (N, 4), ``(x1, y1, x2, y2)`` absolute pixels.

    Rejects integer dtypes, other shapes, ``x2 < x1`` or ``y2 < y1`` (often xywh boxes:
    convert with ``torchvision.ops.box_convert(b, "xywh", "xyxy")``), non-finite values
    and, when ``canvas_size=(H, W)`` is given, boxes that look normalized to [0, 1] or
    that leave the image by more than a pixel.
    """
    boxes = _require_tensor(boxes, name)
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(
            f"{name} must have shape (N, 4) in (x1, y1, x2, y2) pixels, got {tuple(boxes.shape)}"
        )
    if not boxes.is_floating_point():
        raise TypeError(
            f"{name} must be a float tensor (x1, y1, x2, y2) in pixels, got dtype {boxes.dtype}"
        )
    if boxes.numel() == 0:
        return boxes
    if not torch.isfinite(boxes).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bad.any():
        index = int(bad.nonzero()[0])
        raise ValueError(
            f"{name}[{index}] = {boxes[index].tolist()} has x2 < x1 or y2 < y1: boxes must be "
            "(x1, y1, x2, y2); for (x, y, w, h) use torchvision.ops.box_convert(boxes, 'xywh', "
            "'xyxy')"
        )
    if canvas_size is not None:
        height, width = canvas_size
        if max(height, width) > 2 and float(boxes.max()) <= 1.0:
            raise ValueError(
                f"{name} look normalized to [0, 1] but the image is {height}x{width}: "
                "boxes must be in absolute pixels (multiply x by W and y by H)"
            )
        if (
            boxes[:, 0::2].min() < -1
            or boxes[:, 1::2].min() < -1
            or boxes[:, 0::2].max() > width + 1
            or boxes[:, 1::2].max() > height + 1
        ):
            raise ValueError(
                f"{name} leave the {height}x{width} image: got range x "
                f"[{float(boxes[:, 0::2].min()):.1f}, "
                f"{float(boxes[:, 0::2].max()):.1f}], y [{float(boxes[:, 1::2].min()):.1f}, "
                f"{float(boxes[:, 1::2].max()):.1f}]"
            )
    return boxes


def check_labels(labels, num_boxes: int | None = None, name: str = "labels") -> torch.Tensor:
    """Class labels: int64 tensor (N,), values >= 0 (0 is background), one per box."""
    labels = _require_tensor(labels, name)
    if labels.ndim != 1:
        raise ValueError(f"{name} must have shape (N,), got {tuple(labels.shape)}")
    if labels.dtype not in _INTEGER_DTYPES:
        raise TypeError(f"{name} must be an integer tensor (int64), got dtype {labels.dtype}")
    if num_boxes is not None and labels.shape[0] != num_boxes:
        raise ValueError(
            f"{name} must have one entry per box: {num_boxes} boxes but {labels.shape[0]} labels"
        )
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(
            f"{name} must be >= 0 (0 = background, 1..K = classes), got {int(labels.min())}"
        )
    return labels


def check_masks(
    masks, num: int | None = None, canvas_size: tuple[int, int] | None = None, name: str = "masks"
) -> torch.Tensor:
    """Instance masks: bool or uint8 tensor (N, H, W) with values 0/1."""
    masks = _require_tensor(masks, name)
    if masks.ndim != 3:
        raise ValueError(f"{name} must have shape (N, H, W), got {tuple(masks.shape)}")
    if masks.dtype not in (torch.bool, torch.uint8):
        raise TypeError(f"{name} must be bool or uint8 (N, H, W), got dtype {masks.dtype}")
    if masks.dtype == torch.uint8 and masks.numel() and int(masks.max()) > 1:
        raise ValueError(f"{name} must hold 0/1 values, got a maximum of {int(masks.max())}")
    if num is not None and masks.shape[0] != num:
        raise ValueError(
            f"{name} must have one mask per box: {num} boxes but {masks.shape[0]} masks"
        )
    if canvas_size is not None and tuple(masks.shape[-2:]) != tuple(canvas_size):
        raise ValueError(
            f"{name} must be {tuple(canvas_size)} like the image, got {tuple(masks.shape[-2:])}"
        )
    return masks


def check_semantic(
    semantic,
    num_classes: int | None = None,
    canvas_size: tuple[int, int] | None = None,
    name: str = "semantic",
    ignore_index: int = 255,
) -> torch.Tensor:
    """A semantic map: integer tensor (H, W) of class ids in [0, num_classes) or
    ``ignore_index``."""
    semantic = _require_tensor(semantic, name)
    if semantic.ndim != 2:
        raise ValueError(f"{name} must have shape (H, W), got {tuple(semantic.shape)}")
    if semantic.dtype not in _INTEGER_DTYPES:
        raise TypeError(f"{name} must hold integer class ids, got dtype {semantic.dtype}")
    if canvas_size is not None and tuple(semantic.shape) != tuple(canvas_size):
        raise ValueError(
            f"{name} must be {tuple(canvas_size)} like the image, got {tuple(semantic.shape)}"
        )
    if num_classes is not None and semantic.numel():
        valid = (semantic >= 0) & ((semantic < num_classes) | (semantic == ignore_index))
        if not valid.all():
            bad = semantic[~valid].unique()[:5].tolist()
            raise ValueError(
                f"{name} must hold ids in [0, {num_classes}) or {ignore_index} (ignored), got {bad}"
            )
    return semantic


def check_masks_match_boxes(
    masks: torch.Tensor, boxes: torch.Tensor, tolerance: float = 1.0, name: str = "target"
) -> None:
    """Each non-empty mask must lie inside its box (up to ``tolerance`` pixels)."""
    for index in range(masks.shape[0]):
        ys, xs = torch.nonzero(masks[index], as_tuple=True)
        if ys.numel() == 0:
            continue
        x1, y1, x2, y2 = boxes[index].tolist()
        if (
            xs.min() < x1 - tolerance
            or ys.min() < y1 - tolerance
            or xs.max() + 1 > x2 + tolerance
            or ys.max() + 1 > y2 + tolerance
        ):
            raise ValueError(
                f"{name}: mask {index} spans x [{int(xs.min())}, {int(xs.max()) + 1}], "
                f"y [{int(ys.min())}, {int(ys.max()) + 1}] but its box is "
                f"{[round(v, 1) for v in (x1, y1, x2, y2)]}:"
                " masks and boxes disagree (wrong order, or boxes not xyxy pixels?)"
            )


def check_target(
    target, canvas_size: tuple[int, int] | None = None, name: str = "target"
) -> Mapping:
    """A detection target: dict with ``boxes`` (N, 4) and ``labels`` (N,), optional ``masks`` (N,
    H, W).

    Checks every part and that masks and boxes agree. N = 0 is legal.
    """
    if not isinstance(target, Mapping):
        raise TypeError(
            f"{name} must be a dict with 'boxes' and 'labels', got {type(target).__name__}"
        )
    missing = {"boxes", "labels"} - set(target)
    if missing:
        raise ValueError(
            f"{name} is missing {sorted(missing)}: expected keys 'boxes' (N, 4) xyxy and 'labels' "
            "(N,)"
        )
    boxes = check_boxes(target["boxes"], f"{name}['boxes']", canvas_size)
    check_labels(target["labels"], boxes.shape[0], f"{name}['labels']")
    if "masks" in target and target["masks"] is not None:
        masks = check_masks(target["masks"], boxes.shape[0], canvas_size, f"{name}['masks']")
        check_masks_match_boxes(masks, boxes, name=name)
    return target
