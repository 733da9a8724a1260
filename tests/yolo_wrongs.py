"""Right and deliberately wrong implementations of the YOLO v1 assignments (notebook 06): the
functions (the head's classes are in ``tests/yolo_head_wrongs.py``).

``good_*`` are right; their keyword arguments make the plausible student mistakes that
``tests/test_checks_yolo.py`` lists in its ``WRONG`` table.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms, box_iou, clip_boxes_to_image, nms


def _variant(good, name, **options):
    """``good`` with the keyword arguments ``options``, named ``name`` (the test's id)."""

    def wrong(*args):
        return good(*args, **options)

    wrong.__name__ = wrong.__qualname__ = name
    return wrong


# ----------------------------------------------------------------------------------------------
# encode_targets
# ----------------------------------------------------------------------------------------------


def good_encode_targets(
    boxes,
    labels,
    image_size,
    grid_size,
    num_classes,
    *,
    swap_xy=False,
    image_offsets=False,
    wh_unit="image",
    rounding=math.floor,
    clamp=True,
    first_wins=True,
    label_offset=1,
    confidence=1.0,
    dtype=torch.float32,
    sqrt_wh=False,
):
    """A loop over the boxes; the keyword arguments make the wrong variants."""
    height, width = image_size
    target = torch.zeros(grid_size, grid_size, 5 + num_classes, dtype=dtype, device=boxes.device)
    for box, label in zip(boxes.tolist(), labels.tolist()):
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        sx, sy = cx / width * grid_size, cy / height * grid_size
        j, i = rounding(sx), rounding(sy)
        if clamp:
            i, j = min(i, grid_size - 1), min(j, grid_size - 1)
        x, y = (cx / width, cy / height) if image_offsets else (sx - j, sy - i)
        w, h = (box[2] - box[0]) / width, (box[3] - box[1]) / height
        if wh_unit == "pixels":
            w, h = box[2] - box[0], box[3] - box[1]
        elif wh_unit == "cell":
            w, h = w * grid_size, h * grid_size
        if sqrt_wh:
            w, h = math.sqrt(w), math.sqrt(h)
        if swap_xy:
            i, j = j, i
        if first_wins and target[i, j, 4] != 0:
            continue
        target[i, j] = 0
        target[i, j, :5] = torch.tensor([x, y, w, h, confidence], dtype=dtype)
        target[i, j, 4 + label + 1 - label_offset] = 1.0
    return target


def good_encode_targets_vectorised(boxes, labels, image_size, grid_size, num_classes):
    """Integer division by the cell size; the first box of a cell found with a scatter of the
    negated box indices (scatter_reduce amax)."""
    height, width = image_size
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    cells = centres / torch.tensor([width / grid_size, height / grid_size], device=boxes.device)
    index = cells.floor().clamp(max=grid_size - 1)
    flat = (index[:, 1] * grid_size + index[:, 0]).long()
    order = torch.arange(len(boxes), device=boxes.device)
    first = torch.full((grid_size * grid_size,), -len(boxes), device=boxes.device)
    first = first.scatter_reduce(0, flat, -order, "amax")
    keep = first[flat] == -order
    sizes = (boxes[:, 2:] - boxes[:, :2]) / torch.tensor([width, height], device=boxes.device)
    rows = torch.cat([cells - index, sizes, torch.ones(len(boxes), 1, device=boxes.device)], dim=1)
    rows = torch.cat([rows, F.one_hot(labels - 1, num_classes).float()], dim=1)
    target = torch.zeros(grid_size * grid_size, 5 + num_classes, device=boxes.device)
    target[flat[keep]] = rows[keep]
    return target.view(grid_size, grid_size, -1)


def _encode(name, **options):
    return _variant(good_encode_targets, name, **options)


encode_xy_swapped = _encode("encode_xy_swapped", swap_xy=True)
encode_image_offsets = _encode("encode_image_offsets", image_offsets=True)
encode_wh_pixels = _encode("encode_wh_pixels", wh_unit="pixels")
encode_wh_cells = _encode("encode_wh_cells", wh_unit="cell")
encode_round = _encode("encode_round", rounding=round)
encode_no_clamp = _encode("encode_no_clamp", clamp=False)
encode_last_wins = _encode("encode_last_wins", first_wins=False)
encode_label_index = _encode("encode_label_index", label_offset=0)
encode_confidence_0 = _encode("encode_confidence_0", confidence=0.0)
encode_float64 = _encode("encode_float64", dtype=torch.float64)
encode_sqrt_wh = _encode("encode_sqrt_wh", sqrt_wh=True)


# ----------------------------------------------------------------------------------------------
# yolo_loss
# ----------------------------------------------------------------------------------------------


def _xyxy(xywh, grid_size):
    """(N, S, S, ..., 4) cell offsets and image-relative sizes -> xyxy image units."""
    steps = torch.arange(grid_size, device=xywh.device, dtype=xywh.dtype)
    shape = (1, 1, grid_size) + (1,) * (xywh.dim() - 4)
    cx = (xywh[..., 0] + steps.view(shape)) / grid_size
    cy = (xywh[..., 1] + steps.view(1, grid_size, 1, *shape[3:])) / grid_size
    w, h = xywh[..., 2], xywh[..., 3]
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def good_yolo_loss(
    output,
    targets,
    boxes_per_cell,
    lambda_coord,
    lambda_noobj,
    *,
    pick="best",
    roots="target",
    swap_lambdas=False,
    noobj_skips_object_cells=False,
    class_per_predictor=False,
    confidence_target="iou",
    reduce="batch",
    obj_weight=1.0,
    as_floats=False,
):
    """Vectorised with gather; the keyword arguments make the wrong variants."""
    if swap_lambdas:
        lambda_coord, lambda_noobj = lambda_noobj, lambda_coord
    n, s = output.shape[:2]
    boxes = output[..., : 5 * boxes_per_cell].reshape(n, s, s, boxes_per_cell, 5)
    has = targets[..., 4]
    with torch.no_grad():
        predicted = _xyxy(torch.cat([boxes[..., :2], boxes[..., 2:4] ** 2], -1), s)
        truth = _xyxy(targets[..., None, :4], s).expand_as(predicted)
        ious = box_iou(predicted.reshape(-1, 4), truth.reshape(-1, 4)).diagonal()
        ious = ious.view(n, s, s, boxes_per_cell).nan_to_num(0.0)
    best = ious.argmax(-1) if pick == "best" else ious.argmin(-1)
    if pick == "first":
        best = torch.zeros_like(best)
    chosen = F.one_hot(best, boxes_per_cell).to(output.dtype) * has[..., None]
    tw = targets[..., None, 2:4]
    pw = boxes[..., 2:4]
    if roots == "target":
        tw = tw.sqrt()
    elif roots == "both":
        tw, pw = tw.sqrt(), pw.sqrt()
    xy = ((boxes[..., :2] - targets[..., None, :2]) ** 2).sum(-1)
    wh = ((pw - tw) ** 2).sum(-1)
    goal = ious if confidence_target == "iou" else torch.ones_like(ious)
    obj = (boxes[..., 4] - goal) ** 2
    noobj_mask = (1 - has[..., None]) if noobj_skips_object_cells else (1 - chosen)
    classes = ((output[..., 5 * boxes_per_cell :] - targets[..., 5:]) ** 2).sum(-1) * has
    if class_per_predictor:
        classes = classes * boxes_per_cell
    terms = {
        "coord_xy": lambda_coord * (chosen * xy),
        "coord_wh": lambda_coord * (chosen * wh),
        "obj": obj_weight * chosen * obj,
        "noobj": lambda_noobj * noobj_mask * boxes[..., 4] ** 2,
        "class": classes,
    }
    if reduce == "mean":
        terms = {k: v.mean() for k, v in terms.items()}
    else:
        terms = {k: v.sum() / (n if reduce == "batch" else 1) for k, v in terms.items()}
    return {k: float(v) for k, v in terms.items()} if as_floats else terms


def good_yolo_loss_loops(output, targets, boxes_per_cell, lambda_coord, lambda_noobj):
    """Python loops over the images, cells and predictors."""
    n, s = output.shape[:2]
    total = dict.fromkeys(("coord_xy", "coord_wh", "obj", "noobj", "class"), output.sum() * 0)
    for b, i, j in ((b, i, j) for b in range(n) for i in range(s) for j in range(s)):
        cell, target = output[b, i, j], targets[b, i, j]
        boxes = cell[: 5 * boxes_per_cell].view(boxes_per_cell, 5)
        if target[4] == 0:
            total["noobj"] = total["noobj"] + lambda_noobj * (boxes[:, 4] ** 2).sum()
            continue
        xywh = torch.cat([boxes[:, :2], boxes[:, 2:4] ** 2], 1)
        offset = torch.tensor([j, i, 0.0, 0.0], device=cell.device)
        scale = torch.tensor([s, s, 1.0, 1.0], device=cell.device)
        corners = _corners((xywh.detach() + offset) / scale)
        truth = _corners((target[None, :4] + offset) / scale)
        ious = box_iou(corners, truth)[:, 0]
        r = int(ious.argmax())
        for k in range(boxes_per_cell):
            if k != r:
                total["noobj"] = total["noobj"] + lambda_noobj * boxes[k, 4] ** 2
        total["coord_xy"] = (
            total["coord_xy"] + lambda_coord * ((boxes[r, :2] - target[:2]) ** 2).sum()
        )
        wh = ((boxes[r, 2:4] - target[2:4].sqrt()) ** 2).sum()
        total["coord_wh"] = total["coord_wh"] + lambda_coord * wh
        total["obj"] = total["obj"] + (boxes[r, 4] - ious[r]) ** 2
        total["class"] = total["class"] + ((cell[5 * boxes_per_cell :] - target[5:]) ** 2).sum()
    return {k: v / n for k, v in total.items()}


def _corners(xywh):
    return torch.cat([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], dim=1)


def _loss(name, **options):
    return _variant(good_yolo_loss, name, **options)


loss_predictor_0 = _loss("loss_predictor_0", pick="first")
loss_lowest_iou = _loss("loss_lowest_iou", pick="worst")
loss_no_roots = _loss("loss_no_roots", roots="none")
loss_root_of_prediction = _loss("loss_root_of_prediction", roots="both")
loss_lambdas_swapped = _loss("loss_lambdas_swapped", swap_lambdas=True)
loss_noobj_skips_object_cells = _loss(
    "loss_noobj_skips_object_cells", noobj_skips_object_cells=True
)
loss_class_per_predictor = _loss("loss_class_per_predictor", class_per_predictor=True)
loss_confidence_target_1 = _loss("loss_confidence_target_1", confidence_target="one")
loss_mean = _loss("loss_mean", reduce="mean")
loss_not_divided_by_n = _loss("loss_not_divided_by_n", reduce="sum")
loss_lambda_coord_on_obj = _loss("loss_lambda_coord_on_obj", obj_weight=5.0)
loss_floats = _loss("loss_floats", as_floats=True)


# ----------------------------------------------------------------------------------------------
# decode_predictions
# ----------------------------------------------------------------------------------------------


def good_decode_predictions(
    output,
    image_size,
    boxes_per_cell,
    score_threshold,
    nms_threshold,
    *,
    score="product",
    all_classes=True,
    square=True,
    cell_offset=True,
    swap_xy=False,
    clip=True,
    per_class=True,
    first_label=1,
    threshold=True,
    pixels=True,
):
    """Vectorised; the keyword arguments make the wrong variants."""
    height, width = image_size
    s = output.shape[0]
    parts = output[..., : 5 * boxes_per_cell].reshape(s, s, boxes_per_cell, 5)
    classes = output[..., 5 * boxes_per_cell :]
    i = torch.arange(s, device=output.device).view(s, 1, 1).float()
    j = torch.arange(s, device=output.device).view(1, s, 1).float()
    if swap_xy:
        i, j = j, i
    if not cell_offset:
        i, j = i * 0, j * 0
    cx, cy = (j + parts[..., 0]) / s, (i + parts[..., 1]) / s
    w, h = parts[..., 2], parts[..., 3]
    if square:
        w, h = w**2, h**2
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1).view(-1, 4)
    if pixels:
        boxes = boxes * torch.tensor([width, height, width, height], device=output.device)
    if clip:
        boxes = clip_boxes_to_image(boxes, (height, width))
    confidence = parts[..., 4].reshape(-1, 1)
    per_box = classes[:, :, None, :].expand(s, s, boxes_per_cell, -1).reshape(-1, classes.shape[-1])
    scores = {"product": confidence * per_box, "confidence": confidence.expand_as(per_box)}
    scores = scores.get(score, per_box)
    if not all_classes:
        scores, label_index = scores.max(dim=1, keepdim=True)
    else:
        label_index = torch.arange(scores.shape[1], device=output.device).expand_as(scores)
    box_index = torch.arange(len(boxes), device=output.device)[:, None].expand_as(scores)
    scores, label_index, box_index = scores.flatten(), label_index.flatten(), box_index.flatten()
    keep = scores >= score_threshold if threshold else scores == scores
    scores, labels, boxes = scores[keep], label_index[keep] + first_label, boxes[box_index[keep]]
    if per_class:
        keep = batched_nms(boxes, scores, labels, nms_threshold)
    else:
        keep = nms(boxes, scores, nms_threshold)
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}


