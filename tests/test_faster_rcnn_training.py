"""course_utils.detection.faster_rcnn_training: mirrored scenes, the four losses, training."""

import math

import pytest
import torch
from fast_rcnn_helpers import TinyScenes, scene

from course_utils.data.datasets import detection_collate
from course_utils.detection.anchors import match_anchors
from course_utils.detection.classifiers import CropClassifier
from course_utils.detection.fast_rcnn_training import flip_boxes, smooth_l1_box_loss
from course_utils.detection.faster_rcnn import FasterRCNN, RPNSettings
from course_utils.detection.faster_rcnn_training import (
    MirroredScenes,
    faster_rcnn_training_loss,
    train_faster_rcnn,
)
from course_utils.detection.rpn import rpn_loss, rpn_targets

LOSS_NAMES = {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}


def tiny_model(seed: int = 0, **kwargs) -> FasterRCNN:
    torch.manual_seed(seed)
    classifier = CropClassifier(num_classes=4, crop_size=16, width=4)
    return FasterRCNN.from_classifier(classifier, **kwargs)


class ScenesWithExtras(TinyScenes):
    """TinyScenes whose targets carry more than boxes and labels (int boxes, an id)."""

    def __getitem__(self, index):
        image, target = scene(index)
        return image, {**target, "boxes": target["boxes"].int(), "image_id": index}


def test_mirrored_scenes():
    scenes = ScenesWithExtras()
    data = MirroredScenes(scenes)
    assert len(data) == 6
    for i in range(3):
        image, target = data[i]
        mirror, mirrored = data[3 + i]
        original_image, original = scene(i)
        assert set(target) == set(mirrored) == {"boxes", "labels"}
        torch.testing.assert_close(image, original_image)
        torch.testing.assert_close(mirror, original_image.flip(-1))
        assert target["boxes"].dtype == torch.float32
        torch.testing.assert_close(target["boxes"], original["boxes"])
        torch.testing.assert_close(mirrored["boxes"], flip_boxes(original["boxes"], 64))
        assert mirrored["labels"].tolist() == original["labels"].tolist()
    assert data[3][1]["boxes"][0].tolist() == [38.0, 6.0, 60.0, 30.0]  # 64 - x2, 64 - x1
    for index in (6, -1):
        with pytest.raises(IndexError):
            data[index]


def batch_of(*indices):
    return detection_collate([MirroredScenes(TinyScenes())[i] for i in indices])


def test_training_loss_has_four_finite_parts_with_gradients_everywhere():
    model = tiny_model(1).train()
    torch.manual_seed(0)
    losses = faster_rcnn_training_loss(model, batch_of(0, 4), rois_per_image=16)
    assert set(losses) == LOSS_NAMES
    assert all(value.dim() == 0 and torch.isfinite(value) for value in losses.values())
    assert losses["loss_rpn_box_reg"] > 0 and losses["loss_box_reg"] > 0  # positives were found
    sum(losses.values()).backward()
    first_conv = model.fast.trunk[0][0].weight
    head = model.rpn_head
    for weight in (first_conv, head.conv.weight, head.cls_logits.weight, head.bbox_pred.weight):
        assert weight.grad is not None and weight.grad.abs().sum() > 0
    for layer in (model.fast.cls_score, model.fast.bbox_pred):
        assert layer.weight.grad.abs().sum() > 0


def test_a_scene_without_objects_trains_on_background_only():
    model = tiny_model(6).train()
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    data = MirroredScenes([(torch.rand(3, 64, 64), empty)])
    torch.manual_seed(0)
    losses = faster_rcnn_training_loss(model, detection_collate([data[0], data[1]]))
    assert all(torch.isfinite(value) for value in losses.values())
    assert losses["loss_objectness"] > 0 and losses["loss_classifier"] > 0
    assert losses["loss_rpn_box_reg"] == 0 and losses["loss_box_reg"] == 0


def test_proposals_are_fixed_boxes_for_the_fast_rcnn_head():
    """Approximate joint training: the head's losses send no gradient into the RPN head."""
    model = tiny_model(2).train()
    torch.manual_seed(0)
    losses = faster_rcnn_training_loss(model, batch_of(1), rois_per_image=16)
    (losses["loss_classifier"] + losses["loss_box_reg"]).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.rpn_head.parameters())
    assert model.fast.trunk[0][0].weight.grad.abs().sum() > 0


def test_rpn_losses_follow_the_settings():
    settings = RPNSettings(fg_iou=0.6, bg_iou=0.2, batch_size_per_image=32, positive_fraction=0.1)
    model = tiny_model(3, rpn=settings).train()
    batch = batch_of(0, 2)
    torch.manual_seed(7)
    losses = faster_rcnn_training_loss(model, batch, rois_per_image=8)
    with torch.no_grad():
        features = model.fast.feature_map(batch[0])
        objectness, deltas = model.rpn_outputs(features)
        anchors = model.anchors(features)
    labels, targets = zip(*(rpn_targets(anchors, t["boxes"], 0.6, 0.2) for t in batch[1]))
    torch.manual_seed(7)  # the RPN's anchors are sampled first
    expected = rpn_loss(objectness, deltas, torch.stack(labels), torch.stack(targets), 32, 0.1)
    for key in ("loss_objectness", "loss_rpn_box_reg"):
        torch.testing.assert_close(losses[key].detach(), expected[key])


def test_match_fn_and_box_loss_are_used_when_given():
    model = tiny_model(4, rpn=RPNSettings(fg_iou=0.65, bg_iou=0.25)).train()
    matched, boxed = [], []

    def match_fn(anchors, gt_boxes, high, low):
        matched.append((len(anchors), len(gt_boxes), high, low))
        return match_anchors(anchors, gt_boxes, high, low)

    def box_loss(deltas, targets, labels, beta):
        boxed.append(len(labels))
        return 3.0 * smooth_l1_box_loss(deltas, targets, labels, beta)

    torch.manual_seed(0)
    losses = faster_rcnn_training_loss(
        model, batch_of(0, 5), rois_per_image=8, match_fn=match_fn, box_loss=box_loss
    )
    assert matched == [(16 * 16 * 9, 2, 0.65, 0.25)] * 2  # once per image
    assert boxed == [16]  # once, on the RoIs of both images
    torch.manual_seed(0)
    plain = faster_rcnn_training_loss(model, batch_of(0, 5), rois_per_image=8)
    torch.testing.assert_close(losses["loss_box_reg"], 3.0 * plain["loss_box_reg"])
    torch.testing.assert_close(losses["loss_objectness"], plain["loss_objectness"])


def test_train_faster_rcnn_records_the_four_losses(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    model = tiny_model(5)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    history = train_faster_rcnn(
        model,
        MirroredScenes(TinyScenes()),
        steps=3,
        images_per_batch=2,
        progress=False,
        device="cpu",
        rois_per_image=8,
    )
    assert len(history.records) == 3 and history.finished
    for record in history.records:
        assert set(record["components"]) == LOSS_NAMES
        assert math.isclose(record["loss"], sum(record["components"].values()), rel_tol=1e-5)
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert {
        "rpn_head.cls_logits.weight",
        "fast.cls_score.weight",
        "fast.trunk.0.0.weight",
    } <= changed
