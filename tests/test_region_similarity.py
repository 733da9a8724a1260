"""The four similarities and the similarity strings, in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from course_utils.detection.region_similarity import (
    fill_similarity,
    histogram_intersection,
    similarity_weights,
    size_similarity,
    union_box,
)


def test_histogram_intersection_closed_forms():
    a = np.array([0.5, 0.5, 0.0])
    b = np.array([0.0, 0.5, 0.5])
    assert histogram_intersection(a, b) == pytest.approx(0.5)
    assert histogram_intersection(a, a) == pytest.approx(1.0)
    assert histogram_intersection(a, np.array([0.0, 0.0, 1.0])) == 0.0
    np.testing.assert_allclose(histogram_intersection(a, np.stack([a, b])), [1.0, 0.5])


def test_size_and_fill_similarity_closed_forms():
    assert size_similarity(100, 300, 1000) == pytest.approx(0.6)
    side_by_side = fill_similarity([0, 0, 10, 10], [10, 0, 20, 10], 100, 100, 10000)
    corner = fill_similarity([0, 0, 10, 10], [10, 10, 20, 20], 100, 100, 10000)
    assert side_by_side == pytest.approx(1.0) and corner == pytest.approx(0.98)
    np.testing.assert_array_equal(union_box([0, 5, 3, 8], [2, 1, 4, 6]), [0, 1, 4, 8])


def test_similarities_broadcast_over_pairs():
    boxes = np.array([[10, 0, 20, 10], [10, 10, 20, 20]])
    np.testing.assert_allclose(
        fill_similarity([0, 0, 10, 10], boxes, 100, np.array([100, 100]), 10000), [1.0, 0.98]
    )
    np.testing.assert_allclose(size_similarity(100, np.array([100, 900]), 1000), [0.8, 0.0])
    np.testing.assert_array_equal(union_box([0, 0, 1, 1], boxes), [[0, 0, 20, 10], [0, 0, 20, 20]])


def test_similarity_weights_parse_the_letters():
    np.testing.assert_array_equal(similarity_weights("CTSF"), [1, 1, 1, 1])
    np.testing.assert_array_equal(similarity_weights("TSF"), [0, 1, 1, 1])
    np.testing.assert_array_equal(similarity_weights("F"), [0, 0, 0, 1])
    for bad in ("", "CX", 3):
        with pytest.raises(ValueError, match="letters"):
            similarity_weights(bad)
