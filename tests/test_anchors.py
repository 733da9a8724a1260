"""course_utils.detection.anchors: a feature map's anchors and their matching, as torchvision."""

import pytest
import torch
from torchvision.models.detection._utils import Matcher
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import box_iou

from course_utils.detection.anchors import (
    IGNORED,
    NEGATIVE,
    anchor_boxes,
    anchor_templates,
    anchors_per_cell,
    match_anchors,
    matches_to_labels,
)

# --------------------------------------------------------------------------- anchor boxes


def torchvision_anchors(feature_size, stride, sizes, ratios) -> torch.Tensor:
    """AnchorGenerator's anchors for one image of (h * stride, w * stride) pixels and one (h, w)
    feature map (its stride is image size // feature size)."""
    height, width = feature_size
    generator = AnchorGenerator((tuple(sizes),), (tuple(ratios),))
    size = (height * stride, width * stride)
    images = ImageList(torch.zeros(1, 3, *size), [size])
    return generator(images, [torch.zeros(1, 2, height, width)])[0]


@pytest.mark.parametrize(
    "feature_size, stride, sizes, ratios",
    [
        ((5, 7), 4, (16, 32, 64), (0.5, 1.0, 2.0)),
        ((7, 3), 16, (32,), (1.0,)),
        ((4, 4), 8, (10, 20), (0.25, 0.7, 1.5, 3.0)),
        ((1, 6), 2, (5, 9, 13), (1.0, 2.0)),
    ],
)
def test_anchor_boxes_equal_torchvisions_anchor_generator(feature_size, stride, sizes, ratios):
    anchors = anchor_boxes(feature_size, stride, sizes, ratios)
    expected = torchvision_anchors(feature_size, stride, sizes, ratios)
    assert anchors.dtype == torch.float32
    assert anchors.shape == (feature_size[0] * feature_size[1] * len(sizes) * len(ratios), 4)
    assert torch.equal(anchors, expected)


def test_anchor_order_is_cell_by_cell_then_template():
    sizes, ratios = (8, 16), (0.5, 1.0, 2.0)
    templates = anchor_templates(sizes, ratios)
    anchors = anchor_boxes((3, 5), 4, sizes, ratios)
    k = anchors_per_cell(sizes, ratios)
    assert k == len(templates) == 6 and len(anchors) == 3 * 5 * k
    i, j = 2, 3  # row 2, column 3: centre (x, y) = (12, 8)
    cell = anchors[(i * 5 + j) * k : (i * 5 + j + 1) * k]
    torch.testing.assert_close(cell, templates + torch.tensor([12.0, 8.0, 12.0, 8.0]))


def test_templates_have_the_asked_area_and_shape():
    sizes, ratios = (100, 200, 300), (0.5, 1.0, 2.0)
    templates = anchor_templates(sizes, ratios)
    widths, heights = templates[:, 2] - templates[:, 0], templates[:, 3] - templates[:, 1]
    for r, ratio in enumerate(ratios):
        for s, size in enumerate(sizes):
            t = r * len(sizes) + s  # ratio-major, sizes inner
            assert (widths[t] * heights[t]).item() == pytest.approx(size**2, rel=0.02)
            assert (heights[t] / widths[t]).item() == pytest.approx(ratio, rel=0.02)
    # centred on (0, 0), half-sides rounded to whole pixels: 32 * sqrt(2) / 2 = 22.6 -> 23
    assert anchor_templates((32,), (2.0,)).tolist() == [[-11.0, -23.0, 11.0, 23.0]]
    assert anchor_templates((32,), (1.0,)).tolist() == [[-16.0, -16.0, 16.0, 16.0]]
    assert anchor_templates((3,), (1.0,)).tolist() == [[-2.0, -2.0, 2.0, 2.0]]  # 1.5 -> 2


def test_anchor_boxes_device():
    anchors = anchor_boxes((2, 3), 8, (16,), (1.0,), device="meta")
    assert anchors.device.type == "meta" and anchors.shape == (6, 4)
    assert anchor_boxes((2, 3), 8, (16,), (1.0,), device=torch.device("cpu")).device.type == "cpu"


def test_anchor_input_validation():
    with pytest.raises(TypeError, match="feature_size"):
        anchor_boxes(16, 4, (16,), (1.0,))
    with pytest.raises(TypeError, match="feature_size"):
        anchor_boxes((4, 4, 4), 4, (16,), (1.0,))
    with pytest.raises(ValueError, match=r"feature_size\[0\]"):
        anchor_boxes((0, 4), 4, (16,), (1.0,))
    with pytest.raises(TypeError, match=r"feature_size\[1\]"):
        anchor_boxes((4, 2.5), 4, (16,), (1.0,))
    with pytest.raises(ValueError, match="stride"):
        anchor_boxes((4, 4), 0, (16,), (1.0,))
    for sizes in ((), (16, 0), (-8,), (float("nan"),)):
        with pytest.raises(ValueError, match="sizes"):
            anchor_boxes((4, 4), 4, sizes, (1.0,))
    for ratios in ((), (0.0,), (1.0, -2.0)):
        with pytest.raises(ValueError, match="aspect_ratios"):
            anchor_templates((16,), ratios)
    with pytest.raises(TypeError, match="sizes"):
        anchors_per_cell(16, (1.0,))


