"""Fast R-CNN's training: the multi-task loss, RoI sampling, the dataset, the loop.

Both heads are trained together with the multi-task loss ``L = L_cls + lambda [u >= 1] L_loc``
(cross-entropy + smooth L1 on the positive RoIs). Each step takes a few images and samples 64
RoIs from each (25 % with IoU >= 0.5, background IoU in [0.1, 0.5)), the paper's
"hierarchical sampling"::

    data = ProposalDataset(scenes, proposals, hflip=True)      # (image, target, proposals) items
    history = train_fast_rcnn(model, data, steps=300, images_per_batch=4)

Boxes are float (N, 4) ``(x1, y1, x2, y2)`` in absolute pixels; labels int64, 0 = background.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from course_utils.core.tensors import plain
from course_utils.core.validate import check_boxes
from course_utils.detection.box_coding import encode_boxes
from course_utils.detection.detector_training import train_with_loss
from course_utils.detection.fast_rcnn import BOX_WEIGHTS, FastRCNN
from course_utils.detection.proposal_labels import label_proposals, sample_minibatch
from course_utils.engine import History

__all__ = [
    "ProposalDataset",
    "fast_rcnn_loss",
    "fast_rcnn_training_loss",
    "flip_boxes",
    "sample_rois",
    "smooth_l1_box_loss",
    "train_fast_rcnn",
]


# --------------------------------------------------------------------------- the loss


def smooth_l1_box_loss(
    deltas: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor, beta: float = 1.0
) -> torch.Tensor:
    """The box part of Fast R-CNN's multi-task loss: smooth L1 on positive RoIs, averaged over all
    RoIs.

    ``smooth_L1(x) = 0.5 x^2 / beta`` if ``|x| < beta`` else ``|x| - 0.5 beta``, summed over the 4
    coordinates of every RoI with ``labels > 0`` and divided by the number R of RoIs (background
    RoIs have no box to regress: ``[u >= 1]`` in the paper's equation 1). Equal to
    ``F.smooth_l1_loss(deltas[pos], targets[pos], beta=beta, reduction="sum") / R`` (torchvision's
    ``fastrcnn_loss``); 0 when R = 0.

    Args:
        deltas: float (R, 4) predicted deltas of each RoI's ground-truth class.
        targets: float (R, 4) regression targets.
        labels: int64 (R,), 0 = background.
        beta: where the loss switches from quadratic to linear (> 0).
    """
    if not (isinstance(deltas, torch.Tensor) and deltas.ndim == 2 and deltas.shape[1] == 4):
        raise ValueError("deltas must be a float tensor (R, 4)")
    if targets.shape != deltas.shape or labels.shape != deltas.shape[:1]:
        raise ValueError(
            f"targets (R, 4) and labels (R,) must match deltas {tuple(deltas.shape)}, got "
            f"{tuple(targets.shape)} and {tuple(labels.shape)}"
        )
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    positive = labels > 0
    total = F.smooth_l1_loss(deltas[positive], targets[positive], beta=beta, reduction="sum")
    return total / max(len(labels), 1)


def fast_rcnn_loss(
    class_logits: torch.Tensor,
    box_deltas: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor,
    beta: float = 1.0,
    box_weight: float = 1.0,
    box_loss: Callable[..., torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """The multi-task loss ``L = L_cls + lambda [u >= 1] L_loc`` (equation 1) as a dict of its two
    parts.

    Args:
        class_logits: float (R, K+1).
        box_deltas: float (R, K+1, 4) class-specific deltas; the deltas of each RoI's true class u
            are used.
        labels: int64 (R,) true classes u (0 = background).
        targets: float (R, 4) regression targets (ignored for background RoIs).
        beta: smooth L1's beta. box_weight: lambda.
        box_loss: ``box_loss(deltas, targets, labels, beta)``, default :func:`smooth_l1_box_loss` (a
            notebook passes the student's own).

    Returns:
        ``{"loss_classifier": cross-entropy, "loss_box_reg": lambda * smooth_l1_box_loss}``.
    """
    if class_logits.ndim != 2 or box_deltas.shape != (*class_logits.shape, 4):
        raise ValueError(
            "need class_logits (R, K+1) and box_deltas (R, K+1, 4), got "
            f"{tuple(class_logits.shape)} and {tuple(box_deltas.shape)}"
        )
    rows = torch.arange(len(labels), device=labels.device)
    chosen = box_deltas[rows, labels.clamp(min=0)]
    box_loss = smooth_l1_box_loss if box_loss is None else box_loss
    return {
        "loss_classifier": F.cross_entropy(class_logits, labels, ignore_index=-1),
        "loss_box_reg": box_weight * box_loss(chosen, targets, labels, beta),
    }


# --------------------------------------------------------------------------- sampling RoIs


def sample_rois(
    proposals: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    num_samples: int = 64,
    positive_fraction: float = 0.25,
    fg_threshold: float = 0.5,
    bg_threshold: float = 0.1,
    weights: Sequence[float] = BOX_WEIGHTS,
    include_gt: bool = True,
    generator: torch.Generator | None = None,
    label_fn: Callable | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fast R-CNN's RoI sampling for one image.

    Labels the proposals (plus the ground-truth boxes when ``include_gt``) with
    ``proposal_labels.label_proposals`` (foreground IoU >= 0.5, background in [0.1, 0.5), the rest
    ignored) and draws ``num_samples`` of them with ``positive_fraction`` positives
    (``proposal_labels.sample_minibatch``). ``label_fn`` replaces ``label_proposals`` (same
    signature).

    Returns:
        ``(rois (R, 4) float, labels (R,) int64, targets (R, 4) float)``, R <= num_samples; the
        targets encode each RoI's matched ground-truth box (zeros for background).
    """
    proposals = check_boxes(plain(proposals), "proposals").float()
    gt_boxes = check_boxes(plain(gt_boxes), "gt_boxes").float().to(proposals.device)
    gt_labels = plain(gt_labels).to(proposals.device)
    if include_gt:
        proposals = torch.cat([gt_boxes, proposals])
    labels, matched = (label_fn or label_proposals)(
        proposals, gt_boxes, gt_labels, fg_threshold, bg_threshold
    )
    picked = sample_minibatch(labels, num_samples, positive_fraction, generator)
    rois, labels, matched = proposals[picked], labels[picked], matched[picked]
    targets = torch.zeros_like(rois)
    positive = labels > 0
    if bool(positive.any()):
        targets[positive] = encode_boxes(rois[positive], gt_boxes[matched[positive]], weights)
    return rois, labels, targets


# --------------------------------------------------------------------------- training data


class ProposalDataset(Dataset):
    """Detection items with their proposals: item i = ``(image (C, H, W), target dict, proposals
    (P_i, 4))``.

    ``scenes``: a dataset of ``(image, target)`` (``SceneDataset``); ``proposals``: one (P_i, 4)
    xyxy tensor per item (``course_utils.detection.proposals.load_proposals``). With ``hflip`` the
    dataset is twice as long: items ``len(scenes) + i`` are the mirror images of items ``i`` (image,
    boxes and proposals flipped left-right), the paper's only data augmentation. Collate with
    :meth:`collate` (lists).
    """

    def __init__(
        self, scenes: Dataset, proposals: Sequence[torch.Tensor], hflip: bool = False
    ) -> None:
        if len(scenes) != len(proposals):
            raise ValueError(
                f"one proposal tensor per image: {len(scenes)} images, {len(proposals)} proposals"
            )
        self.scenes, self.proposals, self.hflip = scenes, list(proposals), bool(hflip)

    def __len__(self) -> int:
        return len(self.scenes) * (2 if self.hflip else 1)

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        flip = index >= len(self.scenes)
        index = index % len(self.scenes)
        image, target = self.scenes[index]
        proposals = plain(self.proposals[index]).float()
        if not flip:
            return image, target, proposals
        width = image.shape[-1]
        target = dict(target, boxes=flip_boxes(plain(target["boxes"]).float(), width))
        return plain(image).flip(-1), target, flip_boxes(proposals, width)

    @staticmethod
    def collate(batch: list) -> tuple[list, list, list]:
        """``(images, targets, proposals)`` as three lists."""
        images, targets, proposals = zip(*batch)
        return list(images), list(targets), list(proposals)


def flip_boxes(boxes: torch.Tensor, width: int) -> torch.Tensor:
    """xyxy boxes (N, 4) of an image ``width`` pixels wide, mirrored left-right: x -> width - x."""
    boxes = plain(boxes)
    return torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)


def fast_rcnn_training_loss(
    model: FastRCNN,
    batch,
    *,
    rois_per_image: int = 64,
    positive_fraction: float = 0.25,
    fg_threshold: float = 0.5,
    bg_threshold: float = 0.1,
    beta: float = 1.0,
    box_weight: float = 1.0,
    box_loss: Callable[..., torch.Tensor] | None = None,
    label_fn: Callable | None = None,
) -> dict[str, torch.Tensor]:
    """``loss_fn`` for ``course_utils.engine.fit``: sample RoIs per image (:func:`sample_rois`,
    torch's global RNG, which ``fit`` seeds), run the model, return :func:`fast_rcnn_loss`'s dict.

    ``batch = (images, targets, proposals)`` from :class:`ProposalDataset`. ``box_loss`` and
    ``label_fn`` replace :func:`smooth_l1_box_loss` and ``label_proposals`` (a notebook passes
    the student's own).
    """
    images, targets, proposals = batch
    rois, labels, box_targets = [], [], []
    for target, boxes in zip(targets, proposals):
        sampled = sample_rois(
            boxes,
            target["boxes"],
            target["labels"],
            rois_per_image,
            positive_fraction,
            fg_threshold,
            bg_threshold,
            label_fn=label_fn,
        )
        rois.append(sampled[0])
        labels.append(sampled[1])
        box_targets.append(sampled[2])
    logits, deltas = model(images, rois)
    return fast_rcnn_loss(
        logits, deltas, torch.cat(labels), torch.cat(box_targets), beta, box_weight, box_loss
    )


def train_fast_rcnn(model: FastRCNN, dataset: ProposalDataset, *, steps: int, **options) -> History:
    """Train Fast R-CNN end to end with the course's recipe (``detector_training.train_with_loss``:
    AdamW, one-cycle schedule, the shared loop).

    Each step takes ``images_per_batch`` images of ``dataset`` (default 4) and samples RoIs from
    each (:func:`fast_rcnn_training_loss`). ``options``: the recipe's ``images_per_batch``, ``lr``
    (3e-3), ``weight_decay`` (1e-4), ``checkpoint``, ``seed``, ``device``, ``progress``; the others
    go to the loss (``rois_per_image``, ``bg_threshold``, ``box_loss``...).

    Returns:
        fit's ``History``; its records carry both parts of the loss.
    """
    return train_with_loss(
        model,
        dataset,
        fast_rcnn_training_loss,
        steps=steps,
        collate_fn=ProposalDataset.collate,
        **options,
    )
