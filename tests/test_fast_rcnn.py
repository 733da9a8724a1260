"""course_utils.detection.fast_rcnn: the trunk of a crop classifier, RoI pooling, the model."""

import pytest
import torch
import torch.nn.functional as F
from fast_rcnn_helpers import proposals_around, scene, trained_like_classifier
from torch import nn
from torchvision.ops import roi_align, roi_pool
from torchvision.ops.misc import FrozenBatchNorm2d

from course_utils.detection import fast_rcnn
from course_utils.detection.classifiers import CropClassifier
from course_utils.detection.fast_rcnn import FastRCNN, to_inclusive, trunk_from_classifier


def test_trunk_replaces_the_last_max_pool_and_freezes_batchnorm():
    classifier = trained_like_classifier()
    trunk, scale, pooled = trunk_from_classifier(classifier)
    assert scale == 0.25 and pooled == 4
    assert sum(isinstance(m, nn.MaxPool2d) for m in trunk.modules()) == 2
    assert not any(isinstance(m, nn.BatchNorm2d) for m in trunk.modules())
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in trunk.modules()) == 3
    assert trunk(torch.rand(1, 3, 64, 48)).shape == (1, 16, 16, 12)
    first_conv = next(m for m in trunk.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.weight.data_ptr() != classifier.features[0][0].weight.data_ptr()  # a copy
    trainable, _, _ = trunk_from_classifier(classifier, freeze_batchnorm=False)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in trainable.modules()) == 3
    with pytest.raises(TypeError):
        trunk_from_classifier(nn.Linear(2, 2))


def test_roi_pooling_a_crop_reproduces_the_classifier():
    """A 28x28-pixel RoI at stride 4 covers 8x8 cells pooled to 4x4 in 2x2 bins: exactly the
    classifier's last max-pooling layer, so Fast R-CNN (context 0) on a 32x32 image gives the
    classifier's logits."""
    classifier = trained_like_classifier(1)
    model = FastRCNN.from_classifier(classifier, context=0.0).eval()
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    rois = [torch.tensor([[0.0, 0.0, 28.0, 28.0]])] * 2
    logits, deltas = model(list(images), rois)
    torch.testing.assert_close(logits, classifier(images), atol=1e-5, rtol=1e-5)
    assert deltas.shape == (2, 4, 4)


def test_forward_detect_and_multiscale():
    classifier = trained_like_classifier(2)
    images, targets = zip(*(scene(s) for s in range(2)))
    proposals = [proposals_around(t["boxes"], 6, s) for s, t in enumerate(targets)]
    model = FastRCNN.from_classifier(classifier, score_threshold=0.0)
    logits, deltas = model(list(images), proposals)
    assert logits.shape == (24, 4) and deltas.shape == (24, 4, 4)
    model.train()
    detections = model.detect(list(images), proposals)
    assert (
        model.training
        and len(detections) == 2
        and set(detections[0]) == {"boxes", "scores", "labels"}
    )
    assert detections[1]["boxes"].shape[1] == 4 and (detections[1]["labels"] >= 1).all()

    pyramid = FastRCNN.from_classifier(classifier, scales=(1.0, 0.5))
    pyramid.load_state_dict(model.state_dict())
    pyramid.eval()
    model.eval()
    small = [torch.tensor([[10.0, 10.0, 30.0, 30.0]])]  # grown to 30 px: closest to 32 at scale 1
    big = torch.tensor([[0.0, 0.0, 60.0, 60.0]])  # grown to 90 px: 45 px at scale 0.5
    assert pyramid.roi_levels(torch.cat([small[0] * 1.5 - 5, big * 1.5])).tolist() == [0, 1]
    torch.testing.assert_close(pyramid([images[0]], small)[0], model([images[0]], small)[0])
    shrunk = F.interpolate(
        images[0][None], scale_factor=0.5, mode="bilinear", align_corners=False, antialias=True
    )
    expected = model(shrunk, [big / 2])[0]
    torch.testing.assert_close(pyramid([images[0]], [big])[0], expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="scales"):
        FastRCNN.from_classifier(classifier, scales=())
    with pytest.raises(ValueError, match="same size"):
        model([torch.rand(3, 32, 32), torch.rand(3, 40, 32)], [torch.zeros(0, 4)] * 2)


def test_to_inclusive():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 4.0], [3.0, 3.0, 3.5, 3.2]])
    assert to_inclusive(boxes).tolist() == [[0.0, 0.0, 9.0, 3.0], [3.0, 3.0, 3.0, 3.0]]


def test_roi_align_option_pools_without_rounding():
    classifier = trained_like_classifier(5)
    max_model = FastRCNN.from_classifier(classifier, context=0.0).eval()
    align_model = FastRCNN.from_classifier(classifier, context=0.0, pooling="align").eval()
    image = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(6))
    box = torch.tensor([[8.0, 8.0, 40.0, 40.0]])
    maps = max_model.feature_maps([image])
    torch.testing.assert_close(
        align_model.pool(maps, [box]),
        roi_align(maps[0], [box], 4, spatial_scale=0.25, sampling_ratio=2, aligned=True),
    )
    torch.testing.assert_close(
        max_model.pool(maps, [box]), roi_pool(maps[0], [to_inclusive(box)], 4, 0.25)
    )
    shifted = box + 1.0  # less than half a cell: RoI max pooling rounds it away, RoIAlign does not
    assert torch.equal(max_model.pool(maps, [shifted]), max_model.pool(maps, [box]))
    assert not torch.equal(align_model.pool(maps, [shifted]), align_model.pool(maps, [box]))
    with pytest.raises(ValueError, match="pooling"):
        FastRCNN.from_classifier(classifier, pooling="avg")


