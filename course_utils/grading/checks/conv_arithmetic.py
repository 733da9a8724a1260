"""Checks for the convolution-arithmetic assignments (notebook 09): output sizes.

* ``conv2d_output_size(size, kernel_size, stride, padding, dilation) -> int``;
* ``conv_transpose2d_output_size(size, kernel_size, stride, padding, output_padding, dilation)
  -> int``.

Both are compared with the length PyTorch's own layers produce along one dimension, over named
edge cases and a seeded grid of settings.

Usage in a notebook::

    check_conv2d_output_size(conv2d_output_size)   # graded cell: raises on a wrong answer
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from course_utils.grading.assignments import assignment_check
from course_utils.grading.checks._common import compare_int
from course_utils.grading.runner import Case

__all__ = [
    "CHECKS",
    "check_conv2d_output_size",
    "check_conv_transpose2d_output_size",
    "conv2d_output_size_cases",
    "conv_transpose2d_output_size_cases",
    "torch_conv2d_output_size",
    "torch_conv_transpose2d_output_size",
]

_SEED = 909


def torch_conv2d_output_size(
    size: int, kernel_size: int, stride: int, padding: int, dilation: int
) -> int:
    """The output length ``nn.Conv2d`` really produces (a convolution of zeros, one dimension)."""
    x = torch.zeros(1, 1, size)
    return int(
        F.conv1d(
            x, torch.zeros(1, 1, kernel_size), stride=stride, padding=padding, dilation=dilation
        ).shape[-1]
    )


def torch_conv_transpose2d_output_size(
    size: int, kernel_size: int, stride: int, padding: int, output_padding: int, dilation: int
) -> int:
    """The output length ``nn.ConvTranspose2d`` really produces (one dimension)."""
    x = torch.zeros(1, 1, size)
    return int(
        F.conv_transpose1d(
            x,
            torch.zeros(1, 1, kernel_size),
            stride=stride,
            padding=padding,
            output_padding=output_padding,
            dilation=dilation,
        ).shape[-1]
    )


def conv2d_output_size_cases() -> list[Case]:
    """Named edge cases, then a seeded grid of valid settings."""
    span = (
        "A dilated kernel covers d * (k - 1) + 1 pixels: the formula uses d * (k - 1), not d * k."
    )
    cases = [
        Case(
            "3x3 kernel, no padding, stride 1: 5 -> 3",
            (5, 3, 1, 0, 1),
            hint="The kernel fits n - k + 1 times: don't forget the + 1.",
        ),
        Case(
            "3x3 kernel with padding 1 keeps the size: 7 -> 7",
            (7, 3, 1, 1, 1),
            hint="Padding is added on both sides: n + 2 * padding.",
        ),
        Case(
            "1x1 kernel: 6 -> 6",
            (6, 1, 1, 0, 1),
            hint="A 1x1 kernel fits at every pixel: (6 - 1) // 1 + 1.",
        ),
        Case(
            "stride 2 with a remainder: 6 -> 2 (the last, incomplete window is dropped)",
            (6, 3, 2, 0, 1),
            hint="Strided windows that would stick out are dropped: floor((n + 2p - span) / s) + "
            "1, "
            "not ceil. Use //.",
        ),
        Case(
            "stride 2, 3x3, padding 1 halves an even size: 8 -> 4",
            (8, 3, 2, 1, 1),
            hint="floor((8 + 2 - 3) / 2) + 1 = 4: subtract the kernel span before dividing by the "
            "stride.",
        ),
        Case("dilation 2: a 3x3 kernel spans 5 pixels: 7 -> 3", (7, 3, 1, 0, 2), hint=span),
        Case("dilation 3 with padding 3 keeps the size: 9 -> 9", (9, 3, 1, 3, 3), hint=span),
        Case(
            "the kernel exactly fits: 5 -> 1",
            (5, 5, 1, 0, 1),
            hint="One position fits: (5 - 5) // 1 + 1 = 1.",
        ),
        Case(
            "stride 3, dilation 2, padding 2: 11 -> 4",
            (11, 3, 3, 2, 2),
            hint="floor((n + 2p - d(k-1) - 1) / s) + 1 with every argument in its place.",
        ),
    ]
    g = np.random.default_rng(_SEED)
    grid = [
        (n, k, s, p, d)
        for n, k, s, p, d in itertools.product(
            range(1, 14), (1, 2, 3, 4, 5, 7), (1, 2, 3, 4), (0, 1, 2, 3), (1, 2, 3)
        )
        if n + 2 * p >= d * (k - 1) + 1
    ]
    for index in g.choice(len(grid), size=24, replace=False):
        n, k, s, p, d = grid[int(index)]
        cases.append(
            Case(
                f"size {n}, kernel {k}, stride {s}, padding {p}, dilation {d}",
                (n, k, s, p, d),
                hint="out = floor((size + 2 * padding - dilation * (kernel_size - 1) - 1) / "
                "stride) + 1",
            )
        )
    return cases


@assignment_check(
    reference=torch_conv2d_output_size, cases=conv2d_output_size_cases, compare=compare_int
)
def check_conv2d_output_size(
    conv2d_output_size: Callable[..., int], *, quiet: bool = False
) -> None:
    """Check ``conv2d_output_size(size, kernel_size, stride, padding, dilation) -> int``.

    The output length of ``nn.Conv2d`` along one dimension; all arguments are ints, passed by
    position.
    """


def conv_transpose2d_output_size_cases() -> list[Case]:
    """Named edge cases, then a seeded grid of valid settings."""
    formula = (
        "out = (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + "
        "output_padding + 1"
    )
    cases = [
        Case(
            "stride 1, 3x3, no padding: 3 -> 5 (the inverse of a 'valid' convolution)",
            (3, 3, 1, 0, 0, 1),
            hint="Each of the n pixels scatters a k-wide copy; with stride 1 the canvas is n + k - "
            "1 wide.",
        ),
        Case(
            "one pixel, 4x4 kernel, stride 2: 1 -> 4 (one copy of the kernel)",
            (1, 4, 2, 0, 0, 1),
            hint="The stride only separates neighbouring copies: with one pixel there are none, so "
            "use (n - 1) * s.",
        ),
        Case(
            "4x4 kernel, stride 2, padding 1 doubles the size: 5 -> 10",
            (5, 4, 2, 1, 0, 1),
            hint="Padding *crops* a transposed convolution's output on both sides: - 2 * padding.",
        ),
        Case("3x3, stride 2, padding 1: 4 -> 7", (4, 3, 2, 1, 0, 1), hint=formula),
        Case(
            "output_padding 1 adds one row: 4 -> 8",
            (4, 3, 2, 1, 1, 1),
            hint="output_padding adds that many pixels at the end (bottom/right): "
            "+ output_padding.",
        ),
        Case(
            "stride 3, kernel 2 (gaps between copies): 3 -> 8",
            (3, 2, 3, 0, 0, 1),
            hint="The canvas is (n - 1) * s + k wide even when the copies don't touch.",
        ),
        Case(
            "dilation 2: the kernel spans 5 pixels: 3 -> 7",
            (3, 3, 1, 0, 0, 2),
            hint="A dilated kernel spans d * (k - 1) + 1 pixels.",
        ),
        Case(
            "dilation 2 with output_padding 1 (allowed: output_padding < max(stride, dilation)): 3 "
            "-> 6",
            (3, 3, 1, 2, 1, 2),
            hint=formula,
        ),
        Case(
            "1x1 kernel, stride 2: 4 -> 7 (pixels spread apart)", (4, 1, 2, 0, 0, 1), hint=formula
        ),
    ]
    g = np.random.default_rng(_SEED + 1)
    grid = [
        (n, k, s, p, op, d)
        for n, k, s, p, op, d in itertools.product(
            range(1, 9), (1, 2, 3, 4, 5), (1, 2, 3), (0, 1, 2), (0, 1, 2), (1, 2, 3)
        )
        if op < max(s, d) and (n - 1) * s - 2 * p + d * (k - 1) + op + 1 >= 1
    ]
    for index in g.choice(len(grid), size=24, replace=False):
        n, k, s, p, op, d = grid[int(index)]
        cases.append(
            Case(
                f"size {n}, kernel {k}, stride {s}, padding {p}, output_padding {op}, dilation {d}",
                (n, k, s, p, op, d),
                hint=formula,
            )
        )
    return cases


@assignment_check(
    reference=torch_conv_transpose2d_output_size,
    cases=conv_transpose2d_output_size_cases,
    compare=compare_int,
)
def check_conv_transpose2d_output_size(
    conv_transpose2d_output_size: Callable[..., int], *, quiet: bool = False
) -> None:
    """Check ``conv_transpose2d_output_size(size, kernel_size, stride, padding, output_padding,
    dilation) -> int``.

    The output length of ``nn.ConvTranspose2d`` along one dimension; all arguments are ints,
    passed by position.
    """


CHECKS = (check_conv2d_output_size, check_conv_transpose2d_output_size)
