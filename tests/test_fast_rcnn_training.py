"""course_utils.detection.fast_rcnn_training: the losses, RoI sampling, the dataset, training."""

import pytest
import torch
import torch.nn.functional as F
from fast_rcnn_helpers import TinyScenes, proposals_around, scene, trained_like_classifier
from torchvision.ops import box_iou

from course_utils.detection.box_coding import decode_boxes
from course_utils.detection.fast_rcnn import BOX_WEIGHTS, FastRCNN
from course_utils.detection.fast_rcnn_training import (
    ProposalDataset,
    fast_rcnn_loss,
    fast_rcnn_training_loss,
    flip_boxes,
    sample_rois,
    smooth_l1_box_loss,
    train_fast_rcnn,
)

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


# --------------------------------------------------------------------------- training


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


def test_train_fast_rcnn_is_seeded_and_checkpointed(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    proposals = [proposals_around(scene(i)[1]["boxes"], 5, i) for i in range(3)]
    data = ProposalDataset(TinyScenes(), proposals)
    models = [FastRCNN.from_classifier(trained_like_classifier(4)) for _ in range(3)]
    losses = []
    for model, seed, checkpoint in zip(models, (0, 0, 1), ("a", None, None)):
        history = train_fast_rcnn(
            model,
            data,
            steps=2,
            images_per_batch=2,
            progress=False,
            rois_per_image=8,
            seed=seed,
            checkpoint=checkpoint,
        )
        losses.append(history.losses)
    assert losses[0] == losses[1] and losses[0] != losses[2]  # the seed picks batches and RoIs
    assert (tmp_path / "a.pt").exists()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.equal(a, b)
