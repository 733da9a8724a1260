"""Tests of the scene generator: determinism, exact targets, variety, bad input."""

import dataclasses
import hashlib

import numpy as np
import pytest
import torch
from torchvision.ops import masks_to_boxes

from course_utils.data.scenes import (
    GENERATOR_VERSION,
    SEMANTIC_CLASSES,
    SPLITS,
    STUFF_CLASSES,
    THING_CLASSES,
    Scene,
    SceneConfig,
    boxes_from_masks,
    check_split,
    config_hash,
    generate_scene,
    instance_map_from_masks,
    masks_from_instance_map,
    scene_seed,
)

SMALL = SceneConfig(size=64)


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    return [generate_scene(scene_seed("train", i)) for i in range(40)]


def test_class_lists_follow_the_contract():
    assert THING_CLASSES == ("disk", "triangle", "star")
    assert STUFF_CLASSES == ("sky", "grass", "gravel", "brick")
    assert SEMANTIC_CLASSES == STUFF_CLASSES + THING_CLASSES


def test_scene_arrays_have_the_documented_shapes_and_dtypes(scenes):
    for scene in scenes:
        n = len(scene.labels)
        assert scene.image.shape == (128, 128, 3) and scene.image.dtype == np.uint8
        assert scene.boxes.shape == (n, 4) and scene.boxes.dtype == np.float32
        assert scene.labels.dtype == np.int64 and set(scene.labels.tolist()) <= {1, 2, 3}
        assert scene.masks.shape == (n, 128, 128) and scene.masks.dtype == bool
        assert scene.semantic.shape == (128, 128) and scene.semantic.dtype == np.uint8
        assert scene.semantic.max() < len(SEMANTIC_CLASSES)


def test_same_seed_gives_identical_bytes_and_other_seeds_differ():
    first, again = generate_scene(12345, SMALL), generate_scene(12345, SMALL)
    for field in ("image", "boxes", "labels", "masks", "semantic"):
        assert getattr(first, field).tobytes() == getattr(again, field).tobytes()
    assert generate_scene(12346, SMALL).image.tobytes() != first.image.tobytes()


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


@pytest.mark.parametrize(
    "split, index, labels, boxes, image_digest, semantic_digest",
    [
        (
            "train",
            0,
            [3, 1, 2, 1],
            [[22, 2, 31, 12], [17, 12, 23, 19], [20, 30, 39, 45], [49, 22, 64, 36]],
            "b672670bf5a7a77f",
            "ac2e2800177d5b31",
        ),
        (
            "test",
            5,
            [1, 2],
            [[46, 14, 56, 23], [5, 31, 23, 50]],
            "82eae6db09dabcb5",
            "33f46e823952cf04",
        ),
    ],
)
def test_generator_output_is_pinned_for_this_generator_version(
    split, index, labels, boxes, image_digest, semantic_digest
):
    """If this fails, the generator's output changed: bump GENERATOR_VERSION (caches!) and
    update the pinned values."""
    assert GENERATOR_VERSION == 4
    scene = generate_scene(scene_seed(split, index), SMALL)
    assert scene.labels.tolist() == labels and scene.boxes.tolist() == boxes
    assert _digest(scene.image) == image_digest and _digest(scene.semantic) == semantic_digest


def test_config_hash_is_pinned():
    """The cache file names of the default and a small configuration (GENERATOR_VERSION 4)."""
    assert config_hash(SceneConfig()) == "41fd3049ac"
    assert config_hash(SceneConfig(size=64)) == config_hash(SMALL) != config_hash(SceneConfig())


def test_splits_use_disjoint_seeds_and_give_different_images():
    seeds = {
        split: {scene_seed(split, i) for i in range(1000)} for split in ("train", "val", "test")
    }
    assert (
        not seeds["train"] & seeds["val"]
        and not seeds["train"] & seeds["test"]
        and not seeds["val"] & seeds["test"]
    )
    images = {
        split: generate_scene(scene_seed(split, 0), SMALL).image.tobytes()
        for split in ("train", "val", "test")
    }
    assert len(set(images.values())) == 3


def test_boxes_are_the_exclusive_tight_boxes_of_the_visible_masks(scenes):
    for scene in scenes:
        for box, mask in zip(scene.boxes, scene.masks):
            ys, xs = np.nonzero(mask)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_boxes_from_masks_matches_torchvision_plus_one():
    rng = np.random.default_rng(0)
    masks = rng.random((5, 20, 30)) > 0.97
    masks[:, 3, 4] = True
    expected = masks_to_boxes(torch.from_numpy(masks)) + torch.tensor([0.0, 0.0, 1.0, 1.0])
    assert torch.equal(torch.from_numpy(boxes_from_masks(masks)), expected)
    assert boxes_from_masks(np.zeros((0, 8, 8), bool)).shape == (0, 4)
    with pytest.raises(ValueError, match="at least one pixel"):
        boxes_from_masks(np.zeros((1, 8, 8), bool))


def test_masks_are_disjoint_and_agree_with_the_semantic_map(scenes):
    for scene in scenes:
        assert scene.masks.sum(axis=0).max(initial=0) <= 1
        for label, mask in zip(scene.labels, scene.masks):
            assert (scene.semantic[mask] == len(STUFF_CLASSES) + label - 1).all()
        covered = scene.masks.any(axis=0)
        assert (scene.semantic[~covered] < len(STUFF_CLASSES)).all()


