"""SSD (Liu et al., ECCV 2016): one network, class scores and box offsets for every default box of
several feature maps.

SSD drops the region proposals of Faster R-CNN: at every cell of each of K feature maps (fine
maps for small objects, coarse maps for large ones), a 3x3 convolution predicts, for each of the
b_k default boxes of the cell (``course_utils.detection.ssd_boxes``), C + 1 class scores
(background included) and 4 offsets that move the default box onto the object::

    heads = SSDHeads(in_channels=[64, 128, 128], boxes_per_location=[4, 6, 4], num_classes=4)
    class_logits, box_deltas = heads(features)     # (N, D, C + 1), (N, D, 4), in default-box order
    boxes = default_boxes([(16, 16), (8, 8), (4, 4)], (128, 128), (0.1, 0.2, 0.4, 0.6),
                          [[2], [2, 3], [2]])       # (D, 4)
    losses = ssd_loss(class_logits, box_deltas, boxes, targets)
    detections = decode_ssd(class_logits[0], box_deltas[0], boxes, (128, 128))

The loss (the paper's equation 1): each ground-truth box is matched to default boxes
(:func:`~course_utils.detection.ssd_boxes.match_default_boxes`); the matched boxes' offsets are
trained with smooth L1 towards the encoded ground truth (the box coding of R-CNN, weights (10, 10,
5, 5)), and the class scores with cross-entropy over the positives and the hardest negatives, 3 per
positive (:func:`~course_utils.detection.ssd_boxes.hard_negative_mining`); both sums are divided
by the number of matched boxes. At test time the softmax scores are thresholded class by class and
non-maximum suppression keeps the best boxes.

Everything matches ``torchvision.models.detection.ssd`` (``SSDHead``, ``SSD.compute_loss``,
``SSD.postprocess_detections``), which the tests check. Boxes are float (N, 4) ``(x1, y1, x2,
y2)`` pixels; labels int64, 0 = background, 1..C = classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, clip_boxes_to_image

from course_utils.core.tensors import plain
from course_utils.core.validate import check_boxes, check_int, check_number, check_target
from course_utils.detection.box_coding import decode_boxes, encode_boxes
from course_utils.detection.ssd_boxes import hard_negative_mining, match_default_boxes

__all__ = [
    "SSD_BOX_WEIGHTS",
    "SSDHeads",
    "decode_ssd",
    "match_targets",
    "ssd_loss",
    "ssd_loss_from_matches",
]

#: The weights (wx, wy, ww, wh) of SSD's box coding (torchvision's; the paper's "variances" 0.1 and
#: 0.2 are their inverses).
SSD_BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


def _flatten_map(output: torch.Tensor, columns: int) -> torch.Tensor:
    """One map's output (N, b * X, h, w) -> (N, h * w * b, X): cell by cell, then box by box."""
    batch, _, height, width = output.shape
    output = output.view(batch, -1, columns, height, width).permute(0, 3, 4, 1, 2)
    return output.reshape(batch, -1, columns)


