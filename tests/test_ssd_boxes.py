"""course_utils.detection.ssd_boxes: SSD's default boxes, matching and hard negative mining, as
torchvision."""

import math

import pytest
import torch
from torchvision.models.detection._utils import SSDMatcher
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import box_iou

from course_utils.detection.ssd_boxes import (
    UNMATCHED,
    boxes_per_location,
    default_box_sizes,
    default_boxes,
    hard_negative_mining,
    match_default_boxes,
)

# --------------------------------------------------------------------------- default boxes


def torchvision_default_boxes(feature_sizes, image_size, scales, ratios, clip) -> torch.Tensor:
    """DefaultBoxGenerator's boxes for one image of image_size and dummy maps of feature_sizes."""
    generator = DefaultBoxGenerator(ratios, scales=list(scales), clip=clip)
    images = ImageList(torch.zeros(1, 3, *image_size), [tuple(image_size)])
    maps = [torch.zeros(1, 2, h, w) for h, w in feature_sizes]
    return generator(images, maps)[0]


SETTINGS = [
    ([(16, 16), (8, 8), (4, 4)], (128, 128), (0.1, 0.2, 0.4, 0.6), [[2], [2, 3], [2]]),
    ([(12, 20), (6, 10), (3, 5)], (96, 160), (0.15, 0.3, 0.55, 0.8), [[2, 3], [2], [3]]),
    ([(5, 7), (3, 3), (1, 1)], (40, 56), (0.3, 0.6, 0.9, 1.2), [[2], [2, 3], [2, 3]]),
    ([(7, 3)], (70, 30), (0.5, 1.5), [[]]),
]


@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("feature_sizes, image_size, scales, ratios", SETTINGS)
def test_default_boxes_equal_torchvisions_generator(
    feature_sizes, image_size, scales, ratios, clip
):
    boxes = default_boxes(feature_sizes, image_size, scales, ratios, clip=clip)
    expected = torchvision_default_boxes(feature_sizes, image_size, scales, ratios, clip)
    per_cell = boxes_per_location(ratios)
    assert per_cell == DefaultBoxGenerator(ratios).num_anchors_per_location()
    assert boxes.dtype == torch.float32
    assert boxes.shape == (sum(h * w * b for (h, w), b in zip(feature_sizes, per_cell)), 4)
    torch.testing.assert_close(boxes, expected, atol=1e-4, rtol=0)


def test_default_boxes_of_one_cell_by_hand():
    # One 2x2 map on a 100x200 (H x W) image; cell (1, 0) is centred at (50, 75).
    boxes = default_boxes([(2, 2)], (100, 200), (0.2, 0.8), [[4]])
    assert len(boxes) == 2 * 2 * 4
    cell = boxes[2 * 4 : 3 * 4]  # row 1, column 0
    w_h = torch.tensor([[0.2, 0.2], [0.4, 0.4], [0.4, 0.1], [0.1, 0.4]]) * torch.tensor([200, 100])
    centre = torch.tensor([50.0, 75.0])
    expected = torch.cat([centre - w_h / 2, centre + w_h / 2], dim=1)
    torch.testing.assert_close(cell, expected)


def test_clip_clamps_relative_sizes_but_not_positions():
    clipped = default_boxes([(1, 2)], (10, 20), (0.9, 1.6), [[2]], clip=True)
    free = default_boxes([(1, 2)], (10, 20), (0.9, 1.6), [[2]], clip=False)
    widths = clipped[:, 2] - clipped[:, 0]
    assert float(widths.max()) == pytest.approx(20.0)  # s' = 1.2 and 0.9 sqrt(2) clamped to 1
    assert float((free[:, 2] - free[:, 0]).max()) == pytest.approx(20 * 0.9 * math.sqrt(2))
    assert float(clipped[:, 0].min()) < 0  # a full-width box centred at x = 5 still leaves


