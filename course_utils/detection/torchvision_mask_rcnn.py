"""torchvision's ``MaskRCNN`` built from the course's parts, for a like-for-like comparison.

Notebook 12 compares the Mask R-CNN the students built with the library's, as notebook 05 does
for Faster R-CNN (:mod:`~course_utils.detection.torchvision_baseline`): the same pre-trained trunk,
anchors, RPN settings and classifier initialisation, plus a mask branch with the same layers and
the same initial weights as the course's :class:`~course_utils.detection.mask_rcnn.MaskHead`::

    reference = torchvision_mask_rcnn(crop_classifier, mask_head=model.mask_head, image_size=128)
    train_detector(reference, data, detection_loss, steps=200, collate_fn=detection_collate)
    detections = detect_with_torchvision(reference, images)   # + "masks" (N, 1, H, W)

What still differs is torchvision's own code: RoIAlign without the half-pixel correction in both
branches, *soft* mask targets cut with ``aligned=False``, no context around the box head's RoIs.
"""

from __future__ import annotations

import copy

from torch import nn
from torchvision.models.detection import MaskRCNN as TorchvisionMaskRCNN
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign

from course_utils.core.validate import check_int
from course_utils.detection.torchvision_baseline import torchvision_detector_options

__all__ = ["torchvision_mask_head", "torchvision_mask_rcnn"]


def _mask_head_layers(
    mask_head: nn.Module,
) -> tuple[list[nn.Conv2d], nn.ConvTranspose2d, nn.Conv2d]:
    """The 3x3 convs, the transposed conv and the predictor of a head laid out as the course's
    :class:`~course_utils.detection.mask_rcnn.MaskHead` (the student's class of notebook 12 too:
    attributes ``convs``, ``upsample``, ``predictor``)."""
    layers = [getattr(mask_head, name, None) for name in ("convs", "upsample", "predictor")]
    convs, upsample, predictor = layers
    if not (
        isinstance(convs, nn.Sequential)
        and isinstance(upsample, nn.ConvTranspose2d)
        and isinstance(predictor, nn.Conv2d)
    ):
        raise TypeError(
            "mask_head must be laid out as MaskHead: convs (nn.Sequential of Conv2d and ReLU), "
            f"upsample (nn.ConvTranspose2d), predictor (nn.Conv2d); got {type(mask_head).__name__}"
        )
    return [layer for layer in convs if isinstance(layer, nn.Conv2d)], upsample, predictor


def torchvision_mask_head(mask_head: nn.Module) -> tuple[MaskRCNNHeads, MaskRCNNPredictor]:
    """torchvision's ``MaskRCNNHeads`` and ``MaskRCNNPredictor`` with the layers and the weights
    (copies) of ``mask_head``, a :class:`~course_utils.detection.mask_rcnn.MaskHead` or a class
    laid out like it: 3x3 convs + ReLU, a 2x transposed conv + ReLU, a 1x1 conv to one mask per
    class. Same input (P, D, S, S), same output (P, K+1, 2S, 2S)."""
    convs, upsample, predictor_conv = _mask_head_layers(mask_head)
    if not convs:
        raise ValueError("torchvision's MaskRCNNHeads needs at least one conv (num_convs >= 1)")
    heads = MaskRCNNHeads(convs[0].in_channels, [conv.out_channels for conv in convs], 1)
    for block, conv in zip(heads, convs):
        block[0].load_state_dict(copy.deepcopy(conv.state_dict()))
    predictor = MaskRCNNPredictor(
        upsample.in_channels, upsample.out_channels, predictor_conv.out_channels
    )
    predictor.conv5_mask.load_state_dict(copy.deepcopy(upsample.state_dict()))
    predictor.mask_fcn_logits.load_state_dict(copy.deepcopy(predictor_conv.state_dict()))
    device = upsample.weight.device
    return heads.to(device), predictor.to(device)


def torchvision_mask_rcnn(
    classifier: nn.Module, *, mask_head: nn.Module, mask_pooled_size: int = 8, **settings
) -> TorchvisionMaskRCNN:
    """``torchvision.models.detection.MaskRCNN`` on the crop classifier's trunk.

    Everything but the mask branch is :func:`~course_utils.detection.torchvision_baseline.
    torchvision_faster_rcnn`'s: ``settings`` are its keyword arguments (``image_size``,
    ``anchor_sizes``, ``aspect_ratios``, ``rpn``, ``rois_per_image``, ``score_threshold``,
    ``nms_threshold``, ``max_detections``). The mask branch pools each RoI to
    ``mask_pooled_size`` x ``mask_pooled_size`` with RoIAlign (sampling ratio 2) and runs
    :func:`torchvision_mask_head` (copies of ``mask_head``'s weights), so both detectors start
    from the same mask head. Images are neither resized nor normalised.
    """
    size = check_int(mask_pooled_size, "mask_pooled_size")
    heads, predictor = torchvision_mask_head(mask_head)
    backbone, options = torchvision_detector_options(classifier, **settings)
    model = TorchvisionMaskRCNN(
        backbone,
        num_classes=None,
        mask_roi_pool=MultiScaleRoIAlign(["0"], output_size=size, sampling_ratio=2),
        mask_head=heads,
        mask_predictor=predictor,
        **options,
    )
    return model.to(options["box_predictor"].cls_score.weight.device)
