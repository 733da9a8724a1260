"""torchvision's detectors, pre-trained on COCO, made ready to fine-tune on a new set of classes.

The "On real photos" sections of notebooks 05 and 12 fine-tune them on Penn-Fudan's pedestrians
(:mod:`course_utils.data.pennfudan`), the task of torchvision's own fine-tuning tutorial. The
weights come only through torchvision's weights enums, so their preprocessing and class names
are the enum's (``weights.transforms()``, ``weights.meta["categories"]``), never hand-copied::

    weights = FasterRCNN_MobileNet_V3_Large_FPN_Weights.DEFAULT     # a download, once
    model = finetunable_faster_rcnn(weights, num_classes=2)         # background + pedestrian
    scratch = finetunable_faster_rcnn(None, num_classes=2)          # every weight random

``weights=None`` builds the same network with random weights everywhere, its backbone included
(no ImageNet download either): what pre-training buys is the difference between the two.
"""

from __future__ import annotations

from enum import Enum

from torch import nn
from torchvision.models.detection import (
    FasterRCNN,
    FasterRCNN_MobileNet_V3_Large_FPN_Weights,
    MaskRCNN,
    MaskRCNN_ResNet50_FPN_Weights,
    fasterrcnn_mobilenet_v3_large_fpn,
    maskrcnn_resnet50_fpn,
)
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

from course_utils.core.validate import check_int
from course_utils.detection.torchvision_mask_rcnn import torchvision_mask_head

__all__ = [
    "category_names",
    "finetunable_faster_rcnn",
    "finetunable_mask_rcnn",
    "pretrained_faster_rcnn",
    "replace_box_predictor",
]


def _check_weights(weights, enum_type: type[Enum], builder: str) -> None:
    """TypeError unless ``weights`` is None or a member of ``enum_type``."""
    if weights is not None and not isinstance(weights, enum_type):
        raise TypeError(
            f"weights must be a {enum_type.__name__} member (e.g. {enum_type.__name__}.DEFAULT, "
            f"{builder}'s COCO weights) or None for random weights, got {weights!r}"
        )


def _check_settings(settings: dict) -> None:
    """ValueError if ``settings`` sets the backbone's weights, which these functions fix."""
    if "weights_backbone" in settings:
        raise ValueError(
            "weights_backbone cannot be passed as a setting: it follows weights (weights=None "
            "means random weights everywhere, the backbone included; nothing is downloaded)"
        )


def category_names(weights: Enum) -> list[str]:
    """The class names a pre-trained model predicts, index = label: ``weights.meta["categories"]``
    (COCO's for the detectors: ``"__background__"``, ``"person"``, ...; ``"N/A"``: unused ids)."""
    meta = getattr(weights, "meta", None)
    if not isinstance(meta, dict) or "categories" not in meta:
        raise TypeError(
            "weights must be a torchvision weights enum member with meta['categories'] "
            f"(e.g. FasterRCNN_MobileNet_V3_Large_FPN_Weights.DEFAULT), got {weights!r}"
        )
    return list(meta["categories"])


def replace_box_predictor(model: FasterRCNN, num_classes: int) -> FasterRCNN:
    """Give ``model`` (a torchvision ``FasterRCNN`` or ``MaskRCNN``) a new, randomly initialised
    box predictor for ``num_classes`` classes, background included: ``FastRCNNPredictor(d,
    num_classes)`` (class scores (R, num_classes), box deltas (R, 4 num_classes)) on the box
    head's d features. Everything else keeps its weights. Returns ``model``."""
    if not isinstance(model, FasterRCNN):
        raise TypeError(
            f"model must be a torchvision FasterRCNN or MaskRCNN, got {type(model).__name__}"
        )
    check_int(num_classes, "num_classes", minimum=2)
    features = model.roi_heads.box_predictor.cls_score.in_features
    model.roi_heads.box_predictor = FastRCNNPredictor(features, num_classes)
    return model


