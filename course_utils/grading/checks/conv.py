"""Checks for the convolution assignments of notebooks 09 and 10.

* ``conv2d_output_size(size, kernel_size, stride, padding, dilation) -> int`` and
  ``conv_transpose2d_output_size(size, kernel_size, stride, padding, output_padding, dilation) -> int``:
  compared with the length PyTorch's own layers produce, over a grid of settings.
* ``conv_transpose2d(x, weight, stride, padding, output_padding) -> y``: compared with
  ``torch.nn.functional.conv_transpose2d`` (x ``(N, C_in, H, W)``, weight ``(C_in, C_out, k, k)``).
* ``receptive_field(layers) -> int`` with ``layers`` a list of ``(kernel_size, stride, dilation)``:
  compared with the receptive field *measured* from gradients
  (``course_utils.segmentation.receptive_field.measure_receptive_field`` on a stack of convolutions).

Usage in a notebook::

    check_conv2d_output_size(conv2d_output_size)   # graded cell: raises on a wrong answer
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from course_utils.grading.assignments import Case, assignment_check, run_cases, with_device_copies

__all__ = [
    "CHECKS",
    "check_conv2d_output_size",
    "check_conv_transpose2d",
    "check_conv_transpose2d_output_size",
    "check_receptive_field",
    "conv2d_output_size_cases",
    "conv_transpose2d_cases",
    "conv_transpose2d_output_size_cases",
    "receptive_field_cases",
]

_SEED = 909


# ----------------------------------------------------------------------------------------------------------
# References: what PyTorch (or the gradient) says
# ----------------------------------------------------------------------------------------------------------


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


def torch_conv_transpose2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
) -> torch.Tensor:
    """``F.conv_transpose2d`` without bias (the reference of the transposed-convolution assignment)."""
    return F.conv_transpose2d(
        x, weight, stride=stride, padding=padding, output_padding=output_padding
    )


def measured_receptive_field(layers: list) -> int:
    """The receptive field of a stack of convolutions, measured from the gradient's support."""
    from course_utils.segmentation.receptive_field import (
        conv_stack,
        measure_receptive_field,
        receptive_field,
    )

    model = conv_stack(list(layers), channels=1, relu=False)
    size = 2 * receptive_field(list(layers)) + 8
    height, width = measure_receptive_field(model, size)
    if height != width:
        raise RuntimeError(f"non-square receptive field {height}x{width} measured for {layers}")
    return height


# ----------------------------------------------------------------------------------------------------------
# Comparing integers
# ----------------------------------------------------------------------------------------------------------


def _compare_int(got: Any, expected: int, case: Case) -> str | None:
    if got is None:
        return "returned None: did you forget the `return` statement?"
    if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
        if isinstance(got, torch.Tensor) and got.numel() == 1 and not got.is_floating_point():
            return "returned a tensor, expected a Python int: use Python arithmetic (or .item())."
        if isinstance(got, (float, np.floating)) or isinstance(got, torch.Tensor):
            return (
                f"returned {got!r} ({type(got).__name__}), expected the int {expected}: sizes are whole "
                "numbers; divide with // (floor division), not /."
            )
        return f"returned a {type(got).__name__}, expected an int."
    if int(got) != expected:
        return f"returned {int(got)}, expected {expected} ({'too large' if got > expected else 'too small'} by {abs(int(got) - expected)})."
    return None


# ----------------------------------------------------------------------------------------------------------
# Conv2d output size
# ----------------------------------------------------------------------------------------------------------


@assignment_check("conv2d_output_size", reference=torch_conv2d_output_size)
def check_conv2d_output_size(
    conv2d_output_size: Callable[..., int], *, quiet: bool = False
) -> None:
    """Check ``conv2d_output_size(size, kernel_size, stride, padding, dilation) -> int`` against the
    length ``nn.Conv2d`` produces along one dimension (all arguments ints, passed by position)."""
    run_cases(
        conv2d_output_size,
        conv2d_output_size_cases(),
        name="conv2d_output_size",
        reference=torch_conv2d_output_size,
        compare=_compare_int,
        quiet=quiet,
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
            hint="Strided windows that would stick out are dropped: floor((n + 2p - span) / s) + 1, "
            "not ceil. Use //.",
        ),
        Case(
            "stride 2, 3x3, padding 1 halves an even size: 8 -> 4",
            (8, 3, 2, 1, 1),
            hint="floor((8 + 2 - 3) / 2) + 1 = 4: subtract the kernel span before dividing by the stride.",
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
                hint="out = floor((size + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1",
            )
        )
    return cases


# ----------------------------------------------------------------------------------------------------------
# ConvTranspose2d output size
# ----------------------------------------------------------------------------------------------------------


