"""course_utils.detection.warped_regions: warping regions, the region set, R-CNN mini-batches."""

import pytest
import torch
from rcnn_helpers import jittered, random_boxes, scene
from torchvision.ops import box_iou

from course_utils.detection.warped_regions import (
    MinibatchDataset,
    as_float_crops,
    build_region_set,
    dilate_boxes,
    warp_regions,
)

# --------------------------------------------------------------------------- warping


def test_dilate_boxes():
    out = dilate_boxes(torch.tensor([[10.0, 20.0, 30.0, 60.0]]), 0.25)
    assert out.tolist() == [[5.0, 10.0, 35.0, 70.0]]
    with pytest.raises(ValueError, match="context"):
        dilate_boxes(torch.zeros(1, 4), -0.1)
    with pytest.raises(TypeError, match="context"):
        dilate_boxes(torch.zeros(1, 4), "0.25")


def test_warp_regions_shapes_and_content():
    image = torch.zeros(3, 40, 60)
    image[0, 10:20, 30:50] = 1.0  # a red rectangle, 20 wide and 10 high
    box = torch.tensor([[30.0, 10.0, 50.0, 20.0]])
    crop = warp_regions(image, box, size=16, context=0.0)
    assert crop.shape == (1, 3, 16, 16)
    # anisotropic: the 20 x 10 box fills the crop (bilinear up-sampling blends the outermost rows
    # a little)
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


# ---------------------------------------------------------------------- region set and mini-batches


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
    with pytest.raises(TypeError, match="num_batches"):
        MinibatchDataset(regions, num_batches=2.0)
    with pytest.raises(ValueError, match="both positive and background"):
        MinibatchDataset(regions.subset(regions.labels > 0), num_batches=2)


def test_minibatch_hflip_mirrors_a_random_half():
    images, targets = zip(*(scene(s) for s in range(2)))
    proposals = [random_boxes(30, s, 64) for s in range(2)]
    regions = build_region_set(images, targets, proposals, size=8)
    plain = MinibatchDataset(regions, num_batches=3, batch_size=32, seed=4)
    flipped = MinibatchDataset(regions, num_batches=3, batch_size=32, seed=4, hflip=True)
    crops, labels = plain[2]
    mirrored, same_labels = flipped[2]
    assert torch.equal(labels, same_labels)  # the flips are drawn after the regions
    is_flipped = (mirrored == crops.flip(-1)).flatten(1).all(1)
    is_same = (mirrored == crops).flatten(1).all(1)
    assert (is_flipped | is_same).all() and 0 < int(is_flipped.sum()) < 32


def test_as_float_crops():
    crops = torch.tensor([[[[0, 51, 255]]]], dtype=torch.uint8)
    torch.testing.assert_close(as_float_crops(crops), torch.tensor([[[[0.0, 0.2, 1.0]]]]))
    floats = torch.rand(2, 3, 4, 4)
    assert as_float_crops(floats) is floats


def test_build_region_set_validates():
    image, target = scene(0)
    with pytest.raises(ValueError, match="one entry per image"):
        build_region_set([image], [target], [])
