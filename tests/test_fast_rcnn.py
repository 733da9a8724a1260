"""Fast R-CNN: the smooth L1 box loss, the multi-task loss, RoI sampling, the model built from a crop classifier."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_iou
from torchvision.ops.misc import FrozenBatchNorm2d

from course_utils.detection import fast_rcnn
from course_utils.detection.box_coding import decode_boxes
from course_utils.detection.classifiers import CropClassifier
from course_utils.detection.fast_rcnn import (
    BOX_WEIGHTS,
    FastRCNN,
    ProposalDataset,
    fast_rcnn_loss,
    fast_rcnn_training_loss,
    flip_boxes,
    sample_rois,
    smooth_l1_box_loss,
    to_inclusive,
    train_fast_rcnn,
    trunk_from_classifier,
)


def block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class LikeCropClassifier(nn.Module):
    """The structure of course_utils.detection.classifiers.CropClassifier: features (3 blocks + flatten) and head."""

    def __init__(self, num_classes: int = 4, crop_size: int = 32, width: int = 4):
        super().__init__()
        self.crop_size = crop_size
        self.features = nn.Sequential(
            block(3, width), block(width, 2 * width), block(2 * width, 4 * width), nn.Flatten()
        )
        self.head = nn.Sequential(
            nn.Dropout(0.1), nn.Linear(4 * width * (crop_size // 8) ** 2, num_classes)
        )

    def forward(self, x):
        return self.head(self.features(x))


def trained_like_classifier(seed: int = 0) -> LikeCropClassifier:
    """A classifier with non-trivial BatchNorm statistics (a few forward passes in train mode)."""
    torch.manual_seed(seed)
    model = LikeCropClassifier()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(8, 3, 32, 32))
    return model.eval()


def scene(seed: int, size: int = 64):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(3, size, size, generator=g)
    return image, {
        "boxes": torch.tensor([[4.0, 6.0, 26.0, 30.0], [30.0, 34.0, 60.0, 58.0]]),
        "labels": torch.tensor([1, 3]),
    }


def proposals_around(boxes: torch.Tensor, n: int, seed: int, size: float = 64.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = boxes.repeat_interleave(n, 0)
    sides = (base[:, 2:] - base[:, :2]).repeat(1, 2)
    out = (base + torch.randn(base.shape, generator=g) * sides * 0.3).clamp(0, size)
    x1, y1 = torch.minimum(out[:, 0], out[:, 2] - 2), torch.minimum(out[:, 1], out[:, 3] - 2)
    return torch.stack([x1, y1, out[:, 2], out[:, 3]], dim=1)


# --------------------------------------------------------------------------- losses


def test_smooth_l1_box_loss_matches_torchvision_style():
    g = torch.Generator().manual_seed(0)
    deltas, targets = torch.randn(12, 4, generator=g), torch.randn(12, 4, generator=g)
    labels = torch.tensor([0, 1, 0, 2, 0, 0, 3, 0, 1, 0, 0, 0])
    for beta in (1.0, 1 / 9, 2.0):
        expected = (
            F.smooth_l1_loss(deltas[labels > 0], targets[labels > 0], beta=beta, reduction="sum")
            / 12
        )
        torch.testing.assert_close(smooth_l1_box_loss(deltas, targets, labels, beta), expected)


def test_smooth_l1_by_hand_and_gradients_only_for_positives():
    deltas = torch.tensor([[0.5, 2.0, 0.0, 0.0], [9.0, 9.0, 9.0, 9.0]], requires_grad=True)
    targets = torch.zeros(2, 4)
    loss = smooth_l1_box_loss(deltas, targets, torch.tensor([1, 0]), beta=1.0)
    assert loss.item() == pytest.approx((0.5 * 0.25 + (2.0 - 0.5)) / 2)
    loss.backward()
    assert deltas.grad[1].abs().sum() == 0 and deltas.grad[0].abs().sum() > 0


def test_smooth_l1_is_zero_without_positives_or_rois():
    assert (
        smooth_l1_box_loss(
            torch.ones(3, 4), torch.zeros(3, 4), torch.zeros(3, dtype=torch.int64)
        ).item()
        == 0
    )
    assert (
        smooth_l1_box_loss(
            torch.zeros(0, 4), torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64)
        ).item()
        == 0
    )
    with pytest.raises(ValueError, match="beta"):
        smooth_l1_box_loss(
            torch.ones(1, 4), torch.zeros(1, 4), torch.ones(1, dtype=torch.int64), beta=0.0
        )
    with pytest.raises(ValueError):
        smooth_l1_box_loss(torch.ones(2, 4), torch.zeros(3, 4), torch.ones(2, dtype=torch.int64))


def test_fast_rcnn_loss_uses_the_true_class_deltas():
    logits = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([2, 0, 3])
    targets = torch.tensor([[0.1, 0.2, 0.3, 0.4], [5.0, 5.0, 5.0, 5.0], [-0.1, 0.0, 0.2, 0.0]])
    deltas = torch.full(
        (3, 4, 4), 100.0
    )  # every other class is far off: only the true class may count
    deltas[0, 2] = targets[0]
    deltas[2, 3] = targets[2] + 0.5
    losses = fast_rcnn_loss(logits, deltas, labels, targets, beta=1.0, box_weight=2.0)
    assert set(losses) == {"loss_classifier", "loss_box_reg"}
    torch.testing.assert_close(losses["loss_classifier"], F.cross_entropy(logits, labels))
    assert losses["loss_box_reg"].item() == pytest.approx(2.0 * 4 * 0.5 * 0.25 / 3)
    ignored = fast_rcnn_loss(logits, deltas, torch.tensor([2, -1, 3]), targets)
    torch.testing.assert_close(
        ignored["loss_classifier"], F.cross_entropy(logits[[0, 2]], labels[[0, 2]])
    )
    with pytest.raises(ValueError):
        fast_rcnn_loss(logits, deltas[:, :3], labels, targets)


# --------------------------------------------------------------------------- sampling RoIs


def test_sample_rois_fractions_and_targets():
    _, target = scene(0)
    g = torch.Generator().manual_seed(1)
    corner = torch.rand(60, 2, generator=g) * torch.tensor([18.0, 14.0]) + torch.tensor([34.0, 0.0])
    background = torch.cat(
        [corner, corner + torch.rand(60, 2, generator=g) * 8 + 4], dim=1
    )  # away from both
    proposals = torch.cat([proposals_around(target["boxes"], 40, 1), background])
    g = torch.Generator().manual_seed(2)
    rois, labels, targets = sample_rois(
        proposals,
        target["boxes"],
        target["labels"],
        num_samples=32,
        positive_fraction=0.25,
        bg_threshold=0.0,
        generator=g,
    )
    assert rois.shape == (32, 4) and labels.shape == (32,) and targets.shape == (32, 4)
    assert int((labels > 0).sum()) == 8 and set(labels.tolist()) <= {0, 1, 3}
    assert targets[labels == 0].abs().max() == 0
    positive = labels > 0
    decoded = decode_boxes(rois[positive], targets[positive], BOX_WEIGHTS)
    best = box_iou(decoded, target["boxes"]).max(dim=1).values
    torch.testing.assert_close(
        best, torch.ones_like(best), atol=1e-4, rtol=0
    )  # targets lead to a gt box


def test_sample_rois_includes_ground_truth_and_ignores_below_bg_threshold():
    _, target = scene(0)
    far = torch.tensor([[40.0, 0.0, 50.0, 10.0]] * 10)  # IoU 0 with both ground-truth boxes
    rois, labels, _ = sample_rois(
        far,
        target["boxes"],
        target["labels"],
        num_samples=16,
        bg_threshold=0.1,
        generator=torch.Generator().manual_seed(0),
    )
    assert len(rois) == 2 and labels.tolist() == [
        1,
        3,
    ]  # only the ground truth: the far boxes are ignored
    rois, labels, _ = sample_rois(
        far, target["boxes"], target["labels"], num_samples=16, bg_threshold=0.1, include_gt=False
    )
    assert len(rois) == 0


# --------------------------------------------------------------------------- the model


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
    """A 28x28-pixel RoI at stride 4 covers 8x8 cells pooled to 4x4 in 2x2 bins: exactly the classifier's
    last max-pooling layer, so Fast R-CNN (context 0) on a 32x32 image gives the classifier's logits."""
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


