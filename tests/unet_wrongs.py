"""Right and deliberately wrong ``Up`` and ``UNet`` classes (notebook 11).

``GoodUp*`` and ``GoodUNet*`` are right; the small subclasses make the plausible student mistakes
that ``tests/test_checks_unet.py`` lists in its ``WRONG`` table. The wrong UNets use the course's
DoubleConv, Down, Up and OutConv (as the notebook lets the students do), so only their own
mistake differs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.segmentation.unet import DoubleConv, Down, OutConv, Up

# ----------------------------------------------------------------------------------------------
# Up
# ----------------------------------------------------------------------------------------------


class GoodUp(nn.Module):
    """The slide's Up; its methods are what the wrong variants override."""

    def __init__(self, in_channels, out_channels, bilinear=True):
        super().__init__()
        self.up = self.make_up(in_channels, bilinear)
        self.conv = self.make_conv(in_channels, out_channels, bilinear)

    def make_up(self, in_channels, bilinear):
        if bilinear:
            return nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        return nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)

    def make_conv(self, in_channels, out_channels, bilinear):
        if bilinear:
            return DoubleConv(in_channels, out_channels, in_channels // 2)
        return DoubleConv(in_channels, out_channels)

    def pad(self, x1, x2):
        diff_y = x2.size(2) - x1.size(2)
        diff_x = x2.size(3) - x1.size(3)
        return F.pad(x1, [diff_x // 2, diff_x - diff_x // 2, diff_y // 2, diff_y - diff_y // 2])

    def join(self, x1, x2):
        return torch.cat([x2, x1], dim=1)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        x1 = self.pad(x1, x2)
        return self.conv(self.join(x1, x2))


class _Block(nn.Module):
    """A DoubleConv written by a student: padding="same", ReLUs not in place."""

    def __init__(self, in_channels, out_channels, mid_channels=None):
        super().__init__()
        mid = mid_channels or out_channels
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, mid, 3, padding="same", bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(),
            nn.Conv2d(mid, out_channels, 3, padding="same", bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )

    def forward(self, x):
        return self.double_conv(x)


class GoodUpOwnParts(nn.Module):
    """Its own DoubleConv, nn.UpsamplingBilinear2d, the padding from shape tuples."""

    def __init__(self, in_channels: int, out_channels: int, bilinear: bool = True):
        super().__init__()
        if bilinear:
            self.up = nn.UpsamplingBilinear2d(scale_factor=2)
            self.conv = _Block(in_channels, out_channels, in_channels // 2)
        else:
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, 2, 2)
            self.conv = _Block(in_channels, out_channels)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        (h1, w1), (h2, w2) = x1.shape[-2:], x2.shape[-2:]
        top, left = (h2 - h1) // 2, (w2 - w1) // 2
        x1 = F.pad(x1, (left, w2 - w1 - left, top, h2 - h1 - top))
        return self.conv(torch.cat((x2, x1), 1))


class UpCatSwapped(GoodUp):
    def join(self, x1, x2):
        return torch.cat([x1, x2], dim=1)


class UpNoPadding(GoodUp):
    def pad(self, x1, x2):
        return x1


class UpPadLeftTop(GoodUp):
    def pad(self, x1, x2):
        diff_y, diff_x = x2.size(2) - x1.size(2), x2.size(3) - x1.size(3)
        return F.pad(x1, [diff_x, 0, diff_y, 0])


class UpPadAxesSwapped(GoodUp):
    def pad(self, x1, x2):
        diff_y, diff_x = x2.size(2) - x1.size(2), x2.size(3) - x1.size(3)
        return F.pad(x1, [diff_y // 2, diff_y - diff_y // 2, diff_x // 2, diff_x - diff_x // 2])


class UpCropSkip(GoodUp):
    def forward(self, x1, x2):
        x1 = self.up(x1)
        x2 = x2[..., : x1.size(2), : x1.size(3)]
        return self.conv(torch.cat([x2, x1], dim=1))


class UpResized(GoodUp):
    def pad(self, x1, x2):
        return F.interpolate(x1, size=x2.shape[-2:])


class UpWrongMid(GoodUp):
    def make_conv(self, in_channels, out_channels, bilinear):
        return DoubleConv(in_channels, out_channels)


class UpUpsampleThen1x1(GoodUp):
    def make_up(self, in_channels, bilinear):
        if not bilinear:
            return super().make_up(in_channels, bilinear)
        return nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            nn.Conv2d(in_channels, in_channels // 2, kernel_size=1),
        )


class UpTransposedKernel3(GoodUp):
    def make_up(self, in_channels, bilinear):
        if bilinear:
            return super().make_up(in_channels, bilinear)
        return nn.ConvTranspose2d(in_channels, in_channels // 2, 3, stride=2, output_padding=1)


class UpTransposedFullChannels(GoodUp):
    def make_up(self, in_channels, bilinear):
        if bilinear:
            return super().make_up(in_channels, bilinear)
        return nn.ConvTranspose2d(in_channels, in_channels, kernel_size=2, stride=2)


class UpNearest(GoodUp):
    def make_up(self, in_channels, bilinear):
        if bilinear:
            return nn.Upsample(scale_factor=2, mode="nearest")
        return super().make_up(in_channels, bilinear)


class UpAlignCornersFalse(GoodUp):
    def make_up(self, in_channels, bilinear):
        if bilinear:
            return nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        return super().make_up(in_channels, bilinear)


class UpFunctionalNearest(GoodUp):
    """Keeps the right self.up but calls F.interpolate in forward."""

    def forward(self, x1, x2):
        if isinstance(self.up, nn.Upsample):
            x1 = F.interpolate(x1, scale_factor=2)
        else:
            x1 = self.up(x1)
        return self.conv(self.join(self.pad(x1, x2), x2))


class UpSingleConv(GoodUp):
    def make_conv(self, in_channels, out_channels, bilinear):
        return nn.Conv2d(in_channels, out_channels, 3, padding=1)


class UpSingleBlock(GoodUp):
    def make_conv(self, in_channels, out_channels, bilinear):
        block = DoubleConv(in_channels, out_channels)
        block.double_conv = block.double_conv[:3]
        return block


class UpReLUBeforeBN(GoodUp):
    def make_conv(self, in_channels, out_channels, bilinear):
        block = super().make_conv(in_channels, out_channels, bilinear)
        layers = list(block.double_conv)
        block.double_conv = nn.Sequential(*[layers[i] for i in (0, 2, 1, 3, 5, 4)])
        return block


class UpConvBias(GoodUp):
    def make_conv(self, in_channels, out_channels, bilinear):
        block = super().make_conv(in_channels, out_channels, bilinear)
        for index in (0, 3):
            conv = block.double_conv[index]
            block.double_conv[index] = nn.Conv2d(conv.in_channels, conv.out_channels, 3, padding=1)
        return block


class UpIgnoresBilinear(GoodUp):
    def make_up(self, in_channels, bilinear):
        return super().make_up(in_channels, True)

    def make_conv(self, in_channels, out_channels, bilinear):
        return super().make_conv(in_channels, out_channels, True)


class UpRenamed(GoodUp):
    def __init__(self, in_channels, out_channels, bilinear=True):
        super().__init__(in_channels, out_channels, bilinear)
        self.upsample = self.up
        del self.up

    def forward(self, x1, x2):
        return self.conv(self.join(self.pad(self.upsample(x1), x2), x2))


class UpReturnsConcatenation(GoodUp):
    def forward(self, x1, x2):
        return self.join(self.pad(self.up(x1), x2), x2)


class UpDetachedSkip(GoodUp):
    def join(self, x1, x2):
        return torch.cat([x2.detach(), x1], dim=1)


# ----------------------------------------------------------------------------------------------
# UNet
# ----------------------------------------------------------------------------------------------


class GoodUNet(nn.Module):
    """The slide's UNet with the course's parts; the methods make the wrong variants."""

    up_class = Up

    def __init__(self, n_channels, n_classes, width=16, bilinear=True):
        super().__init__()
        w = width
        self.make(n_channels, n_classes, w, bilinear, 2 if bilinear else 1)

    def make(self, n_channels, n_classes, w, bilinear, factor):
        self.inc = DoubleConv(n_channels, w)
        self.down1 = Down(w, 2 * w)
        self.down2 = Down(2 * w, 4 * w)
        self.down3 = Down(4 * w, 8 * w)
        self.down4 = Down(8 * w, 16 * w // factor)
        self.up1 = self.up_class(16 * w, 8 * w // factor, bilinear)
        self.up2 = self.up_class(8 * w, 4 * w // factor, bilinear)
        self.up3 = self.up_class(4 * w, 2 * w // factor, bilinear)
        self.up4 = self.up_class(2 * w, w, bilinear)
        self.outc = OutConv(w, n_classes)

    def encode(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        return x1, x2, x3, x4, self.down4(x4)

    def decode(self, x1, x2, x3, x4, x5):
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)

    def forward(self, x):
        return self.decode(*self.encode(x))


class GoodUNetOwnUp(GoodUNet):
    """The parts are the student's own Up (GoodUpOwnParts), the forward a loop."""

    up_class = GoodUpOwnParts

    def forward(self, x):
        skips = [self.inc(x)]
        for down in (self.down1, self.down2, self.down3, self.down4):
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in (self.up1, self.up2, self.up3, self.up4):
            x = up(x, skips.pop())
        return self.outc(x)


class UNetSkipsShifted(GoodUNet):
    def decode(self, x1, x2, x3, x4, x5):
        x = self.up1(x5, x3)
        x = self.up2(x, x2)
        x = self.up3(x, x1)
        return self.outc(self.up4(x, x1))


class UNetSkipsReversed(GoodUNet):
    def decode(self, x1, x2, x3, x4, x5):
        x = self.up1(x5, x1)
        x = self.up2(x, x2)
        x = self.up3(x, x3)
        return self.outc(self.up4(x, x4))


class UNetSkipDropped(GoodUNet):
    def decode(self, x1, x2, x3, x4, x5):
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x)
        return self.outc(x)


class UNetX5Twice(GoodUNet):
    def decode(self, x1, x2, x3, x4, x5):
        x = self.up1(x5, x4)
        x = self.up2(x5, x3)
        x = self.up3(x, x2)
        return self.outc(self.up4(x, x1))


class UNetUpsWrongOrder(GoodUNet):
    def decode(self, x1, x2, x3, x4, x5):
        x = self.up4(x5, x4)
        x = self.up3(x, x3)
        x = self.up2(x, x2)
        return self.outc(self.up1(x, x1))


class UNetOutcBeforeLastUp(GoodUNet):
    def decode(self, x1, x2, x3, x4, x5):
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.outc(x)
        return self.up4(x, x1)


class UNetNoOutc(GoodUNet):
    def decode(self, x1, x2, x3, x4, x5):
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        return self.up4(x, x1)


class UNetSoftmax(GoodUNet):
    def forward(self, x):
        return super().forward(x).softmax(dim=1)


class UNetSigmoid(GoodUNet):
    def forward(self, x):
        return torch.sigmoid(super().forward(x))


class UNetDetachedSkip(GoodUNet):
    def decode(self, x1, x2, x3, x4, x5):
        return super().decode(x1.detach(), x2, x3, x4, x5)


class UNetNoFactor(GoodUNet):
    def make(self, n_channels, n_classes, w, bilinear, factor):
        super().make(n_channels, n_classes, w, bilinear, 1)


class UNetDown4NoFactor(GoodUNet):
    def make(self, n_channels, n_classes, w, bilinear, factor):
        super().make(n_channels, n_classes, w, bilinear, factor)
        self.down4 = Down(8 * w, 16 * w)


class UNetUpFactorForgotten(GoodUNet):
    def make(self, n_channels, n_classes, w, bilinear, factor):
        super().make(n_channels, n_classes, w, bilinear, factor)
        self.up1 = Up(16 * w, 8 * w, bilinear)
        self.up2 = Up(8 * w, 4 * w, bilinear)
        self.up3 = Up(4 * w, 2 * w, bilinear)


class UNetWidth64(GoodUNet):
    def make(self, n_channels, n_classes, w, bilinear, factor):
        super().make(n_channels, n_classes, 64, bilinear, factor)


class UNetThreeChannels(GoodUNet):
    def make(self, n_channels, n_classes, w, bilinear, factor):
        super().make(3, n_classes, w, bilinear, factor)


class UNetTwoClasses(GoodUNet):
    def make(self, n_channels, n_classes, w, bilinear, factor):
        super().make(n_channels, 2, w, bilinear, factor)


class UNetAlwaysTransposed(GoodUNet):
    def make(self, n_channels, n_classes, w, bilinear, factor):
        super().make(n_channels, n_classes, w, False, factor)


class UNetModuleListUps(GoodUNet):
    def make(self, n_channels, n_classes, w, bilinear, factor):
        super().make(n_channels, n_classes, w, bilinear, factor)
        self.ups = nn.ModuleList([self.up1, self.up2, self.up3, self.up4])
        del self.up1, self.up2, self.up3, self.up4

    def decode(self, x1, x2, x3, x4, x5):
        x = x5
        for up, skip in zip(self.ups, (x4, x3, x2, x1)):
            x = up(x, skip)
        return self.outc(x)
