"""Tests of the scene painter's layers (course_utils.data.scene_painting)."""

import numpy as np
import pytest

from course_utils.data import scene_painting as painting
from course_utils.data.scenes import STUFF_CLASSES, THING_CLASSES, SceneConfig, generate_scene

SMALL = SceneConfig(size=64)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed))


@pytest.mark.parametrize(
    "hsv, rgb",
    [
        ((0.0, 1.0, 1.0), (1.0, 0.0, 0.0)),
        ((1 / 3, 1.0, 1.0), (0.0, 1.0, 0.0)),
        ((2 / 3, 1.0, 0.5), (0.0, 0.0, 0.5)),
        ((0.5, 0.0, 0.25), (0.25, 0.25, 0.25)),
        ((1.0, 1.0, 1.0), (1.0, 0.0, 0.0)),  # hue wraps around
    ],
)
def test_hsv_to_rgb(hsv, rgb):
    np.testing.assert_allclose(painting.hsv_to_rgb(*hsv), rgb, atol=1e-12)


def test_rasterize_fills_the_polygon_hard_edged():
    square = np.array([[2.0, 3.0], [2.0, 7.0], [6.0, 7.0], [6.0, 3.0]])  # (row, col)
    mask = painting.rasterize(square, 10)
    assert mask.dtype == bool and mask.shape == (10, 10)
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (2, 6, 3, 7)
    assert mask.sum() == 25
    assert not painting.rasterize(square + 100, 10).any()  # outside: clipped away


def test_stuff_layout_ids_and_sky_on_top():
    always_sky = SceneConfig(size=64, sky_probability=1.0)
    layout = painting.stuff_layout(rng(1), always_sky)
    assert layout.shape == (64, 64) and layout.dtype == np.uint8
    assert set(np.unique(layout).tolist()) <= {0, 1, 2, 3}
    assert (layout[0] == 0).all() and (layout[-1] > 0).all()  # sky above the horizon
    never_sky = painting.stuff_layout(rng(1), SceneConfig(size=64, sky_probability=0.0))
    assert (never_sky > 0).all() and len(np.unique(never_sky)) >= 2


def test_paint_stuff_gives_each_region_its_own_texture():
    layout = np.zeros((64, 64), np.uint8)
    layout[32:] = 1  # sky on top, grass below
    image = painting.paint_stuff(rng(2), layout, SMALL, STUFF_CLASSES)
    assert image.shape == (64, 64, 3) and image.dtype == np.float64
    sky_rows = image[:32].std(axis=1).max()
    assert sky_rows < 1e-12  # the sky is a vertical gradient: constant along each row
    assert image[32:].std() > 0.01  # grass is a textured photograph


def test_place_things_keeps_every_instance_visible_enough():
    config = SceneConfig(size=64, min_objects=5, max_objects=5, min_visible_pixels=30)
    labels, placed, owner = painting.place_things(rng(3), config, THING_CLASSES)
    assert len(labels) == len(placed) <= 5 and set(labels) <= {1, 2, 3}
    assert owner.dtype == np.uint8 and owner.max() == len(labels)
    counts = np.bincount(owner.ravel(), minlength=len(labels) + 1)[1:]
    assert (counts >= 30).all()
    for center, extent in placed:
        assert 0 <= center[0] < 64 and 0 <= center[1] < 64
        assert config.object_size_range()[0] <= extent <= config.object_size_range()[1]


def test_paint_distractors_and_things_change_only_their_pixels():
    config = SceneConfig(size=64, min_distractors=2, max_distractors=2, min_objects=2)
    image = np.zeros((64, 64, 3))
    painting.paint_distractors(rng(4), image, config)
    assert 0 < (image.sum(axis=2) > 0).sum() < 64 * 64
    labels, placed, owner = painting.place_things(rng(5), config, THING_CLASSES)
    before = image.copy()
    painting.paint_things(rng(6), image, owner, placed, config)
    changed = (image != before).any(axis=2)
    assert not changed[owner == 0].any() and changed[owner > 0].mean() > 0.5


def test_the_layers_in_generate_scene_order_reproduce_the_scene():
    """generate_scene is exactly the painting layers drawn from one generator, in order."""
    generator = rng(42)
    layout = painting.stuff_layout(generator, SMALL)
    image = painting.paint_stuff(generator, layout, SMALL, STUFF_CLASSES)
    painting.paint_distractors(generator, image, SMALL)
    labels, placed, owner = painting.place_things(generator, SMALL, THING_CLASSES)
    painting.paint_things(generator, image, owner, placed, SMALL)
    scene = generate_scene(42, SMALL)
    assert np.array_equal(np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8), scene.image)
    assert scene.labels.tolist() == labels
