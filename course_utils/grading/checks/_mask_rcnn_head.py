"""How ``check_MaskHead`` compares a student's mask head with the reference (private: not a topic
module): its layers and state_dict keys, its initialisation, then both with the same random
weights on the same (3, in_channels, 5, 7) batch: outputs (naming the usual mistakes) and input
gradients."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.grading.checks._unet_cases import outputs_and_gradients_problem, random_weights
from course_utils.grading.compare import describe
from course_utils.grading.runner import Case

__all__ = ["compare_mask_head"]

_SEED = 1213
_NAMES = ("convs", "upsample", "predictor")
_SPEC = {
    "convs": "nn.Conv2d(c, conv_channels, 3, padding=1)",
    "upsample": "nn.ConvTranspose2d(c, conv_channels, 2, stride=2)",
    "predictor": "nn.Conv2d(conv_channels, num_classes, 1)",
}
_SETTINGS = {
    "convs": {"kernel_size": (3, 3), "padding": (1, 1), "stride": (1, 1), "dilation": (1, 1)},
    "upsample": {"kernel_size": (2, 2), "stride": (2, 2), "padding": (0, 0)},
    "predictor": {"kernel_size": (1, 1), "padding": (0, 0), "stride": (1, 1)},
}
_WHY = {
    "convs": "a 3x3 convolution with padding 1 keeps the RoI's S x S size",
    "upsample": "kernel 2 and stride 2 exactly double the size, each pixel spreading into its own "
    "2x2 block",
    "predictor": "a 1x1 convolution turns each pixel's features into one logit per class",
}


def _keys_problem(got: nn.Module, expected: nn.Module) -> str | None:
    """The state_dict's keys: which are missing and which are unexpected."""
    mine, want = got.state_dict(), expected.state_dict()
    missing = [key for key in want if key not in mine]
    extra = [key for key in mine if key not in want]
    if not missing and not extra:
        return None
    if extra == [] and all(key.endswith(".bias") for key in missing):
        return (
            f"your layers have no bias ({', '.join(missing)} missing): keep the default "
            "bias=True of nn.Conv2d and nn.ConvTranspose2d."
        )
    text = "the state_dict's keys differ from the reference's:"
    if missing:
        text += f" missing {', '.join(missing[:6])}" + (" ..." if len(missing) > 6 else "")
    if extra:
        text += f"{';' if missing else ''} unexpected {', '.join(extra[:6])}"
        text += " ..." if len(extra) > 6 else ""
    return (
        text + ". Name the layers self.convs (an nn.Sequential of Conv2d, ReLU pairs: keys "
        "convs.0, convs.2, ...), self.upsample and self.predictor, and add nothing else with "
        "parameters."
    )


def _convs_problem(convs: Any, num_convs: int) -> str | None:
    """``self.convs``: an nn.Sequential of num_convs (Conv2d, ReLU) pairs."""
    if not isinstance(convs, nn.Sequential):
        found = "nothing" if convs is None else f"a {type(convs).__name__}"
        return (
            f"self.convs must be an nn.Sequential of (Conv2d, ReLU) pairs, found {found}: the "
            "ReLU modules sit between the convolutions, so the keys are convs.0, convs.2, ..."
        )
    kinds = [type(layer).__name__ for layer in convs]
    count = kinds.count("Conv2d")
    if count != num_convs:
        return (
            f"self.convs has {count} convolution{'s' if count != 1 else ''}, expected num_convs "
            f"= {num_convs}: one (Conv2d, ReLU) pair per convolution."
        )
    if num_convs and "ReLU" not in kinds:
        return (
            f"self.convs has no nn.ReLU ({', '.join(kinds)}): follow each 3x3 convolution by "
            "nn.ReLU() inside the nn.Sequential."
        )
    if kinds != ["Conv2d", "ReLU"] * num_convs:
        return f"self.convs holds {', '.join(kinds)}: it is Conv2d, ReLU, Conv2d, ReLU, ..."
    return None


