"""course_utils.detection.rpn: the region proposal network's head, proposals, targets and loss."""

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection import rpn as tv_rpn
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import box_iou

from course_utils.detection.anchors import IGNORED, NEGATIVE, anchor_boxes
from course_utils.detection.box_coding import decode_boxes
from course_utils.detection.rpn import (
    RPN_BOX_BETA,
    RPNHead,
    flatten_rpn_outputs,
    init_rpn_head,
    rpn_loss,
    rpn_proposals,
    rpn_targets,
)

# --------------------------------------------------------------------------- the head


def test_rpn_head_equals_torchvisions_with_the_same_weights():
    torch.manual_seed(0)
    head = RPNHead(8, 3)
    for parameter in head.parameters():  # non-zero biases, so that a missing one shows
        parameter.data.normal_()
    reference = tv_rpn.RPNHead(8, 3)
    reference.load_state_dict(head.state_dict())  # torchvision renames conv.* to conv.0.0.*
    features = torch.randn(2, 8, 5, 7)
    objectness, deltas = head(features)
    assert objectness.shape == (2, 3, 5, 7) and deltas.shape == (2, 12, 5, 7)
    expected_objectness, expected_deltas = reference([features])
    torch.testing.assert_close(objectness, expected_objectness[0])
    torch.testing.assert_close(deltas, expected_deltas[0])


def test_rpn_head_init_is_the_papers():
    torch.manual_seed(1)
    head = RPNHead(32, 9)
    convs = [head.conv, head.cls_logits, head.bbox_pred]
    for conv in convs:
        assert conv.weight.std().item() == pytest.approx(0.01, rel=0.2)
        assert conv.weight.mean().abs().item() < 0.003
        assert conv.bias.abs().max().item() == 0
    other = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1))
    assert init_rpn_head(other) is other
    assert all(layer.bias.abs().max() == 0 for layer in other if hasattr(layer, "bias"))
    with pytest.raises(ValueError, match="num_anchors"):
        RPNHead(8, 0)


def test_flatten_puts_anchor_t_of_cell_i_j_at_row_i_w_plus_j_times_k_plus_t():
    batch, k, height, width = 2, 3, 4, 5
    b, t, i, j = torch.meshgrid(
        *(torch.arange(n) for n in (batch, k, height, width)), indexing="ij"
    )
    code = (1000 * b + 100 * t + 10 * i + j).float()  # (B, k, h, w)
    channel = torch.arange(4).view(1, 1, 4, 1, 1)
    deltas = (code[:, :, None] * 10 + channel).reshape(batch, 4 * k, height, width)
    scores, boxes = flatten_rpn_outputs(code, deltas)
    assert scores.shape == (batch, height * width * k) and boxes.shape == (
        batch,
        height * width * k,
        4,
    )
    for b, t, i, j in [(0, 0, 0, 1), (1, 2, 3, 4), (0, 1, 2, 0), (1, 0, 1, 3)]:
        row = (i * width + j) * k + t
        assert scores[b, row].item() == code[b, t, i, j].item()
        assert boxes[b, row].tolist() == [code[b, t, i, j].item() * 10 + c for c in range(4)]
    # the same order as anchor_boxes: the anchor of that row is template t at cell (i, j)
    anchors = anchor_boxes((height, width), 8, (16,), (0.5, 1.0, 2.0))
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    assert centres[(3 * width + 4) * k + 2].tolist() == [4 * 8.0, 3 * 8.0]


def test_flatten_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="4k"):
        flatten_rpn_outputs(torch.zeros(1, 3, 4, 4), torch.zeros(1, 8, 4, 4))
    with pytest.raises(ValueError):
        flatten_rpn_outputs(torch.zeros(3, 4, 4), torch.zeros(12, 4, 4))


# --------------------------------------------------------------------------- proposals


def torchvision_filter(anchors, objectness, deltas, image_size, pre, post, nms_threshold):
    """RegionProposalNetwork.filter_proposals for one image and one feature level (testing)."""
    network = tv_rpn.RegionProposalNetwork(
        AnchorGenerator(),
        tv_rpn.RPNHead(1, 1),
        fg_iou_thresh=0.7,
        bg_iou_thresh=0.3,
        batch_size_per_image=256,
        positive_fraction=0.5,
        pre_nms_top_n={"training": 1, "testing": pre},
        post_nms_top_n={"training": 1, "testing": post},
        nms_thresh=nms_threshold,
    ).eval()
    proposals = BoxCoder((1.0, 1.0, 1.0, 1.0)).decode(deltas, [anchors]).view(1, -1, 4)
    boxes, scores = network.filter_proposals(
        proposals, objectness.view(-1, 1), [image_size], [len(anchors)]
    )
    return boxes[0], scores[0]


