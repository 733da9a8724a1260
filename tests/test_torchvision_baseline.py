"""course_utils.detection.torchvision_baseline: torchvision's FasterRCNN on the course's parts."""

import pytest
import torch
from fast_rcnn_helpers import TinyScenes

from course_utils.data.datasets import detection_collate
from course_utils.detection.anchors import anchor_boxes
from course_utils.detection.classifiers import CropClassifier
from course_utils.detection.detector_training import train_detector
from course_utils.detection.fast_rcnn import FastRCNN
from course_utils.detection.faster_rcnn import RPNSettings
from course_utils.detection.faster_rcnn_training import MirroredScenes
from course_utils.detection.torchvision_baseline import (
    detect_with_torchvision,
    torchvision_faster_rcnn,
)
from course_utils.engine.losses import detection_loss

SETTINGS = RPNSettings(
    pre_nms_top_n=(300, 200),
    post_nms_top_n=(120, 40),
    nms_threshold=0.6,
    fg_iou=0.65,
    bg_iou=0.25,
    batch_size_per_image=64,
    positive_fraction=0.4,
)


def tiny_classifier(seed: int = 0) -> CropClassifier:
    """A 3-block classifier of 16x16 crops (stride 4, 16 channels, a 2x2 pooled grid), with
    non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    classifier = CropClassifier(num_classes=4, crop_size=16, width=4)
    with torch.no_grad():
        classifier(torch.rand(8, 3, 16, 16))
    return classifier.eval()


def reference(seed: int = 0, **kwargs):
    kwargs = {"image_size": 64, "anchor_sizes": (8, 16), "aspect_ratios": (0.5, 1.0), **kwargs}
    return torchvision_faster_rcnn(tiny_classifier(seed), rpn=SETTINGS, rois_per_image=16, **kwargs)


def test_rpn_and_roi_settings_are_the_given_ones():
    model = reference(score_threshold=0.05, nms_threshold=0.4, max_detections=7)
    rpn, heads = model.rpn, model.roi_heads
    assert rpn._pre_nms_top_n == {"training": 300, "testing": 200}
    assert rpn._post_nms_top_n == {"training": 120, "testing": 40}
    assert rpn.nms_thresh == 0.6
    assert (rpn.proposal_matcher.high_threshold, rpn.proposal_matcher.low_threshold) == (0.65, 0.25)
    assert rpn.proposal_matcher.allow_low_quality_matches
    assert rpn.fg_bg_sampler.batch_size_per_image == 64
    assert rpn.fg_bg_sampler.positive_fraction == 0.4
    assert rpn.head.cls_logits.out_channels == 4  # 2 sizes x 2 ratios
    assert heads.fg_bg_sampler.batch_size_per_image == 16
    assert heads.fg_bg_sampler.positive_fraction == 0.25
    assert (heads.score_thresh, heads.nms_thresh, heads.detections_per_img) == (0.05, 0.4, 7)
    assert heads.box_roi_pool.output_size == (2, 2)  # the grid the classifier's linear layer takes
    assert model.transform.min_size == (64,) and model.transform.max_size == 64


def test_images_go_in_as_they_are_and_the_anchors_are_the_courses():
    model = reference().eval()
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 64)]
    batch, _ = model.transform(images)
    assert batch.image_sizes == [(64, 64), (64, 64)]
    torch.testing.assert_close(batch.tensors, torch.stack(images))  # neither resized nor normalised
    features = model.backbone(batch.tensors)
    assert model.backbone.out_channels == features.shape[1] == 16
    anchors = model.rpn.anchor_generator(batch, [features])
    expected = anchor_boxes((16, 16), 4, (8, 16), (0.5, 1.0))
    assert torch.equal(anchors[0], expected) and torch.equal(anchors[1], expected)


def test_trunk_and_classifier_are_copies_of_the_crop_classifiers():
    classifier = tiny_classifier(1)
    model = torchvision_faster_rcnn(classifier, image_size=64)
    course = FastRCNN.from_classifier(classifier)
    images = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(model.backbone(images), course.trunk(images))
    predictor, last = model.roi_heads.box_predictor, classifier.head[-1]
    assert torch.equal(predictor.cls_score.weight, last.weight)
    assert torch.equal(predictor.cls_score.bias, last.bias)
    assert predictor.cls_score.weight.data_ptr() != last.weight.data_ptr()  # not shared
    assert predictor.bbox_pred.out_features == 4 * 4
    assert (
        next(model.backbone.parameters()).data_ptr() != classifier.features[0][0].weight.data_ptr()
    )


def test_trains_with_the_shared_recipe(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    model = reference(2)
    before = model.roi_heads.box_predictor.bbox_pred.weight.detach().clone()
    history = train_detector(
        model,
        MirroredScenes(TinyScenes()),
        detection_loss,
        steps=2,
        images_per_batch=2,
        progress=False,
        device="cpu",
        collate_fn=detection_collate,
    )
    assert len(history.records) == 2
    names = {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
    for record in history.records:
        assert set(record["components"]) == names
        assert all(torch.isfinite(torch.tensor(v)) for v in record["components"].values())
    assert not torch.equal(model.roi_heads.box_predictor.bbox_pred.weight, before)


def test_detect_with_torchvision_restores_the_mode_and_returns_dicts():
    model = reference(3, score_threshold=0.0).train()
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 64)]
    detections = detect_with_torchvision(model, images)
    assert model.training and len(detections) == 2
    with torch.no_grad():
        expected = model.eval()(images)
    assert not model.training
    assert detect_with_torchvision(model, images)[0].keys() == expected[0].keys()
    assert not model.training  # eval stays eval
    for found, wanted in zip(detections, expected):
        assert set(found) == {"boxes", "scores", "labels"} and len(found["boxes"]) > 0
        for key, value in found.items():
            assert value.device == images[0].device
            torch.testing.assert_close(value, wanted[key])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_detect_with_torchvision_returns_on_the_images_device():
    model = reference(4, score_threshold=0.0).to("cuda")
    detections = detect_with_torchvision(model, [torch.rand(3, 64, 64)])
    assert all(value.device.type == "cpu" for value in detections[0].values())
    detections = detect_with_torchvision(model.cpu(), [torch.rand(3, 64, 64, device="cuda")])
    assert all(value.device.type == "cuda" for value in detections[0].values())
