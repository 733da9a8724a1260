"""R-CNN's inputs: every region warped to a fixed-size crop, and the fine-tuning set of them.

Boxes are float (N, 4) ``(x1, y1, x2, y2)`` in absolute pixels; images float (C, H, W) in
[0, 1]; warped crops (N, C, S, S), float in [0, 1] or uint8 0..255 when stored::

    crops = warp_regions(image, proposals, size=32, context=0.25)    # (P, 3, 32, 32)
    regions = build_region_set(images, targets, proposals)          # RegionSet: crops + labels
    batches = MinibatchDataset(regions, num_batches=200)             # 32 positives + 96 background

Train on ``batches`` with ``course_utils.engine.fit(..., TrainConfig(steps=200, batch_size=1),
collate_fn=MinibatchDataset.collate)``: each item already is a whole mini-batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset
from torchvision.ops import box_iou, roi_align

from course_utils.core.tensors import plain
from course_utils.core.validate import check_boxes, check_image, check_int, check_number
from course_utils.detection.proposal_labels import label_proposals, sample_minibatch

__all__ = [
    "MinibatchDataset",
    "RegionSet",
    "as_float_crops",
    "build_region_set",
    "dilate_boxes",
    "warp_regions",
]


# --------------------------------------------------------------------------- warping regions


def dilate_boxes(boxes: torch.Tensor, context: float) -> torch.Tensor:
    """Boxes (N, 4) xyxy grown by ``context`` times their width (height) on the left and right
    (top and bottom): float (N, 4) xyxy.

    ``context = 0.25`` turns a 20-pixel-wide box into a 30-pixel-wide one centred on it: after
    warping to S pixels, the box covers S / 1.5 of them, the rest is context (the paper's
    p = 16 pixels at 227).
    """
    boxes = plain(boxes)
    check_number(context, "context", 0.0, 2.0)
    widths = (boxes[:, 2] - boxes[:, 0]) * context
    heights = (boxes[:, 3] - boxes[:, 1]) * context
    return torch.stack(
        [boxes[:, 0] - widths, boxes[:, 1] - heights, boxes[:, 2] + widths, boxes[:, 3] + heights],
        dim=1,
    )


def warp_regions(
    image: torch.Tensor, boxes: torch.Tensor, size: int = 32, context: float = 0.25
) -> torch.Tensor:
    """Crop every box (plus context) out of ``image`` and warp it to ``size`` x ``size``,
    ignoring aspect ratio.

    R-CNN's "affine image warping": each region, whatever its shape, becomes a fixed-size CNN
    input. The crop is resampled bilinearly, averaging over every source pixel in a target pixel
    (``torchvision.ops.roi_align`` with adaptive sampling, used here as a batched
    crop-and-resize); outside the image it is zero (black), as in
    ``course_utils.data.datasets.CropDataset``.

    Args:
        image: float (C, H, W) in [0, 1].
        boxes: float (P, 4) xyxy pixels.
        size: side S of the warped crops.
        context: fraction of the box's width/height added on each side (:func:`dilate_boxes`).

    Returns:
        float (P, C, S, S) on the image's device.
    """
    image = check_image(plain(image))
    boxes = check_boxes(plain(boxes), "boxes")
    check_int(size, "size")
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
    """Crops (N, C, S, S) as float in [0, 1]: uint8 crops are divided by 255, float crops are
    returned as they are."""
    return crops.float().div_(255.0) if crops.dtype == torch.uint8 else crops


@dataclass
class RegionSet:
    """Warped proposals of several images with their labels, ready for fine-tuning and box
    regression.

    Attributes:
        crops: uint8 (M, C, S, S) warped regions, stored as 0..255 to save memory (a quarter of
            float32); :func:`as_float_crops` (used by :class:`MinibatchDataset` and
            ``box_regression.region_features``) turns them back.
        labels: int64 (M,) from ``label_proposals`` (-1 ignored, 0 background, 1..K classes).
        boxes: float (M, 4) xyxy, the regions' boxes (proposals, plus ground truth when
            included).
        matched_boxes: float (M, 4) xyxy, the best ground-truth box of each region (the region
            itself when none).
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
    """Warp and label the proposals of every image (plus its ground-truth boxes, as the paper's
    positives).

    ``images``: float (C, H, W) in [0, 1]; ``targets``: dicts with ``boxes`` (G, 4) xyxy and
    ``labels`` (G,); ``proposals``: float (P_i, 4) xyxy per image. Labels follow
    ``label_proposals``, or ``label_fn`` with the same signature (a notebook passes the
    student's own). Regions are stored image by image, each image's ground truth first.
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
        gt_boxes = plain(target["boxes"]).float()
        gt_labels = plain(target["labels"])
        boxes = plain(boxes).float()
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
    """A dataset whose item ``i`` is a whole R-CNN mini-batch ``(crops float (B, C, S, S) in
    [0, 1], labels int64 (B,))``.

    Batch ``i`` is drawn by ``sample_minibatch`` with a generator seeded by ``(seed, i)``, so
    every batch has the same fraction of positives and the sequence is reproducible. With
    ``hflip`` a random half of the crops of each batch is mirrored left-right (data
    augmentation). Train with ``course_utils.engine.fit(..., TrainConfig(steps=num_batches,
    batch_size=1), collate_fn=MinibatchDataset.collate)``.
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
        self.num_batches = check_int(num_batches, "num_batches")
        self.batch_size = check_int(batch_size, "batch_size")
        self.positive_fraction = check_number(positive_fraction, "positive_fraction", 0.0, 1.0)
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