# --------------------------------------------------------------------------- matching


def random_boxes(n: int, generator: torch.Generator, size: float = 64.0) -> torch.Tensor:
    corners = torch.rand(n, 2, generator=generator) * (size - 8)
    sides = torch.rand(n, 2, generator=generator) * 40 + 4
    return torch.cat([corners, (corners + sides).clamp(max=size)], dim=1)


@pytest.mark.parametrize("seed", range(4))
def test_match_anchors_equals_torchvisions_matcher(seed):
    g = torch.Generator().manual_seed(seed)
    anchors = anchor_boxes((8, 8), 8, (16, 32), (0.5, 1.0, 2.0))
    gt = random_boxes(3 + seed, g)
    iou = box_iou(gt, anchors)
    assert (iou.max(dim=1).values > 0).all()  # every ground-truth box overlaps some anchor
    matches = match_anchors(anchors, gt)
    expected = Matcher(0.7, 0.3, allow_low_quality_matches=True)(iou)
    assert matches.dtype == torch.int64 and torch.equal(matches, expected)
    assert {NEGATIVE, IGNORED} <= set(matches.tolist())  # both codes occur
    assert set(range(len(gt))) <= set(matches.tolist())  # no object is left without an anchor
    strict = match_anchors(anchors, gt, high=0.6, low=0.4, allow_low_quality_matches=False)
    assert torch.equal(strict, Matcher(0.6, 0.4, allow_low_quality_matches=False)(iou))


def test_no_ground_truth_makes_every_anchor_negative():
    anchors = anchor_boxes((2, 2), 8, (16,), (1.0, 2.0))
    matches = match_anchors(anchors, torch.zeros(0, 4))
    assert matches.dtype == torch.int64 and matches.tolist() == [NEGATIVE] * 8


def low_quality_case() -> tuple[torch.Tensor, torch.Tensor]:
    """gt 0's best anchor (0) has IoU 0.5 with it, and 0.67 with gt 1 (whose best anchor, 3, is
    exact); anchor 1 ties anchor 0 for gt 0; anchor 2 overlaps gt 0 by 0.25 only."""
    anchors = torch.tensor(
        [
            [0.0, 0.0, 10.0, 20.0],
            [0.0, -10.0, 10.0, 10.0],
            [0.0, 0.0, 10.0, 40.0],
            [0.0, 34.0, 10.0, 54.0],
            [50.0, 50.0, 60.0, 60.0],
        ]
    )
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 34.0, 10.0, 54.0]])
    return anchors, gt


def test_low_quality_matches_rescue_each_objects_best_anchors():
    anchors, gt = low_quality_case()
    iou = box_iou(gt, anchors)
    assert iou[0, 0].item() == pytest.approx(0.5) and iou[0, 1].item() == pytest.approx(0.5)
    strict = match_anchors(anchors, gt, allow_low_quality_matches=False)
    assert strict.tolist() == [IGNORED, IGNORED, NEGATIVE, 1, NEGATIVE]
    rescued = match_anchors(anchors, gt)
    assert rescued.tolist() == [0, 0, NEGATIVE, 1, NEGATIVE]  # ties included
    assert torch.equal(rescued, Matcher(0.7, 0.3, True)(iou))


def test_a_rescued_anchor_keeps_its_own_best_ground_truth():
    anchors, gt = low_quality_case()
    gt = torch.cat([gt, torch.tensor([[0.0, 4.0, 10.0, 24.0]])])  # IoU 0.67 with anchor 0
    iou = box_iou(gt, anchors)
    assert iou[2, 0].item() == pytest.approx(2 / 3)
    matches = match_anchors(anchors, gt)
    assert matches[0].item() == 2  # gt 0 rescues anchor 0, which stands for gt 2 (torchvision)
    assert torch.equal(matches, Matcher(0.7, 0.3, True)(iou))


def test_match_thresholds():
    anchors, gt = low_quality_case()
    loose = match_anchors(anchors, gt, high=0.5, low=0.2, allow_low_quality_matches=False)
    assert loose.tolist() == [0, 0, IGNORED, 1, NEGATIVE]  # 0.5 >= high, 0.2 <= 0.25 < 0.5
    with pytest.raises(ValueError, match="low"):
        match_anchors(anchors, gt, high=0.3, low=0.5)
    with pytest.raises(ValueError, match="high"):
        match_anchors(anchors, gt, high=1.5)
    with pytest.raises(ValueError, match="gt_boxes"):
        match_anchors(anchors, torch.zeros(2, 3))


def test_matches_to_labels():
    labels = matches_to_labels(torch.tensor([2, NEGATIVE, IGNORED, 0, NEGATIVE]))
    assert labels.dtype == torch.float32
    assert labels.tolist() == [1.0, 0.0, -1.0, 1.0, 0.0]