def test_training_loss_backpropagates():
    classifier = trained_like_classifier(3)
    model = FastRCNN.from_classifier(classifier)
    images, targets = zip(*(scene(s) for s in range(2)))
    proposals = [proposals_around(t["boxes"], 10, s) for s, t in enumerate(targets)]
    torch.manual_seed(0)
    losses = fast_rcnn_training_loss(
        model, (list(images), list(targets), proposals), rois_per_image=16, bg_threshold=0.0
    )
    total = sum(losses.values())
    total.backward()
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    assert model.bbox_pred.weight.grad.abs().sum() > 0
    assert next(model.trunk.parameters()).grad.abs().sum() > 0


# --------------------------------------------------------------------------- data


class TinyScenes(torch.utils.data.Dataset):
    def __len__(self):
        return 3

    def __getitem__(self, index):
        return scene(index)


def test_flip_boxes_and_proposal_dataset():
    boxes = torch.tensor([[1.0, 2.0, 5.0, 8.0]])
    assert flip_boxes(boxes, 10).tolist() == [[5.0, 2.0, 9.0, 8.0]]
    torch.testing.assert_close(flip_boxes(flip_boxes(boxes, 10), 10), boxes)
    proposals = [torch.tensor([[0.0, 0.0, 10.0, 20.0]])] * 3
    plain = ProposalDataset(TinyScenes(), proposals)
    flipped = ProposalDataset(TinyScenes(), proposals, hflip=True)
    assert len(plain) == 3 and len(flipped) == 6
    image, target, props = flipped[4]
    original_image, original_target, _ = plain[1]
    torch.testing.assert_close(image, original_image.flip(-1))
    torch.testing.assert_close(target["boxes"], flip_boxes(original_target["boxes"], 64))
    assert props.tolist() == [[54.0, 0.0, 64.0, 20.0]] and target["labels"].tolist() == [1, 3]
    images, targets, props = ProposalDataset.collate([flipped[0], flipped[5]])
    assert len(images) == len(targets) == len(props) == 2
    with pytest.raises(IndexError):
        flipped[6]
    with pytest.raises(ValueError, match="one proposal tensor per image"):
        ProposalDataset(TinyScenes(), proposals[:2])


