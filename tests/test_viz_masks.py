"""course_utils.viz.masks: instance overlays and semantic maps, checked on the drawn pixels,
captions and legends (Agg backend)."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from viz_helpers import image as _image
from viz_helpers import legend_colors, legend_entries, rgb, texts

from course_utils import viz
from course_utils.data.scenes import SEMANTIC_CLASSES, THING_CLASSES


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _instances():
    image = _image(48, 48)
    masks = torch.zeros(2, 48, 48, dtype=torch.uint8)
    masks[0, 5:15, 5:20] = 1
    masks[1, 25:40, 20:45] = 1
    return image, tv_tensors.Mask(masks), torch.tensor([1, 2])


def _overlay(ax) -> np.ndarray:
    return np.asarray(ax.images[-1].get_array())


# --------------------------------------------------------------------------- instance masks


def test_overlay_instance_masks_one_colour_per_instance():
    image, masks, _ = _instances()
    ax = viz.overlay_instance_masks(image, masks, alpha=0.4)
    assert len(ax.images) == 2  # the image, then the overlay
    overlay = _overlay(ax)
    assert overlay.shape == (48, 48, 4)
    first = overlay[masks[0].bool().numpy()]
    second = overlay[masks[1].bool().numpy()]
    assert np.allclose(first, first[0]) and np.allclose(second, second[0])
    assert not np.allclose(first[0, :3], second[0, :3])
    assert np.allclose(first[0, :3], viz.instance_color(0)) and first[0, 3] == pytest.approx(0.4)
    assert np.allclose(second[0, :3], viz.instance_color(1))
    outside = ~(masks.bool().any(0).numpy())
    assert np.all(overlay[outside, 3] == 0)
    assert texts(ax) == []  # no labels: no captions


def test_overlay_instance_masks_outlines_each_instance_in_its_colour():
    image, masks, _ = _instances()
    ax = viz.overlay_instance_masks(image, masks)
    outlines = ax.collections
    assert len(outlines) == 2
    assert [rgb(outline.get_edgecolor()[0]) for outline in outlines] == [
        rgb(viz.instance_color(0)),
        rgb(viz.instance_color(1)),
    ]


def test_overlay_instance_masks_on_axes_with_captions_and_probabilities():
    image, masks, labels = _instances()
    ax = viz.show_image(image)
    probabilities = masks.float()[:, None] * 0.8
    returned = viz.overlay_instance_masks(ax, probabilities, labels, class_names=("a", "b", "c"))
    assert returned is ax
    assert np.count_nonzero(_overlay(ax)[..., 3]) == int(masks.sum())
    assert texts(ax) == ["a", "b"]
    assert [text.get_position() for text in ax.texts] == [(5, 5), (20, 25)]  # top-left pixels
    ax = viz.overlay_instance_masks(image, probabilities, labels, threshold=0.9)
    assert np.count_nonzero(_overlay(ax)[..., 3]) == 0  # 0.8 is below the threshold


def test_overlay_instance_masks_captions_scene_names_or_class_numbers():
    image, masks, labels = _instances()
    ax = viz.overlay_instance_masks(image, masks, labels, class_names=THING_CLASSES)
    assert texts(ax) == ["disk", "triangle"]
    ax = viz.overlay_instance_masks(image, masks, labels)
    assert texts(ax) == ["class 1", "class 2"]


def test_overlay_instance_masks_skips_empty_masks():
    image, masks, labels = _instances()
    masks = torch.cat([torch.zeros(1, 48, 48, dtype=torch.uint8), masks])
    ax = viz.overlay_instance_masks(image, masks, torch.tensor([3, 1, 2]))
    assert texts(ax) == ["class 1", "class 2"] and len(ax.collections) == 2
    assert np.allclose(_overlay(ax)[10, 10, :3], viz.instance_color(1))


def test_overlay_instance_masks_rejects_wrong_shapes():
    image, masks, _ = _instances()
    with pytest.raises(ValueError, match=r"\(48, 48\)"):
        viz.overlay_instance_masks(image, torch.zeros(1, 10, 10, dtype=torch.bool))
    with pytest.raises(ValueError, match="one entry per box"):
        viz.overlay_instance_masks(image, masks, torch.tensor([1]))
    with pytest.raises(ValueError, match="alpha"):
        viz.overlay_instance_masks(image, masks, alpha=3)
    with pytest.raises(ValueError, match="0/1"):
        viz.overlay_instance_masks(image, masks * 2)


# --------------------------------------------------------------------------- semantic maps


def test_semantic_to_rgb_uses_the_palette_and_blacks_out_ignored_pixels():
    semantic = torch.tensor([[0, 1, 6], [255, 2, 0]], dtype=torch.uint8)
    rgb_map = viz.semantic_to_rgb(semantic, num_classes=7)
    assert rgb_map.shape == (2, 3, 3) and rgb_map.dtype == np.float32
    assert np.allclose(rgb_map[0, 0], viz.PALETTE[0]) and np.allclose(rgb_map[1, 2], viz.PALETTE[0])
    assert np.allclose(rgb_map[0, 1], viz.PALETTE[1]) and np.allclose(rgb_map[1, 1], viz.PALETTE[2])
    assert np.allclose(rgb_map[0, 2], viz.PALETTE[6])
    assert np.allclose(rgb_map[1, 0], 0)


def test_semantic_to_rgb_colours_ids_past_the_palette_and_rejects_bad_ids():
    far = len(viz.PALETTE) + 2
    rgb_map = viz.semantic_to_rgb(np.array([[far, 0]]))
    assert np.allclose(rgb_map[0, 0], viz.semantic_color(far))
    with pytest.raises(ValueError, match=">= 0"):
        viz.semantic_to_rgb(torch.tensor([[0, -1]]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        viz.semantic_to_rgb(torch.tensor([[0, 5]]), num_classes=3)


def test_show_semantic_same_class_same_colour_across_figures_with_legend():
    names = ("sky", "grass", "gravel", "brick", "disk", "triangle", "star")
    first = torch.zeros(16, 16, dtype=torch.int64)
    first[4:8, 4:8] = 5
    second = torch.full((16, 16), 5, dtype=torch.int64)
    second[:2] = 255
    colours = []
    for semantic in (first, second):
        ax = viz.show_semantic(None, semantic, class_names=names)
        assert not ax.axison and len(ax.images) == 1
        rgba = _overlay(ax)
        colours.append(rgba[5, 5])
        entries = legend_entries(ax)
        assert entries[:7] == list(names)
        assert legend_colors(ax)[:7] == [rgb(color) for color in viz.PALETTE[:7]]
    assert np.allclose(colours[0], colours[1])
    assert np.allclose(colours[0][:3], viz.PALETTE[5]) and colours[0][3] == 1.0
    assert np.allclose(_overlay(ax)[0, 0], 0)  # ignored: transparent
    assert entries == [*names, "ignored (255)"]


def test_show_semantic_over_an_image_blends_and_accepts_logits():
    image = _image(16, 16)
    logits = torch.zeros(3, 16, 16)
    logits[2, :, 8:] = 5.0
    ax = viz.show_semantic(image, logits, class_names=("a", "b", "c"), alpha=0.3, legend=False)
    assert len(ax.images) == 2 and ax.get_legend() is None
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), image.permute(1, 2, 0))
    rgba = _overlay(ax)
    assert np.allclose(rgba[0, 0], (*viz.PALETTE[0], 0.3))
    assert np.allclose(rgba[0, 15, :3], viz.PALETTE[2])


def test_show_semantic_legend_names_the_scene_classes_when_given():
    semantic = torch.zeros(4, 4, dtype=torch.uint8)
    ax = viz.show_semantic(None, semantic, class_names=SEMANTIC_CLASSES)
    assert legend_entries(ax) == list(SEMANTIC_CLASSES)  # every class, even those absent
    assert legend_colors(ax) == [rgb(color) for color in viz.PALETTE[: len(SEMANTIC_CLASSES)]]


def test_show_semantic_without_names_legends_the_ids_up_to_the_largest():
    semantic = torch.zeros(4, 4, dtype=torch.int64)
    semantic[0, 0], semantic[1, 1], semantic[3, 3] = 2, 5, 255
    ax = viz.show_semantic(None, semantic)
    assert legend_entries(ax) == [f"class {i}" for i in range(6)] + ["ignored (255)"]
    assert legend_colors(ax)[:6] == [rgb(color) for color in viz.PALETTE[:6]]
    far = torch.full((4, 4), 12, dtype=torch.int64)  # past SEMANTIC_CLASSES: allowed without names
    ax = viz.show_semantic(None, far)
    assert legend_entries(ax)[-1] == "class 12"
    assert np.allclose(_overlay(ax)[0, 0, :3], viz.semantic_color(12))
    assert legend_entries(viz.show_semantic(None, torch.zeros(2, 2, dtype=torch.uint8))) == [
        "class 0"
    ]


def test_show_semantic_draws_on_the_given_axes():
    fig, ax = plt.subplots()
    returned = viz.show_semantic(_image(8, 8), torch.ones(8, 8, dtype=torch.int64), ax=ax)
    assert returned is ax and len(fig.axes) == 1 and len(ax.images) == 2


@pytest.mark.parametrize(
    "semantic, error",
    [
        (torch.full((16, 16), 9), ValueError),  # id 9 with 3 classes
        (torch.zeros(8, 8, dtype=torch.int64), ValueError),  # not the image's size
        (torch.zeros(16, 16), TypeError),  # float (H, W) is not a map of ids
        (torch.zeros(1, 16, 16, dtype=torch.int64), ValueError),
    ],
)
def test_show_semantic_rejects_bad_maps(semantic, error):
    with pytest.raises(error):
        viz.show_semantic(_image(16, 16), semantic, class_names=("a", "b", "c"))


def test_show_semantic_rejects_a_bad_alpha():
    with pytest.raises(ValueError, match="alpha"):
        viz.show_semantic(None, torch.zeros(2, 2, dtype=torch.int64), alpha=1.5)
    with pytest.raises(TypeError, match="alpha"):
        viz.show_semantic(None, torch.zeros(2, 2, dtype=torch.int64), alpha="0.5")
