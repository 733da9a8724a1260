"""Detection as classification: slide a crop classifier over an image and keep the windows it likes.

Boxes are float32 (N, 4) ``(x1, y1, x2, y2)`` in absolute pixels (torchvision's convention); images are
float (C, H, W) in [0, 1]. The pieces, in the order a sliding-window detector uses them:

* :func:`window_grid` / :func:`multiscale_windows`: every window of some sizes and strides;
* :func:`crop_windows` (``roi_align``: crop and resize *all* windows in one call) or :func:`unfold_windows`
  (``F.unfold``: one window size at the classifier's size, no resizing);
* :func:`classify_windows`: the classifier's probabilities for every window (each window on its own);
* :func:`score_map`: one scale's probabilities as a (classes, rows, cols) picture;
* :func:`windows_to_detections`: windows -> boxes (shrunk by the crop's context), threshold, per-class NMS;
* :class:`SlidingWindowDetector`: all of it as a torchvision-style ``model(images) -> [dict]``;
* :func:`image_pyramid` / :func:`pyramid_windows`: the other way to search several scales, a fixed window
  slid over resized copies of the image (used for the faces);
* :func:`best_window_iou`, :func:`recall_at_iou`: how well a window grid *could* cover the objects, and how
  many objects the detections found;
* :func:`hard_background_crops`: background windows *of the grid* that touch objects (parts of objects,
  windows far too large or too small), the negatives a sliding-window classifier has to learn to reject.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from torchvision.ops import batched_nms, box_iou, roi_align
from torchvision.transforms.v2 import functional as TF

from course_utils.core.validate import check_boxes, check_image
from course_utils.detection.classifiers import predict_proba

__all__ = [
    "DEFAULT_WINDOWS",
    "SlidingWindowDetector",
    "pretrained_crop_classifier",
    "scene_classifier_training_set",
    "WindowCrops",
    "background_mask",
    "hard_background_crops",
    "best_window_iou",
    "classify_windows",
    "count_windows",
    "crop_windows",
    "grid_shape",
    "image_pyramid",
    "multiscale_windows",
    "pyramid_windows",
    "recall_at_iou",
    "score_map",
    "shrink_boxes",
    "unfold_windows",
    "window_grid",
    "windows_to_detections",
]


#: Window sides (pixels) of notebook 01's detector: objects of 12..50 px (the scenes' objects are 14..56 px;
#: with stride = window / 4 nearly every object is covered at IoU >= 0.5) seen with ``CropDataset``'s context
#: of 0.25 (window = 1.5 x object), neighbouring sizes a factor ~1.33 apart.
DEFAULT_WINDOWS: tuple[int, ...] = (18, 24, 32, 42, 56, 75)


# --------------------------------------------------------------------------- argument checks


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _positive_number(value, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not value > 0
        or not math.isfinite(value)
    ):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _image_size(image_size) -> tuple[int, int]:
    if (
        not isinstance(image_size, (tuple, list, torch.Size))
        or len(image_size) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in image_size)
    ):
        raise ValueError(f"image_size must be (H, W) positive ints, got {image_size!r}")
    return int(image_size[0]), int(image_size[1])


def _fraction(value, name: str, low: float = 0.0, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


# --------------------------------------------------------------------------- where the windows are


def _starts(length: int, window: float, stride: float, padding: float) -> torch.Tensor:
    """Window starts along one axis: evenly spaced by ``stride``, centred, within [-padding, length+padding]."""
    span = length + 2 * padding - window
    if span < -1e-6:
        raise ValueError(
            f"a window of {window:g} px does not fit in {length} px (+{padding:g} px padding per side)"
        )
    count = int(math.floor(max(span, 0.0) / stride + 1e-6)) + 1
    offset = (span - (count - 1) * stride) / 2
    return -padding + offset + stride * torch.arange(count, dtype=torch.float32)


def grid_shape(
    image_size: tuple[int, int], window: float, stride: float, padding: float = 0.0
) -> tuple[int, int]:
    """``(rows, cols)`` of the window grid of :func:`window_grid`."""
    height, width = _image_size(image_size)
    window, stride = _positive_number(window, "window"), _positive_number(stride, "stride")
    return (
        len(_starts(height, window, stride, padding)),
        len(_starts(width, window, stride, padding)),
    )


def count_windows(
    image_size: tuple[int, int], window: float, stride: float, padding: float = 0.0
) -> int:
    """How many windows :func:`window_grid` makes: ``rows * cols``, about ``(H / stride) * (W / stride)``."""
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
        padding: how far (pixels) windows may reach outside the image on each side; the grid is centred,
            so the left-over margin is split between both ends.

    Returns:
        float32 (rows * cols, 4) boxes ``(x1, y1, x2, y2)``, row-major: ``boxes.view(rows, cols, 4)`` is the
        grid (see :func:`grid_shape`).
    """
    height, width = _image_size(image_size)
    window, stride = _positive_number(window, "window"), _positive_number(stride, "stride")
    if isinstance(padding, bool) or not isinstance(padding, (int, float)) or padding < 0:
        raise ValueError(f"padding must be a number >= 0, got {padding!r}")
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

    ``context`` is the crop classifier's context (``CropDataset.context``): its crops are an object box
    grown by ``context`` of the object's side on every side, so a window may reach
    ``window * context / (1 + 2 * context)`` pixels outside the image and still hold an object inside it.

    Returns:
        ``(boxes float32 (N, 4), scale int64 (N,))``: ``scale[i]`` is the index into ``windows`` of box i.
    """
    if len(windows) != len(strides) or len(windows) == 0:
        raise ValueError(
            f"windows and strides must be non-empty and of the same length, got {len(windows)} "
            f"and {len(strides)}"
        )
    context = _fraction(context, "context", 0.0, 2.0)
    boxes, scales = [], []
    for index, (window, stride) in enumerate(zip(windows, strides)):
        grid = window_grid(image_size, window, stride, padding=window * context / (1 + 2 * context))
        boxes.append(grid)
        scales.append(torch.full((len(grid),), index, dtype=torch.int64))
    return torch.cat(boxes), torch.cat(scales)


# --------------------------------------------------------------------------- cutting the windows out


def crop_windows(image: torch.Tensor, boxes: torch.Tensor, output_size: int) -> torch.Tensor:
    """Crop every box out of ``image`` and resize it to ``output_size`` x ``output_size``, in one call.

    Uses ``torchvision.ops.roi_align`` (``aligned=True``): each output pixel averages bilinear samples at
    its bin's centre (adaptive ``ceil(box / output)`` samples per bin, so shrinking a large window averages
    like an anti-aliased resize). Parts of a box outside the image read as zeros, like zero padding.

    Args:
        image: float (C, H, W) in [0, 1].
        boxes: float (N, 4) ``(x1, y1, x2, y2)`` pixels (may reach outside the image).
        output_size: side S of the crops.

    Returns:
        float (N, C, S, S) on the image's device.
    """
    check_image(image)
    check_boxes(boxes)
    _positive_int(output_size, "output_size")
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
    """Every ``window`` x ``window`` patch of ``image`` with step ``stride`` (no resizing), with ``F.unfold``.

    The patches are those of ``window_grid(image.shape[-2:], window, stride)`` *when the grid starts at 0*,
    i.e. when ``(H - window) % stride == 0`` and ``(W - window) % stride == 0``; otherwise the grid of
    ``window_grid`` is centred and this one is flush with the top-left corner.

    Returns:
        float (rows * cols, C, window, window), row-major.
    """
    check_image(image)
    _positive_int(window, "window")
    _positive_int(stride, "stride")
    channels, height, width = image.shape
    if window > height or window > width:
        raise ValueError(f"window {window} is larger than the {height}x{width} image")
    patches = F.unfold(
        image[None], kernel_size=window, stride=stride
    )  # (1, C * window * window, L)
    return patches[0].T.reshape(-1, channels, window, window)


# --------------------------------------------------------------------------- classifying them


def classify_windows(
    model: nn.Module,
    image: torch.Tensor,
    boxes: torch.Tensor,
    crop_size: int | None = None,
    batch_size: int = 2048,
) -> torch.Tensor:
    """The classifier's probabilities (N, num_classes) for every window (N, 4) of ``image``.

    Every window is cropped, resized to ``crop_size`` (default: ``model.crop_size``) and classified on its
    own: nothing is shared between overlapping windows (notebook 08's convolutionalization shares it).
    """
    crop_size = crop_size if crop_size is not None else getattr(model, "crop_size", None)
    if crop_size is None:
        raise ValueError("crop_size is needed: the model has no crop_size attribute")
    return predict_proba(model, crop_windows(image, boxes, crop_size), batch_size=batch_size)


def score_map(
    probs: torch.Tensor,
    image_size: tuple[int, int],
    window: float,
    stride: float,
    padding: float = 0.0,
) -> torch.Tensor:
    """One scale's window probabilities (rows * cols, K) as a picture (K, rows, cols).

    ``probs`` must be in :func:`window_grid`'s order for the same ``image_size``, ``window``, ``stride`` and
    ``padding``; entry ``[k, r, c]`` is the probability of class k in the window at grid row r, column c.
    """
    rows, cols = grid_shape(image_size, window, stride, padding)
    if not isinstance(probs, torch.Tensor) or probs.ndim != 2 or probs.shape[0] != rows * cols:
        raise ValueError(
            f"probs must have shape ({rows * cols}, K) for a {rows}x{cols} grid, got "
            + (f"{tuple(probs.shape)}" if isinstance(probs, torch.Tensor) else type(probs).__name__)
        )
    return probs.T.reshape(-1, rows, cols)


# --------------------------------------------------------------------------- windows -> detections


def shrink_boxes(boxes: torch.Tensor, context: float) -> torch.Tensor:
    """The object box inside each window: the window's centre, side ``window / (1 + 2 * context)``.

    Undoes ``CropDataset``'s context (its crops are the object's box grown by ``context`` of its side on
    every side). ``context=0`` returns the boxes unchanged.
    """
    check_boxes(boxes)
    context = _fraction(context, "context", 0.0, 2.0)
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]) / (2 * (1 + 2 * context))
    return torch.cat([centers - half, centers + half], dim=1)


def windows_to_detections(
    boxes: torch.Tensor,
    probs: torch.Tensor,
    *,
    score_threshold: float = 0.05,
    iou_threshold: float = 0.3,
    context: float = 0.0,
    max_detections: int = 100,
    image_size: tuple[int, int] | None = None,
) -> dict[str, torch.Tensor]:
    """Turn classified windows into detections: every (window, class) pair above the threshold, then NMS.

    Args:
        boxes: float (N, 4) windows.
        probs: float (N, K) class probabilities, column 0 = background.
        score_threshold: keep a (window, class k >= 1) pair when ``probs[:, k] > score_threshold``.
        iou_threshold: per-class NMS (``torchvision.ops.batched_nms``): a box is removed when it overlaps a
            higher-scoring box of the same class by IoU > iou_threshold.
        context: the classifier's crop context; boxes are shrunk with :func:`shrink_boxes`.
        max_detections: keep at most this many, highest scores first.
        image_size: ``(H, W)``; when given, boxes are clipped to the image.

    Returns:
        ``{"boxes": float32 (D, 4), "scores": float32 (D,), "labels": int64 (D,) in 1..K-1}``, sorted by
        decreasing score.
    """
    check_boxes(boxes)
    if (
        not isinstance(probs, torch.Tensor)
        or probs.ndim != 2
        or probs.shape[0] != boxes.shape[0]
        or probs.shape[1] < 2
    ):
        raise ValueError(
            f"probs must have shape ({boxes.shape[0]}, K) with K >= 2 (column 0 = background), got "
            + (f"{tuple(probs.shape)}" if isinstance(probs, torch.Tensor) else type(probs).__name__)
        )
    score_threshold = _fraction(score_threshold, "score_threshold")
    iou_threshold = _fraction(iou_threshold, "iou_threshold")
    _positive_int(max_detections, "max_detections")
    window_index, class_index = torch.nonzero(probs[:, 1:] > score_threshold, as_tuple=True)
    labels = class_index + 1
    scores = probs[window_index, labels]
    candidates = (
        shrink_boxes(boxes, context)[window_index] if len(window_index) else boxes.new_zeros((0, 4))
    )
    if image_size is not None:
        height, width = _image_size(image_size)
        candidates = torch.stack(
            [
                candidates[:, 0].clamp(0, width),
                candidates[:, 1].clamp(0, height),
                candidates[:, 2].clamp(0, width),
                candidates[:, 3].clamp(0, height),
            ],
            dim=1,
        )
    keep = batched_nms(candidates.float(), scores.float(), labels, iou_threshold)[:max_detections]
    return {
        "boxes": candidates[keep].float(),
        "scores": scores[keep].float(),
        "labels": labels[keep].long(),
    }


class SlidingWindowDetector(nn.Module):
    """A crop classifier slid over whole images: a torchvision-style detector without training of its own.

    ``detector([image, ...])`` returns one dict per image with ``boxes`` (D, 4), ``scores`` (D,) and
    ``labels`` (D,), as torchvision's detectors do in eval mode, so ``course_utils.metrics`` can score it.

    Args:
        classifier: a crop classifier ((B, C, S, S) -> (B, K) logits, column 0 = background) with a
            ``crop_size`` attribute (e.g. ``CropClassifier``).
        windows: window sides in pixels (the region the classifier sees, context included).
        strides: one stride per window size.
        context: the classifier's crop context (``CropDataset.context``).
        score_threshold, iou_threshold, max_detections: see :func:`windows_to_detections`.
        batch_size: crops per forward pass.
    """

    def __init__(
        self,
        classifier: nn.Module,
        windows: Sequence[float],
        strides: Sequence[float],
        *,
        context: float = 0.25,
        score_threshold: float = 0.05,
        iou_threshold: float = 0.3,
        max_detections: int = 100,
        batch_size: int = 2048,
    ) -> None:
        super().__init__()
        if not hasattr(classifier, "crop_size"):
            raise TypeError(
                "classifier needs a crop_size attribute (the side of the crops it classifies)"
            )
        if len(windows) != len(strides) or not windows:
            raise ValueError("windows and strides must be non-empty and of the same length")
        self.classifier = classifier
        self.windows, self.strides = (
            tuple(float(w) for w in windows),
            tuple(float(s) for s in strides),
        )
        self.context = _fraction(context, "context", 0.0, 2.0)
        self.score_threshold = _fraction(score_threshold, "score_threshold")
        self.iou_threshold = _fraction(iou_threshold, "iou_threshold")
        self.max_detections = _positive_int(max_detections, "max_detections")
        self.batch_size = _positive_int(batch_size, "batch_size")

    def window_boxes(self, image_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(boxes (N, 4), scale (N,))``: every window this detector classifies in an (H, W) image."""
        return multiscale_windows(image_size, self.windows, self.strides, self.context)

    def num_windows(self, image_size: tuple[int, int]) -> int:
        """How many windows (= classifier evaluations) one (H, W) image costs."""
        return len(self.window_boxes(image_size)[0])

    @torch.no_grad()
    def window_scores(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(boxes (N, 4), probs (N, K))`` for every window of one image (C, H, W)."""
        boxes, _ = self.window_boxes(tuple(image.shape[-2:]))
        return boxes, classify_windows(self.classifier, image, boxes, batch_size=self.batch_size)

    def forward(self, images: Sequence[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        if isinstance(images, torch.Tensor) and images.ndim == 3:
            raise TypeError(
                "pass a list of images (or a (B, C, H, W) batch), not one image: detector([image])"
            )
        outputs = []
        for image in images:
            boxes, probs = self.window_scores(image)
            outputs.append(
                windows_to_detections(
                    boxes.to(probs.device),
                    probs,
                    score_threshold=self.score_threshold,
                    iou_threshold=self.iou_threshold,
                    context=self.context,
                    max_detections=self.max_detections,
                    image_size=tuple(image.shape[-2:]),
                )
            )
        return outputs

    def extra_repr(self) -> str:
        return (
            f"windows={self.windows}, strides={self.strides}, context={self.context}, "
            f"score_threshold={self.score_threshold}, iou_threshold={self.iou_threshold}"
        )


# --------------------------------------------------------------------------- image pyramid


def image_pyramid(image: torch.Tensor, scales: Sequence[float]) -> list[torch.Tensor]:
    """Copies of ``image`` (C, H, W) resized by each factor in ``scales`` (anti-aliased bilinear)."""
    check_image(image)
    if not scales:
        raise ValueError("scales must hold at least one factor")
    height, width = image.shape[-2:]
    levels = []
    for scale in scales:
        scale = _positive_number(scale, "scale")
        size = [max(1, round(height * scale)), max(1, round(width * scale))]
        levels.append(TF.resize(image, size, antialias=True).clamp(0, 1))
    return levels


def pyramid_windows(
    image: torch.Tensor, window: int, stride: int, scales: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slide one fixed ``window`` over every level of an image pyramid.

    A ``window`` x ``window`` patch of the image resized by ``scale`` covers ``window / scale`` pixels of the
    original: small scales find large objects.

    Returns:
        ``(patches float (N, C, window, window), boxes float32 (N, 4) in the original image's pixels,
        level int64 (N,) index into scales)``. Levels smaller than the window are skipped.
    """
    _positive_int(window, "window")
    _positive_int(stride, "stride")
    patches, boxes, levels = [], [], []
    for index, (scale, level) in enumerate(zip(scales, image_pyramid(image, scales))):
        height, width = level.shape[-2:]
        if height < window or width < window:
            continue
        patches.append(unfold_windows(level, window, stride))
        rows = (height - window) // stride + 1
        cols = (width - window) // stride + 1
        ys, xs = torch.meshgrid(
            torch.arange(rows) * stride, torch.arange(cols) * stride, indexing="ij"
        )
        starts = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1).float()
        sx, sy = (
            width / image.shape[-1],
            height / image.shape[-2],
        )  # the level's exact scale per axis
        level_boxes = torch.cat([starts, starts + window], dim=1) / torch.tensor([sx, sy, sx, sy])
        boxes.append(level_boxes)
        levels.append(torch.full((len(level_boxes),), index, dtype=torch.int64))
    if not patches:
        raise ValueError(f"every pyramid level is smaller than the {window}x{window} window")
    return torch.cat(patches), torch.cat(boxes), torch.cat(levels)


