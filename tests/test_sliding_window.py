"""course_utils.detection.sliding_window: classifying windows, detections, the detector."""

import math

import pytest
import torch
from torch import nn
from torchvision.ops import box_iou
from window_helpers import SQUARE, CentreVsBorder, square_image

from course_utils.detection.sliding_window import (
    SlidingWindowDetector,
    classify_windows,
    recall_at_iou,
    score_map,
    windows_to_detections,
)
from course_utils.detection.windows import (
    count_windows,
    grid_shape,
    shrink_boxes,
    window_grid,
)

# --------------------------------------------------------------------------- classifying windows


def test_classify_windows_and_score_map():
    image = square_image()
    model = CentreVsBorder(crop_size=12)
    window, stride = 24, 4  # object 16 px with context 0.25 -> window 24
    boxes = window_grid((64, 64), window, stride)
    probs = classify_windows(model, image, boxes)
    assert probs.shape == (len(boxes), 2) and torch.allclose(probs.sum(1), torch.ones(len(boxes)))
    maps = score_map(probs, (64, 64), window, stride)
    rows, cols = grid_shape((64, 64), window, stride)
    assert maps.shape == (2, rows, cols)
    r, c = divmod(int(probs[:, 1].argmax()), cols)
    assert maps[1, r, c] == probs[:, 1].max()
    best = shrink_boxes(boxes[probs[:, 1].argmax()][None], 0.25)
    assert box_iou(best, torch.tensor([SQUARE], dtype=torch.float32)).item() > 0.6
    with pytest.raises(ValueError):
        score_map(probs[:-1], (64, 64), window, stride)


# --------------------------------------------------------------------------- windows -> detections


def test_windows_to_detections_thresholds_and_suppresses_per_class():
    boxes = torch.tensor(
        [[0.0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60], [80, 80, 90, 90]]
    )
    probs = torch.tensor(
        [[0.1, 0.9, 0.0], [0.2, 0.8, 0.0], [0.3, 0.0, 0.7], [0.6, 0.4, 0.0], [0.99, 0.01, 0.0]]
    )
    out = windows_to_detections(boxes, probs, score_threshold=0.3, iou_threshold=0.5)
    assert out["labels"].tolist() == [
        1,
        2,
        1,
    ]  # window 1 suppressed by window 0 (same class), 4 below threshold
    assert torch.allclose(out["scores"], torch.tensor([0.9, 0.7, 0.4]))
    assert torch.equal(out["boxes"][0], boxes[0])
    assert out["labels"].dtype == torch.int64 and out["boxes"].dtype == torch.float32
    loose = windows_to_detections(boxes, probs, score_threshold=0.3, iou_threshold=0.9)
    assert len(loose["boxes"]) == 4  # IoU(0, 1) = 0.68 < 0.9: both kept
    assert len(windows_to_detections(boxes, probs, score_threshold=0.95)["boxes"]) == 0
    clipped = windows_to_detections(
        torch.tensor([[-6.0, -6, 18, 18]]),
        torch.tensor([[0.0, 1.0]]),
        context=0.25,
        image_size=(10, 10),
    )
    assert torch.allclose(clipped["boxes"], torch.tensor([[0.0, 0.0, 10.0, 10.0]]))
    with pytest.raises(ValueError):
        windows_to_detections(boxes, probs[:, :1])


def test_sliding_window_detector_finds_a_square():
    image = square_image()
    detector = SlidingWindowDetector(
        CentreVsBorder(crop_size=12),
        windows=(16, 24, 36),
        strides=(4, 4, 6),
        context=0.25,
        score_threshold=0.5,
    )
    outputs = detector([image, torch.zeros(3, 64, 64)])
    assert len(outputs) == 2 and len(outputs[1]["boxes"]) == 0
    top = outputs[0]["boxes"][:1]
    assert box_iou(top, torch.tensor([SQUARE], dtype=torch.float32)).item() > 0.6
    assert detector.num_windows((64, 64)) == sum(
        count_windows((64, 64), w, s, w * 0.25 / 1.5) for w, s in ((16, 4), (24, 4), (36, 6))
    )
    with pytest.raises(TypeError):
        detector(image)
    with pytest.raises(TypeError, match="crop_size"):
        SlidingWindowDetector(nn.Linear(2, 2), (16,), (4,))
    with pytest.raises(ValueError, match="same length"):
        SlidingWindowDetector(CentreVsBorder(), (16, 24), (4,))
    with pytest.raises(TypeError, match="max_detections"):
        SlidingWindowDetector(CentreVsBorder(), (16,), (4,), max_detections=1.5)


# --------------------------------------------------------------------------- recall


def test_recall_at_iou():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    targets = [{"boxes": gt, "labels": torch.tensor([1, 2])}]
    predictions = [
        {
            "boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]),
            "labels": torch.tensor([1, 1]),
            "scores": torch.tensor([0.9, 0.8]),
        }
    ]
    assert recall_at_iou(predictions, targets) == 0.5  # the second box has the wrong label
    predictions[0]["labels"] = torch.tensor([1, 2])
    assert recall_at_iou(predictions, targets) == 1.0
    assert recall_at_iou(predictions, targets, score_threshold=0.85) == 0.5
    assert math.isnan(
        recall_at_iou([predictions[0]], [{"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0)}])
    )
    shifted = [dict(predictions[0], boxes=predictions[0]["boxes"] + torch.tensor([1.0, 1, 1, 1]))]
    assert recall_at_iou(shifted, targets) == 1.0  # IoU 81 / 119 = 0.68 with each box
    assert recall_at_iou(shifted, targets, iou_threshold=0.7) == 0.0
    with pytest.raises(ValueError):
        recall_at_iou(predictions, targets * 2)
