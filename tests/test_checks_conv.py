"""The convolution checks accept correct functions and reject stubs and plausible student mistakes.

Each ``Wrong`` below is a real, deliberately wrong implementation; the check must raise CheckFailed for it with
a message containing ``says``. ``tests/test_check_contract.py`` runs them all.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from check_contract import Wrong

from course_utils.grading.checks import all_checks
from course_utils.grading.checks.conv import (
    CHECKS,
    check_conv2d_output_size,
    check_conv_transpose2d,
    check_conv_transpose2d_output_size,
    check_receptive_field,
    conv2d_output_size_cases,
    conv_transpose2d_cases,
    conv_transpose2d_output_size_cases,
    measured_receptive_field,
    receptive_field_cases,
)
from course_utils.segmentation import conv_arithmetic, upsampling
from course_utils.segmentation import receptive_field as rf_module

# ------------------------------------------------------------------------------------------------------------
# Correct implementations, written the way a student would
# ------------------------------------------------------------------------------------------------------------


def good_conv2d_output_size(size, kernel_size, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def good_conv2d_output_size_floor(size, kernel_size, stride, padding, dilation):
    span = dilation * (kernel_size - 1) + 1
    return math.floor((size + 2 * padding - span) / stride) + 1


def good_conv_transpose2d_output_size(size, kernel_size, stride, padding, output_padding, dilation):
    return (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1


def good_scatter(x, weight, stride, padding, output_padding):
    n, _, h, w = x.shape
    k = weight.shape[-1]
    canvas = x.new_zeros(
        n,
        weight.shape[1],
        (h - 1) * stride + k + output_padding,
        (w - 1) * stride + k + output_padding,
    )
    for i in range(h):
        for j in range(w):
            copy = torch.einsum("nc,cokl->nokl", x[:, :, i, j], weight)
            canvas[:, :, i * stride : i * stride + k, j * stride : j * stride + k] += copy
    out_h = (h - 1) * stride + k - 2 * padding + output_padding
    out_w = (w - 1) * stride + k - 2 * padding + output_padding
    return canvas[:, :, padding : padding + out_h, padding : padding + out_w]


def good_via_conv(x, weight, stride, padding, output_padding):
    return upsampling.conv_transpose2d_via_conv(x, weight, None, stride, padding, output_padding)


def good_receptive_field(layers):
    rf, jump = 1, 1
    for k, s, d in layers:
        rf += d * (k - 1) * jump
        jump *= s
    return rf


def good_receptive_field_backwards(layers):
    """Correct the other way round: from the output back to the input."""
    rf = 1
    for k, s, d in reversed(layers):
        rf = (rf - 1) * s + d * (k - 1) + 1
    return rf


CORRECT = [
    (check_conv2d_output_size, good_conv2d_output_size),
    (check_conv2d_output_size, good_conv2d_output_size_floor),
    (check_conv2d_output_size, conv_arithmetic.conv2d_output_size),
    (check_conv_transpose2d_output_size, good_conv_transpose2d_output_size),
    (check_conv_transpose2d_output_size, conv_arithmetic.conv_transpose2d_output_size),
    (check_conv_transpose2d, good_scatter),
    (check_conv_transpose2d, good_via_conv),
    (
        check_conv_transpose2d,
        lambda x, w, s, p, op: F.conv_transpose2d(x, w, stride=s, padding=p, output_padding=op),
    ),
    (check_receptive_field, good_receptive_field),
    (check_receptive_field, good_receptive_field_backwards),
    (check_receptive_field, rf_module.receptive_field),
]

# ------------------------------------------------------------------------------------------------------------
# Wrong conv2d_output_size
# ------------------------------------------------------------------------------------------------------------


def size_without_plus_one(size, kernel_size, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride


def size_dilation_ignored(size, kernel_size, stride, padding, dilation):
    return (size + 2 * padding - kernel_size) // stride + 1


def size_span_d_times_k(size, kernel_size, stride, padding, dilation):
    return (size + 2 * padding - dilation * kernel_size) // stride + 1


def size_ceil(size, kernel_size, stride, padding, dilation):
    return math.ceil((size + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1


def size_padding_once(size, kernel_size, stride, padding, dilation):
    return (size + padding - dilation * (kernel_size - 1) - 1) // stride + 1


def size_true_division(size, kernel_size, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) / stride + 1


def size_without_minus_one(size, kernel_size, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel_size - 1)) // stride + 1


def size_span_dk_minus_one(size, kernel_size, stride, padding, dilation):
    return (size + 2 * padding - (dilation * kernel_size - 1)) // stride + 1


def size_stride_divides_everything(size, kernel_size, stride, padding, dilation):
    return (size + 2 * padding) // stride - dilation * (kernel_size - 1)


def size_as_tensor(size, kernel_size, stride, padding, dilation):
    return torch.tensor(good_conv2d_output_size(size, kernel_size, stride, padding, dilation))


def size_without_return(size, kernel_size, stride, padding, dilation):
    (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1  # noqa: B018


# ------------------------------------------------------------------------------------------------------------
# Wrong conv_transpose2d_output_size
# ------------------------------------------------------------------------------------------------------------


def tsize_output_padding_dropped(size, kernel_size, stride, padding, output_padding, dilation):
    return (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + 1


def tsize_dilation_ignored(size, kernel_size, stride, padding, output_padding, dilation):
    return (size - 1) * stride - 2 * padding + (kernel_size - 1) + output_padding + 1


def tsize_k_instead_of_k_minus_one(size, kernel_size, stride, padding, output_padding, dilation):
    return (size - 1) * stride - 2 * padding + dilation * kernel_size + output_padding + 1


def tsize_without_plus_one(size, kernel_size, stride, padding, output_padding, dilation):
    return (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding


def tsize_n_times_stride(size, kernel_size, stride, padding, output_padding, dilation):
    return size * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1


def tsize_padding_added(size, kernel_size, stride, padding, output_padding, dilation):
    return (size - 1) * stride + 2 * padding + dilation * (kernel_size - 1) + output_padding + 1


def tsize_padding_once(size, kernel_size, stride, padding, output_padding, dilation):
    return (size - 1) * stride - padding + dilation * (kernel_size - 1) + output_padding + 1


def tsize_stride_applied_to_kernel(size, kernel_size, stride, padding, output_padding, dilation):
    return (
        (size - 1) * stride
        - 2 * padding
        + stride * dilation * (kernel_size - 1)
        + output_padding
        + 1
    )


def tsize_output_padding_both_sides(size, kernel_size, stride, padding, output_padding, dilation):
    return (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + 2 * output_padding + 1


def tsize_inverted_conv_formula(size, kernel_size, stride, padding, output_padding, dilation):
    """Solving out = (n + 2p - span) / s + 1 for n with a float division."""
    return (
        (size - 1) * stride / 1.0 - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1
    )


# ------------------------------------------------------------------------------------------------------------
# Wrong conv_transpose2d
# ------------------------------------------------------------------------------------------------------------


def _scatter(
    x,
    weight,
    stride,
    padding,
    output_padding,
    *,
    place=None,
    tap=1,
    accumulate=True,
    flip=False,
    crop=None,
    dtype=None,
    channels="nc,cokl->nokl",
):
    """good_scatter with one thing changed (the knobs name the mistakes)."""
    n, _, h, w = x.shape
    k = weight.shape[-1]
    kernel = weight.flip(-2, -1) if flip else weight
    place = stride if place is None else place
    span = tap * (k - 1) + 1
    out_channels = (
        kernel.shape[1]
        if channels.endswith("nokl") and channels.startswith("nc,co")
        else kernel.shape[0]
    )
    canvas = torch.zeros(
        n,
        out_channels,
        (h - 1) * stride + span + output_padding + k * stride,
        (w - 1) * stride + span + output_padding + k * stride,
        dtype=dtype or x.dtype,
        device=x.device,
    )
    for i in range(h):
        for j in range(w):
            copy = torch.einsum(channels, x[:, :, i, j], kernel)
            rows = slice(i * place, i * place + span, tap)
            cols = slice(j * place, j * place + span, tap)
            if accumulate:
                canvas[:, :, rows, cols] += copy
            else:
                canvas[:, :, rows, cols] = copy
    out_h = (h - 1) * stride + k - 2 * padding + output_padding
    out_w = (w - 1) * stride + k - 2 * padding + output_padding
    top = padding if crop is None else crop
    return canvas[:, :, top : top + out_h, top : top + out_w]


def tconv_kernel_flipped(x, weight, stride, padding, output_padding):
    return _scatter(x, weight, stride, padding, output_padding, flip=True)


def tconv_scatter_at_i_not_i_times_stride(x, weight, stride, padding, output_padding):
    return _scatter(x, weight, stride, padding, output_padding, place=1)


def tconv_stride_applied_to_kernel(x, weight, stride, padding, output_padding):
    return _scatter(x, weight, stride, padding, output_padding, tap=stride)


def tconv_overwrites_overlaps(x, weight, stride, padding, output_padding):
    return _scatter(x, weight, stride, padding, output_padding, accumulate=False)


def tconv_crops_nothing_at_the_top(x, weight, stride, padding, output_padding):
    return _scatter(x, weight, stride, padding, output_padding, crop=0)


def tconv_output_padding_at_the_top(x, weight, stride, padding, output_padding):
    return _scatter(x, weight, stride, padding, output_padding, crop=padding + output_padding)


def tconv_canvas_float32(x, weight, stride, padding, output_padding):
    return _scatter(x, weight, stride, padding, output_padding, dtype=torch.float32)


def tconv_weight_read_as_conv2d(x, weight, stride, padding, output_padding):
    """Reads weight as (C_out, C_in, k, k), like nn.Conv2d's."""
    return _scatter(x, weight, stride, padding, output_padding, channels="nc,ockl->nokl")


