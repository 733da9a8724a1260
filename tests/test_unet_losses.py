"""U-Net's losses (course_utils.segmentation.unet_losses) do what their docstrings say: the paper's
border weights, class balancing, the weighted cross-entropy and the soft Dice loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_utils.data.scenes import SceneConfig, generate_scene
from course_utils.segmentation.unet_losses import (
    border_distances,
    border_weight_map,
    class_balance_weights,
    dice_loss,
    weighted_cross_entropy,
)


def _two_squares() -> torch.Tensor:
    """Two 6x6 squares on a 12x16 canvas, a 1-pixel gap (column 8) between them."""
    masks = torch.zeros(2, 12, 16, dtype=torch.bool)
    masks[0, 3:9, 2:8] = True
    masks[1, 3:9, 9:15] = True
    return masks


def _brute_force_weights(masks: torch.Tensor, w0: float, sigma: float) -> torch.Tensor:
    """Equation 2 from every pixel's distance to every object pixel (torch.cdist), float64."""
    masks = masks.bool()
    _, height, width = masks.shape
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    pixels = torch.stack([y.flatten(), x.flatten()], 1).double()
    distances = torch.stack(
        [torch.cdist(pixels, m.nonzero().double()).min(1).values.view(height, width) for m in masks]
    )
    d1, d2 = distances.sort(0).values[:2]
    term = w0 * torch.exp(-((d1 + d2) ** 2) / (2 * sigma**2))
    return 1 + term * ~masks.any(0)


# --------------------------------------------------------------------------- border weights


def test_the_weight_in_a_one_pixel_gap_is_the_papers():
    w = border_weight_map(_two_squares(), w0=10.0, sigma=5.0)
    assert w.dtype == torch.float32 and w.shape == (12, 16)
    gap = 1 + 10 * math.exp(-((1 + 1) ** 2) / (2 * 25))
    torch.testing.assert_close(w[3:9, 8], torch.full((6,), gap))
    assert torch.equal(w[_two_squares().any(0)], torch.ones(72))  # w = 1 on the objects
    far = 1 + 10 * math.exp(-((math.sqrt(13) + math.sqrt(90)) ** 2) / 50)  # pixel (0, 0)
    assert float(w[0, 0]) == pytest.approx(far, rel=1e-6)


def test_the_weights_match_a_brute_force_computation_on_a_scene():
    masks = torch.from_numpy(generate_scene(13, SceneConfig(size=64)).masks).to(torch.uint8)
    assert len(masks) == 6
    want = _brute_force_weights(masks, 10.0, 5.0).float()
    torch.testing.assert_close(border_weight_map(masks), want)
    torch.testing.assert_close(
        border_weight_map(masks.bool(), 3.0, 2.0), _brute_force_weights(masks, 3.0, 2.0).float()
    )


def test_fewer_than_two_objects_give_ones():
    one = _two_squares()[:1]
    assert torch.equal(border_weight_map(one), torch.ones(12, 16))
    assert torch.equal(border_weight_map(torch.zeros(0, 5, 7, dtype=torch.bool)), torch.ones(5, 7))
    with_empty = torch.cat([one, torch.zeros(1, 12, 16, dtype=torch.bool)])
    assert torch.equal(border_weight_map(with_empty), torch.ones(12, 16))  # empty masks skipped


def test_border_distances_are_euclidean_to_the_nearest_object_pixel():
    d1, d2 = border_distances(_two_squares())
    assert d1.dtype == d2.dtype == torch.float32
    assert float(d1[3, 8]) == float(d2[3, 8]) == 1.0
    assert float(d1[2, 1]) == pytest.approx(math.sqrt(2))  # diagonal to square 0's corner
    assert float(d1[5, 4]) == 0.0 and float(d2[5, 4]) == 5.0  # inside square 0
    d1, d2 = border_distances(_two_squares()[:1])
    assert torch.isinf(d2).all() and not torch.isinf(d1).any()


