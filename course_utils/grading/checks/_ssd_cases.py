"""The cases of the SSD checks (``checks.ssd``; private: not a topic module).

Every case is deterministic (fixed seeds) and small. The boxes whose IoU sits exactly on a
threshold, or ties, are built so that the IoUs are computed exactly (0.5, 1/3); the random ones
stay away from the threshold and from ties (the tests check).
"""

from __future__ import annotations

import torch

from course_utils.detection.ssd_boxes import default_boxes
from course_utils.grading.runner import Case, with_device_copies

__all__ = [
    "default_boxes_cases",
    "hard_negative_mining_cases",
    "match_default_boxes_cases",
    "ssd_heads_cases",
]

_SEED = 707
_MATCH_SEED = 709  # its random ground truths have no IoU near a threshold or a tie (tests check)

# ----------------------------------------------------------------------------------------------
# default_boxes
# ----------------------------------------------------------------------------------------------

_SIZES = (
    "A cell of map k holds, as (width, height) fractions of the image: the square [s_k, s_k], "
    "the extra square [s'_k, s'_k] with s'_k = sqrt(s_k * s_{k+1}), then for each ratio r a wide "
    "box [s_k sqrt(r), s_k / sqrt(r)] followed by its tall transpose; s_k = scales[k] (scales[0] "
    "for the first map, not a scale computed from s_min and s_max)."
)
_CENTRE = (
    "The boxes of cell (row i, column j) of an (h, w) map are centred at ((j + 0.5) / w * W, "
    "(i + 0.5) / h * H): the middle of the cell, not its corner; return (x1, y1, x2, y2) pixels."
)
_ORDER = (
    "Order of the rows: map by map in the order given; within a map cell by cell, row by row "
    "(cell (i, j) then (i, j + 1): x runs along the w columns); within a cell its boxes in the "
    "order of the sizes (all the boxes of a cell are consecutive)."
)
_CLIP = (
    "clip=True clamps the relative widths and heights to [0, 1] (no box larger than the image) "
    "BEFORE the conversion to corners; it does not move or cut the boxes, so a box centred near "
    "the border may still stick out of the image (torchvision's DefaultBoxGenerator)."
)


def default_boxes_cases() -> list[Case]:
    """The cases of ``check_default_boxes`` (CPU only: the function takes no tensor):
    ``(feature_sizes, image_size, scales, aspect_ratios, clip)``."""
    return [
        Case(
            "a single cell (1x1 map), scales (0.5, 0.8), ratio 2: the cell's 4 boxes",
            ([(1, 1)], (100, 100), (0.5, 0.8), [[2]], True),
            hint=_SIZES + " " + _CENTRE,
        ),
        Case(
            "a 2x3 map (h = 2 rows, w = 3 columns) on a 96x96 image, scales (0.2, 0.3), ratio 2",
            ([(2, 3)], (96, 96), (0.2, 0.3), [[2]], True),
            hint=_ORDER + " " + _CENTRE,
        ),
        Case(
            "two maps, 3x3 then 1x1, on a 90x90 image: scales (0.2, 0.5, 0.9), ratios [[2], "
            "[2, 3]]",
            ([(3, 3), (1, 1)], (90, 90), (0.2, 0.5, 0.9), [[2], [2, 3]], True),
            hint="Map k uses s_k = scales[k] and, for its extra box only, scales[k + 1]: the last "
            "scale serves only the last map's extra box. " + _ORDER,
        ),
        Case(
            "a non-square 64x128 image (H x W) and a 2x4 map, scales (0.15, 0.2), ratio 2",
            ([(2, 4)], (64, 128), (0.15, 0.2), [[2]], True),
            hint="image_size is (H, W): x and the widths are fractions of W, y and the heights "
            "fractions of H (so a 'square' box of scale s is s * W wide and s * H tall). "
            + _CENTRE,
        ),
        Case(
            "a 2x2 map with large boxes (scale 0.6): those of the border cells stick out",
            ([(2, 2)], (100, 100), (0.6, 0.7), [[2]], True),
            hint=_CLIP,
        ),
        Case(
            "a box wider than the image (scale 0.9, ratio 3: width 1.56 W) with clip=True",
            ([(1, 1)], (80, 120), (0.9, 1.0), [[3]], True),
            hint=_CLIP + " Here the wide box's relative width 0.9 * sqrt(3) becomes 1.",
        ),
        Case(
            "the same box with clip=False keeps its width 1.56 W",
            ([(1, 1)], (80, 120), (0.9, 1.0), [[3]], False),
            hint="clip=False: no clamping at all, the sizes stay as computed. " + _CLIP,
        ),
        Case(
            "SSD-like: maps 5x5, 3x3, 1x1 on a 150x150 image, ratios [[2], [2, 3], [2]]",
            (
                [(5, 5), (3, 3), (1, 1)],
                (150, 150),
                (0.2, 0.45, 0.7, 0.95),
                [[2], [2, 3], [2]],
                True,
            ),
            hint=_SIZES + " " + _ORDER,
        ),
        Case(
            "non-square maps (4x6 then 2x3) on a 120x180 image, ratios [[2, 3], [2]]",
            ([(4, 6), (2, 3)], (120, 180), (0.25, 0.5, 0.8), [[2, 3], [2]], True),
            hint=_ORDER + " " + _CENTRE + " " + _CLIP,
        ),
    ]


