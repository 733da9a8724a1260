"""YOLO v1 (Redmon et al., CVPR 2016): detection as one regression, on an S x S grid.

The image is divided into S x S cells; the cell that holds an object's centre is responsible for it.
Each cell predicts B boxes (x, y, √w, √h, confidence) and one class distribution (C numbers)::

    targets = encode_targets(boxes, labels, (128, 128))     # (S, S, 5 + C)
    output = model(images)                                   # (N, S, S, B * 5 + C)
    losses = yolo_loss(output, torch.stack(targets))         # the slide's five terms
    detections = decode_predictions(output[0], (128, 128))   # {"boxes", "scores", "labels"}

Layouts (per cell). Target: ``[x, y, w, h, 1, one-hot of the C classes]`` where (x, y) is the
centre's offset inside the cell, in [0, 1] (in cell units), and (w, h) the box's size relative to
the image; an empty cell is all zeros. Output: for each predictor b, ``[x, y, √w, √h, confidence]``
at 5b..5b+4, then the C class scores at 5B..5B+C-1. The network predicts the square roots of w and
h, as the paper's loss compares √w with √ŵ (and as its darknet code does): decoding squares them.

Boxes outside this module are float (N, 4) ``(x1, y1, x2, y2)`` pixels; labels int64 1..C.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import batched_nms, clip_boxes_to_image

from course_utils.core.tensors import plain
from course_utils.core.validate import check_boxes, check_int, check_labels, check_number

__all__ = [
    "LOSS_TERMS",
    "YOLOHead",
    "YOLOv1",
    "cell_boxes",
    "decode_predictions",
    "encode_targets",
    "responsible_predictor",
    "yolo_backbone",
    "yolo_loss",
]

#: The names of the five terms of :func:`yolo_loss`, in the order of the paper's equation.
LOSS_TERMS = ("coord_xy", "coord_wh", "obj", "noobj", "class")


def _grid_cells(centres: torch.Tensor, size: float, grid_size: int) -> tuple:
    """Cell index (int64, clamped to S - 1) and offset in it (float) of coordinates in pixels."""
    scaled = centres / size * grid_size
    index = scaled.floor().clamp(0, grid_size - 1)
    return index.long(), scaled - index


def encode_targets(
    boxes: torch.Tensor,
    labels: torch.Tensor,
    image_size: tuple[int, int],
    grid_size: int = 7,
    num_classes: int = 3,
) -> torch.Tensor:
    """One image's ground truth as the S x S target grid: float32 (S, S, 5 + C).

    The box whose centre lies in cell (i, j) (row i = floor(cy / H * S), column j = floor(cx / W *
    S), clamped to 0..S - 1 so that a centre on the right or bottom edge stays in the last cell)
    writes ``[x, y, w, h, 1, one-hot]`` there. A cell holds one object: when several centres fall in
    the same cell, the first box (in ground-truth order) keeps it and the others are lost, the limit
    of the grid that notebook 06 measures.

    Args:
        boxes: float (N, 4) xyxy pixels. labels: int64 (N,) in 1..C. image_size: (H, W).
    """
    height, width = _image_size(image_size)
    boxes = check_boxes(plain(boxes), "boxes").float()
    labels = check_labels(plain(labels), len(boxes), "labels")
    grid_size = check_int(grid_size, "grid_size")
    num_classes = check_int(num_classes, "num_classes")
    if len(labels) and (int(labels.min()) < 1 or int(labels.max()) > num_classes):
        raise ValueError(f"labels must lie in 1..{num_classes}, got {labels.tolist()}")
    target = torch.zeros(grid_size, grid_size, 5 + num_classes, device=boxes.device)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    columns, x = _grid_cells(cx, width, grid_size)
    rows, y = _grid_cells(cy, height, grid_size)
    for k in range(len(boxes)):
        i, j = int(rows[k]), int(columns[k])
        if target[i, j, 4] == 1:
            continue  # the cell is taken: this object is lost
        w, h = (boxes[k, 2] - boxes[k, 0]) / width, (boxes[k, 3] - boxes[k, 1]) / height
        target[i, j, :5] = torch.stack([x[k], y[k], w, h, torch.ones_like(w)])
        target[i, j, 4 + int(labels[k])] = 1.0
    return target


def _image_size(image_size) -> tuple[float, float]:
    """(H, W) as floats; TypeError/ValueError unless two positive numbers."""
    if not (isinstance(image_size, (tuple, list)) and len(image_size) == 2):
        raise TypeError(f"image_size must be (H, W), got {image_size!r}")
    return (
        check_number(image_size[0], "image_size[0] (H)", 0, None, open_minimum=True),
        check_number(image_size[1], "image_size[1] (W)", 0, None, open_minimum=True),
    )


def cell_boxes(xywh: torch.Tensor) -> torch.Tensor:
    """Boxes ``(..., S, S, 4)`` as (x, y offsets in their cell, w, h relative to the image) ->
    ``(..., S, S, 4)`` xyxy in image units ([0, 1]: multiply by (W, H, W, H) for pixels)."""
    grid_size = xywh.shape[-2]
    steps = torch.arange(grid_size, device=xywh.device, dtype=xywh.dtype)
    cx = (xywh[..., 0] + steps[None, :]) / grid_size  # column j along the last grid axis
    cy = (xywh[..., 1] + steps[:, None]) / grid_size  # row i along the first
    half_w, half_h = xywh[..., 2] / 2, xywh[..., 3] / 2
    return torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=-1)


def _predicted_boxes(output: torch.Tensor, boxes_per_cell: int) -> torch.Tensor:
    """(N, S, S, B, 4) xyxy image units of the B predictors (√w, √h squared)."""
    parts = output[..., : 5 * boxes_per_cell].unflatten(-1, (boxes_per_cell, 5))
    xywh = torch.cat([parts[..., :2], parts[..., 2:4] ** 2], dim=-1)  # (N, S, S, B, 4)
    return cell_boxes(xywh.movedim(-2, 1)).movedim(1, -2)


def responsible_predictor(
    output: torch.Tensor, targets: torch.Tensor, boxes_per_cell: int = 2
) -> tuple[torch.Tensor, torch.Tensor]:
    """For every cell, which of the B predictors is responsible for its object and that box's IoU.

    The responsible predictor is the one whose box has the highest IoU with the cell's ground-truth
    box (the first one on ties). Returns ``(index int64 (N, S, S), iou float (N, S, S))`` (no
    gradient); meaningful only where the cell holds an object.
    """
    with torch.no_grad():
        predicted = _predicted_boxes(output.float(), boxes_per_cell)  # (N, S, S, B, 4)
        truth = cell_boxes(targets[..., :4].float())  # (N, S, S, 4)
        ious = torch.stack(
            [_paired_iou(predicted[..., b, :], truth) for b in range(boxes_per_cell)], dim=-1
        )
        best, index = ious.max(dim=-1)
    return index, best


def _paired_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of boxes a[k] and b[k] for (..., 4) xyxy tensors of the same shape: (...)."""
    flat_a, flat_b = a.reshape(-1, 4), b.reshape(-1, 4)
    if len(flat_a) == 0:
        return a.new_zeros(a.shape[:-1])
    lt = torch.maximum(flat_a[:, :2], flat_b[:, :2])
    rb = torch.minimum(flat_a[:, 2:], flat_b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    area_a = (flat_a[:, 2:] - flat_a[:, :2]).clamp(min=0).prod(dim=1)
    area_b = (flat_b[:, 2:] - flat_b[:, :2]).clamp(min=0).prod(dim=1)
    union = area_a + area_b - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))
    return iou.reshape(a.shape[:-1])


