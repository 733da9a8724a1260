"""course_utils.detection.ssd: SSD's heads, loss and decoding, as torchvision's SSD."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.ssd import SSD, SSDHead
from torchvision.ops import box_iou

from course_utils.detection.ssd import SSDHeads, decode_ssd, ssd_loss
from course_utils.detection.ssd_boxes import (
    boxes_per_location,
    default_boxes,
    hard_negative_mining,
    match_default_boxes,
)

FEATURE_SIZES = [(8, 8), (4, 4), (2, 2)]
IMAGE_SIZE = (64, 64)
RATIOS = [[2], [2, 3], [2]]
BOXES = default_boxes(FEATURE_SIZES, IMAGE_SIZE, (0.15, 0.3, 0.55, 0.8), RATIOS)
NUM_CLASSES = 4  # background + 3


def torchvision_like(**attributes) -> SimpleNamespace:
    """The attributes of an ``SSD`` that ``compute_loss`` and ``postprocess_detections`` read."""
    defaults = {
        "box_coder": det_utils.BoxCoder(weights=(10.0, 10.0, 5.0, 5.0)),
        "neg_to_pos_ratio": 3,
        "score_thresh": 0.01,
        "nms_thresh": 0.45,
        "detections_per_img": 200,
        "topk_candidates": 400,
    }
    return SimpleNamespace(**(defaults | attributes))


# --------------------------------------------------------------------------- heads


def heads_pair(in_channels, per_cell, num_classes) -> tuple[SSDHeads, SSDHead]:
    """The course's heads and torchvision's SSDHead with the same weights."""
    torch.manual_seed(0)
    ours = SSDHeads(in_channels, per_cell, num_classes)
    theirs = SSDHead(list(in_channels), list(per_cell), num_classes)
    renamed = {
        key.replace("classification_head.module_list", "classification").replace(
            "regression_head.module_list", "regression"
        ): value
        for key, value in theirs.state_dict().items()
    }
    ours.load_state_dict(renamed)
    return ours, theirs


@pytest.mark.parametrize(
    "sizes", [[(8, 8), (4, 4), (2, 2)], [(7, 9), (3, 5), (1, 1)], [(5, 5), (3, 2), (2, 3)]]
)
def test_heads_equal_torchvisions_ssd_head(sizes):
    in_channels, per_cell = (6, 8, 5), boxes_per_location(RATIOS)
    ours, theirs = heads_pair(in_channels, per_cell, NUM_CLASSES)
    features = [torch.randn(2, c, h, w) for c, (h, w) in zip(in_channels, sizes)]
    logits, deltas = ours(features)
    expected = theirs(features)
    count = sum(h * w * b for (h, w), b in zip(sizes, per_cell))
    assert logits.shape == (2, count, NUM_CLASSES) and deltas.shape == (2, count, 4)
    torch.testing.assert_close(logits, expected["cls_logits"])
    torch.testing.assert_close(deltas, expected["bbox_regression"])


def test_heads_have_the_agreed_layers():
    heads = SSDHeads([6, 8], [4, 6], 5)
    assert [tuple(c.weight.shape) for c in heads.classification] == [(20, 6, 3, 3), (30, 8, 3, 3)]
    assert [tuple(c.weight.shape) for c in heads.regression] == [(16, 6, 3, 3), (24, 8, 3, 3)]
    assert all(float(c.bias.detach().abs().sum()) == 0 for c in heads.classification)


def test_heads_outputs_follow_default_box_order():
    heads = SSDHeads([3], [4], 2)
    with torch.no_grad():
        for conv in (*heads.classification, *heads.regression):
            conv.weight.zero_()
            conv.bias.copy_(torch.arange(len(conv.bias), dtype=torch.float32))
    logits, deltas = heads([torch.zeros(1, 3, 2, 3)])
    assert logits.shape == (1, 2 * 3 * 4, 2)
    assert logits[0, 5].tolist() == [2.0, 3.0]  # cell 1, box 1: channels 2b..2b+1
    assert deltas[0, 6].tolist() == [8.0, 9.0, 10.0, 11.0]  # cell 1, box 2


def test_heads_reject_wrong_maps():
    heads = SSDHeads([6, 8], [4, 6], 3)
    with pytest.raises(ValueError, match="list of 2 maps"):
        heads([torch.zeros(1, 6, 4, 4)])
    with pytest.raises(ValueError, match=r"features\[1\] must be \(N, 8, h, w\)"):
        heads([torch.zeros(1, 6, 4, 4), torch.zeros(1, 7, 2, 2)])
    with pytest.raises(ValueError, match="one entry per feature map"):
        SSDHeads([6, 8], [4], 3)


# --------------------------------------------------------------------------- loss


def random_batch(seed: int, positives_everywhere: bool = True):
    """Random head outputs and targets (1 to 3 objects per image, or none in the last image)."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, len(BOXES), NUM_CLASSES, generator=generator)
    deltas = torch.randn(3, len(BOXES), 4, generator=generator)
    targets = []
    for image in range(3):
        count = 0 if image == 2 and not positives_everywhere else image + 1
        corners = torch.rand(count, 2, generator=generator) * 40
        sides = torch.rand(count, 2, generator=generator) * 20 + 4
        labels = torch.randint(1, NUM_CLASSES, (count,), generator=generator)
        targets.append({"boxes": torch.cat([corners, corners + sides], dim=1), "labels": labels})
    return logits, deltas, targets


