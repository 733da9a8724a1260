"""The layers of a student's ``Up`` (private: not a topic module): ``self.up`` (nn.Upsample or
nn.ConvTranspose2d), ``self.conv`` (a DoubleConv: ``double_conv`` = Conv2d, BatchNorm2d, ReLU,
Conv2d, BatchNorm2d, ReLU) and the state_dict's keys and shapes, each compared with the slide's
(milesial/Pytorch-UNet's) layout. Every function returns None when right, else what differs."""

from __future__ import annotations

from typing import Any

from torch import nn

from course_utils.grading.compare import describe

__all__ = ["double_conv_problem", "state_dict_problem", "up_layer_problem"]

_BLOCK = ("Conv2d", "BatchNorm2d", "ReLU")
_DOUBLE = (
    "DoubleConv: self.double_conv = nn.Sequential(Conv2d(in, mid, 3, padding=1, bias=False), "
    "BatchNorm2d(mid), ReLU(inplace=True), Conv2d(mid, out, 3, padding=1, bias=False), "
    "BatchNorm2d(out), ReLU(inplace=True))"
)


def _pair(value: Any) -> Any:
    return (value, value) if isinstance(value, int) else tuple(value)


def _upsample_problem(up: nn.Upsample) -> str | None:
    if up.mode != "bilinear":
        return (
            f"self.up uses mode={up.mode!r}: with bilinear=True it is nn.Upsample(scale_factor=2, "
            "mode='bilinear', align_corners=True) (nearest copies each pixel into a 2x2 block)."
        )
    if up.align_corners is not True:
        return (
            f"self.up has align_corners={up.align_corners}: the slide's (milesial's) Up uses "
            "align_corners=True, which maps the corner pixels onto the corner pixels."
        )
    factor = up.scale_factor
    factors = factor if isinstance(factor, tuple) else (factor, factor)
    if up.size is not None or any(f is None or float(f) != 2.0 for f in factors):
        return (
            f"self.up has scale_factor={factor} and size={up.size}: it doubles the size, "
            "scale_factor=2 (the padding then adds the odd pixel)."
        )
    return None


def _bilinear_up_problem(up: nn.Module) -> str | None:
    weights = [name for name, _ in up.named_parameters()]
    if weights:
        return (
            f"self.up has weights ({', '.join(f'up.{n}' for n in weights)}): with bilinear=True "
            "the channels are not halved again after the up-sampling; x1 already has "
            "in_channels // 2 of them (down4 and the previous Up divide by factor). self.up is "
            "just nn.Upsample(scale_factor=2, mode='bilinear', align_corners=True), no "
            "convolution."
        )
    if isinstance(up, nn.Upsample):
        return _upsample_problem(up)
    return None


def _transposed_up_problem(up: nn.Module, in_channels: int) -> str | None:
    spec = f"nn.ConvTranspose2d({in_channels}, {in_channels // 2}, kernel_size=2, stride=2)"
    if not isinstance(up, nn.ConvTranspose2d):
        return (
            f"with bilinear=False self.up is the learned up-sampling {spec} (in_channels -> "
            f"in_channels // 2), found {describe(up)}."
        )
    if up.in_channels != in_channels:
        return f"self.up reads {up.in_channels} channels, expected in_channels = {in_channels}."
    if up.out_channels != in_channels // 2:
        return (
            f"self.up gives {up.out_channels} channels, expected in_channels // 2 = "
            f"{in_channels // 2}: the up-conv halves the channels, so that [skip, up-sampled] "
            f"has in_channels ({spec})."
        )
    settings = {"kernel_size": (2, 2), "stride": (2, 2), "padding": (0, 0)}
    for setting, want in settings.items():
        if _pair(getattr(up, setting)) != want:
            return (
                f"self.up has {setting} {_pair(getattr(up, setting))}, expected {want}: {spec} "
                "exactly doubles the size, each input pixel spreading into its own 2x2 block."
            )
    if _pair(up.output_padding) != (0, 0) or _pair(up.dilation) != (1, 1) or up.groups != 1:
        return f"self.up must be exactly {spec} (no output_padding, dilation or groups)."
    if up.bias is None:
        return f"self.up has no bias: keep nn.ConvTranspose2d's default bias=True ({spec})."
    return None


def up_layer_problem(up: Any, in_channels: int, bilinear: bool) -> str | None:
    """``self.up`` of ``Up(in_channels, out_channels, bilinear)``."""
    if not isinstance(up, nn.Module):
        return (
            f"self.up must be an nn.Module, found {describe(up)}: nn.Upsample(...) with "
            "bilinear=True, nn.ConvTranspose2d(...) without."
        )
    if bilinear:
        return _bilinear_up_problem(up)
    return _transposed_up_problem(up, in_channels)