def random_rpn_outputs(seed: int, feature_size=(6, 8), stride=8):
    g = torch.Generator().manual_seed(seed)
    anchors = anchor_boxes(feature_size, stride, (16, 32, 64), (0.5, 1.0, 2.0))
    objectness = torch.randn(len(anchors), generator=g) * 2
    deltas = torch.randn(len(anchors), 4, generator=g) * 0.3
    return anchors, objectness, deltas


@pytest.mark.parametrize(
    "seed, pre, post, nms_threshold",
    [(0, 1000, 1000, 0.7), (1, 100, 20, 0.7), (2, 50, 300, 0.5), (3, 200, 10, 0.3)],
)
def test_rpn_proposals_equal_torchvisions_filter_proposals(seed, pre, post, nms_threshold):
    anchors, objectness, deltas = random_rpn_outputs(seed)
    image_size = (48, 64)  # (H, W), not square: clipping must not mix them up
    boxes, scores = rpn_proposals(
        anchors, objectness, deltas, image_size, pre, post, nms_threshold=nms_threshold
    )
    expected_boxes, expected_scores = torchvision_filter(
        anchors, objectness, deltas, image_size, pre, post, nms_threshold
    )
    assert len(boxes) > 0
    torch.testing.assert_close(boxes, expected_boxes)
    torch.testing.assert_close(scores, expected_scores)


@pytest.mark.parametrize("seed", range(3))
def test_rpn_proposals_are_clipped_sorted_few_and_apart(seed):
    anchors, objectness, deltas = random_rpn_outputs(seed)
    boxes, scores = rpn_proposals(anchors, objectness, deltas, (40, 64), 300, 25, 0.6)
    assert len(boxes) == len(scores) == 25
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= 64).all() and (boxes[:, 3] <= 40).all()
    assert boxes[:, 3].max() == 40  # the big anchors stick out at the bottom: they were clipped
    assert (boxes[:, 2:] > boxes[:, :2]).all()
    assert (scores[:-1] >= scores[1:]).all() and (scores > 0).all() and (scores < 1).all()
    assert scores[0].item() == pytest.approx(torch.sigmoid(objectness.max()).item())
    iou = box_iou(boxes, boxes)
    assert iou.triu(diagonal=1).max() <= 0.6
    ranked = torch.sigmoid(objectness).sort(descending=True).values
    assert torch.isin(scores, ranked[:300]).all()  # only the pre_nms_top_n best anchors


def test_rpn_proposals_drop_tiny_boxes_and_check_shapes():
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [70.0, 0.0, 80.0, 10.0]])  # 2nd: off image
    boxes, scores = rpn_proposals(anchors, torch.tensor([0.0, 5.0]), torch.zeros(2, 4), (32, 64))
    assert boxes.tolist() == [[0.0, 0.0, 10.0, 10.0]] and scores.tolist() == [0.5]
    with pytest.raises(ValueError, match="objectness"):
        rpn_proposals(anchors, torch.zeros(3), torch.zeros(2, 4), (32, 32))
    with pytest.raises(ValueError, match="post_nms_top_n"):
        rpn_proposals(anchors, torch.zeros(2), torch.zeros(2, 4), (32, 32), post_nms_top_n=0)


# --------------------------------------------------------------------------- training


def test_rpn_targets_label_and_encode_the_matched_boxes():
    anchors = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],  # IoU 0.81 with gt 0
            [30.0, 30.0, 50.0, 50.0],  # exactly gt 1
            [0.0, 0.0, 10.0, 20.0],  # IoU 0.41 with gt 0: ignored
            [60.0, 0.0, 64.0, 4.0],  # background
        ]
    )
    gt = torch.tensor([[0.0, 0.0, 9.0, 9.0], [30.0, 30.0, 50.0, 50.0]])
    labels, targets = rpn_targets(anchors, gt)
    assert labels.tolist() == [1.0, 1.0, -1.0, 0.0]
    assert targets[2:].abs().max() == 0 and targets[1].abs().max() < 1e-6
    torch.testing.assert_close(decode_boxes(anchors[:2], targets[:2]), gt)
    calls = []

    def match_fn(anchors, gt_boxes, high, low):
        calls.append((high, low))
        return torch.tensor([NEGATIVE, 0, IGNORED, 1])

    labels, targets = rpn_targets(anchors, gt, high=0.6, low=0.2, match_fn=match_fn)
    assert calls == [(0.6, 0.2)] and labels.tolist() == [0.0, 1.0, -1.0, 1.0]
    torch.testing.assert_close(decode_boxes(anchors[[1, 3]], targets[[1, 3]]), gt)
    labels, targets = rpn_targets(anchors, torch.zeros(0, 4))
    assert labels.tolist() == [0.0] * 4 and targets.abs().max() == 0


