"""course_utils.viz.colors: the fixed palettes, a class's colour and its caption."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from course_utils.data import scenes
from course_utils.viz import colors


def test_palette_is_fixed_distinct_and_things_are_saturated():
    palette = np.array(colors.PALETTE)
    assert palette.min() >= 0 and palette.max() <= 1
    assert len({tuple(color) for color in colors.PALETTE}) == len(colors.PALETTE)
    saturation = palette.max(1) - palette.min(1)
    stuff, things = len(colors.STUFF_PALETTE), len(colors.PALETTE)
    assert saturation[stuff:things].min() > saturation[:stuff].max()  # things stand out from stuff
    assert colors.PALETTE == colors.STUFF_PALETTE + colors.THING_PALETTE
    for class_id in range(things + 5):
        assert colors.semantic_color(class_id) == colors.semantic_color(class_id)


def test_semantic_colors_are_the_palette_then_fixed_extras():
    for class_id, color in enumerate(colors.PALETTE):
        assert colors.semantic_color(class_id) == color
    assert colors.semantic_color(0) == pytest.approx((140 / 255, 190 / 255, 235 / 255))  # sky
    far = [colors.semantic_color(len(colors.PALETTE) + i) for i in range(3)]
    assert len(set(far)) == 3 and not set(far) & set(colors.PALETTE)
    assert all(0 <= value <= 1 for color in far for value in color)


def test_palette_matches_the_scene_classes():
    assert len(colors.STUFF_PALETTE) == len(scenes.STUFF_CLASSES)
    for label in range(1, len(scenes.THING_CLASSES) + 1):
        semantic_id = len(scenes.STUFF_CLASSES) + label - 1
        assert colors.label_color(label) == colors.semantic_color(semantic_id)
        assert colors.label_color(label) == colors.THING_PALETTE[label - 1]


def test_colour_lookups_reject_negative_ids_and_extend_past_the_palette():
    with pytest.raises(ValueError):
        colors.semantic_color(-1)
    with pytest.raises(ValueError):
        colors.label_color(-1)
    far = [colors.semantic_color(len(colors.PALETTE) + i) for i in range(3)]
    assert len(set(far)) == 3
    assert colors.label_color(0) == colors.BACKGROUND_COLOR
    past = len(colors.THING_PALETTE) + 1
    assert colors.label_color(past) == colors.semantic_color(past + len(colors.STUFF_PALETTE))


def test_instance_colours_cycle_through_tab20():
    tab20 = plt.get_cmap("tab20").colors
    assert [colors.instance_color(i) for i in range(20)] == [tuple(c) for c in tab20]
    assert colors.instance_color(0) != colors.instance_color(1)
    assert colors.instance_color(21) == colors.instance_color(1)


def test_class_name_with_names_without_names_and_past_their_end():
    assert colors.class_name(0, ("a",)) == "background"
    assert colors.class_name(1, ("a",)) == "a"
    assert colors.class_name(5, ("a",)) == "class 5"
    assert colors.class_name(3, scenes.THING_CLASSES) == "star"
    assert colors.class_name(3, None) == "class 3"
    assert colors.class_name(0, None) == "background"