def test_cpu_images_and_proposals_go_to_the_models_device(monkeypatch):
    # "meta" stands in for cuda here: a model moved there must accept the CPU images and proposals
    # a notebook holds, and hand postprocessing tensors that are all on its own device
    model = FastRCNN.from_classifier(CropClassifier(num_classes=4, crop_size=32)).to("meta")
    images, proposals = (
        [torch.rand(3, 64, 64)],
        [torch.tensor([[4.0, 4.0, 30.0, 30.0], [0.0, 0.0, 20.0, 40.0]])],
    )
    logits, deltas = model(images, proposals)
    assert logits.device.type == "meta" and logits.shape == (2, 4) and deltas.shape == (2, 4, 4)
    seen = []

    def spy(*args, **kwargs):
        seen.extend(arg.device.type for arg in args if isinstance(arg, torch.Tensor))
        return {}

    monkeypatch.setattr(fast_rcnn, "postprocess_detections", spy)
    assert model.detect(images, proposals) == [{}]
    assert seen == ["meta", "meta", "meta"]


# ---------------------------------------------------------------- the head hook (head_fn)


def _pre_hook_classify(model: FastRCNN, maps, proposals):
    """What FastRCNN.classify computed before the head became a function."""
    pooled = model.dropout(model.pool(maps, proposals).flatten(1))
    return model.cls_score(pooled), model.bbox_pred(pooled).reshape(-1, model.num_classes, 4)


def test_default_head_is_fast_rcnn_head_with_the_same_numbers_and_keys():
    """The hook changes nothing by default: same parameters and state_dict keys, and in train
    mode (dropout active) the same outputs and gradients for the same seed."""
    classifier = trained_like_classifier(7)
    model = FastRCNN.from_classifier(classifier, dropout=0.5)
    assert model.head_fn is fast_rcnn.fast_rcnn_head
    head_keys = [k for k in model.state_dict() if not k.startswith("trunk.")]
    assert head_keys == ["cls_score.weight", "cls_score.bias", "bbox_pred.weight", "bbox_pred.bias"]
    images, targets = zip(*(scene(s) for s in range(2)))
    proposals = [proposals_around(targets[0]["boxes"], 3, 0), torch.zeros(0, 4)]
    outputs, grads = [], []
    forwards = (
        lambda: model(list(images), proposals),
        lambda: _pre_hook_classify(model, model.feature_maps(list(images)), proposals),
    )
    for forward in forwards:
        model.zero_grad()
        torch.manual_seed(11)
        logits, deltas = forward()
        (logits.sum() + deltas.square().sum()).backward()
        outputs.append((logits.detach(), deltas.detach()))
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    assert outputs[0][0].shape == (6, 4) and outputs[0][1].shape == (6, 4, 4)
    for a, b in zip(*outputs):
        assert torch.equal(a, b)
    assert len(grads[0]) == len(grads[1]) > 4
    for a, b in zip(*grads):
        assert torch.equal(a, b)


def test_head_fn_runs_with_the_models_own_layers():
    """A student's head (FastRCNN(..., head_fn=...), also through from_classifier) is called
    with the model's pool and layers: same outputs, same state_dict keys; refused if not
    callable."""
    classifier = trained_like_classifier(8)
    calls = []

    def my_head(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes):
        calls.append((pool, dropout, cls_score, bbox_pred, num_classes))
        x = dropout(torch.flatten(pool(maps, proposals), start_dim=1))
        return cls_score(x), torch.stack(bbox_pred(x).split(4, dim=1), dim=1)

    model = FastRCNN.from_classifier(classifier).eval()
    mine = FastRCNN.from_classifier(classifier, head_fn=my_head).eval()
    mine.load_state_dict(model.state_dict())
    assert list(mine.state_dict()) == list(model.state_dict())
    images, targets = zip(*(scene(s) for s in range(2)))
    proposals = [proposals_around(t["boxes"], 2, s) for s, t in enumerate(targets)]
    for a, b in zip(mine(list(images), proposals), model(list(images), proposals)):
        torch.testing.assert_close(a, b)
    pool, dropout, cls_score, bbox_pred, classes = calls[0]
    assert pool == mine.pool and dropout is mine.dropout and classes == 4
    assert cls_score is mine.cls_score and bbox_pred is mine.bbox_pred
    detections = mine.detect(list(images), proposals)
    assert len(detections) == 2 and len(calls) == 2
    with pytest.raises(TypeError, match="head_fn"):
        FastRCNN.from_classifier(classifier, head_fn="fast_rcnn_head")
