"""SSD's default boxes (Liu et al., ECCV 2016): boxes of several scales on several feature maps,
which ones stand for an object, and which background boxes are worth training on.

SSD predicts from K feature maps of decreasing resolution. Map k (of size h_k x w_k) gets boxes of
scale ``s_k`` (a fraction of the image: small boxes on the fine maps, large ones on the coarse
maps); at every cell it places

* two square boxes: side ``s_k`` and the extra one of side ``s'_k = sqrt(s_k * s_{k+1})``;
* for every aspect ratio r of the map (the paper: 2, and 3 on some maps), a box of width
  ``s_k sqrt(r)`` and height ``s_k / sqrt(r)`` and its transpose (ratio 1/r),

centred on the cell, ``((j + 0.5) / w_k, (i + 0.5) / h_k)`` of the image. With ratios [2] a cell
has 4 boxes, with [2, 3] six. Training then

1. *matches* every ground-truth box to the default box of highest IoU with it, and every default
   box to the ground truth it overlaps with IoU >= 0.5 (:func:`match_default_boxes`);
2. scores every default box with a softmax over background + C classes; as almost all boxes are
   background, only the *hardest* negatives (highest classification loss) are kept, 3 per
   positive (:func:`hard_negative_mining`); the losses are divided by the number of matched boxes
   (``course_utils.detection.ssd.ssd_loss``)::

    boxes = default_boxes([(16, 16), (8, 8), (4, 4)], (128, 128),
                          scales=(0.1, 0.2, 0.4, 0.6), aspect_ratios=[[2], [2, 3], [2]])
    matches = match_default_boxes(boxes, gt_boxes)   # gt index per default box, or -1
    kept = hard_negative_mining(confidence_loss, labels)   # (N, D) bool: positives + hard negatives

Conventions are torchvision's (``DefaultBoxGenerator``, ``SSDMatcher``, ``SSD.compute_loss``),
which the tests check, so that the course's SSD and ``torchvision.models.detection.SSD`` use the
very same boxes. Boxes are float32 (N, 4) ``(x1, y1, x2, y2)`` pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchvision.ops import box_iou

from course_utils.core.tensors import plain
from course_utils.core.validate import check_boxes, check_int, check_number

__all__ = [
    "UNMATCHED",
    "boxes_per_location",
    "default_box_sizes",
    "default_boxes",
    "hard_negative_mining",
    "match_default_boxes",
]

#: ``match_default_boxes``'s code of a default box that stands for no object: background.
UNMATCHED = -1


def _ratio_lists(aspect_ratios, count: int | None = None) -> list[tuple[float, ...]]:
    """The K lists of aspect ratios as floats > 1 (each gives the boxes of ratio r and 1/r)."""
    expected = "K sequences of aspect ratios r > 1, e.g. [[2], [2, 3], [2]]"
    try:
        lists = [tuple(float(r) for r in ratios) for ratios in aspect_ratios]
    except TypeError:
        raise TypeError(f"aspect_ratios must be {expected}, got {aspect_ratios!r}") from None
    if count is not None and len(lists) != count:
        raise ValueError(f"aspect_ratios must be {expected} with K = {count}, got {aspect_ratios}")
    if not all(math.isfinite(r) and r > 1 for ratios in lists for r in ratios):
        raise ValueError(
            f"aspect_ratios must be {expected} (the box of ratio 1/r is added for each r), "
            f"got {aspect_ratios!r}"
        )
    return lists


def boxes_per_location(aspect_ratios: Sequence[Sequence[float]]) -> list[int]:
    """Default boxes per cell of each map: ``2 + 2 * len(aspect_ratios[k])`` (two squares, then a
    pair per ratio)."""
    return [2 + 2 * len(ratios) for ratios in _ratio_lists(aspect_ratios)]


def default_box_sizes(
    scales: Sequence[float], aspect_ratios: Sequence[Sequence[float]], clip: bool = True
) -> list[torch.Tensor]:
    """The (width, height) of the boxes of one cell of each map, relative to the image.

    Returns K float32 tensors (b_k, 2): ``[s_k, s_k]``, ``[s'_k, s'_k]`` with ``s'_k = sqrt(s_k
    s_{k+1})``, then ``[s_k sqrt(r), s_k / sqrt(r)]`` and ``[s_k / sqrt(r), s_k sqrt(r)]`` for each
    ratio r. ``clip`` clamps them to [0, 1] (a box no larger than the image).
    """
    ratio_lists = _ratio_lists(aspect_ratios)
    try:
        scales = [float(s) for s in scales]
    except TypeError:
        raise TypeError(f"scales must be K + 1 positive numbers, got {scales!r}") from None
    if len(scales) != len(ratio_lists) + 1 or not all(math.isfinite(s) and s > 0 for s in scales):
        raise ValueError(
            f"scales must be K + 1 = {len(ratio_lists) + 1} positive numbers s_0..s_K (fractions "
            f"of the image; s_K only serves the extra box of the last map), got {scales}"
        )
    sizes = []
    for k, ratios in enumerate(ratio_lists):
        s_k, s_extra = scales[k], math.sqrt(scales[k] * scales[k + 1])
        pairs = [[s_k, s_k], [s_extra, s_extra]]
        for r in ratios:
            pairs += [
                [s_k * math.sqrt(r), s_k / math.sqrt(r)],
                [s_k / math.sqrt(r), s_k * math.sqrt(r)],
            ]
        size = torch.tensor(pairs, dtype=torch.float32)
        sizes.append(size.clamp(0, 1) if clip else size)
    return sizes


def _pair(value, name: str) -> tuple[int, int]:
    if not (isinstance(value, (tuple, list, torch.Size)) and len(value) == 2):
        raise TypeError(f"{name} must be a pair of ints (h, w), got {value!r}")
    return check_int(value[0], f"{name}[0]"), check_int(value[1], f"{name}[1]")


def default_boxes(
    feature_sizes: Sequence[tuple[int, int]],
    image_size: tuple[int, int],
    scales: Sequence[float],
    aspect_ratios: Sequence[Sequence[float]],
    clip: bool = True,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Every default box of the K feature maps: float32 (D, 4) xyxy pixels.

    Order: map by map, cell by cell (row-major), then the cell's boxes in the order of
    :func:`default_box_sizes`. The boxes of cell (i, j) of an (h, w) map are centred at
    ``((j + 0.5) / w * W, (i + 0.5) / h * H)``; width and height are the relative sizes times W and
    H. Exactly torchvision's ``DefaultBoxGenerator(aspect_ratios, scales=scales, clip=clip)`` for
    one image of size (H, W). Without ``clip`` boxes of the coarse maps may leave the image (even
    with it: only their size is clamped, not their position).

    Args:
        feature_sizes: K pairs (h_k, w_k), the sizes of the feature maps, finest first.
        image_size: (H, W) of the input image in pixels.
        scales: K + 1 numbers s_0..s_K, fractions of the image (e.g. (0.1, 0.2, 0.4, 0.6)).
        aspect_ratios: K sequences of ratios r > 1 (e.g. [[2], [2, 3], [2]]).
        clip: clamp the relative widths and heights to [0, 1].
        device: where to create the boxes.

    Returns:
        float32 (D, 4), D = sum over maps of h_k * w_k * (2 + 2 * len(aspect_ratios[k])).
    """
    sizes_of_maps = [_pair(size, f"feature_sizes[{k}]") for k, size in enumerate(feature_sizes)]
    height, width = _pair(image_size, "image_size")
    if len(sizes_of_maps) != len(_ratio_lists(aspect_ratios)):
        raise ValueError(
            f"need one aspect-ratio list per feature map: {len(sizes_of_maps)} feature_sizes but "
            f"{len(_ratio_lists(aspect_ratios))} aspect_ratios"
        )
    boxes = []
    for (h, w), sizes in zip(sizes_of_maps, default_box_sizes(scales, aspect_ratios, clip)):
        cy, cx = torch.meshgrid(
            (torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij"
        )
        centres = torch.stack([cx.reshape(-1), cy.reshape(-1)], dim=1).float()  # (h*w, 2)
        centres = centres.repeat_interleave(len(sizes), dim=0)
        sizes = sizes.repeat(h * w, 1)
        boxes.append(torch.cat([centres - 0.5 * sizes, centres + 0.5 * sizes], dim=1))
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    return (torch.cat(boxes) * scale).to(device)


def match_default_boxes(
    default_boxes: torch.Tensor, gt_boxes: torch.Tensor, iou_threshold: float = 0.5
) -> torch.Tensor:
    """Which ground-truth box each default box stands for (SSD's matching strategy).

    1. Every default box whose best IoU with a ground-truth box is ``>= iou_threshold`` matches
       that box (the first of equals).
    2. Every ground-truth box then takes its own best default box (the first on ties), whatever
       their IoU, so that no object is left without a positive box; when two ground-truth boxes
       pick the same default box, the later one (higher index) keeps it.

    Exactly torchvision's ``SSDMatcher(iou_threshold)`` applied to ``box_iou(gt_boxes,
    default_boxes)``.

    Args:
        default_boxes: float (D, 4) xyxy pixels, D >= 1.
        gt_boxes: float (G, 4) xyxy pixels; G = 0 leaves every default box unmatched.
        iou_threshold: in [0, 1] (paper: 0.5).

    Returns:
        int64 (D,) on default_boxes' device: a ground-truth index in 0..G-1 or
        :data:`UNMATCHED` (-1).
    """
    default_boxes = check_boxes(plain(default_boxes), "default_boxes")
    gt_boxes = check_boxes(plain(gt_boxes), "gt_boxes").to(default_boxes)
    iou_threshold = check_number(iou_threshold, "iou_threshold", 0.0, 1.0)
    device = default_boxes.device
    if len(gt_boxes) == 0:
        return torch.full((len(default_boxes),), UNMATCHED, dtype=torch.int64, device=device)
    if len(default_boxes) == 0:
        raise ValueError("default_boxes must hold at least one (x1, y1, x2, y2) box, got (0, 4)")
    iou = box_iou(gt_boxes, default_boxes)  # (G, D)
    best, matches = iou.max(dim=0)
    matches[best < iou_threshold] = UNMATCHED
    best_default_of_gt = iou.argmax(dim=1)  # (G,)
    gt_indices = torch.arange(len(gt_boxes), device=device)
    # Deterministic "later ground truth wins" when two of them pick the same default box.
    return matches.scatter_reduce(0, best_default_of_gt, gt_indices, "amax", include_self=False)


def hard_negative_mining(
    confidence_loss: torch.Tensor, labels: torch.Tensor, neg_pos_ratio: int = 3
) -> torch.Tensor:
    """The default boxes that enter SSD's classification loss: every positive and, per image, the
    hardest negatives.

    In image n with P_n positives (label > 0), the k = ``neg_pos_ratio * max(P_n, 1)`` background
    boxes (label 0) with the highest confidence loss are kept (all of them when there are fewer);
    equal losses are taken in order of index (a stable descending sort). The paper keeps negatives
    and positives at most 3:1 instead of the thousands of easy background boxes.

    torchvision's ``SSD.compute_loss`` keeps ``neg_pos_ratio * P_n`` negatives, so none in an image
    without objects; the course keeps ``neg_pos_ratio`` of them there, so that a background-only
    image still teaches "nothing here". With a positive in every image both agree.

    Args:
        confidence_loss: float (N, D), each default box's cross-entropy (no gradient is needed:
            only the ranking is used).
        labels: int64 (N, D), 0 = background, 1..C = the matched object's class.
        neg_pos_ratio: negatives per positive, >= 0.

    Returns:
        bool (N, D): True for the boxes to train on (positives and the kept negatives).
    """
    confidence_loss, labels = plain(confidence_loss), plain(labels)
    if not isinstance(confidence_loss, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError("confidence_loss and labels must be torch.Tensors (N, D)")
    if confidence_loss.ndim != 2 or labels.shape != confidence_loss.shape:
        raise ValueError(
            f"confidence_loss (N, D) and labels (N, D) must have the same 2-d shape, got "
            f"{tuple(confidence_loss.shape)} and {tuple(labels.shape)}"
        )
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be int64 (0 = background, > 0 = class), got {labels.dtype}")
    neg_pos_ratio = check_int(neg_pos_ratio, "neg_pos_ratio", minimum=0)
    positive = labels > 0
    negative = labels == 0
    wanted = neg_pos_ratio * positive.sum(dim=1, keepdim=True).clamp(min=1)  # (N, 1)
    loss = confidence_loss.detach().float().masked_fill(~negative, -math.inf)
    order = loss.argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    positions = torch.arange(loss.shape[1], device=loss.device).expand_as(order)
    ranks.scatter_(1, order, positions)  # ranks[n, d]: place of box d in image n's ranking
    return positive | (negative & (ranks < wanted))
