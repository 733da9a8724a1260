"""Fast R-CNN (Girshick, ICCV 2015): one feature map per image, RoI pooling, two sibling heads.

R-CNN runs its CNN once per proposal. Fast R-CNN runs the convolutional trunk once per image and
cuts each proposal's features out of the shared map with **RoI max pooling** to a fixed grid;
two sibling layers read the pooled features: a softmax classifier over K+1 classes and a
class-specific box regressor::

    model = FastRCNN.from_classifier(crop_classifier)   # trunk + RoI pool + two heads
    logits, deltas = model(images, proposals)           # (R, K+1), (R, K+1, 4)
    detections = model.detect(images, proposals)       # list of {"boxes", "scores", "labels"}

The head after the shared map (RoI pooling, flatten, dropout, the two siblings) is the function
:func:`fast_rcnn_head`, which ``FastRCNN(..., head_fn=...)`` replaces (notebook 04's assignment).

As in the paper, the pre-trained network's *last max-pooling layer* is replaced by RoI pooling to
the grid its first fully connected layer expects (7x7 for VGG16; here (S/8, S/8) = 4x4 for
32-pixel crops), and its last layer becomes the classifier sibling. Boxes are float (N, 4)
``(x1, y1, x2, y2)`` in absolute pixels; images float (C, H, W) in [0, 1]. Training (the
multi-task loss, RoI sampling, the dataset) is in ``fast_rcnn_training``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align, roi_pool
from torchvision.ops.misc import FrozenBatchNorm2d

from course_utils.core.tensors import plain
from course_utils.core.validate import check_int
from course_utils.detection.rcnn import postprocess_detections
from course_utils.detection.warped_regions import dilate_boxes

__all__ = ["BOX_WEIGHTS", "FastRCNN", "fast_rcnn_head", "to_inclusive", "trunk_from_classifier"]

#: Box-coding weights of Fast R-CNN's targets: dividing (tx, ty, tw, th) by their typical spread
#: (0.1, 0.1, 0.2, 0.2), as the paper's "normalized to zero mean and unit variance" targets
#: (py-faster-rcnn).
BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


def _freeze_batchnorm(module: nn.Module) -> None:
    """Replace every BatchNorm2d inside ``module`` by a FrozenBatchNorm2d with the same statistics,
    in place."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.weight.copy_(child.weight.detach())
            frozen.bias.copy_(child.bias.detach())
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            _freeze_batchnorm(child)