@assignment_check("conv_transpose2d_output_size", reference=torch_conv_transpose2d_output_size)
def check_conv_transpose2d_output_size(
    conv_transpose2d_output_size: Callable[..., int], *, quiet: bool = False
) -> None:
    """Check ``conv_transpose2d_output_size(size, kernel_size, stride, padding, output_padding, dilation)
    -> int`` against the length ``nn.ConvTranspose2d`` produces along one dimension."""
    run_cases(
        conv_transpose2d_output_size,
        conv_transpose2d_output_size_cases(),
        name="conv_transpose2d_output_size",
        reference=torch_conv_transpose2d_output_size,
        compare=_compare_int,
        quiet=quiet,
    )


def conv_transpose2d_output_size_cases() -> list[Case]:
    """Named edge cases, then a seeded grid of valid settings."""
    formula = "out = (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1"
    cases = [
        Case(
            "stride 1, 3x3, no padding: 3 -> 5 (the inverse of a 'valid' convolution)",
            (3, 3, 1, 0, 0, 1),
            hint="Each of the n pixels scatters a k-wide copy; with stride 1 the canvas is n + k - 1 wide.",
        ),
        Case(
            "one pixel, 4x4 kernel, stride 2: 1 -> 4 (one copy of the kernel)",
            (1, 4, 2, 0, 0, 1),
            hint="The stride only separates neighbouring copies: with one pixel there are none, so use (n - 1) * s.",
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
            hint="output_padding adds that many pixels at the end (bottom/right): + output_padding.",
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
            "dilation 2 with output_padding 1 (allowed: output_padding < max(stride, dilation)): 3 -> 6",
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


# ----------------------------------------------------------------------------------------------------------
# The transposed convolution itself
# ----------------------------------------------------------------------------------------------------------


@assignment_check("conv_transpose2d", reference=torch_conv_transpose2d)
def check_conv_transpose2d(
    conv_transpose2d: Callable[..., torch.Tensor], *, quiet: bool = False
) -> None:
    """Check ``conv_transpose2d(x, weight, stride, padding, output_padding) -> y`` against
    ``F.conv_transpose2d`` (no bias).

    x: ``(N, C_in, H, W)`` float; weight: ``(C_in, C_out, k, k)`` (as ``nn.ConvTranspose2d.weight``);
    y: ``(N, C_out, H_out, W_out)`` with x's dtype and device.
    """
    run_cases(
        conv_transpose2d,
        conv_transpose2d_cases(),
        name="conv_transpose2d",
        reference=torch_conv_transpose2d,
        quiet=quiet,
    )


def conv_transpose2d_cases() -> list[Case]:
    """The cases of :func:`check_conv_transpose2d` (on every available device)."""
    g = torch.Generator().manual_seed(_SEED + 2)

    def rand(*shape, dtype=torch.float32):
        return torch.randn(*shape, generator=g, dtype=dtype)

    ramp = torch.arange(1.0, 10.0).view(1, 1, 3, 3)
    scatter = (
        "Input pixel (i, j) adds x[:, :, i, j] times the kernel to the output block starting at row "
        "i * stride, column j * stride."
    )
    cases = [
        Case(
            "one pixel, stride 1: the output is the kernel times the pixel",
            (torch.full((1, 1, 1, 1), 2.0), ramp, 1, 0, 0),
            hint="A single pixel scatters one scaled copy of the kernel, not flipped: y = x * weight.",
        ),
        Case(
            "a 2x2 input, asymmetric 3x3 kernel, stride 1: copies overlap and add up",
            (torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]), ramp, 1, 0, 0),
            hint="Overlapping copies are summed (+=), not overwritten. The kernel is not flipped in the scatter view "
            "(it is flipped only when you write it as an ordinary convolution).",
        ),
        Case(
            "stride 2, 3x3 kernel: copies 2 pixels apart, overlapping on one row/column",
            (rand(1, 1, 3, 3), ramp, 2, 0, 0),
            hint=scatter,
        ),
        Case(
            "stride 3, 2x2 kernel: copies with gaps between them",
            (rand(1, 1, 2, 3), rand(1, 1, 2, 2), 3, 0, 0),
            hint="The stride moves where each copy starts; the kernel itself stays contiguous (its taps are "
            "1 pixel apart).",
        ),
        Case(
            "padding 1 crops one pixel on every side",
            (rand(1, 1, 3, 3), ramp, 1, 1, 0),
            hint="In a transposed convolution, padding removes rows/columns from the output's borders "
            "(both sides): out = (n - 1) * s - 2p + k.",
        ),
        Case(
            "4x4 kernel, stride 2, padding 1: the usual x2 up-sampling (non-square input)",
            (rand(1, 1, 3, 5), rand(1, 1, 4, 4), 2, 1, 0),
            hint="Crop `padding` pixels from the top and left and from the bottom and right of the full canvas.",
        ),
        Case(
            "output_padding 1 adds a row and a column at the bottom/right",
            (rand(1, 1, 3, 3), ramp, 2, 1, 1),
            hint="output_padding extends the output at the end (bottom/right) only; the extra pixels get whatever "
            "the canvas holds there (zeros unless padding crops into a copy).",
        ),
        Case(
            "2 images, 2 channels in, 3 out: weight is (C_in, C_out, k, k)",
            (rand(2, 2, 3, 4), rand(2, 3, 3, 3), 2, 1, 1),
            hint="Each input pixel's channel vector (C_in,) times weight (C_in, C_out, k, k) gives a (C_out, k, k) "
            "copy: torch.einsum('nc,cokl->nokl', x[:, :, i, j], weight). Sum over C_in.",
        ),
        Case(
            "one input channel, 3 output channels, stride 2",
            (rand(1, 1, 2, 2), rand(1, 3, 3, 3), 2, 0, 0),
            hint="nn.ConvTranspose2d stores weight as (C_in, C_out, k, k), the other way round from nn.Conv2d.",
        ),
        Case(
            "float64 input and weight: the output stays float64",
            (rand(1, 2, 3, 3, dtype=torch.float64), rand(2, 1, 3, 3, dtype=torch.float64), 2, 1, 1),
            hint="Create the output canvas with x.new_zeros(...) (or dtype=x.dtype, device=x.device).",
        ),
        Case(
            "random: 2 images, 3 -> 2 channels, 4x4 kernel, stride 2, padding 1",
            (rand(2, 3, 4, 3), rand(3, 2, 4, 4), 2, 1, 0),
            hint=scatter,
        ),
    ]
    return with_device_copies(cases)


