"""Selective Search's entry point: strategies, work shared per image, ranking, the pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from course_utils.data.scenes import generate_scene, scene_seed
from course_utils.detection.graph_segmentation import as_hwc_float
from course_utils.detection.selective_search import (
    DEFAULT_SCALES,
    ImageSegmentations,
    Strategy,
    build_hierarchy,
    rank_proposals,
    region_graph,
    selective_search,
    strategies,
)


@pytest.fixture(scope="module")
def scene_image() -> np.ndarray:
    return generate_scene(scene_seed("val", 3)).image


# --------------------------------------------------------------------------- strategies


def test_strategies_of_each_mode():
    assert strategies("single") == (Strategy("hsv", DEFAULT_SCALES[1], "CTSF"),)
    fast = strategies("fast")
    assert len(fast) == 8 and {s.color_space for s in fast} == {"hsv", "lab"}
    assert {s.measures for s in fast} == {"CTSF", "TSF"}
    assert {s.scale for s in fast} == set(DEFAULT_SCALES[:2])
    quality = strategies("quality")
    assert len(quality) == 80 and len(set(quality)) == 80
    assert {s.color_space for s in quality} == {"hsv", "lab", "rgi", "h", "i"}
    assert strategies("fast", scales=(7, 9))[0].scale == 7
    assert {s.min_size for s in strategies("fast", min_size=3)} == {3}
    with pytest.raises(ValueError, match="mode"):
        strategies("best")
    with pytest.raises(ValueError, match="scales"):
        strategies("quality", scales=(10, 20))


def test_strategy_checks_its_fields():
    assert Strategy().label() == "hsv k=100 CTSF"
    with pytest.raises(ValueError, match="color_space"):
        Strategy("xyz")
    with pytest.raises(ValueError, match="scale"):
        Strategy("hsv", 0)
    with pytest.raises(ValueError, match="letters"):
        Strategy("hsv", 100, "CQ")


# ------------------------------------------------------------------ one image, many strategies


def test_image_segmentations_share_bins_and_graphs(scene_image):
    shared = ImageSegmentations(scene_image)
    assert shared.pixel_bins("hsv")[1] is shared.pixel_bins("hsv")[1]  # computed once
    colour_only, texture_only = Strategy("hsv", 50.0, "C"), Strategy("hsv", 50.0, "T")
    graph_a, labels_a = shared.region_graph(colour_only)
    graph_b, labels_b = shared.region_graph(texture_only)
    assert labels_a is labels_b  # same segmentation: computed once
    assert graph_a is not graph_b and graph_a.size is not graph_b.size  # fresh copies
    merge_first = shared.hierarchy(colour_only)
    assert shared.region_graph(colour_only)[0].count == graph_b.count  # grouping left it intact
    np.testing.assert_array_equal(
        merge_first.boxes, build_hierarchy(scene_image, colour_only).boxes
    )


def test_shared_work_gives_the_same_hierarchies_as_separate_runs(scene_image):
    shared = ImageSegmentations(scene_image)
    for strategy in strategies("fast")[:4]:
        together = shared.hierarchy(strategy)
        alone = build_hierarchy(scene_image, strategy)
        np.testing.assert_array_equal(together.merges, alone.merges)
        np.testing.assert_array_equal(together.boxes, alone.boxes)
        np.testing.assert_array_equal(together.merge_similarity, alone.merge_similarity)


def test_region_graph_accepts_every_image_format(scene_image):
    tensor = torch.from_numpy(scene_image).permute(2, 0, 1).float() / 255
    strategy = Strategy("lab", 100.0, "CTSF")
    from_array, labels = region_graph(scene_image, strategy)
    from_tensor, tensor_labels = region_graph(tensor, strategy)
    from_float, _ = region_graph(as_hwc_float(scene_image), strategy)
    np.testing.assert_array_equal(labels, tensor_labels)
    np.testing.assert_array_equal(from_array.histograms, from_tensor.histograms)
    np.testing.assert_array_equal(from_array.histograms, from_float.histograms)
    assert from_array.count == labels.max() + 1


def test_build_hierarchy_needs_a_strategy(scene_image):
    with pytest.raises(TypeError, match="Strategy"):
        build_hierarchy(scene_image, "hsv")


# -------------------------------------------------------------------- ranking and the pipeline


def test_rank_proposals_removes_duplicates_and_keeps_the_best_rank():
    first = np.array([[0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 9, 9]], dtype=np.float32)  # creation order
    second = np.array([[5, 5, 6, 6], [0, 0, 9, 9]], dtype=np.float32)
    ranked = rank_proposals([first, second], randomize=False)
    # positions: whole image 1 (twice), then [0,0,2,2] and [5,5,6,6] at 2, then [0,0,1,1] at 3
    np.testing.assert_array_equal(ranked, [[0, 0, 9, 9], [0, 0, 2, 2], [5, 5, 6, 6], [0, 0, 1, 1]])
    random_a = rank_proposals([first, second], seed=1)
    np.testing.assert_array_equal(random_a, rank_proposals([first, second], seed=1))
    assert len(random_a) == 4 and len(np.unique(random_a, axis=0)) == 4
    assert rank_proposals([]).shape == (0, 4)


def test_random_ranking_puts_the_tops_of_hierarchies_first_on_average():
    boxes = [
        np.array([[0, 0, i + 1, 1] for i in range(100)], dtype=np.float32) + [0, h, 0, h]
        for h in range(5)
    ]
    ranks = []
    for seed in range(20):
        ranked = rank_proposals(boxes, seed=seed)
        ranks.append(np.nonzero(ranked[:, 2] == 100)[0].mean())  # the last created (position 1)
    assert np.mean(ranks) < 25  # position 1 sorts ahead of most of the 500 boxes


def test_selective_search_returns_ranked_unique_boxes_inside_the_image(scene_image):
    boxes = selective_search(scene_image, mode="single")
    assert isinstance(boxes, torch.Tensor) and boxes.dtype == torch.float32 and boxes.shape[1] == 4
    assert len(torch.unique(boxes, dim=0)) == len(boxes)
    inside = (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 128).all()
    assert inside and (boxes[:, 2:] > boxes[:, :2]).all()
    assert any(torch.equal(b, torch.tensor([0.0, 0.0, 128.0, 128.0])) for b in boxes)
    assert torch.equal(boxes, selective_search(scene_image, mode="single"))
    assert torch.equal(selective_search(scene_image, mode="single", max_proposals=10), boxes[:10])
    tensor_image = torch.from_numpy(scene_image).permute(2, 0, 1).float() / 255
    assert torch.equal(selective_search(tensor_image, mode="single"), boxes)
    with pytest.raises(ValueError, match="max_proposals"):
        selective_search(scene_image, max_proposals=-1)
    with pytest.raises(TypeError, match="max_proposals"):
        selective_search(scene_image, max_proposals=2.0)
    with pytest.raises(ValueError, match="at least one"):
        selective_search(scene_image, strategy_list=())


def test_selective_search_ranks_the_boxes_of_its_hierarchies(scene_image):
    chosen = strategies("fast")
    hierarchies = [build_hierarchy(scene_image, strategy).boxes for strategy in chosen]
    expected = rank_proposals(hierarchies, seed=5)
    np.testing.assert_array_equal(selective_search(scene_image, seed=5).numpy(), expected)
    in_order = selective_search(scene_image, strategy_list=chosen[:2], randomize=False)
    np.testing.assert_array_equal(
        in_order.numpy(), rank_proposals(hierarchies[:2], randomize=False)
    )


def test_diversification_finds_more_boxes_than_one_strategy(scene_image):
    single = selective_search(scene_image, mode="single")
    two = selective_search(
        scene_image, strategy_list=(Strategy("hsv", 50.0), Strategy("lab", 50.0))
    )
    assert len(two) > len(single)


def test_selective_search_finds_the_scene_objects():
    scene = generate_scene(scene_seed("val", 5))
    boxes = selective_search(scene.image, mode="single")
    best = box_iou(torch.from_numpy(scene.boxes), boxes).max(dim=1).values
    assert (best >= 0.5).float().mean() >= 0.5
