"""The Mask R-CNN checks (mask targets, mask loss, mask head, pasting) accept correct answers and
reject stubs and plausible student mistakes.

Each ``Wrong`` below is a real, deliberately wrong implementation a student might write (written in
``tests/mask_rcnn_wrongs.py``); the check must raise CheckFailed for it, with a message that says
what is wrong (``says``); ``tests/test_check_contract.py`` runs them all. The other tests prove
that the references agree with torchvision on every case, that the cases have no knife-edge
values, and that every mistake a comparator names differs from the reference somewhere.
"""

from __future__ import annotations

import mask_rcnn_wrongs as w
import pytest
import torch
from check_contract import Wrong, assert_cases_deterministic_with_hints
from torch import nn
from torchvision.models.detection.roi_heads import (
    maskrcnn_loss,
    paste_masks_in_image,
    project_masks_on_boxes,
)
from torchvision.ops import roi_align

from course_utils.detection import mask_rcnn
from course_utils.grading.checks import all_checks
from course_utils.grading.checks._mask_rcnn_compare import (
    mask_loss_variants,
    mask_targets_variants,
    paste_variants,
)
from course_utils.grading.checks.mask_rcnn import (
    CHECKS,
    check_mask_loss,
    check_mask_targets,
    check_MaskHead,
    check_paste_masks,
    mask_head_cases,
    mask_loss_cases,
    mask_targets_cases,
    paste_masks_cases,
)
from course_utils.grading.runner import CheckFailed

CORRECT = [
    (check_mask_targets, mask_rcnn.mask_targets),
    (check_mask_targets, w.good_mask_targets_loop),
    (check_mask_targets, w.good_mask_targets_torchvision),
    (check_mask_loss, mask_rcnn.mask_loss),
    (check_mask_loss, w.good_mask_loss_formula),
    (check_mask_loss, w.good_mask_loss_gather),
    (check_MaskHead, mask_rcnn.MaskHead),
    (check_MaskHead, w.GoodMaskHead),
    (check_MaskHead, w.GoodMaskHeadFunctional),
    (check_paste_masks, mask_rcnn.paste_masks),
    (check_paste_masks, w.good_paste_masks_torchvision),
]

_TARGETS, _LOSS, _HEAD, _PASTE = CHECKS