def tconv_padding_pads(x, weight, stride, padding, output_padding):
    full = good_scatter(x, weight, stride, 0, output_padding)
    return F.pad(full, (padding,) * 4)


def tconv_output_padding_dropped(x, weight, stride, padding, output_padding):
    return good_scatter(x, weight, stride, padding, 0)


def tconv_via_conv_not_flipped(x, weight, stride, padding, output_padding):
    stretched = upsampling.insert_zeros(x, stride)
    k = weight.shape[-1]
    stretched = F.pad(
        stretched,
        (
            k - 1 - padding,
            k - 1 - padding + output_padding,
            k - 1 - padding,
            k - 1 - padding + output_padding,
        ),
    )
    return F.conv2d(stretched, weight.transpose(0, 1))


def tconv_via_conv_strided(x, weight, stride, padding, output_padding):
    """Uses the stride on the convolution instead of inserting zeros."""
    k = weight.shape[-1]
    padded = F.pad(
        x,
        (
            k - 1 - padding,
            k - 1 - padding + output_padding,
            k - 1 - padding,
            k - 1 - padding + output_padding,
        ),
    )
    return F.conv2d(padded, weight.flip(-2, -1).transpose(0, 1), stride=stride)


def tconv_on_cpu(x, weight, stride, padding, output_padding):
    return good_scatter(x.cpu(), weight.cpu(), stride, padding, output_padding)


