"""What course_utils.viz draws: checked on the figure's artists (Agg backend, no display)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from torchvision import tv_tensors  # noqa: E402

from course_utils import viz  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _image(height=24, width=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(3, height, width, generator=generator)


def _rectangles(ax):
    return [patch for patch in ax.patches if isinstance(patch, Rectangle)]


def _texts(ax):
    return [text.get_text() for text in ax.texts]


def _rgb(color):
    return tuple(round(value, 4) for value in to_rgba(color)[:3])


# --------------------------------------------------------------------------- images


def test_show_image_same_picture_from_tensor_tv_image_and_uint8_array():
    uint8 = np.random.default_rng(0).integers(0, 256, size=(10, 12, 3), dtype=np.uint8)
    tensor = torch.from_numpy(uint8).permute(2, 0, 1).float() / 255
    shown = []
    for image in (tensor, tv_tensors.Image(tensor), uint8):
        ax = viz.show_image(image, title="picture")
        assert ax.get_title() == "picture"
        assert not ax.axison
        shown.append(np.asarray(ax.images[0].get_array()))
    assert shown[0].shape == (10, 12, 3)
    np.testing.assert_allclose(shown[0], shown[1])
    np.testing.assert_allclose(shown[0], shown[2], atol=1e-6)


def test_show_image_draws_on_the_given_axes_and_shows_grey_images():
    fig, ax = plt.subplots()
    returned = viz.show_image(_image()[:1], ax=ax)
    assert returned is ax and len(fig.axes) == 1
    assert np.asarray(ax.images[0].get_array()).shape == (24, 32)


@pytest.mark.parametrize(
    "image, error, words",
    [
        (torch.rand(3, 8, 8) * 255, ValueError, "[0, 1]"),
        (torch.rand(8, 8, 3), ValueError, "CHW"),
        (torch.rand(2, 3, 8, 8), ValueError, "batch"),
        (np.zeros((3, 8, 8), dtype=np.uint8), ValueError, "CHW"),
        (np.full((8, 8, 3), 200.0), ValueError, "[0, 1]"),
        (np.zeros((8, 8, 3), dtype=np.int32), TypeError, "uint8"),
        ("image.png", TypeError, "tensor"),
    ],
)
def test_show_image_rejects_what_is_not_an_image(image, error, words):
    with pytest.raises(error, match=None) as info:
        viz.show_image(image)
    assert words in str(info.value)


def test_to_display_array_keeps_values():
    image = _image()
    array = viz.to_display_array(image)
    assert array.shape == (24, 32, 3)
    np.testing.assert_allclose(array, image.permute(1, 2, 0).numpy())
    uint8_tensor = (image * 255).to(torch.uint8)
    np.testing.assert_allclose(
        viz.to_display_array(uint8_tensor), uint8_tensor.permute(1, 2, 0).numpy() / 255, atol=1e-6
    )


def test_image_grid_has_one_axes_per_image_and_hides_the_rest():
    images = [_image(seed=i) for i in range(5)]
    fig, axes = viz.image_grid(images, ncols=3, titles=[f"#{i}" for i in range(5)])
    assert len(axes) == 6 and len(fig.axes) == 6
    assert [ax.get_visible() for ax in axes] == [True] * 5 + [False]
    assert [ax.get_title() for ax in axes[:5]] == [f"#{i}" for i in range(5)]
    for image, ax in zip(images, axes):
        np.testing.assert_allclose(
            np.asarray(ax.images[0].get_array()), image.permute(1, 2, 0).numpy()
        )


def test_image_grid_accepts_a_batch_and_empty_cells():
    fig, axes = viz.image_grid(torch.rand(2, 3, 8, 8), ncols=4)
    assert len(axes) == 2  # never more columns than images
    fig, axes = viz.image_grid([_image(), None], ncols=2)
    assert len(axes[0].images) == 1 and len(axes[1].images) == 0


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"images": []}, ValueError),
        ({"images": [torch.rand(3, 4, 4)], "titles": ["a", "b"]}, ValueError),
        ({"images": [torch.rand(3, 4, 4)], "ncols": 0}, ValueError),
        ({"images": torch.rand(3, 4, 4)}, TypeError),
    ],
)
def test_image_grid_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error):
        viz.image_grid(**kwargs)


# --------------------------------------------------------------------------- boxes


def test_draw_boxes_one_rectangle_and_caption_per_box_colour_per_class():
    ax = viz.show_image(_image(64, 64))
    boxes = torch.tensor(
        [[2.0, 3.0, 20.0, 30.0], [10.0, 10.0, 40.0, 50.0], [30.0, 5.0, 60.0, 25.0]]
    )
    labels = torch.tensor([1, 2, 1])
    scores = torch.tensor([0.91, 0.5, 0.333])
    viz.draw_boxes(ax, boxes, labels, scores, class_names=("disk", "triangle", "star"))
    rectangles = _rectangles(ax)
    assert len(rectangles) == 3
    for rectangle, box in zip(rectangles, boxes.tolist()):
        assert rectangle.get_xy() == pytest.approx((box[0], box[1]))
        assert rectangle.get_width() == pytest.approx(box[2] - box[0])
        assert rectangle.get_height() == pytest.approx(box[3] - box[1])
        assert rectangle.get_linestyle() == "-"
    assert _texts(ax) == ["disk 0.91", "triangle 0.50", "disk 0.33"]
    colors = [_rgb(rectangle.get_edgecolor()) for rectangle in rectangles]
    assert colors[0] == colors[2] != colors[1]
    assert colors[0] == _rgb(viz.label_color(1))


def test_draw_boxes_defaults_to_the_scene_class_names_and_supports_overrides():
    scenes = pytest.importorskip("course_utils.data.scenes")
    ax = viz.show_image(_image(64, 64))
    viz.draw_boxes(
        ax, torch.tensor([[1.0, 1.0, 9.0, 9.0]]), torch.tensor([3]), color="red", linestyle="--"
    )
    (rectangle,) = _rectangles(ax)
    assert _texts(ax) == [scenes.THING_CLASSES[2]]
    assert _rgb(rectangle.get_edgecolor()) == _rgb("red")
    assert rectangle.get_linestyle() == "--"


def test_draw_boxes_converts_xywh_bounding_boxes_and_accepts_no_boxes():
    ax = viz.show_image(_image(64, 64))
    boxes = tv_tensors.BoundingBoxes([[5.0, 6.0, 10.0, 20.0]], format="XYWH", canvas_size=(64, 64))
    viz.draw_boxes(ax, boxes)
    (rectangle,) = _rectangles(ax)
    assert (rectangle.get_width(), rectangle.get_height()) == (10.0, 20.0)
    assert _texts(ax) == []  # no labels, no scores: no caption
    viz.draw_boxes(ax, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))
    assert len(_rectangles(ax)) == 1


@pytest.mark.parametrize(
    "boxes, labels, scores, error",
    [
        (torch.tensor([[10.0, 10.0, 5.0, 20.0]]), None, None, ValueError),  # x2 < x1
        (torch.tensor([[1.0, 2.0, 3.0]]), None, None, ValueError),  # not (N, 4)
        (torch.tensor([[1.0, 2.0, 3.0, 4.0]]), torch.tensor([1, 2]), None, ValueError),
        (torch.tensor([[1.0, 2.0, 3.0, 4.0]]), None, torch.tensor([0.5, 0.2]), ValueError),
        (torch.tensor([[1.0, 2.0, 3.0, 4.0]]), torch.tensor([1.0]), None, TypeError),
    ],
)
def test_draw_boxes_rejects_inconsistent_inputs(boxes, labels, scores, error):
    ax = viz.show_image(_image())
    with pytest.raises(error):
        viz.draw_boxes(ax, boxes, labels, scores)


def test_draw_boxes_needs_axes():
    with pytest.raises(TypeError, match="Axes"):
        viz.draw_boxes(_image(), torch.zeros(0, 4))


def _scene_like():
    image = _image(48, 48)
    masks = torch.zeros(2, 48, 48, dtype=torch.uint8)
    masks[0, 5:15, 5:20] = 1
    masks[1, 25:40, 20:45] = 1
    target = {
        "boxes": tv_tensors.BoundingBoxes(
            [[5.0, 5.0, 20.0, 15.0], [20.0, 25.0, 45.0, 40.0]], format="XYXY", canvas_size=(48, 48)
        ),
        "labels": torch.tensor([1, 2]),
        "masks": tv_tensors.Mask(masks),
    }
    prediction = {
        "boxes": torch.tensor(
            [[4.0, 5.0, 21.0, 15.0], [19.0, 24.0, 44.0, 41.0], [0.0, 0.0, 8.0, 8.0]],
            requires_grad=True,
        ),
        "labels": torch.tensor([1, 2, 3]),
        "scores": torch.tensor([0.9, 0.6, 0.2]),
        "masks": torch.rand(3, 1, 48, 48),
    }
    return image, target, prediction


def test_show_detections_dashed_truth_solid_predictions_above_threshold():
    image, target, prediction = _scene_like()
    ax = viz.show_detections(image, target, prediction, score_threshold=0.5)
    styles = [rectangle.get_linestyle() for rectangle in _rectangles(ax)]
    assert styles.count("--") == 2 and styles.count("-") == 2
    assert "0.90" in " ".join(_texts(ax)) and "0.20" not in " ".join(_texts(ax))
    assert "2" in ax.get_title()
    ax = viz.show_detections(image, target, prediction, score_threshold=0.1)
    assert [r.get_linestyle() for r in _rectangles(ax)].count("-") == 3


def test_show_detections_truth_and_prediction_of_a_class_share_its_colour():
    image, target, prediction = _scene_like()
    ax = viz.show_detections(image, target, prediction)
    dashed = [_rgb(r.get_edgecolor()) for r in _rectangles(ax) if r.get_linestyle() == "--"]
    solid = [_rgb(r.get_edgecolor()) for r in _rectangles(ax) if r.get_linestyle() == "-"]
    assert dashed == solid  # same labels in the same order


def test_show_detections_overlays_masks_only_when_asked():
    image, target, prediction = _scene_like()
    assert len(viz.show_detections(image, target, prediction).images) == 1
    ax = viz.show_detections(image, target, show_masks=True)
    assert len(ax.images) == 2


def test_show_detections_rejects_bad_targets_and_predictions():
    image, target, prediction = _scene_like()
    with pytest.raises(ValueError, match="leave"):
        viz.show_detections(
            image, {"boxes": torch.tensor([[0.0, 0.0, 90.0, 90.0]]), "labels": torch.tensor([1])}
        )
    with pytest.raises(ValueError, match="labels"):
        viz.show_detections(image, {"boxes": torch.zeros(0, 4)})
    with pytest.raises(TypeError, match="prediction"):
        viz.show_detections(image, prediction=[prediction])
    with pytest.raises(ValueError, match="score_threshold"):
        viz.show_detections(image, prediction=prediction, score_threshold=2.0)


# --------------------------------------------------------------------------- masks


def test_overlay_instance_masks_one_colour_per_instance():
    image, target, _ = _scene_like()
    masks = target["masks"]
    ax = viz.overlay_instance_masks(image, masks, alpha=0.4)
    overlay = np.asarray(ax.images[-1].get_array())
    assert overlay.shape == (48, 48, 4)
    first = overlay[masks[0].bool().numpy()]
    second = overlay[masks[1].bool().numpy()]
    assert np.allclose(first, first[0]) and np.allclose(second, second[0])
    assert not np.allclose(first[0, :3], second[0, :3])
    assert np.allclose(first[0, :3], viz.instance_color(0)) and first[0, 3] == pytest.approx(0.4)
    outside = ~(masks.bool().any(0).numpy())
    assert np.all(overlay[outside, 3] == 0)


def test_overlay_instance_masks_on_axes_with_captions_and_probabilities():
    image, target, prediction = _scene_like()
    ax = viz.show_image(image)
    probabilities = target["masks"].float()[:, None] * 0.8
    viz.overlay_instance_masks(ax, probabilities, target["labels"], class_names=("a", "b", "c"))
    overlay = np.asarray(ax.images[-1].get_array())
    assert np.count_nonzero(overlay[..., 3]) == int(target["masks"].sum())
    assert sorted(_texts(ax)) == ["a", "b"]


def test_overlay_instance_masks_rejects_wrong_shapes():
    image, target, _ = _scene_like()
    with pytest.raises(ValueError, match=r"\(48, 48\)"):
        viz.overlay_instance_masks(image, torch.zeros(1, 10, 10, dtype=torch.bool))
    with pytest.raises(ValueError, match="one entry per box"):
        viz.overlay_instance_masks(image, target["masks"], torch.tensor([1]))
    with pytest.raises(ValueError, match="alpha"):
        viz.overlay_instance_masks(image, target["masks"], alpha=3)


# --------------------------------------------------------------------------- semantic maps


def test_palette_is_fixed_distinct_and_things_are_saturated():
    colors = np.array(viz.PALETTE)
    assert colors.min() >= 0 and colors.max() <= 1
    assert len({tuple(color) for color in viz.PALETTE}) == len(viz.PALETTE)
    saturation = colors.max(1) - colors.min(1)
    stuff, things = len(viz.STUFF_PALETTE), len(viz.PALETTE)
    assert saturation[stuff:things].min() > saturation[:stuff].max()  # things stand out from stuff
    for class_id in range(things + 5):
        assert viz.semantic_color(class_id) == viz.semantic_color(class_id)


def test_palette_matches_the_scene_classes():
    scenes = pytest.importorskip("course_utils.data.scenes")
    assert len(viz.STUFF_PALETTE) == len(scenes.STUFF_CLASSES)
    for label in range(1, len(scenes.THING_CLASSES) + 1):
        semantic_id = len(scenes.STUFF_CLASSES) + label - 1
        assert viz.label_color(label) == viz.semantic_color(semantic_id)


def test_colour_lookups_reject_negative_ids_and_extend_past_the_palette():
    with pytest.raises(ValueError):
        viz.semantic_color(-1)
    with pytest.raises(ValueError):
        viz.label_color(-1)
    far = [viz.semantic_color(len(viz.PALETTE) + i) for i in range(3)]
    assert len(set(far)) == 3
    assert viz.label_color(0) == viz.BACKGROUND_COLOR
    assert viz.instance_color(0) != viz.instance_color(1)
    assert viz.class_name(0, ("a",)) == "background"
    assert viz.class_name(1, ("a",)) == "a"
    assert viz.class_name(5, ("a",)) == "class 5"


def test_semantic_to_rgb_uses_the_palette_and_blacks_out_ignored_pixels():
    semantic = torch.tensor([[0, 1, 6], [255, 2, 0]], dtype=torch.uint8)
    rgb = viz.semantic_to_rgb(semantic, num_classes=7)
    assert rgb.shape == (2, 3, 3)
    assert np.allclose(rgb[0, 0], viz.PALETTE[0]) and np.allclose(rgb[1, 2], viz.PALETTE[0])
    assert np.allclose(rgb[0, 2], viz.PALETTE[6])
    assert np.allclose(rgb[1, 0], 0)


def test_show_semantic_same_class_same_colour_across_figures_with_legend():
    names = ("sky", "grass", "gravel", "brick", "disk", "triangle", "star")
    first = torch.zeros(16, 16, dtype=torch.int64)
    first[4:8, 4:8] = 5
    second = torch.full((16, 16), 5, dtype=torch.int64)
    second[:2] = 255
    colours = []
    for semantic in (first, second):
        ax = viz.show_semantic(None, semantic, class_names=names)
        rgba = np.asarray(ax.images[-1].get_array())
        colours.append(rgba[5, 5])
        legend = ax.get_legend()
        entries = [text.get_text() for text in legend.get_texts()]
        assert entries[:7] == list(names)
        patch_colours = [_rgb(handle.get_facecolor()) for handle in legend.legend_handles[:7]]
        assert patch_colours == [_rgb(color) for color in viz.PALETTE[:7]]
    assert np.allclose(colours[0], colours[1])
    assert np.allclose(colours[0][:3], viz.PALETTE[5]) and colours[0][3] == 1.0
    assert np.asarray(ax.images[-1].get_array())[0, 0, 3] == 0  # ignored: transparent
    assert entries[-1].startswith("ignored")


def test_show_semantic_over_an_image_blends_and_accepts_logits():
    image = _image(16, 16)
    logits = torch.zeros(3, 16, 16)
    logits[2, :, 8:] = 5.0
    ax = viz.show_semantic(image, logits, class_names=("a", "b", "c"), alpha=0.3, legend=False)
    assert len(ax.images) == 2 and ax.get_legend() is None
    rgba = np.asarray(ax.images[-1].get_array())
    assert np.allclose(rgba[0, 0], (*viz.PALETTE[0], 0.3))
    assert np.allclose(rgba[0, 15, :3], viz.PALETTE[2])


def test_show_semantic_defaults_to_the_scene_classes():
    scenes = pytest.importorskip("course_utils.data.scenes")
    ax = viz.show_semantic(None, torch.zeros(4, 4, dtype=torch.uint8))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(scenes.SEMANTIC_CLASSES)


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


# --------------------------------------------------------------------------- training curves


def test_smooth_is_an_unbiased_moving_average():
    values = np.array([1.0, 3.0, 2.0, 5.0])
    np.testing.assert_allclose(viz.smooth(values, 0.0), values)
    np.testing.assert_allclose(viz.smooth(np.full(10, 7.0), 0.9), 7.0)
    noisy = np.random.default_rng(0).normal(size=200)
    assert viz.smooth(noisy, 0.9)[20:].std() < noisy[20:].std() / 2
    with pytest.raises(ValueError):
        viz.smooth(values, 1.0)


def _records():
    records = [{"step": step, "loss": 2.0 / (1 + step), "lr": 0.01} for step in range(0, 60, 2)]
    records[10]["val_mAP"] = 0.2
    records[20]["val_mAP"] = 0.5
    records[29]["val_mAP"] = 0.6
    return records


class _History:
    def __init__(self, records):
        self.records = records


@pytest.mark.parametrize("wrap", [list, _History])
def test_plot_history_raw_and_smoothed_loss_and_metrics_on_a_second_axis(wrap):
    records = _records()
    fig, (loss_ax, metric_ax) = viz.plot_history(wrap(records), smoothing=0.8)
    raw, smoothed = loss_ax.get_lines()
    np.testing.assert_allclose(raw.get_xdata(), [r["step"] for r in records])
    np.testing.assert_allclose(raw.get_ydata(), [r["loss"] for r in records])
    np.testing.assert_allclose(smoothed.get_ydata(), viz.smooth(raw.get_ydata(), 0.8))
    assert metric_ax is not None and metric_ax in fig.axes
    (metric_line,) = metric_ax.get_lines()
    np.testing.assert_allclose(metric_line.get_xdata(), [20, 40, 58])
    np.testing.assert_allclose(metric_line.get_ydata(), [0.2, 0.5, 0.6])
    labels = [text.get_text() for text in loss_ax.get_legend().get_texts()]
    assert "val_mAP" in labels and "lr" not in labels


def test_plot_history_loss_parts_share_the_loss_axis():
    records = [
        {"step": s, "loss": 1.0 / (s + 1), "loss_box": 0.5 / (s + 1), "cls": 0.3, "lr": 0.1}
        for s in range(10)
    ]
    fig, (loss_ax, metric_ax) = viz.plot_history(records)
    assert metric_ax is None
    assert [line.get_label() for line in loss_ax.get_lines()][2:] == ["loss_box", "cls"]
    fig, (loss_ax, metric_ax) = viz.plot_history(records, components=False)
    assert len(loss_ax.get_lines()) == 2


def test_plot_history_reads_the_train_modules_nested_records():
    records = [
        {"step": s, "loss": 2.0 - s / 10, "lr": 0.01, "components": {"obj": 1.0 - s / 20}}
        for s in range(1, 11)
    ]
    records[4]["val"] = {"AP50": 0.3, "loss": 1.5}
    records[9]["val"] = {"AP50": 0.6, "loss": 1.1}
    fig, (loss_ax, metric_ax) = viz.plot_history(_History(records))
    labels = [line.get_label() for line in loss_ax.get_lines()]
    assert labels[2:] == ["obj", "val_loss"]
    (metric_line,) = metric_ax.get_lines()
    assert metric_line.get_label() == "val_AP50"
    np.testing.assert_allclose(metric_line.get_xdata(), [5, 10])
    val_loss = loss_ax.get_lines()[3]
    np.testing.assert_allclose(
        val_loss.get_ydata(), [1.5, 1.1]
    )  # sparse: drawn as points, not smoothed


def test_plot_history_explicit_metrics_and_given_axes():
    records = _records()
    for record in records:
        record["mAP"] = record["step"] / 100
    fig, ax = plt.subplots()
    returned, (loss_ax, metric_ax) = viz.plot_history(
        records, metrics=["mAP"], ax=ax, smoothing=0.0
    )
    assert returned is fig and loss_ax is ax
    assert [line.get_label() for line in metric_ax.get_lines()] == ["mAP"]
    assert len(loss_ax.get_lines()) == 1  # smoothing 0: the raw loss only; val_mAP not chosen


@pytest.mark.parametrize(
    "history, kwargs, error",
    [
        ("not a history", {}, TypeError),
        ([{"loss": 1.0}], {}, ValueError),
        ([{"step": 0}], {}, ValueError),
        (_records(), {"metrics": ["val_AP"]}, ValueError),
        (_records(), {"smoothing": 1.0}, ValueError),
    ],
)
def test_plot_history_rejects_bad_records(history, kwargs, error):
    with pytest.raises(error):
        viz.plot_history(history, **kwargs)