WRONG = [
    Wrong(_TARGETS, w.targets_own_box, "each instance's own bounding box"),
    Wrong(_TARGETS, w.targets_xy_swapped, "the boxes were read as (y1, x1, y2, x2)"),
    Wrong(_TARGETS, w.targets_not_aligned, "cropped with aligned=False"),
    Wrong(_TARGETS, w.targets_strictly_above, "threshold with >= 0.5, not > 0.5"),
    Wrong(_TARGETS, w.targets_inverted, "the targets are inverted"),
    Wrong(_TARGETS, w.targets_by_position, "RoI p read instance p's mask"),
    Wrong(_TARGETS, w.targets_soft, "these are roi_align's soft values"),
    Wrong(_TARGETS, w.targets_nearest_crop, "nearest-neighbour interpolation"),
    Wrong(_TARGETS, w.targets_feature_scale, "spatial_scale=0.25"),
    Wrong(_TARGETS, w.targets_bool, "returned dtype torch.bool, expected torch.float32"),
    Wrong(_TARGETS, w.targets_fixed_size, "returned shape (1, 28, 28), expected (1, 6, 6)"),
    Wrong(_TARGETS, w.targets_sampling_two, "sampled with sampling_ratio=2"),
    Wrong(_TARGETS, w.targets_whole_mask, "the whole image's mask resized"),
    Wrong(_TARGETS, w.targets_uint8, "input should have the same type as rois"),
    Wrong(_TARGETS, w.targets_stacked, "stack expects a non-empty TensorList"),
    Wrong(_TARGETS, w.targets_on_cpu, "but the inputs were on cuda", cuda_only=True),
    Wrong(_LOSS, w.loss_softmax, "per-pixel softmax cross-entropy"),
    Wrong(_LOSS, w.loss_all_channels, "every channel was trained on the RoI's mask"),
    Wrong(_LOSS, w.loss_one_hot, "the other classes on an empty mask"),
    Wrong(_LOSS, w.loss_background_too, "the background channel 0 was trained too"),
    Wrong(_LOSS, w.loss_highest_channel, "its highest channel"),
    Wrong(_LOSS, w.loss_predicted_class, "its predicted class (argmax)"),
    Wrong(_LOSS, w.loss_sum, "the sum over the pixels"),
    Wrong(_LOSS, w.loss_sigmoid_twice, "went through a sigmoid before"),
    Wrong(_LOSS, w.loss_sum_of_roi_means, "the sum over the RoIs of each RoI's mean"),
    Wrong(_LOSS, w.loss_mean_of_roi_sums, "the mean over the RoIs of each mask's pixel sum"),
    Wrong(_LOSS, w.loss_nan_when_empty, "the loss is nan"),
    Wrong(_LOSS, w.loss_labels_minus_one, "channel labels[p] - 1"),
    Wrong(_LOSS, w.loss_item, "A Python float has no gradient"),
    Wrong(_LOSS, w.loss_per_roi, "(one loss per RoI?)"),
    Wrong(_LOSS, w.loss_new_zero, "but the inputs were on cuda", cuda_only=True),
    Wrong(_HEAD, w.HeadNoReluAfterUpsample, "no ReLU after the transposed convolution"),
    Wrong(_HEAD, w.HeadStrideOne, "self.upsample has stride (1, 1), expected (2, 2)"),
    Wrong(_HEAD, w.HeadKernelThree, "self.upsample has kernel_size (3, 3), expected (2, 2)"),
    Wrong(_HEAD, w.HeadTwoConvsAlways, "self.convs has 2 convolutions, expected num_convs = 3"),
    Wrong(_HEAD, w.HeadUnpadded, "self.convs.0 has padding (0, 0), expected (1, 1)"),
    Wrong(_HEAD, w.HeadSigmoid, "the masks went through a sigmoid"),
    Wrong(_HEAD, w.HeadReluAfterPredictor, "the logits went through a ReLU"),
    Wrong(_HEAD, w.HeadNoBias, "your layers have no bias (convs.0.bias, convs.2.bias missing)"),
    Wrong(_HEAD, w.HeadTorchvisionNames, "conv5_mask.weight"),
    Wrong(_HEAD, w.HeadFixedWidth, "self.convs.0 maps 8 -> 256 channels, expected 8 -> 16"),
    Wrong(_HEAD, w.HeadModuleList, "found a ModuleList"),
    Wrong(_HEAD, w.HeadNoReluInConvs, "self.convs has no nn.ReLU"),
    Wrong(_HEAD, w.HeadDefaultInit, "has a spread (std) of"),
    Wrong(_HEAD, w.HeadPredictorBias, "predictor.bias is not zero"),
    Wrong(_HEAD, w.HeadInEvalMode, "eval mode after MaskHead"),
    Wrong(_HEAD, w.HeadDetached, "the gradient with respect to x is wrong"),
    Wrong(_PASTE, w.paste_no_padding, "the mask was not padded and its box not grown"),
    Wrong(_PASTE, w.paste_box_not_grown, "the mask was padded but its box not grown"),
    Wrong(_PASTE, w.paste_xy_swapped, "the boxes were read as (y1, x1, y2, x2)"),
    Wrong(_PASTE, w.paste_transposed, "the masks are transposed"),
    Wrong(_PASTE, w.paste_nearest, "nearest-neighbour interpolation"),
    Wrong(_PASTE, w.paste_align_corners, "align_corners=True"),
    Wrong(_PASTE, w.paste_exclusive, "each box is one pixel too small"),
    Wrong(_PASTE, w.paste_floor, "rounded down (floor)"),
    Wrong(_PASTE, w.paste_round, "rounded to the nearest pixel"),
    Wrong(_PASTE, w.paste_unclipped, "paste_masks raised RuntimeError"),
    Wrong(_PASTE, w.paste_always_threshold, "returned a bool mask although threshold is None"),
    Wrong(_PASTE, w.paste_threshold_ignored, "although threshold=0.5"),
    Wrong(_PASTE, w.paste_half_threshold, "thresholded at 0.5: use the threshold given (0.3)"),
    Wrong(_PASTE, w.paste_stacked, "stack expects a non-empty TensorList"),
    Wrong(_PASTE, w.paste_on_cpu, "but the inputs were on cuda", cuda_only=True),
]


def test_the_module_lists_its_checks():
    assert all_checks()["mask_rcnn"] == CHECKS
    assert [check.function_name for check in CHECKS] == [
        "mask_targets",
        "mask_loss",
        "MaskHead",
        "paste_masks",
    ]
    assert check_mask_targets.reference is mask_rcnn.mask_targets
    assert check_mask_loss.reference is mask_rcnn.mask_loss
    assert check_MaskHead.reference is mask_rcnn.MaskHead
    assert check_paste_masks.reference is mask_rcnn.paste_masks


@pytest.mark.parametrize("check", CHECKS)
def test_every_check_rejects_at_least_ten_mistakes(check):
    assert sum(wrong.check is check and not wrong.cuda_only for wrong in WRONG) >= 10


@pytest.mark.parametrize(
    "make_cases", [mask_targets_cases, mask_loss_cases, mask_head_cases, paste_masks_cases]
)
def test_cases_are_deterministic_and_have_hints(make_cases):
    assert len(assert_cases_deterministic_with_hints(make_cases)) >= 5


# ---------------------------------------------------------------- the cases, against torchvision


def test_the_targets_are_torchvisions_crops_shifted_by_half_a_pixel_and_thresholded():
    for case in mask_targets_cases():
        masks, boxes, idxs, size = case.args
        got = mask_rcnn.mask_targets(*case.args)
        soft = project_masks_on_boxes(masks, boxes - 0.5, idxs, size)
        assert torch.equal(got, (soft >= 0.5).float()), case.name


