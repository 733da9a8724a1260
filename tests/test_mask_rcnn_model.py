"""course_utils.detection.mask_rcnn_model: Mask R-CNN's model, loss and training."""

import math

import pytest
import torch
from torchvision.ops import box_iou

from course_utils.data.datasets import SceneDataset, detection_collate
from course_utils.detection.classifiers import CropClassifier
from course_utils.detection.faster_rcnn import FasterRCNN
from course_utils.detection.faster_rcnn_training import (
    MirroredScenes,
    faster_rcnn_training_loss,
    faster_rcnn_training_parts,
)
from course_utils.detection.mask_rcnn import MaskHead, mask_targets
from course_utils.detection.mask_rcnn_model import (
    MaskRCNN,
    mask_branch,
    mask_rcnn_training_loss,
    train_mask_rcnn,
)
from course_utils.metrics.detection import detection_ap

FASTER_NAMES = {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}


@pytest.fixture(scope="module")
def scenes():
    return SceneDataset("train", num_images=4, progress=False)


def tiny_classifier(seed: int = 0) -> CropClassifier:
    torch.manual_seed(seed)
    return CropClassifier(num_classes=4, crop_size=32, width=4)


def tiny_model(seed: int = 0, **kwargs) -> MaskRCNN:
    return MaskRCNN.from_classifier(tiny_classifier(seed), **kwargs)


def batch_of(scenes, *indices):
    return detection_collate([MirroredScenes(scenes, keep_masks=True)[i] for i in indices])


def test_from_classifier_builds_the_parts_and_mask_logits_have_their_shape(scenes):
    model = tiny_model()
    assert isinstance(model.faster, FasterRCNN) and isinstance(model.mask_head, MaskHead)
    assert model.faster.fast.pooling == "align" and model.mask_pooling == "align"
    assert model.mask_fn is mask_branch
    images = torch.stack([scenes[i][0] for i in range(2)])
    features = model.faster.fast.feature_map(images)
    boxes = [torch.tensor([[10.0, 12.0, 50.0, 40.0], [0.0, 0.0, 128.0, 128.0]]), torch.zeros(0, 4)]
    logits = model.mask_logits(features, boxes)
    assert logits.shape == (2, 4, 16, 16)
    small = tiny_model(mask_pooled_size=4, mask_num_convs=1, mask_conv_channels=8)
    assert small.mask_logits(small.faster.fast.feature_map(images), boxes).shape == (2, 4, 8, 8)
    with pytest.raises(ValueError, match="mask_pooling"):
        MaskRCNN(model.faster, model.mask_head, mask_pooling="avg")
    with pytest.raises(TypeError, match="FasterRCNN"):
        MaskRCNN(model.faster.fast, model.mask_head)


def test_roipool_and_roialign_paths_both_run_and_differ(scenes):
    align = tiny_model(mask_pooling="align")
    pool = tiny_model(mask_pooling="max")
    pool.load_state_dict(align.state_dict())
    images = torch.stack([scenes[0][0]])
    boxes = [torch.tensor([[10.3, 12.7, 50.1, 40.9], [60.0, 20.0, 100.0, 90.0]])]
    with torch.no_grad():
        a = align.mask_logits(align.faster.fast.feature_map(images), boxes)
        p = pool.mask_logits(pool.faster.fast.feature_map(images), boxes)
    assert a.shape == p.shape == (2, 4, 16, 16)
    assert not torch.allclose(a, p)
    batch = batch_of(scenes, 0, 5)
    for model in (align, pool):
        torch.manual_seed(0)
        losses = mask_rcnn_training_loss(model.train(), batch, rois_per_image=16)
        assert torch.isfinite(losses["loss_mask"])


def test_detect_pastes_masks_inside_boxes_and_restores_the_mode(scenes):
    model = tiny_model().train()
    images = [scenes[i][0] for i in range(2)]
    detections = model.detect(images)
    assert model.training
    assert model.eval().detect(images[:1])[0]["boxes"].shape == detections[0]["boxes"].shape
    assert not model.training
    for detection in detections:
        assert set(detection) == {"boxes", "scores", "labels", "masks"}
        boxes, masks = detection["boxes"], detection["masks"]
        assert len(boxes) > 0
        assert masks.shape == (len(boxes), 1, 128, 128) and masks.dtype == torch.float32
        assert float(masks.min()) >= 0 and float(masks.max()) <= 1 and float(masks.max()) > 0
        ys, xs = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
        for box, mask in zip(boxes, masks[:, 0]):
            margin = (box[2:] - box[:2]) / 16 + 1  # paste_masks' padding pixel, inclusive corners
            inside = (
                (xs >= box[0] - margin[0] - 1)
                & (xs <= box[2] + margin[0])
                & (ys >= box[1] - margin[1] - 1)
                & (ys <= box[3] + margin[1])
            )
            assert float(mask[~inside].abs().sum()) == 0
    # one trunk pass: same boxes as the plain Faster R-CNN
    plain = model.faster.detect(images)
    for ours, theirs in zip(detections, plain):
        torch.testing.assert_close(ours["boxes"], theirs["boxes"])


def test_detections_score_with_bbox_and_segm_ap(scenes):
    model = tiny_model()
    images, targets = zip(*(scenes[i] for i in range(2)))
    detections = model.detect(list(images))
    for iou_type in ("bbox", "segm"):
        stats = detection_ap(detections, list(targets), iou_type=iou_type)
        assert 0.0 <= stats["AP"] <= 1.0 or stats["AP"] == -1.0


