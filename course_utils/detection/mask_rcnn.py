"""Mask R-CNN's mask branch (He, Gkioxari, Dollár, Girshick, ICCV 2017): the parts on their own.

Mask R-CNN adds a third sibling to Faster R-CNN's head: a small fully convolutional network that
predicts, for every positive RoI, one M x M binary mask *per class* (sigmoid, not softmax), of
which only the RoI's own class is trained and used::

    targets = mask_targets(gt_masks, proposals, matched_idxs, 2 * S)  # (P, 2S, 2S) in {0, 1}
    logits = MaskHead(D, num_classes)(pooled)                          # (P, K+1, 2S, 2S)
    loss = mask_loss(logits, targets, labels)                          # 0-dim
    masks = paste_masks(logits[torch.arange(P), labels].sigmoid(), boxes, (H, W), 0.5)

Boxes are float (N, 4) ``(x1, y1, x2, y2)`` absolute pixels, x2 one past the last pixel (the
course's convention), so that pixel (i, j) covers [j, j + 1) x [i, i + 1) and its centre is
(j + 0.5, i + 0.5): the frame of ``roi_align(..., aligned=True)`` (RoIAlign without its
historical half-pixel shift). Instance masks are bool or uint8 (G, H, W); labels int64, 0 =
background, so a mask predictor has ``num_classes`` = K + 1 channels like torchvision's (channel 0
is never trained).

Conventions against torchvision's ``roi_heads`` (what the course does differently and why):

* ``mask_targets``: torchvision's ``project_masks_on_boxes`` calls ``roi_align(masks, rois, (M,
  M), 1.0)``, i.e. ``aligned=False`` (it reads each box half a pixel right of and below where it
  is), and returns *soft* targets in [0, 1]. The course uses ``aligned=True`` and thresholds at
  0.5, as Detectron2 (``BitMasks.crop_and_resize``); both keep roi_align's adaptive sampling
  ratio.
* ``mask_loss`` is torchvision's ``maskrcnn_loss`` once the targets are made.
* ``MaskHead`` is ``MaskRCNNHeads`` (without dilation or normalisation) followed by
  ``MaskRCNNPredictor``, with zero biases everywhere (torchvision leaves the predictor's biases
  at PyTorch's default).
* ``paste_masks`` equals ``paste_masks_in_image(masks[:, None], boxes, image_size, padding=1)[:,
  0]``, which reads boxes the Detectron (2017) way: both corner pixels inclusive, so a pasted
  mask covers one more pixel to the right and below than the box.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from course_utils.core.tensors import plain
from course_utils.core.validate import check_boxes, check_int, check_masks, check_number

__all__ = ["MaskHead", "mask_loss", "mask_targets", "paste_masks"]


def _check_float(tensor, name: str, ndim: int, shape: str) -> torch.Tensor:
    """``tensor`` as a plain float tensor with ``ndim`` dimensions; TypeError/ValueError if not."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a float tensor {shape}, got {type(tensor).__name__}")
    tensor = plain(tensor)
    if tensor.ndim != ndim:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must be a float tensor {shape}, got dtype {tensor.dtype}")
    return tensor


def _check_indices(indices, name: str, length: int, stop: int, what: str) -> torch.Tensor:
    """Integer (length,) tensor with values in [0, stop)."""
    if not isinstance(indices, torch.Tensor):
        raise TypeError(f"{name} must be an int64 tensor ({length},), got {type(indices).__name__}")
    indices = plain(indices)
    if indices.dtype.is_floating_point or indices.dtype == torch.bool or indices.ndim != 1:
        raise TypeError(
            f"{name} must be an int64 tensor of shape ({length},), got {indices.dtype} "
            f"{tuple(indices.shape)}"
        )
    if len(indices) != length:
        raise ValueError(f"{name} must have one entry per RoI: {length} RoIs, {len(indices)}")
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= stop):
        raise ValueError(f"{name} must hold {what} in [0, {stop}), got {indices.tolist()[:8]}")
    return indices


# --------------------------------------------------------------------------- training targets