def test_occlusion_keeps_enough_of_every_instance():
    config = SceneConfig(
        size=96, min_objects=6, max_objects=6, min_visible_fraction=0.5, min_visible_pixels=20
    )
    occluded = 0
    for index in range(15):
        scene = generate_scene(scene_seed("val", index), config)
        for mask in scene.masks:
            assert mask.sum() >= 20
        occluded += int(len(scene.labels) > 1)
    assert occluded > 0


def test_dataset_varies_in_classes_sizes_counts_and_stuff(scenes):
    labels = np.concatenate([s.labels for s in scenes])
    assert set(labels.tolist()) == {1, 2, 3}
    sides = np.concatenate(
        [np.maximum(s.boxes[:, 2] - s.boxes[:, 0], s.boxes[:, 3] - s.boxes[:, 1]) for s in scenes]
    )
    low, high = SceneConfig().object_size_range()
    assert high / low >= 4  # the sampled sizes span 4x; visible boxes of rotated shapes a bit less
    assert sides.max() / sides.min() >= 3.5 and sides.min() <= 1.1 * low
    assert len({len(s.labels) for s in scenes}) >= 4
    stuff = set(np.concatenate([np.unique(s.semantic[s.semantic < 4]) for s in scenes]).tolist())
    assert stuff == {0, 1, 2, 3}


def test_colour_does_not_give_the_class_away(scenes):
    means = {label: [] for label in (1, 2, 3)}
    for scene in scenes:
        for label, mask in zip(scene.labels, scene.masks):
            means[label].append(scene.image[mask].mean(axis=0))
    spread = [np.std(np.array(values), axis=0).mean() for values in means.values()]
    assert min(spread) > 25  # each class comes in many colours


def test_zero_objects_are_allowed():
    scene = generate_scene(7, SceneConfig(size=64, min_objects=0, max_objects=0))
    assert (
        scene.boxes.shape == (0, 4)
        and scene.masks.shape == (0, 64, 64)
        and scene.labels.shape == (0,)
    )
    assert (scene.semantic < len(STUFF_CLASSES)).all()


def test_size_parameter_scales_the_scene():
    config = SceneConfig(size=200)
    low, high = config.object_size_range()
    assert high / low >= 4 and high > 56
    scene = generate_scene(3, config)
    assert scene.image.shape == (200, 200, 3) and scene.semantic.shape == (200, 200)


def test_instance_map_round_trip(scenes):
    for scene in scenes[:10]:
        ids = instance_map_from_masks(scene.masks)
        assert ids.dtype == np.uint8
        np.testing.assert_array_equal(masks_from_instance_map(ids, len(scene.labels)), scene.masks)
    with pytest.raises(ValueError, match="overlap"):
        instance_map_from_masks(np.ones((2, 4, 4), bool))


def test_config_hash_changes_with_the_config():
    assert config_hash(SceneConfig()) == config_hash(SceneConfig())
    assert config_hash(SceneConfig()) != config_hash(SceneConfig(max_distractors=5))
    assert dataclasses.is_dataclass(SceneConfig) and SceneConfig().to_dict()["size"] == 128


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(size=16), "size"),
        (dict(size=64, max_object_size=80), "max_object_size"),
        (dict(min_object_size=30, max_object_size=20), "min_object_size"),
        (dict(min_objects=3, max_objects=2), "max_objects"),
        (dict(min_visible_fraction=1.5), "min_visible_fraction"),
        (dict(max_distractors=-1), "max_distractors"),
        (dict(thing_texture_strength=2.0), "thing_texture_strength"),
    ],
)
def test_bad_config_values_are_rejected_with_the_field_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SceneConfig(**kwargs)


def test_bad_types_and_arguments_are_rejected():
    with pytest.raises(TypeError, match="size"):
        SceneConfig(size=128.0)
    with pytest.raises(TypeError, match="SceneConfig.max_aspect"):
        SceneConfig(max_aspect="wide")
    with pytest.raises(ValueError, match="split"):
        scene_seed("training", 0)
    with pytest.raises(ValueError, match="index"):
        scene_seed("train", -1)
    with pytest.raises(ValueError, match="index"):
        scene_seed("train", 2**32)
    with pytest.raises(TypeError, match="index"):
        scene_seed("train", 1.0)
    with pytest.raises(ValueError, match="seed"):
        generate_scene(-5)
    with pytest.raises(TypeError, match="seed"):
        generate_scene(True)
    with pytest.raises(TypeError, match="config"):
        generate_scene(0, config={"size": 64})


def test_scene_seeds_and_split_check():
    assert [scene_seed(split, 7) for split in SPLITS] == [
        1 * 2**32 + 7,
        2 * 2**32 + 7,
        3 * 2**32 + 7,
    ]
    assert scene_seed("val", np.int64(3)) == 2 * 2**32 + 3
    assert [check_split(split) for split in SPLITS] == list(SPLITS)
    with pytest.raises(ValueError, match="split must be one of"):
        check_split("dev")
