"""The network of notebook 06's YOLO: a pre-trained trunk, YOLO's added layers, and two heads.

The paper pre-trains 20 convolutional layers on ImageNet, then adds 4 convolutional layers and
the fully connected head (:class:`~course_utils.detection.yolo.YOLOHead`) and trains them on
detection. The course does the same at its scale::

    trunk = pretrained_trunk(crop_classifier)        # (N, 3, 128, 128) -> (N, 64, 16, 16)
    neck = grid_features(64, 64, grid_size=7)        # -> (N, 64, 7, 7), one vector per cell
    head = YOLOHead(64 * 7 * 7, 7, 2, 3)             # the paper's: fully connected
    head = YOLOConvHead(64, 2, 3)                    # or the same numbers from 1x1 convolutions
    model = YOLOv1(torch.nn.Sequential(trunk, neck), head)

Both heads return the grid output ``(N, S, S, B * 5 + C)`` of :mod:`~course_utils.detection.yolo`.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from course_utils.core.validate import check_int

__all__ = ["YOLOConvHead", "grid_features", "pretrained_trunk"]


def pretrained_trunk(classifier: nn.Module) -> nn.Sequential:
    """A frozen copy of a crop classifier's convolutional blocks (``classifier.features`` without
    its final ``nn.Flatten``), in eval mode: (N, 3, H, W) -> (N, D, H / 8, W / 8) for the
    course's ``CropClassifier`` (D = 4 * width)."""
    features = getattr(classifier, "features", None)
    if not isinstance(features, nn.Sequential) or not isinstance(features[-1], nn.Flatten):
        raise TypeError(
            "classifier must be a CropClassifier-like module whose .features is an nn.Sequential "
            f"ending with nn.Flatten, got {type(classifier).__name__}"
        )
    trunk = copy.deepcopy(features[:-1]).eval()
    trunk.requires_grad_(False)
    return trunk


def grid_features(in_channels: int, out_channels: int, grid_size: int = 7) -> nn.Sequential:
    """YOLO's added convolutional layers, scaled down: 3x3 conv (no bias) -> BatchNorm -> leaky
    ReLU (0.1), then adaptive average pooling to the S x S grid: (N, in_channels, h, w) ->
    (N, out_channels, S, S), one feature vector per grid cell."""
    check_int(in_channels, "in_channels")
    check_int(out_channels, "out_channels")
    check_int(grid_size, "grid_size")
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.1),
        nn.AdaptiveAvgPool2d(grid_size),
    )


class YOLOConvHead(nn.Module):
    """The fully connected head's output from the same small layers at every cell:
    ``hidden`` 1x1 conv -> leaky ReLU (0.1) -> 1x1 conv to B * 5 + C channels, then moved to
    the grid layout: (N, D, S, S) -> (N, S, S, B * 5 + C). Each cell sees only its own feature
    vector (and what the trunk's receptive field put in it), with weights shared by all cells,
    as in YOLOv2 and SSD."""

    def __init__(
        self, in_channels: int, boxes_per_cell: int = 2, num_classes: int = 3, hidden: int = 128
    ) -> None:
        super().__init__()
        for value, name in (
            (in_channels, "in_channels"),
            (boxes_per_cell, "boxes_per_cell"),
            (num_classes, "num_classes"),
            (hidden, "hidden"),
        ):
            check_int(value, name)
        self.boxes_per_cell = boxes_per_cell
        self.conv1 = nn.Conv2d(in_channels, hidden, kernel_size=1)
        self.conv2 = nn.Conv2d(hidden, 5 * boxes_per_cell + num_classes, kernel_size=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.ndim != 4:
            raise ValueError(f"features must be (N, D, S, S), got {tuple(features.shape)}")
        hidden = nn.functional.leaky_relu(self.conv1(features), 0.1)
        return self.conv2(hidden).permute(0, 2, 3, 1)
