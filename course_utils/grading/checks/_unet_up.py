"""How ``check_Up`` compares a student's ``Up`` with the reference (private: not a topic module):
its layers, then both with the same random weights (loaded with ``load_state_dict``) on three
pairs (x1, skip) in train mode, on the CPU: the skip exactly twice x1's size, one pixel more in
both, one pixel more in the height only. Outputs, then the gradients with respect to both inputs;
a wrong output is matched against the usual mistakes, computed with the reference's layers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.grading.checks._unet_cases import (
    ATOL,
    RTOL,
    SEED,
    call_module,
    gradient_problem,
    random_weights,
)
from course_utils.grading.checks._unet_layers import (
    double_conv_problem,
    state_dict_problem,
    up_layer_problem,
)
from course_utils.grading.compare import describe, not_a_tensor_problem
from course_utils.grading.runner import Case

__all__ = ["compare_up"]

# (what the pair is, x1's (h, w), the skip's (H, W))
_PAIRS = (
    ("the skip exactly twice x1's size", (3, 4), (6, 8)),
    ("the skip one pixel more than twice x1's size in both", (4, 5), (9, 11)),
    ("the skip one pixel more than twice x1's size in the height only", (3, 5), (7, 10)),
)
_PAD = (
    "F.pad(x1, [diffX // 2, diffX - diffX // 2, diffY // 2, diffY - diffY // 2]) with diffY = "
    "x2.size(2) - x1.size(2) and diffX = x2.size(3) - x1.size(3)"
)


def _structure_problem(got: Any, expected: nn.Module, case: Case) -> str | None:
    """Layers and attribute names, the state_dict, train mode, a forward method."""
    in_channels, out_channels, bilinear = case.args
    if not isinstance(got, nn.Module):
        return f"Up(...) gave {describe(got)}, expected an nn.Module (class Up(nn.Module))."
    missing = [
        name for name in ("up", "conv") if not isinstance(getattr(got, name, None), nn.Module)
    ]
    if missing:
        return (
            f"self.{missing[0]} is missing: the slide names the layers self.up (the up-sampling) "
            "and self.conv (the DoubleConv); the names are the state_dict's keys."
        )
    mid = in_channels // 2 if bilinear else out_channels
    problem = up_layer_problem(got.up, in_channels, bilinear) or double_conv_problem(
        "self.conv", got.conv, (in_channels, mid, out_channels)
    )
    if problem:
        return problem
    problem = state_dict_problem(got, expected, f"Up({in_channels}, {out_channels}, {bilinear})")
    if problem:
        return problem
    if not all(module.training for module in got.modules()):
        return "the module is in eval mode after Up(...): do not call .eval() in __init__."
    if type(got).forward is nn.Module.forward:
        return "the class has no forward(self, x1, x2) method."
    return None


def _variants(reference: nn.Module, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, Any]:
    """The usual mistakes, each computed with the reference's layers: what to say -> a function
    returning that mistake's output."""
    height, width = x2.shape[-2:]

    def padded(up: torch.Tensor, side: str = "right") -> torch.Tensor:
        dy, dx = height - up.shape[-2], width - up.shape[-1]
        if side == "left":
            return F.pad(up, [dx - dx // 2, dx // 2, dy - dy // 2, dy // 2])
        return F.pad(up, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])

    def conv(*maps: torch.Tensor) -> torch.Tensor:
        return reference.conv(torch.cat(maps, dim=1))

    def interpolated(mode: str, corners: bool | None = None) -> torch.Tensor:
        up = F.interpolate(x1, scale_factor=2, mode=mode, align_corners=corners)
        return conv(x2, padded(up))

    def resized(mode: str, corners: bool | None = None) -> torch.Tensor:
        up = F.interpolate(reference.up(x1), size=(height, width), mode=mode, align_corners=corners)
        return conv(x2, up)

    variants: dict[str, Callable[[], torch.Tensor]] = {
        "the concatenation order is swapped: torch.cat([x2, x1], dim=1) puts the skip x2 "
        "first, then the up-sampled x1 (the slide's order, which its weights expect)": lambda: conv(
            padded(reference.up(x1)), x2
        ),
        "the odd pixel of padding is on the wrong side: put diffX // 2 columns on the left and "
        f"the rest on the right (the same for the rows, top and bottom), {_PAD}": lambda: conv(
            x2, padded(reference.up(x1), "left")
        ),
        "the up-sampled map is resized (interpolated) to the skip's size: pad it with zeros "
        f"instead, {_PAD}": lambda: resized("nearest"),
    }
    for mode, corners in (("bilinear", True), ("bilinear", False)):
        variants[
            "the up-sampled map is resized (interpolated) to the skip's size with "
            f"mode={mode!r}, align_corners={corners}: pad it with zeros instead, {_PAD}"
        ] = lambda m=mode, c=corners: resized(m, c)
    if not reference.bilinear:
        return variants
    variants[
        "x1 is up-sampled by nearest neighbour: bilinear=True means bilinear interpolation, "
        "mode='bilinear', align_corners=True"
    ] = lambda: interpolated("nearest")
    variants[
        "x1 is up-sampled with align_corners=False: the slide's Up uses "
        "nn.Upsample(scale_factor=2, mode='bilinear', align_corners=True)"
    ] = lambda: interpolated("bilinear", False)
    return variants


def _which_mistake(got: torch.Tensor, want: torch.Tensor, reference, x1, x2) -> str | None:
    with torch.no_grad():
        for text, mistake in _variants(reference, x1, x2).items():
            try:
                wrong = mistake()
            except (RuntimeError, ValueError):
                continue
            same = wrong.shape == got.shape and torch.allclose(got, wrong, rtol=RTOL, atol=ATOL)
            if same and not torch.allclose(wrong, want, rtol=RTOL, atol=ATOL):
                return text + "."
    return None


def _crash_problem(index: int, error: Exception, x1: torch.Tensor, x2: torch.Tensor) -> str:
    shapes = f"x1 of shape {tuple(x1.shape)} and x2 of shape {tuple(x2.shape)}"
    text = f"{type(error).__name__}: {str(error).strip()}"
    if index == 1:
        return (
            "pad the up-sampled map to the skip's size before concatenating: forward works when "
            f"the skip is exactly twice x1's size, not with one pixel more. {_PAD}. (On {shapes} "
            f"forward raised {text})"
        )
    if index == 2:
        return (
            "the height and width paddings are swapped: forward works when the skip is one "
            "pixel larger in both height and width, not in the height only. F.pad's list starts "
            f"with the LAST dimension, [left, right, top, bottom]: {_PAD}. (On {shapes} forward "
            f"raised {text})"
        )
    return f"forward raised {text} on {shapes}."


def _shape_problem(output: torch.Tensor, want: torch.Tensor, x1: torch.Tensor) -> str | None:
    if output.shape == want.shape:
        return None
    up_size = (2 * x1.shape[-2], 2 * x1.shape[-1])
    if output.shape[-2:] != want.shape[-2:] and tuple(output.shape[-2:]) == up_size:
        return (
            f"the output is {up_size[0]} x {up_size[1]}, the up-sampled map's size, expected the "
            f"skip's {want.shape[-2]} x {want.shape[-1]}: pad the up-sampled map to the skip's "
            f"size, {_PAD}, rather than cropping the skip."
        )
    if output.dim() == 4 and output.shape[1] != want.shape[1]:
        return (
            f"the output has {output.shape[1]} channels, expected out_channels = "
            f"{want.shape[1]}: return self.conv(torch.cat([x2, x1], dim=1)), the DoubleConv of "
            "the concatenation, not the concatenation itself."
        )
    return (
        f"the output has shape {tuple(output.shape)}, expected {tuple(want.shape)} = (N, "
        "out_channels, the skip's H, W): return self.conv(torch.cat([x2, x1], dim=1))."
    )


def _pair_problem(got: nn.Module, reference: nn.Module, index: int) -> str | None:
    """One pair (x1, skip): outputs, then the gradients with respect to both."""
    in_channels, bilinear = reference.in_channels, reference.bilinear
    what, small, large = _PAIRS[index]
    g = torch.Generator().manual_seed(SEED + index)
    x1 = torch.randn(2, in_channels // 2 if bilinear else in_channels, *small, generator=g)
    x2 = torch.randn(2, in_channels // 2, *large, generator=g)
    wanted = [x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)]
    want = reference(*wanted)
    upstream = torch.randn(want.shape, generator=g)
    want.backward(upstream)
    mine = [x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)]
    try:
        output = call_module(got, "Up", *mine)
    except NotImplementedError:
        raise
    except Exception as error:
        return _crash_problem(index, error, x1, x2)
    problem = not_a_tensor_problem(output) or _shape_problem(output, want, x1)
    if problem:
        return problem
    if not output.requires_grad:
        return "the output has no gradient: no torch.no_grad() or .detach() in forward."
    if not torch.allclose(output, want, rtol=RTOL, atol=ATOL):
        mistake = _which_mistake(output.detach(), want.detach(), reference, x1, x2)
        return mistake or (
            f"with {what}, the outputs differ from the reference's with the same weights "
            f"(largest difference {float((output - want).abs().max()):.4g}): up-sample x1, pad "
            "it to x2's size, return self.conv(torch.cat([x2, x1], dim=1))."
        )
    output.backward(upstream)
    names = ("x1", "x2 (the skip)")
    return gradient_problem(list(zip(names, mine, wanted)), f"with {what}")


def compare_up(got: Any, expected: nn.Module, case: Case) -> str | None:
    """Layers, then the reference's random weights loaded into the student's module, then the
    three pairs (x1, skip)."""
    problem = _structure_problem(got, expected, case)
    if problem:
        return problem
    random_weights(expected, SEED)
    try:
        got.load_state_dict(expected.state_dict())
    except RuntimeError as error:
        return f"the reference's weights do not load into your module: {error}"
    got.train()
    expected.train()
    for index in range(len(_PAIRS)):
        problem = _pair_problem(got, expected, index)
        if problem:
            return problem
    return None
