"""course_utils.detection.ssd: match_targets (the matching, once per scene) and
ssd_loss_from_matches (the loss given it)."""

import pytest
import torch
import torch.nn.functional as F
from torchvision import tv_tensors

from course_utils.detection.box_coding import encode_boxes
from course_utils.detection.ssd import (
    SSD_BOX_WEIGHTS,
    match_targets,
    ssd_loss,
    ssd_loss_from_matches,
)
from course_utils.detection.ssd_boxes import default_boxes, match_default_boxes

BOXES = default_boxes(
    [(8, 8), (4, 4), (2, 2)], (64, 64), (0.15, 0.3, 0.55, 0.8), [[2], [2, 3], [2]]
)
NUM_CLASSES = 4  # background + 3


def random_targets(seed: int, counts=(1, 2, 3)) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    targets = []
    for count in counts:
        corners = torch.rand(count, 2, generator=generator) * 40
        sides = torch.rand(count, 2, generator=generator) * 20 + 4
        labels = torch.randint(1, NUM_CLASSES, (count,), generator=generator)
        targets.append({"boxes": torch.cat([corners, corners + sides], dim=1), "labels": labels})
    return targets


def random_outputs(seed: int, images: int = 3):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(images, len(BOXES), NUM_CLASSES, generator=generator)
    return logits, torch.randn(images, len(BOXES), 4, generator=generator)


# --------------------------------------------------------------------------- match_targets


@pytest.mark.parametrize("seed", [0, 1])
def test_match_targets_gives_each_default_box_its_objects_label_and_box(seed):
    targets = random_targets(seed)
    labels, matched = match_targets(BOXES, targets, NUM_CLASSES)
    assert labels.shape == (3, len(BOXES)) and labels.dtype == torch.int64
    assert matched.shape == (3, len(BOXES), 4) and matched.dtype == torch.float32
    for n, target in enumerate(targets):
        matches = match_default_boxes(BOXES, target["boxes"])
        positive = matches >= 0
        assert int(positive.sum()) >= len(target["boxes"])  # every object has a box
        assert torch.equal(labels[n][positive], target["labels"][matches[positive]])
        assert torch.equal(matched[n][positive], target["boxes"][matches[positive]])
        assert int(labels[n][~positive].abs().sum()) == 0
        assert float(matched[n][~positive].abs().sum()) == 0.0


def test_match_targets_threshold_and_match_fn_are_used():
    targets = random_targets(2)
    loose, _ = match_targets(BOXES, targets, NUM_CLASSES, iou_threshold=0.3)
    strict, _ = match_targets(BOXES, targets, NUM_CLASSES, iou_threshold=0.7)
    assert int((loose > 0).sum()) > int((strict > 0).sum())
    calls = []

    def only_box_5(boxes, gt_boxes, threshold):
        calls.append((len(gt_boxes), threshold))
        matches = torch.full((len(boxes),), -1, dtype=torch.int64)
        matches[5] = len(gt_boxes) - 1
        return matches

    labels, matched = match_targets(BOXES, targets, NUM_CLASSES, 0.4, match_fn=only_box_5)
    assert calls == [(1, 0.4), (2, 0.4), (3, 0.4)]
    assert (labels > 0).nonzero().tolist() == [[0, 5], [1, 5], [2, 5]]
    for n, target in enumerate(targets):
        assert int(labels[n, 5]) == int(target["labels"][-1])
        assert torch.equal(matched[n, 5], target["boxes"][-1])


def test_match_targets_image_without_objects_is_all_background():
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    labels, matched = match_targets(BOXES, [empty, *random_targets(3, counts=(2,))], NUM_CLASSES)
    assert int(labels[0].abs().sum()) == 0 and float(matched[0].abs().sum()) == 0.0
    assert int((labels[1] > 0).sum()) >= 2


def test_match_targets_takes_tv_tensors():
    target = random_targets(4, counts=(2,))[0]
    wrapped = {
        "boxes": tv_tensors.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=(64, 64)),
        "labels": target["labels"],
    }
    labels, matched = match_targets(
        tv_tensors.BoundingBoxes(BOXES, format="XYXY", canvas_size=(64, 64)), [wrapped], 4
    )
    expected = match_targets(BOXES, [target], NUM_CLASSES)
    assert type(labels) is torch.Tensor and type(matched) is torch.Tensor
    assert torch.equal(labels, expected[0]) and torch.equal(matched, expected[1])


def test_match_targets_rejects_wrong_inputs():
    targets = random_targets(5)
    with pytest.raises(ValueError, match="targets is empty"):
        match_targets(BOXES, [], NUM_CLASSES)
    with pytest.raises(ValueError, match=r"targets\[0\]\['labels'\] must lie in 1\.\.3"):
        match_targets(BOXES, [{"boxes": targets[0]["boxes"], "labels": torch.tensor([4])}], 4)
    with pytest.raises(ValueError, match="num_classes"):
        match_targets(BOXES, targets, 1)
    with pytest.raises(ValueError, match="iou_threshold"):
        match_targets(BOXES, targets, NUM_CLASSES, iou_threshold=1.5)
    with pytest.raises(ValueError, match="default_boxes"):
        match_targets(BOXES[:, :2], targets, NUM_CLASSES)


