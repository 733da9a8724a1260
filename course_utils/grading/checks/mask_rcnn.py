"""Checks for the Mask R-CNN assignments (notebook 12): the mask branch's parts.

* ``mask_targets(gt_masks, proposals, matched_idxs, mask_size) -> targets``: float32 (P, M, M)
  in {0, 1}, each RoI's instance mask cut along the proposal with ``roi_align(...,
  aligned=True)`` and thresholded at 0.5;
* ``mask_loss(mask_logits, mask_targets, labels) -> loss``: binary cross-entropy with logits on
  each RoI's own-class channel, averaged over all pixels;
* ``MaskHead(in_channels, num_classes, conv_channels, num_convs)``: an ``nn.Module``, 3x3
  convolutions, a transposed convolution doubling the size, a 1x1 predictor of one mask per
  class;
* ``paste_masks(masks, boxes, image_size, threshold=None) -> (N, H, W)``: the M x M masks
  resized into their boxes in the image, torchvision's ``paste_masks_in_image``.

The references are the course's ``course_utils.detection.mask_rcnn``, which its tests prove equal
to torchvision's ``roi_heads`` where the conventions agree (its docstring says where they do
not). ``check_MaskHead`` runs on the CPU and leaves torch's global RNG as it found it; the three
others run on every available device.

Usage in a notebook::

    check_mask_targets(mask_targets)   # graded cell: raises on a wrong answer
    check_MaskHead(MaskHead)           # the class itself, not an instance
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from course_utils.detection import mask_rcnn
from course_utils.grading.assignments import assignment_check
from course_utils.grading.checks._mask_rcnn_cases import (
    mask_head_cases,
    mask_loss_cases,
    mask_targets_cases,
    paste_masks_cases,
)
from course_utils.grading.checks._mask_rcnn_compare import (
    compare_mask_loss,
    compare_mask_targets,
    compare_paste,
)
from course_utils.grading.checks._mask_rcnn_head import compare_mask_head
from course_utils.grading.checks._unet_cases import restoring_rng

__all__ = [
    "CHECKS",
    "check_MaskHead",
    "check_mask_loss",
    "check_mask_targets",
    "check_paste_masks",
    "mask_head_cases",
    "mask_loss_cases",
    "mask_targets_cases",
    "paste_masks_cases",
]


@assignment_check(
    reference=mask_rcnn.mask_targets, cases=mask_targets_cases, compare=compare_mask_targets
)
def check_mask_targets(mask_targets: Callable[..., torch.Tensor], *, quiet: bool = False) -> None:
    """Check ``mask_targets(gt_masks, proposals, matched_idxs, mask_size) -> targets``.

    gt_masks bool or uint8 (G, H, W); proposals float (P, 4) xyxy pixels; matched_idxs int64
    (P,) in [0, G); mask_size M (int). targets: float32 (P, M, M) on the proposals' device,
    ``(roi_align(gt_masks[:, None].float(), rois, (M, M), spatial_scale=1.0,
    aligned=True)[:, 0] >= 0.5).float()`` with ``rois = cat([matched_idxs[:, None],
    proposals], 1)`` and roi_align's default (adaptive) sampling_ratio; P = 0: (0, M, M).
    """


@assignment_check(reference=mask_rcnn.mask_loss, cases=mask_loss_cases, compare=compare_mask_loss)
def check_mask_loss(mask_loss: Callable[..., torch.Tensor], *, quiet: bool = False) -> None:
    """Check ``mask_loss(mask_logits, mask_targets, labels) -> loss``.

    mask_logits float (P, K+1, M, M); mask_targets float (P, M, M) in [0, 1]; labels int64
    (P,) in [1, K] (positive RoIs only). loss: a 0-dim tensor of the logits' dtype and device,
    ``F.binary_cross_entropy_with_logits(mask_logits[arange(P), labels], mask_targets)`` (mean
    over all P * M * M pixels); P = 0: ``mask_logits.sum() * 0``.
    """


@assignment_check(
    reference=mask_rcnn.MaskHead, cases=mask_head_cases, compare=restoring_rng(compare_mask_head)
)
def check_MaskHead(MaskHead: type[nn.Module], *, quiet: bool = False) -> None:
    """Check ``MaskHead(in_channels, num_classes, conv_channels, num_convs)``, a class (an
    nn.Module): pass the class.

    Its attributes: ``convs`` = nn.Sequential(Conv2d(in_channels, conv_channels, 3, padding=1),
    ReLU(), Conv2d(conv_channels, conv_channels, 3, padding=1), ReLU(), ...), num_convs pairs;
    ``upsample`` = nn.ConvTranspose2d(c, conv_channels, 2, stride=2), c the channels after the
    convs; ``predictor`` = nn.Conv2d(conv_channels, num_classes, 1); nothing else with
    parameters. Weights kaiming_normal_(mode="fan_out", nonlinearity="relu"), biases zero.
    ``forward(x (P, in_channels, S, S')) -> predictor(relu(upsample(convs(x))))``, (P,
    num_classes, 2S, 2S'). Run on the CPU with the reference's weights loaded.
    """


@assignment_check(reference=mask_rcnn.paste_masks, cases=paste_masks_cases, compare=compare_paste)
def check_paste_masks(paste_masks: Callable[..., torch.Tensor], *, quiet: bool = False) -> None:
    """Check ``paste_masks(masks, boxes, image_size, threshold=None) -> pasted``.

    masks float (N, M, M) probabilities; boxes float (N, 4) xyxy pixels (possibly partly outside
    the image); image_size (H, W). pasted: (N, H, W) on the masks' device, torchvision's
    ``paste_masks_in_image(masks[:, None], boxes, image_size, padding=1)[:, 0]``: masks padded by
    one pixel, boxes grown by (M + 2) / M about their centre and truncated to ints, each padded
    mask resized bilinearly (align_corners=False) to (y2 - y1 + 1, x2 - x1 + 1) and written at
    (x1, y1), clipped to the image. The masks' dtype, or bool ``>= threshold`` when one is given.
    """


CHECKS = (check_mask_targets, check_mask_loss, check_MaskHead, check_paste_masks)
