"""torchvision's ``SSD`` on the course's parts, for a like-for-like comparison in notebook 07.

The course's SSD trains its added layers on the frozen trunk's maps, computed once. torchvision's
``SSD`` runs its backbone on whatever it is given, so it is given those same maps as its
"images", with the boxes measured in map pixels (image pixels / ``stride``). Nothing changes for
the network: default boxes, IoUs and box coding are all relative to the image size, so the same
layers see the same inputs and the same targets. Its backbone is a copy of the same
:class:`~course_utils.detection.ssd_network.SSDFeatureMaps`, its head torchvision's ``SSDHead``
with the course's heads' weights; the maps are neither resized nor normalised::

    reference = torchvision_ssd(layers, aspect_ratios=[[2], [2], [2]], scales=(...),
                                map_size=(16, 16), num_classes=4)
    history = train_with_loss(reference, data, torchvision_ssd_loss, steps=200,
                              collate_fn=feature_collate, stride=8)
    detections = detect_with_torchvision_ssd(reference, maps, stride=8)   # image pixels

Only torchvision's own code then differs: its matching, hard negative mining, loss and decoding.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.ssd import SSD, SSDHead

from course_utils.core.tensors import plain
from course_utils.core.validate import check_int, check_number

__all__ = ["detect_with_torchvision_ssd", "torchvision_ssd", "torchvision_ssd_loss"]


class _MapsBackbone(nn.Module):
    """An ``SSDFeatureMaps`` whose list of maps is returned as torchvision's ``OrderedDict``."""

    def __init__(self, maps: nn.Module) -> None:
        super().__init__()
        self.maps = maps
        self.out_channels = list(maps.out_channels)

    def forward(self, x: torch.Tensor) -> OrderedDict:
        return OrderedDict((str(k), value) for k, value in enumerate(self.maps(x)))


def torchvision_ssd(
    layers: nn.Module,
    *,
    aspect_ratios: Sequence[Sequence[float]],
    scales: Sequence[float],
    map_size: tuple[int, int],
    num_classes: int,
) -> SSD:
    """``torchvision.models.detection.SSD`` with copies of ``layers``' feature maps and heads.

    Args:
        layers: an :class:`~course_utils.detection.ssd_network.SSDLayers` predicting from all of
            its maps (its current weights are copied: train a fresh one, or the same start).
        aspect_ratios: K lists of ratios r > 1, as ``ssd_boxes.default_boxes``.
        scales: K + 1 scales s_0..s_K, fractions of the image.
        map_size: (h, w) of the trunk's map, torchvision's "image" size.
        num_classes: C + 1, background included.
    """
    maps, heads = getattr(layers, "maps", None), getattr(layers, "heads", None)
    if (
        maps is None
        or heads is None
        or list(getattr(layers, "use_maps", [])) != list(range(len(maps.out_channels)))
    ):
        raise TypeError("layers must be an SSDLayers predicting from all of its maps")
    check_int(num_classes, "num_classes (C + 1, background included)", 2)
    size = (check_int(map_size[0], "map_size[0]"), check_int(map_size[1], "map_size[1]"))
    generator = DefaultBoxGenerator([list(r) for r in aspect_ratios], scales=list(scales))
    head = SSDHead(maps.out_channels, generator.num_anchors_per_location(), num_classes)
    for ours, theirs in (
        (heads.classification, head.classification_head.module_list),
        (heads.regression, head.regression_head.module_list),
    ):
        theirs.load_state_dict(copy.deepcopy(ours.state_dict()))
    channels = maps.out_channels[0]
    model = SSD(
        _MapsBackbone(copy.deepcopy(maps)),
        generator,
        (size[1], size[0]),  # torchvision's fixed size is (W, H)
        num_classes,
        image_mean=[0.0] * channels,
        image_std=[1.0] * channels,
        head=head,
    )
    return model.to(next(layers.parameters()).device)


def _scaled_targets(targets: Sequence[dict], stride: float, device) -> list[dict]:
    """The targets with their boxes divided by ``stride`` (map pixels), on ``device``."""
    return [
        {
            "boxes": plain(t["boxes"]).float().to(device) / stride,
            "labels": plain(t["labels"]).to(device),
        }
        for t in targets
    ]


def torchvision_ssd_loss(model: SSD, batch, *, stride: float) -> dict[str, torch.Tensor]:
    """``loss_fn`` for the shared loop on ``feature_collate`` batches ``(maps (N, C, h, w),
    targets)`` (boxes in image pixels): torchvision's two losses, ``classification`` and
    ``bbox_regression``."""
    check_number(stride, "stride", 0, None, open_minimum=True)
    maps, targets = batch
    return model(list(maps), _scaled_targets(targets, stride, maps.device))


@torch.no_grad()
def detect_with_torchvision_ssd(model: SSD, maps: torch.Tensor, stride: float) -> list[dict]:
    """torchvision's detections on the trunk's ``maps`` (N, C, h, w), in eval mode (the mode
    restored), with boxes back in image pixels (times ``stride``); on the CPU."""
    check_number(stride, "stride", 0, None, open_minimum=True)
    if not isinstance(maps, torch.Tensor) or maps.ndim != 4:
        raise ValueError("maps must be the trunk's (N, C, h, w) feature maps")
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    try:
        outputs = model(list(maps.to(device)))
    finally:
        model.train(was_training)
    return [
        {
            "boxes": output["boxes"].cpu() * stride,
            "scores": output["scores"].cpu(),
            "labels": output["labels"].cpu(),
        }
        for output in outputs
    ]