def good_decode_predictions_loops(
    output, image_size, boxes_per_cell, score_threshold, nms_threshold
):
    """Python loops over the cells, predictors and classes, then one NMS per class."""
    height, width = image_size
    s = output.shape[0]
    num_classes = output.shape[-1] - 5 * boxes_per_cell
    found = {c: ([], []) for c in range(1, num_classes + 1)}
    for i in range(s):
        for j in range(s):
            for b in range(boxes_per_cell):
                x, y, rw, rh, conf = output[i, j, 5 * b : 5 * b + 5].tolist()
                cx, cy = (j + x) / s * width, (i + y) / s * height
                w, h = rw * rw * width, rh * rh * height
                box = [max(cx - w / 2, 0), max(cy - h / 2, 0), min(cx + w / 2, width)]
                box.append(min(cy + h / 2, height))
                for c in range(num_classes):
                    score = conf * float(output[i, j, 5 * boxes_per_cell + c])
                    if score >= score_threshold:
                        found[c + 1][0].append(box)
                        found[c + 1][1].append(score)
    rows = []
    for label, (boxes, scores) in found.items():
        if boxes:
            boxes, scores = torch.tensor(boxes), torch.tensor(scores)
            for k in nms(boxes, scores, nms_threshold).tolist():
                rows.append((scores[k], boxes[k], label))
    rows.sort(key=lambda row: -float(row[0]))
    device = output.device
    return {
        "boxes": torch.stack([r[1] for r in rows]).to(device)
        if rows
        else torch.zeros(0, 4, device=device),
        "scores": torch.tensor([float(r[0]) for r in rows], device=device),
        "labels": torch.tensor([r[2] for r in rows], dtype=torch.int64, device=device),
    }


def _decode(name, **options):
    return _variant(good_decode_predictions, name, **options)


decode_confidence_only = _decode("decode_confidence_only", score="confidence")
decode_class_only = _decode("decode_class_only", score="class")
decode_argmax_class = _decode("decode_argmax_class", all_classes=False)
decode_not_squared = _decode("decode_not_squared", square=False)
decode_no_cell_offset = _decode("decode_no_cell_offset", cell_offset=False)
decode_xy_swapped = _decode("decode_xy_swapped", swap_xy=True)
decode_no_clipping = _decode("decode_no_clipping", clip=False)
decode_class_agnostic_nms = _decode("decode_class_agnostic_nms", per_class=False)
decode_labels_from_0 = _decode("decode_labels_from_0", first_label=0)
decode_no_threshold = _decode("decode_no_threshold", threshold=False)
decode_image_units = _decode("decode_image_units", pixels=False)
