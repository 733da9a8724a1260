"""Unit tests for course_utils.segmentation.semantic_maps: predicted class ids and class edges."""

import pytest
import torch
from torch import nn

from course_utils.segmentation import semantic_maps


class _FixedLogits(nn.Module):
    """Logits (B, 3, H, W) whose argmax is known; records the mode it ran in."""

    def __init__(self):
        super().__init__()
        self.modes = []

    def forward(self, images):
        self.modes.append(self.training)
        logits = torch.zeros(images.shape[0], 3, *images.shape[-2:])
        logits[:, 2, :, : images.shape[-1] // 2] = 1.0  # left half: class 2
        logits[:, 1, :, images.shape[-1] // 2 :] = 1.0  # right half: class 1
        return logits


def test_predict_semantic_is_the_argmax_in_eval_mode():
    model = _FixedLogits().train()
    labels = semantic_maps.predict_semantic(model, torch.rand(2, 3, 4, 6))
    assert labels.shape == (2, 4, 6) and labels.dtype == torch.int64
    assert (labels[..., :3] == 2).all() and (labels[..., 3:] == 1).all()
    assert model.modes == [False] and model.training  # ran in eval mode, mode restored
    model.eval()
    semantic_maps.predict_semantic(model, torch.rand(1, 3, 4, 6))
    assert not model.training


def test_boundary_mask_marks_pixels_near_class_edges():
    semantic = torch.zeros(10, 12, dtype=torch.int64)
    semantic[:, 6:] = 3  # a vertical edge between columns 5 and 6
    mask = semantic_maps.boundary_mask(semantic, width=2)
    assert mask.dtype == torch.bool and mask.shape == semantic.shape
    assert mask[:, 4:8].all() and not mask[:, :4].any() and not mask[:, 8:].any()
    batch = semantic_maps.boundary_mask(torch.stack([semantic, torch.ones_like(semantic)]), width=1)
    assert batch.shape == (2, 10, 12)
    assert batch[0, :, 5:7].all() and batch[0].sum() == 20 and not batch[1].any()


def test_boundary_mask_counts_ignored_pixels_as_a_class_and_not_the_border():
    semantic = torch.ones(9, 9, dtype=torch.uint8)
    semantic[4, 4] = 255
    mask = semantic_maps.boundary_mask(semantic, width=1)
    expected = torch.zeros(9, 9, dtype=torch.bool)
    expected[3:6, 3:6] = True
    assert torch.equal(mask, expected)


def test_boundary_mask_rejects_bad_input():
    semantic = torch.zeros(4, 4, dtype=torch.int64)
    with pytest.raises(TypeError):
        semantic_maps.boundary_mask(semantic.float())
    with pytest.raises(TypeError):
        semantic_maps.boundary_mask(semantic.bool())
    with pytest.raises(ValueError):
        semantic_maps.boundary_mask(semantic[0])
    with pytest.raises(ValueError, match="width"):
        semantic_maps.boundary_mask(semantic, width=0)
    with pytest.raises(TypeError, match="width"):
        semantic_maps.boundary_mask(semantic, width=1.5)


def test_boundary_accuracy_scores_only_the_pixels_near_an_edge():
    semantic = torch.zeros(8, 8, dtype=torch.int64)
    semantic[:, 4:] = 1  # one vertical edge between columns 3 and 4
    assert semantic_maps.boundary_accuracy(semantic.clone(), semantic, width=1) == 1.0
    far_wrong = semantic.clone()
    far_wrong[:, 0] = 1  # wrong, but 3 pixels from the edge
    assert semantic_maps.boundary_accuracy(far_wrong, semantic, width=1) == 1.0
    near_wrong = semantic.clone()
    near_wrong[:, 3] = 1  # wrong on one of the 2 columns within 1 pixel of the edge (3 and 4)
    assert semantic_maps.boundary_accuracy(near_wrong, semantic, width=1) == pytest.approx(0.5)
    ignored = semantic.clone()
    ignored[:, 3] = 255  # the wrong column, ignored: not counted
    assert semantic_maps.boundary_accuracy(near_wrong, ignored, width=1) == 1.0


def test_boundary_accuracy_rejects_what_it_cannot_score():
    semantic = torch.zeros(8, 8, dtype=torch.int64)
    semantic[:, 4:] = 1
    with pytest.raises(ValueError, match="same"):
        semantic_maps.boundary_accuracy(semantic[None], semantic)
    with pytest.raises(TypeError, match="class ids"):
        semantic_maps.boundary_accuracy(semantic.float(), semantic)
    with pytest.raises(ValueError, match="no class boundary"):
        semantic_maps.boundary_accuracy(semantic, torch.zeros_like(semantic))
