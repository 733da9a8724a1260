"""Box regression targets: how R-CNN (and every detector after it) encodes a box relative to a
proposal.

A proposal ``P`` and a ground-truth box ``G``, both ``(x1, y1, x2, y2)`` pixels, are written with
their centre and size (``w = x2 - x1``, ``x = x1 + w / 2``; no ``+ 1``, as torchvision). The
regression target ``t = (tx, ty, tw, th)`` of Girshick et al. (CVPR 2014, appendix C) is

    tx = (Gx - Px) / Pw        ty = (Gy - Py) / Ph        (shift, in units of the proposal's size)
    tw = log(Gw / Pw)          th = log(Gh / Ph)          (scale, in log space)

and decoding inverts it: ``Gx = Px + Pw * tx``, ``Gw = Pw * exp(tw)``. The targets are invariant to
translating and scaling the pair of boxes, which is why one regressor serves boxes of every size.

``weights = (wx, wy, ww, wh)`` multiply the four targets (torchvision's Faster R-CNN uses
(10, 10, 5, 5) so that they have a similar spread); the default (1, 1, 1, 1) is the paper's formula,
the same as ``torchvision.models.detection._utils.BoxCoder(weights=(1., 1., 1., 1.))``.

    deltas = encode_boxes(proposals, gt_boxes)     # (N, 4)
    boxes = decode_boxes(proposals, deltas)        # (N, 4) == gt_boxes (up to float rounding)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from course_utils.core.tensors import plain

__all__ = ["BBOX_XFORM_CLIP", "box_centers_sizes", "decode_boxes", "encode_boxes"]

#: Largest log-scale ``tw``/``th`` used when decoding (as torchvision): a box grows at most
#: 1000/16 times.
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def _check_weights(weights: Sequence[float]) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(w) for w in weights)
    except TypeError:
        raise TypeError(f"weights must be 4 numbers (wx, wy, ww, wh), got {weights!r}") from None
    if len(values) != 4 or not all(math.isfinite(w) and w > 0 for w in values):
        raise ValueError(f"weights must be 4 positive numbers (wx, wy, ww, wh), got {weights!r}")
    return values  # type: ignore[return-value]


def _check_box_tensor(boxes, name: str) -> torch.Tensor:
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor (..., 4) of (x1, y1, x2, y2) boxes, "
            f"got {type(boxes).__name__}"
        )
    boxes = plain(boxes)
    if boxes.ndim < 1 or boxes.shape[-1] != 4:
        raise ValueError(
            f"{name} must have shape (..., 4) with (x1, y1, x2, y2) in the last dimension, "
            f"got {tuple(boxes.shape)}"
        )
    if not boxes.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got dtype {boxes.dtype}")
    return boxes


def box_centers_sizes(
    boxes: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centre x, centre y, width and height of ``(..., 4)`` xyxy boxes, each of shape ``(...)``."""
    boxes = _check_box_tensor(boxes, "boxes")
    widths = boxes[..., 2] - boxes[..., 0]
    heights = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * widths, boxes[..., 1] + 0.5 * heights, widths, heights


def encode_boxes(
    proposals: torch.Tensor, gt_boxes: torch.Tensor, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)
) -> torch.Tensor:
    """Regression targets ``(tx, ty, tw, th)`` that move each proposal onto its ground-truth box.

    Args:
        proposals: float ``(..., 4)`` xyxy pixels, positive width and height.
        gt_boxes: float ``(..., 4)`` xyxy pixels, positive width and height, broadcastable with
            proposals.
        weights: ``(wx, wy, ww, wh)`` multiplying the four targets.

    Returns:
        float ``(..., 4)`` targets, the broadcast shape, proposals' dtype.

    Raises:
        ValueError: a proposal or ground-truth box has zero or negative width or height (log of 0).
    """
    proposals = _check_box_tensor(proposals, "proposals")
    gt_boxes = _check_box_tensor(gt_boxes, "gt_boxes")
    wx, wy, ww, wh = _check_weights(weights)
    px, py, pw, ph = box_centers_sizes(proposals)
    gx, gy, gw, gh = box_centers_sizes(gt_boxes.to(proposals.dtype))
    for name, sides in (("proposals", (pw, ph)), ("gt_boxes", (gw, gh))):
        if any(bool((side <= 0).any()) for side in sides):
            raise ValueError(
                f"{name} must have positive width and height (x2 > x1, y2 > y1) to be encoded"
            )
    return torch.stack(
        [
            wx * (gx - px) / pw,
            wy * (gy - py) / ph,
            ww * torch.log(gw / pw),
            wh * torch.log(gh / ph),
        ],
        dim=-1,
    )


def decode_boxes(
    proposals: torch.Tensor,
    deltas: torch.Tensor,
    weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
    clip: float = BBOX_XFORM_CLIP,
) -> torch.Tensor:
    """Apply regression outputs ``(tx, ty, tw, th)`` to proposals: the inverse of
    :func:`encode_boxes`.

    Args:
        proposals: float ``(..., 4)`` xyxy pixels.
        deltas: float ``(..., 4)``, broadcastable with proposals; e.g. proposals ``(N, 1, 4)`` and
            class-specific deltas ``(N, K, 4)`` give ``(N, K, 4)`` boxes.
        weights: the weights used when encoding (the deltas are divided by them).
        clip: ``tw``/``th`` are clamped at this value before ``exp`` (a wild prediction cannot
            overflow).

    Returns:
        float ``(..., 4)`` xyxy boxes, the broadcast shape (not clipped to the image).
    """
    proposals = _check_box_tensor(proposals, "proposals")
    deltas = _check_box_tensor(deltas, "deltas")
    wx, wy, ww, wh = _check_weights(weights)
    px, py, pw, ph = box_centers_sizes(proposals.to(deltas.dtype))
    cx = px + deltas[..., 0] / wx * pw
    cy = py + deltas[..., 1] / wy * ph
    w = pw * torch.exp((deltas[..., 2] / ww).clamp(max=clip))
    h = ph * torch.exp((deltas[..., 3] / wh).clamp(max=clip))
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)
