"""One region as a dict of tensors: the assignments' references agree with the array code."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from selective_search_helpers import small_graph

from course_utils.data.scenes import generate_scene, scene_seed
from course_utils.detection.hierarchical_grouping import merge_regions, pair_similarity
from course_utils.detection.region_dicts import (
    REGION_KEYS,
    merge_fn_from_dicts,
    merge_region_dicts,
    region_color_histogram,
    region_dict,
    region_similarities,
)
from course_utils.detection.region_similarity import similarity_weights
from course_utils.detection.selective_search import Strategy, build_hierarchy


def test_the_dict_version_of_the_merge_gives_the_same_hierarchy():
    image = generate_scene(scene_seed("val", 3)).image
    strategy = Strategy("lab", 100.0, "CTSF", min_size=20)
    fast = build_hierarchy(image, strategy)
    readable = build_hierarchy(image, strategy, merge_fn=merge_fn_from_dicts(merge_region_dicts))
    np.testing.assert_array_equal(fast.merges, readable.merges)
    np.testing.assert_array_equal(fast.boxes, readable.boxes)


def test_region_dict_and_similarities_agree_with_the_arrays():
    graph = small_graph()
    region = region_dict(graph, 0)
    assert set(region) == set(REGION_KEYS) and region["neighbours"] == frozenset({1, 2})
    assert region["color"].dtype == torch.float64 and region["size"].ndim == 0
    assert float(region["size"]) == 24 and region["box"].tolist() == [0, 0, 4, 6]
    values = region_similarities(region, region_dict(graph, 2), (6, 8))
    expected = [pair_similarity(graph, 0, [2], similarity_weights(letter))[0] for letter in "CTSF"]
    np.testing.assert_allclose(values.numpy(), expected)
    merged = merge_region_dicts(region, region_dict(graph, 1), 3)
    merge_regions(graph, 0, 1)
    np.testing.assert_allclose(merged["color"].numpy(), graph.color[3])
    np.testing.assert_allclose(merged["box"].numpy(), graph.box[3])
    assert merged["neighbours"] == frozenset({2}) and merged["id"] == 3


def test_region_dict_is_a_copy():
    graph = small_graph()
    region = region_dict(graph, 1)
    region["color"].zero_()
    assert graph.color[1].sum() == pytest.approx(1.0)


def test_region_color_histogram_keeps_dtype_and_closed_form():
    histogram = region_color_histogram(torch.tensor([[1.0, 0.0, 0.5]]))
    assert histogram.dtype == torch.float32 and histogram.shape == (75,)
    assert torch.nonzero(histogram).flatten().tolist() == [24, 25, 62]
    assert region_color_histogram(torch.rand(5, 1, dtype=torch.float64)).dtype == torch.float64
    with pytest.raises(ValueError, match="pixels"):
        region_color_histogram(torch.zeros(0, 3))