def torchvision_loss(logits, deltas, targets, threshold=0.5):
    matched = [det_utils.SSDMatcher(threshold)(box_iou(t["boxes"], BOXES)) for t in targets]
    head_outputs = {"cls_logits": logits, "bbox_regression": deltas}
    anchors = [BOXES] * len(targets)
    return SSD.compute_loss(torchvision_like(), targets, head_outputs, anchors, matched)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_equals_torchvisions_compute_loss(seed):
    logits, deltas, targets = random_batch(seed)
    losses = ssd_loss(logits, deltas, BOXES, targets)
    expected = torchvision_loss(logits, deltas, targets)
    assert set(losses) == {"classification", "box_regression"}
    assert losses["classification"].ndim == 0
    torch.testing.assert_close(losses["classification"], expected["classification"])
    torch.testing.assert_close(losses["box_regression"], expected["bbox_regression"])


def test_loss_gradients_reach_the_outputs():
    logits, deltas, targets = random_batch(3)
    logits.requires_grad_(True)
    deltas.requires_grad_(True)
    losses = ssd_loss(logits, deltas, BOXES, targets)
    (losses["classification"] + losses["box_regression"]).backward()
    assert float(logits.grad.abs().sum()) > 0 and float(deltas.grad.abs().sum()) > 0
    assert torch.isfinite(logits.grad).all() and torch.isfinite(deltas.grad).all()


def test_an_image_without_objects_trains_its_hardest_negatives():
    logits, deltas, _ = random_batch(4)
    targets = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    losses = ssd_loss(logits[:1], deltas[:1], BOXES, targets)
    confidence = F.cross_entropy(
        logits[0], torch.zeros(len(BOXES), dtype=torch.int64), reduction="none"
    )
    torch.testing.assert_close(losses["classification"], confidence.topk(3).values.sum())
    assert float(losses["box_regression"]) == 0.0


def test_loss_calls_the_given_match_and_mining_functions():
    logits, deltas, targets = random_batch(5)
    calls = {"match": [], "mining": []}

    def match_fn(boxes, gt_boxes, threshold):
        calls["match"].append(threshold)
        return match_default_boxes(boxes, gt_boxes, threshold)

    def mining_fn(confidence, labels, ratio):
        calls["mining"].append((tuple(confidence.shape), ratio))
        return hard_negative_mining(confidence, labels, ratio)

    losses = ssd_loss(
        logits, deltas, BOXES, targets, 0.4, 2, match_fn=match_fn, mining_fn=mining_fn
    )
    assert calls == {"match": [0.4] * 3, "mining": [((3, len(BOXES)), 2)]}
    expected = ssd_loss(logits, deltas, BOXES, targets, 0.4, 2)
    torch.testing.assert_close(losses["classification"], expected["classification"])

    def no_match(boxes, gt_boxes, threshold):
        return torch.full((len(boxes),), -1, dtype=torch.int64)

    def keep_all(confidence, labels, ratio):
        return torch.ones_like(labels, dtype=torch.bool)

    losses = ssd_loss(logits, deltas, BOXES, targets, match_fn=no_match, mining_fn=keep_all)
    background = torch.zeros(3 * len(BOXES), dtype=torch.int64)
    all_boxes = F.cross_entropy(logits.flatten(0, 1), background, reduction="sum")
    torch.testing.assert_close(losses["classification"], all_boxes)
    assert float(losses["box_regression"]) == 0.0


