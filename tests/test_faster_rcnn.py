"""course_utils.detection.faster_rcnn: the model, its settings, proposals and detections."""

import dataclasses

import pytest
import torch
from fast_rcnn_helpers import trained_like_classifier

from course_utils.detection.anchors import anchor_boxes
from course_utils.detection.classifiers import CropClassifier
from course_utils.detection.fast_rcnn import FastRCNN
from course_utils.detection.faster_rcnn import FasterRCNN, RPNSettings
from course_utils.detection.rpn import RPNHead, flatten_rpn_outputs, rpn_proposals


def tiny_model(seed: int = 0, **kwargs) -> FasterRCNN:
    """Faster R-CNN on a 3-block CropClassifier of 16x16 crops (stride 4, 16 channels), its RPN
    head's weights drawn large enough that the anchors' scores differ."""
    torch.manual_seed(seed)
    model = FasterRCNN.from_classifier(
        CropClassifier(num_classes=4, crop_size=16, width=4), **kwargs
    )
    with torch.no_grad():
        for parameter in model.rpn_head.parameters():
            parameter.normal_(std=0.3)
        model.rpn_head.bbox_pred.weight.mul_(0.1)  # moderate deltas
    return model


def images(seed: int = 0, height: int = 48, width: int = 64) -> torch.Tensor:
    return torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(seed))


def test_from_classifier_shapes():
    classifier = CropClassifier(num_classes=4, crop_size=16, width=4)
    model = FasterRCNN.from_classifier(classifier, score_threshold=0.2)
    assert model.num_anchors == 9 and model.stride == 4 and model.fast.score_threshold == 0.2
    assert isinstance(model.rpn_head, RPNHead) and model.rpn == RPNSettings()
    assert model.rpn_head.conv.in_channels == 16 and model.rpn_head.cls_logits.out_channels == 9
    assert model.rpn_head.bbox_pred.out_channels == 36
    features = model.fast.feature_map(images())
    assert features.shape == (2, 16, 12, 16)
    objectness, deltas = model.rpn_outputs(features)
    assert objectness.shape == (2, 12 * 16 * 9) and deltas.shape == (2, 12 * 16 * 9, 4)
    expected = anchor_boxes((12, 16), 4, (16, 32, 64), (0.5, 1.0, 2.0))
    assert torch.equal(model.anchors(features), expected)

    other = FasterRCNN.from_classifier(
        trained_like_classifier(), anchor_sizes=(8, 16), aspect_ratios=(1.0,)
    )
    assert other.num_anchors == 2 and other.stride == 4
    assert other.anchor_sizes == (8.0, 16.0) and other.aspect_ratios == (1.0,)
    assert other.rpn_head.cls_logits.out_channels == 2


def test_a_given_rpn_head_is_initialised_as_the_paper():
    fast = FastRCNN.from_classifier(trained_like_classifier())
    head = RPNHead(16, 2)
    for parameter in head.parameters():
        parameter.data.fill_(1.0)
    model = FasterRCNN(fast, head, anchor_sizes=(16, 32), aspect_ratios=(1.0,))
    assert model.rpn_head is head
    assert head.conv.weight.std().item() == pytest.approx(0.01, rel=0.2)
    assert head.cls_logits.bias.abs().max() == 0


def test_rpn_outputs_reject_a_head_with_the_wrong_number_of_anchors():
    fast = FastRCNN.from_classifier(trained_like_classifier())
    model = FasterRCNN(fast, RPNHead(16, 3))  # 3 anchors per cell, the settings give 9
    with pytest.raises(ValueError, match="9 anchors per cell"):
        model.rpn_outputs(fast.feature_map(images()))


def test_only_a_single_scale_fast_rcnn_is_accepted():
    classifier = trained_like_classifier()
    with pytest.raises(TypeError, match="FastRCNN"):
        FasterRCNN(classifier, RPNHead(16, 9))
    pyramid = FastRCNN.from_classifier(classifier, scales=(1.0, 0.5))
    with pytest.raises(TypeError, match="single-scale"):
        FasterRCNN(pyramid, RPNHead(16, 9))
    with pytest.raises(TypeError, match="RPNSettings"):
        FasterRCNN(FastRCNN.from_classifier(classifier), RPNHead(16, 9), rpn={"nms_threshold": 0.5})


