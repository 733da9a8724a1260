"""course_utils.viz.detection: the boxes, captions and colours draw_boxes and show_detections
draw (checked on the figure's artists, Agg backend)."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from viz_helpers import box_of, rectangles, rgb, texts
from viz_helpers import image as _image

from course_utils import viz
from course_utils.data.scenes import THING_CLASSES


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --------------------------------------------------------------------------- draw_boxes


def test_draw_boxes_one_rectangle_and_caption_per_box_colour_per_class():
    ax = viz.show_image(_image(64, 64))
    boxes = torch.tensor(
        [[2.0, 3.0, 20.0, 30.0], [10.0, 10.0, 40.0, 50.0], [30.0, 5.0, 60.0, 25.0]]
    )
    labels = torch.tensor([1, 2, 1])
    scores = torch.tensor([0.91, 0.5, 0.333])
    returned = viz.draw_boxes(ax, boxes, labels, scores, class_names=("disk", "triangle", "star"))
    assert returned is ax
    drawn = rectangles(ax)
    assert len(drawn) == 3
    for rectangle, box in zip(drawn, boxes.tolist()):
        assert rectangle.get_xy() == pytest.approx((box[0], box[1]))
        assert rectangle.get_width() == pytest.approx(box[2] - box[0])
        assert rectangle.get_height() == pytest.approx(box[3] - box[1])
        assert rectangle.get_linestyle() == "-" and rectangle.get_linewidth() == 2.0
        assert not rectangle.get_fill()
    assert texts(ax) == ["disk 0.91", "triangle 0.50", "disk 0.33"]
    colors = [rgb(rectangle.get_edgecolor()) for rectangle in drawn]
    assert colors[0] == colors[2] != colors[1]
    assert colors == [rgb(viz.label_color(k)) for k in (1, 2, 1)]
    caption_colors = [rgb(text.get_bbox_patch().get_facecolor()) for text in ax.texts]
    assert caption_colors == colors


def test_draw_boxes_captions_above_the_box_or_inside_its_lower_edge():
    ax = viz.show_image(_image(64, 64))
    boxes = torch.tensor([[4.0, 6.0, 20.0, 30.0]])
    viz.draw_boxes(ax, boxes, torch.tensor([2]), class_names=THING_CLASSES)
    viz.draw_boxes(ax, boxes, torch.tensor([2]), class_names=THING_CLASSES, caption_at="bottom")
    top, bottom = ax.texts
    assert top.get_position() == (4.0, 6.0) and top.get_va() == "bottom"
    assert bottom.get_position() == (4.0, 30.0) and bottom.get_va() == "top"
    assert top.get_text() == bottom.get_text() == "triangle"


def test_draw_boxes_captions_name_labels_from_the_given_class_names():
    ax = viz.show_image(_image(64, 64))
    boxes = torch.tensor([[1.0, 1.0, 9.0, 9.0], [10.0, 10.0, 20.0, 20.0]])
    viz.draw_boxes(ax, boxes, torch.tensor([3, 1]), class_names=THING_CLASSES)
    assert texts(ax) == ["star", "disk"]


def test_draw_boxes_without_class_names_captions_class_numbers():
    ax = viz.show_image(_image(64, 64))
    boxes = torch.tensor([[1.0, 1.0, 9.0, 9.0], [10.0, 10.0, 20.0, 20.0], [0.0, 0.0, 5.0, 5.0]])
    viz.draw_boxes(ax, boxes, torch.tensor([3, 1, 0]), torch.tensor([0.25, 0.5, 0.75]))
    assert texts(ax) == ["class 3 0.25", "class 1 0.50", "background 0.75"]
    assert rgb(rectangles(ax)[2].get_edgecolor()) == rgb(viz.BACKGROUND_COLOR)


def test_draw_boxes_supports_colour_style_and_caption_overrides():
    ax = viz.show_image(_image(64, 64))
    viz.draw_boxes(
        ax,
        torch.tensor([[1.0, 1.0, 9.0, 9.0]]),
        torch.tensor([3]),
        class_names=THING_CLASSES,
        color="red",
        linestyle="--",
        linewidth=0.5,
    )
    (rectangle,) = rectangles(ax)
    assert texts(ax) == ["star"]
    assert rgb(rectangle.get_edgecolor()) == rgb("red")
    assert rgb(ax.texts[0].get_bbox_patch().get_facecolor()) == rgb("red")
    assert rectangle.get_linestyle() == "--" and rectangle.get_linewidth() == 0.5
    viz.draw_boxes(ax, torch.tensor([[1.0, 1.0, 9.0, 9.0]]), torch.tensor([3]), captions=False)
    assert len(rectangles(ax)) == 2 and len(ax.texts) == 1  # no caption for the second


def test_draw_boxes_converts_xywh_bounding_boxes_and_accepts_no_boxes():
    ax = viz.show_image(_image(64, 64))
    boxes = tv_tensors.BoundingBoxes([[5.0, 6.0, 10.0, 20.0]], format="XYWH", canvas_size=(64, 64))
    viz.draw_boxes(ax, boxes)
    (rectangle,) = rectangles(ax)
    assert box_of(rectangle) == [5.0, 6.0, 15.0, 26.0]
    assert rgb(rectangle.get_edgecolor()) == rgb(viz.THING_PALETTE[0])  # no labels, no color
    assert texts(ax) == []  # no labels, no scores: no caption
    viz.draw_boxes(ax, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))
    assert len(rectangles(ax)) == 1


def test_draw_boxes_accepts_one_box_arrays_and_lists():
    ax = viz.show_image(_image(64, 64))
    viz.draw_boxes(ax, np.array([1, 2, 11, 12]), [2], [0.5])
    viz.draw_boxes(ax, [[3.0, 4.0, 5.0, 6.0]])
    assert [box_of(r) for r in rectangles(ax)] == [[1, 2, 11, 12], [3, 4, 5, 6]]
    assert texts(ax) == ["class 2 0.50"]


@pytest.mark.parametrize(
    "boxes, labels, scores, error",
    [
        (torch.tensor([[10.0, 10.0, 5.0, 20.0]]), None, None, ValueError),  # x2 < x1
        (torch.tensor([[1.0, 2.0, 3.0]]), None, None, ValueError),  # not (N, 4)
        (torch.tensor([[1.0, 2.0, 3.0, 4.0]]), torch.tensor([1, 2]), None, ValueError),
        (torch.tensor([[1.0, 2.0, 3.0, 4.0]]), None, torch.tensor([0.5, 0.2]), ValueError),
        (torch.tensor([[1.0, 2.0, 3.0, 4.0]]), torch.tensor([1.0]), None, TypeError),
        (torch.tensor([[1.0, 2.0, 3.0, 4.0]]), torch.tensor([-1]), None, ValueError),
    ],
)
def test_draw_boxes_rejects_inconsistent_inputs(boxes, labels, scores, error):
    ax = viz.show_image(_image())
    with pytest.raises(error):
        viz.draw_boxes(ax, boxes, labels, scores)
    assert rectangles(ax) == []  # checked before drawing anything


def test_draw_boxes_needs_axes_and_a_known_caption_place():
    with pytest.raises(TypeError, match="Axes"):
        viz.draw_boxes(_image(), torch.zeros(0, 4))
    with pytest.raises(ValueError, match="caption_at"):
        viz.draw_boxes(viz.show_image(_image()), torch.zeros(0, 4), caption_at="left")


# --------------------------------------------------------------------------- show_detections


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
        "masks": torch.rand(3, 1, 48, 48, generator=torch.Generator().manual_seed(0)),
    }
    return image, target, prediction


def _by_style(ax, style):
    return [r for r in rectangles(ax) if r.get_linestyle() == style]


def test_show_detections_dashed_truth_solid_predictions_above_threshold():
    image, target, prediction = _scene_like()
    ax = viz.show_detections(image, target, prediction, score_threshold=0.5)
    dashed, solid = _by_style(ax, "--"), _by_style(ax, "-")
    assert [box_of(r) for r in dashed] == target["boxes"].tolist()
    assert [box_of(r) for r in solid] == prediction["boxes"][:2].tolist()
    assert all(r.get_linewidth() == 1.5 for r in dashed)
    assert texts(ax) == ["class 1", "class 2", "class 1 0.90", "class 2 0.60"]
    assert ax.get_title() == "truth (dashed): 2\npredicted (solid, score ≥ 0.50): 2"
    truth_captions = ax.texts[:2]
    assert [t.get_position() for t in truth_captions] == [(5.0, 15.0), (20.0, 40.0)]
    assert all(t.get_va() == "top" for t in truth_captions)  # inside the lower edge
    ax = viz.show_detections(image, target, prediction, score_threshold=0.1)
    assert [box_of(r) for r in _by_style(ax, "-")] == prediction["boxes"].tolist()
    assert ax.get_title().endswith("score ≥ 0.10): 3")


def test_show_detections_captions_with_the_given_class_names():
    image, target, prediction = _scene_like()
    ax = viz.show_detections(image, target, prediction, class_names=THING_CLASSES)
    assert texts(ax) == ["disk", "triangle", "disk 0.90", "triangle 0.60"]
    ax = viz.show_detections(image, target, prediction, 0.1, class_names=THING_CLASSES)
    assert texts(ax)[-1] == "star 0.20"


def test_show_detections_truth_and_prediction_of_a_class_share_its_colour():
    image, target, prediction = _scene_like()
    ax = viz.show_detections(image, target, prediction)
    dashed = [rgb(r.get_edgecolor()) for r in _by_style(ax, "--")]
    solid = [rgb(r.get_edgecolor()) for r in _by_style(ax, "-")]
    assert dashed == solid == [rgb(viz.label_color(1)), rgb(viz.label_color(2))]


def test_show_detections_only_truth_only_prediction_and_a_given_title():
    image, target, prediction = _scene_like()
    ax = viz.show_detections(image, target)
    assert ax.get_title() == "truth (dashed): 2" and len(_by_style(ax, "-")) == 0
    del prediction["scores"]  # without scores every prediction is drawn, uncaptioned scores
    ax = viz.show_detections(image, prediction=prediction, title="mine")
    assert ax.get_title() == "mine" and len(_by_style(ax, "-")) == 3
    assert texts(ax) == ["class 1", "class 2", "class 3"]
    fig, given = plt.subplots()
    assert viz.show_detections(image, target, ax=given) is given


def test_show_detections_overlays_masks_only_when_asked():
    image, target, prediction = _scene_like()
    assert len(viz.show_detections(image, target, prediction).images) == 1
    ax = viz.show_detections(image, target, show_masks=True)
    assert len(ax.images) == 2
    alpha = np.asarray(ax.images[-1].get_array())[..., 3]
    np.testing.assert_array_equal(alpha > 0, target["masks"].bool().any(0).numpy())
    ax = viz.show_detections(image, target, prediction, show_masks=True)  # the kept predictions'
    alpha = np.asarray(ax.images[-1].get_array())[..., 3]
    expected = (prediction["masks"][:2, 0] > 0.5).any(0).numpy()
    np.testing.assert_array_equal(alpha > 0, expected)


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
    with pytest.raises(ValueError, match="scores"):
        viz.show_detections(image, prediction={**prediction, "scores": torch.tensor([0.5])})
    with pytest.raises(ValueError, match="score_threshold"):
        viz.show_detections(image, prediction=prediction, score_threshold=2.0)
    with pytest.raises(TypeError, match="score_threshold"):
        viz.show_detections(image, prediction=prediction, score_threshold="0.5")
