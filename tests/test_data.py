"""Tests of the datasets: item formats, transforms, crops, collate."""

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from course_utils.core.validate import check_image, check_semantic, check_target
from course_utils.data.datasets import (
    CropDataset,
    SceneDataset,
    check_transforms,
    detection_collate,
    image_from_pixels,
)
from course_utils.data.scenes import SceneConfig, generate_scene, scene_seed

SMALL = SceneConfig(size=64)


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_detection_items_follow_the_contract():
    dataset = SceneDataset("train", 6, SMALL, progress=False)
    assert len(dataset) == 6
    for index in range(len(dataset)):
        image, target = dataset[index]
        assert (
            isinstance(image, tv_tensors.Image)
            and image.dtype == torch.float32
            and image.shape == (3, 64, 64)
        )
        check_image(image)
        check_target(target, canvas_size=(64, 64))
        assert (
            isinstance(target["boxes"], tv_tensors.BoundingBoxes)
            and target["boxes"].format.name == "XYXY"
        )
        assert tuple(target["boxes"].canvas_size) == (64, 64)
        assert target["labels"].dtype == torch.int64
        assert isinstance(target["masks"], tv_tensors.Mask) and target["masks"].dtype == torch.uint8
        assert target["semantic"].dtype == torch.int64
        check_semantic(target["semantic"], num_classes=7, canvas_size=(64, 64))
        assert target["image_id"] == index


def test_items_equal_the_generated_scene():
    dataset = SceneDataset("val", 3, SMALL, progress=False)
    scene = generate_scene(scene_seed("val", 2), SMALL)
    image, target = dataset[2]
    assert torch.equal(
        (image * 255).round().to(torch.uint8).permute(1, 2, 0), torch.from_numpy(scene.image)
    )
    assert torch.equal(target["boxes"].as_subclass(torch.Tensor), torch.from_numpy(scene.boxes))
    assert torch.equal(target["masks"].bool(), torch.from_numpy(scene.masks))
    assert torch.equal(target["semantic"], torch.from_numpy(scene.semantic).long())


def test_segmentation_items_are_image_and_int64_mask():
    image, mask = SceneDataset("train", 2, SMALL, task="segmentation", progress=False)[1]
    assert (
        isinstance(mask, tv_tensors.Mask) and mask.dtype == torch.int64 and mask.shape == (64, 64)
    )
    check_image(image)


def test_horizontal_flip_moves_boxes_and_masks_with_the_image():
    plain = SceneDataset("train", 4, SMALL, progress=False)
    flipped = SceneDataset(
        "train", 4, SMALL, transforms=v2.RandomHorizontalFlip(p=1.0), progress=False
    )
    for index in range(4):
        image, target = plain[index]
        image_f, target_f = flipped[index]
        assert torch.equal(image_f, image.flip(-1))
        assert torch.equal(target_f["masks"], target["masks"].flip(-1))
        assert torch.equal(target_f["semantic"], target["semantic"].flip(-1))
        expected = target["boxes"].clone()
        expected[:, 0], expected[:, 2] = 64 - target["boxes"][:, 2], 64 - target["boxes"][:, 0]
        assert torch.equal(
            target_f["boxes"].as_subclass(torch.Tensor), expected.as_subclass(torch.Tensor)
        )
        check_target(target_f, canvas_size=(64, 64))


def test_segmentation_transforms_move_the_mask():
    data = SceneDataset(
        "train",
        2,
        SMALL,
        task="segmentation",
        transforms=v2.RandomVerticalFlip(p=1.0),
        progress=False,
    )
    plain = SceneDataset("train", 2, SMALL, task="segmentation", progress=False)
    assert torch.equal(data[0][1], plain[0][1].flip(-2))


def test_empty_scenes_give_empty_targets():
    dataset = SceneDataset(
        "test", 2, SceneConfig(size=48, min_objects=0, max_objects=0), progress=False
    )
    _, target = dataset[0]
    assert (
        target["boxes"].shape == (0, 4)
        and target["masks"].shape == (0, 48, 48)
        and target["labels"].shape == (0,)
    )
    check_target(target, canvas_size=(48, 48))


