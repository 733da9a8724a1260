"""course_utils.detection.scene_classifier: hard background crops and notebook 01's training set."""

import pytest
import torch
from torchvision.ops import box_iou
from window_helpers import SQUARE, square_image

from course_utils.detection.scene_classifier import (
    WindowCrops,
    background_mask,
    hard_background_crops,
    pretrained_crop_classifier,
    scene_classifier_training_set,
)
from course_utils.detection.windows import (
    best_window_iou,
    crop_windows,
    multiscale_windows,
    shrink_boxes,
)


def test_background_mask_and_hard_background_crops():
    gt = torch.tensor([SQUARE], dtype=torch.float32)
    windows = torch.tensor(
        [[16.0, 20.0, 40.0, 44.0], [0.0, 0.0, 24.0, 24.0], [40.0, 40.0, 64.0, 64.0]]
    )
    assert background_mask(gt, windows, context=0.25).tolist() == [False, True, True]
    assert background_mask(torch.zeros((0, 4)), windows).all()
    image = square_image()
    scenes = [(image, {"boxes": gt, "labels": torch.tensor([1])})] * 2
    crops = hard_background_crops(scenes, (24, 36), (4, 6), context=0.25, per_image=5, crop_size=12)
    assert (
        len(crops) == 10
        and crops.labels.eq(0).all()
        and crops.image_indices.tolist() == [0] * 5 + [1] * 5
    )
    assert (best_window_iou(gt, shrink_boxes(crops.windows, 0.25)) < 0.3).all()
    assert (box_iou(crops.windows, gt)[:, 0] > 0).all()  # touching windows come first
    crop, label = crops[0]
    assert crop.shape == (3, 12, 12) and crop.dtype == torch.float32 and label == 0
    assert torch.allclose(crop, crop_windows(image, crops.windows[:1], 12)[0], atol=1 / 255)


def test_hard_background_crops_fill_up_with_random_background_and_are_seeded():
    gt = torch.tensor([SQUARE], dtype=torch.float32)
    image = square_image()
    grid, _ = multiscale_windows((64, 64), (24, 36), (4, 6), context=0.25)
    background = background_mask(gt, grid, context=0.25)
    touching = int((background & (box_iou(grid, gt)[:, 0] > 0)).sum())
    scenes = [(image, {"boxes": gt, "labels": torch.tensor([1])})]
    crops = hard_background_crops(
        scenes, (24, 36), (4, 6), context=0.25, per_image=touching + 3, crop_size=12
    )
    overlaps = box_iou(crops.windows, gt)[:, 0]
    assert len(crops) == touching + 3
    assert (overlaps[:touching] > 0).all() and (overlaps[touching:] == 0).all()
    assert len(torch.unique(crops.windows, dim=0)) == len(crops)  # drawn without replacement
    again = hard_background_crops(
        scenes, (24, 36), (4, 6), context=0.25, per_image=touching + 3, crop_size=12
    )
    other = hard_background_crops(
        scenes, (24, 36), (4, 6), context=0.25, per_image=touching + 3, crop_size=12, seed=1
    )
    assert torch.equal(again.windows, crops.windows) and torch.equal(again.crops, crops.crops)
    assert not torch.equal(other.windows, crops.windows)
    empty = [(torch.zeros(3, 64, 64), {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0)})]
    random_only = hard_background_crops(empty, (24,), (4,), per_image=3, crop_size=12)
    assert len(random_only) == 3 and random_only.crops.dtype == torch.uint8
    with pytest.raises(TypeError, match="per_image"):
        hard_background_crops(empty, (24,), (4,), per_image=2.0)


def test_window_crops_round_trip():
    crops = torch.rand(4, 3, 8, 8)
    data = WindowCrops(crops, torch.tensor([0, 1, 2, 3]), transforms=lambda x: x.flip(-1))
    crop, label = data[2]
    assert label == 2 and torch.allclose(crop, crops[2].flip(-1), atol=1 / 255)
    assert data.crops.dtype == torch.uint8 and torch.equal(
        data.crops[1], crops[1].mul(255).round().to(torch.uint8)
    )
    with pytest.raises(ValueError):
        WindowCrops(crops, torch.tensor([0, 1]))


def test_scene_classifier_training_set_and_pretrained_classifier():
    train_set, crops, hard = scene_classifier_training_set(12, hard_per_image=2)
    assert len(train_set) == len(crops) + len(hard) and len(hard) == 24
    crop, label = train_set[len(crops)]
    assert crop.shape == (3, 32, 32) and label == 0
    assert hard.image_indices.tolist() == [i for i in range(12) for _ in range(2)]
    again = scene_classifier_training_set(12, hard_per_image=2)[2]
    assert torch.equal(again.windows, hard.windows)  # the same seed draws the same crops
    model, history = pretrained_crop_classifier(
        num_scenes=12, steps=2, checkpoint=None, progress=False
    )
    assert not model.training and len(history.records) == 2
    assert model.crop_size == 32 and model.num_classes == 4
