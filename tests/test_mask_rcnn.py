"""The mask branch's reference parts (``course_utils.detection.mask_rcnn``) against torchvision's
``roi_heads`` and ``mask_rcnn``, and where the course's conventions differ from them on purpose."""

from __future__ import annotations

import re

import pytest
import torch
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import (
    maskrcnn_loss,
    paste_masks_in_image,
    project_masks_on_boxes,
)

from course_utils.detection.mask_rcnn import MaskHead, mask_loss, mask_targets, paste_masks

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _scene(g: torch.Generator, count: int, height: int, width: int) -> torch.Tensor:
    """uint8 (count, height, width) masks: random rectangles, each with a random hole."""
    masks = torch.zeros(count, height, width, dtype=torch.uint8)
    for mask in masks:
        top, left = (int(v) for v in torch.randint(0, min(height, width) // 2, (2,), generator=g))
        mask[top : top + height // 2, left : left + width // 2] = 1
        mask[top + 2 : top + 4, left + 1 : left + 3] = 0
    return masks


def _boxes(g: torch.Generator, count: int, height: int, width: int) -> torch.Tensor:
    """float (count, 4) boxes at least 2 pixels wide, some leaving the image."""
    corner = torch.rand(count, 2, generator=g) * torch.tensor([width, height]) - 3
    size = 2 + torch.rand(count, 2, generator=g) * torch.tensor([width, height]) * 0.6
    return torch.cat([corner, corner + size], dim=1)


# ---------------------------------------------------------------------------- mask_targets


def test_targets_are_torchvisions_projection_half_a_pixel_later_thresholded():
    """torchvision's aligned=False crop of the boxes shifted by -0.5 is aligned=True's crop."""
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        masks = _scene(g, 3, 17, 23)
        boxes = _boxes(g, 6, 17, 23)
        idxs = torch.randint(0, 3, (6,), generator=g)
        got = mask_targets(masks, boxes, idxs, 7)
        assert got.dtype == torch.float32 and got.shape == (6, 7, 7)
        assert bool(((got == 0) | (got == 1)).all())
        soft = project_masks_on_boxes(masks, boxes - 0.5, idxs, 7)
        assert torch.equal(got, (soft >= 0.5).float())


def test_a_proposal_on_the_objects_pixels_gives_a_full_mask_unlike_aligned_false():
    """Pixels 4..7 (x) by 2..5 (y) are the box (4, 2, 8, 6) in the course's convention."""
    masks = torch.zeros(1, 10, 12, dtype=torch.uint8)
    masks[0, 2:6, 4:8] = 1
    box, idx = torch.tensor([[4.0, 2.0, 8.0, 6.0]]), torch.tensor([0])
    assert torch.equal(mask_targets(masks, box, idx, 4), torch.ones(1, 4, 4))
    soft = project_masks_on_boxes(masks, box, idx, 4)  # reads half a pixel right and below
    assert float(soft[0, 0, 0]) == 1.0 and float(soft[0, -1, -1]) == 0.25


def test_bins_of_exactly_one_half_belong_to_the_object():
    masks = torch.zeros(1, 6, 8, dtype=torch.bool)
    masks[0, :, :4] = True
    got = mask_targets(masks, torch.tensor([[0.5, 0.0, 8.5, 6.0]]), torch.tensor([0]), 8)
    assert got[0, 0].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]  # bin 3 straddles pixels 3 and 4


def test_the_parts_of_a_box_outside_the_image_are_background():
    masks = torch.ones(1, 8, 8, dtype=torch.uint8)
    got = mask_targets(masks, torch.tensor([[-8.0, 0.0, 8.0, 8.0]]), torch.tensor([0]), 4)
    assert got[0, :, :2].sum() == 0 and bool((got[0, :, 2:] == 1).all())


def test_no_positive_roi_gives_an_empty_float32_result():
    got = mask_targets(
        torch.zeros(0, 5, 5, dtype=torch.uint8),
        torch.zeros(0, 4),
        torch.zeros(0, dtype=torch.int64),
        6,
    )
    assert got.shape == (0, 6, 6) and got.dtype == torch.float32
    float64 = mask_targets(
        torch.ones(1, 5, 5, dtype=torch.bool),
        torch.tensor([[0.0, 0.0, 5.0, 5.0]], dtype=torch.float64),
        torch.tensor([0]),
        2,
    )
    assert float64.dtype == torch.float32


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((torch.ones(1, 5, 5), torch.zeros(1, 4), torch.tensor([0]), 3), TypeError, "bool or"),
        (
            (torch.ones(1, 5, 5).bool(), torch.zeros(1, 4).long(), torch.tensor([0]), 3),
            TypeError,
            "proposals must be a float tensor",
        ),
        (
            (torch.ones(1, 5, 5).bool(), torch.zeros(1, 4), torch.tensor([1]), 3),
            ValueError,
            "[0, 1)",
        ),
        (
            (torch.ones(1, 5, 5).bool(), torch.zeros(1, 4), torch.tensor([0, 0]), 3),
            ValueError,
            "per",
        ),
        (
            (torch.ones(1, 5, 5).bool(), torch.zeros(1, 4), torch.tensor([0.0]), 3),
            TypeError,
            "int64",
        ),
        (
            (torch.ones(1, 5, 5).bool(), torch.zeros(1, 4), torch.tensor([0]), 0),
            ValueError,
            "mask_",
        ),
    ],
)
def test_mask_targets_rejects_bad_inputs(args, error, match):
    with pytest.raises(error, match=re.escape(match)):
        mask_targets(*args)


