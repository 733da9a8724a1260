"""course_utils.detection.proposal_labels: labelling proposals by IoU, mini-batches of them."""

import pytest
import torch
from rcnn_helpers import jittered, random_boxes
from torchvision.models.detection._utils import Matcher
from torchvision.ops import box_iou

from course_utils.detection.proposal_labels import label_proposals, sample_minibatch


def matcher_reference(proposals, gt_boxes, gt_labels, fg, bg):
    """The same labelling with torchvision's Matcher (high = fg, low = bg)."""
    matches = Matcher(fg, bg, allow_low_quality_matches=False)(box_iou(gt_boxes, proposals))
    labels = gt_labels[matches.clamp(min=0)].clone()
    labels[matches == Matcher.BETWEEN_THRESHOLDS] = 0
    labels[matches == Matcher.BELOW_LOW_THRESHOLD] = -1
    return labels


# --------------------------------------------------------------------------- label_proposals


@pytest.mark.parametrize("fg, bg", [(0.5, 0.1), (0.5, 0.0), (0.7, 0.3), (0.5, 0.5)])
def test_label_proposals_matches_torchvision_matcher(fg, bg):
    gt = random_boxes(6, 0)
    gt_labels = torch.tensor([1, 2, 3, 1, 2, 3])
    proposals = torch.cat([jittered(gt, 20, 1), random_boxes(50, 2)])
    labels, matched = label_proposals(proposals, gt, gt_labels, fg, bg)
    assert labels.dtype == matched.dtype == torch.int64
    torch.testing.assert_close(labels, matcher_reference(proposals, gt, gt_labels, fg, bg))
    iou = box_iou(proposals, gt)
    torch.testing.assert_close(iou.gather(1, matched[:, None])[:, 0], iou.max(dim=1).values)
    assert (
        {-1, 0, 1, 2, 3} >= set(labels.tolist())
        and (labels > 0).any()
        and ((labels == 0).any() or bg == fg)
    )


def test_label_proposals_by_hand():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    gt_labels = torch.tensor([3, 1])
    proposals = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],  # IoU 1 with gt 0 -> label 3
            [0.0, 0.0, 10.0, 20.0],  # IoU exactly 0.5 with gt 0 -> foreground (>=)
            [0.0, 0.0, 10.0, 40.0],  # IoU 0.25 -> background
            [40.0, 40.0, 50.0, 50.0],  # IoU 0 -> ignored (below bg 0.1)
            [21.0, 21.0, 30.0, 30.0],  # IoU 0.81 with gt 1 -> label 1
        ]
    )
    labels, matched = label_proposals(proposals, gt, gt_labels, 0.5, 0.1)
    assert labels.tolist() == [3, 3, 0, -1, 1]
    assert matched.tolist()[:3] == [0, 0, 0] and matched[4] == 1


def test_label_proposals_ties_go_to_the_lowest_index():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 20.0, 10.0]])
    proposal = torch.tensor([[5.0, 0.0, 15.0, 10.0]])  # IoU 1/3 with both
    _, matched = label_proposals(proposal, gt, torch.tensor([1, 2]), 0.3, 0.0)
    assert matched.tolist() == [0]
    labels, matched = label_proposals(proposal, gt.flip(0), torch.tensor([2, 1]), 0.3, 0.0)
    assert matched.tolist() == [0] and labels.tolist() == [2]


def test_label_proposals_without_ground_truth_or_proposals():
    proposals = random_boxes(4, 3)
    labels, matched = label_proposals(
        proposals, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), 0.5, 0.0
    )
    assert labels.tolist() == [0] * 4 and matched.tolist() == [-1] * 4
    labels, _ = label_proposals(
        proposals, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), 0.5, 0.1
    )
    assert labels.tolist() == [-1] * 4
    labels, matched = label_proposals(torch.zeros(0, 4), random_boxes(2, 4), torch.tensor([1, 2]))
    assert labels.shape == matched.shape == (0,)


def test_label_proposals_validates():
    ok, labels = random_boxes(2, 5), torch.tensor([1, 2])
    with pytest.raises(ValueError, match="bg_threshold"):
        label_proposals(ok, ok, labels, 0.3, 0.5)
    with pytest.raises(ValueError, match="fg_threshold"):
        label_proposals(ok, ok, labels, 1.5)
    with pytest.raises(ValueError, match="one entry per box"):
        label_proposals(ok, ok, torch.tensor([1]))
    with pytest.raises(TypeError):
        label_proposals(ok.long(), ok, labels)


# --------------------------------------------------------------------------- sample_minibatch


def test_sample_minibatch_fixed_fraction():
    labels = torch.tensor([1] * 50 + [2] * 30 + [0] * 500 + [-1] * 100)
    picked = sample_minibatch(labels, 128, 0.25, torch.Generator().manual_seed(0))
    assert len(picked) == 128 and len(torch.unique(picked)) == 128
    assert int((labels[picked] > 0).sum()) == 32 and int((labels[picked] == 0).sum()) == 96
    assert (labels[picked[:32]] > 0).all()


def test_sample_minibatch_few_positives_and_no_ignored():
    labels = torch.tensor([3] * 5 + [0] * 40 + [-1] * 200)
    picked = sample_minibatch(labels, 64, 0.25, torch.Generator().manual_seed(1))
    assert int((labels[picked] > 0).sum()) == 5
    assert len(picked) == 45 and not (labels[picked] < 0).any()


def test_sample_minibatch_is_reproducible_and_random():
    labels = torch.tensor([1] * 100 + [0] * 400)
    a = sample_minibatch(labels, 64, 0.25, torch.Generator().manual_seed(2))
    b = sample_minibatch(labels, 64, 0.25, torch.Generator().manual_seed(2))
    c = sample_minibatch(labels, 64, 0.25, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sample_minibatch_validates():
    labels = torch.tensor([1, 0, 0])
    with pytest.raises(TypeError, match="batch_size"):
        sample_minibatch(labels, 12.5)
    with pytest.raises(ValueError, match="positive_fraction"):
        sample_minibatch(labels, 4, 1.5)
    with pytest.raises(ValueError, match="1-D"):
        sample_minibatch(labels[None], 4)
