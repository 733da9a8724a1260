"""The cases of the YOLO v1 checks (``checks.yolo``; private: not a topic module).

Every case is deterministic (fixed seeds) and small. The hand-made ones use coordinates that are
exact in float32 (cells of 16 or 32 pixels, sides that are powers of two), so a centre placed on a
cell border is exactly on it; the random ones stay away from borders, IoU ties and thresholds
(``tests/test_checks_yolo.py`` checks).
"""

from __future__ import annotations

import torch

from course_utils.detection.yolo import encode_targets, responsible_predictor
from course_utils.grading.runner import Case, with_device_copies

__all__ = [
    "decode_predictions_cases",
    "encode_targets_cases",
    "yolo_head_cases",
    "yolo_loss_cases",
]

_SEED = 606

# ----------------------------------------------------------------------------------------------
# encode_targets
# ----------------------------------------------------------------------------------------------

_CELL = (
    "The centre (cx, cy) falls in row i = floor(cy / H * S) and column j = floor(cx / W * S) "
    "(the row comes from y, the column from x); target[i, j] = [x, y, w, h, 1, one-hot], where "
    "x = cx / W * S - j and y = cy / H * S - i are offsets inside the cell (in [0, 1]) and w, h "
    "are the box's width and height divided by the image's W and H."
)
_ONE_HOT = "Class c (labels run 1..C) sets entry 5 + (c - 1): labels start at 1, the one-hot at 0."


def _encode_case(name: str, inputs: tuple, hint: str) -> Case:
    """``inputs`` = (boxes as lists, labels as a list, image_size, grid_size, num_classes)."""
    boxes, labels, *rest = inputs
    tensor = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return Case(name, (tensor, torch.tensor(labels, dtype=torch.int64), *rest), hint=hint)


def _random_objects(
    n: int, g: torch.Generator, size: tuple[int, int], num_classes: int
) -> tuple[list[list[float]], list[int]]:
    """``n`` boxes with fractional corners, sides 8..40 pixels, inside a (H, W) image, and labels
    drawn in 1..C (the last one is C)."""
    height, width = size
    wh = 8 + torch.rand(n, 2, generator=g, dtype=torch.float64) * 32
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * (torch.tensor([width, height]) - wh)
    boxes = torch.cat([xy, xy + wh], dim=1).float()
    labels = torch.randint(1, num_classes + 1, (n,), generator=g)
    labels[-1] = num_classes
    return boxes.tolist(), labels.tolist()


def encode_targets_cases() -> list[Case]:
    """The cases of ``check_encode_targets`` (on every available device): all 5 arguments
    positional, ``(boxes, labels, image_size, grid_size, num_classes)``."""
    g = torch.Generator().manual_seed(_SEED + 1)
    shared = [[4.0, 4.0, 14.0, 20.0], [2.0, 2.0, 10.0, 8.0], [38.0, 34.0, 56.0, 60.0]]
    cases = [
        _encode_case(
            "no objects: a 64x64 image, S = 4, C = 3, the grid is all zeros",
            ([], [], (64, 64), 4, 3),
            "Start from torch.zeros(S, S, 5 + C) (float32, on the boxes' device) and write "
            "nothing when there are no boxes.",
        ),
        _encode_case(
            "one object of class 2 on a 64x64 image, S = 4 (cells of 16 pixels): centre "
            "(42, 18), in row 1, column 2",
            ([[26.0, 6.0, 58.0, 30.0]], [2], (64, 64), 4, 3),
            _CELL + " Take the floor, not the nearest cell (42 / 16 = 2.625: column 2).",
        ),
        _encode_case(
            "a centre exactly on a cell border (32, 48) = column 2, row 3: it belongs to the "
            "cell on its right and below (offsets 0)",
            ([[24.0, 40.0, 40.0, 56.0]], [1], (64, 64), 4, 3),
            "floor(32 / 64 * 4) = 2: a centre on a border belongs to the cell that starts "
            "there, with offset 0. " + _CELL,
        ),
        _encode_case(
            "a centre on the image's right and bottom edge (64, 64): it stays in the last "
            "cell (row 3, column 3), with offsets 1",
            ([[60.0, 62.0, 68.0, 66.0]], [3], (64, 64), 4, 3),
            "64 / 64 * 4 = 4 is one past the last cell: clamp the row and the column to "
            "S - 1 (.clamp(max=S - 1)), the offsets then are 1.0.",
        ),
        _encode_case(
            "two centres in the same cell (row 0, column 0), plus one elsewhere: the FIRST "
            "box keeps the cell",
            (shared, [1, 3, 2], (64, 64), 4, 3),
            "A cell holds one object: skip a box whose cell already has confidence 1, so the "
            "first box in ground-truth order keeps it (do not overwrite it with a later box).",
        ),
        _encode_case(
            "a non-square image (H = 48, W = 96), S = 4: cells are 12 pixels tall and 24 wide",
            ([[30.0, 8.0, 78.0, 42.0], [2.0, 30.0, 14.0, 46.0]], [1, 2], (48, 96), 4, 2),
            "image_size is (H, W): x and w are divided by W, y and h by H. " + _CELL,
        ),
        _encode_case(
            "S = 7, the paper's grid, on a 112x112 image, 4 random objects",
            (*_random_objects(4, g, (112, 112), 3), (112, 112), 7, 3),
            _CELL + " " + _ONE_HOT,
        ),
        _encode_case(
            "5 classes and 6 random objects on a 96x128 image, S = 5",
            (*_random_objects(6, g, (96, 128), 5), (96, 128), 5, 5),
            _ONE_HOT + " " + _CELL,
        ),
    ]
    return with_device_copies(cases)