def test_only_the_half_pixel_case_has_soft_values_on_the_threshold():
    """Every bin is 1e-3 away from 0.5 except in the case built to sit exactly on it."""
    exact = []
    for case in mask_targets_cases():
        masks, boxes, idxs, size = case.args
        rois = torch.cat([idxs[:, None].float(), boxes], dim=1)
        soft = roi_align(masks[:, None].float(), rois, (size, size), 1.0, -1, True)
        near = (soft - 0.5).abs() < 1e-3
        assert bool((soft[near] == 0.5).all()), case.name
        if near.any():
            exact.append(case.name)
    assert exact and all("exactly 0.5" in name for name in exact)


def test_the_loss_is_torchvisions_maskrcnn_loss():
    """torchvision's loss projects the masks itself (soft targets): give ours the same ones."""
    g = torch.Generator().manual_seed(1)
    for case in mask_loss_cases():
        logits, _, labels = case.args
        count = len(labels)
        masks = (torch.rand(count, 20, 24, generator=g) > 0.4).float()
        corners = torch.rand(count, 2, generator=g) * 8
        boxes = torch.cat([corners, corners + 6 + torch.rand(count, 2, generator=g) * 10], dim=1)
        idxs = torch.arange(count)
        soft = project_masks_on_boxes(masks, boxes, idxs, logits.shape[-1])
        want = maskrcnn_loss(logits, [boxes], [masks], [labels], [idxs])
        torch.testing.assert_close(mask_rcnn.mask_loss(logits, soft, labels), want)


def test_the_paste_cases_equal_torchvisions_and_have_no_knife_edges():
    for case in paste_masks_cases():
        masks, boxes, size = case.args
        threshold = case.kwargs.get("threshold")
        want = paste_masks_in_image(masks[:, None], boxes, size, padding=1)[:, 0]
        if threshold is not None:
            assert bool(((want - threshold).abs() > 1e-3).all()), case.name
            want = want >= threshold
        assert torch.equal(mask_rcnn.paste_masks(*case.args, **case.kwargs), want), case.name
        scale = (masks.shape[-1] + 2) / masks.shape[-1]
        grown = boxes.double()
        half = (grown[:, 2:] - grown[:, :2]) * 0.5 * scale
        centre = (grown[:, 2:] + grown[:, :2]) * 0.5
        corners = torch.cat([centre - half, centre + half], dim=1)
        assert bool(((corners - corners.round()).abs() > 1e-3).all()), case.name


def _differs(got, want) -> bool:
    if isinstance(want, torch.Tensor):
        return got.shape != want.shape or not torch.allclose(got.float(), want.float(), atol=1e-5)
    return abs(got - want) > 1e-5 + 1e-4 * abs(want)


@pytest.mark.parametrize(
    ("make_cases", "reference", "variants"),
    [
        (mask_targets_cases, mask_rcnn.mask_targets, mask_targets_variants),
        (mask_loss_cases, lambda *a: float(mask_rcnn.mask_loss(*a)), mask_loss_variants),
        (
            paste_masks_cases,
            mask_rcnn.paste_masks,
            lambda *a, threshold=None: paste_variants(*a, threshold),
        ),
    ],
)
def test_every_mistake_a_comparator_names_differs_from_the_reference(
    make_cases, reference, variants
):
    seen: dict[str, bool] = {}
    for case in make_cases():
        want = reference(*case.args, **case.kwargs)
        for text, variant in variants(*case.args, **case.kwargs).items():
            seen[text] = seen.get(text, False) or _differs(variant, want)
    assert seen and all(seen.values()), [text for text, differs in seen.items() if not differs]


# ---------------------------------------------------------------- the head check


def test_the_head_check_leaves_the_global_rng_as_it_was(capsys):
    """A notebook builds and trains its networks after the check cell: same random numbers."""
    torch.manual_seed(3)
    before = torch.get_rng_state()
    check_MaskHead(mask_rcnn.MaskHead)
    assert torch.equal(torch.get_rng_state(), before)
    with pytest.raises(CheckFailed):
        check_MaskHead(w.HeadSigmoid, quiet=True)
    assert torch.equal(torch.get_rng_state(), before)


def test_the_checks_are_deterministic_whatever_the_global_seed():
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        for check, fn in CORRECT:
            check(fn, quiet=True)


class _StubInInit(nn.Module):
    def __init__(self, *args):
        super().__init__()
        raise NotImplementedError()


class _StubInForward(w.GoodMaskHead):
    def forward(self, x):
        raise NotImplementedError()


@pytest.mark.parametrize("stub", [_StubInInit, _StubInForward])
def test_the_head_check_says_a_stub_class_is_not_written_yet(stub):
    with pytest.raises(NotImplementedError, match="MaskHead is not written yet"):
        check_MaskHead(stub)


def test_an_instance_instead_of_the_class_fails():
    with pytest.raises(CheckFailed, match="MaskHead raised"):
        check_MaskHead(mask_rcnn.MaskHead(8, 4, 16, 2), quiet=True)
