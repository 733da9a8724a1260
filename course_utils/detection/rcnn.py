"""R-CNN (Girshick et al., CVPR 2014), piece by piece: regions -> warped crops -> CNN -> classes and boxes.

The pipeline of notebook 03, for one image with proposals (P, 4) xyxy pixels::

    labels, matched = label_proposals(proposals, gt_boxes, gt_labels)     # training: who is what?
    crops = warp_regions(image, proposals, size=32, context=0.25)          # (P, 3, 32, 32)
    features = cnn.features(crops); probs = softmax(cnn.head(features))    # one CNN pass per region
    deltas = predict_box_deltas(features, regressor)                       # (P, K+1, 4) class-specific
    detections = postprocess_detections(proposals, probs, deltas, (H, W))  # decode, clip, per-class NMS

Training (notebook 03): "pre-train" a crop classifier (``course_utils.detection.classifiers.CropClassifier``), fine-tune
it on warped proposals labelled by IoU (:func:`build_region_set`, mini-batches with a fixed fraction of
positives: :func:`sample_minibatch`, :class:`MinibatchDataset`), then fit class-specific ridge regressors on
its features (:func:`fit_box_regressors`). :class:`RCNN` puts the trained parts together for testing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from torchvision.ops import batched_nms, box_iou, clip_boxes_to_image, remove_small_boxes, roi_align

from course_utils.core import validate
from course_utils.detection.box_coding import decode_boxes, encode_boxes

__all__ = [
    "RCNN",
    "MinibatchDataset",
    "RegionSet",
    "apply_box_regressors",
    "as_float_crops",
    "build_region_set",
    "fit_region_regressors",
    "dilate_boxes",
    "fit_box_regressors",
    "label_proposals",
    "postprocess_detections",
    "region_features",
    "sample_minibatch",
    "train_rcnn",
    "warp_regions",
]


def _plain(tensor: torch.Tensor) -> torch.Tensor:
    """A plain tensor view (tv_tensors such as BoundingBoxes keep their subclass otherwise)."""
    return tensor.as_subclass(torch.Tensor) if isinstance(tensor, torch.Tensor) else tensor


def _check_threshold(value, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0.0 <= float(value) <= 1.0
    ):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _check_positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


# --------------------------------------------------------------------------- labelling proposals


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
        fg_threshold: a proposal whose best IoU is >= this takes its ground truth's label (paper: 0.5).
        bg_threshold: best IoU in [bg_threshold, fg_threshold) is background (label 0); below
            bg_threshold the proposal is ignored (label -1). R-CNN's fine-tuning used 0.0 (every
            proposal under 0.5 is background), Fast R-CNN 0.1.

    Returns:
        ``(labels, matched_gt)``: labels int64 (P,) in {-1, 0, 1..K}; matched_gt int64 (P,), the index of the
        ground-truth box with the highest IoU (the lowest index among ties), for every proposal whatever its
        label; -1 when there is no ground truth (then the best IoU counts as 0).
    """
    proposals = validate.check_boxes(_plain(proposals), "proposals")
    gt_boxes = validate.check_boxes(_plain(gt_boxes), "gt_boxes")
    gt_labels = validate.check_labels(_plain(gt_labels), len(gt_boxes), "gt_labels")
    fg_threshold = _check_threshold(fg_threshold, "fg_threshold")
    bg_threshold = _check_threshold(bg_threshold, "bg_threshold")
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
    """Indices of a mini-batch with a fixed fraction of positives (R-CNN: 32 positives + 96 background).

    Draws ``min(round(batch_size * positive_fraction), #positives)`` positives (label > 0) and fills the
    rest with background (label 0) without replacement, as many as exist; ignored proposals (label -1)
    are never drawn. Returns int64 (B,) indices into ``labels`` (B <= batch_size), positives first.
    """
    labels = _plain(labels)
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1:
        raise ValueError("labels must be a 1-D int64 tensor (P,)")
    _check_positive_int(batch_size, "batch_size")
    positive_fraction = _check_threshold(positive_fraction, "positive_fraction")
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