def test_loss_rejects_mismatched_inputs():
    logits, deltas, targets = random_batch(6)
    with pytest.raises(ValueError, match="D = "):
        ssd_loss(logits[:, :-1], deltas[:, :-1], BOXES, targets)
    with pytest.raises(ValueError, match="one target per image"):
        ssd_loss(logits, deltas, BOXES, targets[:2])
    targets[0]["labels"] = targets[0]["labels"] * 0 + NUM_CLASSES
    with pytest.raises(ValueError, match="1..3"):
        ssd_loss(logits, deltas, BOXES, targets)


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize(
    "seed, settings",
    [
        (0, {}),
        (1, {"score_threshold": 0.3, "nms_threshold": 0.3}),
        (2, {"topk_candidates": 5, "detections_per_image": 8}),
    ],
)
def test_decoding_equals_torchvisions_postprocess_detections(seed, settings):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(len(BOXES), NUM_CLASSES, generator=generator) * 2
    deltas = torch.randn(len(BOXES), 4, generator=generator)
    image_size = (60, 64)
    detections = decode_ssd(logits, deltas, BOXES, image_size, **settings)
    names = {
        "score_threshold": "score_thresh",
        "nms_threshold": "nms_thresh",
        "detections_per_image": "detections_per_img",
        "topk_candidates": "topk_candidates",
    }
    model = torchvision_like(**{names[key]: value for key, value in settings.items()})
    head_outputs = {"cls_logits": logits[None], "bbox_regression": deltas[None]}
    expected = SSD.postprocess_detections(model, head_outputs, [BOXES], [image_size])[0]
    assert len(detections["boxes"]) > 0
    assert detections["labels"].dtype == torch.int64
    assert int(detections["labels"].min()) >= 1
    torch.testing.assert_close(detections["boxes"], expected["boxes"])
    torch.testing.assert_close(detections["scores"], expected["scores"])
    assert torch.equal(detections["labels"], expected["labels"])
    assert (
        float(detections["boxes"][:, 2].max()) <= 64
        and float(detections["boxes"][:, 3].max()) <= 60
    )


def test_decoding_nothing_above_the_threshold_gives_empty_detections():
    logits = torch.zeros(len(BOXES), NUM_CLASSES)
    logits[:, 0] = 20.0  # background everywhere
    detections = decode_ssd(logits, torch.zeros(len(BOXES), 4), BOXES, IMAGE_SIZE)
    assert detections["boxes"].shape == (0, 4) and detections["scores"].shape == (0,)
    assert detections["labels"].dtype == torch.int64


def test_decoding_zero_deltas_gives_the_default_box():
    logits = torch.full((len(BOXES), NUM_CLASSES), -10.0)
    logits[17, 2] = 10.0
    detections = decode_ssd(logits, torch.zeros(len(BOXES), 4), BOXES, IMAGE_SIZE, 0.5)
    assert detections["labels"].tolist() == [2]
    expected = BOXES[17].clamp(0, 64)
    torch.testing.assert_close(detections["boxes"][0], expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_matching_mining_and_loss_run_on_the_gpu():
    logits, deltas, targets = random_batch(7, positives_everywhere=False)
    expected = ssd_loss(logits, deltas, BOXES, targets)
    cuda = [{key: value.cuda() for key, value in t.items()} for t in targets]
    losses = ssd_loss(logits.cuda(), deltas.cuda(), BOXES.cuda(), cuda)
    assert match_default_boxes(BOXES.cuda(), cuda[0]["boxes"]).device.type == "cuda"
    for name, value in losses.items():
        assert value.device.type == "cuda"
        torch.testing.assert_close(value.cpu(), expected[name])
