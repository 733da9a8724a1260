"""The cases of ``check_ContextModule`` and what it checks on a freshly built module (private: not
a topic module): its layers (``body``, ``out``, ``dilations``) and, with ``identity_init=True``,
the identity initialisation of every layer.

A case's arguments are ``(channels, dilations, identity_init)``: ints, a tuple or list of ints and
a bool, as ``ContextModule(channels, dilations, identity_init)`` takes them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from course_utils.grading.compare import describe
from course_utils.grading.runner import Case

__all__ = ["context_module_cases", "init_problem", "structure_problem"]

_LAYERS = (
    "body = nn.Sequential(Conv2d(C, C, 3, padding=d, dilation=d), ReLU() for each d in "
    "dilations), out = nn.Conv2d(C, C, 1), self.dilations = tuple(dilations); forward returns "
    "x + self.out(self.body(x))."
)
_IDENTITY = (
    "identity_init=True: zero every weight and bias of the body, then set weight[c, c, 1, 1] = 1 "
    "for every channel c (the centre tap, on the diagonal: channel c passes to channel c), and "
    "zero out's weight and bias. " + _LAYERS
)


def context_module_cases() -> list[Case]:
    """The cases of ``check_ContextModule``: ``(channels, dilations, identity_init)`` (CPU only;
    the module runs on a (2, C, 13, 17) map)."""
    return [
        Case(
            "4 channels, dilations (1, 1, 2, 4, 1), identity init",
            (4, (1, 1, 2, 4, 1), True),
            hint=_IDENTITY,
        ),
        Case(
            "3 channels, dilations (1, 2, 4, 8): the last layer's taps reach past the 13x17 map",
            (3, (1, 2, 4, 8), True),
            hint="padding = dilation keeps the H x W size whatever d: a 3x3 kernel with "
            "dilation d spans 2d + 1 pixels, d on each side of its centre. " + _LAYERS,
        ),
        Case(
            "5 channels, dilations (2, 1, 3), identity_init=False",
            (5, (2, 1, 3), False),
            hint="With identity_init=False leave the weights as nn.Conv2d initialises them "
            "(random): only identity_init=True sets the identity. " + _LAYERS,
        ),
        Case(
            "1 channel, a single layer of dilation 1",
            (1, (1,), True),
            hint="One (Conv2d, ReLU) pair per entry of dilations, even when there is only one. "
            + _IDENTITY,
        ),
        Case(
            "the notebook's module: 7 channels, dilations given as a list [1, 1, 2, 4, 8, 1]",
            (7, [1, 1, 2, 4, 8, 1], True),
            hint="Store self.dilations = tuple(dilations): the caller may pass a list. "
            + _IDENTITY,
        ),
    ]


# ----------------------------------------------------------------------------------------------
# the layers
# ----------------------------------------------------------------------------------------------


def _pair(value: Any) -> Any:
    return (value, value) if isinstance(value, int) else value


def _conv_problem(name: str, layer: nn.Conv2d, want: nn.Conv2d) -> str | None:
    """None when ``layer`` is set up like ``want`` (``padding="same"`` allowed), else what
    differs."""
    d, k = want.dilation[0], want.kernel_size[0]
    spec = f"nn.Conv2d(C, C, {k}" + (f", padding={d}, dilation={d})" if k == 3 else ")")
    if (layer.in_channels, layer.out_channels) != (want.in_channels, want.out_channels):
        return (
            f"{name} maps {layer.in_channels} -> {layer.out_channels} channels, expected "
            f"{want.in_channels} -> {want.out_channels}: every layer keeps the C = "
            f"{want.in_channels} channels ({spec})."
        )
    if layer.kernel_size != want.kernel_size:
        return (
            f"{name} has kernel_size {layer.kernel_size}, expected {want.kernel_size}: it is "
            f"{spec}" + (" (the body's layers are 3x3, only out is 1x1)." if k == 3 else ".")
        )
    if layer.dilation != want.dilation:
        return f"{name} has dilation {layer.dilation}, expected {want.dilation}: it is {spec}."
    padding = layer.padding
    if padding == "same":
        padding = tuple(layer.dilation[i] * (layer.kernel_size[i] - 1) // 2 for i in range(2))
    if padding != want.padding:
        hint = " (padding=1 is only right for dilation 1)" if padding == (1, 1) else ""
        return (
            f"{name} (dilation {d}) has padding {padding}, expected {want.padding}{hint}: "
            "padding = dilation keeps the map's size, as a 3x3 kernel with dilation d reaches "
            "d pixels on each side of its centre."
        )
    for setting in ("stride", "groups", "padding_mode"):
        if getattr(layer, setting) != getattr(want, setting):
            return (
                f"{name} has {setting} {getattr(layer, setting)}, expected "
                f"{getattr(want, setting)}: it is {spec}."
            )
    if layer.bias is None:
        return f"{name} has no bias: keep nn.Conv2d's default bias=True ({spec})."
    return None


def _body_problem(body: Any, want: nn.Sequential) -> str | None:
    """The body: an nn.Sequential of (Conv2d, ReLU) pairs following the dilations in order."""
    if isinstance(body, list):
        return (
            "self.body is a Python list: PyTorch does not see the layers inside a list (their "
            "parameters are not the module's, nor in its state_dict, nor moved by .to(device)). "
            "Wrap them: self.body = nn.Sequential(*layers)."
        )
    if not isinstance(body, nn.Sequential):
        found = "nothing" if body is None else f"a {type(body).__name__}"
        return (
            f"self.body must be an nn.Sequential, found {found}: nn.Sequential(*layers) runs "
            "its layers in order when called, self.body(x)."
        )
    wanted = [m.dilation[0] for m in want if isinstance(m, nn.Conv2d)]
    convs = [m for m in body if isinstance(m, nn.Conv2d)]
    if len(convs) != len(wanted):
        return (
            f"self.body has {len(convs)} convolutions, expected {len(wanted)}: one 3x3 "
            "convolution per entry of dilations."
        )
    if not any(isinstance(m, nn.ReLU) for m in body):
        return (
            "self.body has no nn.ReLU: follow every 3x3 convolution by nn.ReLU() inside the "
            "nn.Sequential."
        )
    if len(body) != len(want):
        return (
            f"self.body has {len(body)} modules, expected {len(want)}: a (Conv2d, ReLU) pair "
            "for each dilation, the last convolution included."
        )
    found = [m.dilation[0] for m in convs]
    if found != wanted and found == wanted[::-1]:
        return (
            f"the body's dilations are {found}, expected {wanted}: they are in reverse order. "
            "Build the layers in the order of the dilations argument, first to last."
        )
    for index, (module, reference) in enumerate(zip(body, want)):
        if not isinstance(module, type(reference)):
            return (
                f"self.body[{index}] is a {type(module).__name__}, expected an "
                f"nn.{type(reference).__name__}: the body alternates Conv2d, ReLU, Conv2d, ..."
            )
        if isinstance(reference, nn.Conv2d):
            problem = _conv_problem(f"self.body[{index}]", module, reference)
            if problem:
                return problem
    return None


def structure_problem(got: Any, expected: nn.Module) -> str | None:
    """Layers, the dilations attribute, no other parameters, train mode, a forward method."""
    if not isinstance(got, nn.Module):
        return (
            f"ContextModule(...) gave {describe(got)}, expected an nn.Module (class "
            "ContextModule(nn.Module))."
        )
    problem = _body_problem(getattr(got, "body", None), expected.body)
    if problem:
        return problem
    out = getattr(got, "out", None)
    if not isinstance(out, nn.Conv2d):
        found = "nothing" if out is None else f"a {type(out).__name__}"
        return f"self.out must be an nn.Conv2d(C, C, 1), found {found}."
    problem = _conv_problem("self.out", out, expected.out)
    if problem:
        return problem
    dilations = getattr(got, "dilations", None)
    if not isinstance(dilations, tuple) or dilations != expected.dilations:
        return (
            f"self.dilations is {describe(dilations)}, expected the tuple {expected.dilations}: "
            "store self.dilations = tuple(dilations)."
        )
    own = {id(p) for p in (*got.body.parameters(), *got.out.parameters())}
    extra = [n for n, p in got.named_parameters() if id(p) not in own]
    extra += [n for n, _ in got.named_buffers()]
    if extra:
        return (
            f"the module has parameters or buffers besides body and out: {', '.join(extra)}. "
            "The context module is body (3x3 convolutions and ReLUs) and out (1x1), nothing "
            "else."
        )
    if not all(module.training for module in got.modules()):
        return "the module is in eval mode after ContextModule(...): do not call .eval()."
    if type(got).forward is nn.Module.forward:
        return "the class has no forward(self, x) method."
    return None


# ----------------------------------------------------------------------------------------------
# the identity initialisation
# ----------------------------------------------------------------------------------------------


def _kernel_problem(name: str, weight: torch.Tensor, want: torch.Tensor) -> str | None:
    """What is wrong with one body layer's weight, ``want`` the identity kernel."""
    if torch.equal(weight, want):
        return None
    centre = weight[:, :, 1, 1]
    others = weight.clone()
    others[:, :, 1, 1] = 0
    eye = torch.eye(len(weight), dtype=weight.dtype)
    if len(weight) > 1 and bool((centre == 1).all()) and not bool(others.any()):
        return (
            f"{name}.weight[c, c', 1, 1] is 1 for every input channel c': output channel c "
            "then sums all the channels. Only the diagonal is 1 (weight[c, c, 1, 1] = 1, else "
            "0): channel c passes to channel c alone."
        )
    corner = weight.clone()
    corner[:, :, 0, 0] = 0
    if torch.equal(weight[:, :, 0, 0], eye) and not bool(corner.any()):
        return (
            f"{name}.weight[c, c, 0, 0] is 1: (0, 0) is the kernel's top-left tap, which shifts "
            "the map by the dilation. The centre of a 3x3 kernel is [1, 1]: weight[c, c, 1, 1] "
            "= 1."
        )
    if int((weight != 0).sum()) > 2 * len(weight):
        return (
            f"{name}.weight is not the identity kernel (most of its values are not 0): with "
            "identity_init=True zero it first, then set weight[c, c, 1, 1] = 1 for every c."
        )
    ones = (weight == 1).nonzero().tolist()
    return (
        f"{name}.weight is not the identity kernel: its ones are at {ones[:6]}, expected "
        "exactly [c, c, 1, 1] for every channel c (and 0 elsewhere)."
    )


