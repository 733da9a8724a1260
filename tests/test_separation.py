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