# ----------------------------------------------------------------------------------------------
# match_default_boxes
# ----------------------------------------------------------------------------------------------

_RULES = (
    "1. every default box whose best IoU is >= iou_threshold gets the index of that best "
    "ground-truth box, the others -1; 2. THEN every ground-truth box takes its own best default "
    "box (argmax over the default boxes), whatever the IoU."
)
_FORCED = (
    "Step 2 comes after the threshold and overrides it: each ground-truth box's best default box "
    "(argmax over the default boxes) is matched to that ground truth even below iou_threshold, "
    "so that no object is left without a positive box."
)


def _match_case(name, defaults, gt_boxes, hint, threshold=0.5) -> Case:
    gt = gt_boxes if isinstance(gt_boxes, torch.Tensor) else torch.tensor(gt_boxes)
    return Case(name, (torch.tensor(defaults), gt, threshold), hint=hint)


def _random_gt_boxes(n: int, g: torch.Generator, size: float) -> torch.Tensor:
    """``n`` float32 boxes (n, 4) xyxy, fractional corners, sides 20..60 pixels, in a square
    image of side ``size``."""
    wh = 20 + torch.rand(n, 2, generator=g, dtype=torch.float64) * 40
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * (size - wh)
    return torch.cat([xy, xy + wh], dim=1).float()


def _cpu_only_match_cases() -> list[Case]:
    """On CUDA, ``matches[best] = arange(G)`` with a repeated index is nondeterministic."""
    return [
        _match_case(
            "two ground-truth boxes pick the same default box: the later one (box 1) keeps it",
            [[1.0, 0.0, 11.0, 10.0], [40.0, 0.0, 50.0, 10.0], [20.0, 20.0, 30.0, 30.0]],
            [[0.0, 0.0, 10.0, 10.0], [2.0, 0.0, 13.0, 10.0]],
            "When two ground-truth boxes have the same best default box, the later ground truth "
            "(higher index) keeps it, as assigning the forced matches in the order of the ground "
            "truths does. " + _FORCED,
        )
    ]


