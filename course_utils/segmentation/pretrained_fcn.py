"""torchvision's FCN-ResNet50, pre-trained, on real photos: convolutionalization at full scale.

Notebook 08's "On real photos" section runs it on scikit-image's photos. The weights come only
through ``FCN_ResNet50_Weights`` (a download the first time); the preprocessing is the enum's
``transforms()`` and the class names its ``meta["categories"]`` (PASCAL VOC's 20 classes and the
background)::

    weights = FCN_ResNet50_Weights.DEFAULT
    model = pretrained_fcn(weights)
    labels, scores = segment_photo(model, photo, weights.transforms())
    # labels: int64 (H, W) at the photo's size; scores: (21, h, w), h ~ H' / 8

The network is the slide's idea at full scale: a ResNet-50 whose last two stages are dilated
(output stride 8 instead of 32), then a classifier made only of convolutions, so it takes a photo
of any size and returns a map of class scores, up-sampled bilinearly to the input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models.segmentation import FCN, FCN_ResNet50_Weights, fcn_resnet50

from course_utils.core.validate import check_image

__all__ = ["class_score_map", "pretrained_fcn", "segment_photo"]

#: PASCAL VOC's classes and the background: the size of the model's output when weights=None.
VOC_CLASS_COUNT = 21


def pretrained_fcn(weights: FCN_ResNet50_Weights | None) -> FCN:
    """``fcn_resnet50`` with ``weights`` (an ``FCN_ResNet50_Weights`` member) in eval mode, or
    with random weights everywhere (``None``, backbone included: nothing is downloaded) and the
    same 21 outputs."""
    if weights is not None and not isinstance(weights, FCN_ResNet50_Weights):
        raise TypeError(
            "weights must be an FCN_ResNet50_Weights member (e.g. FCN_ResNet50_Weights.DEFAULT) "
            f"or None for random weights, got {weights!r}"
        )
    if weights is None:
        model = fcn_resnet50(weights=None, weights_backbone=None, num_classes=VOC_CLASS_COUNT)
    else:
        model = fcn_resnet50(weights=weights)
    return model.eval()


def _network_input(model: FCN, photo: torch.Tensor, preprocess) -> torch.Tensor:
    """The preprocessed photo as a batch of one on the model's device: (1, 3, H', W')."""
    if not isinstance(model, FCN):
        raise TypeError(f"model must be a torchvision FCN, got {type(model).__name__}")
    if not callable(preprocess):
        raise TypeError(
            "preprocess must be callable: the weights' transforms, e.g. "
            f"FCN_ResNet50_Weights.DEFAULT.transforms(), got {type(preprocess).__name__}"
        )
    photo = check_image(photo, "photo")
    device = next(model.parameters()).device
    return preprocess(photo.as_subclass(torch.Tensor)).unsqueeze(0).to(device)


def class_score_map(model: FCN, photo: torch.Tensor, preprocess) -> torch.Tensor:
    """The classifier's scores before any up-sampling: float (C, h, w) on the CPU.

    ``photo``: float (3, H, W) in [0, 1]; ``preprocess``: the weights' ``transforms()`` (resize
    to a shorter side of 520 pixels, normalise). ``h, w`` are the resized photo's sides / 8
    (rounded up): one score vector per 8x8 pixels, whatever the photo's size.
    """
    x = _network_input(model, photo, preprocess)
    with torch.no_grad():
        features = model.backbone(x)["out"]
        return model.classifier(features)[0].float().cpu()


def segment_photo(model: FCN, photo: torch.Tensor, preprocess) -> tuple[torch.Tensor, torch.Tensor]:
    """Label every pixel of ``photo`` (float (3, H, W) in [0, 1]).

    Returns ``(labels, scores)``: ``labels`` int64 (H, W), the argmax of the class scores
    up-sampled bilinearly to the photo's own size; ``scores`` float (C, h, w), the coarse map of
    :func:`class_score_map` they came from.
    """
    scores = class_score_map(model, photo, preprocess)
    size = tuple(check_image(photo, "photo").shape[-2:])
    full = F.interpolate(scores[None], size=size, mode="bilinear", align_corners=False)[0]
    return full.argmax(0), scores
