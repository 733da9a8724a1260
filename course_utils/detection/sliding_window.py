"""Detection as classification: slide a crop classifier over an image and keep the windows it likes.

Boxes are float32 (N, 4) ``(x1, y1, x2, y2)`` in absolute pixels (torchvision's convention);
images are float (C, H, W) in [0, 1]. The windows themselves (grids, crops, pyramids) are in
:mod:`course_utils.detection.windows`; this module turns them into detections:

* :func:`classify_windows`: the classifier's probabilities for every window (each on its own);
* :func:`score_map`: one scale's probabilities as a (classes, rows, cols) picture;
* :func:`windows_to_detections`: windows -> boxes (shrunk by the crop's context), threshold,
  per-class NMS;
* :class:`SlidingWindowDetector`: all of it as a torchvision-style ``model(images) -> [dict]``;
* :func:`recall_at_iou`: how many objects the detections found.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torchvision.ops import batched_nms, box_iou

from course_utils.core.tensors import plain
from course_utils.core.validate import check_boxes, check_int, check_number
from course_utils.detection.classifiers import predict_proba
from course_utils.detection.windows import (
    crop_windows,
    grid_shape,
    multiscale_windows,
    shrink_boxes,
)

__all__ = [
    "SlidingWindowDetector",
    "classify_windows",
    "recall_at_iou",
    "score_map",
    "windows_to_detections",
]


def _shape_text(value) -> str:
    """The shape of a tensor as text, or the type of anything else (for error messages)."""
    return f"{tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__


def classify_windows(
    model: nn.Module,
    image: torch.Tensor,
    boxes: torch.Tensor,
    crop_size: int | None = None,
    batch_size: int = 2048,
) -> torch.Tensor:
    """The classifier's probabilities float32 (N, num_classes) for every window (N, 4) xyxy of
    ``image`` (C, H, W).

    Every window is cropped, resized to ``crop_size`` (default: ``model.crop_size``) and
    classified on its own: nothing is shared between overlapping windows (notebook 08's
    convolutionalization shares it).
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

    ``probs`` must be in ``window_grid``'s order for the same ``image_size``, ``window``,
    ``stride`` and ``padding``; entry ``[k, r, c]`` is the probability of class k in the window
    at grid row r, column c.
    """
    rows, cols = grid_shape(image_size, window, stride, padding)
    if not isinstance(probs, torch.Tensor) or probs.ndim != 2 or probs.shape[0] != rows * cols:
        raise ValueError(
            f"probs must have shape ({rows * cols}, K) for a {rows}x{cols} grid, got "
            + _shape_text(probs)
        )
    return probs.T.reshape(-1, rows, cols)


def _clip_to_image(boxes: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Boxes (N, 4) xyxy clamped to an (H, W) image."""
    height, width = (check_int(side, "image_size") for side in image_size)
    return torch.stack(
        [
            boxes[:, 0].clamp(0, width),
            boxes[:, 1].clamp(0, height),
            boxes[:, 2].clamp(0, width),
            boxes[:, 3].clamp(0, height),
        ],
        dim=1,
    )


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
    """Turn classified windows into detections: every (window, class) pair above the threshold,
    then NMS.

    Args:
        boxes: float (N, 4) windows, xyxy pixels.
        probs: float (N, K) class probabilities, column 0 = background.
        score_threshold: keep a (window, class k >= 1) pair when
            ``probs[:, k] > score_threshold``.
        iou_threshold: per-class NMS (``torchvision.ops.batched_nms``): a box is removed when it
            overlaps a higher-scoring box of the same class by IoU > iou_threshold.
        context: the classifier's crop context; boxes are shrunk with ``shrink_boxes``.
        max_detections: keep at most this many, highest scores first.
        image_size: ``(H, W)``; when given, boxes are clipped to the image.

    Returns:
        ``{"boxes": float32 (D, 4) xyxy, "scores": float32 (D,), "labels": int64 (D,) in
        1..K-1}``, sorted by decreasing score.
    """
    check_boxes(boxes)
    if (
        not isinstance(probs, torch.Tensor)
        or probs.ndim != 2
        or probs.shape[0] != boxes.shape[0]
        or probs.shape[1] < 2
    ):
        raise ValueError(
            f"probs must have shape ({boxes.shape[0]}, K) with K >= 2 (column 0 = background), "
            "got " + _shape_text(probs)
        )
    score_threshold = check_number(score_threshold, "score_threshold", 0.0, 1.0)
    iou_threshold = check_number(iou_threshold, "iou_threshold", 0.0, 1.0)
    check_int(max_detections, "max_detections")
    window_index, class_index = torch.nonzero(probs[:, 1:] > score_threshold, as_tuple=True)
    labels = class_index + 1
    scores = probs[window_index, labels]
    candidates = (
        shrink_boxes(boxes, context)[window_index] if len(window_index) else boxes.new_zeros((0, 4))
    )
    if image_size is not None:
        candidates = _clip_to_image(candidates, image_size)
    keep = batched_nms(candidates.float(), scores.float(), labels, iou_threshold)[:max_detections]
    return {
        "boxes": candidates[keep].float(),
        "scores": scores[keep].float(),
        "labels": labels[keep].long(),
    }


