"""course_utils.detection.torchvision_ssd: torchvision's SSD on the course's maps and heads, with
boxes in map pixels."""

import pytest
import torch
from torch import nn
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.ssd import SSD

from course_utils.detection.detector_training import train_with_loss
from course_utils.detection.ssd import SSDHeads, decode_ssd, ssd_loss
from course_utils.detection.ssd_boxes import boxes_per_location, default_boxes
from course_utils.detection.ssd_network import SSDFeatureMaps, SSDLayers
from course_utils.detection.ssd_training import FeatureScenes, feature_collate
from course_utils.detection.torchvision_ssd import (
    detect_with_torchvision_ssd,
    torchvision_ssd,
    torchvision_ssd_loss,
)

IMAGE_SIZE = (128, 128)
STRIDE = 8
MAP_SIZE = (16, 16)
MAP_SIZES = [(16, 16), (8, 8), (4, 4)]
RATIOS = [[2], [2, 3], [2]]
SCALES = (0.1, 0.2, 0.4, 0.6)
NUM_CLASSES = 4  # background + 3
BOXES = default_boxes(MAP_SIZES, IMAGE_SIZE, SCALES, RATIOS)


def tiny_layers(seed: int = 0, use_maps=None) -> SSDLayers:
    torch.manual_seed(seed)
    maps = SSDFeatureMaps(8, 12)
    if use_maps is not None:
        return SSDLayers(maps, SSDHeads([12], [4], NUM_CLASSES), use_maps)
    heads = SSDHeads(maps.out_channels, boxes_per_location(RATIOS), NUM_CLASSES)
    return SSDLayers(maps, heads)


def reference(layers: SSDLayers, map_size=MAP_SIZE) -> SSD:
    return torchvision_ssd(
        layers, aspect_ratios=RATIOS, scales=SCALES, map_size=map_size, num_classes=NUM_CLASSES
    )


def random_targets(seed: int, images: int = 3) -> list[dict]:
    """1 to 3 objects per image, in image pixels."""
    generator = torch.Generator().manual_seed(seed)
    targets = []
    for n in range(images):
        count = n % 3 + 1
        corners = torch.rand(count, 2, generator=generator) * 80
        sides = torch.rand(count, 2, generator=generator) * 40 + 8
        labels = torch.randint(1, NUM_CLASSES, (count,), generator=generator)
        targets.append({"boxes": torch.cat([corners, corners + sides], dim=1), "labels": labels})
    return targets


def test_default_boxes_are_the_courses_in_map_pixels():
    model = reference(tiny_layers())
    maps = [torch.zeros(1, 8, h, w) for h, w in MAP_SIZES]
    image = ImageList(torch.zeros(1, 8, *MAP_SIZE), [MAP_SIZE])
    boxes = model.anchor_generator(image, maps)[0]
    assert boxes.shape == BOXES.shape
    torch.testing.assert_close(boxes, BOXES / STRIDE, atol=1e-4, rtol=0)


def test_the_model_holds_copies_of_the_layers_weights():
    layers = tiny_layers(seed=1)
    model = reference(layers)
    assert isinstance(model, SSD)
    ours, theirs = layers.heads, model.head
    for k in range(3):
        assert torch.equal(
            ours.classification[k].weight, theirs.classification_head.module_list[k].weight
        )
        assert torch.equal(ours.regression[k].bias, theirs.regression_head.module_list[k].bias)
    assert torch.equal(layers.maps.down[1][0].weight, model.backbone.maps.down[1][0].weight)
    assert model.backbone.out_channels == [8, 12, 12]
    with torch.no_grad():
        model.head.classification_head.module_list[0].weight.add_(1.0)
        model.backbone.maps.down[0][0].weight.add_(1.0)
    assert not torch.equal(
        ours.classification[0].weight, theirs.classification_head.module_list[0].weight
    )
    assert not torch.equal(layers.maps.down[0][0].weight, model.backbone.maps.down[0][0].weight)


@pytest.mark.parametrize("seed", [0, 1])
def test_loss_at_the_copied_weights_equals_ssd_loss(seed):
    layers = tiny_layers(seed=seed).train()
    model = reference(layers).train()
    maps = torch.randn(3, 8, *MAP_SIZE, generator=torch.Generator().manual_seed(seed))
    targets = random_targets(seed)
    losses = torchvision_ssd_loss(model, (maps, targets), stride=STRIDE)
    logits, deltas = layers(maps)
    expected = ssd_loss(logits, deltas, BOXES, targets)
    assert set(losses) == {"classification", "bbox_regression"}
    assert float(losses["bbox_regression"].detach()) > 0
    torch.testing.assert_close(losses["classification"], expected["classification"])
    torch.testing.assert_close(losses["bbox_regression"], expected["box_regression"])
    # the targets were scaled for torchvision, not in place
    assert float(targets[0]["boxes"].max()) > MAP_SIZE[0]