def _layer_problem(name: str, layer: Any, want: nn.Module) -> str | None:
    """One convolution's type and settings."""
    kind = "convs" if name.startswith("convs") else name
    if type(layer) is not type(want):
        return f"self.{name} must be an {_SPEC[kind]}, found {describe(layer)}."
    for setting, value in _SETTINGS[kind].items():
        actual = getattr(layer, setting)
        if setting == "padding" and actual == "same":
            actual = tuple(k // 2 for k in layer.kernel_size)
        if actual != value:
            return (
                f"self.{name} has {setting} {actual}, expected {value}: it is {_SPEC[kind]} "
                f"({_WHY[kind]})."
            )
    if (layer.in_channels, layer.out_channels) != (want.in_channels, want.out_channels):
        return (
            f"self.{name} maps {layer.in_channels} -> {layer.out_channels} channels, expected "
            f"{want.in_channels} -> {want.out_channels}: it is {_SPEC[kind]}, c the channels it "
            "reads (in_channels for the first layer)."
        )
    return None


def _structure_problem(got: Any, expected: nn.Module, num_convs: int) -> str | None:
    if not isinstance(got, nn.Module):
        return f"MaskHead(...) gave {describe(got)}, expected an nn.Module (MaskHead(nn.Module))."
    if any(getattr(got, name, None) is None for name in _NAMES):
        return (
            _keys_problem(got, expected) or "self.convs, self.upsample or self.predictor is None."
        )
    problem = _convs_problem(got.convs, num_convs)
    if problem:
        return problem
    pairs = [(f"convs.{i}", got.convs[i], expected.convs[i]) for i in range(0, 2 * num_convs, 2)]
    pairs += [(name, getattr(got, name), getattr(expected, name)) for name in _NAMES[1:]]
    for name, layer, want in pairs:
        problem = _layer_problem(name, layer, want)
        if problem:
            return problem
    problem = _keys_problem(got, expected)
    if problem:
        return problem
    if not all(module.training for module in got.modules()):
        return "the module is in eval mode after MaskHead(...): do not call .eval() in __init__."
    if type(got).forward is nn.Module.forward:
        return "the class has no forward(self, x) method."
    return None


def _init_problem(got: nn.Module) -> str | None:
    """Zero biases; weights of kaiming_normal_(mode='fan_out', nonlinearity='relu')'s spread."""
    for name, tensor in got.state_dict().items():
        if name.endswith(".bias") and bool(tensor.any()):
            return (
                f"{name} is not zero: initialise every bias with nn.init.zeros_ (torchvision's "
                "mask head)."
            )
        if name.endswith(".weight") and tensor.numel() >= 200:
            fan_out = tensor.shape[0] * tensor[0, 0].numel()
            want = (2.0 / fan_out) ** 0.5
            std = float(tensor.float().std())
            if not 0.75 * want <= std <= 1.33 * want:
                return (
                    f"{name} has a spread (std) of {std:.3g}, expected about {want:.3g} = sqrt(2 "
                    f"/ fan_out), fan_out = weight.shape[0] * kernel area = {fan_out}: initialise "
                    "with nn.init.kaiming_normal_(w, mode='fan_out', nonlinearity='relu')."
                )
    return None


def _variant_problem(got: torch.Tensor, expected: nn.Module, x: torch.Tensor) -> str | None:
    """Which usual mistake the output is, computed from the reference's layers."""
    with torch.no_grad():
        up = expected.upsample(expected.convs(x))
        logits = expected.predictor(F.relu(up))
        no_relu = x
        for layer in expected.convs:
            no_relu = layer(no_relu) if isinstance(layer, nn.Conv2d) else no_relu
        variants = {
            "no ReLU after the transposed convolution: self.predictor(F.relu(self.upsample(...)))"
            "": expected.predictor(up),
            "the masks went through a sigmoid: return the raw logits (the loss, "
            "binary_cross_entropy_with_logits, applies the sigmoid)": logits.sigmoid(),
            "the logits went through a ReLU: the predictor's output is returned as it is (a "
            "logit may be negative)": F.relu(logits),
            "the convolutions are not followed by ReLUs: each 3x3 convolution is followed by "
            "one": expected.predictor(F.relu(expected.upsample(no_relu))),
        }
    for text, variant in variants.items():
        if torch.allclose(got, variant, rtol=1e-4, atol=1e-5):
            return text + "."
    return None


def _output_problem(got: nn.Module, expected: nn.Module, x: torch.Tensor) -> str | None:
    def values_problem(output: torch.Tensor, want: torch.Tensor) -> str:
        return _variant_problem(output.detach(), expected, x) or (
            f"outputs differ from the reference's with the same weights (largest difference "
            f"{float((output - want).abs().max()):.4g}): forward returns "
            "self.predictor(F.relu(self.upsample(self.convs(x))))."
        )

    return outputs_and_gradients_problem(
        got,
        expected,
        x,
        name="MaskHead",
        seed=_SEED,
        shape_hint="(P, num_classes, 2S, 2S'), one mask per class at twice the RoI's resolution.",
        values_problem=values_problem,
    )


def compare_mask_head(got: Any, expected: nn.Module, case: Case) -> str | None:
    """Layers and keys, the initialisation, then outputs and input gradients with the reference's
    random weights loaded."""
    in_channels, _, _, num_convs = case.args
    problem = _structure_problem(got, expected, num_convs) or _init_problem(got)
    if problem:
        return problem
    random_weights(expected, _SEED + 1)
    try:
        got.load_state_dict(expected.state_dict())
    except RuntimeError as error:
        return f"the reference's weights do not load into your module: {error}"
    x = torch.randn(3, in_channels, 5, 7, generator=torch.Generator().manual_seed(_SEED + 2))
    return _output_problem(got.train(), expected.train(), x)
