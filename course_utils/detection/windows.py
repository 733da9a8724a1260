"""The geometry of a sliding-window search: where the windows are, how many, and their pixels.

Boxes are float32 (N, 4) ``(x1, y1, x2, y2)`` in absolute pixels (torchvision's convention);
images are float (C, H, W) in [0, 1]. In the order a sliding-window detector uses them:

* :func:`window_grid` / :func:`multiscale_windows`: every window of some sizes and strides
  (:func:`grid_shape` and :func:`count_windows` say how many without making them);
* :func:`crop_windows` (``roi_align``: crop and resize *all* windows in one call) or
  :func:`unfold_windows` (``F.unfold``: one window size at the classifier's size, no resizing);
* :func:`shrink_boxes`: the object box inside a window that holds the classifier's context;
* :func:`best_window_iou`: how well a window grid *could* cover the objects;
* :func:`image_pyramid` / :func:`pyramid_windows`: the other way to search several scales, a
  fixed window slid over resized copies of the image (used for the faces).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchvision.ops import box_iou, roi_align
from torchvision.transforms.v2 import functional as TF

from course_utils.core.validate import check_boxes, check_image, check_int, check_number

__all__ = [
    "best_window_iou",
    "count_windows",
    "crop_windows",
    "grid_shape",
    "image_pyramid",
    "multiscale_windows",
    "pyramid_windows",
    "shrink_boxes",
    "unfold_windows",
    "window_grid",
]


# --------------------------------------------------------------------------- argument checks


def _image_size(image_size) -> tuple[int, int]:
    """``(H, W)`` as two positive ints."""
    if not isinstance(image_size, (tuple, list, torch.Size)) or len(image_size) != 2:
        raise ValueError(f"image_size must be (H, W) positive ints, got {image_size!r}")
    return check_int(image_size[0], "image_size[0]"), check_int(image_size[1], "image_size[1]")


# --------------------------------------------------------------------------- where the windows are


def _starts(length: int, window: float, stride: float, padding: float) -> torch.Tensor:
    """Window starts along one axis: float32 (count,), ``stride`` apart, centred in
    ``[-padding, length + padding]``."""
    span = length + 2 * padding - window
    if span < -1e-6:
        raise ValueError(
            f"a window of {window:g} px does not fit in {length} px "
            f"(+{padding:g} px padding per side)"
        )
    count = int(math.floor(max(span, 0.0) / stride + 1e-6)) + 1
    offset = (span - (count - 1) * stride) / 2
    return -padding + offset + stride * torch.arange(count, dtype=torch.float32)


def grid_shape(
    image_size: tuple[int, int], window: float, stride: float, padding: float = 0.0
) -> tuple[int, int]:
    """``(rows, cols)`` of the window grid of :func:`window_grid`."""
    height, width = _image_size(image_size)
    window, stride = (
        check_number(window, "window", 0, open_minimum=True),
        check_number(stride, "stride", 0, open_minimum=True),
    )
    return (
        len(_starts(height, window, stride, padding)),
        len(_starts(width, window, stride, padding)),
    )


def count_windows(
    image_size: tuple[int, int], window: float, stride: float, padding: float = 0.0
) -> int:
    """How many windows :func:`window_grid` makes: ``rows * cols``, about
    ``(H / stride) * (W / stride)``."""
    rows, cols = grid_shape(image_size, window, stride, padding)
    return rows * cols


def window_grid(
    image_size: tuple[int, int], window: float, stride: float, padding: float = 0.0
) -> torch.Tensor:
    """Every square ``window`` x ``window`` box on a grid with step ``stride``, row by row.

    Args:
        image_size: ``(H, W)`` of the image.
        window: side of the square windows in pixels.
        stride: step between neighbouring windows in pixels (``stride < window``: they overlap).
        padding: how far (pixels) windows may reach outside the image on each side; the grid is
            centred, so the left-over margin is split between both ends.

    Returns:
        float32 (rows * cols, 4) boxes ``(x1, y1, x2, y2)``, row-major:
        ``boxes.view(rows, cols, 4)`` is the grid (see :func:`grid_shape`).
    """
    height, width = _image_size(image_size)
    window, stride = (
        check_number(window, "window", 0, open_minimum=True),
        check_number(stride, "stride", 0, open_minimum=True),
    )
    padding = check_number(padding, "padding", minimum=0)
    ys = _starts(height, window, stride, padding)
    xs = _starts(width, window, stride, padding)
    y1, x1 = torch.meshgrid(ys, xs, indexing="ij")
    x1, y1 = x1.reshape(-1), y1.reshape(-1)
    return torch.stack([x1, y1, x1 + window, y1 + window], dim=1)


def multiscale_windows(
    image_size: tuple[int, int],
    windows: Sequence[float],
    strides: Sequence[float],
    context: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The windows of several sizes, each with its own stride, concatenated.

    ``context`` is the crop classifier's context (``CropDataset.context``): its crops are an
    object box grown by ``context`` of the object's side on every side, so a window may reach
    ``window * context / (1 + 2 * context)`` pixels outside the image and still hold an object
    inside it.

    Returns:
        ``(boxes float32 (N, 4) xyxy, scale int64 (N,))``: ``scale[i]`` is the index into
        ``windows`` of box i.
    """
    if len(windows) != len(strides) or len(windows) == 0:
        raise ValueError(
            f"windows and strides must be non-empty and of the same length, got {len(windows)} "
            f"and {len(strides)}"
        )
    context = check_number(context, "context", 0.0, 2.0)
    boxes, scales = [], []
    for index, (window, stride) in enumerate(zip(windows, strides)):
        padding = window * context / (1 + 2 * context)
        grid = window_grid(image_size, window, stride, padding=padding)
        boxes.append(grid)
        scales.append(torch.full((len(grid),), index, dtype=torch.int64))
    return torch.cat(boxes), torch.cat(scales)