def test_to_inclusive():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 4.0], [3.0, 3.0, 3.5, 3.2]])
    assert to_inclusive(boxes).tolist() == [[0.0, 0.0, 9.0, 3.0], [3.0, 3.0, 3.0, 3.0]]


def test_train_fast_rcnn_uses_the_given_box_loss(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    model = FastRCNN.from_classifier(trained_like_classifier(4))
    proposals = [proposals_around(scene(i)[1]["boxes"], 5, i) for i in range(3)]
    calls = []

    def box_loss(deltas, targets, labels, beta):
        calls.append(beta)
        return smooth_l1_box_loss(deltas, targets, labels, beta)

    history = train_fast_rcnn(
        model,
        ProposalDataset(TinyScenes(), proposals, hflip=True),
        steps=2,
        images_per_batch=2,
        progress=False,
        rois_per_image=8,
        bg_threshold=0.0,
        box_loss=box_loss,
        beta=0.5,
    )
    assert len(history.records) == 2 and calls == [0.5, 0.5]
    assert set(history.records[0]["components"]) == {"loss_classifier", "loss_box_reg"}


def test_roi_align_option_pools_without_rounding():
    classifier = trained_like_classifier(5)
    max_model = FastRCNN.from_classifier(classifier, context=0.0).eval()
    align_model = FastRCNN.from_classifier(classifier, context=0.0, pooling="align").eval()
    image = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(6))
    box = torch.tensor([[8.0, 8.0, 40.0, 40.0]])
    maps = max_model.feature_maps([image])
    from torchvision.ops import roi_align, roi_pool

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
    # "meta" stands in for cuda here: a model moved there must accept the CPU images and proposals a notebook
    # holds, and hand postprocessing tensors that are all on its own device
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
