"""Receptive fields of stacked convolutions, analytic and measured; Yu & Koltun's context module.

A layer is described by a triple ``(kernel_size, stride, dilation)`` (square kernels).
Going through the stack, with ``jump`` the distance in input pixels between neighbouring
positions of the current feature map::

    rf, jump = 1, 1
    for k, s, d in layers:
        rf += d * (k - 1) * jump
        jump *= s

Dilated 3x3 convolutions with dilations 1, 2, 4, 8, ... grow the receptive field
exponentially with depth at the parameter count of plain 3x3 convolutions and without
losing resolution (Yu & Koltun, "Multi-scale context aggregation by dilated convolutions",
ICLR 2016). The measurement (:func:`gradient_map`) back-propagates from one output
position and looks where the gradient on the input is non-zero.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from course_utils.core.validate import check_int

__all__ = [
    "receptive_field",
    "receptive_field_table",
    "dilated_layers",
    "layers_of",
    "conv_stack",
    "gradient_map",
    "measure_receptive_field",
    "coverage",
    "ContextModule",
]


def _check_layers(layers) -> list[tuple[int, int, int]]:
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise TypeError(
            "layers must be a list of (kernel_size, stride, dilation) triples, got "
            f"{type(layers).__name__}"
        )
    checked = []
    for index, layer in enumerate(layers):
        if not (
            isinstance(layer, (tuple, list))
            and len(layer) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) for v in layer)
        ):
            raise TypeError(
                f"layers[{index}] must be a (kernel_size, stride, dilation) triple of ints, "
                f"got {layer!r}"
            )
        if min(layer) < 1:
            raise ValueError(
                f"layers[{index}] = {tuple(layer)}: kernel_size, stride and dilation must be >= 1"
            )
        checked.append(tuple(layer))
    return checked


def receptive_field_table(layers) -> list[dict]:
    """Receptive field after each layer: a list of dicts ``{"layer", "kernel_size", "stride",
    "dilation", "rf", "jump"}`` where ``rf`` is the side (in input pixels) of the square an
    output position sees and ``jump`` the input distance between neighbouring outputs."""
    rf, jump, rows = 1, 1, []
    for index, (k, s, d) in enumerate(_check_layers(layers), start=1):
        rf += d * (k - 1) * jump
        jump *= s
        rows.append(
            {"layer": index, "kernel_size": k, "stride": s, "dilation": d, "rf": rf, "jump": jump}
        )
    return rows


def receptive_field(layers) -> int:
    """Side, in input pixels, of the receptive field of one output of the stack (1 for no
    layers)."""
    table = receptive_field_table(layers)
    return table[-1]["rf"] if table else 1


def dilated_layers(dilations: Sequence[int], kernel_size: int = 3) -> list[tuple[int, int, int]]:
    """``[(kernel_size, 1, d) for d in dilations]``: stride-1 dilated convolutions."""
    return _check_layers([(kernel_size, 1, d) for d in dilations])


def layers_of(model: nn.Module) -> list[tuple[int, int, int]]:
    """The ``(kernel_size, stride, dilation)`` of each ``Conv2d``/``MaxPool2d``/``AvgPool2d`` in
    ``model``, in registration order (which is the order of ``nn.Sequential``). Square kernels
    only."""
    layers = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            values = []
            for value in (module.kernel_size, module.stride, getattr(module, "dilation", 1)):
                pair = (value, value) if isinstance(value, int) else tuple(value)
                if pair[0] != pair[1]:
                    raise ValueError(
                        f"{name}: only square kernels, strides and dilations are supported"
                    )
                values.append(pair[0])
            layers.append(tuple(values))
    return layers


def conv_stack(layers, channels: int = 4, in_channels: int = 1, relu: bool = True) -> nn.Sequential:
    """An ``nn.Sequential`` of ``Conv2d`` (+ ``ReLU``) following ``(kernel_size, stride,
    dilation)`` triples.

    Padding ``d (k - 1) // 2`` keeps the size for stride 1 and odd kernels. Maps
    ``(N, in_channels, H, W)`` -> ``(N, channels, H', W')``. Parameters: for 3x3 kernels,
    ``9 * channels * (in + channels (L - 1)) + biases`` whatever the dilations.
    """
    parts: list[nn.Module] = []
    previous = in_channels
    for k, s, d in _check_layers(layers):
        parts.append(
            nn.Conv2d(previous, channels, k, stride=s, padding=d * (k - 1) // 2, dilation=d)
        )
        if relu:
            parts.append(nn.ReLU())
        previous = channels
    return nn.Sequential(*parts)


def _replace_max_pools(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.MaxPool2d):
            setattr(
                module,
                name,
                nn.AvgPool2d(
                    child.kernel_size, child.stride, child.padding, ceil_mode=child.ceil_mode
                ),
            )
        else:
            _replace_max_pools(child)


def gradient_map(
    model: nn.Module,
    input_size: int | tuple[int, int],
    in_channels: int = 1,
    weights: str = "uniform",
    position: tuple[int, int] | None = None,
    image: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``|d mean_c output[c, position] / d input|`` summed over input channels: float
    ``(H, W)`` on the CPU.

    Args:
        model: maps ``(1, in_channels, H, W)`` to ``(1, C, H', W')``.
        input_size: ``H`` (square) or ``(H, W)``.
        weights: ``"uniform"`` runs a copy of the model with every conv weight set to
            ``1 / (k*k*C_in)`` and biases 0 on an all-ones input: no cancellation and no dead
            ReLU, so the map is exactly the (normalized) number of paths from each input pixel
            and its support is the receptive field (the map sums to 1). Max-pooling layers are
            replaced by average pooling with the same window (a max passes its gradient to one
            pixel only). ``"model"`` keeps the model's own weights (the "effective" receptive
            field).
        position: output ``(row, col)``; default the centre ``(H' // 2, W' // 2)``.
        image: input to use instead of ones/noise, ``(1, in_channels, H, W)``.
        dtype: computation dtype (float32 is fast; uniform weights are positive, so no value
            cancels and the support is exact in either precision).
    """
    if weights not in ("uniform", "model"):
        raise ValueError(f"weights must be 'uniform' or 'model', got {weights!r}")
    height, width = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    probe = copy.deepcopy(model).to(device="cpu", dtype=dtype).eval()
    if weights == "uniform":
        _replace_max_pools(probe)
        with torch.no_grad():
            for module in probe.modules():
                if isinstance(module, nn.Conv2d):
                    k = module.kernel_size[0] * module.kernel_size[1]
                    module.weight.fill_(1.0 / (k * module.in_channels // module.groups))
                    if module.bias is not None:
                        module.bias.zero_()
    if image is None:
        image = torch.ones(1, in_channels, height, width, dtype=dtype)
        if weights == "model":
            image = torch.randn(
                1,
                in_channels,
                height,
                width,
                dtype=dtype,
                generator=torch.Generator().manual_seed(0),
            )
    image = image.detach().to(device="cpu", dtype=dtype).requires_grad_(True)
    out = probe(image)
    if out.ndim != 4:
        raise ValueError(f"model must return (N, C, H, W), got shape {tuple(out.shape)}")
    row, col = position if position is not None else (out.shape[2] // 2, out.shape[3] // 2)
    if not (0 <= row < out.shape[2] and 0 <= col < out.shape[3]):
        raise ValueError(f"position {(row, col)} outside the {tuple(out.shape[2:])} output")
    out[0, :, row, col].mean().backward()
    return image.grad[0].abs().sum(0)


def _support_box(grad: torch.Tensor) -> tuple[int, int, int, int]:
    rows = torch.nonzero(grad.sum(1) > 0).flatten()
    cols = torch.nonzero(grad.sum(0) > 0).flatten()
    if rows.numel() == 0:
        raise ValueError("the gradient is zero everywhere: the output does not depend on the input")
    return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())


def measure_receptive_field(
    model: nn.Module,
    input_size: int | tuple[int, int],
    in_channels: int = 1,
    position: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """The receptive field measured from gradients: ``(height, width)`` of the bounding box of
    the non-zero support of :func:`gradient_map` (uniform weights). Raises ``ValueError`` when
    the support touches the image border (the input is too small to contain it)."""
    grad = gradient_map(model, input_size, in_channels, "uniform", position)
    top, bottom, left, right = _support_box(grad)
    if top == 0 or left == 0 or bottom == grad.shape[0] - 1 or right == grad.shape[1] - 1:
        raise ValueError(
            f"the receptive field reaches the border of the {tuple(grad.shape)} input: "
            "use a larger input_size"
        )
    return bottom - top + 1, right - left + 1


def coverage(grad: torch.Tensor) -> float:
    """Fraction of the receptive field's bounding box where the gradient is non-zero
    (1.0: no holes; 0.25: one pixel in four seen -- the "gridding" of equal dilations)."""
    if not isinstance(grad, torch.Tensor) or grad.ndim != 2:
        raise ValueError("grad must be a (H, W) tensor from gradient_map")
    top, bottom, left, right = _support_box(grad)
    box = grad[top : bottom + 1, left : right + 1]
    return float((box > 0).double().mean())


class ContextModule(nn.Module):
    """Yu & Koltun's basic context module: 3x3 convolutions with growing dilations, C -> C channels.

    Args:
        channels: ``C``, the number of feature maps in and out (the paper uses the number of
            classes: the module refines the front-end's score maps).
        dilations: one 3x3 layer (``C`` -> ``C``, padding = dilation, ReLU) per entry; the paper
            uses ``(1, 1, 2, 4, 8, 16, 1)`` on 64x64 maps, then a 1x1 layer.
        identity_init: the paper's initialization: each layer passes its input through
            (centre tap 1 on the diagonal, all else 0), so training starts from the front-end.

    ``forward``: ``(N, C, H, W)`` -> ``(N, C, H, W)``. The paper's ReLU truncation would clip
    negative scores at initialization; here the module is residual, ``x + f(x)`` with the last
    (1x1) layer of ``f`` zero at initialization, so it starts as the identity either way.
    """

    def __init__(
        self,
        channels: int,
        dilations: Sequence[int] = (1, 1, 2, 4, 8, 16, 1),
        identity_init: bool = True,
    ):
        super().__init__()
        check_int(channels, "channels")
        layers = dilated_layers(dilations)
        parts: list[nn.Module] = []
        for _, _, d in layers:
            parts += [nn.Conv2d(channels, channels, 3, padding=d, dilation=d), nn.ReLU()]
        self.body = nn.Sequential(*parts)
        self.out = nn.Conv2d(channels, channels, 1)
        self.dilations = tuple(d for _, _, d in layers)
        if identity_init:
            self._identity_init()

    def _identity_init(self) -> None:
        with torch.no_grad():
            for module in self.body:
                if isinstance(module, nn.Conv2d):
                    module.weight.zero_()
                    module.bias.zero_()
                    for c in range(module.out_channels):
                        module.weight[c, c, 1, 1] = 1.0
            self.out.weight.zero_()
            self.out.bias.zero_()

    def receptive_field(self) -> int:
        """Receptive field of one output position in the module's input maps."""
        return receptive_field(dilated_layers(self.dilations) + [(1, 1, 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.out(self.body(x))
