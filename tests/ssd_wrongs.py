"""Right and deliberately wrong implementations of the SSD assignments (notebook 07): default boxes,
matching and hard negative mining.

``good_*`` are right; their keyword arguments make the plausible student mistakes that
``tests/test_checks_ssd.py`` lists in its ``WRONG`` table.
"""

from __future__ import annotations

import math

import torch
from torchvision.ops import box_iou


def _variant(good, name, **options):
    """``good`` with the keyword arguments ``options``, named ``name`` (the test's id)."""

    def wrong(*args):
        return good(*args, **options)

    wrong.__name__ = wrong.__qualname__ = name
    return wrong


# ----------------------------------------------------------------------------------------------
# default_boxes
# ----------------------------------------------------------------------------------------------


def _cell_sizes(k, scales, ratios, *, shift, extra, inverted):
    """The (b, 2) relative (width, height) of map k's boxes, in the cell's order."""
    if shift:  # map k uses s_{k+1}: scales[0] is mistaken for s_min
        scales = [*scales[1:], 1.0]
    s = scales[k]
    sizes = [[s, s]]
    if extra == "geometric":
        sizes.append([math.sqrt(s * scales[k + 1])] * 2)
    elif extra == "next":
        sizes.append([scales[k + 1]] * 2)
    for r in ratios:
        wide, tall = [s * math.sqrt(r), s / math.sqrt(r)], [s / math.sqrt(r), s * math.sqrt(r)]
        sizes += [tall, wide] if inverted else [wide, tall]
    return torch.tensor(sizes, dtype=torch.float32)


def good_default_boxes(
    feature_sizes,
    image_size,
    scales,
    aspect_ratios,
    clip=True,
    *,
    shift=False,
    extra="geometric",
    inverted=False,
    offset=0.5,
    box_major=False,
    column_major=False,
    clipping="sizes",
    size_by_height=False,
    box_format="xyxy",
    pixels=True,
    reverse_maps=False,
    dtype=torch.float32,
):
    """Vectorised per map; the keyword arguments make the wrong variants."""
    height, width = image_size
    boxes = []
    for k, (h, w) in enumerate(feature_sizes):
        wh = _cell_sizes(k, scales, aspect_ratios[k], shift=shift, extra=extra, inverted=inverted)
        if (clip and clipping == "sizes") or clipping == "always":
            wh = wh.clamp(0, 1)
        ys, xs = (torch.arange(h) + offset) / h, (torch.arange(w) + offset) / w
        if column_major:
            grid_x, grid_y = torch.meshgrid(xs, ys, indexing="ij")
        else:
            grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        centres = torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 1, 2)
        centres, wh = centres.expand(-1, len(wh), 2), wh[None].expand(len(centres), -1, 2)
        if box_major:
            centres, wh = centres.transpose(0, 1), wh.transpose(0, 1)
        boxes.append(torch.cat([centres, wh], dim=-1).reshape(-1, 4))
    if reverse_maps:
        boxes = boxes[::-1]
    cxcywh = torch.cat(boxes)
    scale = torch.tensor([width, height, height if size_by_height else width, height])
    if pixels:
        cxcywh = cxcywh * scale
    if box_format == "cxcywh":
        return cxcywh.to(dtype)
    xyxy = torch.cat([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], 1)
    if clip and clipping == "corners":
        xyxy = xyxy.clamp(min=0) if not pixels else _clamp_to(xyxy, height, width)
    return xyxy.to(dtype)


def _clamp_to(boxes, height, width):
    limit = torch.tensor([width, height, width, height], dtype=boxes.dtype)
    return torch.minimum(boxes.clamp(min=0), limit)


def good_default_boxes_loops(feature_sizes, image_size, scales, aspect_ratios, clip=True):
    """Python loops over the maps, cells and boxes, with math.sqrt and lists."""
    height, width = image_size
    rows = []
    for k, (h, w) in enumerate(feature_sizes):
        s, s_next = scales[k], scales[k + 1]
        sizes = [(s, s), (math.sqrt(s * s_next), math.sqrt(s * s_next))]
        for r in aspect_ratios[k]:
            sizes += [(s * math.sqrt(r), s / math.sqrt(r)), (s / math.sqrt(r), s * math.sqrt(r))]
        if clip:
            sizes = [(min(max(bw, 0.0), 1.0), min(max(bh, 0.0), 1.0)) for bw, bh in sizes]
        for i in range(h):
            for j in range(w):
                cx, cy = (j + 0.5) / w, (i + 0.5) / h
                for bw, bh in sizes:
                    rows.append([(cx - bw / 2) * width, (cy - bh / 2) * height,
                                 (cx + bw / 2) * width, (cy + bh / 2) * height])  # fmt: skip
    return torch.tensor(rows, dtype=torch.float32)


