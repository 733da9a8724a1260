"""The cases of ``check_Upsample`` and how it compares a student's layer with the reference
(private: not a topic module).

A case's arguments are what the student's class takes: ``(channels, factor, mode)``. The
comparator checks the parameters (none for ``mode="bilinear"`` or ``factor=1``, exactly
``deconv.weight`` otherwise), the transposed convolution's settings, its initial weight
(``bilinear_kernel(channels, factor)``, trainable), then loads the same random weights into
both layers and compares, on a ``(2, channels, 5, 7)`` batch, the ``(2, channels, 5 factor,
7 factor)`` outputs (naming the usual mistakes) and the input gradients. Everything runs on the
CPU; each case carries torch's global RNG state (building a ConvTranspose2d draws from it), put
back by ``restoring_rng``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.grading.checks._unet_cases import (
    ModuleCase,
    outputs_and_gradients_problem,
    random_weights,
)
from course_utils.grading.compare import describe
from course_utils.grading.runner import Case
from course_utils.segmentation.upsampling import bilinear_kernel

__all__ = ["compare_upsample", "upsample_cases"]

_SEED = 919
_HEIGHT, _WIDTH = 5, 7  # the input batch is (2, channels, 5, 7)
_SPEC = (
    "nn.ConvTranspose2d(channels, channels, 2 * factor - factor % 2, stride=factor, "
    "padding=factor // 2, bias=False)"
)
_SIZE_WHY = "kernel 2f - f % 2 and padding f // 2 make the output exactly f times larger"
_WHY = {
    "kernel_size": "bilinear_kernel's tent is 2f - f % 2 wide, and with padding f // 2 that kernel "
    "makes the output exactly f times larger",
    "stride": "stride f puts neighbouring input pixels f output pixels apart, which makes the "
    "output f times larger",
    "padding": _SIZE_WHY,
    "output_padding": _SIZE_WHY + " with no output_padding",
    "dilation": "the tent's taps are neighbours (dilation 1)",
    "groups": "upsampling.bilinear_kernel(channels, factor) is a full (channels, channels, k, k) "
    "weight, zero off the diagonal",
}
_HINT = (
    "Upsample(channels, factor, mode='bilinear'): factor = 1 -> the identity (no parameters, "
    "forward returns x); mode='bilinear' -> no parameters, forward returns F.interpolate(x, "
    "scale_factor=factor, mode='bilinear', align_corners=False); mode='learned' -> self.deconv = "
    + _SPEC
    + " with its weight copied from upsampling.bilinear_kernel(channels, factor) (under "
    "torch.no_grad(), still trainable), forward returns self.deconv(x)."
)


def upsample_cases() -> list[Case]:
    """The cases of ``check_Upsample``: ``(channels, factor, mode)``, CPU only; each runs on a
    (2, channels, 5, 7) batch of score maps."""
    state = torch.get_rng_state()
    cases = [
        (
            "Upsample(3, 2, 'bilinear'): fixed bilinear interpolation, x2",
            (3, 2, "bilinear"),
            "mode='bilinear' has no parameters: it is F.interpolate(x, scale_factor=factor, "
            "mode='bilinear', align_corners=False), not nearest, not align_corners=True.",
        ),
        (
            "Upsample(3, 2, 'learned'): a transposed convolution, kernel 4, stride 2, padding 1",
            (3, 2, "learned"),
            "Build the layer in __init__ and copy the bilinear weights into it: with "
            "torch.no_grad(): self.deconv.weight.copy_(upsampling.bilinear_kernel(channels, "
            "factor)).",
        ),
        (
            "Upsample(4, 4, 'learned'): kernel 8, stride 4, padding 2",
            (4, 4, "learned"),
            "Use factor everywhere: kernel 2 * 4 - 4 % 2 = 8, stride 4, padding 4 // 2 = 2.",
        ),
        (
            "Upsample(2, 3, 'learned'): an odd factor, kernel 5, stride 3, padding 1",
            (2, 3, "learned"),
            "An odd factor has an odd kernel, 2 * 3 - 3 % 2 = 5, and padding 3 // 2 = 1: h rows "
            "give (h - 1) 3 - 2 + 5 = 3h rows (a kernel of 6 gives 3h + 1).",
        ),
        (
            "Upsample(5, 8, 'learned'): a large factor, kernel 16, stride 8, padding 4",
            (5, 8, "learned"),
            "upsampling.bilinear_kernel(5, 8) is diagonal: each of the 5 channels up-samples "
            "itself, no channel mixes into another at the start.",
        ),
        (
            "Upsample(3, 1, 'learned'): factor 1 is the identity, also when learned",
            (3, 1, "learned"),
            "With factor = 1 there is nothing to up-sample: no ConvTranspose2d (self.deconv = "
            "None), forward returns x.",
        ),
        (
            "Upsample(3, 1, 'bilinear'): factor 1 is the identity",
            (3, 1, "bilinear"),
            "With factor = 1 forward returns x as it is (no parameters).",
        ),
        (
            "Upsample(2, 3, 'bilinear'): fixed bilinear interpolation by an odd factor",
            (2, 3, "bilinear"),
            "F.interpolate(x, scale_factor=factor, mode='bilinear', align_corners=False) works for "
            "any integer factor: no transposed convolution in this mode.",
        ),
    ]
    return [
        ModuleCase(name, args, hint=f"{hint} {_HINT}", rng_state=state)
        for name, args, hint in cases
    ]


# ----------------------------------------------------------------------------------------------
# structure: parameters, the transposed convolution's settings, its initial weight
# ----------------------------------------------------------------------------------------------


def _keys_problem(got: nn.Module, factor: int, mode: str) -> str | None:
    """The state_dict holds nothing (bilinear, factor 1) or exactly deconv.weight (learned)."""
    keys = list(got.state_dict())
    found = ", ".join(keys[:6]) + (" ..." if len(keys) > 6 else "")
    if factor == 1:
        if keys:
            return (
                f"with factor = 1 the layer is the identity in both modes and has no parameters, "
                f"found {found}: build no ConvTranspose2d (self.deconv = None) and return x."
            )
        return None
    if mode == "bilinear":
        if keys:
            return (
                f"mode='bilinear' has no parameters, found {found}: it is fixed interpolation, "
                "F.interpolate(x, scale_factor=factor, mode='bilinear', align_corners=False); "
                "build self.deconv only for mode='learned' (self.deconv = None otherwise)."
            )
        return None
    if not keys:
        return (
            "mode='learned' has no parameters: it learns its up-sampling, self.deconv = "
            f"{_SPEC} initialised with upsampling.bilinear_kernel(channels, factor), not a fixed "
            "F.interpolate."
        )
    if keys == ["deconv.weight"]:
        return None
    if sorted(keys) == ["deconv.bias", "deconv.weight"]:
        return (
            "self.deconv has a bias (deconv.bias): use bias=False, bilinear up-sampling adds "
            "nothing to the scores (the layer before it has its own bias)."
        )
    return (
        f"the state_dict's keys are {found}, expected only deconv.weight: name the layer "
        f"self.deconv = {_SPEC} and add nothing else with parameters."
    )


def _rows(layer: nn.ConvTranspose2d, height: int) -> int:
    """How many rows ``layer`` makes of ``height`` input rows."""
    (k, _), (s, _), (p, _) = layer.kernel_size, layer.stride, layer.padding
    (op, _), (d, _) = layer.output_padding, layer.dilation
    return (height - 1) * s - 2 * p + d * (k - 1) + op + 1


def _settings_problem(layer: Any, channels: int, factor: int) -> str | None:
    """self.deconv's type, kernel, stride, padding, output_padding, dilation, groups, channels."""
    if not isinstance(layer, nn.ConvTranspose2d):
        return f"self.deconv must be an {_SPEC}, found {describe(layer)}."
    size = 2 * factor - factor % 2
    want = {
        "kernel_size": (size, size),
        "stride": (factor, factor),
        "padding": (factor // 2, factor // 2),
        "output_padding": (0, 0),
        "dilation": (1, 1),
        "groups": 1,
    }
    rows, wanted_rows = _rows(layer, _HEIGHT), factor * _HEIGHT
    if rows != wanted_rows:
        size_text = f" (your settings make {rows} rows of {_HEIGHT}, not {wanted_rows})"
    else:
        size_text = (
            f" (your settings do make {rows} rows of {_HEIGHT}, but not with bilinear_kernel's "
            "weights)"
        )
    for setting, value in want.items():
        actual = getattr(layer, setting)
        if actual != value:
            size = "" if setting == "groups" else size_text
            return (
                f"self.deconv has {setting} {actual}, expected {value} for factor = {factor}"
                f"{size}: {_WHY[setting]}. It is {_SPEC}."
            )
    if (layer.in_channels, layer.out_channels) != (channels, channels):
        return (
            f"self.deconv maps {layer.in_channels} -> {layer.out_channels} channels, expected "
            f"{channels} -> {channels}: it up-samples each of the {channels} score maps into one "
            "(channels in and out)."
        )
    return None


def _init_problem(weight: torch.Tensor, channels: int, factor: int) -> str | None:
    """The weight starts as bilinear_kernel(channels, factor) and is trainable."""
    want = bilinear_kernel(channels, factor)
    values = weight.detach().float().cpu()
    if not torch.allclose(values, want, rtol=1e-5, atol=1e-6):
        off = values.clone()
        off[range(channels), range(channels)] = 0
        bound = (channels * values[0, 0].numel()) ** -0.5
        if bool((values < 0).any()) and float(values.abs().max()) <= bound * 1.0001:
            return (
                "self.deconv.weight is PyTorch's default random initialisation (uniform in "
                f"±1/sqrt(fan_in) = ±{bound:.3g}), not bilinear up-sampling: copy "
                "upsampling.bilinear_kernel(channels, factor) into it (with torch.no_grad(): "
                "self.deconv.weight.copy_(upsampling.bilinear_kernel(channels, factor)))."
            )
        if float(off.abs().max()) > 1e-6:
            if torch.allclose(values, want[0, 0].expand_as(values), rtol=1e-5, atol=1e-6):
                return (
                    "self.deconv.weight has the tent for every channel pair (i, j), so each "
                    "output channel sums all input channels (it mixes channels): "
                    "bilinear_kernel(channels, factor) is diagonal, weight[c, c] is the tent and "
                    "weight[i, j] is zero for i != j (each channel up-samples itself)."
                )
            return (
                "self.deconv.weight is not diagonal: weight[i, j] must be zero for i != j (it "
                "mixes channels); start from bilinear_kernel(channels, factor), where each "
                "channel up-samples itself."
            )
        return (
            "self.deconv.weight's diagonal kernels are not bilinear_kernel(channels, factor)'s "
            f"tent (largest difference {float((values - want).abs().max()):.4g}): copy "
            "bilinear_kernel(channels, factor) into the weight rather than building the tent "
            "yourself."
        )
    if not weight.requires_grad:
        return (
            "self.deconv.weight is frozen (requires_grad=False): mode='learned' trains it with "
            "the network, keep it trainable (bilinear_upsampler(channels, factor) with the "
            "default learnable=True)."
        )
    return None


def _structure_problem(got: Any, channels: int, factor: int, mode: str) -> str | None:
    if not isinstance(got, nn.Module):
        return f"Upsample(...) gave {describe(got)}, expected an nn.Module (Upsample(nn.Module))."
    if type(got).forward is nn.Module.forward:
        return "the class has no forward(self, x) method."
    problem = _keys_problem(got, factor, mode)
    if problem or factor == 1 or mode == "bilinear":
        return problem
    return _settings_problem(got.deconv, channels, factor) or _init_problem(
        got.deconv.weight, channels, factor
    )


# ----------------------------------------------------------------------------------------------
# outputs and gradients, with the same weights
# ----------------------------------------------------------------------------------------------


def _variant_problem(got: torch.Tensor, x: torch.Tensor, factor: int, mode: str) -> str | None:
    """Which usual mistake the output is (with the random weights loaded: not the bilinear)."""
    channels = x.shape[1]

    def resize(kind: str, **kwargs: Any) -> torch.Tensor:
        return F.interpolate(x, scale_factor=factor, mode=kind, **kwargs)

    with torch.no_grad():
        fixed = F.conv_transpose2d(
            x, bilinear_kernel(channels, factor), stride=factor, padding=factor // 2
        )
        if mode == "learned":
            variants = [
                (
                    "forward does not use self.deconv: it returns fixed bilinear interpolation "
                    "(F.interpolate); with mode='learned' return self.deconv(x)",
                    resize("bilinear", align_corners=False),
                ),
                (
                    "forward up-samples with bilinear_kernel(channels, factor) itself, not with "
                    "self.deconv's weight, which is what trains: return self.deconv(x)",
                    fixed,
                ),
            ]
        else:
            variants = [
                (
                    "the output is bilinear interpolation with align_corners=True: use "
                    "align_corners=False (the pixel centres of input and output line up, as "
                    "bilinear_kernel assumes)",
                    resize("bilinear", align_corners=True),
                ),
                (
                    "the output is nearest-neighbour up-sampling (mode='nearest'): use "
                    "mode='bilinear'",
                    resize("nearest"),
                ),
                (
                    "the output is nearest-neighbour up-sampling (mode='nearest-exact'): use "
                    "mode='bilinear'",
                    resize("nearest-exact"),
                ),
                (
                    "the output is bicubic interpolation: use mode='bilinear'",
                    resize("bicubic", align_corners=False),
                ),
                (
                    "the output is the bilinear transposed convolution, which sees zeros beyond "
                    "the border: mode='bilinear' is F.interpolate(..., align_corners=False), "
                    "which repeats the edge pixel",
                    fixed,
                ),
            ]
    for text, variant in variants:
        if variant.shape == got.shape and torch.allclose(got, variant, rtol=1e-4, atol=1e-5):
            return text + "."
    return None


def _output_problem(got: nn.Module, expected: nn.Module, x: torch.Tensor, case: Case) -> str | None:
    _, factor, mode = case.args

    def values_problem(output: torch.Tensor, want: torch.Tensor) -> str:
        return _variant_problem(output.detach(), x, factor, mode) or (
            f"outputs differ from the reference's with the same weights (largest difference "
            f"{float((output - want).abs().max()):.4g}): forward returns x for factor = 1, "
            "self.deconv(x) for mode='learned', F.interpolate(x, scale_factor=factor, "
            "mode='bilinear', align_corners=False) for mode='bilinear'."
        )

    return outputs_and_gradients_problem(
        got,
        expected,
        x,
        name="Upsample",
        seed=_SEED,
        shape_hint=f"(B, C, factor * h, factor * w) with factor = {factor}.",
        values_problem=values_problem,
    )


def compare_upsample(got: Any, expected: nn.Module, case: Case) -> str | None:
    """Parameters, settings and initial weight, then outputs and input gradients with the same
    random weights in both layers, on a (2, channels, 5, 7) batch (CPU)."""
    channels, factor, mode = case.args
    problem = _structure_problem(got, channels, factor, mode)
    if problem:
        return problem
    random_weights(expected, _SEED + 1)
    try:
        got.load_state_dict(expected.state_dict())
    except RuntimeError as error:
        return f"the reference's weights do not load into your module: {error}"
    generator = torch.Generator().manual_seed(_SEED + 2)
    x = torch.randn(2, channels, _HEIGHT, _WIDTH, generator=generator)
    return _output_problem(got.train(), expected.train(), x, case)
