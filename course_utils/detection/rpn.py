"""The region proposal network (Ren et al., NIPS 2015): proposals predicted from the shared
feature map.

A small network slides over the trunk's feature map: a 3x3 convolution (+ ReLU), then two sibling
1x1 convolutions that give, for each of the k anchors of every cell, an *objectness* logit and 4
box deltas (the box coding of R-CNN, relative to the anchor)::

    head = RPNHead(in_channels=64, num_anchors=9)
    objectness, deltas = head(features)          # (B, k, h, w), (B, 4k, h, w)
    objectness, deltas = flatten_rpn_outputs(objectness, deltas)   # (B, h*w*k), (B, h*w*k, 4)
    boxes, scores = rpn_proposals(anchors, objectness[0], deltas[0], (128, 128))

The paper scores each anchor with 2 softmax logits (object, not object); torchvision, and this
course, with 1 sigmoid logit (the same model, half the outputs). Everything matches
``torchvision.models.detection.rpn`` (``RPNHead``, ``RegionProposalNetwork.filter_proposals`` for
one feature map, ``fastrcnn_loss``-style normalisation), which the tests check. Boxes are float
(N, 4) ``(x1, y1, x2, y2)`` pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import clip_boxes_to_image, nms, remove_small_boxes

from course_utils.core.tensors import plain
from course_utils.core.validate import check_int, check_number
from course_utils.detection.anchors import match_anchors, matches_to_labels
from course_utils.detection.box_coding import decode_boxes, encode_boxes

__all__ = [
    "RPN_BOX_BETA",
    "RPNHead",
    "flatten_rpn_outputs",
    "init_rpn_head",
    "rpn_loss",
    "rpn_proposals",
    "rpn_targets",
]

#: smooth L1's beta for the RPN's box loss, torchvision's (the paper's own code used 1/9 too).
RPN_BOX_BETA = 1 / 9


class RPNHead(nn.Module):
    """3x3 conv + ReLU, then two sibling 1x1 convs: objectness (k per cell), deltas (4k per cell).

    Args:
        in_channels: D, channels of the feature map (the intermediate layer keeps D, as
            torchvision; the paper used 256 for ZF and 512 for VGG16).
        num_anchors: k, anchors per cell.
    """

    def __init__(self, in_channels: int, num_anchors: int) -> None:
        super().__init__()
        check_int(in_channels, "in_channels")
        check_int(num_anchors, "num_anchors")
        self.conv = nn.Conv2d(in_channels, in_channels, kernel_size=3, padding=1)
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, kernel_size=1)
        self.bbox_pred = nn.Conv2d(in_channels, 4 * num_anchors, kernel_size=1)
        init_rpn_head(self)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B, D, h, w) -> ``(objectness (B, k, h, w), deltas (B, 4k, h, w))``."""
        hidden = F.relu(self.conv(features))
        return self.cls_logits(hidden), self.bbox_pred(hidden)


def init_rpn_head(head: nn.Module) -> nn.Module:
    """The paper's initialisation of the new layers, in place: every Conv2d's weights from a
    Gaussian with standard deviation 0.01, biases 0. Returns ``head``."""
    with torch.no_grad():
        for layer in head.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.normal_(layer.weight, std=0.01)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
    return head