def test_default_box_sizes_follow_the_paper():
    sizes = default_box_sizes((0.2, 0.45), [[2, 3]], clip=False)[0]
    s, r2, r3 = 0.2, math.sqrt(2), math.sqrt(3)
    expected = [[s, s], [0.3, 0.3], [s * r2, s / r2], [s / r2, s * r2], [s * r3, s / r3]]
    expected.append([s / r3, s * r3])
    torch.testing.assert_close(sizes, torch.tensor(expected))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scales": (0.1, 0.2, 0.4)}, r"K \+ 1 = 4"),
        ({"aspect_ratios": [[2], [0.5], [2]]}, "r > 1"),
        ({"aspect_ratios": [[2], [2]]}, "one aspect-ratio list per feature map"),
        ({"feature_sizes": [(4, 4), (2, 2), 3]}, r"feature_sizes\[2\]"),
        ({"image_size": (128,)}, "image_size"),
    ],
)
def test_default_boxes_reject_bad_settings(kwargs, message):
    arguments = {
        "feature_sizes": [(4, 4), (2, 2), (1, 1)],
        "image_size": (64, 64),
        "scales": (0.1, 0.2, 0.4, 0.6),
        "aspect_ratios": [[2], [2], [2]],
    }
    with pytest.raises((ValueError, TypeError), match=message):
        default_boxes(**(arguments | kwargs))


# --------------------------------------------------------------------------- matching


def random_boxes(count: int, size: float, generator: torch.Generator) -> torch.Tensor:
    corners = torch.rand(count, 2, generator=generator) * size * 0.8
    sides = torch.rand(count, 2, generator=generator) * size * 0.5 + 2
    return torch.cat([corners, corners + sides], dim=1)


BOXES = default_boxes([(8, 8), (4, 4), (2, 2)], (64, 64), (0.1, 0.3, 0.6, 0.9), [[2], [2, 3], [2]])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_matching_equals_torchvisions_ssd_matcher(seed, threshold):
    gt = random_boxes(5, 64, torch.Generator().manual_seed(seed))
    matches = match_default_boxes(BOXES, gt, threshold)
    assert matches.dtype == torch.int64 and matches.shape == (len(BOXES),)
    assert torch.equal(matches, SSDMatcher(threshold)(box_iou(gt, BOXES)))
    assert set(matches.unique().tolist()) <= {UNMATCHED, *range(len(gt))}


def test_a_small_object_takes_its_best_default_box_below_the_threshold():
    gt = torch.tensor([[30.0, 30.0, 32.0, 33.0], [0.0, 0.0, 40.0, 40.0]])
    iou = box_iou(gt, BOXES)
    assert float(iou[0].max()) < 0.5
    matches = match_default_boxes(BOXES, gt)
    assert int(matches[iou[0].argmax()]) == 0
    assert int((matches == 0).sum()) == 1
    assert torch.equal(matches, SSDMatcher(0.5)(iou))


def test_two_objects_with_the_same_best_box_leave_it_to_the_later_one():
    gt = torch.tensor([[4.0, 4.0, 12.0, 12.0], [4.0, 4.0, 12.0, 12.0], [40.0, 8.0, 60.0, 30.0]])
    iou = box_iou(gt, BOXES)
    best = int(iou[0].argmax())
    assert int(iou[1].argmax()) == best
    matches = match_default_boxes(BOXES, gt)
    assert int(matches[best]) == 1
    assert torch.equal(matches, SSDMatcher(0.5)(iou))


def test_no_ground_truth_leaves_every_box_unmatched():
    matches = match_default_boxes(BOXES, torch.zeros(0, 4))
    assert matches.dtype == torch.int64 and matches.device == BOXES.device
    assert torch.equal(matches, torch.full((len(BOXES),), -1))


def test_matching_rejects_integer_boxes():
    with pytest.raises(TypeError, match="float"):
        match_default_boxes(BOXES, torch.tensor([[0, 0, 5, 5]]))


