"""Region sizes, boxes, neighbours, per-pixel bins and histograms, on maps with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from selective_search_helpers import three_regions

from course_utils.data.scenes import generate_scene, scene_seed
from course_utils.detection.graph_segmentation import as_hwc_float
from course_utils.detection.region_descriptors import (
    COLOR_BINS,
    TEXTURE_BINS,
    color_bins,
    color_histogram,
    gaussian_derivatives,
    region_adjacency,
    region_boxes,
    region_histograms,
    region_sizes,
    texture_bins,
)


def test_region_sizes_boxes_and_adjacency_of_a_known_map():
    labels = three_regions()
    np.testing.assert_array_equal(region_sizes(labels), [24, 12, 12])
    np.testing.assert_array_equal(region_boxes(labels), [[0, 0, 4, 6], [4, 0, 8, 3], [4, 3, 8, 6]])
    np.testing.assert_array_equal(region_adjacency(labels), [[0, 1], [0, 2], [1, 2]])
    diagonal = np.array([[0, 1], [1, 0]])  # 4-connectivity: 0 and 0 do not touch through the corner
    np.testing.assert_array_equal(region_adjacency(diagonal), [[0, 1]])
    assert region_adjacency(np.zeros((3, 3), np.int64)).shape == (0, 2)
    with pytest.raises(ValueError, match="without gaps"):
        region_boxes(np.array([[0, 2]]))
    with pytest.raises(ValueError, match="integer array"):
        region_sizes(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=">= 0"):
        region_sizes(np.array([[0, -1]]))


def test_color_bins_floor_and_clamp():
    image = np.array([[[0.0, 0.039, 1.0], [0.04, 0.5, 0.999]]])
    np.testing.assert_array_equal(color_bins(image), [[[0, 0, 24], [1, 12, 24]]])
    with pytest.raises(ValueError, match="image must be an array"):
        color_bins(np.zeros((4, 4)))


def test_gaussian_derivatives_see_a_vertical_edge_only_across_it():
    image = np.zeros((21, 21, 1))
    image[:, 11:] = 1.0  # dark to bright from left to right
    responses = gaussian_derivatives(image)
    assert responses.shape == (21, 21, 1, 8) and responses.min() >= 0
    centre = responses[10, 10, 0]
    assert centre[0] > 0.1  # theta = 0: d/dx > 0
    assert centre[4] == 0  # theta = 180: the negative part of d/dx
    assert abs(centre[2]) < 1e-6 and abs(centre[6]) < 1e-6  # theta = 90, 270: no change along y
    np.testing.assert_allclose(centre[1], centre[0] * np.cos(np.pi / 4), rtol=1e-5)  # 45 degrees


def test_texture_bins_cover_all_bins_for_a_textured_image():
    bins = texture_bins(as_hwc_float(generate_scene(scene_seed("val", 3)).image))
    assert bins.shape == (128, 128, 24) and bins.min() == 0 and bins.max() == TEXTURE_BINS - 1
    assert bins.dtype == np.int64


def test_texture_bins_of_a_flat_image_are_all_zero():
    assert (texture_bins(np.full((9, 9, 3), 0.4)) == 0).all()


def test_region_histograms_agree_with_the_one_region_histogram():
    rng = np.random.default_rng(2)
    image = rng.random((6, 8, 3))
    labels = three_regions()
    hist = region_histograms(labels, color_bins(image), COLOR_BINS)
    assert hist.shape == (3, 75)
    np.testing.assert_allclose(hist.sum(axis=1), 1.0)
    for region in range(3):
        np.testing.assert_allclose(hist[region], color_histogram(image[labels == region]))
    with pytest.raises(ValueError, match="pixel_bins"):
        region_histograms(labels, color_bins(image[:5]), COLOR_BINS)


def test_color_histogram_closed_form():
    hist = color_histogram(np.array([[1.0, 0.0, 0.5]] * 4))
    expected = np.zeros(75)
    expected[[24, 25, 62]] = 1 / 3
    np.testing.assert_allclose(hist, expected)
    assert color_histogram(np.array([[0.2]])).shape == (25,)
    with pytest.raises(ValueError):
        color_histogram(np.zeros((0, 3)))
