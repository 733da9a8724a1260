"""U-Net (Ronneberger, Fischer & Brox, MICCAI 2015), in the parts of the lecture's slide "UNet in
PyTorch" (milesial/Pytorch-UNet's layout, so that state_dicts are interchangeable).

* :class:`DoubleConv`: ``(3x3 conv, padding 1, no bias -> BatchNorm -> ReLU) x 2``;
* :class:`Down`: ``MaxPool2d(2) -> DoubleConv`` (half the size);
* :class:`Up`: up-sample the deeper map (bilinear 2x, or a 2x2 transposed convolution that halves
  the channels), pad it to the skip's size, concatenate ``[skip, up-sampled]``, DoubleConv;
* :class:`OutConv`: the 1x1 convolution to the class scores;
* :class:`UNet`: ``inc, down1..down4`` (the contracting path, maps x1..x5), ``up1..up4`` (the
  expanding path; up1 pairs x5 with the deepest skip x4, up4 ends with the full-resolution x1) and
  ``outc``. ``width`` is the channels of the first level (the paper: 64); level k has
  ``width * 2**(k-1)`` channels; with bilinear up-sampling ``down4`` and ``up1..up3`` output
  ``// 2`` of that (``factor``), as the up-sampling itself cannot halve the channels.

:func:`skips_off` zeroes chosen skips while it is active (to train or look at "the same network
without skips"). The paper's own network uses unpadded convolutions: :func:`valid_unet_stage_sizes`
and :func:`valid_unet_output_size` give its sizes (572 -> 388) and say which inputs are valid.

Shapes: images float ``(N, n_channels, H, W)`` with ``H, W >= 16`` (any size: odd sizes are padded
back in ``Up``); logits float ``(N, n_classes, H, W)``.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.core.validate import check_int
from course_utils.segmentation.conv_arithmetic import (
    conv2d_output_size,
    conv_transpose2d_output_size,
)

__all__ = [
    "DoubleConv",
    "Down",
    "OutConv",
    "UNet",
    "Up",
    "pad_to",
    "skips_off",
    "valid_unet_output_size",
    "valid_unet_skip_crops",
    "valid_unet_stage_sizes",
]

#: The smallest side UNet takes: four 2x2 max-pools must leave at least one pixel.
MIN_SIZE = 16


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def _check_map(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (N, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must have 4 dimensions (N, C, H, W), got shape {tuple(x.shape)}")
    return x


class DoubleConv(nn.Module):
    """``(Conv2d 3x3, padding 1, bias=False -> BatchNorm2d -> ReLU) x 2``: float ``(N, in_channels,
    H, W)`` -> ``(N, out_channels, H, W)``, through ``mid_channels`` (default ``out_channels``).
    The layers are ``self.double_conv``, an nn.Sequential (indices 0..5)."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int | None = None):
        super().__init__()
        check_int(in_channels, "in_channels")
        check_int(out_channels, "out_channels")
        mid = check_int(mid_channels, "mid_channels", allow_none=True) or out_channels
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, mid, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class Down(nn.Module):
    """``MaxPool2d(2) -> DoubleConv(in_channels, out_channels)``: ``(N, in_channels, H, W)`` ->
    ``(N, out_channels, H // 2, W // 2)``. The layers are ``self.maxpool_conv``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


def pad_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``x`` (N, C, h, w) zero-padded to ``like``'s (H, W): ``(H - h) // 2`` rows on top and the
    rest at the bottom, the same for the columns (left, right). ValueError if ``x`` is larger."""
    diff_y, diff_x = like.shape[-2] - x.shape[-2], like.shape[-1] - x.shape[-1]
    if diff_y < 0 or diff_x < 0:
        raise ValueError(
            f"the up-sampled map {tuple(x.shape[-2:])} is larger than the skip "
            f"{tuple(like.shape[-2:])}: the skip must be at least twice the deeper map's size"
        )
    # F.pad's list starts with the last dimension: (left, right, top, bottom).
    return F.pad(x, [diff_x // 2, diff_x - diff_x // 2, diff_y // 2, diff_y - diff_y // 2])


class Up(nn.Module):
    """One step of the expanding path: ``forward(x1, x2)`` up-samples the deeper map ``x1``, pads
    it to the skip ``x2``'s size, concatenates ``[x2, x1]`` (skip first) and applies DoubleConv.

    * ``bilinear=True``: ``self.up = nn.Upsample(scale_factor=2, mode="bilinear",
      align_corners=True)`` (no weights, keeps the channels) and ``self.conv =
      DoubleConv(in_channels, out_channels, in_channels // 2)``; x1 has ``in_channels // 2``
      channels;
    * ``bilinear=False``: ``self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, 2,
      stride=2)`` and ``self.conv = DoubleConv(in_channels, out_channels)``; x1 has
      ``in_channels`` channels.

    In both, x2 has ``in_channels // 2`` channels and a size between 2x and 2x + 1 x1's;
    the output is ``(N, out_channels, H2, W2)``.
    """

    def __init__(self, in_channels: int, out_channels: int, bilinear: bool = True):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", 2)
        self.out_channels = check_int(out_channels, "out_channels")
        self.bilinear = _check_bool(bilinear, "bilinear")
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = DoubleConv(in_channels, out_channels, in_channels // 2)
        else:
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
            self.conv = DoubleConv(in_channels, out_channels)

    def _check_inputs(self, x1: torch.Tensor, x2: torch.Tensor) -> None:
        _check_map(x1, "x1 (the deeper map)")
        _check_map(x2, "x2 (the skip)")
        half = self.in_channels // 2
        want = half if self.bilinear else self.in_channels
        why = (
            "bilinear up-sampling keeps the channels" if self.bilinear else "the up-conv halves it"
        )
        setup = f"Up({self.in_channels}, {self.out_channels}, bilinear={self.bilinear})"
        if x1.shape[1] != want:
            raise ValueError(
                f"{setup} expects x1 (the deeper map) with {want} channels "
                f"({'in_channels // 2' if self.bilinear else 'in_channels'}: {why}), got "
                f"{x1.shape[1]}"
            )
        if x2.shape[1] != half:
            raise ValueError(
                f"{setup} expects x2 (the skip) with {half} channels (in_channels // 2, so that "
                f"[skip, up-sampled] has in_channels), got {x2.shape[1]}"
            )

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        self._check_inputs(x1, x2)
        x1 = pad_to(self.up(x1), x2)
        return self.conv(torch.cat([x2, x1], dim=1))


class OutConv(nn.Module):
    """The 1x1 convolution to the class scores: ``(N, in_channels, H, W)`` -> ``(N, out_channels,
    H, W)``, as ``self.conv``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UNet(nn.Module):
    """U-Net with ``width`` channels at full resolution (the slide: 64), four levels down.

    ``inc = DoubleConv(n_channels, w)``, ``down1..down3 = Down(w, 2w), Down(2w, 4w), Down(4w,
    8w)``, ``down4 = Down(8w, 16w // factor)``, ``up1 = Up(16w, 8w // factor)``, ``up2 = Up(8w, 4w
    // factor)``, ``up3 = Up(4w, 2w // factor)``, ``up4 = Up(2w, w)``, ``outc = OutConv(w,
    n_classes)``, with ``factor = 2 if bilinear else 1``. ``forward(x)``: float ``(N, n_channels,
    H, W)``, ``H, W >= 16`` -> logits ``(N, n_classes, H, W)`` (no softmax).
    """

    def __init__(self, n_channels: int, n_classes: int, width: int = 16, bilinear: bool = True):
        super().__init__()
        self.n_channels = check_int(n_channels, "n_channels")
        self.n_classes = check_int(n_classes, "n_classes")
        self.width = w = check_int(width, "width", 2)
        self.bilinear = _check_bool(bilinear, "bilinear")
        factor = 2 if bilinear else 1
        self.inc = DoubleConv(n_channels, w)
        self.down1 = Down(w, 2 * w)
        self.down2 = Down(2 * w, 4 * w)
        self.down3 = Down(4 * w, 8 * w)
        self.down4 = Down(8 * w, 16 * w // factor)
        self.up1 = Up(16 * w, 8 * w // factor, bilinear)
        self.up2 = Up(8 * w, 4 * w // factor, bilinear)
        self.up3 = Up(4 * w, 2 * w // factor, bilinear)
        self.up4 = Up(2 * w, w, bilinear)
        self.outc = OutConv(w, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_map(x, "x")
        if x.shape[1] != self.n_channels:
            raise ValueError(
                f"x has {x.shape[1]} channels, this UNet takes n_channels = {self.n_channels}"
            )
        if min(x.shape[-2:]) < MIN_SIZE:
            raise ValueError(
                f"x is {tuple(x.shape[-2:])}: UNet needs H, W >= {MIN_SIZE} (four 2x2 max-pools)"
            )
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)


# ----------------------------------------------------------------------------------------------
# Switching skips off
# ----------------------------------------------------------------------------------------------


def _skip_levels(levels) -> tuple[int, ...]:
    """``levels`` (an int or an iterable of ints in 1..4) as a sorted tuple without repeats."""
    if isinstance(levels, numbers.Integral) and not isinstance(levels, bool):
        levels = (levels,)
    if not isinstance(levels, Iterable) or isinstance(levels, (str, bytes)):
        raise TypeError(f"levels must be an int or ints among 1..4, got {levels!r}")
    return tuple(sorted({check_int(level, "each skip level", 1, 4) for level in levels}))


def _zero_skip(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Forward pre-hook: ``up(x, skip)`` becomes ``up(x, zeros_like(skip))``."""
    if len(args) >= 2:
        return (args[0], torch.zeros_like(args[1]), *args[2:]), kwargs
    if "x2" in kwargs:
        return args, {**kwargs, "x2": torch.zeros_like(kwargs["x2"])}
    raise TypeError(
        "skips_off expects each up step to be called as up(x, skip) (or up(x1, x2=skip))"
    )


@contextlib.contextmanager
def skips_off(model: nn.Module, levels: int | Iterable[int] = (1, 2, 3, 4)) -> Iterator[nn.Module]:
    """While active, the chosen skips of ``model`` are zeros of the same shape.

    Level k is ``model.up{k}``'s skip: 1 = up1's, the deepest (x4), 4 = up4's, the full-resolution
    x1. A forward pre-hook on each chosen ``model.up{k}`` replaces its second argument by zeros,
    so this works with any module laid out as the slide's UNet (a student's included). The hooks
    are removed on exit, also on an error. Yields ``model``::

        with skips_off(model, levels=(3, 4)):   # no skips at the two finest levels
            logits = model(images)

    Raises:
        TypeError: ``model`` is not an nn.Module, or levels are not ints.
        ValueError: a level is not in 1..4, or ``model`` has no ``up{k}`` module for it.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module (a UNet), got {type(model).__name__}")
    chosen = _skip_levels(levels)
    for level in chosen:
        if not isinstance(getattr(model, f"up{level}", None), nn.Module):
            raise ValueError(
                f"model has no module up{level}: skips_off needs the slide's names up1..up4"
            )
    handles = []
    try:
        for level in chosen:
            up = getattr(model, f"up{level}")
            handles.append(up.register_forward_pre_hook(_zero_skip, with_kwargs=True))
        yield model
    finally:
        for handle in handles:
            handle.remove()


# ----------------------------------------------------------------------------------------------
# The paper's unpadded network: valid sizes
# ----------------------------------------------------------------------------------------------


def _conv_stage(stages: list, name: str, size: int) -> int:
    """An unpadded 3x3 convolution (loses 2 pixels); ValueError naming the stage if too small."""
    if size < 3:
        raise ValueError(f"{name} receives {size} pixels, fewer than its 3x3 kernel")
    stages.append((name, conv2d_output_size(size, 3)))
    return stages[-1][1]


def _stages(input_size: int, depth: int) -> list[tuple[str, int]]:
    """The sizes after every layer; ValueError at the first invalid stage."""
    stages = [("input", input_size)]
    size = input_size
    for level in range(1, depth + 1):
        size = _conv_stage(stages, f"enc{level} conv1", size)
        size = _conv_stage(stages, f"enc{level} conv2", size)
        if size % 2:
            raise ValueError(
                f"pool{level} receives an odd size {size} (after enc{level} conv2): every 2x2 "
                "max-pool needs an even size, or the up-conv cannot give it back"
            )
        stages.append((f"pool{level}", conv2d_output_size(size, 2, stride=2)))
        size = stages[-1][1]
    size = _conv_stage(stages, "bottom conv1", size)
    size = _conv_stage(stages, "bottom conv2", size)
    for step in range(1, depth + 1):
        stages.append((f"up{step} up-conv", conv_transpose2d_output_size(size, 2, stride=2)))
        size = _conv_stage(stages, f"up{step} conv1", stages[-1][1])
        size = _conv_stage(stages, f"up{step} conv2", size)
    return stages


def _is_valid(size: int, depth: int) -> bool:
    try:
        _stages(size, depth)
    except ValueError:
        return False
    return True


def _nearest_valid(input_size: int, depth: int) -> list[int]:
    """The closest valid side below ``input_size`` (if any within 2**depth: valid sides are
    2**depth apart) and the closest above."""
    below = [s for s in range(input_size - 1, max(input_size - 2**depth, 0), -1)]
    found = [s for s in below if _is_valid(s, depth)][:1]
    above = input_size + 1
    while not _is_valid(above, depth):
        above += 1
    return found + [above]


def valid_unet_stage_sizes(input_size: int, depth: int = 4) -> list[tuple[str, int]]:
    """The side of the map after every layer of the paper's U-Net (unpadded 3x3 convolutions).

    Each 3x3 convolution loses 2 pixels (``conv_arithmetic.conv2d_output_size(n, 3)``), each
    2x2 max-pool halves, each 2x2 up-convolution doubles. Returns ``[("input", 572), ("enc1
    conv1", 570), ("enc1 conv2", 568), ("pool1", 284), ..., ("bottom conv2", 28), ("up1 up-conv",
    56), ("up1 conv1", 54), ..., ("up4 conv2", 388)]`` for 572 and depth 4.

    Raises:
        ValueError: a max-pool would receive an odd size, or a convolution fewer than 3 pixels;
            the message names the stage and the nearest valid input sizes.
    """
    check_int(input_size, "input_size")
    check_int(depth, "depth")
    try:
        return _stages(input_size, depth)
    except ValueError as error:
        nearest = " and ".join(map(str, _nearest_valid(input_size, depth)))
        raise ValueError(
            f"input size {input_size} is not valid for the unpadded U-Net of depth {depth}: "
            f"{error}. Nearest valid input sizes: {nearest}."
        ) from None


def valid_unet_output_size(input_size: int, depth: int = 4) -> int:
    """The output side of the paper's unpadded U-Net for an input side: 572 -> 388 (depth 4).
    ValueError for an input that a max-pool would get odd (see :func:`valid_unet_stage_sizes`)."""
    return valid_unet_stage_sizes(input_size, depth)[-1][1]


def valid_unet_skip_crops(input_size: int, depth: int = 4) -> list[tuple[str, int, int]]:
    """``(up step, skip side, cropped side)`` for each up step of the unpadded U-Net: the paper's
    "copy and crop" cuts the encoder's map to the up-sampled map's side, e.g. ``("up4", 568,
    392)`` for 572. ValueError as :func:`valid_unet_stage_sizes`."""
    sizes = dict(valid_unet_stage_sizes(input_size, depth))
    return [
        (f"up{step}", sizes[f"enc{depth + 1 - step} conv2"], sizes[f"up{step} up-conv"])
        for step in range(1, depth + 1)
    ]
