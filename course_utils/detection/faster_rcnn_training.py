"""Faster R-CNN's training: both heads at once, "approximate joint training".

Each step runs the trunk once per image; the region proposal network is trained on 256 sampled
anchors per image (objectness + box loss); its proposals, treated as fixed boxes, feed the Fast
R-CNN head, trained as in notebook 04 on RoIs sampled from them. The four losses are summed::

    data = MirroredScenes(SceneDataset("train", 150))       # scenes + their mirror images
    history = train_faster_rcnn(model, data, steps=300)     # 4 loss curves

(The paper's own schedule alternates: RPN, then Fast R-CNN on its proposals, then the RPN again on
the shared trunk, then the head. torchvision, like this course, trains everything jointly.)
Boxes are float (N, 4) ``(x1, y1, x2, y2)`` pixels; labels int64, 0 = background.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch.utils.data import Dataset
from torchvision.ops import box_iou

from course_utils.core.tensors import plain
from course_utils.data.datasets import detection_collate
from course_utils.detection.detector_training import train_with_loss
from course_utils.detection.fast_rcnn_training import fast_rcnn_loss, flip_boxes, sample_rois
from course_utils.detection.faster_rcnn import FasterRCNN
from course_utils.detection.rpn import rpn_loss, rpn_targets
from course_utils.engine import History

__all__ = [
    "MirroredScenes",
    "TrainingRoIs",
    "faster_rcnn_training_loss",
    "faster_rcnn_training_parts",
    "train_faster_rcnn",
]


class MirroredScenes(Dataset):
    """``(image, target)`` items of ``scenes``, then their mirror images (left-right): twice as
    many, the paper's only augmentation. Targets keep ``boxes`` float (N, 4) and ``labels`` int64
    (N,), and with ``keep_masks`` the instance ``masks`` uint8 (N, H, W), mirrored with the rest
    (Mask R-CNN)."""

    def __init__(self, scenes: Dataset, keep_masks: bool = False) -> None:
        self.scenes, self.keep_masks = scenes, bool(keep_masks)

    def __len__(self) -> int:
        return 2 * len(self.scenes)

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        image, target = self.scenes[index % len(self.scenes)]
        mirrored = index >= len(self.scenes)
        image, boxes = plain(image), plain(target["boxes"]).float()
        if mirrored:
            image, boxes = image.flip(-1), flip_boxes(boxes, image.shape[-1])
        item = {"boxes": boxes, "labels": plain(target["labels"])}
        if self.keep_masks:
            if target.get("masks") is None:
                raise ValueError("keep_masks needs targets with 'masks' (N, H, W)")
            masks = plain(target["masks"]).to(torch.uint8)
            item["masks"] = masks.flip(-1) if mirrored else masks
        return image, item


class TrainingRoIs(NamedTuple):
    """What :func:`faster_rcnn_training_parts` used besides the losses, for a branch added on top
    (Mask R-CNN's mask head): the batch's shared ``features`` (B, D, h, w), and per image the
    sampled ``rois`` float (R_i, 4), their ``labels`` int64 (R_i,) (0 = background) and
    ``matched`` int64 (R_i,): each positive RoI's ground-truth index (the box of highest IoU, the
    lowest index among ties, as ``proposal_labels.label_proposals``), -1 for the others."""

    features: torch.Tensor
    rois: list[torch.Tensor]
    labels: list[torch.Tensor]
    matched: list[torch.Tensor]


def _matched_gt(rois: torch.Tensor, labels: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Each positive RoI's best-IoU ground-truth index, -1 elsewhere: int64 (R,)."""
    matched = torch.full((len(rois),), -1, dtype=torch.int64, device=rois.device)
    positive = labels > 0
    if bool(positive.any()):
        matched[positive] = box_iou(rois[positive], gt.to(rois.dtype)).argmax(dim=1)
    return matched