def test_class_weights_replace_the_ones_and_ignored_pixels_weigh_nothing():
    masks = _two_squares()
    class_map = masks[1].long() * 2  # class 0 background, class 2 on square 1
    class_map[0, 0] = 255
    weights = torch.tensor([0.5, 1.0, 4.0])
    w = border_weight_map(masks, class_map=class_map, class_weights=weights)
    plain = border_weight_map(masks)
    assert float(w[5, 10]) == 4.0 and float(w[0, 0]) == 0.0
    torch.testing.assert_close(w[3:9, 8], plain[3:9, 8] - 0.5)  # 0.5 + the same border term
    with pytest.raises(ValueError, match="pass both class_map"):
        border_weight_map(masks, class_map=class_map)
    with pytest.raises(ValueError, match=r"ids in \[0, 2\)"):
        border_weight_map(masks, class_map=class_map, class_weights=weights[:2])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"instance_masks": torch.zeros(2, 4, 4)}, TypeError, "bool or uint8"),
        ({"instance_masks": torch.zeros(4, 4, dtype=torch.bool)}, ValueError, r"\(N, H, W\)"),
        ({"w0": -1.0}, ValueError, "w0"),
        ({"sigma": 0.0}, ValueError, "sigma"),
    ],
)
def test_border_weight_map_rejects_bad_inputs(kwargs, error, match):
    arguments = {"instance_masks": _two_squares(), **kwargs}
    with pytest.raises(error, match=match):
        border_weight_map(**arguments)


def test_class_balance_weights_are_inverse_frequencies_with_mean_one():
    maps = torch.tensor([[[0, 0, 0, 0, 0, 0], [1, 1, 255, 255, 3, 3]]])
    weights = class_balance_weights(maps, 5)
    freq = torch.tensor([6, 2, 0, 2, 0]) / 10
    assert weights.dtype == torch.float32
    torch.testing.assert_close(weights, torch.tensor([1 / 1.8, 5 / 3, 1.0, 5 / 3, 1.0]))
    assert float((freq * weights).sum()) == pytest.approx(1.0)  # pixel-weighted mean
    assert weights[2] == weights[4] == 1.0  # absent classes: the neutral weight
    with pytest.raises(ValueError, match="no valid pixel"):
        class_balance_weights(torch.full((3, 3), 255), 5)
    with pytest.raises(ValueError, match=r"ids in \[0, 3\)"):
        class_balance_weights(maps, 3)
    with pytest.raises(TypeError, match="integer class ids"):
        class_balance_weights(maps.float(), 5)


# --------------------------------------------------------------------------- weighted CE


def _random_batch(seed: int, n=2, k=4, h=5, w=6):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, h, w, generator=g, dtype=torch.float64)
    return logits, torch.randint(0, k, (n, h, w), generator=g), g


def test_weighted_cross_entropy_with_unit_weights_is_cross_entropy():
    logits, target, g = _random_batch(0)
    target[0, :2] = 255
    ones = torch.ones(target.shape, dtype=torch.float64)
    want = F.cross_entropy(logits, target, ignore_index=255)
    torch.testing.assert_close(weighted_cross_entropy(logits, target, ones), want)
    weights = torch.rand(target.shape, generator=g, dtype=torch.float64) * 3
    per_pixel = F.cross_entropy(logits, target, ignore_index=255, reduction="none")
    valid = target != 255
    want = (weights * per_pixel)[valid].sum() / valid.sum()
    torch.testing.assert_close(weighted_cross_entropy(logits, target, weights), want)


def test_weighted_cross_entropy_without_valid_pixels_is_a_differentiable_zero():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss = weighted_cross_entropy(logits, torch.full((1, 4, 4), 255), torch.ones(1, 4, 4))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros(1, 3, 4, 4))