# --------------------------------------------------------------------------- warping regions


def dilate_boxes(boxes: torch.Tensor, context: float) -> torch.Tensor:
    """Boxes (N, 4) grown by ``context`` times their width (height) on the left and right (top and bottom).

    ``context = 0.25`` turns a 20-pixel-wide box into a 30-pixel-wide one centred on it: after warping to
    S pixels, the box covers S / 1.5 of them, the rest is context (the paper's p = 16 pixels at 227).
    """
    boxes = _plain(boxes)
    if isinstance(context, bool) or not isinstance(context, (int, float)) or not 0 <= context <= 2:
        raise ValueError(
            f"context must be a number in [0, 2] (fraction of the box's side), got {context!r}"
        )
    widths = (boxes[:, 2] - boxes[:, 0]) * context
    heights = (boxes[:, 3] - boxes[:, 1]) * context
    return torch.stack(
        [boxes[:, 0] - widths, boxes[:, 1] - heights, boxes[:, 2] + widths, boxes[:, 3] + heights],
        dim=1,
    )


def warp_regions(
    image: torch.Tensor, boxes: torch.Tensor, size: int = 32, context: float = 0.25
) -> torch.Tensor:
    """Crop every box (plus context) out of ``image`` and warp it to ``size`` x ``size``, ignoring aspect ratio.

    R-CNN's "affine image warping": each region, whatever its shape, becomes a fixed-size CNN input.
    The crop is resampled bilinearly, averaging over every source pixel in a target pixel
    (``torchvision.ops.roi_align`` with adaptive sampling, used here as a batched crop-and-resize);
    outside the image it is zero (black), as in ``course_utils.data.datasets.CropDataset``.

    Args:
        image: float (C, H, W) in [0, 1].
        boxes: float (P, 4) xyxy pixels.
        size: side S of the warped crops.
        context: fraction of the box's width/height added on each side (:func:`dilate_boxes`).

    Returns:
        float (P, C, S, S) on the image's device.
    """
    image = validate.check_image(_plain(image))
    boxes = validate.check_boxes(_plain(boxes), "boxes")
    _check_positive_int(size, "size")
    if len(boxes) == 0:
        return image.new_zeros((0, image.shape[0], size, size))
    windows = dilate_boxes(boxes.to(image), context)
    crops = roi_align(
        image[None],
        [windows],
        output_size=(size, size),
        spatial_scale=1.0,
        sampling_ratio=-1,
        aligned=True,
    )
    return crops.clamp(0.0, 1.0)


# --------------------------------------------------------------------------- the fine-tuning set


def as_float_crops(crops: torch.Tensor) -> torch.Tensor:
    """Crops as float in [0, 1]: uint8 crops are divided by 255, float crops returned as they are."""
    return crops.float().div_(255.0) if crops.dtype == torch.uint8 else crops


@dataclass
class RegionSet:
    """Warped proposals of several images with their labels, ready for fine-tuning and box regression.

    Attributes:
        crops: uint8 (M, C, S, S) warped regions, stored as 0..255 to save memory (a quarter of float32);
            :func:`as_float_crops` (used by :class:`MinibatchDataset` and :func:`region_features`) turns them back.
        labels: int64 (M,) from :func:`label_proposals` (-1 ignored, 0 background, 1..K classes).
        boxes: float (M, 4) the regions' boxes (proposals, plus ground truth when included).
        matched_boxes: float (M, 4) the best ground-truth box of each region (the region itself when none).
        ious: float (M,) the IoU with that ground-truth box.
        image_indices: int64 (M,) which image each region comes from.
        is_gt: bool (M,) True for the ground-truth boxes added to the proposals (``include_gt``).
    """

    crops: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor
    matched_boxes: torch.Tensor
    ious: torch.Tensor
    image_indices: torch.Tensor
    is_gt: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, keep: torch.Tensor) -> RegionSet:
        """The regions selected by a boolean mask or index tensor ``keep``."""
        return RegionSet(
            self.crops[keep],
            self.labels[keep],
            self.boxes[keep],
            self.matched_boxes[keep],
            self.ious[keep],
            self.image_indices[keep],
            self.is_gt[keep],
        )

    def counts(self) -> dict[str, int]:
        """How many regions are positive, background and ignored."""
        return {
            "positive": int((self.labels > 0).sum()),
            "background": int((self.labels == 0).sum()),
            "ignored": int((self.labels < 0).sum()),
        }


