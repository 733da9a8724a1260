"""Tests of the torchvision-backed photo datasets on tiny fixtures in their on-disk formats."""

import pytest
import torch
from photo_fixtures import (
    voc_fixture_objects,
    write_pet_folder,
    write_voc_folder,
)
from torchvision import tv_tensors
from torchvision.datasets import OxfordIIITPet
from torchvision.datasets.voc import DATASET_YEAR_DICT
from torchvision.transforms import v2

from course_utils.core.validate import check_image, check_semantic, check_target
from course_utils.data.downloads import DatasetUnavailable
from course_utils.data.photo_datasets import (
    PET_TRIMAP_CLASSES,
    VOC_CLASSES,
    PetTrimaps,
    trimap_classes,
    voc_detection,
)

# ------------------------------------------------------------------------------------- pets


def test_pet_items_are_square_images_and_int64_masks(tmp_path):
    write_pet_folder(tmp_path, count=6, size=(48, 64))
    dataset = PetTrimaps(tmp_path, size=32)
    assert len(dataset) == 4 and len(PetTrimaps(tmp_path, split="test", size=32)) == 2
    assert dataset.classes == PET_TRIMAP_CLASSES == ("background", "pet", "border")
    for index in range(len(dataset)):
        image, mask = dataset[index]
        assert isinstance(image, tv_tensors.Image) and image.dtype == torch.float32
        assert image.shape == (3, 32, 32)
        check_image(image)
        assert isinstance(mask, tv_tensors.Mask) and mask.dtype == torch.int64
        check_semantic(mask, num_classes=3, canvas_size=(32, 32))
        assert set(mask.unique().tolist()) == {0, 1, 2}


def test_pet_trimap_values_are_mapped_to_classes(tmp_path):
    write_pet_folder(tmp_path, count=3, size=(48, 64))
    _, mask = PetTrimaps(tmp_path, size=40)[0]
    assert int(mask[20, 20]) == 1  # the pet (stored 1) covers the centre
    assert int(mask[0, 0]) == 0 and int(mask[39, 39]) == 0  # background (stored 2)
    row = mask[20].tolist()  # left to right: background, border, pet, border, background
    first_pet = row.index(1)
    assert 2 in row[:first_pet] and row[0] == 0
    assert torch.equal(
        trimap_classes(torch.tensor([[1, 2, 3]], dtype=torch.uint8)), torch.tensor([[1, 0, 2]])
    )


def test_pet_resize_keeps_mask_values_and_roughly_the_pet_area(tmp_path):
    write_pet_folder(tmp_path, count=3, size=(48, 64))
    _, small = PetTrimaps(tmp_path, size=24)[0]
    _, large = PetTrimaps(tmp_path, size=96)[0]
    share = [float((m == 1).float().mean()) for m in (small, large)]
    assert abs(share[0] - share[1]) < 0.05 and 0.1 < share[1] < 0.3


def test_bad_trimap_values_and_size():
    with pytest.raises(ValueError, match=r"1 \(pet\), 2 \(background\) or 3 \(border\)"):
        trimap_classes(torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="size must be an int >= 8"):
        PetTrimaps(size=4)


def test_missing_pets_name_the_folder_and_torchvisions_urls(tmp_path):
    with pytest.raises(DatasetUnavailable, match="download=True") as info:
        PetTrimaps(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "oxford-iiit-pet") in message
    for url, _ in OxfordIIITPet._RESOURCES:
        assert url in message


def test_pets_missing_after_a_download_say_to_run_again_not_to_pass_download(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(OxfordIIITPet, "_download", offline)
    with pytest.raises(DatasetUnavailable, match="could not be downloaded") as info:
        PetTrimaps(tmp_path, download=True)
    message = str(info.value)
    assert "Run the cell again" in message and "Pass download=True" not in message
    assert f"delete {tmp_path / 'oxford-iiit-pet'}" in message


def test_an_incomplete_pet_folder_says_to_delete_it(tmp_path):
    folder = write_pet_folder(tmp_path, count=3)
    next((folder / "images").glob("*.jpg")).unlink()
    pets = PetTrimaps(tmp_path)  # the folders are there: torchvision finds the dataset
    with pytest.raises(DatasetUnavailable, match=f"Delete {folder}"):
        [pets[i] for i in range(len(pets))]


def test_pet_errors_other_than_missing_data_pass_through(tmp_path):
    write_pet_folder(tmp_path, count=3)
    with pytest.raises(ValueError, match="split"):
        PetTrimaps(tmp_path, split="val")


# -------------------------------------------------------------------------------------- voc


def test_voc_classes_come_from_torchvision():
    assert len(VOC_CLASSES) == 21 and VOC_CLASSES[0] == "__background__"
    assert VOC_CLASSES[15] == "person" and VOC_CLASSES[1] == "aeroplane"


def test_voc_items_carry_tv_tensors_in_the_course_format(tmp_path):
    write_voc_folder(tmp_path, count=3)
    dataset = voc_detection(tmp_path, year="2012", image_set="val")
    assert len(dataset) == 3
    for index in range(3):
        image, target = dataset[index]
        assert isinstance(image, tv_tensors.Image) and image.dtype == torch.float32
        assert image.shape == (3, 40, 50)
        check_image(image)
        check_target(target, canvas_size=(40, 50))
        boxes = target["boxes"]
        assert isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.dtype == torch.float32
        assert boxes.format.name == "XYXY" and tuple(boxes.canvas_size) == (40, 50)
        objects = voc_fixture_objects(index)
        expected = torch.tensor([box for _, box in objects], dtype=torch.float32)
        assert torch.equal(boxes.as_subclass(torch.Tensor), expected)
        assert target["labels"].dtype == torch.int64
        assert [VOC_CLASSES[i] for i in target["labels"].tolist()] == [n for n, _ in objects]


def test_voc_transforms_move_the_boxes(tmp_path):
    write_voc_folder(tmp_path, count=2)
    plain = voc_detection(tmp_path)
    flipped = voc_detection(tmp_path, transforms=v2.RandomHorizontalFlip(p=1.0))
    image, target = plain[1]
    image_f, target_f = flipped[1]
    assert torch.equal(image_f, image.flip(-1))
    x1, y1, x2, y2 = target["boxes"].as_subclass(torch.Tensor).unbind(-1)
    expected = torch.stack([50 - x2, y1, 50 - x1, y2], -1)
    assert torch.equal(target_f["boxes"].as_subclass(torch.Tensor), expected)
    assert torch.equal(target_f["labels"], target["labels"])


def test_missing_voc_names_the_folder_and_the_url(tmp_path):
    with pytest.raises(DatasetUnavailable, match="download=True") as info:
        voc_detection(tmp_path, year="2012")
    message = str(info.value)
    assert str(tmp_path / "VOCdevkit" / "VOC2012") in message
    assert DATASET_YEAR_DICT["2012"]["url"] in message
    with pytest.raises(DatasetUnavailable) as info:
        voc_detection(tmp_path, year="2007", image_set="test")
    assert DATASET_YEAR_DICT["2007-test"]["url"] in str(info.value)


def test_voc_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="transforms must be callable"):
        voc_detection(tmp_path, transforms=3)
    with pytest.raises(ValueError, match="year"):
        voc_detection(tmp_path, year="1999")