# --------------------------------------------------------------------------- loss from matches


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_from_matches_equals_ssd_loss(seed):
    logits, deltas = random_outputs(seed)
    targets = random_targets(seed + 10)
    labels, matched = match_targets(BOXES, targets, NUM_CLASSES)
    losses = ssd_loss_from_matches(logits, deltas, BOXES, labels, matched)
    expected = ssd_loss(logits, deltas, BOXES, targets)
    assert set(losses) == {"classification", "box_regression"}
    assert float(losses["classification"]) > 0 and float(losses["box_regression"]) > 0
    torch.testing.assert_close(losses["classification"], expected["classification"])
    torch.testing.assert_close(losses["box_regression"], expected["box_regression"])
    ratio2 = ssd_loss_from_matches(logits, deltas, BOXES, labels, matched, neg_pos_ratio=1)
    expected2 = ssd_loss(logits, deltas, BOXES, targets, neg_pos_ratio=1)
    torch.testing.assert_close(ratio2["classification"], expected2["classification"])
    assert float(ratio2["classification"]) < float(losses["classification"])


def test_loss_from_matches_by_hand():
    logits, deltas = random_outputs(3, images=1)
    labels = torch.zeros(1, len(BOXES), dtype=torch.int64)
    matched = torch.zeros(1, len(BOXES), 4)
    labels[0, [4, 9]] = torch.tensor([2, 3])
    matched[0, 4] = torch.tensor([10.0, 12.0, 30.0, 28.0])
    matched[0, 9] = torch.tensor([20.0, 18.0, 44.0, 40.0])

    def keep_positives_and_box_0(confidence, labels_, ratio):
        kept = labels_ > 0
        kept[:, 0] = True
        return kept

    losses = ssd_loss_from_matches(
        logits, deltas, BOXES, labels, matched, mining_fn=keep_positives_and_box_0
    )
    ce = F.cross_entropy(logits[0, [0, 4, 9]], torch.tensor([0, 2, 3]), reduction="sum")
    targets = encode_boxes(BOXES[[4, 9]], matched[0, [4, 9]], weights=SSD_BOX_WEIGHTS)
    box = F.smooth_l1_loss(deltas[0, [4, 9]], targets, beta=1.0, reduction="sum")
    torch.testing.assert_close(losses["classification"], ce / 2)
    torch.testing.assert_close(losses["box_regression"], box / 2)


def test_loss_from_matches_passes_ratio_to_mining_fn_and_handles_no_positive():
    logits, deltas = random_outputs(4, images=2)
    labels = torch.zeros(2, len(BOXES), dtype=torch.int64)
    matched = torch.zeros(2, len(BOXES), 4)
    seen = []

    def mining_fn(confidence, labels_, ratio):
        seen.append((tuple(confidence.shape), ratio))
        return torch.ones_like(labels_, dtype=torch.bool)

    losses = ssd_loss_from_matches(
        logits, deltas, BOXES, labels, matched, neg_pos_ratio=5, mining_fn=mining_fn
    )
    assert seen == [((2, len(BOXES)), 5)]
    background = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="sum")
    torch.testing.assert_close(losses["classification"], background)  # divided by max(0, 1)
    assert float(losses["box_regression"]) == 0.0


def test_loss_from_matches_gradients_reach_the_outputs():
    logits, deltas = random_outputs(5)
    logits.requires_grad_(True)
    deltas.requires_grad_(True)
    labels, matched = match_targets(BOXES, random_targets(6), NUM_CLASSES)
    losses = ssd_loss_from_matches(logits, deltas, BOXES, labels, matched)
    (losses["classification"] + losses["box_regression"]).backward()
    assert float(logits.grad.abs().sum()) > 0 and float(deltas.grad.abs().sum()) > 0
    assert float(deltas.grad[labels == 0].abs().sum()) == 0.0  # only matched boxes regress


def test_loss_from_matches_rejects_mismatched_inputs():
    logits, deltas = random_outputs(7)
    labels, matched = match_targets(BOXES, random_targets(8), NUM_CLASSES)
    with pytest.raises(ValueError, match=r"labels must be \(N, D\)"):
        ssd_loss_from_matches(logits, deltas, BOXES, labels[:2], matched)
    with pytest.raises(ValueError, match=r"matched_boxes \(N, D, 4\)"):
        ssd_loss_from_matches(logits, deltas, BOXES, labels, matched[:, :, :2])
    with pytest.raises(ValueError, match="D = "):
        ssd_loss_from_matches(logits[:, :-1], deltas[:, :-1], BOXES, labels, matched)
    with pytest.raises(ValueError, match=r"box_deltas must be \(N, D, 4\)"):
        ssd_loss_from_matches(logits, deltas[:2], BOXES, labels, matched)