def build_region_set(
    images: Sequence[torch.Tensor],
    targets: Sequence[dict],
    proposals: Sequence[torch.Tensor],
    *,
    size: int = 32,
    context: float = 0.25,
    fg_threshold: float = 0.5,
    bg_threshold: float = 0.0,
    include_gt: bool = True,
    label_fn: Callable | None = None,
) -> RegionSet:
    """Warp and label the proposals of every image (plus its ground-truth boxes, as the paper's positives).

    ``images``: float (C, H, W); ``targets``: dicts with ``boxes`` (G, 4) and ``labels`` (G,);
    ``proposals``: float (P_i, 4) per image. Labels follow :func:`label_proposals`, or ``label_fn`` with the
    same signature (a notebook passes the student's own).
    """
    if not (len(images) == len(targets) == len(proposals)):
        raise ValueError(
            f"images, targets and proposals must have one entry per image, got {len(images)}, "
            f"{len(targets)} and {len(proposals)}"
        )
    parts: dict[str, list[torch.Tensor]] = {
        key: [] for key in ("crops", "labels", "boxes", "matched", "ious", "index", "gt")
    }
    for index, (image, target, boxes) in enumerate(zip(images, targets, proposals)):
        gt_boxes = _plain(target["boxes"]).float()
        gt_labels = _plain(target["labels"])
        boxes = _plain(boxes).float()
        is_gt = torch.zeros(len(boxes), dtype=torch.bool)
        if include_gt:
            boxes = torch.cat([gt_boxes, boxes])
            is_gt = torch.cat([torch.ones(len(gt_boxes), dtype=torch.bool), is_gt])
        labels, matched = (label_fn or label_proposals)(
            boxes, gt_boxes, gt_labels, fg_threshold, bg_threshold
        )
        if len(gt_boxes):
            matched_boxes = gt_boxes[matched]
            ious = box_iou(boxes, gt_boxes).max(dim=1).values
        else:
            matched_boxes, ious = boxes.clone(), torch.zeros(len(boxes))
        parts["crops"].append(
            warp_regions(image, boxes, size, context).mul(255).round().to(torch.uint8)
        )
        parts["labels"].append(labels)
        parts["boxes"].append(boxes)
        parts["matched"].append(matched_boxes)
        parts["ious"].append(ious)
        parts["index"].append(torch.full((len(boxes),), index, dtype=torch.int64))
        parts["gt"].append(is_gt)
    return RegionSet(
        crops=torch.cat(parts["crops"]),
        labels=torch.cat(parts["labels"]),
        boxes=torch.cat(parts["boxes"]),
        matched_boxes=torch.cat(parts["matched"]),
        ious=torch.cat(parts["ious"]),
        image_indices=torch.cat(parts["index"]),
        is_gt=torch.cat(parts["gt"]),
    )