# --------------------------------------------------------------------------- how good can it be


def best_window_iou(gt_boxes: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """For each ground-truth box (G, 4), the highest IoU any window (N, 4) reaches: (G,) float.

    The fraction of values >= 0.5 is the best recall at IoU 0.5 a detector that outputs these boxes can
    have, however good its classifier: the grid's own limit.
    """
    check_boxes(gt_boxes, "gt_boxes")
    check_boxes(windows, "windows")
    if gt_boxes.shape[0] == 0:
        return gt_boxes.new_zeros((0,))
    if windows.shape[0] == 0:
        return gt_boxes.new_zeros((gt_boxes.shape[0],))
    return box_iou(gt_boxes.float(), windows.float()).max(dim=1).values


def recall_at_iou(
    predictions: Sequence[Mapping],
    targets: Sequence[Mapping],
    iou_threshold: float = 0.5,
    score_threshold: float = 0.0,
) -> float:
    """Fraction of ground-truth objects found: a detection of the same label with IoU >= ``iou_threshold``
    and score >= ``score_threshold`` exists (no one-to-one matching; duplicates do not count against it).

    ``predictions``/``targets``: one dict per image with ``boxes`` (N, 4), ``labels`` (N,) (and ``scores``
    for predictions). Returns nan when there is no ground-truth object.
    """
    if len(predictions) != len(targets):
        raise ValueError(
            f"predictions and targets must have one entry per image, got {len(predictions)} and "
            f"{len(targets)}"
        )
    _fraction(iou_threshold, "iou_threshold")
    found, total = 0, 0
    for prediction, target in zip(predictions, targets):
        gt_boxes = target["boxes"].as_subclass(torch.Tensor).float().cpu()
        gt_labels = target["labels"].cpu()
        total += len(gt_boxes)
        boxes = prediction["boxes"].as_subclass(torch.Tensor).float().cpu()
        if len(gt_boxes) == 0 or len(boxes) == 0:
            continue
        keep = prediction["scores"].cpu() >= score_threshold
        boxes, labels = boxes[keep], prediction["labels"].cpu()[keep]
        if len(boxes) == 0:
            continue
        hit = (box_iou(gt_boxes, boxes) >= iou_threshold) & (gt_labels[:, None] == labels[None, :])
        found += int(hit.any(dim=1).sum())
    return found / total if total else float("nan")


# --------------------------------------------------------------------------- negatives from the grid


def background_mask(
    gt_boxes: torch.Tensor, windows: torch.Tensor, context: float = 0.0, max_iou: float = 0.3
) -> torch.Tensor:
    """bool (N,): the windows whose object box (:func:`shrink_boxes`) has IoU < ``max_iou`` with every
    ground-truth box (G, 4): the windows a detector must call background. G = 0 makes every window background."""
    check_boxes(gt_boxes, "gt_boxes")
    max_iou = _fraction(max_iou, "max_iou")
    return (
        best_window_iou(shrink_boxes(windows, context), gt_boxes.float()) < max_iou
        if len(gt_boxes)
        else torch.ones(len(windows), dtype=torch.bool, device=windows.device)
    )


class WindowCrops(Dataset):
    """Labelled crops as a dataset of ``(float (C, S, S) in [0, 1], int label)`` items, like ``CropDataset``.

    Args:
        crops: uint8 (N, C, S, S) (0-255) or float (N, C, S, S) in [0, 1]; stored as uint8.
        labels: int64 (N,).
        windows: optional float (N, 4), where each crop came from; image_indices: optional int64 (N,).
        transforms: optional callable applied to each float crop (augmentation).
    """

    def __init__(
        self,
        crops: torch.Tensor,
        labels: torch.Tensor,
        windows: torch.Tensor | None = None,
        image_indices: torch.Tensor | None = None,
        transforms=None,
    ) -> None:
        if not isinstance(crops, torch.Tensor) or crops.ndim != 4:
            raise ValueError("crops must be a tensor (N, C, S, S)")
        if not isinstance(labels, torch.Tensor) or labels.shape != (crops.shape[0],):
            raise ValueError(f"labels must be a tensor ({crops.shape[0]},), one per crop")
        if crops.is_floating_point():
            crops = crops.clamp(0, 1).mul(255).round().to(torch.uint8)
        self.crops, self.labels, self.transforms = crops, labels.long(), transforms
        self.windows, self.image_indices = windows, image_indices

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        crop = self.crops[index].float().div(255.0)
        if self.transforms is not None:
            crop = self.transforms(crop)
        return crop, int(self.labels[index])


def hard_background_crops(
    scenes,
    windows: Sequence[float],
    strides: Sequence[float],
    *,
    context: float = 0.25,
    per_image: int = 8,
    max_iou: float = 0.3,
    crop_size: int = 32,
    seed: int = 0,
    transforms=None,
) -> WindowCrops:
    """Background crops taken from the sliding-window grid itself, ``per_image`` per scene.

    Among the grid's windows that are background (:func:`background_mask`), those that overlap an object
    (a piece of it, or a window much larger or smaller than it) are drawn first: they are the ones a
    classifier trained on centred objects and random background has never seen, so it fires on them.
    Random background windows fill up when a scene has too few.

    Args:
        scenes: a ``SceneDataset``-like dataset (``scenes[i] -> (image, target)``).
        windows, strides, context: the grid, as in :func:`multiscale_windows`.

    Returns:
        :class:`WindowCrops` with label 0, ``windows`` and ``image_indices`` filled in.
    """
    _positive_int(per_image, "per_image")
    _positive_int(crop_size, "crop_size")
    generator = torch.Generator().manual_seed(seed)
    crops, boxes, sources = [], [], []
    for index in range(len(scenes)):
        image, target = scenes[index]
        image = image.as_subclass(torch.Tensor)
        gt_boxes = target["boxes"].as_subclass(torch.Tensor).float()
        grid, _ = multiscale_windows(tuple(image.shape[-2:]), windows, strides, context)
        background = background_mask(gt_boxes, grid, context, max_iou)
        touching = background & (
            box_iou(grid, gt_boxes).amax(dim=1) > 0 if len(gt_boxes) else background & False
        )
        chosen = []
        for pool in (
            torch.nonzero(touching).flatten(),
            torch.nonzero(background & ~touching).flatten(),
        ):
            need = per_image - sum(len(c) for c in chosen)
            if need > 0 and len(pool):
                chosen.append(pool[torch.randperm(len(pool), generator=generator)[:need]])
        if not chosen:
            continue
        picked = grid[torch.cat(chosen)]
        crops.append(crop_windows(image, picked, crop_size))
        boxes.append(picked)
        sources.append(torch.full((len(picked),), index, dtype=torch.int64))
    if not crops:
        raise ValueError("no background window found in these scenes")
    crops_tensor = torch.cat(crops)
    return WindowCrops(
        crops_tensor,
        torch.zeros(len(crops_tensor), dtype=torch.int64),
        torch.cat(boxes),
        torch.cat(sources),
        transforms=transforms,
    )


# --------------------------------------------------------------------------- notebook 01's classifier, reusable


def scene_classifier_training_set(
    num_scenes: int = 400,
    *,
    crop_size: int = 32,
    context: float = 0.25,
    hard_per_image: int = 8,
    windows: Sequence[float] = DEFAULT_WINDOWS,
    stride_fraction: float = 0.25,
    seed: int = 0,
):
    """Notebook 01's training crops: ``CropDataset`` (objects + random background) plus
    :func:`hard_background_crops` from the dense grid (``stride = window * stride_fraction``), both augmented
    with ``crop_augmentation()``. Returns ``(ConcatDataset, crop_dataset, hard_crops)``.
    """
    from torch.utils.data import ConcatDataset

    from course_utils.data.datasets import CropDataset
    from course_utils.detection.classifiers import crop_augmentation

    crops = CropDataset(
        "train",
        num_images=num_scenes,
        crop_size=crop_size,
        context=context,
        transforms=crop_augmentation(),
        seed=seed,
    )
    hard = hard_background_crops(
        crops.scenes,
        windows,
        [w * stride_fraction for w in windows],
        context=context,
        per_image=hard_per_image,
        crop_size=crop_size,
        seed=seed,
        transforms=crop_augmentation(),
    )
    return ConcatDataset([crops, hard]), crops, hard


def pretrained_crop_classifier(
    *,
    num_scenes: int = 400,
    steps: int = 350,
    checkpoint: str | None = "01_classifier",
    device: torch.device | str | None = None,
    progress: bool = True,
):
    """Notebook 01's crop classifier, trained (or loaded from ``checkpoint`` when notebook 01 already ran).

    ``CropClassifier(num_classes=4, crop_size=32, width=16)`` trained with
    ``course_utils.detection.classifiers.train_crop_classifier`` on :func:`scene_classifier_training_set`: the same
    recipe and checkpoint name as notebook 01, so later notebooks (03 R-CNN) start from the same network.
    Returns ``(model in eval mode, History)``.
    """
    from course_utils.detection.classifiers import CropClassifier, train_crop_classifier

    train_set, _, _ = scene_classifier_training_set(num_scenes)
    model = CropClassifier(num_classes=4, crop_size=32, width=16)
    history = train_crop_classifier(
        model, train_set, steps=steps, checkpoint=checkpoint, device=device, progress=progress
    )
    return model.eval(), history