def yolo_loss(
    output: torch.Tensor,
    targets: torch.Tensor,
    boxes_per_cell: int = 2,
    lambda_coord: float = 5.0,
    lambda_noobj: float = 0.5,
) -> dict[str, torch.Tensor]:
    """The paper's sum-squared loss, its five terms returned separately (each a 0-dim tensor).

    With 1_ij^obj = "cell i holds an object and predictor j is responsible for it"
    (:func:`responsible_predictor`), 1_ij^noobj its complement (every other predictor, in empty
    cells and in an object's cell), and 1_i^obj = "cell i holds an object":

    * ``coord_xy`` = λcoord Σ 1_ij^obj [(x - x̂)² + (y - ŷ)²]
    * ``coord_wh`` = λcoord Σ 1_ij^obj [(√w - √ŵ)² + (√h - √ĥ)²] (the output already is √w, √h)
    * ``obj`` = Σ 1_ij^obj (C - Ĉ)², the target Ĉ being the IoU of the predicted box with the
      ground truth (the paper's definition of confidence)
    * ``noobj`` = λnoobj Σ 1_ij^noobj C²
    * ``class`` = Σ 1_i^obj Σ_c (p(c) - p̂(c))², once per cell

    Each is summed over the grid and divided by the batch size N.

    Args:
        output: float (N, S, S, B * 5 + C). targets: float (N, S, S, 5 + C)
            (:func:`encode_targets`).
    """
    if output.ndim != 4 or targets.ndim != 4 or output.shape[:3] != targets.shape[:3]:
        raise ValueError(
            f"output (N, S, S, B*5+C) and targets (N, S, S, 5+C) must share (N, S, S), got "
            f"{tuple(output.shape)} and {tuple(targets.shape)}"
        )
    boxes_per_cell = check_int(boxes_per_cell, "boxes_per_cell")
    num_classes = targets.shape[-1] - 5
    if output.shape[-1] != 5 * boxes_per_cell + num_classes:
        raise ValueError(
            f"output has {output.shape[-1]} numbers per cell, expected B*5 + C = "
            f"{5 * boxes_per_cell + num_classes}"
        )
    batch = output.shape[0]
    targets = targets.to(output.dtype)
    has_object = targets[..., 4]  # 1_i^obj, (N, S, S)
    index, iou = responsible_predictor(output, targets, boxes_per_cell)
    chosen = nn.functional.one_hot(index, boxes_per_cell).to(output.dtype) * has_object[..., None]
    parts = output[..., : 5 * boxes_per_cell].unflatten(-1, (boxes_per_cell, 5))  # (N,S,S,B,5)
    truth = targets[..., None, :4]
    xy = ((parts[..., :2] - truth[..., :2]) ** 2).sum(-1)
    wh = ((parts[..., 2:4] - truth[..., 2:4].clamp(min=0).sqrt()) ** 2).sum(-1)
    confidence = parts[..., 4]
    classes = ((output[..., 5 * boxes_per_cell :] - targets[..., 5:]) ** 2).sum(-1)
    return {
        "coord_xy": lambda_coord * (chosen * xy).sum() / batch,
        "coord_wh": lambda_coord * (chosen * wh).sum() / batch,
        "obj": (chosen * (confidence - iou[..., None].to(output.dtype)) ** 2).sum() / batch,
        "noobj": lambda_noobj * ((1 - chosen) * confidence**2).sum() / batch,
        "class": (has_object * classes).sum() / batch,
    }


