"""Faster R-CNN (Ren et al., NIPS 2015): Fast R-CNN whose proposals come from the same feature map.

One trunk, two heads on its feature map: the region proposal network (``rpn``) scores and moves
the anchors (``anchors``) into proposals, and notebook 04's Fast R-CNN head pools and classifies
them::

    model = FasterRCNN.from_classifier(crop_classifier, anchor_sizes=(16, 32, 64))
    proposals = model.propose(images)      # list of (boxes (N, 4), scores (N,)), best first
    detections = model.detect(images)      # list of {"boxes", "scores", "labels"}

The settings follow torchvision's ``FasterRCNN`` (``rpn_*`` arguments) so that it can be built
with exactly the same ones (``torchvision_baseline``); training is in ``faster_rcnn_training``.
Images are float (C, H, W) in [0, 1], all of the same size; boxes float (N, 4) ``(x1, y1, x2,
y2)`` pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from course_utils.core.validate import check_int, check_number
from course_utils.detection.anchors import anchor_boxes, anchors_per_cell
from course_utils.detection.fast_rcnn import FastRCNN
from course_utils.detection.rpn import RPNHead, flatten_rpn_outputs, init_rpn_head, rpn_proposals

__all__ = ["FasterRCNN", "RPNSettings"]


@dataclass(frozen=True)
class RPNSettings:
    """How the region proposal network turns its outputs into proposals, and trains.

    ``pre_nms_top_n`` / ``post_nms_top_n``: proposals kept before / after NMS, as
    ``(training, testing)`` (the paper tests with at most 300 proposals; NMS at 0.7 keeps about a
    third of 600 on the course's scenes). ``nms_threshold``: 0.7 in the
    paper. ``fg_iou`` / ``bg_iou``: an anchor is an object at IoU >= 0.7, background below 0.3.
    ``batch_size_per_image`` anchors are sampled per image for the loss, at most
    ``positive_fraction`` of them positive (256 and 0.5).
    """

    pre_nms_top_n: tuple[int, int] = (1000, 600)
    post_nms_top_n: tuple[int, int] = (600, 300)
    nms_threshold: float = 0.7
    fg_iou: float = 0.7
    bg_iou: float = 0.3
    batch_size_per_image: int = 256
    positive_fraction: float = 0.5

    def __post_init__(self) -> None:
        for name in ("pre_nms_top_n", "post_nms_top_n"):
            pair = getattr(self, name)
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise TypeError(f"{name} must be a pair (training, testing), got {pair!r}")
            for value in pair:
                check_int(value, name)
        check_number(self.nms_threshold, "nms_threshold", 0.0, 1.0)
        check_number(self.fg_iou, "fg_iou", 0.0, 1.0)
        check_number(self.bg_iou, "bg_iou", 0.0, self.fg_iou)
        check_int(self.batch_size_per_image, "batch_size_per_image")
        check_number(self.positive_fraction, "positive_fraction", 0.0, 1.0)


class FasterRCNN(nn.Module):
    """Trunk -> [region proposal network -> proposals] -> Fast R-CNN head, one feature map shared.

    Args:
        fast: a :class:`~course_utils.detection.fast_rcnn.FastRCNN` (trunk, RoI pooling, the two
            sibling heads); single scale.
        rpn_head: (B, D, h, w) -> (objectness (B, k, h, w), deltas (B, 4k, h, w)); its
            convolutions are re-initialised as the paper's (Gaussian, std 0.01).
        anchor_sizes, aspect_ratios: the k anchors of each cell (``anchors.anchor_templates``).
        rpn: :class:`RPNSettings`.
    """

    def __init__(
        self,
        fast: FastRCNN,
        rpn_head: nn.Module,
        *,
        anchor_sizes: Sequence[float] = (16, 32, 64),
        aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
        rpn: RPNSettings = RPNSettings(),
    ) -> None:
        super().__init__()
        if not isinstance(fast, FastRCNN) or fast.scales != (1.0,):
            raise TypeError("fast must be a single-scale FastRCNN (scales=(1.0,))")
        if not isinstance(rpn, RPNSettings):
            raise TypeError(f"rpn must be an RPNSettings, got {type(rpn).__name__}")
        self.fast, self.rpn_head, self.rpn = fast, init_rpn_head(rpn_head), rpn
        self.anchor_sizes = tuple(float(s) for s in anchor_sizes)
        self.aspect_ratios = tuple(float(r) for r in aspect_ratios)
        self.num_anchors = anchors_per_cell(self.anchor_sizes, self.aspect_ratios)
        self.stride = round(1 / fast.spatial_scale)
        self._anchor_cache: dict[tuple, torch.Tensor] = {}  # (feature size, device) -> anchors

    @classmethod
    def from_classifier(
        cls,
        classifier: nn.Module,
        *,
        rpn_head: nn.Module | None = None,
        anchor_sizes: Sequence[float] = (16, 32, 64),
        aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
        rpn: RPNSettings = RPNSettings(),
        **fast_kwargs,
    ) -> FasterRCNN:
        """Build from a pre-trained crop classifier: ``FastRCNN.from_classifier(classifier,
        **fast_kwargs)`` plus ``rpn_head`` (default a new :class:`~course_utils.detection.rpn.
        RPNHead` with as many channels as the trunk gives)."""
        fast = FastRCNN.from_classifier(classifier, **fast_kwargs)
        if rpn_head is None:
            channels = fast.cls_score.in_features // fast.pooled_size**2
            num_anchors = anchors_per_cell(anchor_sizes, aspect_ratios)
            rpn_head = RPNHead(channels, num_anchors)
        model = cls(fast, rpn_head, anchor_sizes=anchor_sizes, aspect_ratios=aspect_ratios, rpn=rpn)
        return model.to(fast.device)

    @property
    def device(self) -> torch.device:
        """The device of the model's weights."""
        return self.fast.device

    def anchors(self, features: torch.Tensor) -> torch.Tensor:
        """The anchors of a (B, D, h, w) feature map: float32 (h * w * k, 4), on its device (a
        copy of the ones computed for the first map of that size)."""
        size = (int(features.shape[-2]), int(features.shape[-1]))
        key = (size, str(features.device))
        if key not in self._anchor_cache:
            self._anchor_cache[key] = anchor_boxes(
                size, self.stride, self.anchor_sizes, self.aspect_ratios, device=features.device
            )
        return self._anchor_cache[key].clone()

    def rpn_outputs(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(objectness (B, A), deltas (B, A, 4))`` for the A = h * w * k anchors, in anchor
        order."""
        objectness, deltas = self.rpn_head(features)
        expected = (features.shape[0], self.num_anchors, *features.shape[-2:])
        if tuple(objectness.shape) != expected:
            raise ValueError(
                f"rpn_head gave objectness {tuple(objectness.shape)}, expected {expected} "
                f"(B, k, h, w) with k = {self.num_anchors} anchors per cell"
            )
        return flatten_rpn_outputs(objectness, deltas)

    def proposals_from(
        self,
        anchors: torch.Tensor,
        objectness: torch.Tensor,
        deltas: torch.Tensor,
        image_size: tuple[int, int],
        top_n: int | None = None,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each image's ``(boxes, scores)`` from the RPN's outputs (:func:`rpn_proposals`, with the
        training or testing numbers of :class:`RPNSettings` by ``self.training``; ``top_n``
        replaces the number kept after NMS). Gradients do not flow into proposals (approximate
        joint training: the boxes are treated as fixed inputs of the Fast R-CNN head)."""
        phase = 0 if self.training else 1
        post = self.rpn.post_nms_top_n[phase] if top_n is None else check_int(top_n, "top_n")
        return [
            rpn_proposals(
                anchors,
                scores.detach(),
                boxes.detach(),
                image_size,
                pre_nms_top_n=max(self.rpn.pre_nms_top_n[phase], post),
                post_nms_top_n=post,
                nms_threshold=self.rpn.nms_threshold,
            )
            for scores, boxes in zip(objectness, deltas)
        ]

    @torch.no_grad()
    def propose(
        self, images: Sequence[torch.Tensor] | torch.Tensor, top_n: int | None = None
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The RPN's proposals for a batch of same-size images, in eval mode: a ``(boxes (N, 4),
        scores (N,))`` pair per image, highest score first, at most ``top_n`` (default the
        testing ``post_nms_top_n``)."""
        with _eval_mode(self):
            features = self.fast.feature_map(images)
            objectness, deltas = self.rpn_outputs(features)
            size = _image_size(images)
            return self.proposals_from(self.anchors(features), objectness, deltas, size, top_n)

    @torch.no_grad()
    def detect(self, images: Sequence[torch.Tensor] | torch.Tensor) -> list[dict]:
        """Detections per image (``{"boxes", "scores", "labels"}``), in eval mode: one pass of the
        trunk, the RPN's proposals, the Fast R-CNN head on the same feature map."""
        with _eval_mode(self):
            return self.detect_from_features(images, self.fast.feature_map(images))

    @torch.no_grad()
    def detect_from_features(
        self, images: Sequence[torch.Tensor] | torch.Tensor, features: torch.Tensor
    ) -> list[dict]:
        """:meth:`detect` after the trunk: the RPN, its proposals and the Fast R-CNN head on the
        images' feature map ``features`` (B, D, H', W') (``self.fast.feature_map(images)``), in
        eval mode. Notebook 06 times it apart from the trunk."""
        with _eval_mode(self):
            objectness, deltas = self.rpn_outputs(features)
            proposals = self.proposals_from(
                self.anchors(features), objectness, deltas, _image_size(images)
            )
            boxes = [boxes for boxes, _ in proposals]
            logits, box_deltas = self.fast.classify(features, boxes)
        return self.fast.postprocess(list(images), boxes, logits, box_deltas)


class _eval_mode:
    """``with _eval_mode(model):`` eval mode inside, the previous mode restored after."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.was_training = model, model.training

    def __enter__(self) -> None:
        self.model.eval()

    def __exit__(self, *exc) -> None:
        self.model.train(self.was_training)


def _image_size(images: Sequence[torch.Tensor] | torch.Tensor) -> tuple[int, int]:
    """(H, W) of a batch of same-size images."""
    return int(images[0].shape[-2]), int(images[0].shape[-1])