# ----------------------------------------------------------------------------------------------
# yolo_loss
# ----------------------------------------------------------------------------------------------

_TERMS = (
    "The responsible predictor of an object's cell is the one whose box (x, y, √w², √h²) has the "
    "highest IoU with the ground truth; coord_xy and coord_wh (times λcoord) and obj (target: "
    "that IoU) use it only; noobj (times λnoobj) takes the confidence² of every OTHER predictor, "
    "in empty cells and in objects' cells; class is summed once per object cell. Each term is a "
    "sum divided by N."
)


def _hand_made_loss_inputs(responsible: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A 2x2 grid (B = 2, C = 2) whose cell (0, 0) holds one object [0.75, 0.5, 0.25, 0.25];
    predictor ``responsible`` overlaps it with IoU 1/3, the other with IoU 1/4."""
    targets = torch.zeros(1, 2, 2, 7)
    targets[0, 0, 0] = torch.tensor([0.75, 0.5, 0.25, 0.25, 1.0, 1.0, 0.0])
    output = torch.zeros(1, 2, 2, 12)
    shifted = torch.tensor([0.5, 0.5, 0.5, 0.5, 0.6])  # IoU 1/3
    flat = torch.tensor([0.75, 0.5, 0.5, 0.25, 0.3])  # IoU 1/4
    other = 1 - responsible
    output[0, 0, 0, 5 * responsible : 5 * responsible + 5] = shifted
    output[0, 0, 0, 5 * other : 5 * other + 5] = flat
    output[0, 0, 0, 10:] = torch.tensor([0.7, 0.2])
    output[0, 1, 1] = torch.tensor([0.3, 0.6, 0.4, 0.2, 0.2, 0.5, 0.5, 0.3, 0.1, -0.4, 0.9, 0.8])
    return output, targets


def _random_loss_inputs(
    seed: int, batch: int, grid_size: int, boxes_per_cell: int, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets of 3 random objects per 64x64 image and outputs near them (x, y, √w, √h within
    about 0.15 of the truth in object cells), confidences and class scores in [-0.2, 1.1]."""
    g = torch.Generator().manual_seed(seed)
    targets = torch.stack(
        [
            encode_targets(
                torch.tensor(boxes), torch.tensor(labels), (64, 64), grid_size, num_classes
            )
            for boxes, labels in (
                _random_objects(3, g, (64, 64), num_classes) for _ in range(batch)
            )
        ]
    )
    shape = (batch, grid_size, grid_size, boxes_per_cell, 5)
    truth = torch.cat([targets[..., :2], targets[..., 2:4].sqrt()], dim=-1)[..., None, :]
    noise = (torch.rand(*shape[:-1], 4, generator=g) - 0.5) * 0.3
    near = truth + noise
    anywhere = torch.rand(*shape[:-1], 4, generator=g)
    boxes = torch.where(targets[..., 4, None, None] > 0, near, anywhere)
    confidence = torch.rand(*shape[:-1], 1, generator=g) * 1.3 - 0.2
    classes = torch.rand(*shape[:3], num_classes, generator=g) * 1.3 - 0.2
    output = torch.cat([torch.cat([boxes, confidence], -1).flatten(-2), classes], dim=-1)
    return output, targets


def _negative_roots(output: torch.Tensor, targets: torch.Tensor, boxes_per_cell: int) -> None:
    """Flip the sign of the responsible predictors' √w and √h (their boxes do not change)."""
    index, _ = responsible_predictor(output, targets, boxes_per_cell)
    for position in (targets[..., 4] > 0).nonzero().tolist():
        start = 5 * int(index[tuple(position)])
        output[(*position, slice(start + 2, start + 4))] *= -1


def yolo_loss_cases() -> list[Case]:
    """The cases of ``check_yolo_loss`` (on every available device): ``(output, targets,
    boxes_per_cell, lambda_coord, lambda_noobj)``."""
    negative = _random_loss_inputs(_SEED + 14, 1, 3, 2, 2)
    _negative_roots(*negative, 2)
    cases = [
        Case(
            "a hand-made 2x2 grid, one object: predictor 0 is responsible (IoU 1/3 vs 1/4)",
            (*_hand_made_loss_inputs(0), 2, 5.0, 0.5),
            hint="The network outputs √w and √h: compare them with the square roots of the "
            "target's w and h (not with w and h). " + _TERMS,
        ),
        Case(
            "the same grid where predictor 1 is the responsible one (IoU 1/3 vs 1/4)",
            (*_hand_made_loss_inputs(1), 2, 5.0, 0.5),
            hint="Pick the responsible predictor by the highest IoU (argmax over the B boxes "
            "of the cell), not always predictor 0. The other one goes into noobj. " + _TERMS,
        ),
        Case(
            "an empty 3x3 grid (no object): only the no-object term is not 0",
            (
                *_random_loss_inputs(_SEED + 11, 1, 3, 2, 2)[:1],
                torch.zeros(1, 3, 3, 7),
                2,
                5.0,
                0.5,
            ),
            hint="Every predictor of an empty cell counts in noobj = λnoobj Σ confidence²; "
            "the other terms are 0 (as 0-dim tensors).",
        ),
        Case(
            "random 3x3 grids, B = 2, C = 2, three objects",
            (*_random_loss_inputs(_SEED + 12, 1, 3, 2, 2), 2, 5.0, 0.5),
            hint="The confidence target of the responsible predictor is the IoU of its box with "
            "the ground truth (detached), not 1. " + _TERMS,
        ),
        Case(
            "a batch of 2 images: every term is divided by N = 2",
            (*_random_loss_inputs(_SEED + 13, 2, 3, 2, 2), 2, 5.0, 0.5),
            hint="Sum each term over the grid, the predictors and the batch, then divide by the "
            "batch size N (output.shape[0]); not a mean over cells.",
        ),
        Case(
            "negative √w, √h predictions on the responsible predictors",
            (*negative, 2, 5.0, 0.5),
            hint="The output already IS √w, √h (it may be negative): take the square root of "
            "the TARGET's w and h only; square the prediction to get the box for the IoU.",
        ),
        Case(
            "λcoord = 2 and λnoobj = 0.25 instead of 5 and 0.5, a batch of 2",
            (*_random_loss_inputs(_SEED + 15, 2, 3, 2, 2), 2, 2.0, 0.25),
            hint="Use the lambda_coord and lambda_noobj arguments: λcoord multiplies the two "
            "coordinate terms only, λnoobj the no-object term only (not obj, not class).",
        ),
        Case(
            "B = 3 predictors per cell, S = 4, C = 3",
            (*_random_loss_inputs(_SEED + 23, 1, 4, 3, 3), 3, 5.0, 0.5),
            hint="Predictor b reads output[..., 5b : 5b + 5]; the C class scores come after "
            "the 5B box numbers, one set per cell (not per predictor). " + _TERMS,
        ),
        Case(
            "B = 1 predictor per cell, S = 3, C = 2, λcoord = 3, λnoobj = 1",
            (*_random_loss_inputs(_SEED + 17, 1, 3, 1, 2), 1, 3.0, 1.0),
            hint="With one predictor it is always the responsible one in an object's cell. "
            + _TERMS,
        ),
    ]
    return with_device_copies(cases)


# ----------------------------------------------------------------------------------------------
# YOLOHead and decode_predictions
# ----------------------------------------------------------------------------------------------


def yolo_head_cases() -> list[Case]:
    """The cases of ``check_YOLOHead`` (CPU only): ``(in_features, grid_size, boxes_per_cell,
    num_classes, hidden, dropout)``; in_features = D * 2 * 3 (the check feeds a (2, D, 2, 3)
    map)."""
    layers = (
        "flatten the (N, D, h, w) features (features.flatten(1)) -> fc1 = nn.Linear(in_features, "
        "hidden) -> leaky ReLU with slope 0.1 -> self.dropout = nn.Dropout(dropout) -> fc2 = "
        "nn.Linear(hidden, S * S * (5B + C)) -> .view(N, S, S, 5B + C)."
    )
    return [
        Case(
            "in_features 24, S = 2, B = 1, C = 2, hidden 16, dropout 0.5",
            (24, 2, 1, 2, 16, 0.5),
            hint=layers,
        ),
        Case(
            "in_features 48, S = 3, B = 2, C = 3, hidden 32, dropout 0.5",
            (48, 3, 2, 3, 32, 0.5),
            hint="Use the hidden argument for fc1's size (not 512 or 4096). " + layers,
        ),
        Case(
            "dropout 0: in train mode the output equals the eval mode's",
            (12, 2, 2, 1, 8, 0.0),
            hint="Pass the dropout argument to nn.Dropout (not a fixed 0.5). " + layers,
        ),
        Case(
            "dropout 0.25, in_features 30, S = 2, B = 2, C = 2, hidden 12",
            (30, 2, 2, 2, 12, 0.25),
            hint="Dropout acts on the hidden layer, after the activation and before fc2 (not on "
            "the input features, not on the output). " + layers,
        ),
    ]


_SCORE = (
    "Each predictor's box gets one score per class: its confidence times the cell's class score; "
    "keep every (box, class) pair scoring >= score_threshold (a box may appear with several "
    "labels), then NMS per class (torchvision.ops.batched_nms)."
)
_BOX = (
    "Predictor b of cell (row i, column j) reads [x, y, √w, √h, conf] = output[i, j, 5b : 5b + "
    "5]: centre ((j + x) / S * W, (i + y) / S * H), size (√w² * W, √h² * H), in pixels."
)


def _hand_output(grid_size: int = 3, boxes_per_cell: int = 2, num_classes: int = 3):
    return torch.zeros(grid_size, grid_size, 5 * boxes_per_cell + num_classes)


def _put(output, cell, predictor, box, classes=None):
    """Write predictor ``predictor``'s [x, y, √w, √h, conf] (and the cell's class scores)."""
    output[cell][5 * predictor : 5 * predictor + 5] = torch.tensor(box)
    if classes is not None:
        output[cell][-len(classes) :] = torch.tensor(classes)


def _decode_hand_cases() -> list[Case]:
    two = _hand_output()
    _put(two, (0, 2), 1, [0.5, 0.25, 0.5, 0.25, 0.9], [0.0, 0.8, 0.02])
    _put(two, (2, 0), 0, [0.5, 0.5, 0.5, 0.5, 0.7], [0.0, 0.0, 0.9])
    outside = _hand_output()
    _put(outside, (0, 0), 0, [0.25, 0.25, 0.75, 0.5, 0.8], [0.9, 0.0, 0.0])
    _put(outside, (2, 2), 1, [0.75, 0.5, 0.5, 0.75, 0.6], [0.0, 0.7, 0.0])
    same = _hand_output()  # both predictors of a cell share its class: IoU 0.72
    _put(same, (1, 1), 0, [0.5, 0.5, 0.5, 0.5, 0.9], [0.0, 0.0, 0.8])
    _put(same, (1, 1), 1, [0.45, 0.5, 0.5, 0.45, 0.7])
    different = _hand_output()  # neighbouring cells, other classes, IoU 0.69
    _put(different, (1, 1), 0, [0.9, 0.5, 0.6, 0.6, 0.9], [0.8, 0.0, 0.0])
    _put(different, (1, 2), 1, [0.1, 0.5, 0.6, 0.6, 0.8], [0.0, 0.75, 0.0])
    both = _hand_output()
    _put(both, (2, 1), 0, [0.5, 0.5, 0.4, 0.6, 0.8], [0.5, 0.4, 0.01])
    low = _hand_output() + 0.2  # every score 0.2 * 0.2 = 0.04 < 0.05
    size = (96, 96)
    return [
        Case(
            "two confident boxes in different cells and classes (S = 3, B = 2, C = 3, 96x96)",
            (two, size, 2, 0.05, 0.5),
            hint=_BOX + " Labels are 1..C.",
        ),
        Case(
            "boxes sticking out of the image: clip them to [0, W] x [0, H]",
            (outside, size, 2, 0.05, 0.5),
            hint="Clip the boxes to the image (torchvision.ops.clip_boxes_to_image(boxes, (H, "
            "W))) before NMS. " + _BOX,
        ),
        Case(
            "two overlapping boxes (IoU 0.72) of the same class: NMS keeps the better one",
            (same, size, 2, 0.05, 0.5),
            hint="Both predictors of a cell share its class scores; NMS removes the lower-"
            "scoring box of a pair of the same class overlapping more than nms_threshold.",
        ),
        Case(
            "two overlapping boxes (IoU 0.69) of different classes: both are kept",
            (different, size, 2, 0.05, 0.5),
            hint="NMS is per class (batched_nms(boxes, scores, labels, nms_threshold)): boxes of "
            "different classes never suppress each other.",
        ),
        Case(
            "one box scoring above the threshold for two classes (0.4 and 0.32): two detections",
            (both, size, 2, 0.05, 0.5),
            hint=_SCORE + " Do not keep only the argmax class of each box.",
        ),
        Case(
            "every score is 0.04, below the threshold: no detection",
            (low, size, 2, 0.05, 0.5),
            hint="Return empty tensors of the right shapes and dtypes: boxes float32 (0, 4), "
            "scores float32 (0,), labels int64 (0,). " + _SCORE,
        ),
    ]


def _random_decode_output(seed, grid_size, boxes_per_cell, num_classes):
    """x, y and class scores uniform in [0, 1), √w and √h in [0.15, 0.6), confidences uniform in
    [0, 1) for about a third of the predictors, 0 for the others (a sparse output)."""
    g = torch.Generator().manual_seed(seed)
    shape = (grid_size, grid_size, boxes_per_cell)
    xy = torch.rand(*shape, 2, generator=g)
    roots = 0.15 + torch.rand(*shape, 2, generator=g) * 0.45
    confidence = torch.rand(*shape, 1, generator=g) * (torch.rand(*shape, 1, generator=g) < 0.35)
    classes = torch.rand(grid_size, grid_size, num_classes, generator=g)
    return torch.cat([torch.cat([xy, roots, confidence], -1).flatten(-2), classes], -1)


def decode_predictions_cases() -> list[Case]:
    """The cases of ``check_decode_predictions`` (on every available device): ``(output,
    image_size, boxes_per_cell, score_threshold, nms_threshold)``."""
    cases = _decode_hand_cases() + [
        Case(
            "a random 4x4 output (B = 2, C = 3) on a non-square 96x160 image (H x W), "
            "thresholds 0.3 and 0.4",
            (_random_decode_output(_SEED + 48, 4, 2, 3), (96, 160), 2, 0.3, 0.4),
            hint="image_size is (H, W): x and w scale with W, y and h with H; the row i gives "
            "y, the column j gives x. " + _BOX,
        ),
        Case(
            "a random 7x7 output (B = 2, C = 2) on a 112x80 image, default thresholds",
            (_random_decode_output(_SEED + 115, 7, 2, 2), (112, 80), 2, 0.05, 0.5),
            hint=_SCORE + " " + _BOX,
        ),
        Case(
            "a random 5x5 output with B = 3, C = 4 on a 64x64 image, thresholds 0.2 and 0.6",
            (_random_decode_output(_SEED + 400, 5, 3, 4), (64, 64), 3, 0.2, 0.6),
            hint="With B predictors per cell the class scores start at 5B. " + _SCORE,
        ),
    ]
    return with_device_copies(cases)
