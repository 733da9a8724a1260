"""Mask R-CNN (He et al., ICCV 2017): Faster R-CNN plus a mask branch on the same feature map.

A :class:`MaskRCNN` is a :class:`~course_utils.detection.faster_rcnn.FasterRCNN` (``faster``) and
a mask head (``mask_head``, :class:`~course_utils.detection.mask_rcnn.MaskHead`) that reads each
box's features RoI-pooled from the trunk's map (the box itself, no context growth) and predicts
one M x M mask per class::

    model = MaskRCNN.from_classifier(crop_classifier)           # RoIAlign for both heads
    data = MirroredScenes(SceneDataset("train", 150), keep_masks=True)  # + mirrors, masks
    history = train_mask_rcnn(model, data, steps=300)          # 5 loss curves
    detections = model.detect(images)     # {"boxes", "scores", "labels", "masks" (N, 1, H, W)}
    detection_ap(detections, targets, iou_type="segm")         # mask AP (metrics.detection)

Training adds ``loss_mask`` to Faster R-CNN's four losses (:func:`mask_rcnn_training_loss`): the
positive RoIs sampled for the box head are pooled again for the mask head and trained on their
matched instance's mask cut out along the same boxes (``mask_rcnn.mask_targets``). Boxes are float
(N, 4) ``(x1, y1, x2, y2)`` pixels, x2 one past the last pixel; images float (C, H, W) in [0, 1],
all of the same size; labels int64, 0 = background.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset
from torchvision.ops import roi_align, roi_pool

from course_utils.core.tensors import plain
from course_utils.core.validate import check_int, check_number
from course_utils.data.datasets import detection_collate
from course_utils.detection.detector_training import train_with_loss
from course_utils.detection.fast_rcnn import to_inclusive
from course_utils.detection.faster_rcnn import FasterRCNN
from course_utils.detection.faster_rcnn_training import faster_rcnn_training_parts
from course_utils.detection.mask_rcnn import MaskHead, mask_loss, mask_targets, paste_masks
from course_utils.engine import History

__all__ = [
    "MaskRCNN",
    "mask_branch",
    "mask_rcnn_training_loss",
    "train_mask_rcnn",
]


def mask_branch(
    features: torch.Tensor,
    boxes: Sequence[torch.Tensor],
    pool: Callable[..., torch.Tensor],
    mask_head: nn.Module,
) -> torch.Tensor:
    """The mask branch on the shared map: ``mask_head(pool(features, boxes))``.

    ``features`` (B, D, h, w); ``boxes`` one float (P_i, 4) tensor per image; ``pool`` returns the
    (R, D, S, S) pooled features of all boxes in image order (R = sum of P_i); the result is
    ``mask_head``'s (R, K+1, M, M) logits. ``MaskRCNN(..., mask_fn=...)`` replaces this function
    (same signature): it only calls the model's layers, so the ``state_dict`` stays the same.
    """
    return mask_head(pool(features, boxes))


class MaskRCNN(nn.Module):
    """Faster R-CNN with a mask branch: trunk -> [RPN -> proposals] -> box head, and mask head.

    Args:
        faster: a single-scale :class:`FasterRCNN` (its trunk, RPN and box head).
        mask_head: (P, D, S, S) pooled features -> (P, K+1, M, M) mask logits, D the trunk's
            channels, K+1 the box head's classes, S = ``mask_pooled_size`` (:class:`MaskHead`
            gives M = 2S).
        mask_pooled_size: S, the side of the mask branch's RoI grid (8 -> 16 x 16 masks).
        mask_pooling: ``"align"``: ``roi_align(aligned=True, sampling_ratio=2)`` (the paper's
            RoIAlign); ``"max"``: ``roi_pool`` on :func:`~course_utils.detection.fast_rcnn.
            to_inclusive` boxes (RoIPool, the paper's ablation: the grid is rounded to feature
            cells, so the masks are misaligned by up to a stride). Independent of the box head's
            ``faster.fast.pooling``.
        mask_fn: replaces :func:`mask_branch` (a student's), same signature.
    """

    def __init__(
        self,
        faster: FasterRCNN,
        mask_head: nn.Module,
        *,
        mask_pooled_size: int = 8,
        mask_pooling: str = "align",
        mask_fn: Callable[..., torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(faster, FasterRCNN):
            raise TypeError(f"faster must be a FasterRCNN, got {type(faster).__name__}")
        if not isinstance(mask_head, nn.Module):
            raise TypeError(f"mask_head must be an nn.Module, got {type(mask_head).__name__}")
        if mask_pooling not in ("align", "max"):
            raise ValueError(
                f"mask_pooling must be 'align' (RoIAlign) or 'max' (RoIPool), got {mask_pooling!r}"
            )
        if mask_fn is not None and not callable(mask_fn):
            raise TypeError(f"mask_fn must be a function like mask_branch, got {mask_fn!r}")
        self.faster, self.mask_head = faster, mask_head
        self.mask_pooled_size = check_int(mask_pooled_size, "mask_pooled_size")
        self.mask_pooling = mask_pooling
        self.mask_fn = mask_branch if mask_fn is None else mask_fn

    @classmethod
    def from_classifier(
        cls,
        classifier: nn.Module,
        *,
        mask_conv_channels: int = 64,
        mask_num_convs: int = 2,
        mask_pooled_size: int = 8,
        mask_pooling: str = "align",
        mask_fn: Callable[..., torch.Tensor] | None = None,
        **faster_kwargs,
    ) -> MaskRCNN:
        """Build from a pre-trained crop classifier: ``FasterRCNN.from_classifier(classifier,
        **faster_kwargs)`` (box head ``pooling="align"`` unless given) and a new
        ``MaskHead(D, K+1, mask_conv_channels, mask_num_convs)``."""
        faster_kwargs.setdefault("pooling", "align")
        faster = FasterRCNN.from_classifier(classifier, **faster_kwargs)
        fast = faster.fast
        channels = fast.cls_score.in_features // fast.pooled_size**2
        head = MaskHead(channels, fast.num_classes, mask_conv_channels, mask_num_convs)
        model = cls(
            faster,
            head,
            mask_pooled_size=mask_pooled_size,
            mask_pooling=mask_pooling,
            mask_fn=mask_fn,
        )
        return model.to(faster.device)

    @property
    def device(self) -> torch.device:
        """The device of the model's weights."""
        return self.faster.device

    def mask_pool(self, features: torch.Tensor, boxes: Sequence[torch.Tensor]) -> torch.Tensor:
        """The boxes' own features (no context growth), RoIAlign or RoIPool (``mask_pooling``):
        float (R, D, S, S), the images' boxes concatenated in order. ``features`` (B, D, h, w);
        ``boxes`` one float (P_i, 4) xyxy pixel tensor per image."""
        if len(boxes) != features.shape[0]:
            raise ValueError(f"one box tensor per image: {features.shape[0]} maps, {len(boxes)}")
        boxes = [plain(b).to(features.device, features.dtype) for b in boxes]
        scale = self.faster.fast.spatial_scale
        size = self.mask_pooled_size
        if self.mask_pooling == "align":
            return roi_align(features, boxes, size, scale, sampling_ratio=2, aligned=True)
        return roi_pool(features, [to_inclusive(b) for b in boxes], size, scale)

    def mask_logits(
        self, features: torch.Tensor, boxes_per_image: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """Mask logits (R, K+1, M, M) of every image's boxes, in image order (``mask_fn``)."""
        return self.mask_fn(features, boxes_per_image, self.mask_pool, self.mask_head)

    @torch.no_grad()
    def detect(self, images: Sequence[torch.Tensor] | torch.Tensor) -> list[dict]:
        """Detections per image, in eval mode (the previous mode restored): ``boxes`` float (N, 4),
        ``scores`` (N,), ``labels`` int64 (N,) as ``FasterRCNN.detect``, and ``masks`` float
        (N, 1, H, W): each detection's own-class mask probabilities (sigmoid) pasted into the
        image inside its box (``mask_rcnn.paste_masks``); ``metrics.detection_ap(...,
        iou_type="segm")`` reads them (cut at 0.5). One pass of the trunk."""
        was_training = self.training
        self.eval()
        try:
            features = self.faster.fast.feature_map(images)
            detections = self.faster.detect_from_features(images, features)
            boxes = [d["boxes"].to(features.device) for d in detections]
            logits = self.mask_logits(features, boxes)
        finally:
            self.train(was_training)
        labels = torch.cat([d["labels"].to(logits.device) for d in detections])
        own = logits[torch.arange(len(labels), device=logits.device), labels].sigmoid()
        size = (int(images[0].shape[-2]), int(images[0].shape[-1]))
        start = 0
        for detection, image_boxes in zip(detections, boxes):
            stop = start + len(image_boxes)
            masks = paste_masks(own[start:stop].float(), image_boxes, size)[:, None]
            detection["masks"] = masks.to(detection["boxes"].device)
            start = stop
        return detections

    def forward(self, images: Sequence[torch.Tensor] | torch.Tensor) -> list[dict]:
        """:meth:`detect` (so that ``metrics.evaluate_detector(model, data, iou_type="segm")``
        runs it like a torchvision detector)."""
        return self.detect(images)


# --------------------------------------------------------------------------- training


def mask_rcnn_training_loss(
    model: MaskRCNN,
    batch,
    *,
    mask_targets_fn: Callable[..., torch.Tensor] | None = None,
    mask_loss_fn: Callable[..., torch.Tensor] | None = None,
    mask_weight: float = 1.0,
    **faster_options,
) -> dict[str, torch.Tensor]:
    """``loss_fn`` for the shared loop: Faster R-CNN's four losses and ``loss_mask``.

    ``batch = (images, targets)`` (``MirroredScenes(..., keep_masks=True)``,
    ``datasets.detection_collate``); every target needs ``masks`` (G, H, W) bool/uint8. The four
    losses are those of
    ``faster_rcnn_training.faster_rcnn_training_loss(model.faster, batch, **faster_options)``,
    exactly (``rois_per_image``, ``match_fn``, ``box_loss``...: same values, same random draws).
    The positive RoIs it sampled (label > 0) are pooled for the mask head (:meth:`MaskRCNN.
    mask_logits`); their targets are their matched instance's mask cut out along the same boxes,
    ``(mask_targets_fn or mask_rcnn.mask_targets)(gt_masks, boxes, matched, M)`` per image, and
    ``loss_mask = mask_weight * (mask_loss_fn or mask_rcnn.mask_loss)(logits, targets, labels)``
    (the RoI's own class's channel).

    ``loss_mask`` is always in the dict: with ``mask_weight = 0`` it is 0 (the mask head gets no
    gradient) and the other four losses, hence the trunk's and heads' gradients, are Faster
    R-CNN's. A batch without positive RoIs gives a ``loss_mask`` of 0 that keeps the graph.

    Returns:
        ``{"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg",
        "loss_mask"}`` (torchvision's names), 0-dim tensors.
    """
    if not isinstance(model, MaskRCNN):
        raise TypeError(f"model must be a MaskRCNN, got {type(model).__name__}")
    mask_weight = check_number(mask_weight, "mask_weight", 0.0, None)
    for fn, name in ((mask_targets_fn, "mask_targets_fn"), (mask_loss_fn, "mask_loss_fn")):
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be a function, got {type(fn).__name__}")
    targets = batch[1]
    for index, target in enumerate(targets):
        if target.get("masks") is None:
            raise ValueError(
                f"targets[{index}] has no 'masks': Mask R-CNN trains on instance masks (G, H, W) "
                "(use MirroredScenes(..., keep_masks=True))"
            )
    losses, parts = faster_rcnn_training_parts(model.faster, batch, **faster_options)
    positives = [labels > 0 for labels in parts.labels]
    boxes = [rois[keep] for rois, keep in zip(parts.rois, positives)]
    logits = model.mask_logits(parts.features, boxes)
    size = logits.shape[-1]
    make_targets = mask_targets_fn or mask_targets
    goals = torch.cat(
        [
            make_targets(plain(target["masks"]), image_boxes, matched[keep], size).to(logits)
            for target, image_boxes, matched, keep in zip(targets, boxes, parts.matched, positives)
        ]
    )
    labels = torch.cat([labels[keep] for labels, keep in zip(parts.labels, positives)])
    loss = (mask_loss_fn or mask_loss)(logits, goals, labels)
    return {**losses, "loss_mask": loss * mask_weight}


def train_mask_rcnn(model: MaskRCNN, dataset: Dataset, *, steps: int, **options) -> History:
    """Train Mask R-CNN end to end with the course's recipe (``detector_training.
    train_with_loss``, the same optimizer, schedule and batches as ``train_faster_rcnn``).
    ``options``: the recipe's ``images_per_batch`` (4), ``lr`` (3e-3), ``weight_decay`` (1e-4),
    ``checkpoint``, ``seed``, ``device``, ``progress``; the others go to
    :func:`mask_rcnn_training_loss` (``mask_weight``, ``mask_loss_fn``, ``rois_per_image``...).
    ``dataset`` items need ``masks`` (``MirroredScenes(..., keep_masks=True)``).

    Returns:
        fit's ``History``, whose records carry the five losses.
    """
    if not isinstance(model, MaskRCNN):
        raise TypeError(f"model must be a MaskRCNN, got {type(model).__name__}")
    return train_with_loss(
        model,
        dataset,
        mask_rcnn_training_loss,
        steps=steps,
        collate_fn=detection_collate,
        **options,
    )
