"""R-CNN pieces: labelling proposals, mini-batches, warping, ridge box regressors, per-class NMS, the detector."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.detection._utils import Matcher
from torchvision.ops import box_iou

from course_utils.detection.box_coding import decode_boxes, encode_boxes
from course_utils.detection.rcnn import (
    RCNN,
    MinibatchDataset,
    apply_box_regressors,
    build_region_set,
    dilate_boxes,
    fit_box_regressors,
    label_proposals,
    postprocess_detections,
    region_features,
    sample_minibatch,
    train_rcnn,
    warp_regions,
)


def random_boxes(n: int, seed: int, size: float = 100.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size * 0.7
    wh = torch.rand(n, 2, generator=g) * size * 0.3 + 2
    return torch.cat([xy, xy + wh], dim=1)


def jittered(boxes: torch.Tensor, n_per_box: int, seed: int, scale: float = 0.2) -> torch.Tensor:
    """Proposals around each box, with a spread of overlaps."""
    g = torch.Generator().manual_seed(seed)
    boxes = boxes.repeat_interleave(n_per_box, 0)
    sizes = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    out = boxes + torch.randn(boxes.shape, generator=g) * sizes * scale
    x1, y1 = torch.minimum(out[:, 0], out[:, 2] - 1), torch.minimum(out[:, 1], out[:, 3] - 1)
    return torch.stack([x1, y1, out[:, 2], out[:, 3]], dim=1)


def matcher_reference(proposals, gt_boxes, gt_labels, fg, bg):
    """The same labelling with torchvision's Matcher (high = fg, low = bg)."""
    matches = Matcher(fg, bg, allow_low_quality_matches=False)(box_iou(gt_boxes, proposals))
    labels = gt_labels[matches.clamp(min=0)].clone()
    labels[matches == Matcher.BETWEEN_THRESHOLDS] = 0
    labels[matches == Matcher.BELOW_LOW_THRESHOLD] = -1
    return labels


# --------------------------------------------------------------------------- label_proposals


@pytest.mark.parametrize("fg, bg", [(0.5, 0.1), (0.5, 0.0), (0.7, 0.3), (0.5, 0.5)])
def test_label_proposals_matches_torchvision_matcher(fg, bg):
    gt = random_boxes(6, 0)
    gt_labels = torch.tensor([1, 2, 3, 1, 2, 3])
    proposals = torch.cat([jittered(gt, 20, 1), random_boxes(50, 2)])
    labels, matched = label_proposals(proposals, gt, gt_labels, fg, bg)
    assert labels.dtype == matched.dtype == torch.int64
    torch.testing.assert_close(labels, matcher_reference(proposals, gt, gt_labels, fg, bg))
    iou = box_iou(proposals, gt)
    torch.testing.assert_close(iou.gather(1, matched[:, None])[:, 0], iou.max(dim=1).values)
    assert (
        {-1, 0, 1, 2, 3} >= set(labels.tolist())
        and (labels > 0).any()
        and ((labels == 0).any() or bg == fg)
    )


def test_label_proposals_by_hand():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    gt_labels = torch.tensor([3, 1])
    proposals = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],  # IoU 1 with gt 0 -> label 3
            [0.0, 0.0, 10.0, 20.0],  # IoU exactly 0.5 with gt 0 -> foreground (>=)
            [0.0, 0.0, 10.0, 40.0],  # IoU 0.25 -> background
            [40.0, 40.0, 50.0, 50.0],  # IoU 0 -> ignored (below bg 0.1)
            [21.0, 21.0, 30.0, 30.0],  # IoU 0.81 with gt 1 -> label 1
        ]
    )
    labels, matched = label_proposals(proposals, gt, gt_labels, 0.5, 0.1)
    assert labels.tolist() == [3, 3, 0, -1, 1]
    assert matched.tolist()[:3] == [0, 0, 0] and matched[4] == 1


