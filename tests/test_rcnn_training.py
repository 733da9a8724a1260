"""course_utils.detection.rcnn_training: every R-CNN training stage in one call."""

import torch
from rcnn_helpers import TinyCNN, jittered, random_boxes, scene

from course_utils.detection.proposal_labels import label_proposals
from course_utils.detection.rcnn_training import train_rcnn


def test_train_rcnn_end_to_end_on_tiny_scenes(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    torch.manual_seed(0)
    cnn = TinyCNN(size=8)
    images, targets = zip(*(scene(s) for s in range(2)))
    proposals = [
        torch.cat([jittered(t["boxes"], 8, s), random_boxes(10, s, 64)])
        for s, t in enumerate(targets)
    ]
    detector, history, regions = train_rcnn(
        cnn,
        list(images),
        list(targets),
        proposals,
        steps=3,
        batch_size=16,
        size=8,
        ridge=10.0,
        progress=False,
        score_threshold=0.0,
    )
    assert len(history.records) == 3 and regions.crops.shape[-1] == 8
    assert detector.regressor_weights.shape == (4, 257, 4)
    outputs = detector(list(images), proposals)
    assert len(outputs) == 2 and outputs[0]["boxes"].shape[1] == 4
    used = []

    def spy(*args):
        used.append(True)
        return label_proposals(*args)

    train_rcnn(
        TinyCNN(size=8),
        list(images),
        list(targets),
        proposals,
        steps=1,
        batch_size=8,
        size=8,
        progress=False,
        label_fn=spy,
    )
    assert used
