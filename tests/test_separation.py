"""touching_pairs and pairs_separated: which same-class objects touch, and whether a predicted
semantic map keeps them apart."""

import pytest
import torch

from course_utils.metrics.separation import pairs_separated, touching_pairs


def _squares(gap: int) -> torch.Tensor:
    """Two 4x4 squares side by side with ``gap`` empty columns between them, and a far one."""
    masks = torch.zeros(3, 12, 16, dtype=torch.uint8)
    masks[0, 2:6, 2:6] = 1
    masks[1, 2:6, 6 + gap : 10 + gap] = 1
    masks[2, 9:12, 0:3] = 1
    return masks


def test_touching_pairs_finds_only_same_class_neighbours():
    masks = _squares(gap=0)
    assert touching_pairs(masks, torch.tensor([1, 1, 1])) == [(0, 1)]
    assert touching_pairs(masks, torch.tensor([1, 2, 1])) == []


def test_touching_pairs_gap():
    masks = _squares(gap=2)
    labels = torch.tensor([1, 1, 1])
    assert touching_pairs(masks, labels) == []
    assert touching_pairs(masks, labels, gap=3) == [(0, 1)]


def test_diagonal_contact_counts_as_touching():
    masks = torch.zeros(2, 6, 6, dtype=torch.bool)
    masks[0, 0:2, 0:2] = True
    masks[1, 2:4, 2:4] = True
    assert touching_pairs(masks, torch.tensor([3, 3])) == [(0, 1)]


def test_pairs_separated_by_one_background_column():
    masks = _squares(gap=0)
    labels = torch.tensor([1, 1, 1])
    pairs = touching_pairs(masks, labels)
    merged = (masks[0] | masks[1]).long()  # class 1 everywhere on both squares
    assert pairs_separated(merged, masks, labels, pairs).tolist() == [False]
    split = merged.clone()
    split[:, 5] = 0  # one background column between them
    assert pairs_separated(split, masks, labels, pairs).tolist() == [True]


def test_pairs_separated_needs_both_objects_found():
    masks = _squares(gap=0)
    labels = torch.tensor([1, 1, 1])
    only_first = masks[0].long()
    assert pairs_separated(only_first, masks, labels, [(0, 1)]).tolist() == [False]


def test_class_of_label_maps_instance_labels_to_map_ids():
    masks = _squares(gap=0)
    labels = torch.tensor([2, 2, 2])
    split = torch.zeros(12, 16, dtype=torch.long)
    split[2:6, 2:5] = 6
    split[2:6, 6:10] = 6
    kept = pairs_separated(split, masks, labels, [(0, 1)], class_of_label=lambda k: k + 4)
    assert kept.tolist() == [True]
    assert pairs_separated(split, masks, labels, [(0, 1)]).tolist() == [False]


def test_errors_name_what_was_expected():
    masks = _squares(gap=0)
    with pytest.raises(ValueError, match="one entry per mask"):
        touching_pairs(masks, torch.tensor([1, 1]))
    with pytest.raises(ValueError, match=r"\(G, H, W\)"):
        touching_pairs(masks[0], torch.tensor([1]))
    with pytest.raises(ValueError, match="gap"):
        touching_pairs(masks, torch.tensor([1, 1, 1]), gap=0)
    with pytest.raises(ValueError, match="must match"):
        pairs_separated(torch.zeros(5, 5, dtype=torch.long), masks, torch.tensor([1, 1, 1]), [])


def _disks_map():
    """A (12, 20) map: class 5 on two touching blocks and one apart, class 6 on one block."""
    semantic = torch.zeros(12, 20, dtype=torch.int64)
    semantic[1:5, 1:5] = 5
    semantic[1:5, 5:9] = 5  # touches the first block: one region
    semantic[8:11, 12:15] = 5
    semantic[8:11, 1:4] = 6
    return semantic


def test_connected_instances_gives_one_instance_per_region_of_each_class():
    from course_utils.metrics import connected_instances

    masks, labels = connected_instances(_disks_map(), lambda label: label + 4, (1, 2, 3))
    assert labels.tolist() == [1, 1, 2]
    assert masks.dtype == torch.bool and masks.shape == (3, 12, 20)
    assert masks[0].sum() == 32 and masks[1].sum() == 9 and masks[2].sum() == 9
    diagonal = torch.zeros(4, 4, dtype=torch.int64)
    diagonal[0, 0] = diagonal[1, 1] = 1  # 4-connected: two regions
    assert len(connected_instances(diagonal, lambda label: label, (1,))[0]) == 2
    big = connected_instances(_disks_map(), lambda label: label + 4, (1, 2, 3), min_pixels=10)
    assert big[1].tolist() == [1] and big[0][0].sum() == 32
    with pytest.raises(ValueError, match="min_pixels"):
        connected_instances(_disks_map(), int, (1,), min_pixels=0)
    empty_masks, empty_labels = connected_instances(torch.zeros(3, 4, dtype=torch.int64), int, (1,))
    assert empty_masks.shape == (0, 3, 4) and empty_labels.shape == (0,)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        connected_instances(torch.zeros(1, 3, 4), int, (1,))


def test_covering_instances_picks_the_same_class_prediction_covering_most():
    from course_utils.metrics import covering_instances

    truth = torch.zeros(2, 10, 10, dtype=torch.uint8)
    truth[0, 0:4, 0:4] = 1
    truth[1, 0:4, 4:8] = 1
    labels = torch.tensor([1, 1])
    merged = (truth[0] | truth[1])[None].bool()  # one region over both: covers each fully
    assert covering_instances(merged, torch.tensor([1]), truth, labels).tolist() == [0, 0]
    both = truth.bool()
    assert covering_instances(both, torch.tensor([1, 1]), truth, labels).tolist() == [0, 1]
    assert covering_instances(both, torch.tensor([2, 1]), truth, labels).tolist() == [-1, 1]
    half = truth.clone()
    half[0, 2:4] = 0  # covers 8 of the first instance's 16 pixels
    assert covering_instances(half, torch.tensor([1, 1]), truth, labels).tolist() == [0, 1]
    assert covering_instances(half, torch.tensor([1, 1]), truth, labels, 0.6).tolist() == [-1, 1]
    probabilities = truth.float() * 0.9
    assert covering_instances(probabilities, torch.tensor([1, 1]), truth, labels).tolist() == [0, 1]
    nothing = covering_instances(torch.zeros(0, 10, 10), torch.zeros(0), truth, labels)
    assert nothing.tolist() == [-1, -1]
    with pytest.raises(ValueError, match="size of instance_masks"):
        covering_instances(torch.zeros(1, 5, 5), torch.tensor([1]), truth, labels)
    with pytest.raises(ValueError, match="min_cover"):
        covering_instances(both, torch.tensor([1, 1]), truth, labels, 0.0)
    with pytest.raises(ValueError, match="one label per mask"):
        covering_instances(both, torch.tensor([1]), truth, labels)
