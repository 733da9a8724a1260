"""Tests of the datasets: item formats, cache, transforms, crops, COCO round trip."""

import json

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from course_utils.core.validate import check_image, check_semantic, check_target
from course_utils.data.datasets import (
    CocoDataset,
    CropDataset,
    SceneDataset,
    cache_path,
    detection_collate,
    export_coco,
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


def test_cache_is_written_once_and_reused_for_smaller_requests(data_dir):
    first = SceneDataset("train", 5, SMALL, progress=False)
    path = cache_path("train", 5, SMALL)
    assert path.exists() and path.parent == data_dir / "scenes"
    assert not list(path.parent.glob("*.tmp"))
    stamp = path.stat().st_mtime_ns
    again = SceneDataset("train", 5, SMALL, progress=False)
    prefix = SceneDataset("train", 3, SMALL, progress=False)
    assert path.stat().st_mtime_ns == stamp and not cache_path("train", 3, SMALL).exists()
    for index in range(3):
        assert torch.equal(first[index][0], again[index][0]) and torch.equal(
            first[index][0], prefix[index][0]
        )
        assert torch.equal(first[index][1]["boxes"], prefix[index][1]["boxes"])


def test_corrupt_cache_is_regenerated():
    SceneDataset("train", 2, SMALL, progress=False)
    path = cache_path("train", 2, SMALL)
    path.write_bytes(b"not a zip")
    dataset = SceneDataset("train", 2, SMALL, progress=False)
    assert len(dataset) == 2 and path.stat().st_size > 100


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


def test_coco_round_trip_keeps_boxes_labels_masks(tmp_path):
    scenes = SceneDataset("val", 5, SMALL, progress=False)
    ann_file = export_coco(scenes, tmp_path / "coco")
    coco = json.loads(ann_file.read_text())
    assert [c["id"] for c in coco["categories"]] == [1, 2, 3]
    assert len(coco["annotations"]) == sum(len(scenes[i][1]["labels"]) for i in range(5))
    loaded = CocoDataset(tmp_path / "coco" / "images", ann_file)
    assert len(loaded) == 5 and loaded.classes == ("disk", "triangle", "star")
    for index in range(5):
        image, target = scenes[index]
        image_c, target_c = loaded[index]
        assert torch.equal(image_c, image)
        assert isinstance(target_c["boxes"], tv_tensors.BoundingBoxes)
        assert torch.equal(
            target_c["boxes"].as_subclass(torch.Tensor), target["boxes"].as_subclass(torch.Tensor)
        )
        assert (
            torch.equal(target_c["labels"], target["labels"])
            and target_c["labels"].dtype == torch.int64
        )
        assert torch.equal(target_c["masks"], target["masks"])
        assert target_c["image_id"] == target["image_id"]
    first = coco["annotations"][0]
    mask = scenes[first["image_id"]][1]["masks"][0]
    assert first["area"] == int(mask.sum())


def test_coco_bbox_agrees_with_pycocotools_rle_box(tmp_path):
    from pycocotools import mask as coco_mask

    ann_file = export_coco(SceneDataset("val", 3, SMALL, progress=False), tmp_path / "coco")
    for annotation in json.loads(ann_file.read_text())["annotations"]:
        rle = dict(annotation["segmentation"], counts=annotation["segmentation"]["counts"].encode())
        np.testing.assert_allclose(coco_mask.toBbox(rle), annotation["bbox"])


def test_coco_images_without_annotations_and_transforms(tmp_path):
    scenes = SceneDataset(
        "test", 2, SceneConfig(size=48, min_objects=0, max_objects=0), progress=False
    )
    ann_file = export_coco(scenes, tmp_path / "empty")
    loaded = CocoDataset(
        tmp_path / "empty" / "images", ann_file, transforms=v2.RandomHorizontalFlip(p=1.0)
    )
    image, target = loaded[1]
    assert image.shape == (3, 48, 48)
    assert (
        target["boxes"].shape == (0, 4)
        and target["labels"].shape == (0,)
        and target["masks"].shape == (0, 48, 48)
    )
    check_target(target, canvas_size=(48, 48))


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


def test_index_errors_and_coco_path_errors(tmp_path):
    dataset = SceneDataset("train", 2, SMALL, progress=False)
    with pytest.raises(IndexError):
        dataset[2]
    assert torch.equal(dataset[-1][0], dataset[1][0])
    with pytest.raises(ValueError, match="image_dir"):
        CocoDataset(tmp_path / "missing", tmp_path / "a.json")
    with pytest.raises(ValueError, match="export_coco needs detection"):
        export_coco(
            SceneDataset("train", 2, SMALL, task="segmentation", progress=False), tmp_path / "x"
        )
