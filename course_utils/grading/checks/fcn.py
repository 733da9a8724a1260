"""Checks for FCN's convolutionalization assignment (notebook 08).

``linear_to_conv(linear, in_channels, kernel_size=1)`` -> an ``nn.Conv2d`` computing the same
function as the ``nn.Linear`` layer on every window; the reference is the course's own
``convolutionalization.linear_to_conv``.

Usage in a notebook::

    check_linear_to_conv(linear_to_conv)   # graded cell: raises on a wrong answer
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from course_utils.grading.assignments import assignment_check
from course_utils.grading.compare import describe
from course_utils.grading.runner import Case, check_devices
from course_utils.segmentation import convolutionalization

__all__ = ["CHECKS", "check_linear_to_conv", "linear_to_conv_cases"]

_SEED = 808


def _linear(
    in_features: int,
    out_features: int,
    seed: int,
    bias: bool = True,
    dtype: torch.dtype = torch.float32,
) -> nn.Linear:
    g = torch.Generator().manual_seed(seed)
    layer = nn.Linear(in_features, out_features, bias=bias, dtype=dtype)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(out_features, in_features, generator=g))
        if bias:
            layer.bias.copy_(torch.randn(out_features, generator=g))
    return layer


def linear_to_conv_cases() -> list[Case]:
    """The cases of :func:`check_linear_to_conv` (plus CUDA copies when available)."""
    reshape_hint = (
        "weight = linear.weight.reshape(out, in_channels, kh, kw): no transpose, the same numbers "
        "in the same order; copy them with torch.no_grad() or wrap them in nn.Parameter."
    )
    cases = [
        Case(
            "Linear(6, 4) -> a 1x1 convolution with 6 input channels",
            (_linear(6, 4, _SEED + 10), 6, 1),
            hint=reshape_hint,
        ),
        Case(
            "a square Linear(8, 8) (a transposed weight would still fit)",
            (_linear(8, 8, _SEED + 11), 8, 1),
            hint="nn.Linear stores weight as (out_features, in_features): use it as it is, no .T.",
        ),
        Case(
            "Linear(3*2*2, 5) reading a (3, 2, 2) map -> a 2x2 convolution",
            (_linear(12, 5, _SEED + 12), 3, 2),
            hint=reshape_hint,
        ),
        Case(
            "a rectangular kernel: Linear(4*2*3, 3) reading a (4, 2, 3) map, kernel_size=(2, 3)",
            (_linear(24, 3, _SEED + 13), 4, (2, 3)),
            hint=reshape_hint,
        ),
        Case(
            "a linear layer without bias",
            (_linear(5, 2, _SEED + 14, bias=False), 5, 1),
            hint="bias=linear.bias is not None when creating the convolution.",
        ),
        Case(
            "a float64 linear layer keeps float64",
            (_linear(6, 3, _SEED + 15, dtype=torch.float64), 6, 1),
            hint="nn.Conv2d(..., device=linear.weight.device, dtype=linear.weight.dtype).",
        ),
    ]
    for device in check_devices():
        if device.type != "cpu":
            cases += [
                Case(
                    f"{case.name} (on {device.type})",
                    (copy.deepcopy(case.args[0]).to(device), *case.args[1:]),
                    hint=case.hint,
                )
                for case in cases[:3]
            ]
    return cases


def _compare_conv(got: Any, expected: nn.Conv2d, case: Case) -> str | None:
    if not isinstance(got, nn.Conv2d):
        return f"returned {describe(got)}, expected an nn.Conv2d."
    linear = case.args[0]
    if tuple(linear.weight.shape) != (linear.out_features, linear.in_features):
        return (
            "the Linear layer's weight changed shape: build a new tensor for the convolution "
            "(reshape gives a view; don't assign to linear.weight)."
        )
    if got.weight.shape != expected.weight.shape:
        return (
            f"weight has shape {tuple(got.weight.shape)}, expected {tuple(expected.weight.shape)} "
            "= "
            "(out_features, in_channels, kh, kw): reshape the linear weight (out, in_channels * kh "
            "* kw)."
        )
    if got.weight.dtype != expected.weight.dtype or got.weight.device != expected.weight.device:
        return (
            f"weight is {got.weight.dtype} on {got.weight.device}, expected "
            f"{expected.weight.dtype} on "
            f"{expected.weight.device}: create the Conv2d with device=linear.weight.device, "
            "dtype=linear.weight.dtype."
        )
    if (expected.bias is None) != (got.bias is None):
        return (
            "the convolution has a bias but the linear layer has none (bias=linear.bias is not "
            "None)."
            if expected.bias is None
            else "the bias is missing: the linear layer's bias must come along."
        )
    settings = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1}
    for name, want in settings.items():
        if getattr(got, name) != want:
            return (
                f"{name} is {getattr(got, name)}, expected {want}: the convolution must slide "
                "one pixel at a time, unpadded."
            )
    with torch.no_grad():
        if not torch.allclose(got.weight, expected.weight, rtol=1e-5, atol=1e-6):
            out, channels, kh, kw = expected.weight.shape
            flipped = expected.weight.reshape(out, kh, kw, channels).permute(0, 3, 1, 2)
            if expected.weight.shape[-1] * expected.weight.shape[-2] > 1 and torch.allclose(
                got.weight, flipped
            ):
                return (
                    "weight values differ: the flattened input is channel-major (C, kh, kw), so "
                    "reshape "
                    "to (out, C, kh, kw) directly, not via (out, kh, kw, C)."
                )
            return (
                "weight values differ from the linear layer's weights, reshaped (same numbers, "
                "same order)."
            )
        if got.bias is not None and not torch.allclose(got.bias, expected.bias):
            return "bias values differ from the linear layer's bias."
        kh, kw = expected.kernel_size
        g = torch.Generator(device="cpu").manual_seed(_SEED + 3)
        x = torch.randn(2, expected.in_channels, kh + 2, kw + 1, generator=g).to(expected.weight)
        want, have = expected(x), got(x)
        if want.shape != have.shape or not torch.allclose(want, have, rtol=1e-4, atol=1e-5):
            return "on a larger input the convolution's output differs from the reference's."
    return None


@assignment_check(
    reference=convolutionalization.linear_to_conv, cases=linear_to_conv_cases, compare=_compare_conv
)
def check_linear_to_conv(linear_to_conv: Callable[..., nn.Conv2d], *, quiet: bool = False) -> None:
    """Check ``linear_to_conv(linear, in_channels, kernel_size=1) -> nn.Conv2d``.

    linear: ``nn.Linear(in_channels * kh * kw, out)`` reading a flattened (in_channels, kh, kw) map.
    Result: ``nn.Conv2d(in_channels, out, (kh, kw))`` (stride 1, no padding) with the linear weight
    reshaped to (out, in_channels, kh, kw), the same bias (or none), same dtype and device.
    """


CHECKS = (check_linear_to_conv,)