def decode_predictions(
    output: torch.Tensor,
    image_size: tuple[int, int],
    boxes_per_cell: int = 2,
    score_threshold: float = 0.05,
    nms_threshold: float = 0.5,
) -> dict[str, torch.Tensor]:
    """One image's grid output (S, S, B * 5 + C) -> detections ``{"boxes", "scores", "labels"}``.

    Every predictor's box (in pixels, clipped to the image) gets one score per class: its
    confidence times the cell's class score, both clamped at 0 (the outputs are linear and may be
    negative), the paper's class-specific confidence; pairs scoring below ``score_threshold`` are
    dropped, then per-class NMS (``torchvision.ops.batched_nms``).
    Returns boxes float (K, 4) xyxy pixels, scores (K,), labels int64 (K,) in 1..C, best first.
    """
    if output.ndim != 3 or output.shape[0] != output.shape[1]:
        raise ValueError(f"output must be one image's (S, S, B*5+C), got {tuple(output.shape)}")
    check_number(score_threshold, "score_threshold", 0.0, 1.0)
    check_number(nms_threshold, "nms_threshold", 0.0, 1.0)
    boxes_per_cell = check_int(boxes_per_cell, "boxes_per_cell")
    num_classes = output.shape[-1] - 5 * boxes_per_cell
    if num_classes < 1:
        raise ValueError(
            f"output has {output.shape[-1]} numbers per cell: B*5 + C with B = {boxes_per_cell} "
            "needs C >= 1 class scores after the boxes"
        )
    output = output.float()
    height, width = (int(v) for v in _image_size(image_size))
    scale = output.new_tensor([width, height, width, height])
    boxes = _predicted_boxes(output[None], boxes_per_cell)[0].reshape(-1, 4) * scale  # (S*S*B, 4)
    boxes = clip_boxes_to_image(boxes, (height, width))
    confidence = output[..., 4 : 5 * boxes_per_cell : 5].reshape(-1).clamp(min=0)  # (S*S*B,)
    class_scores = output[..., 5 * boxes_per_cell :].clamp(min=0)  # (S, S, C)
    class_scores = class_scores[:, :, None, :].expand(-1, -1, boxes_per_cell, -1)
    scores = (confidence[:, None] * class_scores.reshape(-1, num_classes)).reshape(-1)
    labels = torch.arange(1, num_classes + 1, device=output.device).repeat(len(boxes))
    boxes = boxes.repeat_interleave(num_classes, dim=0)
    keep = scores >= score_threshold
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = batched_nms(boxes, scores, labels, nms_threshold)
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}