# ------------------------------------------------------------------------------------------------------------
# Wrong receptive_field
# ------------------------------------------------------------------------------------------------------------


def rf_ignores_stride_accumulation(layers):
    return 1 + sum(d * (k - 1) for k, s, d in layers)


def rf_ignores_dilation(layers):
    rf, jump = 1, 1
    for k, s, d in layers:
        rf += (k - 1) * jump
        jump *= s
    return rf


def rf_starts_at_zero(layers):
    rf, jump = 0, 1
    for k, s, d in layers:
        rf += d * (k - 1) * jump
        jump *= s
    return rf


def rf_adds_k_not_k_minus_one(layers):
    rf, jump = 1, 1
    for k, s, d in layers:
        rf += d * k * jump
        jump *= s
    return rf


def rf_updates_jump_first(layers):
    rf, jump = 1, 1
    for k, s, d in layers:
        jump *= s
        rf += d * (k - 1) * jump
    return rf


def rf_jump_includes_dilation(layers):
    rf, jump = 1, 1
    for k, s, d in layers:
        rf += d * (k - 1) * jump
        jump *= s * d
    return rf


def rf_sum_of_spans(layers):
    return sum(d * (k - 1) + 1 for k, s, d in layers) if layers else 1


def rf_last_stride_only(layers):
    rf, jump = 1, 1
    for k, s, d in layers:
        rf += d * (k - 1) * jump
        jump = s
    return rf


def rf_span_times_stride(layers):
    rf = 1
    for k, s, d in layers:
        rf = rf * s + d * (k - 1)
    return rf


def rf_as_float(layers):
    rf, jump = 1.0, 1.0
    for k, s, d in layers:
        rf += d * (k - 1) * jump
        jump *= s
    return rf


def rf_crashes_on_empty(layers):
    k, s, d = layers[0]
    rf, jump = d * (k - 1) + 1, s
    for k, s, d in layers[1:]:
        rf += d * (k - 1) * jump
        jump *= s
    return rf


# ------------------------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------------------------


VALUES = "values differ"
SHAPE = "returned shape"
TOO = "expected"  # "returned 4, expected 3 (too large by 1)."
RAISED = "raised"