class SlidingWindowDetector(nn.Module):
    """A crop classifier slid over whole images: a torchvision-style detector without training of
    its own.

    ``detector([image, ...])`` (images float (C, H, W) in [0, 1]) returns one dict per image with
    ``boxes`` float32 (D, 4) xyxy, ``scores`` (D,) and ``labels`` int64 (D,), as torchvision's
    detectors do in eval mode, so ``course_utils.metrics`` can score it.

    Args:
        classifier: a crop classifier ((B, C, S, S) -> (B, K) logits, column 0 = background) with
            a ``crop_size`` attribute (e.g. ``CropClassifier``).
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
        self.windows = tuple(float(w) for w in windows)
        self.strides = tuple(float(s) for s in strides)
        self.context = check_number(context, "context", 0.0, 2.0)
        self.score_threshold = check_number(score_threshold, "score_threshold", 0.0, 1.0)
        self.iou_threshold = check_number(iou_threshold, "iou_threshold", 0.0, 1.0)
        self.max_detections = check_int(max_detections, "max_detections")
        self.batch_size = check_int(batch_size, "batch_size")

    def window_boxes(self, image_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(boxes float32 (N, 4) xyxy, scale int64 (N,))``: every window this detector
        classifies in an (H, W) image."""
        return multiscale_windows(image_size, self.windows, self.strides, self.context)

    def num_windows(self, image_size: tuple[int, int]) -> int:
        """How many windows (= classifier evaluations) one (H, W) image costs."""
        return len(self.window_boxes(image_size)[0])

    @torch.no_grad()
    def window_scores(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(boxes float32 (N, 4) xyxy, probs float32 (N, K))`` for every window of one image
        (C, H, W)."""
        boxes, _ = self.window_boxes(tuple(image.shape[-2:]))
        return boxes, classify_windows(self.classifier, image, boxes, batch_size=self.batch_size)

    def forward(self, images: Sequence[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """One detection dict per image of a list of (C, H, W) images (or a (B, C, H, W) batch)."""
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


def recall_at_iou(
    predictions: Sequence[Mapping],
    targets: Sequence[Mapping],
    iou_threshold: float = 0.5,
    score_threshold: float = 0.0,
) -> float:
    """Fraction of ground-truth objects found: a detection of the same label with IoU >=
    ``iou_threshold`` and score >= ``score_threshold`` exists (no one-to-one matching; duplicates
    do not count against it).

    ``predictions``/``targets``: one dict per image with ``boxes`` (N, 4) xyxy, ``labels`` (N,)
    (and ``scores`` (N,) for predictions). Returns nan when there is no ground-truth object.
    """
    if len(predictions) != len(targets):
        raise ValueError(
            f"predictions and targets must have one entry per image, got {len(predictions)} and "
            f"{len(targets)}"
        )
    check_number(iou_threshold, "iou_threshold", 0.0, 1.0)
    found, total = 0, 0
    for prediction, target in zip(predictions, targets):
        gt_boxes = plain(target["boxes"]).float().cpu()
        gt_labels = target["labels"].cpu()
        total += len(gt_boxes)
        boxes = plain(prediction["boxes"]).float().cpu()
        if len(gt_boxes) == 0 or len(boxes) == 0:
            continue
        keep = prediction["scores"].cpu() >= score_threshold
        boxes, labels = boxes[keep], prediction["labels"].cpu()[keep]
        if len(boxes) == 0:
            continue
        hit = (box_iou(gt_boxes, boxes) >= iou_threshold) & (gt_labels[:, None] == labels[None, :])
        found += int(hit.any(dim=1).sum())
    return found / total if total else float("nan")