def test_training_loss_has_five_finite_terms_and_gradients_everywhere(scenes):
    model = tiny_model(1).train()
    torch.manual_seed(0)
    losses = mask_rcnn_training_loss(model, batch_of(scenes, 0, 5), rois_per_image=16)
    assert set(losses) == FASTER_NAMES | {"loss_mask"}
    assert all(value.dim() == 0 and torch.isfinite(value) for value in losses.values())
    assert losses["loss_mask"] > 0
    sum(losses.values()).backward()
    head = model.mask_head
    for weight in (
        head.convs[0].weight,
        head.upsample.weight,
        head.predictor.weight,
        model.faster.fast.trunk[0][0].weight,
        model.faster.rpn_head.cls_logits.weight,
        model.faster.fast.cls_score.weight,
    ):
        assert weight.grad is not None and weight.grad.abs().sum() > 0


def test_mask_targets_come_from_the_boxes_the_features_are_pooled_on(scenes):
    model = tiny_model(2).train()
    batch = batch_of(scenes, 1, 6)
    pooled, calls = [], []

    def spy_branch(features, boxes, pool, mask_head):
        pooled.append([b.clone() for b in boxes])
        return mask_branch(features, boxes, pool, mask_head)

    def spy_targets(gt_masks, boxes, matched, size):
        calls.append((gt_masks, boxes.clone(), matched.clone(), size))
        return mask_targets(gt_masks, boxes, matched, size)

    model.mask_fn = spy_branch
    torch.manual_seed(3)
    mask_rcnn_training_loss(model, batch, rois_per_image=16, mask_targets_fn=spy_targets)
    torch.manual_seed(3)
    _, parts = faster_rcnn_training_parts(model.faster, batch, rois_per_image=16)
    assert len(pooled) == 1 and len(calls) == 2
    for image_boxes, (gt_masks, boxes, matched, size), target, rois, labels in zip(
        pooled[0], calls, batch[1], parts.rois, parts.labels
    ):
        positive = labels > 0
        assert bool(positive.any()) and size == 16
        torch.testing.assert_close(image_boxes, boxes)
        torch.testing.assert_close(boxes, rois[positive])
        assert torch.equal(gt_masks, target["masks"])
        assert torch.equal(target["labels"][matched], labels[positive])
        iou = box_iou(boxes, target["boxes"])
        assert bool((iou[torch.arange(len(boxes)), matched] >= 0.5).all())
        assert torch.equal(iou.argmax(1), matched)


def test_mask_weight_zero_gives_faster_rcnn_losses_and_masks_are_required(scenes):
    model = tiny_model(3).train()
    batch = batch_of(scenes, 2, 7)
    torch.manual_seed(4)
    losses = mask_rcnn_training_loss(model, batch, rois_per_image=16, mask_weight=0.0)
    torch.manual_seed(4)
    faster = faster_rcnn_training_loss(model.faster, batch, rois_per_image=16)
    assert losses["loss_mask"].item() == 0.0
    for name in FASTER_NAMES:
        torch.testing.assert_close(losses[name], faster[name])
    no_masks = detection_collate([MirroredScenes(scenes)[i] for i in (0, 1)])
    with pytest.raises(ValueError, match="masks"):
        mask_rcnn_training_loss(model, no_masks)
    with pytest.raises(ValueError, match="mask_weight"):
        mask_rcnn_training_loss(model, batch, mask_weight=-1.0)


def test_mirrored_mask_scenes_flip_masks_with_boxes(scenes):
    data = MirroredScenes(scenes, keep_masks=True)
    assert len(data) == 8
    image, target = data[0]
    mirror, mirrored = data[4]
    assert set(target) == {"boxes", "labels", "masks"} and target["masks"].dtype == torch.uint8
    torch.testing.assert_close(mirror, image.flip(-1))
    assert torch.equal(mirrored["masks"], target["masks"].flip(-1))
    for box, mask in zip(mirrored["boxes"], mirrored["masks"]):
        cols = torch.nonzero(mask.any(0)).flatten()
        assert float(box[0]) == float(cols.min()) and float(box[2]) == float(cols.max()) + 1
    with pytest.raises(IndexError):
        data[8]


def test_refactored_faster_rcnn_loss_gives_the_numbers_recorded_before_it(scenes):
    recorded = {  # faster_rcnn_training_loss before the split into faster_rcnn_training_parts
        "max": (0.6931509971618652, 0.006724134087562561, 1.3630707263946533, 0.4788508415222168),
        "align": (0.6931509971618652, 0.006724134087562561, 1.3670438528060913, 0.4788382947444916),
    }
    names = ("loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg")
    for pooling, expected in recorded.items():
        model = FasterRCNN.from_classifier(tiny_classifier(0), pooling=pooling).train()
        batch = detection_collate([MirroredScenes(scenes)[i] for i in (0, 5)])
        torch.manual_seed(1)
        losses = faster_rcnn_training_loss(model, batch, rois_per_image=16)
        for name, value in zip(names, expected):
            assert math.isclose(losses[name].item(), value, rel_tol=1e-5, abs_tol=1e-7), name


def test_train_mask_rcnn_lowers_the_mask_loss(tmp_path, monkeypatch, scenes):
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    model = tiny_model(4)
    two = torch.utils.data.Subset(MirroredScenes(scenes, keep_masks=True), [0, 1])
    history = train_mask_rcnn(
        model,
        two,
        steps=60,
        images_per_batch=2,
        lr=1e-2,
        progress=False,
        device="cpu",
        rois_per_image=16,
    )
    assert len(history.records) == 60 and history.finished
    for record in history.records:
        assert set(record["components"]) == FASTER_NAMES | {"loss_mask"}
    curve = [record["components"]["loss_mask"] for record in history.records]
    assert sum(curve[-10:]) / 10 < 0.8 * sum(curve[:10]) / 10, curve
