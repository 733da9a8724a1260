"""course_utils.detection.ssd_training: augmentation, the trunk's maps computed once, the matching
done once, and the training of SSD's added layers."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import Subset
from torchvision import tv_tensors
from torchvision.transforms import v2

from course_utils.detection.ssd import SSDHeads, match_targets, ssd_loss
from course_utils.detection.ssd_boxes import boxes_per_location, default_boxes
from course_utils.detection.ssd_network import SSDFeatureMaps, SSDLayers
from course_utils.detection.ssd_training import (
    FeatureScenes,
    MatchedScenes,
    augmented_scenes,
    feature_collate,
    feature_scenes,
    keep_all_negatives,
    matched_scenes,
    ssd_augmentation,
    ssd_feature_loss,
    train_ssd_layers,
)

IMAGE_SIZE = (128, 128)
MAP_SIZES = [(16, 16), (8, 8), (4, 4)]
RATIOS = [[2], [2], [2]]
BOXES = default_boxes(MAP_SIZES, IMAGE_SIZE, (0.1, 0.2, 0.4, 0.6), RATIOS)
NUM_CLASSES = 3  # background + 2


def colour_scene(seed: int) -> tuple[torch.Tensor, dict]:
    """A black 128x128 image with a red object (label 1) and a green one (label 2)."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randint(0, 40, (2,), generator=g).tolist(), torch.randint(0, 40, (2,), generator=g)
    y = y.tolist()
    boxes = torch.tensor(
        [[x[0], y[0], x[0] + 40, y[0] + 36], [x[1] + 60, y[1] + 60, x[1] + 88, y[1] + 88]],
        dtype=torch.float32,
    )
    image = torch.zeros(3, *IMAGE_SIZE)
    for channel, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
        image[channel, y1:y2, x1:x2] = 1.0
    return image, {"boxes": boxes, "labels": torch.tensor([1, 2])}


SCENES = [colour_scene(seed) for seed in range(4)]


