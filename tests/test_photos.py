"""Tests of load_photo and the sample photographs: accepted inputs, resizing, bad input."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from course_utils.core.validate import check_image
from course_utils.data.photos import SAMPLE_PHOTOS, load_photo, sample_photo


def rgb(height=20, width=30, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def assert_course_image(image, height, width):
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.float32
    assert image.shape == (3, height, width)
    check_image(image)


def test_uint8_rgb_is_scaled_and_transposed():
    pixels = rgb()
    image = load_photo(pixels)
    assert_course_image(image, 20, 30)
    assert torch.allclose(image, torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)


def test_a_phone_photo_stands_up_by_its_exif_orientation(tmp_path):
    pixels = rgb(height=20, width=30)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "phone.jpg"
    Image.fromarray(pixels).save(path, exif=exif)
    assert_course_image(load_photo(path), 30, 20)
    assert_course_image(load_photo(Image.open(path)), 30, 20)
    Image.fromarray(pixels).save(tmp_path / "plain.jpg")
    assert_course_image(load_photo(tmp_path / "plain.jpg"), 20, 30)


def test_float_rgb_is_kept():
    pixels = rgb().astype(np.float64) / 255
    image = load_photo(pixels)
    assert torch.allclose(image.double(), torch.from_numpy(pixels).permute(2, 0, 1), atol=1e-6)


def test_greyscale_becomes_three_equal_channels():
    grey = rgb()[..., 0]
    for pixels in (grey, grey[..., None]):
        image = load_photo(pixels)
        assert_course_image(image, 20, 30)
        assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])
        assert torch.allclose(image[0], torch.from_numpy(grey).float() / 255)


def test_rgba_is_composited_over_white():
    pixels = np.zeros((20, 30, 4), dtype=np.uint8)
    pixels[..., 0] = 255  # red everywhere
    pixels[:10, :, 3] = 255  # top half opaque, bottom half fully transparent
    pixels[10:15, :, 3] = 128  # half transparent band
    image = load_photo(pixels)
    assert_course_image(image, 20, 30)
    assert torch.equal(image[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.equal(image[:, 19, 0], torch.tensor([1.0, 1.0, 1.0]))
    assert torch.allclose(image[:, 12, 0], torch.tensor([1.0, 127 / 255, 127 / 255]), atol=1e-6)


def test_pil_images_in_various_modes():
    pixels = rgb()
    assert torch.allclose(load_photo(Image.fromarray(pixels)), load_photo(pixels))
    grey = Image.fromarray(pixels[..., 0])  # mode L
    assert torch.allclose(load_photo(grey)[2], torch.from_numpy(pixels[..., 0]).float() / 255)
    palette = Image.fromarray(pixels).convert("P")
    assert_course_image(load_photo(palette), 20, 30)
    transparent = Image.new("LA", (30, 20), (0, 0))  # black, fully transparent
    assert torch.equal(load_photo(transparent), torch.ones(3, 20, 30))
    sixteen = Image.fromarray(np.full((20, 30), 65535, dtype=np.uint16))  # mode I;16
    assert sixteen.mode.startswith("I;16")
    assert torch.equal(load_photo(sixteen), torch.ones(3, 20, 30))


def test_path_input(tmp_path):
    pixels = rgb()
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path)
    assert torch.allclose(load_photo(path), load_photo(pixels))
    assert torch.allclose(load_photo(str(path)), load_photo(pixels))


def test_large_photos_are_shrunk_keeping_the_aspect_ratio():
    wide = np.zeros((1500, 3000, 3), dtype=np.uint8)
    wide[:, 1500:] = 255
    image = load_photo(wide)
    assert_course_image(image, 512, 1024)
    assert float(image[:, :, :500].max()) == 0 and float(image[:, :, 530:].min()) > 0.999
    assert load_photo(rgb(301, 100), max_side=150).shape == (3, 150, 50)  # 49.8 rounds to 50
    assert load_photo(rgb(100, 40), max_side=100).shape == (3, 100, 40)  # not larger: unchanged


@pytest.mark.parametrize(
    "photo, error, words",
    [
        (
            np.zeros((20, 30, 2), np.uint8),
            ValueError,
            r"\(H, W, 3\) RGB .* got shape \(20, 30, 2\)",
        ),
        (np.zeros((20, 30, 5), np.uint8), ValueError, r"\(H, W, 4\) RGBA"),
        (np.zeros((2, 20, 30, 3), np.uint8), ValueError, r"\(H, W\) greyscale"),
        (np.zeros(30, np.uint8), ValueError, "got shape"),
        (np.zeros((3, 20, 30), np.uint8), ValueError, "looks like CHW"),
        (
            np.zeros((20, 30), bool),
            TypeError,
            r"uint8 in 0-255 or float in \[0, 1\]; got dtype bool",
        ),
        (np.zeros((20, 30), np.complex64), TypeError, "got dtype complex64"),
        (np.zeros((20, 30), np.int64), TypeError, "got dtype int64"),
        (np.full((20, 30), 1.5), ValueError, r"values in \[0, 1\]"),
        (np.full((20, 30), 200.0), ValueError, "divide by 255"),
        (np.full((20, 30), -0.1), ValueError, r"values in \[0, 1\]"),
        (np.full((20, 30), np.nan), ValueError, "no NaN"),
        (np.zeros((15, 30), np.uint8), ValueError, r"at least 16 x 16 pixels, got 15 x 30"),
        (np.zeros((30, 8, 3), np.uint8), ValueError, "at least 16 x 16"),
        (torch.zeros(3, 20, 30), TypeError, r"permute\(1, 2, 0\)"),
        ([[0, 1], [1, 0]], TypeError, "a file path, a PIL image or a numpy array"),
    ],
)
def test_bad_input_names_what_was_expected(photo, error, words):
    with pytest.raises(error, match=words):
        load_photo(photo)


def test_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist: expected the path of an image"):
        load_photo(tmp_path / "missing.jpg")
    with pytest.raises(FileNotFoundError, match="is a folder"):
        load_photo(tmp_path)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="not an image file PIL can read"):
        load_photo(text)


def test_bad_max_side():
    with pytest.raises(ValueError, match="max_side must be an int >= 16"):
        load_photo(rgb(), max_side=8)


@pytest.mark.parametrize("name", SAMPLE_PHOTOS)
def test_sample_photos_load_offline(name):
    image = sample_photo(name, max_side=256)
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.float32
    assert image.shape[0] == 3 and max(image.shape[1:]) == 256 and min(image.shape[1:]) >= 16
    check_image(image)
    assert float(image.std()) > 0.05  # a photograph, not a blank


def test_sample_photo_full_size_and_unknown_name():
    assert sample_photo("chelsea").shape == (3, 300, 451)
    with pytest.raises(ValueError, match="name must be one of .*'chelsea'"):
        sample_photo("lena")