def test_weighted_cross_entropy_rejects_bad_inputs():
    logits, target, _ = _random_batch(1)
    weights = torch.ones(target.shape)
    with pytest.raises(ValueError, match="weight_map must have the target's shape"):
        weighted_cross_entropy(logits, target, weights[0])
    with pytest.raises(ValueError, match=">= 0"):
        weighted_cross_entropy(logits, target, -weights)
    with pytest.raises(TypeError, match="int64"):
        weighted_cross_entropy(logits, target.int(), weights)
    with pytest.raises(ValueError, match=r"class ids in \[0, 4\)"):
        weighted_cross_entropy(logits, target + 1, weights)


# --------------------------------------------------------------------------- Dice


def test_dice_loss_on_a_hand_computed_example():
    # one image of 2 pixels, 2 classes: p(class 0) = 0.8 on pixel 0, 0.4 on pixel 1
    p0 = torch.tensor([0.8, 0.4], dtype=torch.float64)
    logits = torch.stack([p0.log(), (1 - p0).log()]).view(1, 2, 1, 2)
    target = torch.tensor([[[0, 1]]])
    dice0 = 2 * 0.8 / (1.2 + 1)
    dice1 = 2 * 0.6 / (0.8 + 1)
    assert float(dice_loss(logits, target)) == pytest.approx(1 - (dice0 + dice1) / 2)


def test_dice_loss_is_zero_for_a_confident_perfect_prediction_and_at_most_one():
    logits, target, _ = _random_batch(2)
    perfect = 50.0 * F.one_hot(target, 4).permute(0, 3, 1, 2).double()
    assert float(dice_loss(perfect, target)) == pytest.approx(0.0, abs=1e-12)
    assert 0 < float(dice_loss(-perfect, target)) <= 1


def test_dice_loss_leaves_absent_classes_and_ignored_pixels_out():
    logits, target, _ = _random_batch(3)
    extra = torch.cat([logits, torch.full_like(logits[:, :1], -60.0)], dim=1)  # class 4: absent
    torch.testing.assert_close(dice_loss(extra, target), dice_loss(logits, target))
    target[:, :2] = 255
    changed = logits.clone()
    changed[:, :, :2] = 100 * torch.randn_like(changed[:, :, :2])
    torch.testing.assert_close(dice_loss(changed, target), dice_loss(logits, target))
    logits.requires_grad_(True)
    dice_loss(logits, target).backward()
    assert torch.equal(logits.grad[:, :, :2], torch.zeros_like(logits.grad[:, :, :2]))


def test_dice_loss_sums_over_the_whole_batch():
    """Two images in a batch give the loss of one image made of both, side by side."""
    logits, target, _ = _random_batch(4)
    side_by_side = torch.cat([logits[0], logits[1]], dim=2)[None]
    torch.testing.assert_close(
        dice_loss(logits, target),
        dice_loss(side_by_side, torch.cat([target[0], target[1]], 1)[None]),
    )


def test_dice_loss_gradient_is_right_and_safe_without_valid_pixels():
    logits, target, _ = _random_batch(5, n=1, k=3, h=3, w=4)
    target[0, 0, 0] = 255
    assert torch.autograd.gradcheck(lambda x: dice_loss(x, target), (logits.requires_grad_(True),))
    empty = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = dice_loss(empty, torch.full((1, 2, 2), -1), ignore_index=-1)
    loss.backward()
    assert loss.item() == 0.0 and not torch.isnan(empty.grad).any()


def test_dice_loss_keeps_the_dtype_and_rejects_bad_inputs():
    logits, target, _ = _random_batch(6)
    assert dice_loss(logits, target).dtype == torch.float64
    assert dice_loss(logits.float(), target).shape == ()
    with pytest.raises(ValueError, match=r"target must have shape \(N, H, W\)"):
        dice_loss(logits, target[0])
    with pytest.raises(ValueError, match=r"\(N, K, H, W\)"):
        dice_loss(logits[0], target)
    with pytest.raises(TypeError, match="logits must be a float"):
        dice_loss(target[:, None], target)
    with pytest.raises(ValueError, match="class ids"):
        dice_loss(logits, target - 1)