def tiny_trunk() -> nn.Sequential:
    """(N, 3, 128, 128) -> (N, 8, 16, 16)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 8, stride=8), nn.BatchNorm2d(8), nn.ReLU())


def tiny_layers(seed: int = 0) -> SSDLayers:
    torch.manual_seed(seed)
    maps = SSDFeatureMaps(8, 8)
    return SSDLayers(maps, SSDHeads(maps.out_channels, boxes_per_location(RATIOS), NUM_CLASSES))


# --------------------------------------------------------------------------- augmentation


def test_ssd_augmentation_is_the_papers_pipeline():
    pipeline = ssd_augmentation(zoom_out=(1.0, 3.0), fill=0.25)
    kinds = [type(t) for t in pipeline.transforms]
    assert kinds == [
        v2.RandomPhotometricDistort,
        v2.RandomZoomOut,
        v2.RandomIoUCrop,
        v2.RandomHorizontalFlip,
        v2.Resize,
        v2.ClampBoundingBoxes,
        v2.SanitizeBoundingBoxes,
    ]
    assert list(pipeline.transforms[1].side_range) == [1.0, 3.0]
    assert list(pipeline.transforms[4].size) == [128, 128]


def test_ssd_augmentation_rejects_wrong_settings():
    with pytest.raises(ValueError, match=r"zoom_out\[0\]"):
        ssd_augmentation(zoom_out=(0.5, 2.0))
    with pytest.raises(ValueError, match=r"zoom_out\[1\]"):
        ssd_augmentation(zoom_out=(2.0, 1.5))
    with pytest.raises(ValueError, match="fill"):
        ssd_augmentation(fill=1.5)


def test_augmented_items_are_128_pixels_with_objects_inside_the_canvas():
    items = augmented_scenes(SCENES, ssd_augmentation(), copies=3, seed=1)
    assert len(items) == 3 * len(SCENES)
    for image, target in items:
        assert type(image) is torch.Tensor and image.shape == (3, *IMAGE_SIZE)
        assert image.dtype == torch.float32
        assert float(image.min()) >= 0 and float(image.max()) <= 1 + 1e-5  # resize rounding
        boxes, labels = target["boxes"], target["labels"]
        assert type(boxes) is torch.Tensor and type(labels) is torch.Tensor
        assert labels.dtype == torch.int64 and len(labels) == len(boxes) >= 1
        assert set(labels.tolist()) <= {1, 2}
        assert float(boxes.min()) >= 0 and float(boxes.max()) <= 128
        assert bool((boxes[:, 2:] > boxes[:, :2]).all())
    # the augmentation changes something
    assert any(not torch.equal(image, SCENES[n % 4][0]) for n, (image, _) in enumerate(items))


def test_augmented_boxes_follow_their_objects():
    """Zoom out, crop, flip and resize (no colour change): each box still frames its colour."""
    geometric = v2.Compose(ssd_augmentation().transforms[1:])
    items = augmented_scenes(SCENES, geometric, copies=4, seed=2)
    moved = 0
    for n, (image, target) in enumerate(items):
        original = SCENES[n % 4][1]["boxes"]
        moved += not torch.equal(target["boxes"], original[: len(target["boxes"])])
        for (x1, y1, x2, y2), label in zip(target["boxes"].tolist(), target["labels"].tolist()):
            channel = label - 1
            cx, cy = int((x1 + x2) / 2), int((y1 + y2) / 2)
            assert float(image[channel, cy, cx]) > 0.9
            inner = image[channel, math.ceil(y1) + 2 : int(y2) - 2, math.ceil(x1) + 2 : int(x2) - 2]
            if inner.numel():
                assert float(inner.mean()) > 0.95
    assert moved >= 8  # most copies were zoomed, cropped or flipped


def test_a_flip_moves_the_boxes_with_the_image():
    flip = v2.Compose([v2.RandomHorizontalFlip(p=1.0)])
    items = augmented_scenes(SCENES[:2], flip)
    for (image, target), (original_image, original) in zip(items, SCENES[:2]):
        assert torch.equal(image, original_image.flip(-1))
        x1, y1, x2, y2 = original["boxes"].unbind(1)
        expected = torch.stack([128 - x2, y1, 128 - x1, y2], dim=1)
        torch.testing.assert_close(target["boxes"], expected)
        assert torch.equal(target["labels"], original["labels"])


def test_augmented_scenes_are_deterministic_and_restore_the_global_rng():
    pipeline = ssd_augmentation()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = augmented_scenes(SCENES, pipeline, copies=2, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    again = augmented_scenes(SCENES, pipeline, copies=2, seed=7)
    other = augmented_scenes(SCENES, pipeline, copies=2, seed=8)
    for (a, ta), (b, tb) in zip(first, again):
        assert torch.equal(a, b) and torch.equal(ta["boxes"], tb["boxes"])
        assert torch.equal(ta["labels"], tb["labels"])
    assert any(not torch.equal(a, b) for (a, _), (b, _) in zip(first, other))
    after = torch.rand(3)  # the draws continue as if augmented_scenes had not run
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(3))


def test_augmented_scenes_go_copy_by_copy_with_plain_tensors():
    def identity(image, target):
        assert isinstance(image, tv_tensors.Image)
        assert isinstance(target["boxes"], tv_tensors.BoundingBoxes)
        assert tuple(target["boxes"].canvas_size) == IMAGE_SIZE
        return image, target

    items = augmented_scenes(SCENES[:3], identity, copies=2)
    assert len(items) == 6
    for n, (image, target) in enumerate(items):
        original_image, original = SCENES[n % 3]
        assert type(image) is torch.Tensor and torch.equal(image, original_image)
        assert type(target["boxes"]) is torch.Tensor
        assert torch.equal(target["boxes"], original["boxes"])
    with pytest.raises(ValueError, match="copies"):
        augmented_scenes(SCENES, identity, copies=0)


def test_augmented_scenes_draw_again_when_no_object_is_left():
    calls = []
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}

    def lose_the_first_draw(image, target):
        calls.append(1)
        return (image * 0, empty) if len(calls) == 1 else (image.flip(-1), target)

    items = augmented_scenes(SCENES[:1], lose_the_first_draw)
    assert len(calls) == 2
    assert torch.equal(items[0][0], SCENES[0][0].flip(-1)) and len(items[0][1]["labels"]) == 2

    calls.clear()
    items = augmented_scenes(SCENES[:2], lambda image, target: (calls.append(1) or image, empty))
    assert len(calls) == 20  # 10 draws per scene, then the scene is kept as it is
    for (image, target), (original_image, original) in zip(items, SCENES[:2]):
        assert torch.equal(image, original_image)
        assert torch.equal(target["boxes"], original["boxes"])
        assert torch.equal(target["labels"], original["labels"])


# --------------------------------------------------------------------------- trunk maps


def test_feature_scenes_are_the_trunks_maps_in_eval_mode():
    trunk = tiny_trunk().train()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        trunk(torch.rand(4, 3, *IMAGE_SIZE))
    running_mean = trunk[1].running_mean.clone()
    scenes = SCENES + [colour_scene(9)]
    data = feature_scenes(trunk, scenes, batch_size=2)
    assert trunk.training  # restored
    assert torch.equal(trunk[1].running_mean, running_mean)  # computed in eval mode
    assert isinstance(data, FeatureScenes) and len(data) == 5
    assert data.features.shape == (5, 8, 16, 16) and data.features.dtype == torch.float32
    assert not data.features.requires_grad
    trunk.eval()
    with torch.no_grad():
        expected = trunk(torch.stack([image for image, _ in scenes]))
    torch.testing.assert_close(data.features, expected)
    feature, target = data[4]
    torch.testing.assert_close(feature, expected[4])
    assert torch.equal(target["boxes"], scenes[4][1]["boxes"])
    assert torch.equal(target["labels"], scenes[4][1]["labels"])


def test_feature_scenes_take_augmented_items_and_reject_no_scene():
    trunk = tiny_trunk().eval()
    items = augmented_scenes(SCENES[:2], ssd_augmentation())
    data = feature_scenes(trunk, items)
    assert len(data) == 2 and type(data.targets[0]["boxes"]) is torch.Tensor
    with pytest.raises(ValueError, match="at least one"):
        feature_scenes(trunk, [])
    with pytest.raises(ValueError, match="batch_size"):
        feature_scenes(trunk, SCENES, batch_size=0)


def test_feature_scenes_and_collate_reject_wrong_inputs():
    targets = [target for _, target in SCENES]
    with pytest.raises(ValueError, match=r"\(N, C, h, w\)"):
        FeatureScenes(torch.zeros(4, 8, 16), targets)
    with pytest.raises(ValueError, match="4 feature maps but 3 targets"):
        FeatureScenes(torch.zeros(4, 8, 2, 2), targets[:3])
    with pytest.raises(ValueError, match="non-empty list"):
        feature_collate([])


def test_feature_collate_stacks_maps_and_lists_targets():
    data = FeatureScenes(torch.randn(4, 8, 2, 2), [target for _, target in SCENES])
    maps, targets = feature_collate([data[2], data[0]])
    assert maps.shape == (2, 8, 2, 2)
    assert torch.equal(maps[0], data.features[2]) and torch.equal(maps[1], data.features[0])
    assert isinstance(targets, list) and targets[0] is data.targets[2]


# --------------------------------------------------------------------------- matching


def feature_data() -> FeatureScenes:
    return feature_scenes(tiny_trunk().eval(), SCENES)


def test_matched_scenes_hold_match_targets():
    data = feature_data()
    matched = matched_scenes(data, BOXES, NUM_CLASSES)
    labels, boxes = match_targets(BOXES, data.targets, NUM_CLASSES)
    assert isinstance(matched, MatchedScenes) and len(matched) == 4
    assert torch.equal(matched.labels, labels) and torch.equal(matched.matched_boxes, boxes)
    assert matched.features is data.features
    feature, item_labels, item_boxes = matched[1]
    assert torch.equal(feature, data.features[1]) and torch.equal(item_labels, labels[1])
    assert torch.equal(item_boxes, boxes[1])
    assert torch.equal(matched.positives(), (labels > 0).sum(dim=1))
    assert bool((matched.positives() >= 2).all())  # two objects per scene


def test_matched_scenes_pass_threshold_and_match_fn():
    data = feature_data()
    calls = []

    def match_fn(boxes, gt_boxes, threshold):
        calls.append(threshold)
        return torch.full((len(boxes),), -1, dtype=torch.int64)

    matched = matched_scenes(data, BOXES, NUM_CLASSES, iou_threshold=0.3, match_fn=match_fn)
    assert calls == [0.3] * 4 and int(matched.positives().sum()) == 0
    loose = matched_scenes(data, BOXES, NUM_CLASSES, iou_threshold=0.3)
    strict = matched_scenes(data, BOXES, NUM_CLASSES, iou_threshold=0.7)
    assert int(loose.positives().sum()) > int(strict.positives().sum())


def test_matched_scenes_reject_wrong_inputs():
    data = feature_data()
    with pytest.raises(TypeError, match="FeatureScenes"):
        matched_scenes(list(data), BOXES, NUM_CLASSES)
    with pytest.raises(ValueError, match="default_boxes"):
        matched_scenes(data, BOXES[:, :2], NUM_CLASSES)
    labels = torch.zeros(4, len(BOXES), dtype=torch.int64)
    with pytest.raises(ValueError, match=r"\(N, C, h, w\)"):
        MatchedScenes(torch.zeros(4, 8), labels, torch.zeros(4, len(BOXES), 4))
    with pytest.raises(ValueError, match=r"labels must be \(N, D\) with N = 4"):
        MatchedScenes(data.features, labels[:3], torch.zeros(3, len(BOXES), 4))
    with pytest.raises(ValueError, match=r"matched_boxes must be \(N, D, 4\)"):
        MatchedScenes(data.features, labels, torch.zeros(4, len(BOXES), 2))


# --------------------------------------------------------------------------- loss and training


def test_keep_all_negatives_keeps_every_box():
    labels = torch.tensor([[0, 2, 0, 0], [0, 0, 0, 0]])
    kept = keep_all_negatives(torch.rand(2, 4), labels, neg_pos_ratio=1)
    assert kept.dtype == torch.bool and kept.shape == (2, 4) and bool(kept.all())


def test_feature_loss_is_ssd_loss_of_the_layers_outputs():
    data = feature_data()
    matched = matched_scenes(data, BOXES, NUM_CLASSES)
    layers = tiny_layers().eval()
    batch = (matched.features, matched.labels, matched.matched_boxes)
    losses = ssd_feature_loss(layers, batch, default_boxes=BOXES)
    assert set(losses) == {"classification", "box_regression"}
    assert losses["classification"].requires_grad and losses["box_regression"].requires_grad
    losses = {name: value.detach() for name, value in losses.items()}
    with torch.no_grad():
        logits, deltas = layers(data.features)
        expected = ssd_loss(logits, deltas, BOXES, data.targets)
        torch.testing.assert_close(losses["classification"], expected["classification"])
        torch.testing.assert_close(losses["box_regression"], expected["box_regression"])
        options = {"default_boxes": BOXES, "mining_fn": keep_all_negatives}
        all_boxes = ssd_feature_loss(layers, batch, **options)
        expected = ssd_loss(logits, deltas, BOXES, data.targets, mining_fn=keep_all_negatives)
        torch.testing.assert_close(all_boxes["classification"], expected["classification"])
        assert float(all_boxes["classification"]) > float(losses["classification"])
        fewer = ssd_feature_loss(layers, batch, default_boxes=BOXES, neg_pos_ratio=1)
        assert float(fewer["classification"]) < float(losses["classification"])


def test_train_ssd_layers_lowers_the_loss():
    matched = matched_scenes(feature_data(), BOXES, NUM_CLASSES)
    layers = tiny_layers(seed=1)
    before = layers.heads.classification[0].weight.detach().clone()
    history = train_ssd_layers(
        layers, matched, BOXES, steps=40, batch_size=4, lr=1e-2, progress=False, checkpoint=None
    )
    assert len(history.records) == 40 and history.finished
    assert set(history.records[0]["components"]) == {"classification", "box_regression"}
    first, last = history.records[0]["loss"], history.records[-1]["loss"]
    assert math.isfinite(last) and last < 0.3 * first
    for name in ("classification", "box_regression"):
        assert history.records[-1]["components"][name] < history.records[0]["components"][name]
    assert not torch.equal(layers.heads.classification[0].weight, before)


def test_train_ssd_layers_passes_loss_options_and_takes_a_subset():
    matched = matched_scenes(feature_data(), BOXES, NUM_CLASSES)
    seen = []

    def mining_fn(confidence, labels, ratio):
        seen.append((tuple(labels.shape), ratio))
        return keep_all_negatives(confidence, labels, ratio)

    history = train_ssd_layers(
        tiny_layers(),
        Subset(matched, [0, 1]),
        BOXES,
        steps=2,
        batch_size=2,
        progress=False,
        checkpoint=None,
        mining_fn=mining_fn,
        neg_pos_ratio=2,
    )
    assert len(history.records) == 2
    assert seen == [((2, len(BOXES)), 2)] * 2


def test_train_ssd_layers_rejects_other_datasets():
    data = feature_data()
    with pytest.raises(TypeError, match="MatchedScenes"):
        train_ssd_layers(tiny_layers(), data, BOXES, steps=1, progress=False)
    matched = matched_scenes(data, BOXES, NUM_CLASSES)
    with pytest.raises(ValueError, match="default_boxes"):
        train_ssd_layers(tiny_layers(), matched, BOXES[:, :3], steps=1, progress=False)