def init_problem(got: nn.Module, expected: nn.Module, identity_init: bool) -> str | None:
    """With identity_init, every weight and bias as the reference's; without, not the
    identity."""
    pairs = [
        (f"self.body[{index}]", layer, reference)
        for index, (layer, reference) in enumerate(zip(got.body, expected.body))
        if isinstance(layer, nn.Conv2d)
    ]
    with torch.no_grad():
        if not identity_init:
            if any(torch.equal(layer.weight, ref.weight) for _, layer, ref in pairs) or not bool(
                got.out.weight.any()
            ):
                return (
                    "with identity_init=False the layers are initialised as the identity anyway: "
                    "only set the identity when identity_init is True."
                )
            return None
        for name, layer, reference in pairs:
            problem = _kernel_problem(name, layer.weight.detach(), reference.weight)
            if problem:
                return problem
            if bool(layer.bias.any()):
                return (
                    f"{name}.bias is not zero: with identity_init=True zero the biases too, or "
                    "each layer adds them to the scores it passes on."
                )
        for part in ("weight", "bias"):
            if bool(getattr(got.out, part).any()):
                return (
                    f"self.out.{part} is not zero: with identity_init=True zero out's weight and "
                    "bias, so that x + out(body(x)) = x at the start of training."
                )
    return None