def match_default_boxes_cases() -> list[Case]:
    """The cases of ``check_match_default_boxes`` (on every available device, except the one
    whose answer a CUDA index assignment leaves undefined): ``(default_boxes, gt_boxes,
    iou_threshold)``."""
    g = torch.Generator().manual_seed(_MATCH_SEED)
    grid = default_boxes([(3, 3), (2, 2), (1, 1)], (96, 96), (0.3, 0.5, 0.8, 0.95), [[2]] * 3)
    square = [[0.0, 0.0, 10.0, 10.0]]
    cases = [
        _match_case(
            "no ground-truth box (G = 0): every default box is unmatched (-1)",
            grid[:8].tolist(),
            torch.zeros(0, 4),
            "With G = 0 there is no IoU to take a maximum of: return a (D,) int64 tensor of -1 "
            "on default_boxes' device first (not 0, which would mean 'matches box 0').",
        ),
        _match_case(
            "one ground-truth box, equal to default box 1 (IoU 1); box 2 overlaps it by 2/3",
            [[20.0, 20.0, 30.0, 30.0], *square, [2.0, 0.0, 12.0, 10.0], [5.0, 0.0, 15.0, 10.0]],
            square,
            "Return the INDEX of the matched ground-truth box (0 here) or -1 (unmatched); not "
            "labels 1 / 0, and no -2: SSD has no 'ignored' band. " + _RULES,
        ),
        _match_case(
            "a small object: its best default box has IoU 0.16 < 0.5, yet it is matched",
            [[0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 10.0]],
            [[0.0, 0.0, 4.0, 4.0]],
            _FORCED + " Apply it after the threshold, or the threshold undoes it.",
        ),
        _match_case(
            "an IoU exactly equal to the threshold (0.5) matches: >=",
            [*square, [0.0, 0.0, 10.0, 20.0], [0.0, 0.0, 20.0, 20.0]],
            square,
            "A default box matches when its best IoU >= iou_threshold (torchvision's "
            "SSDMatcher), so an IoU equal to the threshold matches. " + _RULES,
        ),
        _match_case(
            "default box 1 is ground truth 0's best box but overlaps ground truth 1 more",
            [[20.0, 0.0, 30.0, 10.0], [4.0, 0.0, 14.0, 10.0], [5.0, 0.0, 15.0, 10.0]],
            [*square, [5.0, 0.0, 15.0, 10.0]],
            "A forced match gives the default box to the ground truth that picked it (0 here), "
            "overriding the threshold's match with ground truth 1 (IoU 0.82); unlike notebook "
            "05's low-quality rule, which keeps the box's own best ground truth. " + _RULES,
        ),
        _match_case(
            "two default boxes tie for a ground truth's best IoU (1/3): only the first is forced",
            [[0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 20.0, 10.0], [40.0, 40.0, 50.0, 50.0]],
            [[5.0, 0.0, 15.0, 10.0]],
            "Each ground-truth box forces ONE default box, its argmax (the first of equal "
            "IoUs), not every tied box as notebook 05's low-quality rule. " + _FORCED,
        ),
        _match_case(
            "iou_threshold 0.3: a default box with IoU 1/3 now matches",
            [*square, [5.0, 0.0, 15.0, 10.0], [0.0, 0.0, 20.0, 20.0]],
            square,
            "Use the iou_threshold argument, not the paper's 0.5. " + _RULES,
            threshold=0.3,
        ),
        _match_case(
            "56 default boxes of three maps and 3 random ground-truth boxes (threshold 0.5)",
            grid.tolist(),
            _random_gt_boxes(3, g, 96.0),
            "For every default box take the best over the ground-truth boxes (dim 0 of the "
            "(G, D) IoU matrix, one value per default box). " + _RULES,
        ),
        _match_case(
            "the same default boxes, 5 random ground-truth boxes, threshold 0.4",
            grid.tolist(),
            _random_gt_boxes(5, g, 96.0),
            _RULES,
            threshold=0.4,
        ),
    ]
    defaults, gt = grid[::2].double(), _random_gt_boxes(2, g, 96.0).double()
    cases.append(
        Case(
            "float64 boxes: still int64 indices",
            (defaults, gt, 0.5),
            hint="The result holds indices: int64 whatever the boxes' dtype.",
        )
    )
    cpu = cases[:5] + _cpu_only_match_cases() + cases[5:]
    return cpu + with_device_copies(cases)[len(cases) :]


# ----------------------------------------------------------------------------------------------
# hard_negative_mining
# ----------------------------------------------------------------------------------------------

_KEEP = (
    "Keep every positive (label > 0) and, per image, the k = neg_pos_ratio * max(P, 1) "
    "negatives (label 0) of HIGHEST confidence loss, P the image's number of positives, k at "
    "most its number of negatives; the mask is positives OR the kept negatives."
)


def _mining_case(name, losses, labels, hint, ratio=3, dtype=torch.float32) -> Case:
    loss = torch.tensor(losses, dtype=dtype)
    return Case(name, (loss, torch.tensor(labels, dtype=torch.int64), ratio), hint=hint)