class YOLOHead(nn.Module):
    """The paper's fully connected head, scaled down: features (N, D, h, w) -> (N, S, S, B*5 + C).

    flatten -> ``fc1`` Linear(D*h*w, hidden) -> leaky ReLU (0.1) -> dropout -> ``fc2``
    Linear(hidden, S*S*(B*5 + C)) -> reshape. The paper: 7x7x1024 -> 4096 -> 7x7x30, dropout 0.5.
    """

    def __init__(
        self,
        in_features: int,
        grid_size: int = 7,
        boxes_per_cell: int = 2,
        num_classes: int = 3,
        hidden: int = 512,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        for value, name in (
            (in_features, "in_features"),
            (grid_size, "grid_size"),
            (boxes_per_cell, "boxes_per_cell"),
            (num_classes, "num_classes"),
            (hidden, "hidden"),
        ):
            check_int(value, name)
        check_number(dropout, "dropout", 0, 1, open_maximum=True)
        self.grid_size, self.boxes_per_cell = grid_size, boxes_per_cell
        self.per_cell = 5 * boxes_per_cell + num_classes
        self.fc1 = nn.Linear(in_features, hidden)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, grid_size * grid_size * self.per_cell)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = nn.functional.leaky_relu(self.fc1(features.flatten(1)), 0.1)
        output = self.fc2(self.dropout(hidden))
        return output.view(-1, self.grid_size, self.grid_size, self.per_cell)


def yolo_backbone(width: int = 16, blocks: int = 5) -> nn.Sequential:
    """A small convolutional trunk trained from scratch: ``blocks`` x (3x3 conv, BatchNorm, leaky
    ReLU 0.1, 2x2 max pooling), channels width, 2 width, 4 width...: (N, 3, H, W) ->
    (N, width * 2^(blocks-1), H / 2^blocks, W / 2^blocks)."""
    check_int(width, "width")
    check_int(blocks, "blocks")
    layers, channels = [], 3
    for block in range(blocks):
        out = width * 2**block
        layers += [
            nn.Conv2d(channels, out, 3, padding=1, bias=False),
            nn.BatchNorm2d(out),
            nn.LeakyReLU(0.1),
            nn.MaxPool2d(2),
        ]
        channels = out
    return nn.Sequential(*layers)


class YOLOv1(nn.Module):
    """Backbone + head: images (N, 3, H, W) in [0, 1] -> grid output (N, S, S, B*5 + C).

    ``boxes_per_cell`` (B, needed to read the output) is the head's attribute of that name when it
    has one, else 2.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head
        self.boxes_per_cell = check_int(getattr(head, "boxes_per_cell", 2), "head.boxes_per_cell")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))

    @torch.no_grad()
    def detect(self, images: torch.Tensor, **decode_kwargs) -> list[dict]:
        """Detections per image (eval mode, the mode restored): :func:`decode_predictions` of each
        output; ``images`` (N, 3, H, W) or a list of same-size (3, H, W), on any device."""
        batch = images if isinstance(images, torch.Tensor) else torch.stack(list(images))
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        try:
            outputs = self(plain(batch).to(device))
        finally:
            self.train(was_training)
        size = tuple(batch.shape[-2:])
        return [
            {
                key: value.to(batch.device)
                for key, value in decode_predictions(
                    output, size, self.boxes_per_cell, **decode_kwargs
                ).items()
            }
            for output in outputs
        ]
