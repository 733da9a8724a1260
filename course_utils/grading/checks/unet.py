"""Checks for the U-Net assignments (notebook 11), following the slide "UNet in PyTorch"
(milesial/Pytorch-UNet's parts, so that state_dicts are interchangeable):

* ``Up(in_channels, out_channels, bilinear)``: an ``nn.Module`` with ``up`` (``nn.Upsample(
  scale_factor=2, mode="bilinear", align_corners=True)``, or ``nn.ConvTranspose2d(in, in // 2, 2,
  stride=2)`` when not bilinear) and ``conv`` (``DoubleConv(in, out, in // 2)``, or ``DoubleConv(
  in, out)``); ``forward(x1, x2)`` up-samples x1, pads it to the skip x2's size and returns
  ``conv(cat([x2, x1]))``;
* ``UNet(n_channels, n_classes, width, bilinear)``: ``inc, down1..down4, up1..up4, outc``;
  ``forward(x) -> logits (N, n_classes, H, W)``.

Both checks build the student's class and the reference with each case's arguments, compare the
layers (the state_dict's keys and shapes), load the reference's random weights into the student's
module and compare the outputs and the input gradients in train mode, on the CPU, on even and odd
sizes. The references are ``course_utils.segmentation.unet.Up`` and ``UNet``. A check leaves
torch's global RNG as it found it (building a module draws from it).

Usage in a notebook::

    check_Up(Up)       # the class itself, not an instance
    check_UNet(UNet)
"""

from __future__ import annotations

from torch import nn

from course_utils.grading.assignments import assignment_check
from course_utils.grading.checks._unet_cases import restoring_rng, unet_cases, up_cases
from course_utils.grading.checks._unet_net import compare_unet
from course_utils.grading.checks._unet_up import compare_up
from course_utils.segmentation import unet

__all__ = ["CHECKS", "check_UNet", "check_Up", "unet_cases", "up_cases"]


@assignment_check(reference=unet.Up, cases=up_cases, compare=restoring_rng(compare_up))
def check_Up(Up: type[nn.Module], *, quiet: bool = False) -> None:
    """Check ``Up(in_channels, out_channels, bilinear)``, a class (an nn.Module): pass the class.

    bilinear=True: ``self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)``,
    ``self.conv = DoubleConv(in_channels, out_channels, in_channels // 2)``, x1 (N, in // 2, h,
    w). bilinear=False: ``self.up = nn.ConvTranspose2d(in_channels, in_channels // 2,
    kernel_size=2, stride=2)``, ``self.conv = DoubleConv(in_channels, out_channels)``, x1 (N, in,
    h, w). ``forward(x1, x2 (N, in // 2, H, W)) -> (N, out_channels, H, W)``, H in {2h, 2h + 1}:
    up-sample x1, pad it with ``F.pad(x1, [dX // 2, dX - dX // 2, dY // 2, dY - dY // 2])``,
    return ``self.conv(torch.cat([x2, x1], dim=1))``. Run on the CPU with the reference's
    weights loaded, on pairs of sizes (3x4, 6x8), (4x5, 9x11) and (3x5, 7x10).
    """


@assignment_check(reference=unet.UNet, cases=unet_cases, compare=restoring_rng(compare_unet))
def check_UNet(UNet: type[nn.Module], *, quiet: bool = False) -> None:
    """Check ``UNet(n_channels, n_classes, width, bilinear)``, a class (an nn.Module): pass the
    class.

    factor = 2 if bilinear else 1; ``inc = DoubleConv(n_channels, width)``, ``down1..down3 =
    Down(w, 2w), Down(2w, 4w), Down(4w, 8w)``, ``down4 = Down(8w, 16w // factor)``, ``up1 =
    Up(16w, 8w // factor, bilinear)``, ``up2 = Up(8w, 4w // factor, ...)``, ``up3 = Up(4w, 2w //
    factor, ...)``, ``up4 = Up(2w, w, ...)``, ``outc = OutConv(w, n_classes)``. ``forward(x (N,
    n_channels, H, W)) -> logits (N, n_classes, H, W)``: x1 = inc(x), x2..x5 = down1..down4, x =
    up1(x5, x4), up2(x, x3), up3(x, x2), up4(x, x1), outc(x); no softmax. Run on the CPU with the
    reference's weights loaded, on 2 x n_channels x 32 x 48 and 37 x 45 batches.
    """


CHECKS = (check_Up, check_UNet)
