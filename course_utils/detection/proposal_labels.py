"""Which proposals are objects, and which of them to train on (R-CNN and Fast R-CNN).

Boxes are float (N, 4) ``(x1, y1, x2, y2)`` in absolute pixels; labels are int64, 1..K for the
classes, 0 for background and -1 for "ignored" (neither: never trained on)::

    labels, matched = label_proposals(proposals, gt_boxes, gt_labels)  # by best IoU
    picked = sample_minibatch(labels, 128, 0.25)  # 32 positives + 96 background
"""

from __future__ import annotations

import torch
from torchvision.ops import box_iou

from course_utils.core.tensors import plain
from course_utils.core.validate import check_boxes, check_int, check_labels, check_number

__all__ = ["label_proposals", "sample_minibatch"]


def label_proposals(
    proposals: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    fg_threshold: float = 0.5,
    bg_threshold: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Label each proposal by its best-overlapping ground-truth box.

    Args:
        proposals: float (P, 4) xyxy pixels.
        gt_boxes: float (G, 4) xyxy pixels (G = 0 is allowed: everything is background).
        gt_labels: int64 (G,) class labels 1..K.
        fg_threshold: a proposal whose best IoU is >= this takes its ground truth's label
            (paper: 0.5).
        bg_threshold: best IoU in [bg_threshold, fg_threshold) is background (label 0); below
            bg_threshold the proposal is ignored (label -1). R-CNN's fine-tuning used 0.0 (every
            proposal under 0.5 is background), Fast R-CNN 0.1.

    Returns:
        ``(labels, matched_gt)``: labels int64 (P,) in {-1, 0, 1..K}; matched_gt int64 (P,), the
        index of the ground-truth box with the highest IoU (the lowest index among ties), for
        every proposal whatever its label; -1 when there is no ground truth (then the best IoU
        counts as 0).
    """
    proposals = check_boxes(plain(proposals), "proposals")
    gt_boxes = check_boxes(plain(gt_boxes), "gt_boxes")
    gt_labels = check_labels(plain(gt_labels), len(gt_boxes), "gt_labels")
    fg_threshold = check_number(fg_threshold, "fg_threshold", 0.0, 1.0)
    bg_threshold = check_number(bg_threshold, "bg_threshold", 0.0, 1.0)
    if bg_threshold > fg_threshold:
        raise ValueError(
            f"bg_threshold ({bg_threshold}) must not exceed fg_threshold ({fg_threshold})"
        )
    num = len(proposals)
    if len(gt_boxes) == 0:
        best = torch.zeros(num, dtype=proposals.dtype, device=proposals.device)
        matched = torch.full((num,), -1, dtype=torch.int64, device=proposals.device)
        labels = torch.zeros(num, dtype=torch.int64, device=proposals.device)
    else:
        iou = box_iou(proposals, gt_boxes.to(proposals.dtype))  # (P, G)
        # argmax over G returns the first maximum: ties go to the lowest ground-truth index
        matched = (
            iou.argmax(dim=1) if num else torch.zeros(0, dtype=torch.int64, device=proposals.device)
        )
        best = (
            iou.gather(1, matched[:, None])[:, 0]
            if num
            else torch.zeros(0, dtype=iou.dtype, device=iou.device)
        )
        labels = gt_labels.to(torch.int64)[matched]
    labels = torch.where(best >= fg_threshold, labels, torch.zeros_like(labels))
    labels = torch.where(best < bg_threshold, torch.full_like(labels, -1), labels)
    return labels, matched


def sample_minibatch(
    labels: torch.Tensor,
    batch_size: int = 128,
    positive_fraction: float = 0.25,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Indices of a mini-batch with a fixed fraction of positives (R-CNN: 32 positives + 96
    background).

    Draws ``min(round(batch_size * positive_fraction), #positives)`` positives (label > 0) and
    fills the rest with background (label 0) without replacement, as many as exist; ignored
    proposals (label -1) are never drawn. ``labels``: int64 (P,) from :func:`label_proposals`;
    ``generator`` (default: torch's global one) draws the positives, then the background.

    Returns:
        int64 (B,) indices into ``labels`` (B <= batch_size), positives first.
    """
    labels = plain(labels)
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1:
        raise ValueError("labels must be a 1-D int64 tensor (P,)")
    check_int(batch_size, "batch_size")
    positive_fraction = check_number(positive_fraction, "positive_fraction", 0.0, 1.0)
    positives = torch.nonzero(labels > 0).flatten()
    negatives = torch.nonzero(labels == 0).flatten()
    num_pos = min(int(round(batch_size * positive_fraction)), len(positives))
    num_neg = min(batch_size - num_pos, len(negatives))
    pick_pos = positives[
        torch.randperm(len(positives), generator=generator)[:num_pos].to(labels.device)
    ]
    pick_neg = negatives[
        torch.randperm(len(negatives), generator=generator)[:num_neg].to(labels.device)
    ]
    return torch.cat([pick_pos, pick_neg])
