"""OpenCV's Selective Search: boxes in the course's convention, and why it is missing when it is."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from course_utils.detection.opencv_selective_search import opencv_selective_search, opencv_status


def test_opencv_status_and_boxes():
    available, reason = opencv_status()
    assert isinstance(reason, str) and reason
    if not available:
        pytest.skip(reason)
    image = np.full((64, 64, 3), 128, np.uint8)
    image[10:30, 20:40] = (250, 20, 20)
    boxes = opencv_selective_search(image, mode="single")
    assert boxes.dtype == torch.float32 and boxes.shape[1] == 4
    assert [0.0, 0.0, 64.0, 64.0] in boxes.tolist()  # xyxy with exclusive x2 = x + w
    assert box_iou(torch.tensor([[20.0, 10.0, 40.0, 30.0]]), boxes).max() > 0.8  # the red square
    assert len(opencv_selective_search(image, mode="fast", max_proposals=3)) <= 3
    ours = opencv_selective_search(image, mode="quality", scales=(50, 100), min_size=10)
    assert [0.0, 0.0, 64.0, 64.0] in ours.tolist() and len(ours) > len(boxes)
    with pytest.raises(ValueError, match="mode"):
        opencv_selective_search(image, mode="best")
    with pytest.raises(ValueError, match="max_proposals"):
        opencv_selective_search(image, max_proposals=-2)


def test_a_hidden_ximgproc_is_explained(monkeypatch):
    fake = types.ModuleType("cv2")
    fake.__version__ = "5.0.0"
    monkeypatch.setitem(sys.modules, "cv2", fake)
    available, reason = opencv_status()
    assert not available and "ximgproc" in reason and "opencv-contrib" in reason
    with pytest.raises(ImportError, match="ximgproc"):
        opencv_selective_search(np.zeros((8, 8, 3), np.uint8))


def test_a_missing_opencv_is_explained(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 raises ImportError
    available, reason = opencv_status()
    assert not available and "not installed" in reason