def test_label_proposals_ties_go_to_the_lowest_index():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 20.0, 10.0]])
    proposal = torch.tensor([[5.0, 0.0, 15.0, 10.0]])  # IoU 1/3 with both
    _, matched = label_proposals(proposal, gt, torch.tensor([1, 2]), 0.3, 0.0)
    assert matched.tolist() == [0]
    labels, matched = label_proposals(proposal, gt.flip(0), torch.tensor([2, 1]), 0.3, 0.0)
    assert matched.tolist() == [0] and labels.tolist() == [2]


def test_label_proposals_without_ground_truth_or_proposals():
    proposals = random_boxes(4, 3)
    labels, matched = label_proposals(
        proposals, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), 0.5, 0.0
    )
    assert labels.tolist() == [0] * 4 and matched.tolist() == [-1] * 4
    labels, _ = label_proposals(
        proposals, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), 0.5, 0.1
    )
    assert labels.tolist() == [-1] * 4
    labels, matched = label_proposals(torch.zeros(0, 4), random_boxes(2, 4), torch.tensor([1, 2]))
    assert labels.shape == matched.shape == (0,)


def test_label_proposals_validates():
    ok, labels = random_boxes(2, 5), torch.tensor([1, 2])
    with pytest.raises(ValueError, match="bg_threshold"):
        label_proposals(ok, ok, labels, 0.3, 0.5)
    with pytest.raises(ValueError, match="fg_threshold"):
        label_proposals(ok, ok, labels, 1.5)
    with pytest.raises(ValueError, match="one entry per box"):
        label_proposals(ok, ok, torch.tensor([1]))
    with pytest.raises(TypeError):
        label_proposals(ok.long(), ok, labels)


# --------------------------------------------------------------------------- sample_minibatch


def test_sample_minibatch_fixed_fraction():
    labels = torch.tensor([1] * 50 + [2] * 30 + [0] * 500 + [-1] * 100)
    picked = sample_minibatch(labels, 128, 0.25, torch.Generator().manual_seed(0))
    assert len(picked) == 128 and len(torch.unique(picked)) == 128
    assert int((labels[picked] > 0).sum()) == 32 and int((labels[picked] == 0).sum()) == 96
    assert (labels[picked[:32]] > 0).all()


def test_sample_minibatch_few_positives_and_no_ignored():
    labels = torch.tensor([3] * 5 + [0] * 40 + [-1] * 200)
    picked = sample_minibatch(labels, 64, 0.25, torch.Generator().manual_seed(1))
    assert int((labels[picked] > 0).sum()) == 5
    assert len(picked) == 45 and not (labels[picked] < 0).any()


def test_sample_minibatch_is_reproducible_and_random():
    labels = torch.tensor([1] * 100 + [0] * 400)
    a = sample_minibatch(labels, 64, 0.25, torch.Generator().manual_seed(2))
    b = sample_minibatch(labels, 64, 0.25, torch.Generator().manual_seed(2))
    c = sample_minibatch(labels, 64, 0.25, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, c)


# --------------------------------------------------------------------------- warping


def test_dilate_boxes():
    out = dilate_boxes(torch.tensor([[10.0, 20.0, 30.0, 60.0]]), 0.25)
    assert out.tolist() == [[5.0, 10.0, 35.0, 70.0]]
    with pytest.raises(ValueError, match="context"):
        dilate_boxes(torch.zeros(1, 4), -0.1)


def test_warp_regions_shapes_and_content():
    image = torch.zeros(3, 40, 60)
    image[0, 10:20, 30:50] = 1.0  # a red rectangle, 20 wide and 10 high
    box = torch.tensor([[30.0, 10.0, 50.0, 20.0]])
    crop = warp_regions(image, box, size=16, context=0.0)
    assert crop.shape == (1, 3, 16, 16)
    # anisotropic: the 20 x 10 box fills the crop (bilinear up-sampling blends the outermost rows a little)
    assert (
        torch.allclose(crop[0, 0, 2:-2, 2:-2], torch.ones(12, 12), atol=1e-6)
        and crop[0, 0].min() > 0.5
    )
    assert crop[0, 1:].abs().max() < 1e-6
    with_context = warp_regions(image, box, size=16, context=0.25)
    assert (
        with_context[0, 0, 8, 8] > 0.99 and with_context[0, 0, 0, 0] < 0.01
    )  # the border is context


