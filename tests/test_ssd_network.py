"""course_utils.detection.ssd_network: SSD's added feature maps, its layers and the detector."""

import pytest
import torch
from torch import nn

from course_utils.detection.ssd import SSDHeads, decode_ssd
from course_utils.detection.ssd_boxes import boxes_per_location, default_boxes
from course_utils.detection.ssd_network import SSDDetector, SSDFeatureMaps, SSDLayers

IMAGE_SIZE = (128, 128)
MAP_SIZES = [(16, 16), (8, 8), (4, 4)]
RATIOS = [[2], [2, 3], [2]]
SCALES = (0.1, 0.2, 0.4, 0.6)
NUM_CLASSES = 4  # background + 3
BOXES = default_boxes(MAP_SIZES, IMAGE_SIZE, SCALES, RATIOS)


def tiny_trunk() -> nn.Sequential:
    """(N, 3, 128, 128) -> (N, 8, 16, 16): one stride-8 conv, BatchNorm, ReLU."""
    return nn.Sequential(nn.Conv2d(3, 8, 8, stride=8), nn.BatchNorm2d(8), nn.ReLU())


def tiny_layers(use_maps=None, seed: int = 0) -> SSDLayers:
    torch.manual_seed(seed)
    maps = SSDFeatureMaps(8, 12)
    heads_on = range(3) if use_maps is None else use_maps
    heads = SSDHeads(
        [maps.out_channels[k] for k in heads_on],
        [boxes_per_location(RATIOS)[k] for k in heads_on],
        NUM_CLASSES,
    )
    return SSDLayers(maps, heads, use_maps)


def tiny_detector(seed: int = 0) -> SSDDetector:
    torch.manual_seed(seed)
    return SSDDetector(tiny_trunk(), tiny_layers(seed=seed), BOXES, IMAGE_SIZE)


# --------------------------------------------------------------------------- feature maps


def test_feature_maps_halve_the_trunk_map_finest_first():
    maps = SSDFeatureMaps(8, 12, extra_maps=2)
    assert maps.out_channels == [8, 12, 12]
    out = maps(torch.randn(2, 8, 16, 16))
    assert [tuple(m.shape) for m in out] == [(2, 8, 16, 16), (2, 12, 8, 8), (2, 12, 4, 4)]
    # each extra map is computed from the previous one
    maps.eval()
    with torch.no_grad():
        out = maps(torch.randn(2, 8, 16, 16))
        torch.testing.assert_close(out[1], maps.down[0](out[0]))
        torch.testing.assert_close(out[2], maps.down[1](out[1]))


def test_feature_maps_round_odd_sides_up_and_count_extra_maps():
    out = SSDFeatureMaps(4, 6, extra_maps=3)(torch.randn(1, 4, 15, 9))
    assert [tuple(m.shape[-2:]) for m in out] == [(15, 9), (8, 5), (4, 3), (2, 2)]
    only = SSDFeatureMaps(4, 6, extra_maps=0)
    assert only.out_channels == [4] and len(only(torch.randn(1, 4, 5, 5))) == 1


def test_feature_maps_adapt_kernel():
    trunk_map = torch.randn(2, 4, 6, 6)
    identity = SSDFeatureMaps(4, 6, adapt_kernel=0)
    assert torch.equal(identity(trunk_map)[0], trunk_map)
    one = SSDFeatureMaps(4, 6)  # default: a 1x1 conv -> BatchNorm -> ReLU
    assert one.adapt[0].kernel_size == (1, 1)
    three = SSDFeatureMaps(4, 6, adapt_kernel=3)
    assert three.adapt[0].kernel_size == (3, 3)
    with torch.no_grad():
        adapted = three(trunk_map)[0]
    assert adapted.shape == trunk_map.shape and float(adapted.min()) >= 0  # after the ReLU
    assert not torch.equal(adapted, trunk_map)


def test_feature_maps_reject_wrong_inputs():
    maps = SSDFeatureMaps(8, 12)
    with pytest.raises(ValueError, match=r"\(N, C, h, w\)"):
        maps(torch.randn(8, 16, 16))
    with pytest.raises(ValueError, match="8 channels, got 5"):
        maps(torch.randn(1, 5, 16, 16))
    with pytest.raises(ValueError, match="channels"):
        SSDFeatureMaps(8, 0)
    with pytest.raises(ValueError, match="extra_maps"):
        SSDFeatureMaps(8, 12, extra_maps=-1)
    with pytest.raises(TypeError, match="in_channels"):
        SSDFeatureMaps(8.0, 12)


# --------------------------------------------------------------------------- layers


