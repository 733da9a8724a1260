"""The network of notebook 07's SSD: a pre-trained trunk, SSD's added layers, the multiscale heads.

The paper builds SSD on VGG-16 (pre-trained on ImageNet) and adds convolutional layers that halve
the feature map again and again; predictions come from 6 maps, 38x38 down to 1x1. The course does
the same at its scale, on the trunk notebook 06's YOLO uses::

    trunk = yolo_network.pretrained_trunk(crop_classifier)    # (N, 3, 128, 128) -> (N, 64, 16, 16)
    maps = SSDFeatureMaps(64, 128)          # -> [(N, 64, 16, 16), (N, 128, 8, 8), (N, 128, 4, 4)]
    heads = SSDHeads(maps.out_channels, boxes_per_location([[2], [2], [2]]), num_classes=4)
    layers = SSDLayers(maps, heads)         # trunk map -> (class_logits, box_deltas)
    model = SSDDetector(trunk, layers, default_boxes(...), image_size=(128, 128))
    detections = model.detect(images)       # decode_ssd on each image

``SSDLayers(maps, heads, use_maps=[2])`` predicts from the last map only (the single-scale
ablation): the other maps are still computed on the way down, but no head reads them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from course_utils.core.tensors import plain
from course_utils.core.validate import check_boxes, check_int
from course_utils.detection.ssd import decode_ssd

__all__ = ["SSDDetector", "SSDFeatureMaps", "SSDLayers"]


def _conv_bn_relu(
    in_channels: int, out_channels: int, stride: int, kernel_size: int = 3
) -> nn.Sequential:
    """conv (no bias, same padding, ``stride``) -> BatchNorm -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False
        ),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SSDFeatureMaps(nn.Module):
    """SSD's added layers. The finest map is the trunk's own, as the paper predicts from VGG's
    conv4_3 (after a normalisation layer; here an ``adapt_kernel`` x ``adapt_kernel`` conv ->
    BatchNorm -> ReLU, so that the frozen features can adapt; 0: the trunk's map as it is). Then
    ``extra_maps`` stride-2 3x3 convs (-> BatchNorm -> ReLU), each halving the map (the paper's
    conv8_2 ... conv11_2).

    (N, in_channels, h, w) -> a list of 1 + ``extra_maps`` maps: (N, in_channels, h, w),
    (N, channels, h/2, w/2), (N, channels, h/4, w/4), ... (sides rounded up).

    Attributes:
        out_channels: the channels of each map, finest first.
    """

    def __init__(
        self, in_channels: int, channels: int, extra_maps: int = 2, adapt_kernel: int = 1
    ) -> None:
        super().__init__()
        check_int(in_channels, "in_channels")
        check_int(channels, "channels")
        check_int(extra_maps, "extra_maps", minimum=0)
        check_int(adapt_kernel, "adapt_kernel", minimum=0)
        self.adapt = (
            _conv_bn_relu(in_channels, in_channels, 1, adapt_kernel)
            if adapt_kernel
            else nn.Identity()
        )
        self.down = nn.ModuleList(
            _conv_bn_relu(in_channels if k == 0 else channels, channels, stride=2)
            for k in range(extra_maps)
        )
        self.out_channels = [in_channels] + [channels] * extra_maps

    def forward(self, trunk_map: torch.Tensor) -> list[torch.Tensor]:
        if not isinstance(trunk_map, torch.Tensor) or trunk_map.ndim != 4:
            raise ValueError("trunk_map must be a (N, C, h, w) tensor")
        if trunk_map.shape[1] != self.out_channels[0]:
            raise ValueError(
                f"trunk_map must have {self.out_channels[0]} channels, got {trunk_map.shape[1]}"
            )
        maps = [self.adapt(trunk_map)]
        for layer in self.down:
            maps.append(layer(maps[-1]))
        return maps


class SSDLayers(nn.Module):
    """Everything SSD adds to the trunk: the feature maps, then the heads on the maps ``use_maps``
    (default: all of them, finest first).

    trunk map (N, C, h, w) -> ``(class_logits (N, D, C + 1), box_deltas (N, D, 4))`` in the order
    of the default boxes of the maps used.
    """

    def __init__(
        self, maps: SSDFeatureMaps, heads: nn.Module, use_maps: Sequence[int] | None = None
    ) -> None:
        super().__init__()
        count = len(maps.out_channels)
        use_maps = list(range(count)) if use_maps is None else list(use_maps)
        if not use_maps or any(not 0 <= k < count for k in use_maps):
            raise ValueError(f"use_maps must be indices in 0..{count - 1}, got {use_maps}")
        self.maps, self.heads, self.use_maps = maps, heads, use_maps

    def forward(self, trunk_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.maps(trunk_map)
        return self.heads([maps[k] for k in self.use_maps])


class SSDDetector(nn.Module):
    """Trunk + :class:`SSDLayers` + the default boxes: images (N, 3, H, W) in [0, 1] ->
    ``(class_logits (N, D, C + 1), box_deltas (N, D, 4))``; :meth:`detect` decodes them.

    Args:
        trunk: (N, 3, H, W) -> the trunk's map.
        layers: :class:`SSDLayers` (or any module of the trunk map returning the two outputs).
        default_boxes: float (D, 4) xyxy pixels, the order of the outputs.
        image_size: (H, W) of the images the default boxes were made for.
    """

    def __init__(
        self,
        trunk: nn.Module,
        layers: nn.Module,
        default_boxes: torch.Tensor,
        image_size: tuple[int, int],
    ) -> None:
        super().__init__()
        self.trunk, self.layers = trunk, layers
        self.register_buffer("default_boxes", check_boxes(plain(default_boxes), "default_boxes"))
        self.image_size = (
            check_int(image_size[0], "image_size[0]"),
            check_int(image_size[1], "image_size[1]"),
        )

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            raise ValueError("images must be a (N, 3, H, W) float tensor")
        if tuple(images.shape[-2:]) != self.image_size:
            raise ValueError(
                f"images must be {self.image_size} (the default boxes' image size), got "
                f"{tuple(images.shape[-2:])}"
            )
        return self.layers(self.trunk(images))

    @torch.no_grad()
    def detect(self, images, **decode_kwargs) -> list[dict]:
        """Detections per image (eval mode, the mode restored): ``decode_ssd`` of each output.

        ``images``: (N, 3, H, W) or a list of (3, H, W), on any device; ``decode_kwargs``:
        ``decode_ssd``'s thresholds. Returns dicts of ``boxes`` (M, 4) xyxy pixels, ``scores``,
        ``labels``, on the images' device.
        """
        batch = images if isinstance(images, torch.Tensor) else torch.stack(list(images))
        batch = plain(batch)
        device = self.default_boxes.device
        was_training = self.training
        self.eval()
        try:
            class_logits, box_deltas = self(batch.to(device))
        finally:
            self.train(was_training)
        return [
            {
                key: value.to(batch.device)
                for key, value in decode_ssd(
                    logits, deltas, self.default_boxes, self.image_size, **decode_kwargs
                ).items()
            }
            for logits, deltas in zip(class_logits, box_deltas)
        ]
