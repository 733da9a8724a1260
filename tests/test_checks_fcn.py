"""The convolutionalization checks accept correct functions and reject stubs and plausible student
mistakes.

Each ``Wrong`` below is a real, deliberately wrong implementation a student might write; the check
must raise CheckFailed for it, with a message that says what is wrong (``says``);
``tests/test_check_contract.py`` runs them all.
"""

from __future__ import annotations

import torch
from check_contract import Wrong, assert_cases_deterministic_with_hints
from torch import nn

from course_utils.grading.checks import all_checks
from course_utils.grading.checks.fcn import CHECKS, check_linear_to_conv, linear_to_conv_cases
from course_utils.segmentation import convolutionalization


def good_linear_to_conv(linear, in_channels, kernel_size=1):
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    conv = nn.Conv2d(
        in_channels,
        linear.out_features,
        (kh, kw),
        bias=linear.bias is not None,
        device=linear.weight.device,
        dtype=linear.weight.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(linear.weight.view(linear.out_features, in_channels, kh, kw))
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def good_linear_to_conv_parameters(linear, in_channels, kernel_size=1):
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    conv = nn.Conv2d(in_channels, linear.out_features, (kh, kw), bias=linear.bias is not None).to(
        linear.weight
    )
    conv.weight = nn.Parameter(linear.weight.detach().reshape(conv.weight.shape).clone())
    if linear.bias is not None:
        conv.bias = nn.Parameter(linear.bias.detach().clone())
    return conv


def _kernel(kernel_size):
    return (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)


def conv_weight_not_reshaped(linear, in_channels, kernel_size=1):
    conv = good_linear_to_conv(linear, in_channels, kernel_size)
    conv.weight = nn.Parameter(linear.weight.detach().clone())
    return conv


def conv_weight_transposed(linear, in_channels, kernel_size=1):
    kh, kw = _kernel(kernel_size)
    conv = nn.Conv2d(
        in_channels,
        linear.out_features,
        (kh, kw),
        device=linear.weight.device,
        dtype=linear.weight.dtype,
        bias=linear.bias is not None,
    )
    with torch.no_grad():
        conv.weight.copy_(linear.weight.T.reshape(conv.weight.shape))
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def conv_bias_dropped(linear, in_channels, kernel_size=1):
    kh, kw = _kernel(kernel_size)
    conv = nn.Conv2d(
        in_channels,
        linear.out_features,
        (kh, kw),
        bias=False,
        device=linear.weight.device,
        dtype=linear.weight.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(linear.weight.reshape(conv.weight.shape))
    return conv


def conv_random_bias_when_none(linear, in_channels, kernel_size=1):
    kh, kw = _kernel(kernel_size)
    conv = nn.Conv2d(
        in_channels,
        linear.out_features,
        (kh, kw),
        device=linear.weight.device,
        dtype=linear.weight.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(linear.weight.reshape(conv.weight.shape))
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def conv_channels_last_order(linear, in_channels, kernel_size=1):
    kh, kw = _kernel(kernel_size)
    conv = good_linear_to_conv(linear, in_channels, kernel_size)
    with torch.no_grad():
        conv.weight.copy_(
            linear.weight.reshape(linear.out_features, kh, kw, in_channels).permute(0, 3, 1, 2)
        )
    return conv


def conv_kernel_ignored(linear, in_channels, kernel_size=1):
    conv = nn.Conv2d(
        linear.in_features,
        linear.out_features,
        1,
        bias=linear.bias is not None,
        device=linear.weight.device,
        dtype=linear.weight.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(linear.weight[:, :, None, None])
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def conv_fresh_weights(linear, in_channels, kernel_size=1):
    return nn.Conv2d(
        in_channels,
        linear.out_features,
        _kernel(kernel_size),
        bias=linear.bias is not None,
        device=linear.weight.device,
        dtype=linear.weight.dtype,
    )


def conv_padded(linear, in_channels, kernel_size=1):
    conv = good_linear_to_conv(linear, in_channels, kernel_size)
    conv.padding = (1, 1)
    return conv


def conv_strided(linear, in_channels, kernel_size=1):
    conv = good_linear_to_conv(linear, in_channels, kernel_size)
    conv.stride = _kernel(kernel_size) if _kernel(kernel_size) != (1, 1) else (2, 2)
    return conv


def conv_kh_kw_swapped(linear, in_channels, kernel_size=1):
    kh, kw = _kernel(kernel_size)
    return good_linear_to_conv(linear, in_channels, (kw, kh))


def conv_default_dtype(linear, in_channels, kernel_size=1):
    conv = nn.Conv2d(
        in_channels, linear.out_features, _kernel(kernel_size), bias=linear.bias is not None
    )
    with torch.no_grad():
        conv.weight.copy_(linear.weight.reshape(conv.weight.shape))
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def conv_returns_linear(linear, in_channels, kernel_size=1):
    return linear


def conv_reshapes_in_place(linear, in_channels, kernel_size=1):
    conv = good_linear_to_conv(linear, in_channels, kernel_size)
    linear.weight.data = linear.weight.data.reshape(conv.weight.shape)
    return conv


CORRECT = [
    (check_linear_to_conv, good_linear_to_conv),
    (check_linear_to_conv, good_linear_to_conv_parameters),
    (check_linear_to_conv, convolutionalization.linear_to_conv),
]


WRONG = [
    Wrong(check_linear_to_conv, conv_weight_not_reshaped, "reshape the linear weight"),
    Wrong(check_linear_to_conv, conv_weight_transposed, "weight values differ"),
    Wrong(check_linear_to_conv, conv_bias_dropped, "bias is missing"),
    Wrong(check_linear_to_conv, conv_random_bias_when_none, "has none"),
    Wrong(check_linear_to_conv, conv_channels_last_order, "channel-major"),
    Wrong(check_linear_to_conv, conv_kernel_ignored, "weight has shape"),
    Wrong(check_linear_to_conv, conv_fresh_weights, "weight values differ"),
    Wrong(check_linear_to_conv, conv_padded, "padding"),
    Wrong(check_linear_to_conv, conv_strided, "stride"),
    Wrong(check_linear_to_conv, conv_kh_kw_swapped, "weight has shape"),
    Wrong(check_linear_to_conv, conv_default_dtype, "dtype=linear.weight.dtype"),
    Wrong(check_linear_to_conv, conv_returns_linear, "expected an nn.Conv2d"),
    Wrong(check_linear_to_conv, conv_reshapes_in_place, "changed shape"),
]


def test_the_module_lists_its_checks():
    assert all_checks()["fcn"] == CHECKS == (check_linear_to_conv,)
    assert check_linear_to_conv.reference is convolutionalization.linear_to_conv


def test_cases_are_deterministic_and_have_hints():
    cases = assert_cases_deterministic_with_hints(linear_to_conv_cases)
    assert any(c.args[0].bias is None for c in cases)
    assert any(c.args[0].weight.dtype == torch.float64 for c in cases)