def test_layers_are_the_heads_on_all_maps_in_default_box_order():
    layers = tiny_layers().eval()
    trunk_map = torch.randn(2, 8, 16, 16)
    logits, deltas = layers(trunk_map)
    assert layers.use_maps == [0, 1, 2]
    assert logits.shape == (2, len(BOXES), NUM_CLASSES) and deltas.shape == (2, len(BOXES), 4)
    with torch.no_grad():
        expected = layers.heads(layers.maps(trunk_map))
    torch.testing.assert_close(logits, expected[0])
    torch.testing.assert_close(deltas, expected[1])


def test_layers_use_maps_predicts_from_the_chosen_maps_only():
    layers = tiny_layers(use_maps=[2]).eval()
    trunk_map = torch.randn(2, 8, 16, 16)
    logits, deltas = layers(trunk_map)
    last_map_boxes = default_boxes([MAP_SIZES[2]], IMAGE_SIZE, SCALES[2:], RATIOS[2:])
    assert logits.shape == (2, len(last_map_boxes), NUM_CLASSES)
    assert deltas.shape == (2, len(last_map_boxes), 4)
    with torch.no_grad():
        expected = layers.heads([layers.maps(trunk_map)[2]])
    torch.testing.assert_close(logits, expected[0])
    torch.testing.assert_close(deltas, expected[1])


@pytest.mark.parametrize("use_maps", [[3], [], [-1], [0, 5]])
def test_layers_reject_use_maps_out_of_range(use_maps):
    maps = SSDFeatureMaps(8, 12)
    heads = SSDHeads([8], [4], NUM_CLASSES)
    with pytest.raises(ValueError, match=r"use_maps must be indices in 0\.\.2, got "):
        SSDLayers(maps, heads, use_maps)


# --------------------------------------------------------------------------- detector


def test_detector_forward_is_layers_of_trunk():
    model = tiny_detector().eval()
    images = torch.rand(2, 3, *IMAGE_SIZE)
    logits, deltas = model(images)
    assert logits.shape == (2, len(BOXES), NUM_CLASSES) and deltas.shape == (2, len(BOXES), 4)
    with torch.no_grad():
        expected = model.layers(model.trunk(images))
    torch.testing.assert_close(logits, expected[0])
    torch.testing.assert_close(deltas, expected[1])
    assert "default_boxes" in model.state_dict()  # a buffer: it follows .to(device)
    assert torch.equal(model.default_boxes, BOXES)


def test_detector_rejects_wrong_images_and_boxes():
    model = tiny_detector()
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.rand(3, *IMAGE_SIZE))
    with pytest.raises(ValueError, match=r"\(128, 128\).*got \(64, 64\)"):
        model(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="default_boxes"):
        SSDDetector(tiny_trunk(), tiny_layers(), BOXES[:, :3], IMAGE_SIZE)
    with pytest.raises(ValueError, match=r"image_size\[1\]"):
        SSDDetector(tiny_trunk(), tiny_layers(), BOXES, (128, 0))


@pytest.mark.parametrize("settings", [{}, {"score_threshold": 0.2, "detections_per_image": 5}])
def test_detect_is_decode_ssd_of_each_image_in_eval_mode(settings):
    model = tiny_detector(seed=1)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        model(torch.rand(4, 3, *IMAGE_SIZE))
    model.train()
    running_mean = model.trunk[1].running_mean.clone()
    images = torch.rand(2, 3, *IMAGE_SIZE)
    detections = model.detect(images, **settings)
    assert model.training  # the mode is restored
    assert torch.equal(model.trunk[1].running_mean, running_mean)  # ran in eval mode
    model.eval()
    with torch.no_grad():
        logits, deltas = model(images)
    assert len(detections) == 2
    for n, found in enumerate(detections):
        expected = decode_ssd(logits[n], deltas[n], BOXES, IMAGE_SIZE, **settings)
        assert set(found) == {"boxes", "scores", "labels"} and len(found["boxes"]) > 0
        torch.testing.assert_close(found["boxes"], expected["boxes"])
        torch.testing.assert_close(found["scores"], expected["scores"])
        assert torch.equal(found["labels"], expected["labels"])
    if settings:
        assert all(len(d["boxes"]) <= 5 and float(d["scores"].min()) > 0.2 for d in detections)


def test_detect_takes_a_list_of_images_and_keeps_eval_mode():
    model = tiny_detector(seed=2).eval()
    images = torch.rand(2, 3, *IMAGE_SIZE)
    from_batch = model.detect(images)
    from_list = model.detect(list(images))
    assert not model.training
    for a, b in zip(from_batch, from_list):
        torch.testing.assert_close(a["boxes"], b["boxes"])
        assert torch.equal(a["labels"], b["labels"])
        assert a["boxes"].device == images.device