class MinibatchDataset(Dataset):
    """A dataset whose item ``i`` is a whole R-CNN mini-batch ``(crops (B, C, S, S), labels (B,))``.

    Batch ``i`` is drawn by :func:`sample_minibatch` with a generator seeded by ``(seed, i)``, so every
    batch has the same fraction of positives and the sequence is reproducible. With ``hflip`` a random half
    of the crops of each batch is mirrored left-right (data augmentation). Train with
    ``course_utils.engine.train.fit(..., batch_size=1, collate_fn=MinibatchDataset.collate)``.
    """

    def __init__(
        self,
        regions: RegionSet,
        num_batches: int,
        batch_size: int = 128,
        positive_fraction: float = 0.25,
        seed: int = 0,
        hflip: bool = False,
    ) -> None:
        if not isinstance(regions, RegionSet):
            raise TypeError(
                f"regions must be a RegionSet (build_region_set), got {type(regions).__name__}"
            )
        self.regions = regions
        self.num_batches = _check_positive_int(num_batches, "num_batches")
        self.batch_size = _check_positive_int(batch_size, "batch_size")
        self.positive_fraction = _check_threshold(positive_fraction, "positive_fraction")
        self.seed, self.hflip = seed, bool(hflip)
        if int((regions.labels > 0).sum()) == 0 or int((regions.labels == 0).sum()) == 0:
            raise ValueError(f"need both positive and background regions, got {regions.counts()}")

    def __len__(self) -> int:
        return self.num_batches

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.num_batches:
            raise IndexError(f"batch {index} out of range for {self.num_batches} batches")
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        picked = sample_minibatch(
            self.regions.labels, self.batch_size, self.positive_fraction, generator
        )
        crops = as_float_crops(self.regions.crops[picked])
        if self.hflip:
            flip = torch.rand(len(picked), generator=generator) < 0.5
            crops = torch.where(flip[:, None, None, None], crops.flip(-1), crops)
        return crops, self.regions.labels[picked]

    @staticmethod
    def collate(batch: list) -> tuple[torch.Tensor, torch.Tensor]:
        """``fit``'s collate_fn for batch_size=1: the single item is already a mini-batch."""
        return batch[0]


# --------------------------------------------------------------------------- class-specific box regression