def pretrained_faster_rcnn(
    weights: FasterRCNN_MobileNet_V3_Large_FPN_Weights | None, **settings
) -> FasterRCNN:
    """``fasterrcnn_mobilenet_v3_large_fpn`` as it comes: COCO's 91 class ids (see
    :func:`category_names`) with ``weights``, or random weights everywhere (``None``).
    ``settings``: more keyword arguments of torchvision's builder (``min_size``, ...). Feed it
    images through ``weights.transforms()``."""
    _check_weights(weights, FasterRCNN_MobileNet_V3_Large_FPN_Weights, "Faster R-CNN")
    _check_settings(settings)
    return fasterrcnn_mobilenet_v3_large_fpn(weights=weights, weights_backbone=None, **settings)


def finetunable_faster_rcnn(
    weights: FasterRCNN_MobileNet_V3_Large_FPN_Weights | None, num_classes: int = 2, **settings
) -> FasterRCNN:
    """``fasterrcnn_mobilenet_v3_large_fpn`` with ``weights`` and a new box predictor.

    Args:
        weights: a ``FasterRCNN_MobileNet_V3_Large_FPN_Weights`` member (COCO-trained; a
            download the first time) or ``None``: random weights everywhere, backbone included.
        num_classes: classes of the new task, background included (Penn-Fudan: 2).
        settings: more keyword arguments of torchvision's builder, e.g. ``min_size=512`` (the
            shorter side images are resized to inside the model), ``trainable_backbone_layers``.

    Returns:
        A torchvision ``FasterRCNN``: in train mode ``model(images, targets)`` returns its four
        losses; in eval mode ``model(images)`` one dict of ``boxes`` (xyxy pixels), ``labels``
        (1..num_classes - 1) and ``scores`` per image.
    """
    return replace_box_predictor(pretrained_faster_rcnn(weights, **settings), num_classes)


def finetunable_mask_rcnn(
    weights: MaskRCNN_ResNet50_FPN_Weights | None,
    num_classes: int = 2,
    mask_head: nn.Module | None = None,
    **settings,
) -> MaskRCNN:
    """``maskrcnn_resnet50_fpn`` with ``weights``, a new box predictor and a new mask branch.

    Args:
        weights: a ``MaskRCNN_ResNet50_FPN_Weights`` member (COCO-trained) or ``None`` (random
            weights everywhere, backbone included).
        num_classes: classes of the new task, background included.
        mask_head: ``None`` keeps torchvision's mask head (four 3x3 convs of 256 channels, with
            ``weights``' values) and gives it a new ``MaskRCNNPredictor(256, 256, num_classes)``.
            A module laid out as notebook 12's ``MaskHead`` (``convs``, ``upsample``,
            ``predictor``; input channels 256, output ``num_classes`` masks) replaces the whole
            mask branch instead, with its own weights (:func:`torchvision_mask_head`).
        settings: more keyword arguments of torchvision's builder (``min_size``, ...).

    Returns:
        A torchvision ``MaskRCNN``; in eval mode its dicts add ``masks`` (N, 1, H, W)
        probabilities pasted into the image.
    """
    _check_weights(weights, MaskRCNN_ResNet50_FPN_Weights, "Mask R-CNN")
    _check_settings(settings)
    check_int(num_classes, "num_classes", minimum=2)
    model = replace_box_predictor(
        maskrcnn_resnet50_fpn(weights=weights, weights_backbone=None, **settings), num_classes
    )
    if mask_head is None:
        channels = model.roi_heads.mask_predictor.conv5_mask.in_channels
        model.roi_heads.mask_predictor = MaskRCNNPredictor(channels, 256, num_classes)
        return model
    heads, predictor = torchvision_mask_head(mask_head)
    pooled = model.roi_heads.mask_roi_pool.output_size
    if heads[0][0].in_channels != 256 or predictor.mask_fcn_logits.out_channels != num_classes:
        raise ValueError(
            f"mask_head must take the FPN's 256 channels and predict num_classes = {num_classes} "
            f"masks, got {heads[0][0].in_channels} channels in and "
            f"{predictor.mask_fcn_logits.out_channels} masks out (pooled RoIs are {pooled})"
        )
    model.roi_heads.mask_head, model.roi_heads.mask_predictor = heads, predictor
    return model
