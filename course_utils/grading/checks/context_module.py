"""Check for the context-module assignment (notebook 10): Yu & Koltun's basic context module.

``ContextModule(channels, dilations, identity_init=True)``: an ``nn.Module`` with ``body`` = an
``nn.Sequential`` of ``(Conv2d(C, C, 3, padding=d, dilation=d), ReLU)`` per dilation, ``out`` =
``Conv2d(C, C, 1)`` and ``dilations`` (a tuple); ``forward(x) = x + out(body(x))``, float
``(N, C, H, W)`` -> ``(N, C, H, W)``. With ``identity_init`` every 3x3 kernel is the identity and
``out`` is zero, so the module returns its input.

The check builds the student's class and the reference with each case's arguments, compares the
layers and the initial weights, then copies random weights from the reference into the student's
module (``load_state_dict``) and compares the outputs and the input gradients on a (2, C, 13, 17)
map in train mode, on the CPU. The reference is the course's
``course_utils.segmentation.receptive_field.ContextModule``.

Usage in a notebook::

    check_ContextModule(ContextModule)   # the class itself, not an instance
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from course_utils.grading.assignments import assignment_check
from course_utils.grading.checks._context_cases import (
    context_module_cases,
    init_problem,
    structure_problem,
)
from course_utils.grading.compare import not_a_tensor_problem
from course_utils.grading.runner import Case
from course_utils.segmentation import receptive_field as rf

__all__ = ["CHECKS", "check_ContextModule", "context_module_cases"]

_SEED = 1010
_SIZE = (13, 17)  # odd and non-square: a wrong padding or a transpose changes the shape


def _random_weights(reference: nn.Module) -> None:
    """Deterministic weights scaled by 1 / sqrt(fan_in), and non-zero biases (the identity
    initialisation would hide most mistakes)."""
    g = torch.Generator().manual_seed(_SEED)
    with torch.no_grad():
        for parameter in reference.parameters():
            scale = parameter[0].numel() ** -0.5 if parameter.dim() > 1 else 0.3
            parameter.copy_(torch.randn(parameter.shape, generator=g) * scale)


def _forward(module: nn.Module, x: torch.Tensor) -> Any:
    """``module(x)`` in train mode; a NotImplementedError left in the class is the release
    stub."""
    module.train()
    try:
        return module(x)
    except NotImplementedError:
        raise NotImplementedError(
            "ContextModule is not written yet: replace `raise NotImplementedError()` in its cell "
            "(in __init__ and forward) with your code, run that cell, then run this check again."
        ) from None


def _variant_problem(got: torch.Tensor, reference: nn.Module, x: torch.Tensor) -> str | None:
    """Which usual mistake ``got`` is, from the reference's layers; None if none fits."""
    with torch.no_grad():
        inner = reference.body(x)
        scores = reference.out(inner)
        variants = {
            "the output is out(body(x)), without the input: return x + self.out(self.body(x)) "
            "(the residual connection)": scores,
            "the input is added before the 1x1 layer, out(x + body(x)): add it after, x + "
            "self.out(self.body(x))": reference.out(x + inner),
            "the output has no negative values: no ReLU after the residual sum x + "
            "out(body(x)), the scores stay unclipped": torch.relu(x + scores),
            "out's result goes through a ReLU, x + relu(out(body(x))): out is linear, no ReLU "
            "after the 1x1 layer": x + torch.relu(scores),
        }
    for text, variant in variants.items():
        if torch.allclose(got, variant, rtol=1e-4, atol=1e-5):
            return text + "."
    return None


def _output_problem(got: nn.Module, reference: nn.Module, channels: int) -> str | None:
    """Outputs, then gradients with respect to the input, with the same random weights."""
    g = torch.Generator().manual_seed(_SEED + 1)
    x = torch.randn(2, channels, *_SIZE, generator=g)
    upstream = torch.randn(2, channels, *_SIZE, generator=g)
    wanted_input = x.clone().requires_grad_(True)
    want = reference.train()(wanted_input)
    want.backward(upstream)
    mine = x.clone().requires_grad_(True)
    try:
        output = _forward(got, mine)
    except NotImplementedError:
        raise
    except Exception as error:
        return f"forward raised {type(error).__name__} on x of shape {tuple(x.shape)}: {error}"
    problem = not_a_tensor_problem(output)
    if problem:
        return problem
    if output.shape != want.shape:
        return (
            f"on x of shape {tuple(x.shape)} the output has shape {tuple(output.shape)}, "
            f"expected {tuple(want.shape)}: the module keeps the (N, C, H, W) shape."
        )
    if not output.requires_grad:
        return (
            "the output has no gradient: do not wrap forward in torch.no_grad() or call "
            ".detach(); training needs the gradient."
        )
    if not torch.allclose(output, want, rtol=1e-4, atol=1e-5):
        variant = _variant_problem(output.detach(), reference, x)
        return variant or (
            f"outputs differ from the reference's with the same weights (largest difference "
            f"{float((output - want).abs().max()):.4g}): forward returns x + "
            "self.out(self.body(x))."
        )
    output.backward(upstream)
    if mine.grad is None or not torch.allclose(mine.grad, wanted_input.grad, rtol=1e-4, atol=1e-5):
        return (
            "the outputs are right but the gradient with respect to the input is not: no "
            ".detach(), .data or in-place change of x in forward."
        )
    return None


def _identity_problem(module: nn.Module, channels: int) -> str | None:
    """With its own initial weights the module returns its input exactly."""
    g = torch.Generator().manual_seed(_SEED + 2)
    x = torch.randn(2, channels, *_SIZE, generator=g)
    with torch.no_grad():
        output = _forward(module, x.clone())
    if not torch.equal(output, x):
        return (
            "with identity_init=True the module must return its input exactly (largest "
            f"difference {float((output - x).abs().max()):.4g}): each 3x3 layer passes its "
            "input on, out is zero, and the input is added back."
        )
    return None


def compare_context(got: Any, expected: nn.Module, case: Case) -> str | None:
    """Layers, initial weights, then outputs and input gradients with the reference's random
    weights copied in, then (identity_init) the identity on the student's own weights."""
    channels, _, identity_init = case.args
    problem = structure_problem(got, expected) or init_problem(got, expected, identity_init)
    if problem:
        return problem
    initial = copy.deepcopy(got)
    _random_weights(expected)
    try:
        got.load_state_dict(expected.state_dict())
    except RuntimeError as error:
        return f"the reference's weights do not load into your module: {error}"
    problem = _output_problem(got, expected, channels)
    if problem is None and identity_init:
        problem = _identity_problem(initial, channels)
    return problem


@assignment_check(reference=rf.ContextModule, cases=context_module_cases, compare=compare_context)
def check_ContextModule(ContextModule: type[nn.Module], *, quiet: bool = False) -> None:
    """Check ``ContextModule(channels, dilations, identity_init)``, a class (an nn.Module): pass
    the class.

    Its attributes: ``body`` = nn.Sequential(Conv2d(C, C, 3, padding=d, dilation=d), ReLU(), ...)
    for d in dilations, ``out`` = nn.Conv2d(C, C, 1), ``dilations`` = tuple(dilations), nothing
    else with parameters. identity_init=True: every 3x3 weight is 1 at [c, c, 1, 1] and 0
    elsewhere, biases and ``out`` zero. ``forward(x (N, C, H, W)) -> x + out(body(x))``, the same
    shape. Run on the CPU, with the reference's weights copied in, on (2, C, 13, 17) maps.
    """


CHECKS = (check_ContextModule,)
