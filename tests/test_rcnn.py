"""course_utils.detection.rcnn: per-class postprocessing and the R-CNN detector."""

import pytest
import torch
from rcnn_helpers import TinyCNN, random_boxes, scene
from torch import nn

from course_utils.detection.box_regression import apply_box_regressors, region_features
from course_utils.detection.rcnn import RCNN, postprocess_detections, score_regions
from course_utils.detection.warped_regions import warp_regions

# --------------------------------------------------------------------------- detections


def test_postprocess_per_class_nms():
    proposals = torch.tensor(
        [[10.0, 10.0, 30.0, 30.0], [11.0, 11.0, 31.0, 31.0], [60.0, 60.0, 70.0, 70.0]]
    )
    probs = torch.tensor([[0.1, 0.8, 0.1, 0.0], [0.1, 0.7, 0.2, 0.0], [0.9, 0.05, 0.0, 0.05]])
    out = postprocess_detections(
        proposals, probs, None, (100, 100), score_threshold=0.04, nms_threshold=0.3
    )
    assert out["labels"].dtype == torch.int64 and out["boxes"].shape[1] == 4
    assert out["scores"].tolist() == sorted(out["scores"].tolist(), reverse=True)
    pairs = {
        (int(label), round(float(score), 2)) for label, score in zip(out["labels"], out["scores"])
    }
    # class 1: the 0.7 box is suppressed by the 0.8 box; class 2 keeps both (0.1 and 0.2 do not
    # suppress across classes, but 0.1 is suppressed by 0.2 within class 2); class 3 keeps the far
    # box
    assert pairs == {(1, 0.8), (2, 0.2), (1, 0.05), (3, 0.05)}
    top = postprocess_detections(
        proposals, probs, None, (100, 100), score_threshold=0.0, max_detections=2
    )
    assert len(top["scores"]) == 2


def test_postprocess_decodes_class_specific_deltas_and_clips():
    proposals = torch.tensor([[10.0, 10.0, 30.0, 30.0]])
    probs = torch.tensor([[0.0, 0.3, 0.7]])
    deltas = torch.zeros(1, 3, 4)
    deltas[0, 2] = torch.tensor([0.5, 0.0, 0.0, 0.0])  # class 2 moves right by half a width
    deltas[0, 1] = torch.tensor([0.0, 0.0, 3.0, 0.0])  # class 1 grows a lot: clipped to the image
    out = postprocess_detections(proposals, probs, deltas, (40, 50), score_threshold=0.1)
    by_label = {int(label): box.tolist() for label, box in zip(out["labels"], out["boxes"])}
    assert by_label[2] == pytest.approx([20.0, 10.0, 40.0, 30.0])
    assert by_label[1][0] == 0.0 and by_label[1][2] == 50.0
    with pytest.raises(ValueError, match="box_deltas"):
        postprocess_detections(proposals, probs, torch.zeros(1, 2, 4), (40, 50))


def test_rcnn_detector():
    torch.manual_seed(0)
    cnn = TinyCNN()
    weights = torch.zeros(4, 257, 4)
    detector = RCNN(cnn, weights, size=8, score_threshold=0.0)
    images, targets = zip(*(scene(s) for s in range(2)))
    outputs = detector(list(images), [random_boxes(12, 1, 64), random_boxes(5, 2, 64)])
    assert len(outputs) == 2 and set(outputs[0]) == {"boxes", "scores", "labels"}
    assert len(outputs[1]["boxes"]) <= 5 * 3 and outputs[0]["labels"].min() >= 1
    image, proposals = images[0], random_boxes(12, 1, 64)
    probs, deltas = detector.score_regions(image, proposals)
    _, expected = region_features(cnn, warp_regions(image, proposals, 8, 0.25))
    torch.testing.assert_close(probs, expected)
    assert deltas.shape == (12, 4, 4) and deltas.abs().max() == 0  # zero weights: no shift
    unregressed = postprocess_detections(proposals, probs, None, (64, 64), score_threshold=0.0)
    for key in ("boxes", "scores", "labels"):
        torch.testing.assert_close(outputs[0][key], unregressed[key])
    plain = RCNN(cnn, None, size=8, score_threshold=0.0)
    assert plain.score_regions(image, proposals)[1] is None
    with pytest.raises(TypeError):
        RCNN(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="one proposal tensor per image"):
        detector(list(images), [proposals])


# --------------------------------------------------------------------------- the scoring hook


def test_score_regions_is_the_per_region_pipeline():
    torch.manual_seed(0)
    cnn = TinyCNN().train()
    weights = torch.randn(4, 257, 4)
    images = [scene(s)[0] for s in range(3)]
    proposals = [random_boxes(6, 1, 64), torch.zeros(0, 4), random_boxes(1, 2, 64)]
    scored = score_regions(images, proposals, cnn, weights, 8, 0.3)
    assert len(scored) == 3 and cnn.training  # the mode is restored
    for image, boxes, (probs, deltas) in zip(images, proposals, scored):
        features, expected = region_features(cnn, warp_regions(image, boxes, 8, 0.3))
        torch.testing.assert_close(probs, expected)
        torch.testing.assert_close(deltas, apply_box_regressors(features, weights))
        assert probs.shape == (len(boxes), 4) and deltas.shape == (len(boxes), 4, 4)
    assert all(d is None for _, d in score_regions(images, proposals, cnn, None, 8, 0.3))
    with pytest.raises(ValueError, match="one proposal tensor per image"):
        score_regions(images, proposals[:2], cnn, weights, 8, 0.3)


def test_rcnn_runs_its_scoring_hook():
    torch.manual_seed(0)
    cnn = TinyCNN()
    weights = torch.randn(4, 257, 4) * 0.1
    images = [scene(s)[0] for s in range(2)]
    proposals = [random_boxes(7, 1, 64), random_boxes(3, 2, 64)]
    default = RCNN(cnn, weights, size=8, context=0.3, score_threshold=0.0)
    assert default.scoring is None
    calls = []

    def spy(images_, proposals_, cnn_, weights_, size, context):
        calls.append((len(images_), cnn_ is default.cnn or cnn_ is cnn, size, context))
        return score_regions(images_, proposals_, cnn_, weights_, size, context)

    hooked = RCNN(cnn, weights, size=8, context=0.3, score_threshold=0.0, scoring=spy)
    assert hooked.state_dict().keys() == default.state_dict().keys()
    for got, want in zip(hooked(images, proposals), default(images, proposals)):
        for key in ("boxes", "scores", "labels"):
            torch.testing.assert_close(got[key], want[key])
    assert calls == [(2, True, 8, 0.3)]  # one call for all images
    probs, deltas = hooked.score_regions(images[0], proposals[0])
    torch.testing.assert_close(probs, default.score_regions(images[0], proposals[0])[0])
    assert deltas.shape == (7, 4, 4) and calls[-1][0] == 1
    with pytest.raises(TypeError, match="scoring must be a function"):
        RCNN(cnn, weights, scoring="score_regions")
    short = RCNN(cnn, weights, size=8, scoring=lambda i, p, *rest: [])
    with pytest.raises(ValueError, match="one \\(probs, deltas\\) pair per image"):
        short(images, proposals)