def shrink_boxes(boxes: torch.Tensor, context: float) -> torch.Tensor:
    """The object box inside each window (N, 4) xyxy: the window's centre, side
    ``window / (1 + 2 * context)``; float (N, 4) xyxy.

    Undoes ``CropDataset``'s context (its crops are the object's box grown by ``context`` of its
    side on every side). ``context=0`` returns the boxes unchanged.
    """
    check_boxes(boxes)
    context = check_number(context, "context", 0.0, 2.0)
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]) / (2 * (1 + 2 * context))
    return torch.cat([centers - half, centers + half], dim=1)


def best_window_iou(gt_boxes: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """For each ground-truth box (G, 4) xyxy, the highest IoU any window (N, 4) xyxy reaches:
    float (G,).

    The fraction of values >= 0.5 is the best recall at IoU 0.5 a detector that outputs these
    boxes can have, however good its classifier: the grid's own limit.
    """
    check_boxes(gt_boxes, "gt_boxes")
    check_boxes(windows, "windows")
    if gt_boxes.shape[0] == 0:
        return gt_boxes.new_zeros((0,))
    if windows.shape[0] == 0:
        return gt_boxes.new_zeros((gt_boxes.shape[0],))
    return box_iou(gt_boxes.float(), windows.float()).max(dim=1).values


# ------------------------------------------------------------------------- cutting the windows out


def crop_windows(image: torch.Tensor, boxes: torch.Tensor, output_size: int) -> torch.Tensor:
    """Crop every box out of ``image`` and resize it to ``output_size`` x ``output_size``, in one
    call.

    Uses ``torchvision.ops.roi_align`` (``aligned=True``): each output pixel averages bilinear
    samples at its bin's centre (adaptive ``ceil(box / output)`` samples per bin, so shrinking a
    large window averages like an anti-aliased resize). Parts of a box outside the image read as
    zeros, like zero padding.

    Args:
        image: float (C, H, W) in [0, 1].
        boxes: float (N, 4) ``(x1, y1, x2, y2)`` pixels (may reach outside the image).
        output_size: side S of the crops.

    Returns:
        float (N, C, S, S) on the image's device.
    """
    check_image(image)
    check_boxes(boxes)
    check_int(output_size, "output_size")
    if boxes.shape[0] == 0:
        return image.new_zeros((0, image.shape[0], output_size, output_size))
    return roi_align(
        image[None],
        [boxes.to(image)],
        output_size=output_size,
        spatial_scale=1.0,
        sampling_ratio=-1,
        aligned=True,
    )


def unfold_windows(image: torch.Tensor, window: int, stride: int) -> torch.Tensor:
    """Every ``window`` x ``window`` patch of ``image`` (C, H, W) with step ``stride`` (no
    resizing), with ``F.unfold``.

    The patches are those of ``window_grid(image.shape[-2:], window, stride)`` *when the grid
    starts at 0*, i.e. when ``(H - window) % stride == 0`` and ``(W - window) % stride == 0``;
    otherwise the grid of ``window_grid`` is centred and this one is flush with the top-left
    corner.

    Returns:
        float (rows * cols, C, window, window), row-major.
    """
    check_image(image)
    check_int(window, "window")
    check_int(stride, "stride")
    channels, height, width = image.shape
    if window > height or window > width:
        raise ValueError(f"window {window} is larger than the {height}x{width} image")
    patches = F.unfold(image[None], kernel_size=window, stride=stride)  # (1, C * window², L)
    return patches[0].T.reshape(-1, channels, window, window)


# --------------------------------------------------------------------------- image pyramid


def image_pyramid(image: torch.Tensor, scales: Sequence[float]) -> list[torch.Tensor]:
    """Copies of ``image`` (C, H, W) resized by each factor in ``scales`` (anti-aliased
    bilinear): a list of float (C, round(H * scale), round(W * scale)) in [0, 1]."""
    check_image(image)
    if not scales:
        raise ValueError("scales must hold at least one factor")
    height, width = image.shape[-2:]
    levels = []
    for scale in scales:
        scale = check_number(scale, "scale", 0, open_minimum=True)
        size = [max(1, round(height * scale)), max(1, round(width * scale))]
        levels.append(TF.resize(image, size, antialias=True).clamp(0, 1))
    return levels


def _level_boxes(
    level_size: tuple[int, int], image_size: tuple[int, int], window: int, stride: int
) -> torch.Tensor:
    """The windows of ``unfold_windows`` on a pyramid level, as float32 (N, 4) xyxy boxes in the
    original image's pixels (each axis divided by the level's exact scale)."""
    height, width = level_size
    rows = (height - window) // stride + 1
    cols = (width - window) // stride + 1
    ys, xs = torch.meshgrid(torch.arange(rows) * stride, torch.arange(cols) * stride, indexing="ij")
    starts = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1).float()
    sx, sy = width / image_size[1], height / image_size[0]
    return torch.cat([starts, starts + window], dim=1) / torch.tensor([sx, sy, sx, sy])


def pyramid_windows(
    image: torch.Tensor, window: int, stride: int, scales: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slide one fixed ``window`` over every level of an image pyramid.

    A ``window`` x ``window`` patch of the image resized by ``scale`` covers ``window / scale``
    pixels of the original: small scales find large objects.

    Returns:
        ``(patches float (N, C, window, window), boxes float32 (N, 4) xyxy in the original
        image's pixels, level int64 (N,) index into scales)``. Levels smaller than the window
        are skipped.
    """
    check_int(window, "window")
    check_int(stride, "stride")
    patches, boxes, levels = [], [], []
    for index, level in enumerate(image_pyramid(image, scales)):
        height, width = level.shape[-2:]
        if height < window or width < window:
            continue
        patches.append(unfold_windows(level, window, stride))
        level_boxes = _level_boxes((height, width), tuple(image.shape[-2:]), window, stride)
        boxes.append(level_boxes)
        levels.append(torch.full((len(level_boxes),), index, dtype=torch.int64))
    if not patches:
        raise ValueError(f"every pyramid level is smaller than the {window}x{window} window")
    return torch.cat(patches), torch.cat(boxes), torch.cat(levels)
