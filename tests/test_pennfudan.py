"""Tests of the Penn-Fudan dataset: item formats, transforms, the download and its failures."""

import shutil
import zipfile

import numpy as np
import pytest
import torch
from photo_fixtures import pennfudan_names, pennfudan_zip, write_pennfudan_folder
from PIL import Image
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes
from torchvision.transforms import v2

from course_utils.core.validate import check_image, check_target
from course_utils.data.downloads import DatasetUnavailable, extract_zip, sha256_of
from course_utils.data.pennfudan import (
    PENNFUDAN_CLASSES,
    PENNFUDAN_SHA256,
    PennFudanPed,
    download_pennfudan,
    masks_from_ids,
    pennfudan_problems,
    pennfudan_split,
)

UNREACHABLE = "http://127.0.0.1:9/PennFudanPed.zip"


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


@pytest.fixture
def archive(tmp_path):
    return pennfudan_zip(tmp_path, count=4)


def leftovers(root):
    """Everything in ``root`` but the dataset folder and a hand-placed archive."""
    return sorted(
        p.name for p in root.iterdir() if p.name not in ("PennFudanPed", "PennFudanPed.zip")
    )


# --------------------------------------------------------------------------------------- items


def test_items_follow_the_detection_contract(root):
    write_pennfudan_folder(root, count=4, size=(60, 80))
    dataset = PennFudanPed(root)
    assert len(dataset) == 4 and dataset.names == sorted(pennfudan_names(4))
    assert dataset.classes == PENNFUDAN_CLASSES == ("pedestrian",)
    for index in range(len(dataset)):
        image, target = dataset[index]
        assert isinstance(image, tv_tensors.Image) and image.dtype == torch.float32
        assert image.shape == (3, 60, 80)
        check_image(image)
        check_target(target, canvas_size=(60, 80))
        boxes, masks = target["boxes"], target["masks"]
        assert isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.format.name == "XYXY"
        assert boxes.dtype == torch.float32 and tuple(boxes.canvas_size) == (60, 80)
        assert isinstance(masks, tv_tensors.Mask) and masks.dtype == torch.uint8
        assert 1 <= len(boxes) <= 3 and masks.shape == (len(boxes), 60, 80)
        assert target["labels"].dtype == torch.int64 and torch.equal(
            target["labels"], torch.ones(len(boxes), dtype=torch.int64)
        )
        assert target["image_id"] == index


def test_items_equal_the_files_and_boxes_end_one_past_the_masks(root):
    folder = write_pennfudan_folder(root, count=3, seed=5)
    dataset = PennFudanPed(root)
    name = dataset.names[1]
    image, target = dataset[1]
    pixels = np.array(Image.open(folder / "PNGImages" / f"{name}.png"))
    ids = np.array(Image.open(folder / "PedMasks" / f"{name}_mask.png"))
    assert torch.equal((image * 255).round().byte().permute(1, 2, 0), torch.from_numpy(pixels))
    expected = np.stack([ids == i for i in range(1, ids.max() + 1)])
    assert torch.equal(target["masks"].bool(), torch.from_numpy(expected))
    tight = masks_to_boxes(target["masks"])
    assert torch.equal(
        target["boxes"].as_subclass(torch.Tensor), tight + torch.tensor([0, 0, 1, 1])
    )
    widths = target["boxes"][:, 2] - target["boxes"][:, 0]
    assert torch.equal(widths, target["masks"].any(dim=1).sum(dim=1).float())


def test_negative_index_and_out_of_range(root):
    write_pennfudan_folder(root, count=3)
    dataset = PennFudanPed(root)
    assert dataset[-1][1]["image_id"] == 2
    with pytest.raises(IndexError, match="out of range for 3 images"):
        dataset[3]


def test_horizontal_flip_moves_boxes_and_masks_with_the_image(root):
    write_pennfudan_folder(root, count=3)
    plain = PennFudanPed(root)
    flipped = PennFudanPed(root, transforms=v2.RandomHorizontalFlip(p=1.0))
    for index in range(3):
        image, target = plain[index]
        image_f, target_f = flipped[index]
        assert torch.equal(image_f, image.flip(-1))
        assert torch.equal(target_f["masks"], target["masks"].flip(-1))
        assert isinstance(target_f["boxes"], tv_tensors.BoundingBoxes)
        expected = masks_to_boxes(target_f["masks"]) + torch.tensor([0, 0, 1, 1])
        assert torch.equal(target_f["boxes"].as_subclass(torch.Tensor), expected)
        x1, y1, x2, y2 = target["boxes"].as_subclass(torch.Tensor).unbind(-1)
        assert torch.equal(
            target_f["boxes"].as_subclass(torch.Tensor), torch.stack([80 - x2, y1, 80 - x1, y2], -1)
        )


def test_bad_transforms_are_refused(root):
    write_pennfudan_folder(root, count=2)
    with pytest.raises(TypeError, match="transforms must be callable"):
        PennFudanPed(root, transforms="flip")


