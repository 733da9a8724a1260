"""Images, colour spaces and Felzenszwalb's initial regions, on inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_utils.data.scenes import generate_scene, scene_seed
from course_utils.detection.graph_segmentation import (
    COLOR_SPACES,
    as_hwc_float,
    convert_color,
    initial_regions,
)


@pytest.fixture(scope="module")
def scene_image() -> np.ndarray:
    return generate_scene(scene_seed("val", 3)).image


def test_as_hwc_float_accepts_the_course_formats_and_agrees():
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    from_uint8 = as_hwc_float(pixels)
    from_tensor = as_hwc_float(torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)
    assert from_uint8.shape == (5, 7, 3) and from_uint8.dtype == np.float64
    np.testing.assert_array_equal(from_uint8, pixels / 255.0)
    np.testing.assert_array_equal(from_tensor, from_uint8)  # 8-bit levels are snapped exactly
    np.testing.assert_array_equal(as_hwc_float(pixels / 255.0), from_uint8)
    grey = as_hwc_float(np.full((4, 4, 1), 0.25))
    assert grey.shape == (4, 4, 3) and (grey == 0.25).all()


def test_as_hwc_float_keeps_values_that_are_not_8_bit_levels():
    values = np.full((3, 3, 3), 0.1234)
    np.testing.assert_array_equal(as_hwc_float(values), values)


@pytest.mark.parametrize(
    "bad, error",
    [
        (np.zeros((4, 4)), ValueError),
        (np.full((4, 4, 3), 200.0), ValueError),
        (np.zeros((4, 4, 3), np.int32), TypeError),
        (torch.zeros(4, 4, 3), ValueError),
        ([[0.0]], TypeError),
        (np.zeros((1, 5, 3)), ValueError),
    ],
)
def test_as_hwc_float_rejects_other_formats(bad, error):
    with pytest.raises(error):
        as_hwc_float(bad)


@pytest.mark.parametrize("space", COLOR_SPACES)
def test_convert_color_maps_into_unit_range(space):
    image = np.random.default_rng(1).random((6, 9, 3))
    out = convert_color(image, space)
    assert out.shape == (6, 9, 1 if space in ("h", "i") else 3) and out.dtype == np.float64
    assert out.min() >= 0.0 and out.max() <= 1.0
    if space == "i":
        np.testing.assert_allclose(out[..., 0], image.mean(axis=-1))
    if space == "rgb":
        np.testing.assert_array_equal(out, image)


def test_convert_color_known_values():
    white = np.ones((2, 2, 3))
    np.testing.assert_allclose(convert_color(white, "lab")[..., 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(
        convert_color(white, "rgi"), np.broadcast_to([1 / 3, 1 / 3, 1.0], (2, 2, 3))
    )
    black_rgi = convert_color(np.zeros((2, 2, 3)), "rgi")
    np.testing.assert_allclose(black_rgi[..., :2], 1 / 3)  # black: no division by 0
    red = np.zeros((1, 1, 3))
    red[..., 0] = 1
    np.testing.assert_allclose(convert_color(red, "hsv")[0, 0], [0.0, 1.0, 1.0])
    np.testing.assert_allclose(convert_color(red, "h")[0, 0], [0.0])
    with pytest.raises(ValueError, match="space must be one of"):
        convert_color(white, "xyz")


def test_initial_regions_numbers_regions_without_gaps():
    image = np.zeros((20, 30, 3))
    image[:, 15:] = [1.0, 0.2, 0.2]
    labels = initial_regions(image, scale=50, sigma=0.0, min_size=5)  # no blur: no edge strips
    assert labels.shape == (20, 30) and labels.dtype == np.int64
    assert set(np.unique(labels)) == {0, 1}
    assert (labels[:, :15] == labels[0, 0]).all() and (labels[:, 15:] == labels[0, 29]).all()
    assert labels[0, 0] != labels[0, 29]
    assert initial_regions(np.full((10, 10, 3), 0.3), scale=50).max() == 0


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(scale=0), ValueError, "scale"),
        (dict(scale="big"), TypeError, "scale"),
        (dict(scale=10, min_size=0), ValueError, "min_size"),
        (dict(scale=10, min_size=2.5), TypeError, "min_size"),
        (dict(scale=10, sigma=-1.0), ValueError, "sigma"),
    ],
)
def test_initial_regions_rejects_bad_settings(kwargs, error, message):
    with pytest.raises(error, match=message):
        initial_regions(np.zeros((8, 8, 3)), **kwargs)


def test_smaller_k_gives_more_regions(scene_image):
    image = as_hwc_float(scene_image)
    counts = [initial_regions(image, k, min_size=10).max() + 1 for k in (25, 100, 400)]
    assert counts[0] > counts[1] > counts[2]