def mask_targets(
    gt_masks: torch.Tensor, proposals: torch.Tensor, matched_idxs: torch.Tensor, mask_size: int
) -> torch.Tensor:
    """The M x M binary mask each positive RoI is trained to predict: float32 (P, M, M) in {0, 1}.

    RoI p's target is its matched instance's mask ``gt_masks[matched_idxs[p]]`` cut out along the
    *proposal's* box (not the instance's own box: the head must learn to draw the object where it
    sits inside the RoI it sees) and resampled to ``mask_size`` x ``mask_size``::

        rois = cat([matched_idxs[:, None], proposals], 1)   # (P, 5): (instance, x1, y1, x2, y2)
        soft = roi_align(gt_masks[:, None].float(), rois, (M, M), spatial_scale=1.0,
                         aligned=True)[:, 0]                # fraction of each bin on the object
        return (soft >= 0.5).float()

    The instance index goes in roi_align's "batch index" column, so that every RoI reads its own
    instance's mask. roi_align keeps its default, adaptive sampling ratio: ceil(box side / M)
    samples per bin and direction, enough to see every pixel of a large box. Parts of a box outside
    the image read as background.

    Args:
        gt_masks: bool or uint8 (G, H, W) instance masks of one image.
        proposals: float (P, 4) xyxy pixel boxes of the positive RoIs.
        matched_idxs: int64 (P,), index in [0, G) of each RoI's matched instance.
        mask_size: M, an int >= 1.

    Returns:
        float32 (P, M, M) on ``proposals``' device; (0, M, M) when P = 0.

    torchvision's ``project_masks_on_boxes(gt_masks, proposals, matched_idxs, M)`` is the same call
    with ``aligned=False`` and no threshold: ``(project_masks_on_boxes(gt_masks, proposals - 0.5,
    matched_idxs, M) >= 0.5).float()`` equals this (boxes at least a pixel wide).
    """
    gt_masks = plain(check_masks(gt_masks, name="gt_masks"))
    proposals = plain(check_boxes(proposals, "proposals"))
    size = check_int(mask_size, "mask_size")
    count = len(proposals)
    matched_idxs = _check_indices(matched_idxs, "matched_idxs", count, len(gt_masks), "instances")
    if count == 0:
        return torch.zeros((0, size, size), dtype=torch.float32, device=proposals.device)
    rois = torch.cat([matched_idxs[:, None].to(proposals.dtype), proposals], dim=1)
    masks = gt_masks[:, None].to(proposals.device, proposals.dtype)
    soft = roi_align(masks, rois, (size, size), spatial_scale=1.0, aligned=True)[:, 0]
    return (soft >= 0.5).to(torch.float32)


# --------------------------------------------------------------------------- the loss