# ----------------------------------------------------------------------------------------------------------
# Receptive field of a stack of layers
# ----------------------------------------------------------------------------------------------------------


@assignment_check("receptive_field", reference=measured_receptive_field)
def check_receptive_field(receptive_field: Callable[[list], int], *, quiet: bool = False) -> None:
    """Check ``receptive_field(layers) -> int`` against the receptive field measured from gradients.

    layers: a list of ``(kernel_size, stride, dilation)`` triples (ints), first layer first; the result is
    the side, in input pixels, of the square one output position sees (1 for an empty list).
    """
    run_cases(
        receptive_field,
        receptive_field_cases(),
        name="receptive_field",
        reference=measured_receptive_field,
        compare=_compare_int,
        quiet=quiet,
    )


def receptive_field_cases() -> list[Case]:
    """Named stacks (plain, dilated, strided, mixed), then seeded random stacks."""
    jump = (
        "Every stride multiplies the spacing ('jump') between neighbouring positions of all later layers: "
        "rf += d * (k - 1) * jump, then jump *= s."
    )
    cases = [
        Case("no layers: a pixel sees itself", ([],), hint="Start from rf = 1 (one pixel), not 0."),
        Case(
            "one 3x3 convolution",
            ([(3, 1, 1)],),
            hint="One k x k convolution sees k pixels: rf = 1 + (k - 1).",
        ),
        Case(
            "one 1x1 convolution",
            ([(1, 1, 1)],),
            hint="A 1x1 convolution adds nothing: rf += (k - 1).",
        ),
        Case(
            "three plain 3x3 convolutions",
            ([(3, 1, 1)] * 3,),
            hint="Each stride-1 3x3 layer adds 2 pixels: 1 + 2 + 2 + 2.",
        ),
        Case(
            "one 3x3 convolution with dilation 4",
            ([(3, 1, 4)],),
            hint="A dilated kernel spans d * (k - 1) + 1 pixels.",
        ),
        Case(
            "3x3 with dilations 1, 2, 4 (Yu & Koltun)",
            ([(3, 1, 1), (3, 1, 2), (3, 1, 4)],),
            hint="Each layer adds d * (k - 1): 1 + 2 + 4 + 8 = 15.",
        ),
        Case("a strided layer first: 3x3 stride 2, then 3x3", ([(3, 2, 1), (3, 1, 1)],), hint=jump),
        Case(
            "a stride as the last layer adds its kernel but no jump",
            ([(3, 1, 1), (3, 2, 1)],),
            hint=jump,
        ),
        Case("three 3x3 stride-2 convolutions", ([(3, 2, 1)] * 3,), hint=jump),
        Case("2x2 pooling-like layer then a dilated 3x3", ([(2, 2, 1), (3, 1, 2)],), hint=jump),
        Case(
            "a stride and a dilation together",
            ([(3, 2, 2), (3, 1, 1)],),
            hint="The dilation spreads this layer's taps; the stride only affects the layers after it.",
        ),
    ]
    g = np.random.default_rng(_SEED + 3)
    for number in range(4):
        layers = [
            (int(g.choice((1, 2, 3, 5))), int(g.choice((1, 1, 2))), int(g.choice((1, 2, 3))))
            for _ in range(int(g.integers(2, 5)))
        ]
        cases.append(Case(f"random stack {number + 1}: {layers}", (layers,), hint=jump))
    return cases


CHECKS = (
    check_conv2d_output_size,
    check_conv_transpose2d_output_size,
    check_conv_transpose2d,
    check_receptive_field,
)