def _random_mining_inputs(seed: int, n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Losses: a random permutation of 0.05 * (1..N*D) (no ties); labels: about 1 in 10
    positive (classes 1..3), at least one positive in image 0, none in the last image."""
    g = torch.Generator().manual_seed(seed)
    loss = (torch.randperm(n * d, generator=g).float() + 1) * 0.05
    labels = torch.randint(1, 4, (n, d), generator=g) * (torch.rand(n, d, generator=g) < 0.1)
    labels[0, 0], labels[-1] = 2, 0
    return loss.view(n, d), labels


def hard_negative_mining_cases() -> list[Case]:
    """The cases of ``check_hard_negative_mining`` (on every available device):
    ``(confidence_loss, labels, neg_pos_ratio)``."""
    loss, labels = _random_mining_inputs(_SEED + 2, 3, 40)
    cases = [
        _mining_case(
            "one image, 2 positives and 8 negatives: keep the positives and the 6 hardest "
            "negatives",
            [[0.1, 0.9, 0.3, 2.0, 0.2, 0.05, 1.5, 0.7, 0.4, 1.1]],
            [[1, 0, 0, 0, 2, 0, 0, 0, 0, 0]],
            _KEEP,
        ),
        _mining_case(
            "the positive has the highest loss: it does not take a negative's place",
            [[3.0, 0.5, 0.2, 0.9, 0.1, 0.6, 0.3]],
            [[1, 0, 0, 0, 0, 0, 0]],
            "Rank the negatives only (e.g. set the positives' loss to -inf before sorting): a "
            "positive must not take one of the k places. " + _KEEP,
        ),
        _mining_case(
            "a batch of 2 images: image 0's losses are all higher, each keeps its own hardest",
            [[2.0, 2.5, 3.0, 3.5, 4.0, 4.5], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]],
            [[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 3]],
            "Rank and count per image: image n keeps its own k_n = neg_pos_ratio * P_n hardest "
            "negatives, ranked among its own negatives (sort along dim 1), not across the batch.",
        ),
        _mining_case(
            "image 1 has no positive: it still keeps neg_pos_ratio (3) negatives",
            [[0.5, 0.4, 0.3, 0.2, 0.1, 0.6, 0.9], [0.6, 0.1, 0.8, 0.3, 0.7, 0.2, 0.4]],
            [[1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0]],
            "k = neg_pos_ratio * max(P, 1): an image without objects keeps neg_pos_ratio "
            "negatives, so that it still teaches 'nothing here' (torchvision keeps none there; "
            "keeping all of them would drown the positives).",
        ),
        _mining_case(
            "3 positives and only 5 negatives: k = 9 is capped, every negative is kept",
            [[0.3, 0.2, 0.9, 0.1, 0.5, 0.4, 0.8, 0.7]],
            [[1, 0, 2, 0, 0, 1, 0, 0]],
            "k is at most the image's number of negatives: keep them all when there are fewer "
            "(torch.topk(k) with k larger than the number of values raises). " + _KEEP,
        ),
        _mining_case(
            "tied losses across the cut: the negative of lower index is kept first",
            [[0.9, 0.5, 0.2, 0.5, 0.5, 0.2, 0.5, 0.1]],
            [[1, 0, 0, 0, 0, 0, 0, 0]],
            "On equal losses keep the lower index first: a STABLE descending sort "
            "(torch.sort(..., descending=True, stable=True)). " + _KEEP,
        ),
        _mining_case(
            "neg_pos_ratio 2: 2 negatives per positive",
            [[0.7, 0.2, 0.6, 0.9, 0.1, 0.4, 0.8, 0.3]],
            [[0, 0, 1, 0, 0, 0, 0, 0]],
            "Use the neg_pos_ratio argument, not a fixed 3. " + _KEEP,
            ratio=2,
        ),
        _mining_case(
            "every default box is positive: no negative to keep",
            [[0.4, 0.1, 0.3]],
            [[1, 2, 1]],
            "With no negative, k is capped at 0: the mask is the positives. " + _KEEP,
        ),
        Case(
            "a random batch of 3 images of 40 default boxes (the last one without objects)",
            (loss, labels, 3),
            hint=_KEEP,
        ),
        _mining_case(
            "float64 losses: the mask is still bool",
            [[0.3, 0.1, 0.8, 0.6, 0.2]],
            [[0, 1, 0, 0, 0]],
            "Return a bool mask (N, D), whatever the losses' dtype. " + _KEEP,
            ratio=2,
            dtype=torch.float64,
        ),
    ]
    return with_device_copies(cases)


# ----------------------------------------------------------------------------------------------
# SSDHeads
# ----------------------------------------------------------------------------------------------


def ssd_heads_cases() -> list[Case]:
    """The cases of ``check_SSDHeads``: ``(in_channels, boxes_per_location, num_classes)`` (CPU
    only; the comparator makes the features)."""
    layers = (
        "classification[k] = nn.Conv2d(c_k, b_k * num_classes, 3, padding=1) and regression[k] "
        "= nn.Conv2d(c_k, b_k * 4, 3, padding=1), one of each per map in nn.ModuleLists; each "
        "map's output (N, b * X, h, w) becomes (N, h * w * b, X) (view (N, b, X, h, w), cells "
        "then boxes), the maps concatenated in order."
    )
    return [
        Case(
            "two maps: 8 and 6 channels, 4 and 6 boxes per cell, 3 classes",
            ((8, 6), (4, 6), 3),
            hint=layers,
        ),  # fmt: skip
        Case(
            "three maps of 6 channels, 4 boxes per cell each, 5 classes",
            ((6, 6, 6), (4, 4, 4), 5),
            hint="Each map has its own two convolutions, even when the maps have the same "
            "number of channels. " + layers,
        ),
        Case(
            "one map of 4 channels, 6 boxes per cell, 2 classes (background and one object)",
            ((4,), (6,), 2),
            hint="num_classes already counts the background: b * num_classes class channels. "
            + layers,
        ),
    ]
