"""The region graph, one merge step, greedy grouping and the hierarchy it builds."""

from __future__ import annotations

import numpy as np
import pytest
from selective_search_helpers import small_graph

from course_utils.data.scenes import generate_scene, scene_seed
from course_utils.detection.hierarchical_grouping import (
    Hierarchy,
    RegionGraph,
    hierarchical_grouping,
    merge_regions,
    pair_similarity,
)
from course_utils.detection.region_similarity import similarity_weights
from course_utils.detection.selective_search import Strategy, build_hierarchy, region_graph


@pytest.fixture(scope="module")
def scene_image() -> np.ndarray:
    return generate_scene(scene_seed("val", 3)).image


@pytest.fixture(scope="module")
def scene_hierarchy(scene_image) -> Hierarchy:
    return build_hierarchy(scene_image, Strategy("hsv", 100.0, "CTSF", min_size=20))


def test_region_graph_holds_room_for_every_merge():
    graph = small_graph()
    assert graph.count == 3 and graph.size.shape == (5,) and graph.box.shape == (5, 4)
    assert graph.color.shape == (5, 75) and graph.texture.shape == (5, 240)
    assert graph.neighbours == {0: {1, 2}, 1: {0, 2}, 2: {0, 1}}
    graph.color[4] = 1.0  # the properties are views on one array
    assert graph.histograms[4, :75].sum() == 75
    with pytest.raises(ValueError, match="same R"):
        RegionGraph.from_initial(
            np.ones(2), np.zeros((3, 4)), np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((0, 2)), 9
        )


def test_merge_regions_weights_by_size_and_updates_every_neighbourhood():
    graph = small_graph()
    copy = graph.copy()
    t = merge_regions(graph, 0, 1)
    assert t == 3 and graph.count == 4
    assert graph.size[3] == 36
    np.testing.assert_array_equal(graph.box[3], [0, 0, 8, 6])
    np.testing.assert_allclose(graph.color[3], (24 * copy.color[0] + 12 * copy.color[1]) / 36)
    np.testing.assert_allclose(graph.texture[3], (24 * copy.texture[0] + 12 * copy.texture[1]) / 36)
    assert graph.neighbours == {2: {3}, 3: {2}}
    assert copy.neighbours == {0: {1, 2}, 1: {0, 2}, 2: {0, 1}}  # copy() is deep
    assert copy.count == 3 and copy.size[3] == 0


def test_pair_similarity_sums_the_chosen_measures():
    graph = small_graph()
    all_four = pair_similarity(graph, 0, [1, 2], similarity_weights("CTSF"))
    parts = [pair_similarity(graph, 0, [1, 2], similarity_weights(letter)) for letter in "CTSF"]
    np.testing.assert_allclose(all_four, np.sum(parts, axis=0))
    np.testing.assert_allclose(parts[2], 1 - (24 + np.array([12, 12])) / 48)
    np.testing.assert_allclose(parts[3], [0.75, 0.75])  # union box 48 px, 12 in neither region
    both_histograms = pair_similarity(graph, 0, [1, 2], similarity_weights("CT"))
    np.testing.assert_allclose(both_histograms, parts[0] + parts[1])


def test_hierarchical_grouping_merges_the_most_similar_pair_first():
    graph = small_graph()
    before = graph.copy()
    merges, values = hierarchical_grouping(graph, "CTSF")
    assert merges.shape == (2, 3) and values.shape == (2,)
    weights = similarity_weights("CTSF")
    pairs = [(0, 1), (0, 2), (1, 2)]
    scores = [float(pair_similarity(before, i, [j], weights)[0]) for i, j in pairs]
    assert tuple(merges[0, :2]) == pairs[int(np.argmax(scores))]
    assert values[0] == pytest.approx(max(scores))
    np.testing.assert_array_equal(merges[:, 2], [3, 4])
    np.testing.assert_array_equal(graph.box[4], [0, 0, 8, 6])
    assert graph.neighbours == {4: set()}


def test_hierarchical_grouping_stops_after_max_steps():
    graph = small_graph()
    merges, values = hierarchical_grouping(graph, "CTSF", max_steps=1)
    assert merges.shape == (1, 3) and values.shape == (1,) and graph.count == 4
    with pytest.raises(ValueError, match="max_steps"):
        hierarchical_grouping(small_graph(), "CTSF", max_steps=-1)


def test_size_similarity_alone_merges_small_regions_first(scene_image):
    strategy = Strategy("hsv", 100.0, "S", min_size=20)
    graph, _ = region_graph(scene_image, strategy)
    touching = [(i, j) for i, others in graph.neighbours.items() for j in others]
    sizes = graph.size[: graph.count].copy()
    merges, _ = hierarchical_grouping(graph, "S")
    first_total = sizes[merges[0, 0]] + sizes[merges[0, 1]]
    assert first_total == min(sizes[i] + sizes[j] for i, j in touching)


def test_a_hierarchy_ends_with_the_whole_image(scene_hierarchy):
    h = scene_hierarchy
    regions = h.num_initial
    assert h.num_steps == regions - 1 and h.boxes.shape == (2 * regions - 1, 4)
    np.testing.assert_array_equal(h.boxes[-1], [0, 0, 128, 128])
    assert h.sizes[-1] == 128 * 128
    assert (h.boxes[:, :2] >= 0).all() and (h.boxes[:, 2:] <= 128).all()
    assert (h.boxes[:, 2:] > h.boxes[:, :2]).all()
    assert np.all(np.diff(h.merges[:, 2]) == 1)
    assert h.proposals().shape == (2 * regions - 1, 4)
    np.testing.assert_array_equal(h.proposals().numpy(), h.boxes)


def test_labels_at_every_step(scene_hierarchy):
    h = scene_hierarchy
    np.testing.assert_array_equal(h.labels_at(0), h.initial_labels)
    assert np.unique(h.labels_at(h.num_steps)).tolist() == [2 * h.num_initial - 2]
    step = h.num_steps // 2
    alive = h.regions_at(step)
    assert len(alive) == h.num_initial - step
    labels = h.labels_at(step)
    for region in alive[-3:]:  # a region's pixels lie inside its box and count its size
        ys, xs = np.nonzero(labels == region)
        x1, y1, x2, y2 = h.boxes[region]
        assert xs.min() == x1 and xs.max() + 1 == x2 and ys.min() == y1 and ys.max() + 1 == y2
        assert len(xs) == h.sizes[region]
    with pytest.raises(ValueError, match="step"):
        h.labels_at(h.num_steps + 1)
    with pytest.raises(TypeError, match="step"):
        h.labels_at(1.5)
