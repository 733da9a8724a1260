"""Right and deliberately wrong ``Upsample(channels, factor, mode="bilinear")`` classes (notebook
09): ``(B, C, h, w) -> (B, C, factor*h, factor*w)``, fixed bilinear interpolation or a
transposed convolution that starts as it.

``Good*`` are right, written differently from the reference
(``course_utils.segmentation.upsampling.Upsample``); every other class makes one plausible
student mistake, listed in the ``WRONG`` table of ``tests/test_checks_upsample.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.segmentation.upsampling import bilinear_kernel, bilinear_upsampler


def tent(size: int, factor: int) -> torch.Tensor:
    """The bilinear tent ``(size, size)`` centred in the kernel, built by hand."""
    steps = torch.arange(size, dtype=torch.float32)
    line = 1 - (steps - (size - 1) / 2).abs() / factor
    return torch.outer(line, line)


class GoodUpsample(nn.Module):
    """The tent built by hand, channel by channel; the methods make the wrong variants."""

    bias, learnable = False, True

    def __init__(self, channels, factor, mode="bilinear"):
        super().__init__()
        self.factor, self.mode = factor, mode
        self.deconv = None
        if self.wants_deconv(factor, mode):
            self.deconv = nn.ConvTranspose2d(
                channels,
                channels,
                self.kernel_size(factor),
                stride=self.stride(factor),
                padding=self.padding(factor),
                output_padding=self.output_padding(factor),
                bias=self.bias,
                groups=self.groups(channels),
            )
            with torch.no_grad():
                self.initialise(self.deconv.weight, channels, factor)
            self.deconv.weight.requires_grad_(self.learnable)

    def wants_deconv(self, factor, mode):
        return mode == "learned" and factor > 1

    def kernel_size(self, factor):
        return 2 * factor - factor % 2

    def stride(self, factor):
        return factor

    def padding(self, factor):
        return factor // 2

    def output_padding(self, factor):
        return 0

    def groups(self, channels):
        return 1

    def initialise(self, weight, channels, factor):
        weight.zero_()
        for c in range(channels):
            weight[c, c] = tent(weight.shape[-1], factor)

    def interpolate(self, x):
        return F.interpolate(x, scale_factor=self.factor, mode="bilinear", align_corners=False)

    def forward(self, x):
        if self.deconv is not None:
            return self.deconv(x)
        if self.factor == 1:
            return x
        return self.interpolate(x)


class GoodUpsampleModules(nn.Module):
    """nn.Identity, nn.Upsample or bilinear_upsampler, chosen once in __init__."""

    def __init__(self, channels: int, factor: int, mode: str = "bilinear"):
        super().__init__()
        self.deconv = None
        if factor == 1:
            self.step = nn.Identity()
        elif mode == "bilinear":
            self.step = nn.Upsample(scale_factor=factor, mode="bilinear", align_corners=False)
        else:
            self.deconv = bilinear_upsampler(channels, factor)
            self.step = None

    def forward(self, x):
        return self.deconv(x) if self.deconv is not None else self.step(x)


class UpAlignCorners(GoodUpsample):
    def interpolate(self, x):
        return F.interpolate(x, scale_factor=self.factor, mode="bilinear", align_corners=True)


class UpNearest(GoodUpsample):
    def interpolate(self, x):
        return F.interpolate(x, scale_factor=self.factor, mode="nearest")


class UpBicubic(GoodUpsample):
    def interpolate(self, x):
        return F.interpolate(x, scale_factor=self.factor, mode="bicubic", align_corners=False)


class UpBilinearByKernel(GoodUpsample):
    """Fixed mode as the bilinear transposed convolution, computed in forward."""

    def interpolate(self, x):
        weight = bilinear_kernel(x.shape[1], self.factor)
        return F.conv_transpose2d(x, weight, stride=self.factor, padding=self.factor // 2)


class UpKernelTwiceFactor(GoodUpsample):
    """Kernel 2f for every factor: one row too many for an odd factor."""

    def kernel_size(self, factor):
        return 2 * factor


class UpKernelTwiceFactorPaddingUp(GoodUpsample):
    """Kernel 2f, padding rounded up: one row missing for an odd factor."""

    def kernel_size(self, factor):
        return 2 * factor

    def padding(self, factor):
        return (factor + 1) // 2


class UpKernelTwiceFactorOutputPadding(GoodUpsample):
    """Kernel 2f with padding rounded up and output_padding to get the size right."""

    def kernel_size(self, factor):
        return 2 * factor

    def padding(self, factor):
        return (factor + 1) // 2

    def output_padding(self, factor):
        return factor % 2


class UpPaddingFactor(GoodUpsample):
    def padding(self, factor):
        return factor


class UpStrideTwo(GoodUpsample):
    def stride(self, factor):
        return 2


class UpBias(GoodUpsample):
    bias = True


class UpDefaultInit(GoodUpsample):
    def initialise(self, weight, channels, factor):
        pass


class UpFrozen(GoodUpsample):
    learnable = False


class UpLearnedInterpolates(GoodUpsample):
    """mode='learned' still calls F.interpolate: nothing to learn."""

    def wants_deconv(self, factor, mode):
        return False


class UpDeconvForFactorOne(GoodUpsample):
    """A 1x1 transposed convolution for factor 1 (it starts as the identity)."""

    def wants_deconv(self, factor, mode):
        return mode == "learned"


class UpAlwaysDeconv(GoodUpsample):
    """Ignores mode: a transposed convolution whenever factor > 1."""

    def wants_deconv(self, factor, mode):
        return factor > 1


class UpMixesChannels(GoodUpsample):
    """The tent on every channel pair, not only on the diagonal."""

    def initialise(self, weight, channels, factor):
        weight.copy_(tent(weight.shape[-1], factor).expand_as(weight))


class UpTentSumsToOne(GoodUpsample):
    """Normalises the tent to sum to 1, as if it were a blur."""

    def initialise(self, weight, channels, factor):
        kernel = tent(weight.shape[-1], factor)
        weight.zero_()
        for c in range(channels):
            weight[c, c] = kernel / kernel.sum()


class UpDepthwise(GoodUpsample):
    """groups=channels: each channel its own (1, k, k) kernel."""

    def groups(self, channels):
        return channels

    def initialise(self, weight, channels, factor):
        weight.copy_(tent(weight.shape[-1], factor).expand_as(weight))


class UpFixedKernelInForward(GoodUpsample):
    """Builds self.deconv but up-samples with bilinear_kernel, so nothing is learned."""

    def forward(self, x):
        if self.deconv is None:
            return super().forward(x)
        weight = bilinear_kernel(x.shape[1], self.factor)
        return F.conv_transpose2d(x, weight, stride=self.factor, padding=self.factor // 2)


class UpNamedUp(nn.Module):
    """The right layer under another name (self.up)."""

    def __init__(self, channels, factor, mode="bilinear"):
        super().__init__()
        self.factor = factor
        self.up = bilinear_upsampler(channels, factor) if mode == "learned" else None

    def forward(self, x):
        if self.up is not None:
            return self.up(x)
        return F.interpolate(x, scale_factor=self.factor, mode="bilinear", align_corners=False)


class UpNoGrad(GoodUpsample):
    """forward under torch.no_grad() "to save memory"."""

    def forward(self, x):
        with torch.no_grad():
            return super().forward(x)