def test_the_shared_loop_trains_the_reference_on_collated_feature_scenes():
    layers = tiny_layers(seed=2)
    model = reference(layers)
    data = FeatureScenes(torch.randn(4, 8, *MAP_SIZE), random_targets(3, images=4))
    before = model.head.regression_head.module_list[0].weight.detach().clone()
    history = train_with_loss(
        model,
        data,
        torchvision_ssd_loss,
        steps=2,
        collate_fn=feature_collate,
        stride=STRIDE,
        images_per_batch=2,
        progress=False,
        checkpoint=None,
    )
    assert len(history.records) == 2
    assert set(history.records[0]["components"]) == {"classification", "bbox_regression"}
    assert not torch.equal(model.head.regression_head.module_list[0].weight, before)


def test_detections_are_decode_ssd_in_image_pixels():
    layers = tiny_layers(seed=3)
    maps = torch.randn(2, 8, *MAP_SIZE)
    with torch.no_grad():  # non-trivial BatchNorm statistics, then copied
        layers(torch.randn(4, 8, *MAP_SIZE))
    model = reference(layers).train()
    detections = detect_with_torchvision_ssd(model, maps, stride=STRIDE)
    assert model.training  # restored
    layers.eval()
    with torch.no_grad():
        logits, deltas = layers(maps)
    assert len(detections) == 2
    for n, found in enumerate(detections):
        expected = decode_ssd(logits[n], deltas[n], BOXES, IMAGE_SIZE)
        assert set(found) == {"boxes", "scores", "labels"} and len(found["boxes"]) > 0
        assert found["boxes"].device.type == "cpu"
        assert float(found["boxes"].max()) > MAP_SIZE[0]  # image pixels, not map pixels
        assert float(found["boxes"].max()) <= IMAGE_SIZE[0] + 1e-3
        torch.testing.assert_close(found["boxes"], expected["boxes"], atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(found["scores"], expected["scores"])
        assert torch.equal(found["labels"], expected["labels"])
    model.eval()
    detect_with_torchvision_ssd(model, maps, stride=STRIDE)
    assert not model.training


def test_a_non_square_map_is_not_resized():
    layers = tiny_layers(seed=4).train()
    model = reference(layers, map_size=(8, 16)).train()
    seen = []
    model.backbone.register_forward_hook(lambda module, args, out: seen.append(args[0].shape))
    maps = torch.randn(2, 8, 8, 16)
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 60.0, 50.0]]), "labels": torch.tensor([1])}]
    losses = torchvision_ssd_loss(model, (maps, targets * 2), stride=STRIDE)
    assert tuple(seen[0][-2:]) == (8, 16)
    logits, deltas = layers(maps)
    boxes = default_boxes([(8, 16), (4, 8), (2, 4)], (64, 128), SCALES, RATIOS)
    expected = ssd_loss(logits, deltas, boxes, targets * 2)
    torch.testing.assert_close(losses["bbox_regression"], expected["box_regression"])


def test_torchvision_ssd_rejects_wrong_layers_and_settings():
    with pytest.raises(TypeError, match="predicting from all of its maps"):
        reference(tiny_layers(use_maps=[2]))
    with pytest.raises(TypeError, match="SSDLayers"):
        reference(nn.Conv2d(8, 8, 3))
    layers = tiny_layers()
    with pytest.raises(ValueError, match="num_classes"):
        torchvision_ssd(
            layers, aspect_ratios=RATIOS, scales=SCALES, map_size=MAP_SIZE, num_classes=1
        )
    with pytest.raises(ValueError, match=r"map_size\[0\]"):
        reference(layers, map_size=(0, 16))


def test_loss_and_detection_reject_wrong_inputs():
    model = reference(tiny_layers())
    maps = torch.randn(2, 8, *MAP_SIZE)
    with pytest.raises(ValueError, match="stride"):
        torchvision_ssd_loss(model, (maps, random_targets(0, images=2)), stride=0)
    with pytest.raises(TypeError, match="stride"):
        torchvision_ssd_loss(model, (maps, random_targets(0, images=2)), stride="8")
    with pytest.raises(ValueError, match=r"\(N, C, h, w\)"):
        detect_with_torchvision_ssd(model, maps[0], stride=STRIDE)
    with pytest.raises(ValueError, match="stride"):
        detect_with_torchvision_ssd(model, maps, stride=-1)