# ---------------------------------------------------------------------------- mask_loss


def test_the_loss_is_torchvisions_maskrcnn_loss():
    g = torch.Generator().manual_seed(1)
    for count in (1, 4, 7):
        masks = _scene(g, 3, 20, 18)
        boxes = _boxes(g, count, 20, 18)
        idxs = torch.randint(0, 3, (count,), generator=g)
        classes = torch.tensor([3, 1, 2])
        logits = torch.randn(count, 4, 6, 6, generator=g) * 3
        want = maskrcnn_loss(logits, [boxes], [masks], [classes], [idxs])
        soft = project_masks_on_boxes(masks, boxes, idxs, 6)  # torchvision's own targets
        torch.testing.assert_close(mask_loss(logits, soft, classes[idxs]), want)


def test_only_the_channel_of_each_rois_class_gets_a_gradient():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 4, 5, 5, generator=g, requires_grad=True)
    targets = (torch.rand(3, 5, 5, generator=g) > 0.5).float()
    labels = torch.tensor([2, 1, 2])
    mask_loss(logits, targets, labels).backward()
    touched = logits.grad.abs().sum(dim=(2, 3)) > 0
    assert touched.tolist() == [[False, False, True, False], [False, True, False, False]] + [
        [False, False, True, False]
    ]


def test_no_positive_roi_gives_a_zero_that_keeps_the_graph():
    logits = torch.zeros(0, 3, 5, 5, requires_grad=True)
    loss = mask_loss(logits, torch.zeros(0, 5, 5), torch.zeros(0, dtype=torch.int64))
    assert loss.shape == () and float(loss.detach()) == 0.0 and loss.requires_grad
    loss.backward()


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4), torch.tensor([0, 1])), ValueError, ">= 1"),
        ((torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4), torch.tensor([1, 3])), ValueError, "3)"),
        ((torch.zeros(2, 3, 4, 4), torch.zeros(2, 5, 5), torch.tensor([1, 2])), ValueError, "(P,"),
        (
            (torch.zeros(2, 3, 4, 4).long(), torch.zeros(2, 4, 4), torch.tensor([1])),
            TypeError,
            "float",
        ),
        (
            (torch.zeros(2, 4, 4), torch.zeros(2, 4, 4), torch.tensor([1, 1])),
            ValueError,
            "(P, K+1, M, M)",
        ),
    ],
)
def test_mask_loss_rejects_bad_inputs(args, error, match):
    with pytest.raises(error, match=re.escape(match)):
        mask_loss(*args)


# ---------------------------------------------------------------------------- MaskHead


def test_the_head_doubles_the_resolution_and_predicts_one_mask_per_class():
    head = MaskHead(8, 5, conv_channels=16, num_convs=3)
    assert head(torch.randn(2, 8, 7, 9)).shape == (2, 5, 14, 18)
    assert list(head.state_dict()) == [
        *(f"convs.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")),
        "upsample.weight",
        "upsample.bias",
        "predictor.weight",
        "predictor.bias",
    ]
    empty = MaskHead(6, 3, conv_channels=4, num_convs=0)
    assert len(empty.convs) == 0 and empty.upsample.in_channels == 6
    assert empty(torch.randn(1, 6, 3, 3)).shape == (1, 3, 6, 6)


def test_the_head_is_initialised_like_torchvisions():
    torch.manual_seed(0)
    head = MaskHead(64, 8, conv_channels=64, num_convs=2)
    for name, tensor in head.state_dict().items():
        if name.endswith("bias"):
            assert not tensor.any(), name
        else:
            fan_out = tensor.shape[0] * tensor[0, 0].numel()
            assert abs(float(tensor.std()) / (2 / fan_out) ** 0.5 - 1) < 0.1, name