def faster_rcnn_training_loss(model: FasterRCNN, batch, **options) -> dict[str, torch.Tensor]:
    """``loss_fn`` for the shared loop: the RPN's two losses and the Fast R-CNN head's two,
    ``faster_rcnn_training_parts(model, batch, **options)[0]`` (its arguments).

    Returns:
        ``{"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}``,
        torchvision's names.
    """
    return faster_rcnn_training_parts(model, batch, **options)[0]


def faster_rcnn_training_parts(
    model: FasterRCNN,
    batch,
    *,
    rois_per_image: int = 64,
    positive_fraction: float = 0.25,
    fg_threshold: float = 0.5,
    bg_threshold: float = 0.0,
    box_loss: Callable[..., torch.Tensor] | None = None,
    match_fn: Callable[..., torch.Tensor] | None = None,
) -> tuple[dict[str, torch.Tensor], TrainingRoIs]:
    """Faster R-CNN's four training losses and the :class:`TrainingRoIs` they sampled, so that
    another head (Mask R-CNN's) trains on the same features and RoIs.

    ``batch = (images, targets)`` (:class:`MirroredScenes`, ``datasets.detection_collate``). The
    RoIs of the head are sampled from the RPN's training proposals plus the ground truth
    (``fast_rcnn_training.sample_rois``: ``rois_per_image``, ``positive_fraction``, IoU >=
    ``fg_threshold`` foreground, [``bg_threshold``, ``fg_threshold``) background). ``box_loss``
    replaces the head's smooth L1 (``fast_rcnn_training.fast_rcnn_loss``), ``match_fn`` the anchor
    matching (``anchors.match_anchors``): a notebook passes the student's own.

    Returns:
        ``(losses, rois)``: the losses as :func:`faster_rcnn_training_loss` returns them, and the
        :class:`TrainingRoIs`.
    """
    images, targets = batch
    features = model.fast.feature_map(images)
    objectness, deltas = model.rpn_outputs(features)
    anchors = model.anchors(features)
    gt_boxes = [plain(t["boxes"]).to(anchors) for t in targets]
    labels, box_targets = zip(
        *(
            rpn_targets(anchors, boxes, model.rpn.fg_iou, model.rpn.bg_iou, match_fn)
            for boxes in gt_boxes
        )
    )
    losses = rpn_loss(
        objectness,
        deltas,
        torch.stack(labels),
        torch.stack(box_targets),
        model.rpn.batch_size_per_image,
        model.rpn.positive_fraction,
    )
    size = (int(images[0].shape[-2]), int(images[0].shape[-1]))
    proposals = model.proposals_from(anchors, objectness, deltas, size)
    rois, roi_labels, roi_targets, matched = [], [], [], []
    for (boxes, _), gt, target in zip(proposals, gt_boxes, targets):
        sampled = sample_rois(
            boxes,
            gt,
            plain(target["labels"]).to(boxes.device),
            rois_per_image,
            positive_fraction,
            fg_threshold,
            bg_threshold,
        )
        rois.append(sampled[0])
        roi_labels.append(sampled[1])
        roi_targets.append(sampled[2])
        matched.append(_matched_gt(sampled[0], sampled[1], gt))
    logits, box_deltas = model.fast.classify(features, rois)
    head = fast_rcnn_loss(
        logits, box_deltas, torch.cat(roi_labels), torch.cat(roi_targets), box_loss=box_loss
    )
    return {**losses, **head}, TrainingRoIs(features, rois, roi_labels, matched)


def train_faster_rcnn(model: FasterRCNN, dataset: Dataset, *, steps: int, **options) -> History:
    """Train Faster R-CNN end to end with the course's recipe (``detector_training.
    train_with_loss``). ``options``: the recipe's ``images_per_batch`` (4), ``lr`` (3e-3),
    ``weight_decay`` (1e-4), ``checkpoint``, ``seed``, ``device``, ``progress``; the others go to
    :func:`faster_rcnn_training_loss` (``match_fn``, ``bg_threshold``...).

    Returns:
        fit's ``History``, whose records carry the four losses.
    """
    return train_with_loss(
        model,
        dataset,
        faster_rcnn_training_loss,
        steps=steps,
        collate_fn=detection_collate,
        **options,
    )