def test_rpn_settings_validation():
    settings = RPNSettings(post_nms_top_n=(100, 50), fg_iou=0.6, bg_iou=0.6)
    assert settings.post_nms_top_n == (100, 50) and settings.bg_iou == 0.6
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.nms_threshold = 0.5  # a shared default argument must not change
    with pytest.raises(TypeError, match="pre_nms_top_n"):
        RPNSettings(pre_nms_top_n=1000)
    with pytest.raises(TypeError, match="post_nms_top_n"):
        RPNSettings(post_nms_top_n=[600, 300])
    with pytest.raises(ValueError, match="post_nms_top_n"):
        RPNSettings(post_nms_top_n=(600, 0))
    with pytest.raises(ValueError, match="bg_iou"):
        RPNSettings(fg_iou=0.5, bg_iou=0.6)
    with pytest.raises(ValueError, match="nms_threshold"):
        RPNSettings(nms_threshold=1.5)
    with pytest.raises(ValueError, match="batch_size_per_image"):
        RPNSettings(batch_size_per_image=0)
    with pytest.raises(ValueError, match="positive_fraction"):
        RPNSettings(positive_fraction=-0.1)


def expected_proposals(model, batch, pre, post):
    """The proposals computed step by step: head, flattening, anchors of stride 4, filtering."""
    features = model.fast.feature_map(batch)
    objectness, deltas = flatten_rpn_outputs(*model.rpn_head(features))
    anchors = anchor_boxes(tuple(features.shape[-2:]), 4, model.anchor_sizes, model.aspect_ratios)
    size = tuple(batch.shape[-2:])
    return [
        rpn_proposals(anchors, o, d, size, pre, post, model.rpn.nms_threshold)
        for o, d in zip(objectness, deltas)
    ]


def test_propose_uses_the_testing_numbers_in_eval_mode_and_restores_train_mode():
    settings = RPNSettings(pre_nms_top_n=(2000, 60), post_nms_top_n=(500, 7))
    model = tiny_model(1, rpn=settings).train()
    batch = images(1)
    proposals = model.propose(batch)
    assert model.training and model.fast.training  # restored
    with torch.no_grad():
        model.eval()
        expected = expected_proposals(model, batch, 60, 7)
    assert len(proposals) == 2
    for (boxes, scores), (expected_boxes, expected_scores) in zip(proposals, expected):
        assert len(boxes) == 7
        torch.testing.assert_close(boxes, expected_boxes)
        torch.testing.assert_close(scores, expected_scores)
    model.eval()
    model.propose(batch)
    assert not model.training


def test_propose_top_n_boxes_inside_the_image_sorted_by_score():
    model = tiny_model(2)
    for boxes, scores in model.propose(images(2), top_n=20):
        assert len(boxes) == len(scores) == 20
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 64).all() and (boxes[:, 3] <= 48).all()
        assert (scores[:-1] >= scores[1:]).all()
    more = model.propose(images(2), top_n=1500)  # more than pre_nms_top_n: all of them kept
    assert len(more[0][0]) > 20
    with pytest.raises(ValueError, match="top_n"):
        model.propose(images(2), top_n=0)


def test_detect_returns_torchvision_style_dicts_from_its_proposals():
    model = tiny_model(3, score_threshold=0.0).train()
    batch = images(3)
    detections = model.detect(list(batch))
    assert model.training and len(detections) == 2
    for found in detections:
        assert set(found) == {"boxes", "scores", "labels"}
        boxes, scores, labels = found["boxes"], found["scores"], found["labels"]
        assert len(boxes) > 0 and boxes.shape == (len(scores), 4) and labels.dtype == torch.int64
        assert (boxes[:, 2] <= 64).all() and (boxes[:, 3] <= 48).all() and (boxes >= 0).all()
        assert set(labels.tolist()) <= {1, 2, 3} and (scores[:-1] >= scores[1:]).all()
    # the Fast R-CNN head on the RPN's (testing) proposals, the trunk run once for both
    proposals = [boxes for boxes, _ in model.propose(batch)]
    expected = model.fast.detect(list(batch), proposals)
    for found, wanted in zip(detections, expected):
        for key in ("boxes", "scores", "labels"):
            torch.testing.assert_close(found[key], wanted[key])


def test_detect_from_features_is_detect_after_the_trunk_and_keeps_the_mode():
    model = tiny_model(4, score_threshold=0.0).train()
    batch = list(images(4))
    with torch.no_grad():
        features = model.eval().fast.feature_map(batch)
    model.train()
    after_trunk = model.detect_from_features(batch, features)
    assert model.training
    for found, wanted in zip(after_trunk, model.detect(batch)):
        for key in ("boxes", "scores", "labels"):
            torch.testing.assert_close(found[key], wanted[key])