@torch.no_grad()
def region_features(
    cnn: nn.Module, crops: torch.Tensor, batch_size: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features (N, D), class probabilities (N, K+1))`` of warped crops (N, C, S, S), in eval mode.

    ``crops``: float in [0, 1] or uint8 0..255 (a :class:`RegionSet`'s). ``cnn`` has ``features``
    (crops -> (N, D)) and ``head`` ((N, D) -> logits), like ``CropClassifier``. Float results, on the crops'
    device.
    """
    _check_positive_int(batch_size, "batch_size")
    device = next(cnn.parameters()).device
    was_training = cnn.training
    cnn.eval()
    try:
        features, probs = [], []
        for start in range(0, len(crops), batch_size):
            chunk = cnn.features(as_float_crops(crops[start : start + batch_size]).to(device))
            features.append(chunk)
            probs.append(F.softmax(cnn.head(chunk).float(), dim=1))
    finally:
        cnn.train(was_training)
    if not features:
        num_classes = cnn.head(
            cnn.features(torch.zeros((1, *crops.shape[1:]), device=device))
        ).shape[1]
        dim = cnn.features(torch.zeros((1, *crops.shape[1:]), device=device)).shape[1]
        return torch.zeros((0, dim), device=crops.device), torch.zeros(
            (0, num_classes), device=crops.device
        )
    return torch.cat(features).to(crops.device), torch.cat(probs).to(crops.device)


def fit_box_regressors(
    features: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor,
    num_classes: int,
    ridge: float = 1000.0,
) -> torch.Tensor:
    """Class-specific linear box regressors by ridge regression (R-CNN, appendix C), in closed form.

    For each class k >= 1, on the regions labelled k: ``W_k = argmin ||[X 1] W - T||^2 + ridge ||W[:-1]||^2``
    (the bias is not penalized). Background (k = 0) and classes without regions get zero weights
    (they predict deltas 0: the proposal unchanged).

    Args:
        features: float (N, D) CNN features of the regions.
        labels: int64 (N,) class of each region, 1..K for the ones to fit on (others are skipped).
        targets: float (N, 4) :func:`~course_utils.detection.box_coding.encode_boxes` targets.
        num_classes: K + 1 (background included).
        ridge: the L2 penalty (the paper's lambda = 1000 for pool5 features).

    Returns:
        float64 weights (num_classes, D + 1, 4): the last row of each class is its bias.
    """
    features, labels, targets = _plain(features), _plain(labels), _plain(targets)
    if (
        features.ndim != 2
        or targets.shape != (len(features), 4)
        or labels.shape != (len(features),)
    ):
        raise ValueError(
            f"need features (N, D), labels (N,) and targets (N, 4), got {tuple(features.shape)}, "
            f"{tuple(labels.shape)} and {tuple(targets.shape)}"
        )
    _check_positive_int(num_classes, "num_classes", 2)
    if not ridge >= 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    x = torch.cat(
        [features.double().cpu(), torch.ones(len(features), 1, dtype=torch.float64)], dim=1
    )
    t = targets.double().cpu()
    labels = labels.cpu()
    penalty = torch.eye(x.shape[1], dtype=torch.float64) * float(ridge)
    penalty[-1, -1] = 1e-8  # leave the bias free (a tiny value keeps the system solvable)
    weights = torch.zeros(num_classes, x.shape[1], 4, dtype=torch.float64)
    for k in range(1, num_classes):
        rows = labels == k
        if int(rows.sum()) == 0:
            continue
        xk, tk = x[rows], t[rows]
        weights[k] = torch.linalg.solve(xk.T @ xk + penalty, xk.T @ tk)
    return weights


def apply_box_regressors(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Class-specific deltas (N, K+1, 4) of features (N, D) with weights (K+1, D+1, 4) from fit_box_regressors."""
    features = _plain(features)
    if features.ndim != 2 or weights.ndim != 3 or weights.shape[1] != features.shape[1] + 1:
        raise ValueError(
            f"need features (N, D) and weights (K+1, D+1, 4), got {tuple(features.shape)} and "
            f"{tuple(weights.shape)}"
        )
    weights = weights.to(features)
    return torch.einsum("nd,kdc->nkc", features, weights[:, :-1]) + weights[None, :, -1]


# --------------------------------------------------------------------------- detections


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
        box_deltas: float (P, K+1, 4) class-specific regression outputs, or None (boxes = proposals).
        image_size: (H, W), boxes are clipped to it.
        score_threshold: drop (region, class) pairs scoring below this.
        nms_threshold: per-class NMS IoU threshold (``torchvision.ops.batched_nms``; the paper used 0.3).
        max_detections: keep the highest-scoring ones.
        min_size: drop boxes narrower or lower than this (pixels).
        weights: the box-coding weights of the deltas.

    Returns:
        ``{"boxes": float (N, 4), "scores": float (N,), "labels": int64 (N,) in 1..K}``, highest score first.
    """
    proposals, class_probs = _plain(proposals), _plain(class_probs)
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
        box_deltas = _plain(box_deltas)
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


# --------------------------------------------------------------------------- the detector


class RCNN(nn.Module):
    """R-CNN at test time: warp every proposal, run the CNN on each, score, regress, per-class NMS.

    Args:
        cnn: the fine-tuned network with ``features`` (crops -> (N, D)) and ``head`` ((N, D) -> (N, K+1)),
            e.g. a ``CropClassifier``; its softmax is the per-class classifier (the paper used linear SVMs on
            the same features).
        regressor_weights: (K+1, D+1, 4) from :func:`fit_box_regressors`, or None for no box regression.
        size, context: the warp (:func:`warp_regions`); must match what the CNN was fine-tuned on.
        score_threshold, nms_threshold, max_detections: see :func:`postprocess_detections`.
        batch_size: crops per CNN call.
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
    ) -> None:
        super().__init__()
        if not (hasattr(cnn, "features") and hasattr(cnn, "head")):
            raise TypeError(
                "cnn must have .features and .head (like course_utils.detection.classifiers.CropClassifier)"
            )
        self.cnn = cnn
        self.register_buffer(
            "regressor_weights", None if regressor_weights is None else regressor_weights.float()
        )
        self.size, self.context = _check_positive_int(size, "size"), float(context)
        self.score_threshold, self.nms_threshold = float(score_threshold), float(nms_threshold)
        self.max_detections, self.batch_size = max_detections, batch_size

    @torch.no_grad()
    def score_regions(
        self, image: torch.Tensor, proposals: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(class probabilities (P, K+1), class-specific deltas (P, K+1, 4) or None)`` for one image."""
        crops = warp_regions(image, proposals, self.size, self.context)
        features, probs = region_features(self.cnn, crops, self.batch_size)
        deltas = (
            None
            if self.regressor_weights is None
            else apply_box_regressors(features, self.regressor_weights)
        )
        return probs, deltas

    @torch.no_grad()
    def forward(
        self, images: Sequence[torch.Tensor], proposals: Sequence[torch.Tensor]
    ) -> list[dict]:
        """Detections for each image: list of ``{"boxes", "scores", "labels"}`` (torchvision's format)."""
        if len(images) != len(proposals):
            raise ValueError(
                f"one proposal tensor per image: got {len(images)} images and {len(proposals)}"
            )
        outputs = []
        for image, boxes in zip(images, proposals):
            boxes = _plain(boxes).to(image.device, torch.float32)
            probs, deltas = self.score_regions(image, boxes)
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


def fit_region_regressors(
    cnn: nn.Module,
    regions: RegionSet,
    num_classes: int,
    *,
    min_iou: float = 0.6,
    ridge: float = 1000.0,
    encode_fn: Callable | None = None,
) -> torch.Tensor:
    """R-CNN's box regressors for a fine-tuned CNN: ridge regression (:func:`fit_box_regressors`) from the CNN
    features of the positive proposals (not the added ground-truth boxes) with IoU >= ``min_iou`` (the paper's
    0.6) to their targets (``encode_fn(boxes, matched_boxes)``, default
    :func:`~course_utils.detection.box_coding.encode_boxes`). Returns weights (num_classes, D + 1, 4)."""
    chosen = (regions.ious >= min_iou) & (regions.labels > 0) & ~regions.is_gt
    features, _ = region_features(cnn, regions.crops[chosen])
    targets = (encode_fn or encode_boxes)(regions.boxes[chosen], regions.matched_boxes[chosen])
    return fit_box_regressors(features, regions.labels[chosen], targets, num_classes, ridge)


def train_rcnn(
    cnn: nn.Module,
    images: Sequence[torch.Tensor],
    targets: Sequence[dict],
    proposals: Sequence[torch.Tensor],
    *,
    steps: int,
    batch_size: int = 128,
    positive_fraction: float = 0.25,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    size: int = 32,
    context: float = 0.25,
    fg_threshold: float = 0.5,
    bg_threshold: float = 0.0,
    regression_iou: float = 0.6,
    ridge: float = 1000.0,
    hflip: bool = True,
    checkpoint: str | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    label_fn: Callable | None = None,
    **detector_kwargs,
):
    """R-CNN's training, all stages: warp and label the regions, fine-tune ``cnn`` (in place) on mini-batches
    with a fixed fraction of positives (AdamW, one-cycle schedule, ``course_utils.engine.train.fit``), then fit the
    class-specific box regressors on its features.

    Returns ``(detector, history, regions)``: an :class:`RCNN` ready for testing (``detector_kwargs`` go to
    it), fit's ``History`` and the :class:`RegionSet` it trained on.
    """
    from course_utils.engine.train import classification_loss, fit

    regions = build_region_set(
        images,
        targets,
        proposals,
        size=size,
        context=context,
        fg_threshold=fg_threshold,
        bg_threshold=bg_threshold,
        label_fn=label_fn,
    )
    batches = MinibatchDataset(
        regions, steps, batch_size, positive_fraction, seed=seed, hflip=hflip
    )
    optimizer = torch.optim.AdamW(cnn.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=steps, pct_start=0.1
    )
    history = fit(
        cnn,
        batches,
        loss_fn=classification_loss,
        optimizer=optimizer,
        scheduler=scheduler,
        steps=steps,
        batch_size=1,
        collate_fn=MinibatchDataset.collate,
        checkpoint=checkpoint,
        seed=seed,
        device=device,
        progress=progress,
    )
    num_classes = int(region_features(cnn, regions.crops[:1])[1].shape[1])
    weights = fit_region_regressors(cnn, regions, num_classes, min_iou=regression_iou, ridge=ridge)
    detector = RCNN(cnn, weights, size=size, context=context, **detector_kwargs)
    return detector, history, regions