def test_missing_folder_without_download_says_what_to_do(root):
    with pytest.raises(DatasetUnavailable, match="download=True") as info:
        PennFudanPed(root)
    assert str(root / "PennFudanPed.zip") in str(info.value)
    assert list(root.iterdir()) == []


def test_incomplete_folder_is_reported(root):
    folder = write_pennfudan_folder(root, count=3)
    (folder / "PedMasks" / f"{pennfudan_names(3)[0]}_mask.png").unlink()
    assert pennfudan_problems(folder) and "no mask" in pennfudan_problems(folder)[0]
    with pytest.raises(DatasetUnavailable, match="no mask .* delete that folder"):
        PennFudanPed(root)
    with pytest.raises(DatasetUnavailable, match="delete that folder"):
        download_pennfudan(root, url=UNREACHABLE)


def test_masks_from_ids_keeps_each_present_id_in_order():
    ids = np.zeros((4, 5), dtype=np.uint8)
    ids[0, 0], ids[1:3, 2:4], ids[3, 4] = 5, 2, 5
    masks = masks_from_ids(ids)
    assert masks.shape == (2, 4, 5) and masks.dtype == bool
    assert masks[0].sum() == 4 and masks[0, 1, 2]  # id 2 first
    assert masks[1].sum() == 2 and masks[1, 0, 0] and masks[1, 3, 4]  # then id 5
    assert masks_from_ids(np.zeros((3, 3), np.uint8)).shape == (0, 3, 3)
    with pytest.raises(ValueError, match=r"shape \(H, W\)"):
        masks_from_ids(np.zeros((3, 3, 3), np.uint8))


# ------------------------------------------------------------------------------------ download