def to_inclusive(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes (N, 4) with an exclusive right/bottom edge (x2 = last pixel + 1, the course's and
    torchvision's convention) as ``roi_pool`` reads them: Caffe's pixel-inclusive (x1, y1, x2 - 1,
    y2 - 1), at least 1 pixel.

    ``torchvision.ops.roi_pool``, like the paper's Caffe layer, counts ``round(x2 * scale)`` as the
    RoI's last cell; passing the exclusive x2 would add up to one cell on the right and at the
    bottom.
    """
    boxes = plain(boxes)
    x2 = torch.maximum(boxes[:, 2] - 1, boxes[:, 0])
    y2 = torch.maximum(boxes[:, 3] - 1, boxes[:, 1])
    return torch.stack([boxes[:, 0], boxes[:, 1], x2, y2], dim=1)


def trunk_from_classifier(
    classifier: nn.Module, freeze_batchnorm: bool = True
) -> tuple[nn.Sequential, float, int]:
    """The convolutional trunk of a crop classifier with its last max-pooling layer removed.

    ``classifier.features`` must be an ``nn.Sequential`` of convolutional blocks containing
    ``nn.MaxPool2d`` layers (2x2), optionally ending with ``nn.Flatten`` (``CropClassifier``).
    Returns a deep copy ``(trunk, spatial_scale, pooled_size)``: trunk maps (B, C, H, W) to a
    feature map at ``spatial_scale`` = 1 / 2^(pools - 1), and ``pooled_size`` = crop_size / 2^pools
    is the grid the classifier's head expects (``classifier.crop_size`` is needed for it).

    With ``freeze_batchnorm`` every BatchNorm2d becomes ``torchvision.ops.misc.FrozenBatchNorm2d``
    (the statistics learned on crops, fixed), as torchvision's detection backbones do: batch
    statistics of a few whole scenes differ from those of object crops, and would wreck the
    pre-trained features.
    """
    features = getattr(classifier, "features", None)
    if not isinstance(features, nn.Sequential):
        raise TypeError(
            "classifier.features must be an nn.Sequential of conv blocks (like CropClassifier)"
        )
    trunk = copy.deepcopy(features)
    if len(trunk) and isinstance(trunk[-1], nn.Flatten):
        trunk = trunk[:-1]
    pools = [
        (name, module) for name, module in trunk.named_modules() if isinstance(module, nn.MaxPool2d)
    ]
    if not pools:
        raise ValueError(
            "classifier.features has no nn.MaxPool2d layer to replace with RoI pooling"
        )
    for _, pool in pools:
        if pool.kernel_size not in (2, (2, 2)) or pool.stride not in (2, (2, 2)):
            raise ValueError("trunk_from_classifier expects 2x2 max pooling with stride 2")
    last_name = pools[-1][0]
    parent = trunk.get_submodule(last_name.rsplit(".", 1)[0]) if "." in last_name else trunk
    setattr(parent, last_name.rsplit(".", 1)[-1], nn.Identity())
    if freeze_batchnorm:
        with torch.no_grad():
            _freeze_batchnorm(trunk)
    crop_size = getattr(classifier, "crop_size", None)
    if not isinstance(crop_size, int):
        raise ValueError("classifier.crop_size (an int) is needed to know the head's input grid")
    return trunk, 1.0 / 2 ** (len(pools) - 1), crop_size // 2 ** len(pools)


def fast_rcnn_head(
    maps: list[torch.Tensor] | torch.Tensor,
    proposals: Sequence[torch.Tensor],
    pool: Callable[..., torch.Tensor],
    dropout: nn.Module,
    cls_score: nn.Module,
    bbox_pred: nn.Module,
    num_classes: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fast R-CNN's head on the shared feature map(s): ``(class_logits, box_deltas)``.

    ``pooled = pool(maps, proposals)``: every image's proposals RoI-pooled to the fixed grid,
    float (R, D, s, s), concatenated in image order (R = sum of P_i; an image may have none).
    Each RoI's features are flattened, channel-major as the pre-trained linear layer reads them:
    (R, D * s * s); then ``dropout`` once, and the two sibling linear layers on the same
    features: ``cls_score`` -> logits (R, K+1), no softmax (the loss takes logits), and
    ``bbox_pred`` -> (R, 4(K+1)) reshaped to class-specific deltas (R, K+1, 4), class c's box in
    columns 4c..4c+3. ``num_classes`` = K + 1 (an int >= 2). Only calls the layers given.
    """
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    pooled = dropout(pool(maps, proposals).flatten(1))
    return cls_score(pooled), bbox_pred(pooled).reshape(-1, num_classes, 4)


class FastRCNN(nn.Module):
    """Fast R-CNN: convolutional trunk -> RoI max pooling -> [softmax classifier, box regressor].

    Args:
        trunk: (B, C, H, W) images -> (B, D, H', W') feature map at ``spatial_scale``.
        spatial_scale: H' / H (e.g. 1/4).
        pooled_size: side of the RoI pooling grid.
        feature_dim: D * pooled_size^2, the length of a flattened pooled RoI.
        num_classes: K + 1, background included.
        context: each RoI is grown by this fraction of its width/height on every side before pooling
            (``warped_regions.dilate_boxes``), so that a pooled RoI is framed like the
            crops the trunk was pre-trained on (``CropDataset``'s context 0.25) and like R-CNN's
            warped regions. Box targets stay relative to the RoI itself.
        scales: image scales of the feature pyramid; (1.0,) is single-scale Fast R-CNN. With
            several, each RoI is pooled from the scale at which its (grown) side is closest to
            ``canonical_size`` pixels: the paper's multi-scale test (section 5.2), which it calls
            "brute force" scale invariance.
        canonical_size: the RoI side (pixels) the head is made for; default the pre-training crop
            size, ``2 * pooled_size / spatial_scale``.
        pooling: ``"max"``: the paper's RoI max pooling (``torchvision.ops.roi_pool``, corners
            rounded to the feature grid, :func:`to_inclusive` boxes); ``"align"``: RoIAlign
            (``torchvision.ops.roi_align``, bilinear sampling, no rounding; Mask R-CNN, notebook
            12), for comparison.
        dropout: before the two sibling layers.
        head_fn: the head after the shared map, called as ``head_fn(maps, proposals, self.pool,
            self.dropout, self.cls_score, self.bbox_pred, self.num_classes)`` with the signature
            of :func:`fast_rcnn_head` (the default). It only calls the model's layers, so another
            function (a student's) keeps the same parameters and ``state_dict`` keys.
        score_threshold, nms_threshold, max_detections: for :meth:`detect`.
    """

    def __init__(
        self,
        trunk: nn.Module,
        *,
        spatial_scale: float,
        pooled_size: int,
        feature_dim: int,
        num_classes: int,
        context: float = 0.25,
        scales: Sequence[float] = (1.0,),
        canonical_size: float | None = None,
        pooling: str = "max",
        dropout: float = 0.1,
        head_fn: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None,
        score_threshold: float = 0.01,
        nms_threshold: float = 0.3,
        max_detections: int = 100,
    ) -> None:
        super().__init__()
        if not 0 < spatial_scale <= 1:
            raise ValueError(f"spatial_scale must lie in (0, 1], got {spatial_scale}")
        scales = tuple(float(scale) for scale in scales)
        if not scales or not all(0 < scale <= 4 for scale in scales):
            raise ValueError(
                f"scales must be a non-empty list of image scales in (0, 4], got {scales}"
            )
        self.scales = scales
        if pooling not in ("max", "align"):
            raise ValueError(
                f"pooling must be 'max' (RoI max pooling) or 'align' (RoIAlign), got {pooling!r}"
            )
        self.pooling = pooling
        if head_fn is not None and not callable(head_fn):
            raise TypeError(
                f"head_fn must be a function like fast_rcnn_head, got {type(head_fn).__name__}"
            )
        self.head_fn = fast_rcnn_head if head_fn is None else head_fn
        self.canonical_size = (
            float(canonical_size) if canonical_size is not None else 2 * pooled_size / spatial_scale
        )
        self.trunk = trunk
        self.spatial_scale, self.pooled_size, self.num_classes = (
            float(spatial_scale),
            int(pooled_size),
            num_classes,
        )
        dilate_boxes(torch.zeros(0, 4), context)  # validates context
        self.context = float(context)
        self.dropout = nn.Dropout(dropout)
        self.cls_score = nn.Linear(feature_dim, num_classes)
        self.bbox_pred = nn.Linear(feature_dim, 4 * num_classes)
        nn.init.normal_(
            self.bbox_pred.weight, std=0.001
        )  # the paper's initialisation of the new layers
        nn.init.zeros_(self.bbox_pred.bias)
        self.score_threshold, self.nms_threshold, self.max_detections = (
            score_threshold,
            nms_threshold,
            max_detections,
        )

    @classmethod
    def from_classifier(cls, classifier: nn.Module, **kwargs) -> FastRCNN:
        """Build from a pre-trained crop classifier (``CropClassifier``): its trunk
        (:func:`trunk_from_classifier`, ``freeze_batchnorm=True`` unless given), and its last linear
        layer as the classifier sibling (the box regressor is new). The classifier itself is not
        modified; other ``kwargs`` go to the constructor."""
        freeze = kwargs.pop("freeze_batchnorm", True)
        trunk, spatial_scale, pooled_size = trunk_from_classifier(classifier, freeze)
        linears = [module for module in classifier.head.modules() if isinstance(module, nn.Linear)]
        if not linears:
            raise ValueError(
                "classifier.head has no nn.Linear layer to reuse as the classifier sibling"
            )
        last = linears[-1]
        model = cls(
            trunk,
            spatial_scale=spatial_scale,
            pooled_size=pooled_size,
            feature_dim=last.in_features,
            num_classes=last.out_features,
            **kwargs,
        )
        model.cls_score.load_state_dict(copy.deepcopy(last.state_dict()))
        return model.to(last.weight.device)  # the new box regressor joins the classifier's device

    def _batch(self, images: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        if isinstance(images, torch.Tensor) and images.ndim == 4:
            return plain(images)
        if not len(images):
            raise ValueError("images must not be empty")
        shapes = {tuple(image.shape) for image in images}
        if len(shapes) != 1:
            raise ValueError(f"images must all have the same size, got {sorted(shapes)}")
        return torch.stack([plain(image) for image in images])

    @property
    def device(self) -> torch.device:
        """The device of the model's weights: images and proposals are moved there."""
        return next(self.parameters()).device

    def feature_map(
        self, images: Sequence[torch.Tensor] | torch.Tensor, scale: float = 1.0
    ) -> torch.Tensor:
        """The shared feature map (B, D, H', W') of a batch of same-size images (list of (C, H, W)
        or a (B, C, H, W) tensor, on any device: moved to the model's), resized by ``scale`` first
        (bilinear, anti-aliased when shrinking)."""
        batch = self._batch(images).to(self.device)
        if scale != 1.0:
            batch = F.interpolate(
                batch, scale_factor=scale, mode="bilinear", align_corners=False, antialias=scale < 1
            )
        return self.trunk(batch)

    def feature_maps(self, images: Sequence[torch.Tensor] | torch.Tensor) -> list[torch.Tensor]:
        """One feature map per scale of ``scales`` (:meth:`feature_map`)."""
        return [self.feature_map(images, scale) for scale in self.scales]

    def roi_levels(self, boxes: torch.Tensor) -> torch.Tensor:
        """Index into ``scales`` of the scale each (grown) box (R, 4) is pooled from: int64 (R,)."""
        if len(self.scales) == 1:
            return torch.zeros(len(boxes), dtype=torch.int64, device=boxes.device)
        side = (
            (boxes[:, 2] - boxes[:, 0]).clamp(min=1e-3)
            * (boxes[:, 3] - boxes[:, 1]).clamp(min=1e-3)
        ).sqrt()
        scales = torch.tensor(self.scales, dtype=side.dtype, device=side.device)
        return (
            (torch.log(side[:, None] * scales[None, :] / self.canonical_size)).abs().argmin(dim=1)
        )

    def _pool_op(self, features: torch.Tensor, rois, scale: float) -> torch.Tensor:
        """RoI max pooling (or RoIAlign) of ``rois`` (a list of (P_i, 4) or a (R, 5) tensor) on one
        map."""
        if self.pooling == "align":
            return roi_align(
                features,
                rois,
                output_size=self.pooled_size,
                spatial_scale=self.spatial_scale * scale,
                sampling_ratio=2,
                aligned=True,
            )
        if isinstance(rois, torch.Tensor):
            rois = torch.cat([rois[:, :1], to_inclusive(rois[:, 1:])], dim=1)
        else:
            rois = [to_inclusive(b) for b in rois]
        return roi_pool(
            features, rois, output_size=self.pooled_size, spatial_scale=self.spatial_scale * scale
        )

    def pool(
        self, maps: list[torch.Tensor] | torch.Tensor, proposals: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """RoI pooling of every image's proposals (grown by ``context``): (R, D, pooled, pooled),
        the images' proposals concatenated in order. ``maps``: :meth:`feature_maps` (or one map for
        a single scale)."""
        maps = [maps] if isinstance(maps, torch.Tensor) else list(maps)
        first = maps[0]
        boxes = [
            dilate_boxes(plain(p).to(first.device, first.dtype), self.context) for p in proposals
        ]
        if len(maps) == 1:
            return self._pool_op(first, boxes, self.scales[0])
        rois = torch.cat(
            [
                torch.cat(
                    [torch.full((len(b), 1), float(i), dtype=b.dtype, device=b.device), b], dim=1
                )
                for i, b in enumerate(boxes)
            ]
        )
        levels = self.roi_levels(rois[:, 1:])
        pooled = first.new_zeros((len(rois), first.shape[1], self.pooled_size, self.pooled_size))
        for level, (scale, features) in enumerate(zip(self.scales, maps)):
            members = torch.nonzero(levels == level).flatten()
            if len(members):
                pooled[members] = self._pool_op(features, rois[members], scale)
        return pooled

    def forward(
        self, images: Sequence[torch.Tensor] | torch.Tensor, proposals: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(class_logits (R, K+1), box_deltas (R, K+1, 4))`` for all proposals of all images,
        concatenated in image order (R = sum of P_i)."""
        if len(images) != len(proposals):
            raise ValueError(
                f"one proposal tensor per image: got {len(images)} images and {len(proposals)}"
            )
        return self.classify(self.feature_maps(images), proposals)

    def classify(
        self, maps: list[torch.Tensor] | torch.Tensor, proposals: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The two sibling heads on feature maps already computed (:meth:`feature_maps`, or one
        map): ``(class_logits (R, K+1), box_deltas (R, K+1, 4))``, as :meth:`forward`. Faster
        R-CNN calls it with the map its region proposal network shares. Runs ``head_fn``."""
        layers = (self.dropout, self.cls_score, self.bbox_pred)
        return self.head_fn(maps, proposals, self.pool, *layers, self.num_classes)

    @torch.no_grad()
    def detect(
        self, images: Sequence[torch.Tensor], proposals: Sequence[torch.Tensor]
    ) -> list[dict]:
        """Detections per image (``{"boxes", "scores", "labels"}``), in eval mode (the mode is
        restored).

        Computed on the model's device; each image's detections are returned on that image's
        device."""
        was_training = self.training
        self.eval()
        try:
            boxes = [plain(p).to(self.device, torch.float32) for p in proposals]
            logits, deltas = self(images, boxes)
        finally:
            self.train(was_training)
        return self.postprocess(images, boxes, logits, deltas)

    def postprocess(
        self,
        images: Sequence[torch.Tensor],
        proposals: Sequence[torch.Tensor],
        logits: torch.Tensor,
        deltas: torch.Tensor,
    ) -> list[dict]:
        """Detections per image from the heads' outputs for ``proposals`` (concatenated in image
        order): softmax, class-specific boxes, per-class NMS (``rcnn.postprocess_detections``)."""
        probs = F.softmax(logits.float(), dim=1)
        outputs, start = [], 0
        for image, image_boxes in zip(images, proposals):
            stop = start + len(image_boxes)
            detections = postprocess_detections(
                image_boxes,
                probs[start:stop],
                deltas[start:stop].float(),
                tuple(image.shape[-2:]),
                score_threshold=self.score_threshold,
                nms_threshold=self.nms_threshold,
                max_detections=self.max_detections,
                weights=BOX_WEIGHTS,
            )
            outputs.append({key: value.to(image.device) for key, value in detections.items()})
            start = stop
        return outputs
