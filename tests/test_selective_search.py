"""Selective Search: every step on inputs with known answers, then the whole pipeline on scenes."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from course_utils.data.scenes import generate_scene, scene_seed
from course_utils.detection import selective_search as ss


@pytest.fixture(scope="module")
def scene_image() -> np.ndarray:
    return generate_scene(scene_seed("val", 3)).image


@pytest.fixture(scope="module")
def scene_hierarchy(scene_image) -> ss.Hierarchy:
    return ss.build_hierarchy(scene_image, ss.Strategy("hsv", 100.0, "CTSF", min_size=20))


def three_regions() -> np.ndarray:
    """Labels (6, 8): region 0 left, region 1 top right, region 2 bottom right."""
    labels = np.zeros((6, 8), dtype=np.int64)
    labels[:3, 4:] = 1
    labels[3:, 4:] = 2
    return labels


# --------------------------------------------------------------------------- images and colour spaces


def test_as_hwc_float_accepts_the_course_formats_and_agrees():
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    from_uint8 = ss.as_hwc_float(pixels)
    from_tensor = ss.as_hwc_float(torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)
    assert from_uint8.shape == (5, 7, 3) and from_uint8.dtype == np.float64
    np.testing.assert_allclose(from_uint8, from_tensor, atol=1e-6)
    np.testing.assert_allclose(ss.as_hwc_float(pixels / 255.0), from_uint8)
    assert ss.as_hwc_float(np.zeros((4, 4, 1))).shape == (4, 4, 3)


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
        ss.as_hwc_float(bad)


@pytest.mark.parametrize("space", ss.COLOR_SPACES)
def test_convert_color_maps_into_unit_range(space):
    image = np.random.default_rng(1).random((6, 9, 3))
    out = ss.convert_color(image, space)
    assert out.shape == (6, 9, 1 if space in ("h", "i") else 3)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_convert_color_known_values():
    white = np.ones((2, 2, 3))
    np.testing.assert_allclose(ss.convert_color(white, "lab")[..., 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(
        ss.convert_color(white, "rgi"), np.broadcast_to([1 / 3, 1 / 3, 1.0], (2, 2, 3))
    )
    np.testing.assert_allclose(
        ss.convert_color(np.zeros((2, 2, 3)), "rgi")[..., :2], 1 / 3
    )  # black: no division by 0
    red = np.zeros((1, 1, 3))
    red[..., 0] = 1
    np.testing.assert_allclose(ss.convert_color(red, "hsv")[0, 0], [0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="space must be one of"):
        ss.convert_color(white, "xyz")


# --------------------------------------------------------------------------- initial regions and their features


def test_initial_regions_numbers_regions_without_gaps():
    image = np.zeros((20, 30, 3))
    image[:, 15:] = [1.0, 0.2, 0.2]
    labels = ss.initial_regions(image, scale=50, sigma=0.0, min_size=5)  # no blur: no edge strips
    assert labels.shape == (20, 30) and labels.dtype == np.int64
    assert set(np.unique(labels)) == {0, 1}
    assert len(np.unique(labels[:, :14])) == 1 and labels[0, 0] != labels[0, 29]
    assert ss.initial_regions(np.full((10, 10, 3), 0.3), scale=50).max() == 0
    with pytest.raises(ValueError, match="scale"):
        ss.initial_regions(image, scale=0)
    with pytest.raises(ValueError, match="min_size"):
        ss.initial_regions(image, scale=10, min_size=0)


def test_smaller_k_gives_more_regions(scene_image):
    image = ss.as_hwc_float(scene_image)
    counts = [ss.initial_regions(image, k, min_size=10).max() + 1 for k in (25, 100, 400)]
    assert counts[0] > counts[1] > counts[2]


def test_region_sizes_boxes_and_adjacency_of_a_known_map():
    labels = three_regions()
    np.testing.assert_array_equal(ss.region_sizes(labels), [24, 12, 12])
    np.testing.assert_array_equal(
        ss.region_boxes(labels), [[0, 0, 4, 6], [4, 0, 8, 3], [4, 3, 8, 6]]
    )
    np.testing.assert_array_equal(ss.region_adjacency(labels), [[0, 1], [0, 2], [1, 2]])
    diagonal = np.array([[0, 1], [1, 0]])  # 4-connectivity: 0 and 0 do not touch through the corner
    np.testing.assert_array_equal(ss.region_adjacency(diagonal), [[0, 1]])
    assert ss.region_adjacency(np.zeros((3, 3), np.int64)).shape == (0, 2)
    with pytest.raises(ValueError, match="without gaps"):
        ss.region_boxes(np.array([[0, 2]]))
    with pytest.raises(ValueError, match="integer array"):
        ss.region_sizes(np.zeros((3, 3)))


def test_color_bins_floor_and_clamp():
    image = np.array([[[0.0, 0.039, 1.0], [0.04, 0.5, 0.999]]])
    np.testing.assert_array_equal(ss.color_bins(image), [[[0, 0, 24], [1, 12, 24]]])


def test_gaussian_derivatives_see_a_vertical_edge_only_across_it():
    image = np.zeros((21, 21, 1))
    image[:, 11:] = 1.0  # dark to bright from left to right
    responses = ss.gaussian_derivatives(image)
    assert responses.shape == (21, 21, 1, 8) and responses.min() >= 0
    centre = responses[10, 10, 0]
    assert centre[0] > 0.1  # theta = 0: d/dx > 0
    assert centre[4] == 0  # theta = 180: the negative part of d/dx
    assert abs(centre[2]) < 1e-6 and abs(centre[6]) < 1e-6  # theta = 90, 270: no change along y
    np.testing.assert_allclose(centre[1], centre[0] * np.cos(np.pi / 4), rtol=1e-5)  # 45 degrees


def test_texture_bins_cover_all_bins_for_a_textured_image(scene_image):
    bins = ss.texture_bins(ss.as_hwc_float(scene_image))
    assert bins.shape == (128, 128, 24) and bins.min() == 0 and bins.max() == ss.TEXTURE_BINS - 1


def test_region_histograms_agree_with_the_one_region_histogram():
    rng = np.random.default_rng(2)
    image = rng.random((6, 8, 3))
    labels = three_regions()
    hist = ss.region_histograms(labels, ss.color_bins(image), ss.COLOR_BINS)
    assert hist.shape == (3, 75)
    np.testing.assert_allclose(hist.sum(axis=1), 1.0)
    for region in range(3):
        np.testing.assert_allclose(hist[region], ss.color_histogram(image[labels == region]))


def test_color_histogram_closed_form():
    hist = ss.color_histogram(np.array([[1.0, 0.0, 0.5]] * 4))
    expected = np.zeros(75)
    expected[[24, 25, 62]] = 1 / 3
    np.testing.assert_allclose(hist, expected)
    assert ss.color_histogram(np.array([[0.2]])).shape == (25,)
    with pytest.raises(ValueError):
        ss.color_histogram(np.zeros((0, 3)))


# --------------------------------------------------------------------------- the four similarities


def test_histogram_intersection_closed_forms():
    a = np.array([0.5, 0.5, 0.0])
    b = np.array([0.0, 0.5, 0.5])
    assert ss.histogram_intersection(a, b) == pytest.approx(0.5)
    assert ss.histogram_intersection(a, a) == pytest.approx(1.0)
    assert ss.histogram_intersection(a, np.array([0.0, 0.0, 1.0])) == 0.0
    np.testing.assert_allclose(
        ss.histogram_intersection(a, np.stack([a, b])), [1.0, 0.5]
    )  # broadcasts


def test_size_and_fill_similarity_closed_forms():
    assert ss.size_similarity(100, 300, 1000) == pytest.approx(0.6)
    side_by_side = ss.fill_similarity([0, 0, 10, 10], [10, 0, 20, 10], 100, 100, 10000)
    corner = ss.fill_similarity([0, 0, 10, 10], [10, 10, 20, 20], 100, 100, 10000)
    assert side_by_side == pytest.approx(1.0) and corner == pytest.approx(0.98)
    np.testing.assert_array_equal(ss.union_box([0, 5, 3, 8], [2, 1, 4, 6]), [0, 1, 4, 8])


def test_similarity_weights_parse_the_letters():
    np.testing.assert_array_equal(ss.similarity_weights("CTSF"), [1, 1, 1, 1])
    np.testing.assert_array_equal(ss.similarity_weights("TSF"), [0, 1, 1, 1])
    np.testing.assert_array_equal(ss.similarity_weights("F"), [0, 0, 0, 1])
    for bad in ("", "CX", 3):
        with pytest.raises(ValueError, match="letters"):
            ss.similarity_weights(bad)


# --------------------------------------------------------------------------- the graph and the merge step


def small_graph() -> ss.RegionGraph:
    labels = three_regions()
    image = np.zeros((6, 8, 3))
    image[:, :4] = 0.9
    image[3:, 4:] = 0.5
    count = 3
    return ss.RegionGraph.from_initial(
        ss.region_sizes(labels),
        ss.region_boxes(labels),
        ss.region_histograms(labels, ss.color_bins(image), ss.COLOR_BINS, count),
        ss.region_histograms(labels, ss.texture_bins(image), ss.TEXTURE_BINS, count),
        ss.region_adjacency(labels),
        labels.size,
    )


def test_region_graph_holds_room_for_every_merge():
    graph = small_graph()
    assert graph.count == 3 and graph.size.shape == (5,) and graph.box.shape == (5, 4)
    assert graph.color.shape == (5, 75) and graph.texture.shape == (5, 240)
    assert graph.neighbours == {0: {1, 2}, 1: {0, 2}, 2: {0, 1}}
    graph.color[4] = 1.0  # the properties are views on one array
    assert graph.histograms[4, :75].sum() == 75
    with pytest.raises(ValueError, match="same R"):
        ss.RegionGraph.from_initial(
            np.ones(2), np.zeros((3, 4)), np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((0, 2)), 9
        )


def test_merge_regions_weights_by_size_and_updates_every_neighbourhood():
    graph = small_graph()
    copy = graph.copy()
    t = ss.merge_regions(graph, 0, 1)
    assert t == 3 and graph.count == 4
    assert graph.size[3] == 36
    np.testing.assert_array_equal(graph.box[3], [0, 0, 8, 6])
    np.testing.assert_allclose(graph.color[3], (24 * copy.color[0] + 12 * copy.color[1]) / 36)
    np.testing.assert_allclose(graph.texture[3], (24 * copy.texture[0] + 12 * copy.texture[1]) / 36)
    assert graph.neighbours == {2: {3}, 3: {2}}
    assert copy.neighbours == {0: {1, 2}, 1: {0, 2}, 2: {0, 1}}  # copy() is deep


def test_pair_similarity_sums_the_chosen_measures():
    graph = small_graph()
    all_four = ss.pair_similarity(graph, 0, [1, 2], ss.similarity_weights("CTSF"))
    parts = [
        ss.pair_similarity(graph, 0, [1, 2], ss.similarity_weights(letter)) for letter in "CTSF"
    ]
    np.testing.assert_allclose(all_four, np.sum(parts, axis=0))
    np.testing.assert_allclose(parts[2], 1 - (24 + np.array([12, 12])) / 48)
    np.testing.assert_allclose(
        parts[3], [0.75, 0.75]
    )  # union box 8x6 = 48 px, 12 of them in neither region


def test_hierarchical_grouping_merges_the_most_similar_pair_first():
    graph = small_graph()
    before = graph.copy()
    merges, values = ss.hierarchical_grouping(graph, "CTSF")
    assert merges.shape == (2, 3) and values.shape == (2,)
    weights = ss.similarity_weights("CTSF")
    pairs = [(0, 1), (0, 2), (1, 2)]
    scores = [float(ss.pair_similarity(before, i, [j], weights)[0]) for i, j in pairs]
    assert tuple(merges[0, :2]) == pairs[int(np.argmax(scores))]
    assert values[0] == pytest.approx(max(scores))
    np.testing.assert_array_equal(merges[:, 2], [3, 4])
    np.testing.assert_array_equal(graph.box[4], [0, 0, 8, 6])
    assert graph.neighbours == {4: set()}


def test_size_similarity_alone_merges_small_regions_first(scene_image):
    graph, _ = ss.region_graph(
        ss.as_hwc_float(scene_image), ss.Strategy("hsv", 100.0, "S", min_size=20)
    )
    sizes = graph.size[: graph.count].copy()
    merges, _ = ss.hierarchical_grouping(graph, "S")
    first_total = sizes[merges[0, 0]] + sizes[merges[0, 1]]
    touching = [
        (i, j)
        for i, others in ss.region_graph(
            ss.as_hwc_float(scene_image), ss.Strategy("hsv", 100.0, "S", min_size=20)
        )[0].neighbours.items()
        for j in others
    ]
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


def test_the_dict_version_of_the_merge_gives_the_same_hierarchy(scene_image):
    strategy = ss.Strategy("lab", 100.0, "CTSF", min_size=20)
    fast = ss.build_hierarchy(scene_image, strategy)
    readable = ss.build_hierarchy(
        scene_image, strategy, merge_fn=ss.merge_fn_from_dicts(ss.merge_region_dicts)
    )
    np.testing.assert_array_equal(fast.merges, readable.merges)
    np.testing.assert_array_equal(fast.boxes, readable.boxes)


def test_region_dict_and_similarities_agree_with_the_arrays():
    graph = small_graph()
    region = ss.region_dict(graph, 0)
    assert set(region) == set(ss.REGION_KEYS) and region["neighbours"] == frozenset({1, 2})
    assert region["color"].dtype == torch.float64 and region["size"].ndim == 0
    values = ss.region_similarities(region, ss.region_dict(graph, 2), (6, 8))
    expected = [
        ss.pair_similarity(graph, 0, [2], ss.similarity_weights(letter))[0] for letter in "CTSF"
    ]
    np.testing.assert_allclose(values.numpy(), expected)
    merged = ss.merge_region_dicts(region, ss.region_dict(graph, 1), 3)
    ss.merge_regions(graph, 0, 1)
    np.testing.assert_allclose(merged["color"].numpy(), graph.color[3])
    assert merged["neighbours"] == frozenset({2}) and merged["id"] == 3
    histogram = ss.region_color_histogram(torch.tensor([[1.0, 0.0, 0.5]]))
    assert histogram.dtype == torch.float32 and histogram.shape == (75,)


# --------------------------------------------------------------------------- strategies, ranking, the pipeline


def test_strategies_of_each_mode():
    assert len(ss.strategies("single")) == 1
    fast = ss.strategies("fast")
    assert len(fast) == 8 and {s.color_space for s in fast} == {"hsv", "lab"}
    assert {s.measures for s in fast} == {"CTSF", "TSF"} and {s.scale for s in fast} == set(
        ss.DEFAULT_SCALES[:2]
    )
    quality = ss.strategies("quality")
    assert len(quality) == 80 and len(set(quality)) == 80
    assert ss.strategies("fast", scales=(7, 9))[0].scale == 7
    with pytest.raises(ValueError, match="mode"):
        ss.strategies("best")
    with pytest.raises(ValueError, match="scales"):
        ss.strategies("quality", scales=(10, 20))
    with pytest.raises(ValueError):
        ss.Strategy("xyz")
    assert ss.Strategy().label() == "hsv k=100 CTSF"


def test_rank_proposals_removes_duplicates_and_keeps_the_best_rank():
    first = np.array([[0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 9, 9]], dtype=np.float32)  # creation order
    second = np.array([[5, 5, 6, 6], [0, 0, 9, 9]], dtype=np.float32)
    ranked = ss.rank_proposals([first, second], randomize=False)
    # positions: whole image 1 (twice), then [0,0,2,2] and [5,5,6,6] at 2, then [0,0,1,1] at 3
    np.testing.assert_array_equal(ranked, [[0, 0, 9, 9], [0, 0, 2, 2], [5, 5, 6, 6], [0, 0, 1, 1]])
    random_a = ss.rank_proposals([first, second], seed=1)
    np.testing.assert_array_equal(random_a, ss.rank_proposals([first, second], seed=1))
    assert len(random_a) == 4 and len(np.unique(random_a, axis=0)) == 4
    assert ss.rank_proposals([]).shape == (0, 4)


def test_random_ranking_puts_the_tops_of_hierarchies_first_on_average():
    boxes = [
        np.array([[0, 0, i + 1, 1] for i in range(100)], dtype=np.float32) + [0, h, 0, h]
        for h in range(5)
    ]
    ranks = []
    for seed in range(20):
        ranked = ss.rank_proposals(boxes, seed=seed)
        ranks.append(
            np.nonzero((ranked[:, 2] == 100))[0].mean()
        )  # the last created boxes (position 1)
    assert np.mean(ranks) < 25  # position 1 sorts ahead of most of the 500 boxes


def test_selective_search_returns_ranked_unique_boxes_inside_the_image(scene_image):
    boxes = ss.selective_search(scene_image, mode="single")
    assert isinstance(boxes, torch.Tensor) and boxes.dtype == torch.float32 and boxes.shape[1] == 4
    assert len(torch.unique(boxes, dim=0)) == len(boxes)
    assert (
        (boxes[:, :2] >= 0).all()
        and (boxes[:, 2:] <= 128).all()
        and (boxes[:, 2:] > boxes[:, :2]).all()
    )
    assert any(torch.equal(b, torch.tensor([0.0, 0.0, 128.0, 128.0])) for b in boxes)
    assert torch.equal(boxes, ss.selective_search(scene_image, mode="single"))
    assert torch.equal(
        ss.selective_search(scene_image, mode="single", max_proposals=10), boxes[:10]
    )
    tensor_image = torch.from_numpy(scene_image).permute(2, 0, 1).float() / 255
    assert ss.selective_search(tensor_image, mode="single").shape == boxes.shape
    with pytest.raises(ValueError, match="max_proposals"):
        ss.selective_search(scene_image, max_proposals=-1)
    with pytest.raises(ValueError, match="at least one"):
        ss.selective_search(scene_image, strategy_list=())


def test_diversification_finds_more_boxes_than_one_strategy(scene_image):
    single = ss.selective_search(scene_image, mode="single")
    two = ss.selective_search(
        scene_image, strategy_list=(ss.Strategy("hsv", 50.0), ss.Strategy("lab", 50.0))
    )
    assert len(two) > len(single)


def test_selective_search_finds_the_scene_objects():
    scene = generate_scene(scene_seed("val", 5))
    from torchvision.ops import box_iou

    boxes = ss.selective_search(scene.image, mode="single")
    best = box_iou(torch.from_numpy(scene.boxes), boxes).max(dim=1).values
    assert (best >= 0.5).float().mean() >= 0.5


# --------------------------------------------------------------------------- OpenCV


def test_opencv_status_and_boxes():
    available, reason = ss.opencv_status()
    assert isinstance(reason, str) and reason
    if not available:
        pytest.skip(reason)
    image = np.full((64, 64, 3), 128, np.uint8)
    image[10:30, 20:40] = (250, 20, 20)
    boxes = ss.opencv_selective_search(image, mode="single")
    assert boxes.dtype == torch.float32 and boxes.shape[1] == 4
    assert [0.0, 0.0, 64.0, 64.0] in boxes.tolist()  # xyxy with exclusive x2 = x + w
    from torchvision.ops import box_iou

    assert box_iou(torch.tensor([[20.0, 10.0, 40.0, 30.0]]), boxes).max() > 0.8  # the red square
    assert len(ss.opencv_selective_search(image, mode="fast", max_proposals=3)) <= 3
    ours = ss.opencv_selective_search(image, mode="quality", scales=(50, 100), min_size=10)
    assert [0.0, 0.0, 64.0, 64.0] in ours.tolist() and len(ours) > len(boxes)
    with pytest.raises(ValueError, match="mode"):
        ss.opencv_selective_search(image, mode="best")


def test_a_hidden_ximgproc_is_explained(monkeypatch):
    fake = types.ModuleType("cv2")
    fake.__version__ = "5.0.0"
    monkeypatch.setitem(sys.modules, "cv2", fake)
    available, reason = ss.opencv_status()
    assert not available and "ximgproc" in reason and "opencv-contrib" in reason
    with pytest.raises(ImportError, match="ximgproc"):
        ss.opencv_selective_search(np.zeros((8, 8, 3), np.uint8))


def test_a_missing_opencv_is_explained(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 raises ImportError
    available, reason = ss.opencv_status()
    assert not available and "not installed" in reason
