"""R-CNN at test time: warp every proposal, run the CNN on each, score, regress, per-class NMS.

The pipeline of notebook 03, for one image with proposals (P, 4) xyxy pixels::

    crops = warp_regions(image, proposals, size=32, context=0.25)          # (P, 3, 32, 32)
    features, probs = region_features(cnn, crops)                          # one CNN pass per region
    deltas = apply_box_regressors(features, weights)                       # (P, K+1, 4)
    detections = postprocess_detections(proposals, probs, deltas, (H, W))  # decode, clip, NMS

The first three lines, for a list of images, are the function :func:`score_regions` (R-CNN's
per-region forward pass), which ``RCNN(..., scoring=...)`` replaces (notebook 03's assignment).
:class:`RCNN` does all of it for a list of images. The pieces: ``proposal_labels`` (who is
what), ``warped_regions`` (the crops and the fine-tuning set), ``box_regression`` (the ridge
regressors), ``rcnn_training`` (every training stage in one call).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torchvision.ops import batched_nms, clip_boxes_to_image, remove_small_boxes

from course_utils.core.tensors import plain
from course_utils.core.validate import check_int
from course_utils.detection.box_coding import decode_boxes
from course_utils.detection.box_regression import apply_box_regressors, region_features
from course_utils.detection.warped_regions import warp_regions

__all__ = ["RCNN", "postprocess_detections", "score_regions"]


def postprocess_detections(
    proposals: torch.Tensor,
    class_probs: torch.Tensor,
    box_deltas: torch.Tensor | None,
    image_size: tuple[int, int],
    *,
    score_threshold: float = 0.01,
    nms_threshold: float = 0.3,
    max_detections: int = 100,
    min_size: float = 1.0,
    weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
) -> dict[str, torch.Tensor]:
    """Scored regions -> final detections of one image: per class decode, clip, threshold, NMS.

    Args:
        proposals: float (P, 4) xyxy pixels.
        class_probs: float (P, K+1) class probabilities, column 0 = background.
        box_deltas: float (P, K+1, 4) class-specific regression outputs, or None
            (boxes = proposals).
        image_size: (H, W), boxes are clipped to it.
        score_threshold: drop (region, class) pairs scoring below this.
        nms_threshold: per-class NMS IoU threshold (``torchvision.ops.batched_nms``; the paper
            used 0.3).
        max_detections: keep the highest-scoring ones.
        min_size: drop boxes narrower or lower than this (pixels).
        weights: the box-coding weights of the deltas.

    Returns:
        ``{"boxes": float (N, 4) xyxy, "scores": float (N,), "labels": int64 (N,) in 1..K}``,
        highest score first.
    """
    proposals, class_probs = plain(proposals), plain(class_probs)
    if (
        class_probs.ndim != 2
        or class_probs.shape[0] != proposals.shape[0]
        or class_probs.shape[1] < 2
    ):
        raise ValueError(
            f"class_probs must be (P, K+1) for {proposals.shape[0]} proposals, got "
            f"{tuple(class_probs.shape)}"
        )
    num_classes = class_probs.shape[1]
    if box_deltas is None:
        boxes = proposals[:, None, :].expand(-1, num_classes, 4)
    else:
        box_deltas = plain(box_deltas)
        if box_deltas.shape != (proposals.shape[0], num_classes, 4):
            raise ValueError(
                f"box_deltas must be (P, K+1, 4) = {(proposals.shape[0], num_classes, 4)}, got "
                f"{tuple(box_deltas.shape)}"
            )
        boxes = decode_boxes(proposals[:, None, :].to(box_deltas.dtype), box_deltas, weights)
    boxes = clip_boxes_to_image(boxes[:, 1:].reshape(-1, 4), tuple(image_size))
    scores = class_probs[:, 1:].reshape(-1)
    labels = torch.arange(1, num_classes, device=scores.device).repeat(proposals.shape[0])
    keep = torch.nonzero(scores >= score_threshold).flatten()
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = remove_small_boxes(boxes, min_size)
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = batched_nms(boxes.float(), scores.float(), labels, nms_threshold)[:max_detections]
    return {"boxes": boxes[keep].float(), "scores": scores[keep].float(), "labels": labels[keep]}


@torch.no_grad()
def score_regions(
    images: Sequence[torch.Tensor],
    proposals: Sequence[torch.Tensor],
    cnn: nn.Module,
    regressor_weights: torch.Tensor | None,
    size: int = 32,
    context: float = 0.25,
    *,
    batch_size: int = 512,
) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """R-CNN's per-region forward pass: warp every proposal, run the CNN on it, score, regress.

    For each image and its proposals: ``warp_regions(image, boxes, size, context)`` (the box
    plus context, warped to ``size`` x ``size``), the CNN's ``features`` (P, D) in eval mode (its
    mode is restored afterwards), the softmax over the classes of its ``head``, and the
    class-specific deltas ``features @ W[k, :-1] + W[k, -1]`` of every class k.

    Args:
        images: float (C, H, W) in [0, 1].
        proposals: float (P_i, 4) xyxy pixels, one tensor per image.
        cnn: ``features`` (crops (N, C, S, S) -> (N, D)) and ``head`` ((N, D) -> (N, K+1)
            logits), like ``CropClassifier``.
        regressor_weights: float (K+1, D+1, 4) from ``box_regression.fit_region_regressors``,
            the last row of each class its bias; or None (no box regression).
        size, context: the warp (``warped_regions.warp_regions``).
        batch_size: crops per CNN call.

    Returns:
        One ``(probs float (P_i, K+1), deltas float (P_i, K+1, 4) or None)`` per image, on the
        image's device.
    """
    if len(images) != len(proposals):
        raise ValueError(
            f"one proposal tensor per image: got {len(images)} images and {len(proposals)}"
        )
    scored = []
    for image, boxes in zip(images, proposals):
        crops = warp_regions(image, boxes, size, context)
        features, probs = region_features(cnn, crops, batch_size)
        deltas = (
            None if regressor_weights is None else apply_box_regressors(features, regressor_weights)
        )
        scored.append((probs, deltas))
    return scored


class RCNN(nn.Module):
    """R-CNN at test time: warp every proposal, run the CNN on each, score, regress, per-class NMS.

    Args:
        cnn: the fine-tuned network with ``features`` (crops -> (N, D)) and ``head``
            ((N, D) -> (N, K+1)), e.g. a ``CropClassifier``; its softmax is the per-class
            classifier (the paper used linear SVMs on the same features).
        regressor_weights: (K+1, D+1, 4) from ``box_regression.fit_region_regressors``, or None
            for no box regression.
        size, context: the warp (``warped_regions.warp_regions``); must match what the CNN was
            fine-tuned on.
        score_threshold, nms_threshold, max_detections: see :func:`postprocess_detections`.
        batch_size: crops per CNN call (of the default ``scoring``).
        scoring: the per-region forward pass, called as ``scoring(images, proposals, self.cnn,
            self.regressor_weights, self.size, self.context)`` with the signature and result of
            :func:`score_regions`; None (the default) runs :func:`score_regions` with
            ``batch_size``. It only reads the CNN and the weights, so another function (a
            student's) keeps the same parameters and ``state_dict``.
    """

    def __init__(
        self,
        cnn: nn.Module,
        regressor_weights: torch.Tensor | None = None,
        *,
        size: int = 32,
        context: float = 0.25,
        score_threshold: float = 0.01,
        nms_threshold: float = 0.3,
        max_detections: int = 100,
        batch_size: int = 512,
        scoring: Callable[..., list] | None = None,
    ) -> None:
        super().__init__()
        if not (hasattr(cnn, "features") and hasattr(cnn, "head")):
            raise TypeError(
                "cnn must have .features and .head "
                "(like course_utils.detection.classifiers.CropClassifier)"
            )
        self.cnn = cnn
        self.register_buffer(
            "regressor_weights", None if regressor_weights is None else regressor_weights.float()
        )
        self.size, self.context = check_int(size, "size"), float(context)
        self.score_threshold, self.nms_threshold = float(score_threshold), float(nms_threshold)
        self.max_detections, self.batch_size = max_detections, batch_size
        if scoring is not None and not callable(scoring):
            raise TypeError(
                f"scoring must be a function like score_regions, got {type(scoring).__name__}"
            )
        self.scoring = scoring

    def _score(
        self, images: Sequence[torch.Tensor], proposals: Sequence[torch.Tensor]
    ) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """``scoring`` (or :func:`score_regions`) on these images: one (probs, deltas) each."""
        args = (list(images), list(proposals), self.cnn, self.regressor_weights)
        if self.scoring is None:
            scored = score_regions(*args, self.size, self.context, batch_size=self.batch_size)
        else:
            scored = self.scoring(*args, self.size, self.context)
        if not isinstance(scored, (list, tuple)) or len(scored) != len(images):
            raise ValueError(
                f"scoring must return one (probs, deltas) pair per image ({len(images)}), got "
                f"{type(scored).__name__}"
                + (f" of length {len(scored)}" if isinstance(scored, (list, tuple)) else "")
            )
        return list(scored)

    @torch.no_grad()
    def score_regions(
        self, image: torch.Tensor, proposals: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(class probabilities (P, K+1), class-specific deltas (P, K+1, 4) or None)`` for one
        image (C, H, W) and its proposals (P, 4) xyxy, by ``scoring``."""
        probs, deltas = self._score([image], [proposals])[0]
        return probs, deltas

    @torch.no_grad()
    def forward(
        self, images: Sequence[torch.Tensor], proposals: Sequence[torch.Tensor]
    ) -> list[dict]:
        """Detections for each image (C, H, W) and its proposals (P_i, 4) xyxy: a list of
        ``{"boxes", "scores", "labels"}`` (torchvision's format)."""
        if len(images) != len(proposals):
            raise ValueError(
                f"one proposal tensor per image: got {len(images)} images and {len(proposals)}"
            )
        proposals = [
            plain(boxes).to(image.device, torch.float32) for image, boxes in zip(images, proposals)
        ]
        outputs = []
        for image, boxes, (probs, deltas) in zip(images, proposals, self._score(images, proposals)):
            outputs.append(
                postprocess_detections(
                    boxes,
                    probs,
                    deltas,
                    tuple(image.shape[-2:]),
                    score_threshold=self.score_threshold,
                    nms_threshold=self.nms_threshold,
                    max_detections=self.max_detections,
                )
            )
        return outputs
