"""The convolution-arithmetic checks accept correct functions and reject stubs and plausible student
mistakes.

Each ``Wrong`` below is a real, deliberately wrong implementation a student might write; the check
must raise CheckFailed for it, with a message that says what is wrong (``says``);
``tests/test_check_contract.py`` runs them all.
"""

from __future__ import annotations

import math

import pytest
import torch
from check_contract import Wrong, assert_cases_deterministic_with_hints

from course_utils.grading.checks import all_checks
from course_utils.grading.checks.conv_arithmetic import (
    CHECKS,
    check_conv2d_output_size,
    check_conv_transpose2d_output_size,
    conv2d_output_size_cases,
    conv_transpose2d_output_size_cases,
    torch_conv2d_output_size,
    torch_conv_transpose2d_output_size,
)
from course_utils.segmentation import conv_arithmetic


def good_conv2d_output_size(size, kernel_size, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def good_conv2d_output_size_floor(size, kernel_size, stride, padding, dilation):
    span = dilation * (kernel_size - 1) + 1
    return math.floor((size + 2 * padding - span) / stride) + 1


def good_conv_transpose2d_output_size(size, kernel_size, stride, padding, output_padding, dilation):
    return (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1


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


CORRECT = [
    (check_conv2d_output_size, good_conv2d_output_size),
    (check_conv2d_output_size, good_conv2d_output_size_floor),
    (check_conv2d_output_size, conv_arithmetic.conv2d_output_size),
    (check_conv_transpose2d_output_size, good_conv_transpose2d_output_size),
    (check_conv_transpose2d_output_size, conv_arithmetic.conv_transpose2d_output_size),
]


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
]


def test_the_module_lists_its_checks():
    assert all_checks()["conv_arithmetic"] == CHECKS
    assert [c.function_name for c in CHECKS] == [
        "conv2d_output_size",
        "conv_transpose2d_output_size",
    ]


@pytest.mark.parametrize(
    "make_cases", [conv2d_output_size_cases, conv_transpose2d_output_size_cases]
)
def test_cases_are_deterministic_and_have_hints(make_cases):
    assert len(assert_cases_deterministic_with_hints(make_cases)) == 33


def test_size_grids_cover_every_argument():
    conv = [c.args for c in conv2d_output_size_cases()]
    assert (
        {a[2] for a in conv} >= {1, 2, 3}
        and {a[4] for a in conv} >= {1, 2, 3}
        and {a[3] for a in conv} >= {0, 1, 2}
    )
    transposed = [c.args for c in conv_transpose2d_output_size_cases()]
    assert {a[4] for a in transposed} >= {0, 1, 2} and {a[5] for a in transposed} >= {1, 2, 3}


def test_the_references_are_the_formulas():
    for case in conv2d_output_size_cases():
        assert torch_conv2d_output_size(*case.args) == good_conv2d_output_size(*case.args)
    for case in conv_transpose2d_output_size_cases():
        expected = good_conv_transpose2d_output_size(*case.args)
        assert torch_conv_transpose2d_output_size(*case.args) == expected
