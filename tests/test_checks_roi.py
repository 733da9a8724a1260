"""The RoI pooling and box-loss checks accept correct functions and reject stubs and plausible
student mistakes.

Each ``Wrong`` below is a real, deliberately wrong implementation a student might write; the check
must raise CheckFailed for it, with a message that says what is wrong (``says``);
``tests/test_check_contract.py`` runs them all.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from check_contract import Wrong, assert_cases_deterministic_with_hints

from course_utils.detection import fast_rcnn_training
from course_utils.grading.checks import all_checks
from course_utils.grading.checks.roi import (
    CHECKS,
    check_roi_pool,
    check_smooth_l1_box_loss,
    roi_pool_cases,
    smooth_l1_box_loss_cases,
    torchvision_roi_pool,
    torchvision_smooth_l1_box_loss,
)


def _c_round(v: float) -> int:
    return math.floor(v + 0.5) if v >= 0 else -math.floor(-v + 0.5)


def good_roi_pool(
    features,
    rois,
    output_size,
    spatial_scale,
    *,
    rounding=_c_round,
    inclusive=1,
    start=math.floor,
    end=math.ceil,
    use_scale=True,
    use_batch=True,
    reduce="max",
    empty=0.0,
    clip=True,
):
    """A loop implementation; the keyword arguments make the wrong variants below."""
    _, channels, height, width = features.shape
    out_h, out_w = output_size
    out = features.new_zeros((len(rois), channels, out_h, out_w))
    for k, roi in enumerate(rois.tolist()):
        image = int(roi[0]) if use_batch else 0
        scale = spatial_scale if use_scale else 1.0
        x1, y1, x2, y2 = (rounding(v * scale) for v in roi[1:])
        roi_w, roi_h = max(x2 - x1 + inclusive, 1), max(y2 - y1 + inclusive, 1)
        for i in range(out_h):
            h0, h1 = start(i * roi_h / out_h) + y1, end((i + 1) * roi_h / out_h) + y1
            if clip:
                h0, h1 = min(max(h0, 0), height), min(max(h1, 0), height)
            for j in range(out_w):
                w0, w1 = start(j * roi_w / out_w) + x1, end((j + 1) * roi_w / out_w) + x1
                if clip:
                    w0, w1 = min(max(w0, 0), width), min(max(w1, 0), width)
                if h1 <= h0 or w1 <= w0:
                    out[k, :, i, j] = empty
                    continue
                region = features[image, :, max(h0, 0) : h1, max(w0, 0) : w1]
                if reduce == "max":
                    out[k, :, i, j] = region.amax(dim=(1, 2))
                elif reduce == "mean":
                    out[k, :, i, j] = region.mean(dim=(1, 2))
                else:  # a running maximum started at 0
                    out[k, :, i, j] = region.amax(dim=(1, 2)).clamp(min=0)
    return out


def good_smooth_l1(deltas, targets, labels, beta):
    positive = labels > 0
    x = (deltas[positive] - targets[positive]).abs()
    loss = torch.where(x < beta, 0.5 * x**2 / beta, x - 0.5 * beta)
    return loss.sum() / max(len(labels), 1)


def good_smooth_l1_masked(deltas, targets, labels, beta):
    x = (deltas - targets).abs()
    loss = torch.where(x < beta, 0.5 * x * x / beta, x - 0.5 * beta)
    return (loss.sum(dim=1) * (labels > 0)).sum() / max(labels.numel(), 1)


def roi_pool_no_rounding(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size, spatial_scale, rounding=math.floor)


def roi_pool_round_half_to_even(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size, spatial_scale, rounding=round)


def roi_pool_end_exclusive(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size, spatial_scale, inclusive=0)


def roi_pool_floor_both_ends(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size, spatial_scale, end=math.floor)


def roi_pool_ceil_both_ends(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size, spatial_scale, start=math.ceil)


def roi_pool_bins_one_too_wide(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size, spatial_scale, end=lambda v: math.ceil(v) + 1)


def roi_pool_ignores_spatial_scale(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size, spatial_scale, use_scale=False)


def roi_pool_ignores_batch_index(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size, spatial_scale, use_batch=False)


def roi_pool_average(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size, spatial_scale, reduce="mean")


def roi_pool_max_starts_at_zero(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size, spatial_scale, reduce="max0")


def roi_pool_empty_bins_minus_inf(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size, spatial_scale, empty=float("-inf"))


def roi_pool_transposed_grid(features, rois, output_size, spatial_scale):
    return good_roi_pool(features, rois, output_size[::-1], spatial_scale).transpose(2, 3)


def roi_pool_stacks_a_list(features, rois, output_size, spatial_scale):
    return torch.stack(
        [good_roi_pool(features, roi[None], output_size, spatial_scale)[0] for roi in rois]
    )


def roi_pool_float32(features, rois, output_size, spatial_scale):
    return good_roi_pool(features.float(), rois.float(), output_size, spatial_scale)


def roi_pool_adaptive_max_pool(features, rois, output_size, spatial_scale):
    """Crops the rounded RoI and uses adaptive_max_pool2d: other bins, no 1-cell minimum."""
    out = []
    for roi in rois:
        x1, y1, x2, y2 = (_c_round(float(v) * spatial_scale) for v in roi[1:])
        region = features[int(roi[0]), :, max(y1, 0) : max(y2 + 1, 1), max(x1, 0) : max(x2 + 1, 1)]
        out.append(F.adaptive_max_pool2d(region, output_size))
    return torch.stack(out) if out else features.new_zeros((0, features.shape[1], *output_size))


def _smooth(x, beta):
    x = x.abs()
    return torch.where(x < beta, 0.5 * x**2 / beta, x - 0.5 * beta)


def smooth_l1_beta_ignored(deltas, targets, labels, beta):
    return good_smooth_l1(deltas, targets, labels, 1.0)


def smooth_l1_without_half(deltas, targets, labels, beta):
    x = (deltas - targets)[labels > 0].abs()
    return torch.where(x < beta, x**2 / beta, x - 0.5 * beta).sum() / max(len(labels), 1)


def smooth_l1_is_l2_everywhere(deltas, targets, labels, beta):
    x = (deltas - targets)[labels > 0]
    return (0.5 * x**2 / beta).sum() / max(len(labels), 1)


def smooth_l1_is_l1_everywhere(deltas, targets, labels, beta):
    return (deltas - targets)[labels > 0].abs().sum() / max(len(labels), 1)


def smooth_l1_summed(deltas, targets, labels, beta):
    return _smooth(deltas - targets, beta)[labels > 0].sum()


def smooth_l1_mean_over_elements(deltas, targets, labels, beta):
    return F.smooth_l1_loss(deltas[labels > 0], targets[labels > 0], beta=beta)


def smooth_l1_over_positives_only(deltas, targets, labels, beta):
    positive = labels > 0
    return _smooth(deltas - targets, beta)[positive].sum() / max(int(positive.sum()), 1)


def smooth_l1_on_background_too(deltas, targets, labels, beta):
    return _smooth(deltas - targets, beta).sum() / max(len(labels), 1)


def smooth_l1_linear_part_divided_by_beta(deltas, targets, labels, beta):
    x = (deltas - targets)[labels > 0].abs()
    return torch.where(x < beta, 0.5 * x**2 / beta, (x - 0.5 * beta) / beta).sum() / max(
        len(labels), 1
    )


def smooth_l1_nan_without_rois(deltas, targets, labels, beta):
    return _smooth(deltas - targets, beta)[labels > 0].sum() / len(labels)


def smooth_l1_returns_a_float(deltas, targets, labels, beta):
    return good_smooth_l1(deltas, targets, labels, beta).item()


def smooth_l1_per_roi(deltas, targets, labels, beta):
    return _smooth(deltas - targets, beta).sum(dim=1) * (labels > 0) / max(len(labels), 1)


def smooth_l1_always_float32(deltas, targets, labels, beta):
    return good_smooth_l1(deltas.float(), targets.float(), labels, beta)


CORRECT = [
    (check_roi_pool, torchvision.ops.roi_pool),
    (check_roi_pool, good_roi_pool),
    (check_smooth_l1_box_loss, good_smooth_l1),
    (check_smooth_l1_box_loss, good_smooth_l1_masked),
    (check_smooth_l1_box_loss, fast_rcnn_training.smooth_l1_box_loss),
]


WRONG = [
    Wrong(check_roi_pool, roi_pool_no_rounding, "values differ"),
    Wrong(check_roi_pool, roi_pool_round_half_to_even, "round half away from zero"),
    Wrong(check_roi_pool, roi_pool_end_exclusive, "2x2 grid"),
    Wrong(check_roi_pool, roi_pool_floor_both_ends, "values differ"),
    Wrong(check_roi_pool, roi_pool_ceil_both_ends, "values differ"),
    Wrong(check_roi_pool, roi_pool_bins_one_too_wide, "values differ"),
    Wrong(check_roi_pool, roi_pool_ignores_spatial_scale, "spatial_scale 0.25"),
    Wrong(check_roi_pool, roi_pool_ignores_batch_index, "batch index"),
    Wrong(check_roi_pool, roi_pool_average, "2x2 grid"),
    Wrong(check_roi_pool, roi_pool_max_starts_at_zero, "negative features"),
    Wrong(check_roi_pool, roi_pool_empty_bins_minus_inf, "expected 0, got -inf"),
    Wrong(check_roi_pool, roi_pool_transposed_grid, "values differ"),
    Wrong(check_roi_pool, roi_pool_stacks_a_list, "no RoIs"),
    Wrong(check_roi_pool, roi_pool_float32, "dtype"),
    Wrong(check_roi_pool, roi_pool_adaptive_max_pool, "values differ"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_beta_ignored, "beta = 1/9"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_without_half, "quadratic part"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_is_l2_everywhere, "linear part"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_is_l1_everywhere, "quadratic part"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_summed, "background RoIs"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_mean_over_elements, "quadratic part"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_over_positives_only, "background RoIs"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_on_background_too, "background RoIs"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_linear_part_divided_by_beta, "beta = 1/9"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_nan_without_rois, "no RoIs at all"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_returns_a_float, "no .item()"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_per_roi, "0-dim tensor"),
    Wrong(check_smooth_l1_box_loss, smooth_l1_always_float32, "dtype"),
]


def test_the_module_lists_its_checks():
    assert all_checks()["roi"] == CHECKS == (check_roi_pool, check_smooth_l1_box_loss)
    assert check_roi_pool.reference is torchvision_roi_pool
    assert check_smooth_l1_box_loss.reference is torchvision_smooth_l1_box_loss


@pytest.mark.parametrize(
    ("make_cases", "index"), [(roi_pool_cases, 1), (smooth_l1_box_loss_cases, 0)]
)
def test_cases_are_deterministic_and_cover_edge_cases(make_cases, index):
    cases = assert_cases_deterministic_with_hints(make_cases)
    sizes = {len(c.args[index]) for c in cases}  # the RoIs, or the deltas
    assert 0 in sizes and 1 in sizes  # nothing, and a batch of one


def test_roi_pool_cases_cover_the_quantization_traps():
    """The .5 case really separates C's rounding from torch.round, and the empty case is really
    empty."""
    case = next(c for c in roi_pool_cases() if "round half away" in c.name)
    features, rois, size, scale = case.args
    assert not torch.equal(
        good_roi_pool(features, rois, size, scale),
        roi_pool_round_half_to_even(features, rois, size, scale),
    )
    outside = next(c for c in roi_pool_cases() if "entirely outside" in c.name)
    assert torchvision.ops.roi_pool(*outside.args).abs().max() == 0


def test_smooth_l1_reference_is_torchvision_fastrcnn_style():
    g = torch.Generator().manual_seed(0)
    deltas, targets = torch.randn(10, 4, generator=g), torch.randn(10, 4, generator=g)
    labels = torch.tensor([0, 1, 2, 0, 0, 3, 0, 1, 0, 0])
    expected = (
        F.smooth_l1_loss(deltas[labels > 0], targets[labels > 0], beta=1 / 9, reduction="sum") / 10
    )
    torch.testing.assert_close(
        fast_rcnn_training.smooth_l1_box_loss(deltas, targets, labels, 1 / 9), expected
    )
    torch.testing.assert_close(
        torchvision_smooth_l1_box_loss(deltas, targets, labels, 1 / 9), expected
    )