def _boxes(name, **options):
    return _variant(good_default_boxes, name, **options)


boxes_scales_shifted = _boxes("boxes_scales_shifted", shift=True)
boxes_extra_next_scale = _boxes("boxes_extra_next_scale", extra="next")
boxes_extra_missing = _boxes("boxes_extra_missing", extra=None)
boxes_ratio_inverted = _boxes("boxes_ratio_inverted", inverted=True)
boxes_corner_centres = _boxes("boxes_corner_centres", offset=0.0)
boxes_box_major = _boxes("boxes_box_major", box_major=True)
boxes_column_major = _boxes("boxes_column_major", column_major=True)
boxes_clip_corners = _boxes("boxes_clip_corners", clipping="corners")
boxes_no_clip = _boxes("boxes_no_clip", clipping="never")
boxes_always_clip = _boxes("boxes_always_clip", clipping="always")
boxes_sizes_by_height = _boxes("boxes_sizes_by_height", size_by_height=True)
boxes_cxcywh = _boxes("boxes_cxcywh", box_format="cxcywh")
boxes_relative = _boxes("boxes_relative", pixels=False)
boxes_maps_reversed = _boxes("boxes_maps_reversed", reverse_maps=True)
boxes_float64 = _boxes("boxes_float64", dtype=torch.float64)


# ----------------------------------------------------------------------------------------------
# match_default_boxes
# ----------------------------------------------------------------------------------------------


def good_match_default_boxes(
    default_boxes,
    gt_boxes,
    iou_threshold=0.5,
    *,
    forced="after",
    strict=False,
    wrong_dim=False,
    as_labels=False,
    empty="full",
    unmatched=-1,
    forced_own_best=False,
    first_gt_wins=False,
    ties_all=False,
    fixed_threshold=None,
    dtype=torch.int64,
):
    """Vectorised, a deterministic scatter for the forced matches; the keyword arguments make the
    wrong variants."""
    device = default_boxes.device
    if len(gt_boxes) == 0 and empty != "crash":
        fill = unmatched if empty == "full" else 0
        return torch.full((len(default_boxes),), fill, dtype=dtype, device=device)
    threshold = iou_threshold if fixed_threshold is None else fixed_threshold
    iou = box_iou(gt_boxes, default_boxes)  # (G, D)
    best_iou, best_gt = iou.max(dim=1 if wrong_dim else 0)
    above = best_iou > threshold if strict else best_iou >= threshold
    matches = torch.where(above, best_gt, torch.full_like(best_gt, unmatched))
    if wrong_dim:  # one value per ground-truth box: nothing left to force
        return matches.to(dtype)
    picks = torch.full_like(matches, -1)
    gts = torch.arange(len(gt_boxes), device=device)
    if ties_all:  # every default box tied for a gt's best IoU (Faster R-CNN's rule)
        g, d = (iou == iou.max(dim=1, keepdim=True).values).nonzero().unbind(1)
        picks.scatter_reduce_(0, d, g, reduce="amax")
    elif first_gt_wins:
        picks = torch.full_like(matches, len(gt_boxes))
        picks.scatter_reduce_(0, iou.argmax(dim=1), gts, reduce="amin")
        picks[picks == len(gt_boxes)] = -1
    else:
        picks.scatter_reduce_(0, iou.argmax(dim=1), gts, reduce="amax")
    if forced_own_best:  # the low-quality rule of notebook 05: the box's own best gt
        picks = torch.where(picks >= 0, best_gt, picks)
    if forced == "after":
        matches = torch.where(picks >= 0, picks, matches)
    elif forced == "before":
        matches = torch.where(picks >= 0, picks, best_gt)  # then the threshold undoes some
        matches = torch.where(above, matches, torch.full_like(matches, unmatched))
    if as_labels:
        matches = (matches >= 0).long()
    return matches.to(dtype)


def good_match_default_boxes_loops(default_boxes, gt_boxes, iou_threshold=0.5):
    """A loop over the ground-truth boxes for the forced matches (a later one overwrites)."""
    matches = torch.full((len(default_boxes),), -1, dtype=torch.int64, device=default_boxes.device)
    if len(gt_boxes) == 0:
        return matches
    iou = box_iou(gt_boxes, default_boxes)
    values, best = iou.max(dim=0)
    matches[values >= iou_threshold] = best[values >= iou_threshold]
    for g in range(len(gt_boxes)):
        matches[int(iou[g].argmax())] = g
    return matches


def _match(name, **options):
    return _variant(good_match_default_boxes, name, **options)