def flatten_rpn_outputs(
    objectness: torch.Tensor, deltas: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The head's maps in anchor order (:func:`~course_utils.detection.anchors.anchor_boxes`):
    objectness (B, k, h, w) -> (B, h*w*k); deltas (B, 4k, h, w) -> (B, h*w*k, 4), the 4 numbers of
    anchor t being channels 4t..4t+3."""
    if objectness.ndim != 4 or deltas.ndim != 4 or deltas.shape[1] != 4 * objectness.shape[1]:
        raise ValueError(
            "expected objectness (B, k, h, w) and deltas (B, 4k, h, w), got "
            f"{tuple(objectness.shape)} and {tuple(deltas.shape)}"
        )
    batch, k, height, width = objectness.shape
    scores = objectness.permute(0, 2, 3, 1).reshape(batch, -1)
    boxes = deltas.view(batch, k, 4, height, width).permute(0, 3, 4, 1, 2).reshape(batch, -1, 4)
    return scores, boxes


def rpn_proposals(
    anchors: torch.Tensor,
    objectness: torch.Tensor,
    deltas: torch.Tensor,
    image_size: tuple[int, int],
    pre_nms_top_n: int = 1000,
    post_nms_top_n: int = 1000,
    nms_threshold: float = 0.7,
    min_size: float = 1e-3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One image's proposals from the RPN's outputs, as torchvision's ``filter_proposals``.

    1. keep the ``pre_nms_top_n`` anchors with the highest objectness;
    2. move them by their deltas (``decode_boxes``, weights (1, 1, 1, 1));
    3. clip the boxes to the image; drop those narrower or lower than ``min_size`` pixels;
    4. non-maximum suppression at ``nms_threshold`` (IoU) on the sigmoid scores;
    5. keep the ``post_nms_top_n`` best.

    Args:
        anchors: float (A, 4) xyxy. objectness: float (A,) logits. deltas: float (A, 4).
        image_size: (H, W) of the image.

    Returns:
        ``(boxes (N, 4), scores (N,))``, scores = sigmoid(objectness) in (0, 1), highest first.
    """
    anchors, objectness, deltas = plain(anchors), plain(objectness), plain(deltas)
    if objectness.shape != anchors.shape[:1] or deltas.shape != anchors.shape:
        raise ValueError(
            f"need anchors (A, 4), objectness (A,) and deltas (A, 4), got {tuple(anchors.shape)}, "
            f"{tuple(objectness.shape)} and {tuple(deltas.shape)}"
        )
    check_int(pre_nms_top_n, "pre_nms_top_n")
    check_int(post_nms_top_n, "post_nms_top_n")
    check_number(nms_threshold, "nms_threshold", 0.0, 1.0)
    top = objectness.topk(min(pre_nms_top_n, len(objectness))).indices
    boxes = decode_boxes(anchors[top], deltas[top])
    scores = torch.sigmoid(objectness[top])
    boxes = clip_boxes_to_image(boxes, tuple(image_size))
    keep = remove_small_boxes(boxes, min_size)
    boxes, scores = boxes[keep], scores[keep]
    keep = nms(boxes, scores, nms_threshold)[:post_nms_top_n]
    return boxes[keep], scores[keep]


def rpn_targets(
    anchors: torch.Tensor,
    gt_boxes: torch.Tensor,
    high: float = 0.7,
    low: float = 0.3,
    match_fn: Callable[..., torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training targets of one image's anchors: ``(labels (A,) float 1 / 0 / -1 ignored,
    box targets (A, 4))``; the box targets encode each positive anchor's ground-truth box (zeros
    elsewhere). ``match_fn(anchors, gt_boxes, high, low)`` replaces
    :func:`~course_utils.detection.anchors.match_anchors` (a notebook passes the student's)."""
    matches = (match_fn or match_anchors)(anchors, gt_boxes, high, low)
    labels = matches_to_labels(matches)
    targets = torch.zeros_like(anchors)
    positive = matches >= 0
    if bool(positive.any()):
        gt = plain(gt_boxes).to(anchors)
        targets[positive] = encode_boxes(anchors[positive], gt[matches[positive]])
    return labels, targets


def _sample_anchors(
    labels: torch.Tensor, batch_size: int, positive_fraction: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of at most ``batch_size`` anchors, up to ``positive_fraction`` of them positive
    (torchvision's ``BalancedPositiveNegativeSampler``, torch's global RNG)."""
    positives = torch.nonzero(labels == 1).flatten()
    negatives = torch.nonzero(labels == 0).flatten()
    num_pos = min(int(batch_size * positive_fraction), len(positives))
    num_neg = min(batch_size - num_pos, len(negatives))
    pos = positives[torch.randperm(len(positives), device=labels.device)[:num_pos]]
    neg = negatives[torch.randperm(len(negatives), device=labels.device)[:num_neg]]
    return pos, neg


def rpn_loss(
    objectness: torch.Tensor,
    deltas: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor,
    batch_size_per_image: int = 256,
    positive_fraction: float = 0.5,
) -> dict[str, torch.Tensor]:
    """The RPN's two losses over a mini-batch of anchors, as torchvision's ``compute_loss``.

    Per image, ``batch_size_per_image`` anchors are sampled (the paper: 256, up to half of them
    positive, the rest background; ignored anchors never); the objectness loss is the binary
    cross-entropy over all sampled anchors, the box loss smooth L1 (beta 1/9) summed over the
    positive ones, both divided by the number of sampled anchors.

    Args:
        objectness: float (B, A) logits. deltas: float (B, A, 4).
        labels: float (B, A) 1 / 0 / -1. targets: float (B, A, 4).

    Returns:
        ``{"loss_objectness": ..., "loss_rpn_box_reg": ...}`` (torchvision's names).
    """
    if objectness.shape != labels.shape or deltas.shape != targets.shape:
        raise ValueError(
            f"objectness {tuple(objectness.shape)} must match labels {tuple(labels.shape)}, "
            f"deltas {tuple(deltas.shape)} targets {tuple(targets.shape)}"
        )
    pos, neg = [], []
    for image, image_labels in enumerate(labels):
        p, n = _sample_anchors(image_labels, batch_size_per_image, positive_fraction)
        offset = image * labels.shape[1]
        pos.append(p + offset)
        neg.append(n + offset)
    pos, neg = torch.cat(pos), torch.cat(neg)
    sampled = torch.cat([pos, neg])
    flat_objectness, flat_labels = objectness.reshape(-1), labels.reshape(-1)
    box_loss = F.smooth_l1_loss(
        deltas.reshape(-1, 4)[pos], targets.reshape(-1, 4)[pos], beta=RPN_BOX_BETA, reduction="sum"
    ) / max(len(sampled), 1)
    object_loss = F.binary_cross_entropy_with_logits(flat_objectness[sampled], flat_labels[sampled])
    return {"loss_objectness": object_loss, "loss_rpn_box_reg": box_loss}
