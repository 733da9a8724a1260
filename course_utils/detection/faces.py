"""Face detection, Viola & Jones style: a face / non-face classifier slid over an image pyramid.

The data (``lfw_subset`` faces, face-free patches, the ``astronaut`` photograph and its face
box) is ``course_utils.data.faces``; this module mines hard negatives with a trained classifier
and detects faces with it::

    hard = hardest_negatives(model, negatives, 1000)   # most face-like non-faces first
    detections = detect_faces(model, astronaut_gray(), scales=pyramid_scales(25, 60, 160))

The classifier maps (B, 1, 25, 25) grayscale crops in [0, 1] to (B, 2) logits, column 1 = face.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.ops import nms

from course_utils.core.validate import check_image, check_int, check_number
from course_utils.data.faces import FACE_SIZE
from course_utils.detection.classifiers import predict_proba
from course_utils.detection.windows import pyramid_windows

__all__ = ["detect_faces", "hardest_negatives", "pyramid_scales"]


def hardest_negatives(model: nn.Module, negatives: torch.Tensor, count: int) -> torch.Tensor:
    """The ``count`` non-face patches of ``negatives`` float (N, 1, 25, 25) the model finds most
    face-like: hard negative mining.

    Returns float (count, 1, 25, 25), highest P(face) first.
    """
    check_int(count, "count", 1, len(negatives))
    scores = predict_proba(model, negatives)[:, 1]
    return negatives[scores.argsort(descending=True)[:count]]


def pyramid_scales(
    window: int, smallest: float, largest: float, step: float = 2**0.25
) -> list[float]:
    """Image-pyramid factors so that a ``window`` px window covers objects from ``smallest`` to
    ``largest`` px, neighbouring levels ``step`` apart:
    ``[window / smallest, window / (smallest * step), ...]``."""
    if not 0 < smallest <= largest or step <= 1:
        raise ValueError(
            f"need 0 < smallest <= largest and step > 1, got {smallest}, {largest}, {step}"
        )
    sizes, size = [], float(smallest)
    while size <= largest * (1 + 1e-9):
        sizes.append(size)
        size *= step
    return [window / size for size in sizes]


@torch.no_grad()
def detect_faces(
    model: nn.Module,
    image: torch.Tensor,
    scales: Sequence[float],
    *,
    stride: int = 2,
    score_threshold: float = 0.5,
    iou_threshold: float = 0.3,
    batch_size: int = 2048,
) -> dict[str, torch.Tensor]:
    """Slide a face classifier over an image pyramid; keep windows with P(face) > threshold,
    then NMS.

    Args:
        model: (B, 1, 25, 25) -> (B, 2) logits, column 1 = face.
        image: float (1, H, W) in [0, 1] (grayscale).
        scales: pyramid factors (see :func:`pyramid_scales`); a window covers ``25 / scale``
            pixels.
        stride: step of the 25 x 25 window inside each pyramid level, in that level's pixels.

    Returns:
        ``{"boxes": (D, 4) float32 xyxy in the image's pixels, "scores": (D,), "labels": (D,)
        ones, "num_windows": int (windows classified), "num_above": int (windows above the
        threshold, before NMS)}``, sorted by decreasing score.
    """
    check_image(image)
    if image.shape[0] != 1:
        raise ValueError(f"image must be grayscale (1, H, W), got {tuple(image.shape)}")
    check_number(score_threshold, "score_threshold", 0, 1)
    check_number(iou_threshold, "iou_threshold", 0, 1)
    patches, boxes, _ = pyramid_windows(image, FACE_SIZE, stride, scales)
    scores = predict_proba(model, patches, batch_size=batch_size)[:, 1].cpu()
    keep = torch.nonzero(scores > score_threshold).flatten()
    keep = keep[nms(boxes[keep], scores[keep], iou_threshold)]
    return {
        "boxes": boxes[keep],
        "scores": scores[keep],
        "labels": torch.ones(len(keep), dtype=torch.int64),
        "num_windows": len(boxes),
        "num_above": int((scores > score_threshold).sum()),
    }
