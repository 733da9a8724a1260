"""The cases of ``check_Up`` and ``check_UNet`` and what both comparators share (private: not a
topic module): random weights, the call that turns a release stub into a friendly error, the
gradient comparison and the restoring of torch's global RNG.

A case's arguments are what the student's class takes: ``(in_channels, out_channels, bilinear)``
for ``Up``, ``(n_channels, n_classes, width, bilinear)`` for ``UNet``. Building a module draws
its initial weights from torch's global RNG, and the runner builds the reference and the
student's module before the comparator runs: each case carries the global RNG state of the
moment its check started, and the comparators put it back, so that a check cell does not change
what a notebook trains after it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from course_utils.grading.compare import not_a_tensor_problem
from course_utils.grading.runner import Case

__all__ = [
    "ModuleCase",
    "call_module",
    "gradient_problem",
    "random_weights",
    "restoring_rng",
    "unet_cases",
    "up_cases",
]

SEED = 1111
ATOL, RTOL = 1e-4, 1e-4


@dataclass(frozen=True)
class ModuleCase(Case):
    """A Case that remembers torch's global RNG state when its cases were made."""

    rng_state: torch.Tensor | None = field(default=None, repr=False, compare=False)


def restoring_rng(compare: Callable[[Any, Any, Case], str | None]) -> Callable[..., str | None]:
    """``compare`` that sets torch's global RNG back to the case's ``rng_state`` when done."""

    def wrapped(got: Any, expected: Any, case: Case) -> str | None:
        try:
            return compare(got, expected, case)
        finally:
            state = getattr(case, "rng_state", None)
            if state is not None:
                torch.set_rng_state(state)

    wrapped.__name__ = compare.__name__
    wrapped.__doc__ = compare.__doc__
    return wrapped


_UP_HINT = (
    "Up(in_channels, out_channels, bilinear): bilinear -> self.up = nn.Upsample(scale_factor=2, "
    "mode='bilinear', align_corners=True), self.conv = DoubleConv(in_channels, out_channels, "
    "in_channels // 2); else self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, "
    "kernel_size=2, stride=2), self.conv = DoubleConv(in_channels, out_channels). forward(x1, x2): "
    "x1 = self.up(x1); pad x1 to x2's size with F.pad(x1, [diffX // 2, diffX - diffX // 2, diffY "
    "// 2, diffY - diffY // 2]) (diffY, diffX = x2's H, W minus x1's); return "
    "self.conv(torch.cat([x2, x1], dim=1))."
)

_UNET_HINT = (
    "factor = 2 if bilinear else 1; inc = DoubleConv(n_channels, width), down1 = Down(width, 2 * "
    "width), down2 = Down(2 * width, 4 * width), down3 = Down(4 * width, 8 * width), down4 = "
    "Down(8 * width, 16 * width // factor), up1 = Up(16 * width, 8 * width // factor, bilinear), "
    "up2 = Up(8 * width, 4 * width // factor, bilinear), up3 = Up(4 * width, 2 * width // factor, "
    "bilinear), up4 = Up(2 * width, width, bilinear), outc = OutConv(width, n_classes). forward: "
    "x1 = inc(x), x2..x5 = down1..down4 of the previous, x = up1(x5, x4), x = up2(x, x3), x = "
    "up3(x, x2), x = up4(x, x1), return outc(x)."
)


def up_cases() -> list[Case]:
    """The cases of ``check_Up``: ``(in_channels, out_channels, bilinear)``, CPU only. Each runs
    on three pairs (x1, skip): exactly twice the size, one pixel more in both, one pixel more in
    the height only."""
    state = torch.get_rng_state()
    return [
        ModuleCase(
            "bilinear, Up(8, 2): x1 has 4 channels, the skip 4, mid_channels 4",
            (8, 2, True),
            hint=_UP_HINT,
            rng_state=state,
        ),
        ModuleCase(
            "transposed convolution, Up(8, 4, bilinear=False): x1 has 8 channels, the skip 4",
            (8, 4, False),
            hint=_UP_HINT,
            rng_state=state,
        ),
        ModuleCase(
            "bilinear, Up(12, 5): x1 has 6 channels, the skip 6",
            (12, 5, True),
            hint=_UP_HINT,
            rng_state=state,
        ),
        ModuleCase(
            "transposed convolution, Up(6, 3, bilinear=False): x1 has 6 channels, the skip 3",
            (6, 3, False),
            hint=_UP_HINT,
            rng_state=state,
        ),
    ]


