"""How ``check_SSDHeads`` compares a student's heads with the reference (private: not a topic
module): its layers, then both with the same weights on the same feature maps (N = 2, maps of
odd and non-square sizes), output by output, naming the usual reshaping mistakes."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from course_utils.grading.compare import describe, tensor_type_problem
from course_utils.grading.runner import Case

__all__ = ["compare_heads"]

_SEED = 707
_NAMES = ("classification", "regression")
_MAP_SIZES = ((5, 4), (3, 2), (1, 1))  # (h, w) of the feature maps, finest first
_OUTPUTS = ("class_logits", "box_deltas")


def _conv_problem(name: str, layer: Any, want: nn.Conv2d, case: Case) -> str | None:
    """None when ``layer`` is an nn.Conv2d set up like ``want``, else what differs."""
    if not isinstance(layer, nn.Conv2d):
        return f"self.{name} must be an nn.Conv2d, found {describe(layer)}."
    settings = {
        "in_channels": want.in_channels,
        "out_channels": want.out_channels,
        "kernel_size": (3, 3),
        "padding": (1, 1),
        "stride": (1, 1),
        "dilation": (1, 1),
        "groups": 1,
        "padding_mode": "zeros",
    }
    for setting, value in settings.items():
        actual = getattr(layer, setting)
        if setting == "padding" and actual == "same":
            actual = tuple(size // 2 for size in layer.kernel_size)
        if actual == value:
            continue
        text = f"self.{name} has {setting} {actual}, expected {value}"
        if setting == "out_channels" and name.startswith("classification"):
            return (
                f"{text}: b_k * num_classes, and num_classes (here {case.args[2]}) already "
                "counts the background class."
            )
        if setting == "out_channels":
            return f"{text}: b_k * 4, four box offsets per default box of a cell."
        if setting == "in_channels":
            return f"{text}: c_k = in_channels[k], the channels of feature map k."
        return (
            f"{text}: each predictor is a 3x3 convolution with padding 1 and stride 1 (it keeps "
            "the map's h x w, so that every cell gets the predictions of its boxes)."
        )
    if layer.bias is None:
        return f"self.{name} has no bias: keep nn.Conv2d's default bias=True."
    return None


def _layers_problem(got: nn.Module, expected: nn.Module, case: Case) -> str | None:
    for name in _NAMES:
        layers, want = getattr(got, name, None), getattr(expected, name)
        if not isinstance(layers, nn.ModuleList):
            text = f"self.{name} must be an nn.ModuleList (one nn.Conv2d per feature map)"
            if isinstance(layers, (list, tuple)):
                return (
                    f"{text}, found a Python {type(layers).__name__}: its layers' parameters "
                    "are not registered (not trained, not moved to the GPU, not saved)."
                )
            return f"{text}, found {'nothing' if layers is None else describe(layers)}."
        if len(layers) != len(want):
            return (
                f"self.{name} has {len(layers)} layers, expected {len(want)}: one convolution "
                "per feature map."
            )
        if len({id(layer) for layer in layers}) < len(layers):
            return (
                f"self.{name} holds the same nn.Conv2d several times: each feature map needs "
                "its own convolution (its own weights), even when the maps have the same "
                "number of channels."
            )
        for k, (layer, conv) in enumerate(zip(layers, want)):
            problem = _conv_problem(f"{name}[{k}]", layer, conv, case)
            if problem:
                return problem
    return None


def _structure_problem(got: Any, expected: nn.Module, case: Case) -> str | None:
    """Layers, train mode, no other parameters, a forward method."""
    if not isinstance(got, nn.Module):
        return f"SSDHeads(...) gave {describe(got)}, expected an nn.Module (SSDHeads(nn.Module))."
    problem = _layers_problem(got, expected, case)
    if problem:
        return problem
    if not all(module.training for module in got.modules()):
        return "the module is in eval mode after SSDHeads(...): do not call .eval() in __init__."
    own = {id(p) for name in _NAMES for p in getattr(got, name).parameters()}
    extra = [n for n, p in got.named_parameters() if id(p) not in own]
    extra += [n for n, _ in got.named_buffers()]
    if extra:
        return (
            f"the heads have parameters or buffers besides their convolutions: "
            f"{', '.join(extra)}. Each map has one 3x3 convolution for the classes and one for "
            "the boxes, nothing else."
        )
    if type(got).forward is nn.Module.forward:
        return "the class has no forward(self, features) method."
    return None


def _forward(heads: nn.Module, features: list[torch.Tensor]) -> Any:
    """``heads(features)``; a NotImplementedError left in the class is the release stub."""
    try:
        with torch.no_grad():
            return heads([f.clone() for f in features])
    except NotImplementedError:
        raise NotImplementedError(
            "SSDHeads is not written yet: replace `raise NotImplementedError()` in its cell (in "
            "__init__ and forward) with your code, run that cell, then run this check again."
        ) from None


def _arranged(raw: list[torch.Tensor], columns: int) -> dict[str | None, torch.Tensor]:
    """The maps' raw outputs (N, b * X, h, w) flattened right (key None) and in the usual wrong
    ways (key: what is wrong)."""

    def cat(way, maps=raw):
        parts = []
        for out in maps:
            n, _, h, w = out.shape
            if way == "no permute":
                parts.append(out.reshape(n, -1, columns))
                continue
            boxes = out.view(n, -1, columns, h, w)
            if way == "numbers first":
                boxes = out.view(n, columns, -1, h, w).transpose(1, 2)
            order = {"boxes first": (0, 1, 3, 4, 2), "columns first": (0, 4, 3, 1, 2)}
            parts.append(boxes.permute(order.get(way, (0, 3, 4, 1, 2))).reshape(n, -1, columns))
        return torch.cat(parts, dim=1)

    return {
        None: cat("right"),
        "the numbers of a default box are not together: view each map's output as (N, b, X, h, "
        "w), box by box and then its X numbers, not (N, X, b, h, w)": cat("numbers first"),
        "the rows go box by box, then cell by cell: all the boxes of a cell must be consecutive "
        "(cells, then boxes: the default boxes' order)": cat("boxes first"),
        "the channels were reshaped without moving them last: (N, b * X, h, w) must become (N, h, "
        "w, b, X) before it is flattened, or the rows mix cells and numbers": cat("no permute"),
        "the cells go column by column: row by row (row i, then column j), as the default "
        "boxes": cat("columns first"),
        "the maps are concatenated in reverse order: the first feature map's rows come first": cat(
            "right", raw[::-1]
        ),
    }


def _output_problem(name: str, got: Any, variants: dict) -> str | None:
    want = variants.pop(None)
    problem = tensor_type_problem(got, want)
    if problem:
        return f"{name}: {problem} Expected (N, D, X): N images, D default boxes, X numbers each."
    if torch.allclose(got, want, rtol=1e-4, atol=1e-5):
        return None
    for text, variant in variants.items():
        if torch.allclose(got, variant, rtol=1e-4, atol=1e-5):
            return f"{name}: {text}."
    if name == "class_logits" and torch.allclose(got, want.softmax(dim=-1), atol=1e-5):
        return "class_logits look like softmax(...): return the raw logits (the loss applies it)."
    return (
        f"{name} values differ from the reference's with the same weights (largest difference "
        f"{float((got - want).abs().max()):.4g}): each map's convolution reads its own map."
    )


def _random_weights(expected: nn.Module, got: nn.Module) -> None:
    """Deterministic weights and non-zero biases in both (torchvision's init has zero biases)."""
    g = torch.Generator().manual_seed(_SEED + 30)
    with torch.no_grad():
        for name in _NAMES:
            for mine, theirs in zip(getattr(got, name), getattr(expected, name)):
                for attribute in ("weight", "bias"):
                    values = getattr(theirs, attribute)
                    fan_in = values[0].numel() if values.dim() > 1 else 4
                    values.copy_(torch.randn(values.shape, generator=g) / fan_in**0.5)
                    getattr(mine, attribute).copy_(values)


def compare_heads(got: Any, expected: nn.Module, case: Case) -> str | None:
    """Layers, then both heads with the same weights on the same maps, output by output."""
    problem = _structure_problem(got, expected, case)
    if problem:
        return problem
    _random_weights(expected, got)
    g = torch.Generator().manual_seed(_SEED + 31)
    in_channels, _, num_classes = case.args
    sizes = _MAP_SIZES[: len(in_channels)]
    features = [torch.randn(2, c, h, w, generator=g) for c, (h, w) in zip(in_channels, sizes)]
    shapes = ", ".join(str(tuple(f.shape)) for f in features)
    try:
        outputs = _forward(got, features)
    except NotImplementedError:
        raise
    except Exception as error:
        return f"forward raised {type(error).__name__} on the maps {shapes}: {error}"
    if not isinstance(outputs, (tuple, list)) or len(outputs) != 2:
        return f"forward returned {describe(outputs)}, expected a pair (class_logits, box_deltas)."
    first = outputs[0]
    if isinstance(first, torch.Tensor) and first.dim() == 3 and first.shape[-1] == 4:
        return (
            f"the first output has shape {tuple(first.shape)}, 4 numbers per box: forward "
            "returns (class_logits, box_deltas), in that order."
        )
    with torch.no_grad():
        for name, layers, columns, got_output in zip(_OUTPUTS, _NAMES, (num_classes, 4), outputs):
            raw = [conv(x) for conv, x in zip(getattr(expected, layers), features)]
            problem = _output_problem(name, got_output, _arranged(raw, columns))
            if problem:
                return problem
    return None