# --------------------------------------------------------------------------- hard negatives


def test_mining_keeps_positives_and_the_hardest_negatives_three_to_one():
    loss = torch.tensor([[0.1, 5.0, 0.3, 0.9, 0.2, 0.8, 0.7, 0.05, 0.6]])
    labels = torch.tensor([[0, 2, 0, 0, 0, 0, 0, 0, 0]])
    kept = hard_negative_mining(loss, labels)
    assert kept.dtype == torch.bool
    assert kept[0].nonzero().flatten().tolist() == [1, 3, 5, 6]
    two = hard_negative_mining(loss, labels, neg_pos_ratio=2)
    assert two[0].nonzero().flatten().tolist() == [1, 3, 5]


def test_positives_are_kept_even_with_a_low_loss():
    loss = torch.tensor([[0.0, 3.0, 2.0, 1.0, 4.0, 5.0, 0.5, 0.6]])
    labels = torch.tensor([[1, 0, 0, 0, 0, 0, 0, 3]])
    kept = hard_negative_mining(loss, labels, neg_pos_ratio=1)
    assert kept[0].tolist() == [True, False, False, False, True, True, False, True]


def test_mining_ranks_each_image_separately_and_caps_at_its_negatives():
    loss = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0], [5.0, 4.0, 3.0, 2.0, 1.0]])
    labels = torch.tensor([[1, 0, 0, 0, 0], [0, 1, 2, 0, 0]])
    kept = hard_negative_mining(loss, labels)
    assert kept[0].tolist() == [True, False, True, True, True]  # the 3 hardest of 4 negatives
    assert kept.all(dim=1).tolist() == [False, True]  # 6 wanted, only 3 negatives


def test_an_image_without_objects_keeps_neg_pos_ratio_negatives():
    loss = torch.tensor([[0.5, 0.1, 0.9, 0.3, 0.7, 0.2]])
    kept = hard_negative_mining(loss, torch.zeros(1, 6, dtype=torch.int64), neg_pos_ratio=2)
    assert kept[0].nonzero().flatten().tolist() == [2, 4]


def test_equal_losses_are_taken_by_lower_index_first():
    loss = torch.tensor([[1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    labels = torch.tensor([[0, 0, 0, 0, 0, 0, 4]])
    kept = hard_negative_mining(loss, labels)
    assert kept[0].nonzero().flatten().tolist() == [0, 1, 2, 6]


def torchvisions_selection(loss: torch.Tensor, labels: torch.Tensor, ratio: int) -> torch.Tensor:
    """The rule of torchvision's ``SSD.compute_loss``: positives, then per image the
    ``ratio * positives`` negatives ranked first by a descending sort (positives at -inf)."""
    positive = labels > 0
    negative_loss = loss.masked_fill(positive, -math.inf)
    order = negative_loss.sort(1, descending=True).indices
    return positive | (order.sort(1).indices < ratio * positive.sum(1, keepdim=True))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ratio", [1, 3])
def test_mining_equals_torchvisions_rule_when_every_image_has_objects(seed, ratio):
    generator = torch.Generator().manual_seed(seed)
    loss = torch.rand(4, 60, generator=generator)
    labels = torch.randint(1, 4, (4, 60), generator=generator)
    labels[torch.rand(4, 60, generator=generator) < 0.85] = 0
    labels[:, 7] = 2  # a positive in every image
    kept = hard_negative_mining(loss, labels, ratio)
    assert torch.equal(kept, torchvisions_selection(loss, labels, ratio))
    num_pos = (labels > 0).sum(1)
    assert torch.equal(kept.sum(1), torch.minimum(num_pos * (ratio + 1), torch.tensor(60)))


def test_mining_rejects_mismatched_shapes_and_float_labels():
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        hard_negative_mining(torch.zeros(2, 5), torch.zeros(2, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match="int64"):
        hard_negative_mining(torch.zeros(2, 5), torch.zeros(2, 5))