def test_extract_zip_refuses_members_outside_the_folder(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as opened:
        opened.writestr("../outside.txt", "escaped")
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(DatasetUnavailable, match="outside the folder"):
        extract_zip(evil, target)
    assert not (tmp_path / "outside.txt").exists() and list(target.iterdir()) == []


def test_download_through_a_file_url_with_the_right_checksum(root, archive):
    zip_path, digest = archive
    folder = download_pennfudan(root, url=zip_path.as_uri(), sha256=digest)
    assert folder == root / "PennFudanPed" and pennfudan_problems(folder) == []
    assert leftovers(root) == [] and not (root / "PennFudanPed.zip").exists()
    dataset = PennFudanPed(root)
    assert len(dataset) == 4 and dataset[0][0].shape == (3, 60, 80)


def test_dataset_download_true_downloads_with_the_defaults(root, archive, monkeypatch):
    zip_path, digest = archive
    monkeypatch.setitem(download_pennfudan.__kwdefaults__, "url", zip_path.as_uri())
    monkeypatch.setitem(download_pennfudan.__kwdefaults__, "sha256", digest)
    dataset = PennFudanPed(root, download=True)
    assert len(dataset) == 4 and dataset.folder == root / "PennFudanPed"
    assert leftovers(root) == []


def test_a_wrong_checksum_fails_and_leaves_nothing(root, archive):
    zip_path, digest = archive
    wrong = "0" * 64
    with pytest.raises(DatasetUnavailable, match="wrong SHA-256") as info:
        download_pennfudan(root, url=zip_path.as_uri(), sha256=wrong)
    message = str(info.value)
    assert wrong in message and digest in message and zip_path.as_uri() in message
    assert list(root.iterdir()) == []


def test_a_truncated_archive_fails_and_leaves_nothing(root, tmp_path, archive):
    zip_path, _ = archive
    cut = tmp_path / "cut" / "PennFudanPed.zip"
    cut.parent.mkdir()
    cut.write_bytes(zip_path.read_bytes()[: zip_path.stat().st_size // 2])
    with pytest.raises(DatasetUnavailable, match="truncated or corrupt") as info:
        download_pennfudan(root, url=cut.as_uri(), sha256=sha256_of(cut))
    assert "run the cell again" in str(info.value)
    assert f"put it at {root / 'PennFudanPed.zip'}" in str(info.value)
    assert list(root.iterdir()) == []


def test_a_corrupt_member_fails_on_its_crc(root, tmp_path, archive, capsys):
    zip_path, _ = archive
    data = bytearray(zip_path.read_bytes())
    start = data.index(b"PNGImages/FudanPed00001.png") + 200  # inside the member's data
    data[start : start + 50] = bytes(50)
    bad = tmp_path / "bad" / "PennFudanPed.zip"
    bad.parent.mkdir()
    bad.write_bytes(bytes(data))
    with pytest.raises(DatasetUnavailable, match="truncated or corrupt"):
        download_pennfudan(root, url=bad.as_uri(), sha256=None)
    assert list(root.iterdir()) == []
    assert "SHA-256" not in capsys.readouterr().out  # a bad archive's digest is not offered


def test_offline_names_the_url_and_the_place_for_the_archive(root):
    with pytest.raises(DatasetUnavailable) as info:
        download_pennfudan(root, url=UNREACHABLE, sha256=None)
    message = str(info.value)
    assert UNREACHABLE in message and str(root / "PennFudanPed.zip") in message
    assert "download=True" in message
    assert list(root.iterdir()) == []


def test_a_hand_placed_archive_is_used_and_kept(root, archive):
    zip_path, digest = archive
    shutil.copy(zip_path, root / "PennFudanPed.zip")
    folder = download_pennfudan(root, url=UNREACHABLE, sha256=digest)
    assert pennfudan_problems(folder) == [] and (root / "PennFudanPed.zip").is_file()
    assert leftovers(root) == []


def test_a_bad_hand_placed_archive_is_kept_and_named(root, archive):
    zip_path, _ = archive
    (root / "PennFudanPed.zip").write_bytes(zip_path.read_bytes()[:1000])
    with pytest.raises(DatasetUnavailable, match="put there by hand") as info:
        download_pennfudan(root, url=UNREACHABLE, sha256=None)
    assert f"delete {root / 'PennFudanPed.zip'}" in str(info.value)
    assert (root / "PennFudanPed.zip").is_file() and leftovers(root) == []
    assert not (root / "PennFudanPed").exists()


def test_a_hand_placed_archive_with_a_wrong_checksum_is_kept_and_named(root, archive):
    zip_path, digest = archive
    shutil.copy(zip_path, root / "PennFudanPed.zip")
    with pytest.raises(DatasetUnavailable, match="wrong SHA-256") as info:
        download_pennfudan(root, url=UNREACHABLE, sha256="a" * 64)
    message = str(info.value)
    assert digest in message and "a" * 64 in message and UNREACHABLE in message
    assert f"delete {root / 'PennFudanPed.zip'}" in message
    assert (root / "PennFudanPed.zip").is_file() and leftovers(root) == []


def test_an_archive_without_the_dataset_is_refused(root, tmp_path):
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as opened:
        opened.writestr("PennFudanPed/readme.txt", "no images here")
    with pytest.raises(DatasetUnavailable, match="no PNGImages/ folder"):
        download_pennfudan(root, url=other.as_uri(), sha256=None)
    assert list(root.iterdir()) == []


def test_without_a_checksum_the_digest_is_printed(root, archive, capsys):
    zip_path, digest = archive
    download_pennfudan(root, url=zip_path.as_uri(), sha256=None)
    assert digest in capsys.readouterr().out
    assert pennfudan_problems(root / "PennFudanPed") == []


def test_the_published_checksum_is_unknown_or_well_formed():
    assert PENNFUDAN_SHA256 is None or (
        len(PENNFUDAN_SHA256) == 64 and set(PENNFUDAN_SHA256) <= set("0123456789abcdef")
    )


def test_a_complete_folder_is_returned_without_the_network(root, capsys):
    write_pennfudan_folder(root, count=2)
    assert download_pennfudan(root, url=UNREACHABLE, sha256="f" * 64) == root / "PennFudanPed"
    assert capsys.readouterr().out == ""


def test_bad_download_arguments(root):
    with pytest.raises(ValueError, match="64 hex digits"):
        download_pennfudan(root, sha256="abc")
    with pytest.raises(TypeError, match="hex string or None"):
        download_pennfudan(root, sha256=123)
    with pytest.raises(TypeError, match="root must be a folder"):
        download_pennfudan(42)
    with pytest.raises(TypeError, match="download must be True or False"):
        PennFudanPed(root, download="yes")


# --------------------------------------------------------------------------------------- split


def test_split_is_disjoint_complete_and_seeded(root):
    write_pennfudan_folder(root, count=10, size=(40, 40))
    dataset = PennFudanPed(root)
    train, val = pennfudan_split(dataset, val_count=3, seed=1)
    assert len(train) == 7 and len(val) == 3
    assert set(train.indices).isdisjoint(val.indices)
    assert sorted(train.indices + val.indices) == list(range(10))
    again = pennfudan_split(dataset, val_count=3, seed=1)
    assert again[1].indices == val.indices
    others = [pennfudan_split(dataset, val_count=3, seed=s)[1].indices for s in range(2, 7)]
    assert any(indices != val.indices for indices in others)
    assert val[0][1]["image_id"] == val.indices[0]


def test_split_checks_its_input(root):
    write_pennfudan_folder(root, count=4, size=(40, 40))
    dataset = PennFudanPed(root)
    with pytest.raises(ValueError, match=r"val_count must be an int in \[1, 3\]"):
        pennfudan_split(dataset)  # 50 of 4
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        pennfudan_split(dataset, val_count=1, seed=-1)
    with pytest.raises(TypeError, match="torch Dataset"):
        pennfudan_split([1, 2, 3], val_count=1)
