"""course_utils.detection.rcnn: per-class postprocessing and the R-CNN detector."""

import pytest
import torch
from rcnn_helpers import TinyCNN, random_boxes, scene
from torch import nn

from course_utils.detection.box_regression import region_features
from course_utils.detection.rcnn import RCNN, postprocess_detections
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
