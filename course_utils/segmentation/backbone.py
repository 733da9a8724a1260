"""The FCN's front-end: a tiny VGG-like backbone of five stages, small enough for a CPU.

:class:`TinyBackbone` maps images float ``(B, 3, H, W)`` to a dict of feature maps
``{"pool1": ..., "pool5": ...}`` at strides 2, 4, 8, 16, 32 (the maps FCN's skips read);
``replace_stride_with_dilation`` turns stages 4 and 5 into dilated stages (Yu & Koltun's
front-end, notebook 10). :func:`conv_bn_relu` is its building block.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from course_utils.core.validate import check_int

__all__ = ["TinyBackbone", "conv_bn_relu"]


def conv_bn_relu(
    in_channels: int, out_channels: int, dilation: int = 1, stride: int = 1
) -> nn.Sequential:
    """3x3 convolution (padding = dilation keeps the size at stride 1) + BatchNorm + ReLU.

    ``(B, in_channels, H, W)`` -> ``(B, out_channels, H / stride, W / stride)``.
    """
    return nn.Sequential(
        nn.Conv2d(
            in_channels,
            out_channels,
            3,
            stride=stride,
            padding=dilation,
            dilation=dilation,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class TinyBackbone(nn.Module):
    """A VGG-like front-end: five stages of ``convs_per_stage`` x conv-BN-ReLU + 2x2 max-pool.

    Stage 1 is a stride-2 convolution instead of conv + pool (the full-resolution layers
    are what costs most on a CPU).

    ``forward(images (B, 3, H, W))`` returns a dict ``{"pool1": ..., "pool5": ...}`` of
    feature maps; with the default strides ``pool_k`` is ``(B, channels[k-1], H/2**k, W/2**k)``
    (128 px -> 64, 32, 16, 8, 4). ``replace_stride_with_dilation=(d4, d5)``: drop the pool of
    stage 4 and/or 5 and dilate every later 3x3 convolution instead (Yu & Koltun's
    front-end), so the map keeps its resolution while the receptive field grows as before.
    ``strides`` and ``out_channels`` name each output's stride and width; ``dilation`` is
    the dilation a layer on top of ``pool5`` should use.
    """

    def __init__(
        self,
        channels: Sequence[int] = (16, 32, 48, 64, 96),
        convs_per_stage: int = 1,
        in_channels: int = 3,
        replace_stride_with_dilation: Sequence[bool] = (False, False),
    ) -> None:
        super().__init__()
        channels = tuple(channels)
        if len(channels) != 5:
            raise ValueError(f"channels must give 5 stage widths, got {channels}")
        for width in channels:
            check_int(width, "channels[i]")
        check_int(convs_per_stage, "convs_per_stage")
        check_int(in_channels, "in_channels")
        dilate = tuple(bool(d) for d in replace_stride_with_dilation)
        if len(dilate) != 2:
            raise ValueError(
                f"replace_stride_with_dilation must be 2 booleans (stages 4, 5), got {dilate}"
            )
        self.stages = nn.ModuleDict()
        self.strides: dict[str, int] = {}
        self.out_channels: dict[str, int] = {}
        # the stem: a stride-2 convolution instead of conv + pool at full resolution
        stem = [conv_bn_relu(in_channels, channels[0], stride=2)]
        stem += [conv_bn_relu(channels[0], channels[0]) for _ in range(convs_per_stage - 1)]
        self._add_stage("pool1", stem, 2, channels[0])
        stride, dilation, previous = 2, 1, channels[0]
        for index, width in enumerate(channels[1:], start=2):
            layers = [
                conv_bn_relu(previous if i == 0 else width, width, dilation)
                for i in range(convs_per_stage)
            ]
            if index >= 4 and dilate[index - 4]:
                dilation *= 2
            else:
                layers.append(nn.MaxPool2d(2))
                stride *= 2
            self._add_stage(f"pool{index}", layers, stride, width)
            previous = width
        self.dilation = dilation

    def _add_stage(self, name: str, layers: list[nn.Module], stride: int, width: int) -> None:
        self.stages[name] = nn.Sequential(*layers)
        self.strides[name], self.out_channels[name] = stride, width

    @property
    def total_stride(self) -> int:
        """The stride of ``pool5`` (32, or 16 / 8 with dilation)."""
        return self.strides["pool5"]

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``images`` float ``(B, 3, H, W)`` -> ``{"pool1": (B, C1, H/2, W/2), ...}``."""
        features = {}
        x = images
        for name, stage in self.stages.items():
            x = stage(x)
            features[name] = x
        return features