def test_the_head_is_torchvisions_heads_and_predictor_with_the_same_weights():
    head = MaskHead(8, 4, conv_channels=16, num_convs=2)
    with torch.no_grad():
        for parameter in head.parameters():
            parameter.normal_(0, 0.3)
    convs = MaskRCNNHeads(8, [16, 16], dilation=1)
    predictor = MaskRCNNPredictor(16, 16, 4)
    convs.load_state_dict({f"{i}.0.{p}": head.convs[2 * i].get_parameter(p) for i in (0, 1)
                           for p in ("weight", "bias")})  # fmt: skip
    predictor.load_state_dict(
        {
            "conv5_mask.weight": head.upsample.weight,
            "conv5_mask.bias": head.upsample.bias,
            "mask_fcn_logits.weight": head.predictor.weight,
            "mask_fcn_logits.bias": head.predictor.bias,
        }
    )
    x = torch.randn(3, 8, 5, 7)
    torch.testing.assert_close(head(x), predictor(convs(x)))


def test_the_head_rejects_bad_settings_and_inputs():
    with pytest.raises(ValueError, match="num_classes"):
        MaskHead(8, 1)
    with pytest.raises(ValueError, match="num_convs"):
        MaskHead(8, 3, num_convs=-1)
    with pytest.raises(TypeError, match="conv_channels"):
        MaskHead(8, 3, conv_channels=16.0)
    with pytest.raises(ValueError, match=r"\(P, 8, S, S\)"):
        MaskHead(8, 3)(torch.randn(2, 4, 5, 5))


# ---------------------------------------------------------------------------- paste_masks


def test_pasting_equals_torchvisions_paste_masks_in_image():
    g = torch.Generator().manual_seed(3)
    for size in (3, 5, 14, 28):
        for height, width in ((20, 30), (33, 17)):
            masks = torch.rand(6, size, size, generator=g)
            boxes = _boxes(g, 6, height, width)
            boxes[:, 2:] = torch.maximum(boxes[:, 2:], torch.tensor(2.0))  # torchvision needs
            boxes[:, :2] = torch.minimum(boxes[:, :2], torch.tensor([width, height]) - 2.0)
            want = paste_masks_in_image(masks[:, None], boxes, (height, width), padding=1)[:, 0]
            got = paste_masks(masks, boxes, (height, width))
            assert got.dtype == masks.dtype and torch.equal(got, want)
            assert torch.equal(paste_masks(masks, boxes, (height, width), 0.5), want >= 0.5)


def test_pasting_puts_each_mask_inside_its_grown_box_only():
    masks = torch.ones(1, 4, 4)
    got = paste_masks(masks, torch.tensor([[4.0, 2.0, 12.0, 6.0]]), (10, 16))
    # grown by 6 / 4 about (8, 4): x 2..14, y 1..7 (both ends included), whose outermost pixels
    # read the zero padding: non-zero on x 3..13, y 2..6 only
    rows, cols = got[0].nonzero().unbind(1)
    assert (int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())) == (2, 6, 3, 13)
    assert float(got[0, 4, 8]) == 1.0


def test_pasting_handles_no_detection_and_boxes_off_the_image():
    assert paste_masks(torch.zeros(0, 5, 5), torch.zeros(0, 4), (6, 7)).shape == (0, 6, 7)
    outside = paste_masks(
        torch.ones(2, 3, 3), torch.tensor([[30.0, 1, 40, 5], [1.0, -9, 5, -4]]), (8, 9)
    )
    assert outside.shape == (2, 8, 9) and not outside.any()  # torchvision raises on the first


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((torch.zeros(2, 4, 5), torch.zeros(2, 4), (8, 8)), ValueError, "square"),
        ((torch.zeros(2, 4, 4), torch.zeros(3, 4), (8, 8)), ValueError, "one box per mask"),
        ((torch.zeros(2, 4, 4), torch.zeros(2, 4), 8), TypeError, "pair"),
        ((torch.zeros(2, 4, 4), torch.zeros(2, 4), (8, 8), 1.5), ValueError, "threshold"),
        ((torch.zeros(2, 4, 4).bool(), torch.zeros(2, 4), (8, 8)), TypeError, "float"),
    ],
)
def test_paste_masks_rejects_bad_inputs(args, error, match):
    with pytest.raises(error, match=re.escape(match)):
        paste_masks(*args)


@CUDA
def test_the_parts_give_the_same_results_on_cuda():
    g = torch.Generator().manual_seed(4)
    masks, boxes = _scene(g, 3, 17, 23), _boxes(g, 5, 17, 23)
    idxs = torch.randint(0, 3, (5,), generator=g)
    want = mask_targets(masks, boxes, idxs, 6)
    got = mask_targets(masks.cuda(), boxes.cuda(), idxs.cuda(), 6)
    assert got.device.type == "cuda" and torch.equal(got.cpu(), want)
    probabilities = torch.rand(5, 6, 6, generator=g)
    want = paste_masks(probabilities, boxes.clamp(min=0), (17, 23))
    got = paste_masks(probabilities.cuda(), boxes.clamp(min=0).cuda(), (17, 23))
    torch.testing.assert_close(got.cpu(), want)
