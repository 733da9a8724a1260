"""Tests of the COCO export and reader (course_utils.data.coco)."""

import json

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from course_utils.core.validate import check_target
from course_utils.data.coco import CocoDataset, export_coco
from course_utils.data.datasets import SceneDataset
from course_utils.data.scenes import SceneConfig

SMALL = SceneConfig(size=64)


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


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


def test_coco_path_errors(tmp_path):
    with pytest.raises(ValueError, match="image_dir"):
        CocoDataset(tmp_path / "missing", tmp_path / "a.json")
    with pytest.raises(ValueError, match="export_coco needs detection"):
        export_coco(
            SceneDataset("train", 2, SMALL, task="segmentation", progress=False), tmp_path / "x"
        )
    with pytest.raises(TypeError, match="map-style"):
        export_coco(object(), tmp_path / "y")


def test_coco_annotation_ids_areas_and_info(tmp_path):
    scenes = SceneDataset("val", 4, SMALL, progress=False)
    coco = json.loads(export_coco(scenes, tmp_path / "coco").read_text())
    assert [a["id"] for a in coco["annotations"]] == list(range(1, len(coco["annotations"]) + 1))
    assert [image["id"] for image in coco["images"]] == [0, 1, 2, 3]
    assert coco["info"]["description"].endswith("course_utils.data.coco.export_coco")
    for annotation in coco["annotations"]:
        _, target = scenes[annotation["image_id"]]
        k = [a["id"] for a in coco["annotations"] if a["image_id"] == annotation["image_id"]].index(
            annotation["id"]
        )
        assert annotation["area"] == int(target["masks"][k].sum())
        x1, y1, x2, y2 = target["boxes"][k].tolist()
        assert annotation["bbox"] == [x1, y1, x2 - x1, y2 - y1]
        assert annotation["category_id"] == int(target["labels"][k]) and annotation["iscrowd"] == 0