WRONG = [
    Wrong(check_conv2d_output_size, size_without_plus_one, "too small by 1"),
    Wrong(check_conv2d_output_size, size_dilation_ignored, "too large"),
    Wrong(check_conv2d_output_size, size_span_d_times_k, "too small"),
    Wrong(check_conv2d_output_size, size_ceil, "too large by 1"),
    Wrong(check_conv2d_output_size, size_padding_once, "too small"),
    Wrong(check_conv2d_output_size, size_true_division, "divide with //"),
    Wrong(check_conv2d_output_size, size_without_minus_one, "too large by 1"),
    Wrong(check_conv2d_output_size, size_span_dk_minus_one, "expected"),
    Wrong(check_conv2d_output_size, size_stride_divides_everything, "expected"),
    Wrong(check_conv2d_output_size, size_as_tensor, "expected a Python int"),
    Wrong(check_conv2d_output_size, size_without_return, "forget the `return`"),
    Wrong(check_conv_transpose2d_output_size, tsize_output_padding_dropped, "too small by 1"),
    Wrong(check_conv_transpose2d_output_size, tsize_dilation_ignored, "too small"),
    Wrong(check_conv_transpose2d_output_size, tsize_k_instead_of_k_minus_one, "too large"),
    Wrong(check_conv_transpose2d_output_size, tsize_without_plus_one, "too small by 1"),
    Wrong(check_conv_transpose2d_output_size, tsize_n_times_stride, "too large"),
    Wrong(check_conv_transpose2d_output_size, tsize_padding_added, "too large"),
    Wrong(check_conv_transpose2d_output_size, tsize_padding_once, "too large"),
    Wrong(check_conv_transpose2d_output_size, tsize_stride_applied_to_kernel, "too large"),
    Wrong(check_conv_transpose2d_output_size, tsize_output_padding_both_sides, "too large by 1"),
    Wrong(check_conv_transpose2d_output_size, tsize_inverted_conv_formula, "divide with //"),
    Wrong(check_conv_transpose2d, tconv_kernel_flipped, VALUES),
    Wrong(check_conv_transpose2d, tconv_scatter_at_i_not_i_times_stride, VALUES),
    Wrong(check_conv_transpose2d, tconv_stride_applied_to_kernel, VALUES),
    Wrong(check_conv_transpose2d, tconv_overwrites_overlaps, VALUES),
    Wrong(check_conv_transpose2d, tconv_crops_nothing_at_the_top, VALUES),
    Wrong(check_conv_transpose2d, tconv_output_padding_at_the_top, VALUES),
    Wrong(
        check_conv_transpose2d,
        tconv_canvas_float32,
        "returned dtype torch.float32, expected torch.float64",
    ),
    Wrong(check_conv_transpose2d, tconv_weight_read_as_conv2d, RAISED),
    Wrong(check_conv_transpose2d, tconv_padding_pads, SHAPE),
    Wrong(check_conv_transpose2d, tconv_output_padding_dropped, SHAPE),
    Wrong(check_conv_transpose2d, tconv_via_conv_not_flipped, VALUES),
    Wrong(check_conv_transpose2d, tconv_via_conv_strided, SHAPE),
    Wrong(check_conv_transpose2d, tconv_on_cpu, "but the inputs were on cuda", cuda_only=True),
    Wrong(check_receptive_field, rf_ignores_stride_accumulation, "too small"),
    Wrong(check_receptive_field, rf_ignores_dilation, "too small"),
    Wrong(check_receptive_field, rf_starts_at_zero, "too small by 1"),
    Wrong(check_receptive_field, rf_adds_k_not_k_minus_one, "too large"),
    Wrong(check_receptive_field, rf_updates_jump_first, "too large"),
    Wrong(check_receptive_field, rf_jump_includes_dilation, "too large"),
    Wrong(check_receptive_field, rf_sum_of_spans, "too large"),
    Wrong(check_receptive_field, rf_last_stride_only, "too small"),
    Wrong(check_receptive_field, rf_span_times_stride, "expected"),
    Wrong(check_receptive_field, rf_as_float, "float"),
    Wrong(check_receptive_field, rf_crashes_on_empty, "raised IndexError"),
]


def test_the_module_lists_its_checks():
    assert all_checks()["conv"] == CHECKS
    assert [c.function_name for c in CHECKS] == [
        "conv2d_output_size",
        "conv_transpose2d_output_size",
        "conv_transpose2d",
        "receptive_field",
    ]


@pytest.mark.parametrize(
    "make_cases",
    [
        conv2d_output_size_cases,
        conv_transpose2d_output_size_cases,
        conv_transpose2d_cases,
        receptive_field_cases,
    ],
)
def test_cases_are_deterministic_and_have_hints(make_cases):
    first, second = make_cases(), make_cases()
    assert [c.name for c in first] == [c.name for c in second]
    for a, b in zip(first, second):
        assert a.hint, f"case {a.name!r} needs a hint"
        assert all(
            torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y
            for x, y in zip(a.args, b.args)
        )


def test_size_grids_cover_every_argument():
    conv = [c.args for c in conv2d_output_size_cases()]
    assert (
        {a[2] for a in conv} >= {1, 2, 3}
        and {a[4] for a in conv} >= {1, 2, 3}
        and {a[3] for a in conv} >= {0, 1, 2}
    )
    transposed = [c.args for c in conv_transpose2d_output_size_cases()]
    assert {a[4] for a in transposed} >= {0, 1, 2} and {a[5] for a in transposed} >= {1, 2, 3}


def test_receptive_field_reference_is_a_measurement_that_agrees_with_the_formula():
    for case in receptive_field_cases():
        assert measured_receptive_field(case.args[0]) == rf_module.receptive_field(case.args[0])
