"""Checks for the transposed-convolution and up-sampling assignments (notebook 09).

* ``conv_transpose2d(x, weight, stride, padding, output_padding) -> y`` with x ``(N, C_in, H,
  W)`` and weight ``(C_in, C_out, k, k)``, compared with ``F.conv_transpose2d`` without bias;
* ``Upsample(channels, factor, mode="bilinear")``: an ``nn.Module`` mapping ``(B, C, h, w)`` to
  ``(B, C, factor*h, factor*w)``, fixed bilinear interpolation or a transposed convolution that
  starts as it, compared with ``course_utils.segmentation.upsampling.Upsample``.
  ``check_Upsample`` runs on the CPU and leaves torch's global RNG as it found it.

Usage in a notebook::

    check_conv_transpose2d(conv_transpose2d)   # graded cell: raises on a wrong answer
    check_Upsample(Upsample)                   # the class itself, not an instance
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.grading.assignments import assignment_check
from course_utils.grading.checks._unet_cases import restoring_rng
from course_utils.grading.checks._upsample_cases import compare_upsample, upsample_cases
from course_utils.grading.runner import Case, with_device_copies
from course_utils.segmentation.upsampling import Upsample as ReferenceUpsample

__all__ = [
    "CHECKS",
    "check_Upsample",
    "check_conv_transpose2d",
    "conv_transpose2d_cases",
    "torch_conv_transpose2d",
    "upsample_cases",
]

_SEED = 909


def torch_conv_transpose2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
) -> torch.Tensor:
    """``F.conv_transpose2d`` without bias: x (N, C_in, H, W), weight (C_in, C_out, k, k)."""
    return F.conv_transpose2d(
        x, weight, stride=stride, padding=padding, output_padding=output_padding
    )


def conv_transpose2d_cases() -> list[Case]:
    """The cases of :func:`check_conv_transpose2d` (on every available device)."""
    g = torch.Generator().manual_seed(_SEED + 2)

    def rand(*shape, dtype=torch.float32):
        return torch.randn(*shape, generator=g, dtype=dtype)

    ramp = torch.arange(1.0, 10.0).view(1, 1, 3, 3)
    scatter = (
        "Input pixel (i, j) adds x[:, :, i, j] times the kernel to the output block starting at "
        "row "
        "i * stride, column j * stride."
    )
    cases = [
        Case(
            "one pixel, stride 1: the output is the kernel times the pixel",
            (torch.full((1, 1, 1, 1), 2.0), ramp, 1, 0, 0),
            hint="A single pixel scatters one scaled copy of the kernel, not flipped: y = x * "
            "weight.",
        ),
        Case(
            "a 2x2 input, asymmetric 3x3 kernel, stride 1: copies overlap and add up",
            (torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]), ramp, 1, 0, 0),
            hint="Overlapping copies are summed (+=), not overwritten. The kernel is not flipped "
            "in the scatter view "
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
            hint="The stride moves where each copy starts; the kernel itself stays contiguous (its "
            "taps are "
            "1 pixel apart).",
        ),
        Case(
            "padding 1 crops one pixel on every side",
            (rand(1, 1, 3, 3), ramp, 1, 1, 0),
            hint="In a transposed convolution, padding removes rows/columns from the output's "
            "borders "
            "(both sides): out = (n - 1) * s - 2p + k.",
        ),
        Case(
            "4x4 kernel, stride 2, padding 1: the usual x2 up-sampling (non-square input)",
            (rand(1, 1, 3, 5), rand(1, 1, 4, 4), 2, 1, 0),
            hint="Crop `padding` pixels from the top and left and from the bottom and right of the "
            "full canvas.",
        ),
        Case(
            "output_padding 1 adds a row and a column at the bottom/right",
            (rand(1, 1, 3, 3), ramp, 2, 1, 1),
            hint="output_padding extends the output at the end (bottom/right) only; the extra "
            "pixels get whatever "
            "the canvas holds there (zeros unless padding crops into a copy).",
        ),
        Case(
            "2 images, 2 channels in, 3 out: weight is (C_in, C_out, k, k)",
            (rand(2, 2, 3, 4), rand(2, 3, 3, 3), 2, 1, 1),
            hint="Each input pixel's channel vector (C_in,) times weight (C_in, C_out, k, k) gives "
            "a (C_out, k, k) "
            "copy: torch.einsum('nc,cokl->nokl', x[:, :, i, j], weight). Sum over C_in.",
        ),
        Case(
            "one input channel, 3 output channels, stride 2",
            (rand(1, 1, 2, 2), rand(1, 3, 3, 3), 2, 0, 0),
            hint="nn.ConvTranspose2d stores weight as (C_in, C_out, k, k), the other way round "
            "from nn.Conv2d.",
        ),
        Case(
            "float64 input and weight: the output stays float64",
            (rand(1, 2, 3, 3, dtype=torch.float64), rand(2, 1, 3, 3, dtype=torch.float64), 2, 1, 1),
            hint="Create the output canvas with x.new_zeros(...) (or dtype=x.dtype, "
            "device=x.device).",
        ),
        Case(
            "random: 2 images, 3 -> 2 channels, 4x4 kernel, stride 2, padding 1",
            (rand(2, 3, 4, 3), rand(3, 2, 4, 4), 2, 1, 0),
            hint=scatter,
        ),
    ]
    return with_device_copies(cases)


@assignment_check(reference=torch_conv_transpose2d, cases=conv_transpose2d_cases)
def check_conv_transpose2d(
    conv_transpose2d: Callable[..., torch.Tensor], *, quiet: bool = False
) -> None:
    """Check ``conv_transpose2d(x, weight, stride, padding, output_padding) -> y`` (no bias).

    x: ``(N, C_in, H, W)`` float; weight: ``(C_in, C_out, k, k)`` (as
    ``nn.ConvTranspose2d.weight``); y: ``(N, C_out, H_out, W_out)`` with x's dtype and device.
    """


@assignment_check(
    reference=ReferenceUpsample, cases=upsample_cases, compare=restoring_rng(compare_upsample)
)
def check_Upsample(Upsample: type[nn.Module], *, quiet: bool = False) -> None:
    """Check ``Upsample(channels, factor, mode="bilinear")``, a class (an nn.Module): pass the
    class.

    ``forward(x (B, channels, h, w)) -> (B, channels, factor*h, factor*w)``, x's dtype.
    factor = 1: the identity (returns x), no parameters, in both modes. mode="bilinear": no
    parameters, ``F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)``.
    mode="learned": ``self.deconv = nn.ConvTranspose2d(channels, channels, 2*factor - factor % 2,
    stride=factor, padding=factor // 2, bias=False)`` whose weight (channels, channels, k, k)
    starts as ``bilinear_kernel(channels, factor)`` and is trainable; state_dict keys:
    ``deconv.weight`` only; forward returns ``self.deconv(x)``. Run on the CPU with the
    reference's random weights loaded.
    """


CHECKS = (check_conv_transpose2d, check_Upsample)