class SSDHeads(nn.Module):
    """SSD's predictors: per feature map, a 3x3 convolution for the class scores and one for the
    box offsets (initialised as torchvision: Xavier uniform weights, zero biases).

    Args:
        in_channels: c_k, the channels of each of the K feature maps.
        boxes_per_location: b_k, default boxes per cell of each map
            (:func:`~course_utils.detection.ssd_boxes.boxes_per_location`).
        num_classes: C + 1, the classes *including* background.

    Attributes:
        classification: nn.ModuleList of K ``Conv2d(c_k, b_k * (C + 1), 3, padding=1)``.
        regression: nn.ModuleList of K ``Conv2d(c_k, b_k * 4, 3, padding=1)``.
    """

    def __init__(
        self, in_channels: Sequence[int], boxes_per_location: Sequence[int], num_classes: int
    ) -> None:
        super().__init__()
        in_channels = [check_int(c, f"in_channels[{k}]") for k, c in enumerate(in_channels)]
        boxes = [check_int(b, f"boxes_per_location[{k}]") for k, b in enumerate(boxes_per_location)]
        if not in_channels or len(in_channels) != len(boxes):
            raise ValueError(
                "in_channels and boxes_per_location need one entry per feature map, got "
                f"{len(in_channels)} and {len(boxes)}"
            )
        self.num_classes = check_int(num_classes, "num_classes (C + 1, background included)", 2)
        self.in_channels = in_channels
        self.classification = nn.ModuleList(
            nn.Conv2d(c, b * self.num_classes, 3, padding=1) for c, b in zip(in_channels, boxes)
        )
        self.regression = nn.ModuleList(
            nn.Conv2d(c, b * 4, 3, padding=1) for c, b in zip(in_channels, boxes)
        )
        for layer in self.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def _check_features(self, features: Sequence[torch.Tensor]) -> None:
        if isinstance(features, torch.Tensor) or len(features) != len(self.in_channels):
            got = "one tensor" if isinstance(features, torch.Tensor) else f"{len(features)} maps"
            raise ValueError(
                f"features must be a list of {len(self.in_channels)} maps (N, c_k, h_k, w_k) with "
                f"c_k = {self.in_channels}, got {got}"
            )
        for k, (feature, channels) in enumerate(zip(features, self.in_channels)):
            if not isinstance(feature, torch.Tensor) or feature.ndim != 4:
                raise ValueError(f"features[{k}] must be a (N, {channels}, h, w) tensor")
            if feature.shape[1] != channels or feature.shape[0] != features[0].shape[0]:
                raise ValueError(
                    f"features[{k}] must be (N, {channels}, h, w) with the N of features[0], got "
                    f"{tuple(feature.shape)}"
                )

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """K maps (N, c_k, h_k, w_k) -> ``(class_logits (N, D, C + 1), box_deltas (N, D, 4))``,
        D = sum of h_k * w_k * b_k, in the order of
        :func:`~course_utils.detection.ssd_boxes.default_boxes` (map, row, column, box)."""
        self._check_features(features)
        logits = [
            _flatten_map(conv(x), self.num_classes)
            for conv, x in zip(self.classification, features)
        ]
        deltas = [_flatten_map(conv(x), 4) for conv, x in zip(self.regression, features)]
        return torch.cat(logits, dim=1), torch.cat(deltas, dim=1)


def _check_outputs(class_logits, box_deltas, default_boxes) -> torch.Tensor:
    """default_boxes checked; class_logits (N, D, C + 1) and box_deltas (N, D, 4) must agree."""
    default_boxes = check_boxes(plain(default_boxes), "default_boxes")
    count = len(default_boxes)
    if class_logits.ndim != 3 or class_logits.shape[1] != count or class_logits.shape[2] < 2:
        raise ValueError(
            f"class_logits must be (N, D, C + 1), C >= 1, with D = {count} default boxes, got "
            f"{tuple(class_logits.shape)}"
        )
    if box_deltas.shape != (*class_logits.shape[:2], 4):
        raise ValueError(
            f"box_deltas must be (N, D, 4) = {(*class_logits.shape[:2], 4)}, got "
            f"{tuple(box_deltas.shape)}"
        )
    return default_boxes


def _image_targets(default_boxes, target, iou_threshold, match_fn, num_classes, name):
    """One image's (labels int64 (D,), matched gt boxes (D, 4) or zeros for the background)."""
    check_target(target, name=name)
    gt_boxes = plain(target["boxes"]).to(default_boxes)
    gt_labels = plain(target["labels"]).to(default_boxes.device, torch.int64)
    if len(gt_labels) and (int(gt_labels.min()) < 1 or int(gt_labels.max()) >= num_classes):
        raise ValueError(
            f"{name}['labels'] must lie in 1..{num_classes - 1} (0 is background), got "
            f"{gt_labels.tolist()}"
        )
    matches = (match_fn or match_default_boxes)(default_boxes, gt_boxes, iou_threshold)
    positive = matches >= 0
    labels = torch.zeros(len(default_boxes), dtype=torch.int64, device=default_boxes.device)
    labels[positive] = gt_labels[matches[positive]]
    matched = torch.zeros_like(default_boxes)
    matched[positive] = gt_boxes[matches[positive]]
    return labels, matched


