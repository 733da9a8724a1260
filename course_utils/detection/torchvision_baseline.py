"""torchvision's ``FasterRCNN`` built from the course's parts, for a like-for-like comparison.

Notebook 05 compares the Faster R-CNN the students built with the library's: same trunk (a copy of
the same pre-trained weights), same anchors, same region proposal network settings, same
classifier initialisation, images neither resized (``min_size = max_size`` = the scene size) nor
normalised (the course's images are fed as they are)::

    reference = torchvision_faster_rcnn(crop_classifier, image_size=128)
    history = train_detector(reference, data, detection_loss, steps=300,
                             collate_fn=detection_collate)
    detections = detect_with_torchvision(reference, images)

What still differs is torchvision's own design: RoIAlign without the half-pixel correction
(``aligned=False``), no context around the RoIs, smooth L1 with beta 1/9 in the head, and its box
regressor's default initialisation (the course's: Gaussian, std 0.001, as Fast R-CNN's paper).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN as TorchvisionFasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign

from course_utils.core.tensors import plain
from course_utils.core.validate import check_int
from course_utils.detection.fast_rcnn import trunk_from_classifier
from course_utils.detection.faster_rcnn import RPNSettings

__all__ = [
    "detect_with_torchvision",
    "torchvision_detector_options",
    "torchvision_faster_rcnn",
]


class _Backbone(nn.Sequential):
    """The trunk with the ``out_channels`` attribute torchvision's detectors read."""

    out_channels: int


def torchvision_detector_options(
    classifier: nn.Module,
    *,
    image_size: int = 128,
    anchor_sizes: Sequence[float] = (16, 32, 64),
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    rpn: RPNSettings = RPNSettings(),
    rois_per_image: int = 64,
    score_threshold: float = 0.01,
    nms_threshold: float = 0.3,
    max_detections: int = 100,
) -> tuple[nn.Module, dict]:
    """The backbone and the keyword arguments shared by torchvision's ``FasterRCNN`` and
    ``MaskRCNN`` (both take ``(backbone, num_classes=None, **options)``), built from the crop
    classifier as :func:`torchvision_faster_rcnn` describes."""
    check_int(image_size, "image_size")
    trunk, _, pooled_size = trunk_from_classifier(classifier)
    backbone = _Backbone(*trunk)
    last = [m for m in classifier.head.modules() if isinstance(m, nn.Linear)][-1]
    backbone.out_channels = last.in_features // pooled_size**2
    predictor = FastRCNNPredictor(last.in_features, last.out_features)
    predictor.cls_score.load_state_dict(copy.deepcopy(last.state_dict()))
    predictor.to(last.weight.device)
    anchors = AnchorGenerator((tuple(anchor_sizes),), (tuple(aspect_ratios),))
    options = dict(
        min_size=image_size,
        max_size=image_size,
        image_mean=[0.0, 0.0, 0.0],
        image_std=[1.0, 1.0, 1.0],
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=rpn.pre_nms_top_n[0],
        rpn_pre_nms_top_n_test=rpn.pre_nms_top_n[1],
        rpn_post_nms_top_n_train=rpn.post_nms_top_n[0],
        rpn_post_nms_top_n_test=rpn.post_nms_top_n[1],
        rpn_nms_thresh=rpn.nms_threshold,
        rpn_fg_iou_thresh=rpn.fg_iou,
        rpn_bg_iou_thresh=rpn.bg_iou,
        rpn_batch_size_per_image=rpn.batch_size_per_image,
        rpn_positive_fraction=rpn.positive_fraction,
        box_roi_pool=MultiScaleRoIAlign(["0"], output_size=pooled_size, sampling_ratio=2),
        box_head=nn.Flatten(),
        box_predictor=predictor,
        box_batch_size_per_image=rois_per_image,
        box_positive_fraction=0.25,
        box_score_thresh=score_threshold,
        box_nms_thresh=nms_threshold,
        box_detections_per_img=max_detections,
    )
    return backbone, options


def torchvision_faster_rcnn(classifier: nn.Module, **settings) -> TorchvisionFasterRCNN:
    """``torchvision.models.detection.FasterRCNN`` on the crop classifier's trunk.

    The trunk is :func:`~course_utils.detection.fast_rcnn.trunk_from_classifier`'s (a copy, frozen
    BatchNorm); RoIAlign pools to the grid the classifier's linear layer expects, which becomes the
    classification layer (a new box regressor beside it), as ``FastRCNN.from_classifier`` does.
    ``settings`` are :func:`torchvision_detector_options`' keyword arguments: the image size, the
    anchors, the RPN (``rpn``) and the RoI sampling (``rois_per_image``, 25 % positives), the
    detections' score and NMS thresholds and their number per image.
    """
    backbone, options = torchvision_detector_options(classifier, **settings)
    model = TorchvisionFasterRCNN(backbone, num_classes=None, **options)
    return model.to(options["box_predictor"].cls_score.weight.device)


@torch.no_grad()
def detect_with_torchvision(
    model: TorchvisionFasterRCNN, images: Sequence[torch.Tensor]
) -> list[dict]:
    """The model's detections (``{"boxes", "scores", "labels"}`` per image) in eval mode, the
    previous mode restored; computed on the model's device, returned on each image's."""
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    try:
        outputs = model([plain(image).to(device) for image in images])
    finally:
        model.train(was_training)
    return [
        {key: value.to(image.device) for key, value in output.items()}
        for image, output in zip(images, outputs)
    ]
