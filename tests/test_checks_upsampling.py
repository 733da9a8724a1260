"""The transposed-convolution checks accept correct functions and reject stubs and plausible student
mistakes.

Each ``Wrong`` below is a real, deliberately wrong implementation a student might write; the check
must raise CheckFailed for it, with a message that says what is wrong (``says``);
``tests/test_check_contract.py`` runs them all.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from check_contract import Wrong, assert_cases_deterministic_with_hints
from test_checks_upsample import CORRECT as UPSAMPLE_CORRECT
from test_checks_upsample import WRONG as UPSAMPLE_WRONG

from course_utils.grading.checks import all_checks
from course_utils.grading.checks.upsampling import (
    CHECKS,
    check_conv_transpose2d,
    check_Upsample,
    conv_transpose2d_cases,
    torch_conv_transpose2d,
)
from course_utils.segmentation import upsampling


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


VALUES = "values differ"


SHAPE = "returned shape"


RAISED = "raised"


CORRECT = [
    (check_conv_transpose2d, good_scatter),
    (check_conv_transpose2d, good_via_conv),
    (
        check_conv_transpose2d,
        lambda x, w, s, p, op: F.conv_transpose2d(x, w, stride=s, padding=p, output_padding=op),
    ),
    *UPSAMPLE_CORRECT,
]


WRONG = [
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
    *UPSAMPLE_WRONG,
]


def test_the_module_lists_its_checks():
    assert all_checks()["upsampling"] == CHECKS == (check_conv_transpose2d, check_Upsample)
    assert check_conv_transpose2d.reference is torch_conv_transpose2d


def test_cases_are_deterministic_and_have_hints():
    cases = assert_cases_deterministic_with_hints(conv_transpose2d_cases)
    assert any(c.args[0].dtype == torch.float64 for c in cases)
    assert {c.args[2] for c in cases} >= {1, 2, 3}  # strides