def unet_cases() -> list[Case]:
    """The cases of ``check_UNet``: ``(n_channels, n_classes, width, bilinear)``, CPU only. Each
    runs on a 32 x 48 batch, then on a 37 x 45 one (odd: the Up steps pad)."""
    state = torch.get_rng_state()
    return [
        ModuleCase(
            "bilinear, UNet(3, 2, width=4): down4 and up1..up3 divide by factor = 2",
            (3, 2, 4, True),
            hint=_UNET_HINT,
            rng_state=state,
        ),
        ModuleCase(
            "transposed convolutions, UNet(3, 2, width=4, bilinear=False): factor = 1",
            (3, 2, 4, False),
            hint=_UNET_HINT,
            rng_state=state,
        ),
        ModuleCase(
            "one input channel, 3 classes, width 2, bilinear: UNet(1, 3, 2, True)",
            (1, 3, 2, True),
            hint="Use every argument: n_channels for inc, n_classes for outc, width for all the "
            "channel counts. " + _UNET_HINT,
            rng_state=state,
        ),
    ]


# ----------------------------------------------------------------------------------------------
# shared by the comparators
# ----------------------------------------------------------------------------------------------


def random_weights(module: nn.Module, seed: int) -> None:
    """Deterministic random parameters (scaled by 1 / sqrt(fan_in)) and BatchNorm statistics,
    so that every weight matters (nn.BatchNorm2d starts as the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=g))
            elif tensor.dim() > 1:
                fan_in = tensor.shape[1] * tensor[0, 0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=g) / fan_in**0.5)
            elif name.endswith("weight"):  # BatchNorm's scale
                tensor.copy_(1.0 + 0.3 * torch.randn(tensor.shape, generator=g))
            else:  # biases, BatchNorm's shift and running mean
                tensor.copy_(0.3 * torch.randn(tensor.shape, generator=g))


def call_module(module: nn.Module, name: str, *inputs: torch.Tensor) -> Any:
    """``module(*inputs)``; a NotImplementedError left in the class is the release stub."""
    try:
        return module(*inputs)
    except NotImplementedError:
        raise NotImplementedError(
            f"{name} is not written yet: replace `raise NotImplementedError()` in its cell (in "
            "__init__ and forward) with your code, run that cell, then run this check again."
        ) from None


def gradient_problem(
    inputs: list[tuple[str, torch.Tensor, torch.Tensor]], where: str
) -> str | None:
    """``(name, the student's input, the reference's input)`` after both backward passes: the
    gradients must agree."""
    for name, mine, want in inputs:
        if mine.grad is None or not torch.allclose(mine.grad, want.grad, rtol=RTOL, atol=ATOL):
            return (
                f"the gradient with respect to {name} is wrong, although the outputs are right "
                f"({where}): no .detach(), .data, torch.no_grad() or in-place change of an input "
                "in forward."
            )
    return None


def outputs_and_gradients_problem(
    got: nn.Module,
    expected: nn.Module,
    x: torch.Tensor,
    *,
    name: str,
    seed: int,
    shape_hint: str,
    values_problem: Callable[[torch.Tensor, torch.Tensor], str],
) -> str | None:
    """Run both modules (same weights already loaded) on copies of ``x``: the student's output
    must have the reference's shape (else the message ends with ``shape_hint``), its values
    (else ``values_problem(output, want)``), and a gradient with respect to ``x`` equal to the
    reference's for the same seeded upstream gradient."""
    where = f"x of shape {tuple(x.shape)}"
    upstream = torch.randn(expected(x).shape, generator=torch.Generator().manual_seed(seed))
    wanted_input = x.clone().requires_grad_(True)
    want = expected(wanted_input)
    want.backward(upstream)
    mine = x.clone().requires_grad_(True)
    try:
        output = call_module(got, name, mine)
    except NotImplementedError:
        raise
    except Exception as error:
        return f"forward raised {type(error).__name__} on {where}: {error}"
    problem = not_a_tensor_problem(output)
    if problem:
        return problem
    if output.shape != want.shape:
        return (
            f"on {where} the output has shape {tuple(output.shape)}, expected "
            f"{tuple(want.shape)}: {shape_hint}"
        )
    if not torch.allclose(output, want, rtol=1e-4, atol=1e-5):
        return values_problem(output, want)
    if not output.requires_grad:
        return "the output has no gradient: no torch.no_grad() or .detach() in forward."
    output.backward(upstream)
    return gradient_problem([("x", mine, wanted_input)], where)