def test_warp_whole_image_is_a_resize():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 32, 32, generator=g)
    crop = warp_regions(image, torch.tensor([[0.0, 0.0, 32.0, 32.0]]), size=32, context=0.0)[0]
    torch.testing.assert_close(crop, image, atol=1e-5, rtol=0)


def test_warp_outside_the_image_is_black_and_empty_is_fine():
    image = torch.ones(3, 20, 20)
    crop = warp_regions(image, torch.tensor([[-20.0, -20.0, -10.0, -10.0]]), size=8, context=0.0)
    assert crop.abs().max() < 1e-6
    assert warp_regions(image, torch.zeros(0, 4), size=8).shape == (0, 3, 8, 8)
    with pytest.raises(ValueError):
        warp_regions(image * 255, torch.zeros(0, 4))


# --------------------------------------------------------------------------- region set and mini-batches


def scene(seed: int):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(3, 64, 64, generator=g)
    boxes = torch.tensor([[5.0, 5.0, 25.0, 30.0], [30.0, 32.0, 60.0, 60.0]])
    return image, {"boxes": boxes, "labels": torch.tensor([2, 3])}


def test_build_region_set_and_minibatches():
    images, targets = zip(*(scene(s) for s in range(3)))
    proposals = [
        torch.cat([jittered(t["boxes"], 10, s), random_boxes(20, s, 64)])
        for s, t in enumerate(targets)
    ]
    regions = build_region_set(
        images, targets, proposals, size=16, context=0.25, fg_threshold=0.5, bg_threshold=0.0
    )
    assert len(regions) == 3 * (2 + 40) and regions.crops.shape == (len(regions), 3, 16, 16)
    assert (
        regions.crops.dtype == torch.uint8
        and int(regions.is_gt.sum()) == 6
        and bool(regions.is_gt[:2].all())
    )
    assert len(regions.subset(regions.labels > 0)) == regions.counts()["positive"]
    assert regions.labels[:2].tolist() == [2, 3]  # ground truth first, labelled as itself
    assert regions.ious[:2].tolist() == [1.0, 1.0]
    assert regions.counts()["ignored"] == 0 and regions.counts()["positive"] >= 6
    assert regions.image_indices.tolist() == sorted(regions.image_indices.tolist())
    positive = regions.labels > 0
    assert (box_iou(regions.boxes[positive], regions.matched_boxes[positive]).diag() >= 0.5).all()
    batches = MinibatchDataset(
        regions, num_batches=5, batch_size=16, positive_fraction=0.25, seed=0
    )
    crops, labels = MinibatchDataset.collate([batches[3]])
    assert crops.shape == (16, 3, 16, 16) and int((labels > 0).sum()) == 4
    assert crops.dtype == torch.float32 and 0 <= float(crops.min()) and float(crops.max()) <= 1
    assert torch.equal(batches[3][1], MinibatchDataset(regions, 5, 16, 0.25, seed=0)[3][1])
    with pytest.raises(IndexError):
        batches[5]


def test_build_region_set_validates():
    image, target = scene(0)
    with pytest.raises(ValueError, match="one entry per image"):
        build_region_set([image], [target], [])


# --------------------------------------------------------------------------- box regressors


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


# --------------------------------------------------------------------------- detections


def test_postprocess_per_class_nms():
    proposals = torch.tensor(
        [[10.0, 10.0, 30.0, 30.0], [11.0, 11.0, 31.0, 31.0], [60.0, 60.0, 70.0, 70.0]]
    )
    probs = torch.tensor([[0.1, 0.8, 0.1, 0.0], [0.1, 0.7, 0.2, 0.0], [0.9, 0.05, 0.0, 0.05]])
    out = postprocess_detections(
        proposals, probs, None, (100, 100), score_threshold=0.04, nms_threshold=0.3
    )
    assert out["labels"].dtype == torch.int64 and out["boxes"].shape[1] == 4
    assert out["scores"].tolist() == sorted(out["scores"].tolist(), reverse=True)
    pairs = {
        (int(label), round(float(score), 2)) for label, score in zip(out["labels"], out["scores"])
    }
    # class 1: the 0.7 box is suppressed by the 0.8 box; class 2 keeps both (0.1 and 0.2 do not suppress
    # across classes, but 0.1 is suppressed by 0.2 within class 2); class 3 keeps the far box
    assert pairs == {(1, 0.8), (2, 0.2), (1, 0.05), (3, 0.05)}
    top = postprocess_detections(
        proposals, probs, None, (100, 100), score_threshold=0.0, max_detections=2
    )
    assert len(top["scores"]) == 2


