"""Checks for the Faster R-CNN assignments (notebook 05): anchors and the region proposal network.

* ``anchor_boxes(feature_size, stride, sizes, aspect_ratios) -> anchors``: float32
  (h * w * k, 4) xyxy pixels, torchvision's ``AnchorGenerator`` order and conventions;
* ``match_anchors(anchors, gt_boxes, high, low) -> matches``: int64 (A,) ground-truth index,
  -1 (background) or -2 (ignored), torchvision's ``Matcher`` with low-quality matches;
* ``RPNHead(in_channels, num_anchors)``: an ``nn.Module`` (3x3 conv + ReLU, two sibling 1x1
  convs) returning ``(objectness (B, k, h, w), deltas (B, 4k, h, w))``, as torchvision's;
* ``rpn_proposals(anchors, objectness, deltas, image_size, pre_nms_top_n, post_nms_top_n,
  nms_threshold, min_size) -> (boxes (N, 4), scores (N,))``: one image's proposals, highest
  score first, as torchvision's ``RegionProposalNetwork.filter_proposals``.

The references wrap torchvision (anchors, matching) or are the course's own modules, which the
tests prove equal to torchvision. ``check_anchor_boxes`` and ``check_RPNHead`` run on the CPU,
the two others on every available device.

Usage in a notebook::

    check_match_anchors(match_anchors)   # graded cell: raises on a wrong answer
    check_RPNHead(RPNHead)               # the class itself, not an instance
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torchvision.models.detection._utils import Matcher
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import box_iou

from course_utils.detection import rpn
from course_utils.grading.assignments import assignment_check
from course_utils.grading.checks._rpn_cases import (
    anchor_boxes_cases,
    match_anchors_cases,
    rpn_head_cases,
    rpn_proposals_cases,
)
from course_utils.grading.compare import (
    compare_tensors,
    describe,
    not_a_tensor_problem,
    tensor_type_problem,
)
from course_utils.grading.runner import Case

__all__ = [
    "CHECKS",
    "anchor_boxes_cases",
    "check_RPNHead",
    "check_anchor_boxes",
    "check_match_anchors",
    "check_rpn_proposals",
    "match_anchors_cases",
    "rpn_head_cases",
    "rpn_proposals_cases",
    "torchvision_anchor_boxes",
    "torchvision_match_anchors",
]

_SEED = 505


def torchvision_anchor_boxes(
    feature_size: tuple[int, int],
    stride: int,
    sizes: tuple[float, ...],
    aspect_ratios: tuple[float, ...],
) -> torch.Tensor:
    """Reference ``anchor_boxes``: torchvision's ``AnchorGenerator(sizes, aspect_ratios)`` on one
    (1, 1, h, w) feature map of an (h * stride, w * stride) image."""
    height, width = feature_size
    generator = AnchorGenerator(sizes=(tuple(sizes),), aspect_ratios=(tuple(aspect_ratios),))
    image_size = (height * stride, width * stride)
    images = ImageList(torch.zeros(1, 1, *image_size), [image_size])
    return generator(images, [torch.zeros(1, 1, height, width)])[0]


def torchvision_match_anchors(
    anchors: torch.Tensor, gt_boxes: torch.Tensor, high: float, low: float
) -> torch.Tensor:
    """Reference ``match_anchors``: ``Matcher(high, low, allow_low_quality_matches=True)`` on
    ``box_iou(gt_boxes, anchors)``; all -1 when there is no ground-truth box."""
    if len(gt_boxes) == 0:
        return torch.full((len(anchors),), -1, dtype=torch.int64, device=anchors.device)
    return Matcher(high, low, allow_low_quality_matches=True)(box_iou(gt_boxes, anchors))


# ----------------------------------------------------------------------------------------------
# anchor_boxes and match_anchors
# ----------------------------------------------------------------------------------------------


@assignment_check(reference=torchvision_anchor_boxes, cases=anchor_boxes_cases)
def check_anchor_boxes(anchor_boxes: Callable[..., torch.Tensor], *, quiet: bool = False) -> None:
    """Check ``anchor_boxes(feature_size, stride, sizes, aspect_ratios) -> anchors``.

    feature_size (h, w) ints; stride int; sizes, aspect_ratios tuples of floats (k = len(sizes) *
    len(aspect_ratios)). anchors: float32 (h * w * k, 4) xyxy pixels; row (i * w + j) * k + t is
    template t (t = r * len(sizes) + s: width size / sqrt(ratio), height size * sqrt(ratio),
    half-sides rounded) centred at pixel (j * stride, i * stride), as torchvision's
    AnchorGenerator.
    """


def _code(value: int) -> str:
    if value >= 0:
        return f"{value} (ground-truth box {value})"
    return {-1: "-1 (background)", -2: "-2 (ignored)"}.get(value, str(value))


def _compare_matches(got: Any, expected: torch.Tensor, case: Case) -> str | None:
    """compare_tensors, then for a wrong value: which anchor, what it should be and its IoUs."""
    problem = compare_tensors(got, expected, case)
    if problem is None or not problem.startswith("values differ"):
        return problem
    wrong = (got != expected).nonzero().flatten()
    anchor = int(wrong[0])
    anchors, gt_boxes, high, low = case.args
    text = (
        f"anchor {anchor} should be {_code(int(expected[anchor]))}, got "
        f"{_code(int(got[anchor]))} ({len(wrong)} of {len(expected)} anchors wrong)."
    )
    if len(gt_boxes):
        iou = box_iou(gt_boxes, anchors).cpu()
        best, box = iou[:, anchor].max(dim=0)
        text += (
            f" Its best IoU is {float(best):.4g}, with ground-truth box {int(box)} (high = "
            f"{high}, low = {low})"
        )
        gts = (iou[:, anchor] == iou.max(dim=1).values).nonzero().flatten().tolist()
        if gts:
            text += f"; it is the best anchor of ground-truth box {', '.join(map(str, gts))}"
        text += "."
    return text


@assignment_check(
    reference=torchvision_match_anchors, cases=match_anchors_cases, compare=_compare_matches
)
def check_match_anchors(match_anchors: Callable[..., torch.Tensor], *, quiet: bool = False) -> None:
    """Check ``match_anchors(anchors, gt_boxes, high, low) -> matches``.

    anchors (A, 4), gt_boxes (G, 4) float xyxy; high, low floats. matches: int64 (A,), the index
    of each anchor's best ground-truth box when its best IoU >= high, -1 (background) when < low,
    -2 (ignored) in between; then each ground-truth box's best anchors (ties included) match their
    own best box even below high (torchvision's Matcher, allow_low_quality_matches=True). G = 0:
    all -1.
    """


# ----------------------------------------------------------------------------------------------
# RPNHead: the student's class is built with the case's arguments, then compared layer by layer
# ----------------------------------------------------------------------------------------------


def _layer_problem(got: nn.Module, name: str, want: nn.Conv2d) -> str | None:
    """None when ``got.<name>`` is an nn.Conv2d set up like ``want``, else what differs."""
    layer = getattr(got, name, None)
    if not isinstance(layer, nn.Conv2d):
        found = "nothing" if layer is None else f"a {type(layer).__name__}"
        return (
            f"self.{name} must be an nn.Conv2d, found {found}: the layers are the attributes "
            "conv, cls_logits and bbox_pred (torchvision wraps conv in an nn.Sequential; here it "
            "is the nn.Conv2d itself)."
        )
    in_channels, k = want.in_channels, want.out_channels
    if name == "cls_logits" and layer.out_channels == 2 * k and k > 0:
        return (
            f"cls_logits has {layer.out_channels} = 2k output channels: that is the paper's "
            "softmax version (object / not object). torchvision and the course use ONE sigmoid "
            f"logit per anchor: out_channels = num_anchors = {k}."
        )
    settings = {
        "in_channels": in_channels,
        "out_channels": k,
        "kernel_size": want.kernel_size,
        "padding": want.padding,
        "stride": (1, 1),
        "dilation": (1, 1),
        "groups": 1,
        "padding_mode": "zeros",
    }
    for setting, value in settings.items():
        actual = getattr(layer, setting)
        if setting == "padding" and actual == "same":  # (k - 1) / 2 on each side
            actual = tuple(size // 2 for size in layer.kernel_size)
        if actual != value:
            return (
                f"self.{name} has {setting} {actual}, expected {value}: "
                f"{name} is nn.Conv2d({in_channels}, {k}, kernel_size={want.kernel_size[0]}"
                + (", padding=1)" if want.padding == (1, 1) else ")")
                + ", stride 1."
            )
    if layer.bias is None:
        return f"self.{name} has no bias: keep nn.Conv2d's default bias=True."
    return None


def _extra_state(got: nn.Module) -> list[str]:
    """Names of ``got``'s parameters and buffers outside its three convolutions."""
    own = {
        id(p)
        for name in ("conv", "cls_logits", "bbox_pred")
        for p in getattr(got, name).parameters()
    }
    names = [n for n, p in got.named_parameters() if id(p) not in own]
    return names + [n for n, _ in got.named_buffers()]


def _random_weights(reference: nn.Module) -> None:
    """Deterministic weights and non-zero biases (the paper's init has zero biases and tiny
    weights, which would hide mistakes)."""
    g = torch.Generator().manual_seed(_SEED + 20)
    with torch.no_grad():
        for parameter in reference.parameters():
            fan_in = parameter[0].numel() if parameter.dim() > 1 else 4
            parameter.copy_(torch.randn(parameter.shape, generator=g) / fan_in**0.5)


def _forward(head: nn.Module, features: torch.Tensor) -> Any:
    """``head(features)``; a NotImplementedError left in the class is the release stub."""
    try:
        with torch.no_grad():
            return head(features)
    except NotImplementedError:
        raise NotImplementedError(
            "RPNHead is not written yet: replace `raise NotImplementedError()` in its cell (in "
            "__init__ and forward) with your code, run that cell, then run this check again."
        ) from None


def _compare_outputs(outputs: Any, expected: tuple[torch.Tensor, torch.Tensor]) -> str | None:
    """The (objectness, deltas) pair, compared with the reference's output."""
    if not isinstance(outputs, (tuple, list)) or len(outputs) != 2:
        return f"forward returned {describe(outputs)}, expected a pair (objectness, deltas)."
    (objectness, deltas), (want_objectness, want_deltas) = outputs, expected
    if (
        isinstance(objectness, torch.Tensor)
        and objectness.shape == want_deltas.shape
        and objectness.shape != want_objectness.shape
    ):
        return (
            f"the first output has shape {tuple(objectness.shape)}, the deltas' shape: forward "
            "returns (objectness, deltas), in that order."
        )
    checks = (("objectness", objectness, want_objectness), ("deltas", deltas, want_deltas))
    for name, got, want in checks:
        problem = tensor_type_problem(got, want)
        if problem:
            return f"{name}: {problem}"
        if torch.allclose(got, torch.sigmoid(want), atol=1e-5) and name == "objectness":
            return (
                "objectness looks like sigmoid(logits): return the raw logits, the loss and "
                "rpn_proposals apply the sigmoid."
            )
        if torch.allclose(got, torch.relu(want), atol=1e-5):
            return f"{name} has no negative values: no ReLU after cls_logits and bbox_pred."
        if not torch.allclose(got, want, rtol=1e-4, atol=1e-5):
            return (
                f"{name} values differ from the reference's with the same weights (largest "
                f"difference {float((got - want).abs().max()):.4g}): features -> conv -> ReLU, "
                "then cls_logits and bbox_pred both read the ReLU's output."
            )
    return None


def _compare_head(got: Any, expected: nn.Module, case: Case) -> str | None:
    """Layers, train mode and parameters; then both heads with the same weights on random
    features (B = 2, a 5x7 map)."""
    if not isinstance(got, nn.Module):
        return (
            f"RPNHead(...) gave {describe(got)}, expected an nn.Module (class RPNHead(nn.Module))."
        )
    for name in ("conv", "cls_logits", "bbox_pred"):
        problem = _layer_problem(got, name, getattr(expected, name))
        if problem:
            return problem
    if not all(module.training for module in got.modules()):
        return "the module is in eval mode after RPNHead(...): do not call .eval() in __init__."
    extra = _extra_state(got)
    if extra:
        return (
            f"the head has parameters or buffers besides its three convolutions: "
            f"{', '.join(extra)}. The RPN head is conv -> ReLU -> (cls_logits, bbox_pred), "
            "nothing else (no BatchNorm, no extra layer)."
        )
    if type(got).forward is nn.Module.forward:
        return "the class has no forward(self, features) method."
    _random_weights(expected)
    with torch.no_grad():
        for name in ("conv", "cls_logits", "bbox_pred"):
            getattr(got, name).weight.copy_(getattr(expected, name).weight)
            getattr(got, name).bias.copy_(getattr(expected, name).bias)
    g = torch.Generator().manual_seed(_SEED + 21)
    features = torch.randn(2, expected.conv.in_channels, 5, 7, generator=g)
    try:
        outputs = _forward(got, features.clone())
    except NotImplementedError:
        raise
    except Exception as error:
        return f"forward raised {type(error).__name__} on features (2, C, 5, 7): {error}"
    return _compare_outputs(outputs, _forward(expected, features))


@assignment_check(reference=rpn.RPNHead, cases=rpn_head_cases, compare=_compare_head)
def check_RPNHead(RPNHead: type[nn.Module], *, quiet: bool = False) -> None:
    """Check ``RPNHead(in_channels, num_anchors)``, a class (an nn.Module): pass the class.

    Its attributes: ``conv`` = nn.Conv2d(C, C, 3, padding=1), ``cls_logits`` = nn.Conv2d(C, k, 1),
    ``bbox_pred`` = nn.Conv2d(C, 4k, 1), nothing else with parameters. ``forward(features (B, C,
    h, w)) -> (objectness (B, k, h, w), deltas (B, 4k, h, w))``: ReLU after conv, both 1x1 convs
    read its output. Run on the CPU with the reference's weights copied in.
    """


# ----------------------------------------------------------------------------------------------
# rpn_proposals
# ----------------------------------------------------------------------------------------------


def _compare_proposals(
    got: Any, expected: tuple[torch.Tensor, torch.Tensor], case: Case
) -> str | None:
    """``(boxes, scores)``: the same number of proposals, scores sorted, then values."""
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"returned {describe(got)}, expected a pair (boxes, scores)."
    (boxes, scores), (want_boxes, want_scores) = got, expected
    for name, value, want in (("boxes", boxes, want_boxes), ("scores", scores, want_scores)):
        problem = not_a_tensor_problem(value)
        if problem:
            return f"{name}: {problem}"
        if value.dim() != want.dim() or value.shape[1:] != want.shape[1:]:
            shape = "(N, 4)" if name == "boxes" else "(N,)"
            return f"{name} has shape {tuple(value.shape)}, expected {shape}."
        problem = tensor_type_problem(value[:0], want[:0])  # dtype and device
        if problem:
            return f"{name}: {problem}"
    if len(boxes) != len(scores):
        return f"returned {len(boxes)} boxes but {len(scores)} scores: one score per box."
    height, width, post_nms_top_n = *case.args[3], case.args[5]
    if len(boxes) > post_nms_top_n:
        return (
            f"returned {len(boxes)} proposals, more than post_nms_top_n = {post_nms_top_n}: keep "
            "only the post_nms_top_n best, after NMS."
        )
    outside = (boxes[:, 0::2] < 0) | (boxes[:, 0::2] > width)
    outside = (outside | (boxes[:, 1::2] < 0) | (boxes[:, 1::2] > height)).any(dim=1)
    if bool(outside.any()):
        index = int(outside.nonzero()[0])
        corners = ", ".join(f"{v:.4g}" for v in boxes[index].tolist())
        return (
            f"box {index} = [{corners}] sticks out of the {height}x{width} image (H x W): clip "
            "the boxes to the image (x to [0, W], y to [0, H]) before NMS."
        )
    if len(boxes) != len(want_boxes):
        more = "many" if len(boxes) > len(want_boxes) else "few"
        return (
            f"returned {len(boxes)} proposals, expected {len(want_boxes)}: too {more}. Check each "
            "step against the hint: pre_nms_top_n, the decoding, the clipping, the min_size "
            "filter (after clipping) and NMS at nms_threshold."
        )
    if len(scores) > 1 and bool((scores[1:] > scores[:-1]).any()):
        return "the proposals are not sorted by decreasing score (highest first)."
    if len(scores) and (bool((scores < 0).any()) or bool((scores > 1).any())):
        return "scores are not in [0, 1]: a score is sigmoid(objectness), not the logit."
    problem = compare_tensors(scores, want_scores, case, atol=1e-5, rtol=1e-4)
    if problem:
        return (
            f"scores: {problem} Other scores mean that other boxes were kept: check the "
            "decoding (x with the widths, y with the heights), the clipping and the NMS."
        )
    problem = compare_tensors(boxes, want_boxes, case, atol=1e-3, rtol=1e-5)
    return f"boxes: {problem}" if problem else None


@assignment_check(
    reference=rpn.rpn_proposals, cases=rpn_proposals_cases, compare=_compare_proposals
)
def check_rpn_proposals(
    rpn_proposals: Callable[..., tuple[torch.Tensor, torch.Tensor]], *, quiet: bool = False
) -> None:
    """Check ``rpn_proposals(anchors, objectness, deltas, image_size, pre_nms_top_n,
    post_nms_top_n, nms_threshold, min_size) -> (boxes, scores)``.

    anchors (A, 4) float xyxy; objectness (A,) logits; deltas (A, 4); image_size (H, W). Keep the
    pre_nms_top_n best anchors, decode (weights 1, 1, 1, 1), clip to the image, drop boxes smaller
    than min_size, NMS at nms_threshold on sigmoid(objectness), keep post_nms_top_n. boxes (N, 4),
    scores (N,) in (0, 1), highest first (torchvision's filter_proposals for one image).
    """


CHECKS = (check_anchor_boxes, check_match_anchors, check_RPNHead, check_rpn_proposals)
