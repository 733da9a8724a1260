"""encode_boxes / decode_boxes: the paper's formulas, torchvision's BoxCoder, round trips,
invariances."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.models.detection._utils import BoxCoder

from course_utils.detection.box_coding import (
    BBOX_XFORM_CLIP,
    box_centers_sizes,
    decode_boxes,
    encode_boxes,
)


def random_boxes(n: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 100
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * 60 + 1
    return torch.cat([xy, xy + wh], dim=1).to(dtype)


def test_encode_by_hand():
    proposal = torch.tensor([[10.0, 20.0, 30.0, 60.0]])  # centre (20, 40), size 20 x 40
    gt = torch.tensor([[12.0, 10.0, 52.0, 50.0]])  # centre (32, 30), size 40 x 40
    deltas = encode_boxes(proposal, gt)
    expected = torch.tensor(
        [[(32 - 20) / 20, (30 - 40) / 40, math.log(40 / 20), math.log(40 / 40)]]
    )
    torch.testing.assert_close(deltas, expected)


def test_encode_identical_boxes_is_zero():
    boxes = random_boxes(7, 0)
    assert torch.allclose(encode_boxes(boxes, boxes), torch.zeros(7, 4), atol=1e-6)


@pytest.mark.parametrize(
    "weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0), (2.0, 3.0, 0.5, 4.0)]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_torchvision_box_coder(weights, dtype):
    proposals, gt = random_boxes(50, 1, dtype), random_boxes(50, 2, dtype)
    coder = BoxCoder(weights=weights)
    expected = coder.encode_single(gt, proposals)
    deltas = encode_boxes(proposals, gt, weights)
    assert deltas.dtype == dtype
    torch.testing.assert_close(deltas, expected, rtol=1e-5, atol=1e-5)
    decoded = decode_boxes(proposals, deltas, weights)
    torch.testing.assert_close(
        decoded, coder.decode_single(deltas, proposals), rtol=1e-5, atol=1e-4
    )


def test_round_trip_both_ways():
    proposals, gt = random_boxes(40, 3, torch.float64), random_boxes(40, 4, torch.float64)
    torch.testing.assert_close(decode_boxes(proposals, encode_boxes(proposals, gt)), gt)
    deltas = torch.randn(40, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    torch.testing.assert_close(encode_boxes(proposals, decode_boxes(proposals, deltas)), deltas)


def test_targets_are_translation_and_scale_invariant():
    proposals, gt = random_boxes(20, 6, torch.float64), random_boxes(20, 7, torch.float64)
    shift = torch.tensor([13.0, -7.0, 13.0, -7.0], dtype=torch.float64)
    base = encode_boxes(proposals, gt)
    torch.testing.assert_close(encode_boxes(proposals + shift, gt + shift), base)
    torch.testing.assert_close(encode_boxes(proposals * 3.5, gt * 3.5), base)


def test_divides_by_the_proposal_size_not_the_ground_truth():
    proposal = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    gt = torch.tensor(
        [[5.0, 0.0, 25.0, 10.0]]
    )  # twice as wide, centre 10 to the right of... 15 vs 5
    deltas = encode_boxes(proposal, gt)
    assert deltas[0, 0].item() == pytest.approx((15 - 5) / 10)
    assert deltas[0, 2].item() == pytest.approx(math.log(2))


def test_decode_broadcasts_class_specific_deltas():
    proposals = random_boxes(5, 8)
    deltas = torch.randn(5, 3, 4, generator=torch.Generator().manual_seed(9)) * 0.2
    boxes = decode_boxes(proposals[:, None, :], deltas)
    assert boxes.shape == (5, 3, 4)
    for k in range(3):
        torch.testing.assert_close(boxes[:, k], decode_boxes(proposals, deltas[:, k]))


def test_decode_clips_huge_log_scales():
    proposal = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    boxes = decode_boxes(proposal, torch.tensor([[0.0, 0.0, 50.0, 50.0]]))
    assert torch.isfinite(boxes).all()
    width = (boxes[0, 2] - boxes[0, 0]).item()
    assert width == pytest.approx(10 * math.exp(BBOX_XFORM_CLIP), rel=1e-4)


def test_centers_sizes():
    cx, cy, w, h = box_centers_sizes(torch.tensor([[1.0, 2.0, 5.0, 10.0]]))
    assert (cx.item(), cy.item(), w.item(), h.item()) == (3.0, 6.0, 4.0, 8.0)


def test_empty_inputs():
    empty = torch.zeros(0, 4)
    assert encode_boxes(empty, empty).shape == (0, 4)
    assert decode_boxes(empty, empty).shape == (0, 4)


@pytest.mark.parametrize(
    "bad, error",
    [
        ([[0.0, 0.0, 0.0, 5.0]], ValueError),  # zero width
        ([[0.0, 0.0, 5.0, -1.0]], ValueError),  # negative height
    ],
)
def test_encode_rejects_degenerate_boxes(bad, error):
    ok = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    with pytest.raises(error, match="positive width and height"):
        encode_boxes(torch.tensor(bad), ok)
    with pytest.raises(error, match="positive width and height"):
        encode_boxes(ok, torch.tensor(bad))


def test_input_validation():
    ok = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    with pytest.raises(TypeError, match="torch.Tensor"):
        encode_boxes([[0, 0, 4, 4]], ok)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        encode_boxes(torch.zeros(3, 5), torch.zeros(3, 5))
    with pytest.raises(TypeError, match="float"):
        decode_boxes(ok, torch.zeros(1, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="weights"):
        encode_boxes(ok, ok, weights=(1.0, 1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="weights"):
        decode_boxes(ok, ok, weights=(1.0, 1.0))