def _sequence_problem(name: str, layers: list[nn.Module]) -> str | None:
    kinds = [type(layer).__name__ for layer in layers]
    convs = kinds.count("Conv2d")
    if convs == 1:
        return (
            f"{name}.double_conv has a single convolution ({', '.join(kinds)}): a DoubleConv has "
            f"two (3x3 conv -> BatchNorm -> ReLU) blocks, {_DOUBLE}."
        )
    if "BatchNorm2d" not in kinds:
        return f"{name}.double_conv has no BatchNorm2d ({', '.join(kinds)}): {_DOUBLE}."
    if "ReLU" in kinds and kinds.index("ReLU") < kinds.index("BatchNorm2d"):
        return (
            f"{name}.double_conv applies the ReLU before the BatchNorm ({', '.join(kinds)}): "
            f"each block is conv -> BatchNorm -> ReLU, {_DOUBLE}."
        )
    if tuple(kinds) != _BLOCK * 2:
        return f"{name}.double_conv holds {', '.join(kinds)}: {_DOUBLE}."
    return None


def _settings_problem(name: str, conv: nn.Conv2d) -> str | None:
    padding = (1, 1) if conv.padding == "same" else conv.padding
    settings = (conv.kernel_size, padding, conv.stride, conv.dilation, conv.groups)
    if settings != ((3, 3), (1, 1), (1, 1), (1, 1), 1):
        return (
            f"{name} has kernel_size {conv.kernel_size}, padding {padding}, stride "
            f"{conv.stride}: it is nn.Conv2d(in, out, kernel_size=3, padding=1, bias=False), "
            "which keeps the map's size."
        )
    if conv.bias is not None:
        return (
            f"{name} has a bias: use bias=False, the BatchNorm2d that follows has its own shift "
            "(and the slide's state_dict has no such key)."
        )
    return None


def _channels_problem(name: str, first: nn.Conv2d, second: nn.Conv2d, channels) -> str | None:
    wanted_in, mid, out = channels
    if first.in_channels != wanted_in:
        return (
            f"{name}.double_conv[0] reads {first.in_channels} channels, expected in_channels = "
            f"{wanted_in}: the concatenation [skip, up-sampled] has in_channels channels."
        )
    if first.out_channels != mid and mid != out:
        return (
            f"{name}.double_conv[0] gives {first.out_channels} channels, expected mid_channels = "
            f"in_channels // 2 = {mid}: with bilinear=True, self.conv = DoubleConv(in_channels, "
            "out_channels, in_channels // 2)."
        )
    if first.out_channels != mid:
        return (
            f"{name}.double_conv[0] gives {first.out_channels} channels, expected out_channels = "
            f"{out}: with bilinear=False, self.conv = DoubleConv(in_channels, out_channels)."
        )
    if (second.in_channels, second.out_channels) != (mid, out):
        return (
            f"{name}.double_conv[3] maps {second.in_channels} -> {second.out_channels} channels, "
            f"expected {mid} -> out_channels = {out}."
        )
    return None


def double_conv_problem(name: str, module: Any, channels: tuple[int, int, int]) -> str | None:
    """``module`` (named ``name``) is ``DoubleConv(in, out, mid)``: ``channels`` = (in, mid,
    out)."""
    layers = getattr(module, "double_conv", None)
    if isinstance(module, nn.Conv2d):
        return (
            f"{name} is a single nn.Conv2d: it is a DoubleConv, two (3x3 conv -> BatchNorm -> "
            f"ReLU) blocks, {_DOUBLE}."
        )
    if not isinstance(layers, nn.Sequential):
        return f"{name} has no nn.Sequential double_conv (found {describe(layers)}): {_DOUBLE}."
    problem = _sequence_problem(name, list(layers))
    if problem:
        return problem
    return (
        _channels_problem(name, layers[0], layers[3], channels)
        or _settings_problem(f"{name}.double_conv[0]", layers[0])
        or _settings_problem(f"{name}.double_conv[3]", layers[3])
    )


def state_dict_problem(got: nn.Module, expected: nn.Module, what: str) -> str | None:
    """The state_dicts' keys and shapes must be the reference's (so the slide's weights load)."""
    mine, theirs = got.state_dict(), expected.state_dict()
    missing = [key for key in theirs if key not in mine]
    extra = [key for key in mine if key not in theirs]
    if missing or extra:
        return (
            f"the state_dict's keys differ from the slide's {what}: missing "
            f"{', '.join(missing[:4]) or 'none'}; unexpected {', '.join(extra[:4]) or 'none'}. "
            "Keep the slide's attribute names (up, conv; double_conv; maxpool_conv)."
        )
    for key, value in theirs.items():
        if mine[key].shape != value.shape:
            return (
                f"{key} has shape {tuple(mine[key].shape)}, expected {tuple(value.shape)} (the "
                f"slide's {what})."
            )
    return None