def match_targets(
    default_boxes: torch.Tensor,
    targets: Sequence[dict],
    num_classes: int,
    iou_threshold: float = 0.5,
    match_fn: Callable[..., torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """What each default box of each image must predict: its class, and the box it matched.

    Per image, ``match_fn(default_boxes, gt_boxes, iou_threshold)`` (default
    :func:`~course_utils.detection.ssd_boxes.match_default_boxes`) names the ground truth of each
    default box; a matched box takes its object's label and box, the others label 0 (background)
    and a zero box. The matching depends on the ground truth only, not on the network: training
    may compute it once per scene.

    Args:
        default_boxes: float (D, 4) xyxy pixels.
        targets: N dicts ``{"boxes": float (G, 4) xyxy pixels, "labels": int64 (G,) in 1..C}``.
        num_classes: C + 1, background included.

    Returns:
        ``(labels int64 (N, D), matched_boxes float (N, D, 4))`` on default_boxes' device.
    """
    default_boxes = check_boxes(plain(default_boxes), "default_boxes")
    check_int(num_classes, "num_classes (C + 1, background included)", 2)
    check_number(iou_threshold, "iou_threshold", 0.0, 1.0)
    per_image = [
        _image_targets(default_boxes, t, iou_threshold, match_fn, num_classes, f"targets[{n}]")
        for n, t in enumerate(targets)
    ]
    if not per_image:
        raise ValueError("targets is empty: need one target dict per image")
    labels = torch.stack([labels for labels, _ in per_image])
    return labels, torch.stack([boxes for _, boxes in per_image])


def ssd_loss_from_matches(
    class_logits: torch.Tensor,
    box_deltas: torch.Tensor,
    default_boxes: torch.Tensor,
    labels: torch.Tensor,
    matched_boxes: torch.Tensor,
    neg_pos_ratio: int = 3,
    mining_fn: Callable[..., torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """SSD's two losses given the matching (:func:`match_targets`); see :func:`ssd_loss`.

    Args:
        class_logits: float (N, D, C + 1). box_deltas: float (N, D, 4).
        default_boxes: float (D, 4) xyxy pixels.
        labels: int64 (N, D), 0 = background. matched_boxes: float (N, D, 4) xyxy pixels (read
            where labels > 0).
    """
    default_boxes = _check_outputs(class_logits, box_deltas, default_boxes)
    if labels.shape != class_logits.shape[:2] or matched_boxes.shape != box_deltas.shape:
        raise ValueError(
            f"labels must be (N, D) = {tuple(class_logits.shape[:2])} and matched_boxes (N, D, 4), "
            f"got {tuple(labels.shape)} and {tuple(matched_boxes.shape)}"
        )
    positive = labels > 0
    num_positives = max(int(positive.sum()), 1)
    anchors = default_boxes.expand_as(matched_boxes)[positive]
    box_targets = encode_boxes(anchors, matched_boxes[positive], weights=SSD_BOX_WEIGHTS)
    box_loss = F.smooth_l1_loss(box_deltas[positive], box_targets, beta=1.0, reduction="sum")
    confidence = F.cross_entropy(class_logits.flatten(0, 1), labels.flatten(), reduction="none")
    confidence = confidence.view(labels.shape)
    kept = (mining_fn or hard_negative_mining)(confidence, labels, neg_pos_ratio)
    return {
        "classification": confidence[kept].sum() / num_positives,
        "box_regression": box_loss / num_positives,
    }


def ssd_loss(
    class_logits: torch.Tensor,
    box_deltas: torch.Tensor,
    default_boxes: torch.Tensor,
    targets: Sequence[dict],
    iou_threshold: float = 0.5,
    neg_pos_ratio: int = 3,
    match_fn: Callable[..., torch.Tensor] | None = None,
    mining_fn: Callable[..., torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """SSD's two losses over a batch, as torchvision's ``SSD.compute_loss``.

    Per image, the default boxes are matched to the ground truth (:func:`match_targets` with
    ``match_fn``, default :func:`~course_utils.detection.ssd_boxes.match_default_boxes`); a
    matched box's label is its object's class, the others' 0. Then

    * ``box_regression`` = smooth L1 (beta 1), summed over the matched boxes, between their
      ``box_deltas`` and the encoded ground truth (``encode_boxes``, weights (10, 10, 5, 5));
    * ``classification`` = cross-entropy summed over the positives and the hard negatives
      (``mining_fn(confidence_loss, labels, neg_pos_ratio)``, default
      :func:`~course_utils.detection.ssd_boxes.hard_negative_mining`);

    both divided by the number of matched boxes in the batch (at least 1). Equal to torchvision's
    when every image has a matched box (without objects, torchvision mines no negative).

    Args:
        class_logits: float (N, D, C + 1). box_deltas: float (N, D, 4).
        default_boxes: float (D, 4) xyxy pixels, the order of the heads' outputs.
        targets: N dicts ``{"boxes": float (G, 4) xyxy pixels, "labels": int64 (G,) in 1..C}``.

    Returns:
        ``{"classification": 0-dim, "box_regression": 0-dim}``.
    """
    default_boxes = _check_outputs(class_logits, box_deltas, default_boxes)
    if len(targets) != len(class_logits):
        raise ValueError(f"need one target per image: {len(class_logits)} images, {len(targets)}")
    labels, matched = match_targets(
        default_boxes, targets, class_logits.shape[2], iou_threshold, match_fn
    )
    return ssd_loss_from_matches(
        class_logits, box_deltas, default_boxes, labels, matched, neg_pos_ratio, mining_fn
    )


def decode_ssd(
    class_logits: torch.Tensor,
    box_deltas: torch.Tensor,
    default_boxes: torch.Tensor,
    image_size: tuple[int, int],
    score_threshold: float = 0.01,
    nms_threshold: float = 0.45,
    detections_per_image: int = 200,
    topk_candidates: int = 400,
) -> dict[str, torch.Tensor]:
    """One image's detections, as torchvision's ``SSD.postprocess_detections``.

    1. softmax over the C + 1 scores; move every default box by its deltas (weights (10, 10, 5,
       5)) and clip it to the image;
    2. for each class c = 1..C: keep the boxes whose score is > ``score_threshold``, at most the
       ``topk_candidates`` best;
    3. non-maximum suppression class by class at ``nms_threshold`` (IoU), then keep the
       ``detections_per_image`` best.

    Args:
        class_logits: float (D, C + 1). box_deltas: float (D, 4). default_boxes: float (D, 4)
            xyxy pixels. image_size: (H, W) of the image.

    Returns:
        ``{"boxes": float (M, 4) xyxy pixels, "scores": float (M,), "labels": int64 (M,) in
        1..C}``, highest score first.
    """
    default_boxes = _check_outputs(class_logits[None], box_deltas[None], default_boxes)
    if not (isinstance(image_size, (tuple, list, torch.Size)) and len(image_size) == 2):
        raise TypeError(f"image_size must be (H, W), got {image_size!r}")
    size = (
        check_int(image_size[0], "image_size[0] (H)"),
        check_int(image_size[1], "image_size[1] (W)"),
    )
    score_threshold = check_number(score_threshold, "score_threshold", 0.0, 1.0)
    nms_threshold = check_number(nms_threshold, "nms_threshold", 0.0, 1.0)
    detections_per_image = check_int(detections_per_image, "detections_per_image")
    topk_candidates = check_int(topk_candidates, "topk_candidates")
    scores = F.softmax(class_logits, dim=-1)
    boxes = decode_boxes(default_boxes, box_deltas, weights=SSD_BOX_WEIGHTS)
    boxes = clip_boxes_to_image(boxes, size)
    kept_boxes, kept_scores, kept_labels = [], [], []
    for label in range(1, scores.shape[1]):
        score = scores[:, label]
        candidates = torch.nonzero(score > score_threshold).flatten()
        top = score[candidates].topk(min(topk_candidates, len(candidates)))
        kept_boxes.append(boxes[candidates[top.indices]])
        kept_scores.append(top.values)
        kept_labels.append(torch.full_like(candidates[top.indices], label))
    boxes, scores, labels = torch.cat(kept_boxes), torch.cat(kept_scores), torch.cat(kept_labels)
    keep = batched_nms(boxes, scores, labels, nms_threshold)[:detections_per_image]
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}