def test_detection_collate_keeps_lists():
    dataset = SceneDataset("train", 3, SMALL, progress=False)
    images, targets = detection_collate([dataset[0], dataset[1], dataset[2]])
    assert isinstance(images, list) and len(images) == 3 and isinstance(targets, list)
    assert targets[1]["image_id"] == 1
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=detection_collate)
    assert len(next(iter(loader))[0]) == 2
    with pytest.raises(ValueError, match="non-empty"):
        detection_collate([])


def test_crop_dataset_is_balanced_and_well_formed():
    crops = CropDataset("train", 30, crop_size=24, config=SMALL)
    counts = torch.bincount(crops.labels, minlength=4)
    assert counts.min() == counts.max() > 0 and len(crops) == int(counts.sum())
    image, label = crops[0]
    assert (
        image.shape == (3, 24, 24)
        and image.dtype == torch.float32
        and 0 <= image.min() <= image.max() <= 1
    )
    assert isinstance(label, int) and 0 <= label <= 3
    assert crops.classes == ("background", "disk", "triangle", "star")
    assert crops.windows.shape == (len(crops), 4) and crops.image_indices.max() < 30


def test_background_crops_avoid_objects():
    from torchvision.ops import box_iou

    crops = CropDataset("val", 20, config=SMALL)
    for window, source, label in zip(crops.windows, crops.image_indices, crops.labels):
        boxes = torch.from_numpy(crops.scenes.scene(int(source)).boxes)
        if label == 0 and len(boxes):
            assert box_iou(window[None], boxes).max() < 0.3
        if label > 0:  # object windows are square and centred on one of the scene's boxes
            assert torch.isclose(window[2] - window[0], window[3] - window[1])


def test_crop_dataset_is_deterministic_and_rejects_bad_arguments():
    a, b = CropDataset("train", 10, config=SMALL), CropDataset("train", 10, config=SMALL)
    assert torch.equal(a.labels, b.labels) and torch.equal(a[3][0], b[3][0])
    with pytest.raises(ValueError, match="context"):
        CropDataset("train", 10, context=-1, config=SMALL)
    with pytest.raises(ValueError, match="crop_size"):
        CropDataset("train", 10, crop_size=2, config=SMALL)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(split="training"), ValueError, "split"),
        (dict(num_images=0), ValueError, "num_images"),
        (dict(num_images=2.5), TypeError, "num_images"),
        (dict(task="keypoints"), ValueError, "task"),
        (dict(config={"size": 64}), TypeError, "config"),
        (dict(transforms="flip"), TypeError, "transforms"),
    ],
)
def test_scene_dataset_rejects_bad_arguments(kwargs, error, message):
    arguments = dict(split="train", num_images=2, config=SMALL) | kwargs
    with pytest.raises(error, match=message):
        SceneDataset(**arguments)


def test_index_errors():
    dataset = SceneDataset("train", 2, SMALL, progress=False)
    with pytest.raises(IndexError):
        dataset[2]
    with pytest.raises(TypeError, match="index"):
        dataset[1.0]
    assert torch.equal(dataset[-1][0], dataset[1][0])
    assert (
        dataset.scene(-2).image.tobytes()
        == generate_scene(scene_seed("train", 0), SMALL).image.tobytes()
    )


def test_image_from_pixels_scales_to_float_chw():
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 15
    image = image_from_pixels(pixels)
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.float32
    assert image.shape == (3, 2, 3)
    assert torch.equal(image[:, 1, 2], torch.tensor([15.0, 16.0, 17.0]) * 15 / 255)
    assert torch.equal(
        (image * 255).round().to(torch.uint8).permute(1, 2, 0), torch.from_numpy(pixels)
    )


def test_check_transforms():
    check_transforms(None)
    check_transforms(v2.RandomHorizontalFlip())
    with pytest.raises(TypeError, match="transforms must be callable"):
        check_transforms("flip")


def test_crop_dataset_rejects_bad_types():
    with pytest.raises(TypeError, match="context"):
        CropDataset("train", 10, context="wide", config=SMALL)
    with pytest.raises(TypeError, match="seed"):
        CropDataset("train", 10, seed=0.5, config=SMALL)
    with pytest.raises(ValueError, match="background_per_image"):
        CropDataset("train", 10, background_per_image=-1, config=SMALL)