def test_postprocess_decodes_class_specific_deltas_and_clips():
    proposals = torch.tensor([[10.0, 10.0, 30.0, 30.0]])
    probs = torch.tensor([[0.0, 0.3, 0.7]])
    deltas = torch.zeros(1, 3, 4)
    deltas[0, 2] = torch.tensor([0.5, 0.0, 0.0, 0.0])  # class 2 moves right by half a width
    deltas[0, 1] = torch.tensor([0.0, 0.0, 3.0, 0.0])  # class 1 grows a lot: clipped to the image
    out = postprocess_detections(proposals, probs, deltas, (40, 50), score_threshold=0.1)
    by_label = {int(label): box.tolist() for label, box in zip(out["labels"], out["boxes"])}
    assert by_label[2] == pytest.approx([20.0, 10.0, 40.0, 30.0])
    assert by_label[1][0] == 0.0 and by_label[1][2] == 50.0
    with pytest.raises(ValueError, match="box_deltas"):
        postprocess_detections(proposals, probs, torch.zeros(1, 2, 4), (40, 50))


class TinyCNN(nn.Module):
    def __init__(self, num_classes: int = 4, size: int = 8):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten())
        self.head = nn.Linear(4 * size * size, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


def test_region_features_and_rcnn_detector():
    torch.manual_seed(0)
    cnn = TinyCNN()
    cnn.train()
    crops = torch.rand(7, 3, 8, 8)
    features, probs = region_features(cnn, crops, batch_size=3)
    assert features.shape == (7, 256) and probs.shape == (7, 4) and cnn.training
    torch.testing.assert_close(probs.sum(1), torch.ones(7))
    assert region_features(cnn, torch.zeros(0, 3, 8, 8))[1].shape == (0, 4)
    weights = torch.zeros(4, 257, 4)
    detector = RCNN(cnn, weights, size=8, score_threshold=0.0)
    images, targets = zip(*(scene(s) for s in range(2)))
    outputs = detector(list(images), [random_boxes(12, 1, 64), random_boxes(5, 2, 64)])
    assert len(outputs) == 2 and set(outputs[0]) == {"boxes", "scores", "labels"}
    assert len(outputs[1]["boxes"]) <= 5 * 3 and outputs[0]["labels"].min() >= 1
    with pytest.raises(TypeError):
        RCNN(nn.Linear(2, 2))


def test_train_rcnn_end_to_end_on_tiny_scenes(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    torch.manual_seed(0)
    cnn = TinyCNN(size=8)
    images, targets = zip(*(scene(s) for s in range(2)))
    proposals = [
        torch.cat([jittered(t["boxes"], 8, s), random_boxes(10, s, 64)])
        for s, t in enumerate(targets)
    ]
    detector, history, regions = train_rcnn(
        cnn,
        list(images),
        list(targets),
        proposals,
        steps=3,
        batch_size=16,
        size=8,
        ridge=10.0,
        progress=False,
        score_threshold=0.0,
    )
    assert len(history.records) == 3 and regions.crops.shape[-1] == 8
    assert detector.regressor_weights.shape == (4, 257, 4)
    outputs = detector(list(images), proposals)
    assert len(outputs) == 2 and outputs[0]["boxes"].shape[1] == 4
    used = []

    def spy(*args):
        used.append(True)
        return label_proposals(*args)

    train_rcnn(
        TinyCNN(size=8),
        list(images),
        list(targets),
        proposals,
        steps=1,
        batch_size=8,
        size=8,
        progress=False,
        label_fn=spy,
    )
    assert used