match_no_forced = _match("match_no_forced", forced=None)
match_forced_then_threshold = _match("match_forced_then_threshold", forced="before")
match_strict_threshold = _match("match_strict_threshold", strict=True)
match_wrong_dimension = _match("match_wrong_dimension", wrong_dim=True)
match_returns_labels = _match("match_returns_labels", as_labels=True)
match_crashes_without_gt = _match("match_crashes_without_gt", empty="crash")
match_zeros_without_gt = _match("match_zeros_without_gt", empty="zeros")
match_minus_two = _match("match_minus_two", unmatched=-2)
match_forced_own_best = _match("match_forced_own_best", forced_own_best=True)
match_first_gt_wins = _match("match_first_gt_wins", first_gt_wins=True)
match_ties_all_forced = _match("match_ties_all_forced", ties_all=True)
match_fixed_threshold = _match("match_fixed_threshold", fixed_threshold=0.5)
match_float = _match("match_float", dtype=torch.float32)


# ----------------------------------------------------------------------------------------------
# hard_negative_mining
# ----------------------------------------------------------------------------------------------


def good_hard_negative_mining(
    confidence_loss,
    labels,
    neg_pos_ratio=3,
    *,
    per_image=True,
    mask_positives=True,
    count="positives",
    background_only="ratio",
    descending=True,
    keep_positives=True,
    cap=True,
    ties="lower",
    fixed_ratio=None,
    dtype=torch.bool,
):
    """Vectorised with a stable sort and ranks; the keyword arguments make the wrong variants."""
    ratio = neg_pos_ratio if fixed_ratio is None else fixed_ratio
    positive = labels > 0
    num_pos, num_neg = positive.sum(1, keepdim=True), (~positive).sum(1, keepdim=True)
    if count == "negatives":
        k = num_neg // ratio
    elif background_only == "ratio":
        k = ratio * num_pos.clamp(min=1)
    elif background_only == "none":
        k = ratio * num_pos
    else:  # "all"
        k = torch.where(num_pos > 0, ratio * num_pos, num_neg)
    if cap:
        k = torch.minimum(k, num_neg)
    elif bool((k > num_neg).any()):
        raise RuntimeError("selected index k out of range")  # what loss.topk(k) says
    fill = -math.inf if descending else math.inf
    loss = confidence_loss.masked_fill(positive, fill) if mask_positives else confidence_loss
    if not per_image:
        flat = loss.flatten().sort(descending=descending, stable=True).indices
        rank = flat.argsort().view_as(loss)
        negative = (rank < k.sum()) & ~positive
    else:
        if ties == "higher":  # ascending sort, then the last k: ties by higher index first
            order = loss.sort(dim=1, stable=True).indices.flip(1)
        else:
            order = loss.sort(dim=1, descending=descending, stable=True).indices
        negative = (order.argsort(dim=1) < k) & ~positive
    mask = (positive | negative) if keep_positives else negative
    return mask.to(dtype)


def good_hard_negative_mining_loops(confidence_loss, labels, neg_pos_ratio=3):
    """A loop over the images; Python's sorted is stable."""
    keep = labels > 0
    for n in range(len(labels)):
        negatives = (labels[n] == 0).nonzero().flatten().tolist()
        k = min(neg_pos_ratio * max(int(keep[n].sum()), 1), len(negatives))
        ranked = sorted(negatives, key=lambda d: -float(confidence_loss[n, d]))
        keep[n, ranked[:k]] = True
    return keep


def _mine(name, **options):
    return _variant(good_hard_negative_mining, name, **options)


mining_over_the_batch = _mine("mining_over_the_batch", per_image=False)
mining_positives_ranked = _mine("mining_positives_ranked", mask_positives=False)
mining_ratio_of_negatives = _mine("mining_ratio_of_negatives", count="negatives")
mining_background_only_none = _mine("mining_background_only_none", background_only="none")
mining_background_only_all = _mine("mining_background_only_all", background_only="all")
mining_ascending = _mine("mining_ascending", descending=False)
mining_positives_dropped = _mine("mining_positives_dropped", keep_positives=False)
mining_k_not_capped = _mine("mining_k_not_capped", cap=False)
mining_ties_higher_first = _mine("mining_ties_higher_first", ties="higher")
mining_fixed_ratio = _mine("mining_fixed_ratio", fixed_ratio=3)
mining_long_mask = _mine("mining_long_mask", dtype=torch.int64)


def match_on_cpu(default_boxes, gt_boxes, iou_threshold=0.5):
    return good_match_default_boxes(default_boxes, gt_boxes, iou_threshold).cpu()


def mining_on_cpu(confidence_loss, labels, neg_pos_ratio=3):
    return good_hard_negative_mining(confidence_loss, labels, neg_pos_ratio).cpu()
