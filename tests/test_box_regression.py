"""course_utils.detection.box_regression: CNN features of regions, class-specific regressors."""

import pytest
import torch
from rcnn_helpers import TinyCNN, jittered, random_boxes
from torch import nn
from torchvision.ops import box_iou

from course_utils.detection.box_coding import decode_boxes, encode_boxes
from course_utils.detection.box_regression import (
    apply_box_regressors,
    fit_box_regressors,
    fit_region_regressors,
    region_features,
)
from course_utils.detection.warped_regions import RegionSet


def test_ridge_regressors_recover_a_linear_map():
    g = torch.Generator().manual_seed(0)
    features = torch.randn(300, 6, generator=g, dtype=torch.float64)
    labels = torch.randint(1, 3, (300,), generator=g)
    true_weights = torch.randn(3, 7, 4, generator=g, dtype=torch.float64)
    x = torch.cat([features, torch.ones(300, 1, dtype=torch.float64)], 1)
    targets = torch.einsum("nd,ndc->nc", x, true_weights[labels])
    weights = fit_box_regressors(features, labels, targets, num_classes=4, ridge=1e-9)
    assert weights.shape == (4, 7, 4)
    torch.testing.assert_close(weights[1:3], true_weights[1:3], atol=1e-6, rtol=1e-6)
    assert weights[0].abs().max() == 0 and weights[3].abs().max() == 0  # background, absent class
    deltas = apply_box_regressors(features, weights)
    assert deltas.shape == (300, 4, 4)
    torch.testing.assert_close(deltas[torch.arange(300), labels], targets)
    shrunk = fit_box_regressors(features, labels, targets, num_classes=4, ridge=1e6)
    assert shrunk[1, :-1].abs().max() < 0.1 * true_weights[1, :-1].abs().max()


def test_ridge_regression_improves_boxes_of_a_feature_that_knows_the_shift():
    gt = random_boxes(1, 1).repeat(200, 1)
    proposals = jittered(gt[:1], 200, 2, scale=0.1)
    targets = encode_boxes(proposals, gt)
    features = targets + 0.01 * torch.randn(200, 4, generator=torch.Generator().manual_seed(3))
    weights = fit_box_regressors(
        features, torch.ones(200, dtype=torch.int64), targets, 2, ridge=1.0
    )
    refined = decode_boxes(proposals, apply_box_regressors(features, weights)[:, 1])
    assert box_iou(refined, gt[:1]).mean() > box_iou(proposals, gt[:1]).mean() + 0.1


def test_regressors_validate():
    with pytest.raises(ValueError):
        fit_box_regressors(
            torch.zeros(3, 2), torch.zeros(3, dtype=torch.int64), torch.zeros(2, 4), 3
        )
    with pytest.raises(ValueError):
        apply_box_regressors(torch.zeros(3, 2), torch.zeros(3, 2, 4))


def test_region_features_shapes_batches_and_mode():
    torch.manual_seed(0)
    cnn = TinyCNN()
    cnn.train()
    crops = torch.rand(7, 3, 8, 8)
    features, probs = region_features(cnn, crops, batch_size=3)
    assert features.shape == (7, 256) and probs.shape == (7, 4) and cnn.training
    torch.testing.assert_close(probs.sum(1), torch.ones(7))
    assert region_features(cnn, torch.zeros(0, 3, 8, 8))[1].shape == (0, 4)
    cnn.eval()
    torch.testing.assert_close(features, cnn.features(crops))
    torch.testing.assert_close(probs, torch.softmax(cnn(crops), dim=1))
    as_bytes = crops.mul(255).round().to(torch.uint8)
    torch.testing.assert_close(region_features(cnn, as_bytes)[0], cnn.features(as_bytes / 255.0))


def test_region_features_of_no_crops_leave_batchnorm_statistics_alone():
    torch.manual_seed(0)
    cnn = TinyCNN()
    cnn.features.insert(1, nn.BatchNorm2d(4))
    cnn.train()
    before = cnn.features[1].running_mean.clone()
    features, probs = region_features(cnn, torch.zeros(0, 3, 8, 8))
    assert features.shape == (0, 256) and probs.shape == (0, 4) and cnn.training
    assert torch.equal(cnn.features[1].running_mean, before)


def test_fit_region_regressors_uses_the_good_proposals_only():
    torch.manual_seed(0)
    cnn = TinyCNN()
    crops = torch.rand(6, 3, 8, 8).mul(255).round().to(torch.uint8)
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 6) + torch.arange(6.0)[:, None]
    matched = torch.tensor([[1.0, 1.0, 12.0, 11.0]] * 6)
    regions = RegionSet(
        crops=crops,
        labels=torch.tensor([1, 1, 2, 0, 2, 1]),
        boxes=boxes,
        matched_boxes=matched,
        ious=torch.tensor([1.0, 0.7, 0.65, 0.2, 0.9, 0.5]),
        image_indices=torch.zeros(6, dtype=torch.int64),
        is_gt=torch.tensor([True, False, False, False, False, False]),
    )
    seen = []

    def encode(proposals, gt):
        seen.append(proposals)
        return encode_boxes(proposals, gt)

    weights = fit_region_regressors(cnn, regions, 3, min_iou=0.6, ridge=10.0, encode_fn=encode)
    chosen = torch.tensor([1, 2, 4])  # positive, IoU >= 0.6, not ground truth
    torch.testing.assert_close(seen[0], boxes[chosen])
    features, _ = region_features(cnn, crops[chosen])
    expected = fit_box_regressors(
        features, regions.labels[chosen], encode_boxes(boxes[chosen], matched[chosen]), 3, 10.0
    )
    torch.testing.assert_close(weights, expected)
    assert weights.dtype == torch.float64 and weights.shape == (3, 257, 4)


def test_ridge_must_be_a_non_negative_number():
    features, labels, targets = (
        torch.zeros(3, 2),
        torch.ones(3, dtype=torch.int64),
        torch.zeros(3, 4),
    )
    with pytest.raises(ValueError, match="ridge"):
        fit_box_regressors(features, labels, targets, 2, ridge=-1.0)
    with pytest.raises(TypeError, match="num_classes"):
        fit_box_regressors(features, labels, targets, 2.0)