def mask_loss(
    mask_logits: torch.Tensor, mask_targets: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Mask R-CNN's L_mask: the average binary cross-entropy of each RoI's own-class mask.

    For positive RoI p only channel ``labels[p]`` of its K+1 predicted masks counts (the others
    get no gradient: classes do not compete for a pixel, the paper's decoupling of masks and
    classes); the loss is the mean, over all P * M * M pixels of these masks, of
    ``BCEWithLogits(logit, target)``. Equal to torchvision's ``maskrcnn_loss``::

        F.binary_cross_entropy_with_logits(mask_logits[arange(P), labels], mask_targets)

    Args:
        mask_logits: float (P, K+1, M, M), the head's raw outputs for the positive RoIs.
        mask_targets: float (P, M, M) in [0, 1] (:func:`mask_targets`).
        labels: int64 (P,), each RoI's ground-truth class in [1, K+1) (positives only).

    Returns:
        A 0-dim tensor of ``mask_logits``' dtype and device; ``mask_logits.sum() * 0`` when P = 0
        (a zero that keeps the graph, where a mean over nothing would be NaN).
    """
    mask_logits = _check_float(mask_logits, "mask_logits", 4, "(P, K+1, M, M)")
    mask_targets = _check_float(mask_targets, "mask_targets", 3, "(P, M, M)")
    count, channels = mask_logits.shape[:2]
    if mask_targets.shape != (count, *mask_logits.shape[2:]):
        raise ValueError(
            f"mask_targets must have shape (P, M, M) = {(count, *mask_logits.shape[2:])} like "
            f"mask_logits {tuple(mask_logits.shape)}, got {tuple(mask_targets.shape)}"
        )
    labels = _check_indices(labels, "labels", count, channels, "classes")
    if count and int(labels.min()) == 0:
        raise ValueError("labels must be >= 1: mask_loss takes the positive RoIs only")
    if count == 0:
        return mask_logits.sum() * 0
    own = mask_logits[torch.arange(count, device=labels.device), labels]
    return F.binary_cross_entropy_with_logits(own, mask_targets.to(own.dtype))


# --------------------------------------------------------------------------- the head


class MaskHead(nn.Module):
    """The mask branch: (P, in_channels, S, S) pooled RoI features -> (P, num_classes, 2S, 2S)
    mask logits, one mask per class (background included, as the box classifier's classes).

    Layers (the attribute names are the state_dict's keys: ``convs.0.weight``, ...):

    * ``convs``: ``nn.Sequential(Conv2d(in_channels, conv_channels, 3, padding=1), ReLU(),
      Conv2d(conv_channels, conv_channels, 3, padding=1), ReLU(), ...)``, ``num_convs`` pairs
      (keys ``convs.0``, ``convs.2``, ...); with ``num_convs = 0`` it is empty;
    * ``upsample``: ``nn.ConvTranspose2d(c, conv_channels, 2, stride=2)``, c the channels after
      the convs, then a ReLU (in ``forward``): doubles the resolution;
    * ``predictor``: ``nn.Conv2d(conv_channels, num_classes, 1)``: raw logits, no sigmoid.

    The paper's head on a ResNet-FPN is 4 convs of 256 channels on 14 x 14 RoIs (28 x 28
    masks); the course's default is 2 convs of 64. Weights are initialised like torchvision's
    (``kaiming_normal_(mode="fan_out", nonlinearity="relu")``), biases zero.
    """

    def __init__(
        self, in_channels: int, num_classes: int, conv_channels: int = 64, num_convs: int = 2
    ) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels")
        check_int(num_classes, "num_classes", minimum=2)
        check_int(conv_channels, "conv_channels")
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(check_int(num_convs, "num_convs", minimum=0)):
            layers += [nn.Conv2d(channels, conv_channels, 3, padding=1), nn.ReLU(inplace=True)]
            channels = conv_channels
        self.convs = nn.Sequential(*layers)
        self.upsample = nn.ConvTranspose2d(channels, conv_channels, 2, stride=2)
        self.predictor = nn.Conv2d(conv_channels, num_classes, 1)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float (P, in_channels, S, S') -> mask logits (P, num_classes, 2S, 2S')."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"MaskHead expects (P, {self.in_channels}, S, S) features, got {tuple(x.shape)}"
            )
        return self.predictor(F.relu(self.upsample(self.convs(x))))


# --------------------------------------------------------------------------- pasting


def _expanded_boxes(boxes: torch.Tensor, mask_size: int) -> torch.Tensor:
    """Boxes grown about their centre by (M + 2) / M, the one pixel of padding added around each
    M x M mask, then truncated toward zero to int64 (torchvision's ``expand_boxes`` and
    ``.to(torch.int64)``, the same float operations in the same order)."""
    scale = float(mask_size + 2) / mask_size
    half_w = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale
    half_h = (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    centre_x = (boxes[:, 2] + boxes[:, 0]) * 0.5
    centre_y = (boxes[:, 3] + boxes[:, 1]) * 0.5
    grown = torch.stack(
        [centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h], dim=1
    )
    return grown.to(torch.int64)


def _paste_one(mask: torch.Tensor, box: Sequence[int], canvas: torch.Tensor) -> None:
    """Resize one padded mask (M + 2, M + 2) to its box, both corners inclusive, and write it into
    ``canvas`` (H, W), clipped to the image."""
    x1, y1, x2, y2 = box
    width, height = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
    resized = F.interpolate(
        mask[None, None], size=(height, width), mode="bilinear", align_corners=False
    )[0, 0]
    left, top = max(x1, 0), max(y1, 0)
    right, bottom = min(x1 + width, canvas.shape[1]), min(y1 + height, canvas.shape[0])
    if left < right and top < bottom:
        canvas[top:bottom, left:right] = resized[top - y1 : bottom - y1, left - x1 : right - x1]


def paste_masks(
    masks: torch.Tensor,
    boxes: torch.Tensor,
    image_size: tuple[int, int],
    threshold: float | None = None,
) -> torch.Tensor:
    """Each RoI's M x M mask probabilities pasted into the image, inside its box: (N, H, W).

    For every mask: pad it with one pixel of zeros, (M + 2, M + 2), and grow its box about the
    centre by (M + 2) / M to match (corners truncated toward zero to ints, x1..x2 inclusive); resize
    the padded mask bilinearly (``align_corners=False``) to the box's ``x2 - x1 + 1`` by ``y2 - y1
    + 1`` pixels and write it at (x1, y1), clipped to the image. Zero elsewhere. The padding lets
    the mask fade to 0 at the box's edge instead of stopping at a step.

    Args:
        masks: float (N, M, M) probabilities (sigmoid of each RoI's own-class logits).
        boxes: float (N, 4) xyxy pixel boxes of the detections, inside or partly outside the image.
        image_size: (H, W).
        threshold: None: return the probabilities; a float in [0, 1]: return ``>= threshold``.

    Returns:
        (N, H, W) on ``masks``' device: ``masks``' dtype, or bool when thresholded. Equal to
        ``torchvision.models.detection.roi_heads.paste_masks_in_image(masks[:, None], boxes,
        image_size, padding=1)[:, 0]`` (which crashes on a box entirely right of or below the
        image, where this returns zeros).
    """
    masks = _check_float(masks, "masks", 3, "(N, M, M)")
    if masks.shape[1] != masks.shape[2] or masks.shape[1] == 0:
        raise ValueError(f"masks must be square, (N, M, M) with M >= 1, got {tuple(masks.shape)}")
    boxes = plain(check_boxes(boxes, "boxes"))
    if len(boxes) != len(masks):
        raise ValueError(f"one box per mask: {len(masks)} masks but {len(boxes)} boxes")
    if not isinstance(image_size, Sequence) or len(image_size) != 2:
        raise TypeError(f"image_size must be a pair (H, W), got {image_size!r}")
    height, width = (check_int(side, "image_size") for side in image_size)
    if threshold is not None:
        threshold = check_number(threshold, "threshold", 0.0, 1.0)
    padded = F.pad(masks, (1, 1, 1, 1))
    corners = _expanded_boxes(boxes.to(masks.device), masks.shape[-1]).tolist()
    out = masks.new_zeros((len(masks), height, width))
    for mask, box, canvas in zip(padded, corners, out):
        _paste_one(mask, box, canvas)
    return out if threshold is None else out >= threshold