def random_loss_inputs(seed: int, batch: int = 2, anchors: int = 200):
    """(objectness (B, A), deltas (B, A, 4), labels (B, A) 1 / 0 / -1, targets (B, A, 4))."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(-1, 2, (batch, anchors), generator=g).float()
    labels[:, :3] = torch.tensor([1.0, 0.0, -1.0])  # every kind in every image
    objectness = torch.randn(batch, anchors, generator=g)
    deltas = torch.randn(batch, anchors, 4, generator=g)
    targets = torch.randn(batch, anchors, 4, generator=g) * (labels == 1)[..., None]
    return objectness, deltas, labels, targets


@pytest.mark.parametrize("batch_size, fraction", [(256, 0.5), (32, 0.5), (20, 0.25)])
def test_rpn_loss_equals_torchvisions_compute_loss(batch_size, fraction):
    objectness, deltas, labels, targets = random_loss_inputs(int(batch_size * fraction))
    network = tv_rpn.RegionProposalNetwork(
        AnchorGenerator(), tv_rpn.RPNHead(1, 1), 0.7, 0.3, batch_size, fraction, {}, {}, 0.7
    )
    torch.manual_seed(5)
    losses = rpn_loss(objectness, deltas, labels, targets, batch_size, fraction)
    torch.manual_seed(5)  # the same draws: randperm of the positives, then of the negatives
    expected_objectness, expected_box = network.compute_loss(
        objectness.reshape(-1, 1), deltas.reshape(-1, 4), list(labels), list(targets)
    )
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg"}
    torch.testing.assert_close(losses["loss_objectness"], expected_objectness)
    torch.testing.assert_close(losses["loss_rpn_box_reg"], expected_box)


def test_rpn_loss_by_hand_when_every_anchor_is_sampled():
    labels = torch.tensor([[1.0, 0.0, -1.0, 0.0, 1.0, 0.0]])
    objectness = torch.tensor([[0.5, -1.0, 40.0, 2.0, -0.3, 0.0]], requires_grad=True)
    deltas = torch.zeros(1, 6, 4)
    deltas[0, 0] = torch.tensor([0.05, 0.0, 1.0, 0.0])  # |d| 0.05 < 1/9: quadratic; 1: linear
    deltas[0, 2] = 50.0  # ignored: must not count
    targets = torch.zeros(1, 6, 4)
    losses = rpn_loss(objectness, deltas, labels, targets)
    sampled = [0, 1, 3, 4, 5]
    expected_bce = F.binary_cross_entropy_with_logits(objectness[0, sampled], labels[0, sampled])
    torch.testing.assert_close(losses["loss_objectness"], expected_bce)
    beta = RPN_BOX_BETA
    expected_box = (0.5 * 0.05**2 / beta + (1.0 - 0.5 * beta)) / 5
    assert losses["loss_rpn_box_reg"].item() == pytest.approx(expected_box, rel=1e-5)
    losses["loss_objectness"].backward()
    assert objectness.grad[0, 2] == 0 and (objectness.grad[0, sampled] != 0).all()


def test_rpn_loss_samples_at_most_the_positive_fraction():
    labels = torch.tensor([[1.0] * 10 + [0.0] * 10])
    objectness = torch.tensor([[0.0] * 10 + [-50.0] * 10])  # loss log 2 per positive, 0 otherwise
    deltas = torch.zeros(1, 20, 4)
    deltas[0, :10, 0] = 2.0  # smooth L1 2 - 1/18 per sampled positive
    targets = torch.zeros(1, 20, 4)
    for fraction, positives in ((0.5, 4), (0.25, 2)):
        torch.manual_seed(0)
        losses = rpn_loss(objectness, deltas, labels, targets, 8, fraction)
        per_positive = 2.0 - 0.5 * RPN_BOX_BETA
        assert losses["loss_rpn_box_reg"].item() == pytest.approx(positives * per_positive / 8)
        expected = positives * torch.log(torch.tensor(2.0)).item() / 8
        assert losses["loss_objectness"].item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="must match"):
        rpn_loss(objectness, deltas, labels[:, :5], targets)
