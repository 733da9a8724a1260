"""How ``check_UNet`` compares a student's ``UNet`` with the reference (private: not a topic
module): the parts' names and channels (every part's state_dict shapes), then both with the same
random weights on a 32 x 48 batch and a 37 x 45 one, in train mode on the CPU. Forward pre-hooks
on the student's parts record what each part receives, so that a wrong wiring is named (which
map an up step got as its skip, which part ran out of order) even when forward crashes."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from course_utils.grading.checks._unet_cases import (
    ATOL,
    RTOL,
    SEED,
    call_module,
    gradient_problem,
    random_weights,
)
from course_utils.grading.compare import describe, not_a_tensor_problem
from course_utils.grading.runner import Case

__all__ = ["compare_unet"]

PARTS = ("inc", "down1", "down2", "down3", "down4", "up1", "up2", "up3", "up4", "outc")
# Each part's call, in order, with the names of the maps it must receive.
_CALLS = (
    ("inc", ("x",)),
    ("down1", ("x1",)),
    ("down2", ("x2",)),
    ("down3", ("x3",)),
    ("down4", ("x4",)),
    ("up1", ("x5", "x4")),
    ("up2", ("up1's output", "x3")),
    ("up3", ("up2's output", "x2")),
    ("up4", ("up3's output", "x1")),
    ("outc", ("up4's output",)),
)
_SIZES = ((32, 48), (37, 45))
_ORDER = "inc, down1, down2, down3, down4, up1, up2, up3, up4, outc"
_WIRING = (
    "x1 = self.inc(x), x2 = self.down1(x1), ..., x5 = self.down4(x4); x = self.up1(x5, x4), x = "
    "self.up2(x, x3), x = self.up3(x, x2), x = self.up4(x, x1); logits = self.outc(x)"
)


# ----------------------------------------------------------------------------------------------
# the parts and their channels
# ----------------------------------------------------------------------------------------------


def _specs(args: tuple) -> dict[str, tuple[str, str]]:
    """Part -> (its constructor in words, with this case's numbers)."""
    n, k, w, bilinear = args
    f = 2 if bilinear else 1
    specs = {
        "inc": ("DoubleConv(n_channels, width)", f"DoubleConv({n}, {w})"),
        "down4": ("Down(8 * width, 16 * width // factor)", f"Down({8 * w}, {16 * w // f})"),
        "up4": ("Up(2 * width, width, bilinear)", f"Up({2 * w}, {w}, {bilinear})"),
        "outc": ("OutConv(width, n_classes)", f"OutConv({w}, {k})"),
    }
    for level in (1, 2, 3):
        low, high = f"{2 ** (level - 1)} * width", f"{2**level} * width"
        specs[f"down{level}"] = (
            f"Down({low}, {high})".replace("1 * width", "width"),
            f"Down({2 ** (level - 1) * w}, {2**level * w})",
        )
        c = 2 ** (5 - level)
        specs[f"up{level}"] = (
            f"Up({c} * width, {c // 2} * width // factor, bilinear)",
            f"Up({c * w}, {c // 2 * w // f}, {bilinear})",
        )
    return specs


def _conv_weights(module: nn.Module) -> list[torch.Tensor]:
    return [v for k, v in module.state_dict().items() if k.endswith("weight") and v.dim() == 4]


def _arguments_problem(got: nn.Module, args: tuple) -> str | None:
    """n_channels, n_classes, width and factor, from the first and last convolutions."""
    n, k, w, bilinear = args
    first, last = _conv_weights(got.inc)[:1], _conv_weights(got.outc)[-1:]
    if first and first[0].shape[0] != w and first[0].shape[0] == 64:
        return (
            f"inc gives 64 channels, expected width = {w}: use the width argument for every "
            "channel count (64 is the slide's width, the course's networks are narrower)."
        )
    if first and first[0].shape[1] != n:
        return f"inc reads {first[0].shape[1]} channels, expected n_channels = {n}."
    if last and last[0].shape[0] != k:
        return f"outc gives {last[0].shape[0]} channels, expected n_classes = {k}."
    down4, up1 = _conv_weights(got.down4)[-1:], _conv_weights(got.up1)[-1:]
    if bilinear and down4 and up1 and down4[0].shape[0] == 16 * w and up1[0].shape[0] == 8 * w:
        return (
            f"down4 gives {16 * w} and up1 {8 * w} channels: with bilinear=True, factor = 2 "
            "divides them (down4 = Down(8 * width, 16 * width // factor), up1..up3 = Up(..., "
            "... // factor)), because bilinear up-sampling cannot halve the channels as the "
            "transposed convolution does."
        )
    return None


def _part_problem(name: str, got: nn.Module, want: nn.Module, spec: tuple[str, str]) -> str | None:
    mine, theirs = got.state_dict(), want.state_dict()
    formula, numbers = spec
    if mine.keys() != theirs.keys():
        missing = [key for key in theirs if key not in mine][:3]
        extra = [key for key in mine if key not in theirs][:3]
        return (
            f"self.{name}'s state_dict keys differ from {formula} = {numbers}: missing "
            f"{', '.join(missing) or 'none'}; unexpected {', '.join(extra) or 'none'}."
        )
    for key, value in theirs.items():
        if mine[key].shape != value.shape:
            return (
                f"self.{name} is not {formula} = {numbers}: {name}.{key} has shape "
                f"{tuple(mine[key].shape)}, expected {tuple(value.shape)}."
            )
    return None


def _structure_problem(got: Any, expected: nn.Module, case: Case) -> str | None:
    if not isinstance(got, nn.Module):
        return f"UNet(...) gave {describe(got)}, expected an nn.Module (class UNet(nn.Module))."
    missing = [name for name in PARTS if not isinstance(getattr(got, name, None), nn.Module)]
    if missing:
        found = ", ".join(name for name, _ in got.named_children()) or "none"
        return (
            f"self.{missing[0]} is missing (the module's parts: {found}): name the parts {_ORDER} "
            "as on the slide; the names are the state_dict's keys, so that trained weights load."
        )
    problem = _arguments_problem(got, case.args)
    if problem:
        return problem
    specs = _specs(case.args)
    for name in PARTS:
        problem = _part_problem(name, getattr(got, name), getattr(expected, name), specs[name])
        if problem:
            return problem
    own = {id(p) for name in PARTS for p in getattr(got, name).parameters()}
    extra = [name for name, p in got.named_parameters() if id(p) not in own]
    if extra:
        return f"the UNet has parameters outside its parts: {', '.join(extra[:4])}."
    if not all(module.training for module in got.modules()):
        return "the module is in eval mode after UNet(...): do not call .eval() in __init__."
    if type(got).forward is nn.Module.forward:
        return "the class has no forward(self, x) method."
    return None


# ----------------------------------------------------------------------------------------------
# the wiring, from what each part received
# ----------------------------------------------------------------------------------------------


def _named_maps(reference: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The maps of the right forward pass, by name (x, x1..x5, up1's output ...)."""
    maps = {"x": x}
    with torch.no_grad():
        previous = x
        for level, name in enumerate(PARTS[:5], start=1):
            previous = maps[f"x{level}"] = getattr(reference, name)(previous)
        for step in range(1, 5):
            previous = getattr(reference, f"up{step}")(previous, maps[f"x{5 - step}"])
            maps[f"up{step}'s output"] = previous
    return maps


def _identify(tensor: torch.Tensor, maps: dict[str, torch.Tensor]) -> str | None:
    for name, value in maps.items():
        if value.shape == tensor.shape and torch.allclose(value, tensor, rtol=RTOL, atol=ATOL):
            return name
    return None


def _order_problem(part: str, wanted: str) -> str:
    if part == "outc":
        return (
            f"self.outc is called before self.{wanted}: outc, the 1x1 convolution to the class "
            "scores, comes last, after up4 (the decoder works on features, not scores)."
        )
    if part.startswith("up") and wanted.startswith("up"):
        return (
            f"self.{part} is called where self.{wanted} is expected: the up steps run in the "
            "order up1, up2, up3, up4 (up1 = Up(16 * width, ...) takes the deepest map x5 and the "
            "skip x4; up4 ends at full resolution with x1)."
        )
    return f"self.{part} is called where self.{wanted} is expected: the parts run as {_WIRING}."


def _up_problem(part: str, index: int, found: str | None, want: str, same: bool) -> str:
    step = int(part[-1])
    if index == 1 and same:
        return (
            f"self.{part} gets the same map as its input and its skip ({part}(x, x)): its skip "
            f"is {want}, the encoder's map at the same resolution; {_WIRING}."
        )
    if index == 1 and found == f"x{step}" and step != 5 - step:
        return (
            f"the skips are paired in reverse order: self.{part}'s skip is x{step}, expected "
            f"{want} (up1 takes the deepest skip x4, up4 the full-resolution x1)."
        )
    if index == 1:
        return (
            f"self.{part}'s skip (second argument) is {found or 'not an encoder map'}, expected "
            f"{want}: up1 pairs x5 with x4, up2 with x3, up3 with x2, up4 with x1 (the skip at "
            "the resolution of the up-sampled map)."
        )
    if found == "x5":
        return (
            f"x5 is fed to self.{part} again: only up1 reads x5; each later up step continues "
            f"from the previous step's output, {_WIRING}."
        )
    return (
        f"self.{part}'s first argument is {found or 'not the map it should be'}, expected "
        f"{want}: {_WIRING}."
    )


def _wiring_problem(calls: list, maps: dict[str, torch.Tensor]) -> str | None:
    """The first call whose part or arguments differ from the slide's forward."""
    for position, (part, tensors) in enumerate(calls):
        if position >= len(_CALLS):
            return f"self.{part} is called again after outc: each part runs once, {_WIRING}."
        wanted, names = _CALLS[position]
        if part != wanted:
            return _order_problem(part, wanted)
        if len(tensors) != len(names):
            return (
                f"self.{part} is called with {len(tensors)} tensor(s), expected {len(names)} "
                f"({', '.join(names)}): {_WIRING}."
            )
        for index, (tensor, want) in enumerate(zip(tensors, names)):
            found = _identify(tensor, maps)
            if found == want:
                continue
            if part.startswith("up"):
                same = (
                    index == 1
                    and tensor.shape == tensors[0].shape
                    and torch.equal(tensor, tensors[0])
                )
                return _up_problem(part, index, found, want, same)
            return f"self.{part}'s input is {found or 'not ' + want}, expected {want}: {_WIRING}."
    return None


def _recorded_forward(model: nn.Module, x: torch.Tensor) -> tuple[list, Any, Exception | None]:
    """``model(x)`` with hooks recording each part's tensor arguments: (calls, output, error)."""
    calls: list[tuple[str, list[torch.Tensor]]] = []

    def recorder(name: str):
        def hook(module, args, kwargs):
            values = [*args, *kwargs.values()]
            calls.append(
                (name, [v.detach().clone() for v in values if isinstance(v, torch.Tensor)])
            )

        return hook

    handles = [
        getattr(model, name).register_forward_pre_hook(recorder(name), with_kwargs=True)
        for name in PARTS
    ]
    try:
        return calls, call_module(model, "UNet", x), None
    except NotImplementedError:
        raise
    except Exception as error:
        return calls, None, error
    finally:
        for handle in handles:
            handle.remove()


# ----------------------------------------------------------------------------------------------
# the comparison
# ----------------------------------------------------------------------------------------------


def _output_problem(output: Any, want: torch.Tensor, where: str) -> str | None:
    problem = not_a_tensor_problem(output)
    if problem:
        return problem
    if output.shape != want.shape:
        return (
            f"{where} the output has shape {tuple(output.shape)}, expected {tuple(want.shape)} "
            "= (N, n_classes, H, W): the logits of self.outc, at the input's size."
        )
    if not output.requires_grad:
        return "the output has no gradient: no torch.no_grad() or .detach() in forward."
    if torch.allclose(output, want, rtol=RTOL, atol=ATOL):
        return None
    for name, squash in (("softmax", lambda t: t.softmax(dim=1)), ("sigmoid", torch.sigmoid)):
        if torch.allclose(output, squash(want), rtol=RTOL, atol=ATOL):
            return (
                f"the output looks like {name}(logits): return the raw logits of self.outc; "
                "the loss (nn.CrossEntropyLoss) applies the softmax itself."
            )
    return (
        f"{where} the logits differ from the reference's with the same weights (largest "
        f"difference {float((output - want).abs().max()):.4g}). If you wrote your own Up or "
        f"DoubleConv, run check_Up first; the forward is {_WIRING}."
    )


def _result_problem(calls: list, output: Any, error: Exception | None, want, where) -> str | None:
    """What is wrong with the forward's result, ignoring the wiring."""
    if error is not None:
        return f"forward raised {type(error).__name__} {where[:-1]}: {error}"
    called = {part for part, _ in calls}
    missing = [part for part in PARTS if part not in called]
    if missing:
        return f"self.{missing[0]} is never called in forward: {_WIRING}."
    return _output_problem(output, want, where)


def _size_problem(got: nn.Module, reference: nn.Module, index: int) -> str | None:
    """One batch: the result, then the gradient; a wrong one is explained by the wiring when
    the wiring is wrong (the right maps are only computed then)."""
    g = torch.Generator().manual_seed(SEED + 20 + index)
    x = torch.randn(2, reference.n_channels, *_SIZES[index], generator=g)
    where = f"on x of shape {tuple(x.shape)},"
    wanted = x.clone().requires_grad_(True)
    want = reference(wanted)
    upstream = torch.randn(want.shape, generator=g)
    want.backward(upstream)
    mine = x.clone().requires_grad_(True)
    calls, output, error = _recorded_forward(got, mine)
    problem = _result_problem(calls, output, error, want.detach(), where)
    if problem is None:
        output.backward(upstream)
        problem = gradient_problem([("the input x", mine, wanted)], where[:-1])
    if problem is None:
        return None
    return _wiring_problem(calls, _named_maps(reference, x)) or problem


def compare_unet(got: Any, expected: nn.Module, case: Case) -> str | None:
    """Parts, then the reference's random weights loaded into the student's UNet, then a batch
    of even size and one of odd size."""
    problem = _structure_problem(got, expected, case)
    if problem:
        return problem
    random_weights(expected, SEED + 10)
    try:
        got.load_state_dict(expected.state_dict())
    except RuntimeError as error:
        return f"the reference's weights do not load into your UNet: {error}"
    got.train()
    expected.train()
    for index in range(len(_SIZES)):
        problem = _size_problem(got, expected, index)
        if problem:
            return problem
    return None
