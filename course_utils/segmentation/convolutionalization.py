"""Convolutionalization (Long, Shelhamer & Darrell, CVPR 2015): a crop classifier becomes an FCN.

A fully connected layer that reads a ``(C, h, w)`` feature map is a ``Conv2d(C, out, (h, w))``
with the same numbers; every later fully connected layer is a 1x1 convolution.
:func:`linear_to_conv` converts one layer, :func:`convolutionalize` a whole crop classifier
(:func:`crop_classifier`), which then slides over a larger image in one pass and gives the
scores :func:`sliding_window_scores` computes window by window (the slow way).

Shapes: crops and images float ``(B, 3, H, W)`` in [0, 1]; logits float ``(B, K)`` for a crop,
score maps float ``(B, K, H', W')`` for an image.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from course_utils.core.validate import check_int

__all__ = [
    "convolutionalize",
    "crop_classifier",
    "feature_stride",
    "linear_to_conv",
    "sliding_window_scores",
]


def _pair(value, name: str) -> tuple[int, int]:
    """An int or a pair ``(h, w)`` of positive ints as a pair of ints."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise TypeError(f"{name} must be an int or a pair (h, w) of ints, got {value!r}")
    return check_int(value[0], name), check_int(value[1], name)


def linear_to_conv(
    linear: nn.Linear, in_channels: int, kernel_size: int | tuple[int, int] = 1
) -> nn.Conv2d:
    """The convolution that computes exactly what ``linear`` computes on a flattened map.

    ``linear``: ``nn.Linear(in_channels * kh * kw, out)`` that reads a ``(in_channels, kh, kw)``
    map flattened in PyTorch's order (channel-major, as ``torch.flatten``/``nn.Flatten``).
    Returns ``nn.Conv2d(in_channels, out, (kh, kw))`` whose weight is the linear weight
    reshaped to ``(out, in_channels, kh, kw)`` (no transpose) and whose bias is the same
    bias, on the linear layer's device and dtype. On an input of exactly ``(kh, kw)`` it
    gives a ``(out, 1, 1)`` map equal to the linear layer's output; on a larger input it
    gives the same scores at every position. ``kernel_size=1`` is the 1x1 case
    (e.g. Linear(4096, 1000) -> Conv2d(4096, 1000, 1)).
    """
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
    check_int(in_channels, "in_channels")
    kh, kw = _pair(kernel_size, "kernel_size")
    if linear.in_features != in_channels * kh * kw:
        raise ValueError(
            f"linear.in_features ({linear.in_features}) must equal in_channels * kh * kw "
            f"= {in_channels} * {kh} * {kw} = {in_channels * kh * kw}"
        )
    conv = nn.Conv2d(in_channels, linear.out_features, (kh, kw), bias=linear.bias is not None)
    conv = conv.to(device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(linear.weight.reshape(linear.out_features, in_channels, kh, kw))
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv


def crop_classifier(
    num_classes: int = 4,
    crop_size: int = 32,
    widths: Sequence[int] = (16, 32, 64),
    hidden: int = 128,
) -> nn.Sequential:
    """A small crop classifier in the pre-FCN style: valid convolutions, then fully connected.

    ``features``: per width, ``Conv2d(k=3, padding=0)`` + ReLU + ``MaxPool2d(2)``
    (no padding anywhere, so a window of a large image sees exactly what a crop sees),
    then ``Flatten``, ``Linear(C*h*w, hidden)``, ReLU, ``Linear(hidden, num_classes)``.
    Input ``(B, 3, crop_size, crop_size)`` -> logits ``(B, num_classes)``. The total stride
    of the features is ``2 ** len(widths)`` (8 by default).
    """
    check_int(num_classes, "num_classes")
    check_int(crop_size, "crop_size")
    check_int(hidden, "hidden")
    layers: list[nn.Module] = []
    channels, size = 3, crop_size
    for width in widths:
        check_int(width, "widths[i]")
        layers += [nn.Conv2d(channels, width, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        channels, size = width, (size - 2) // 2
        if size < 1:
            raise ValueError(
                f"crop_size {crop_size} is too small for {len(widths)} conv+pool stages"
            )
    layers += [
        nn.Flatten(),
        nn.Linear(channels * size * size, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, num_classes),
    ]
    return nn.Sequential(*layers)


def _feature_shape(layers: Sequence[nn.Module], crop_size: tuple[int, int]) -> tuple[int, int, int]:
    """(C, h, w) that ``layers`` produce from one 3-channel crop (a dummy forward pass)."""
    parameter = next((p for layer in layers for p in layer.parameters()), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None else torch.float32
    with torch.no_grad():
        out = nn.Sequential(*layers).eval()(
            torch.zeros(1, 3, *crop_size, device=device, dtype=dtype)
        )
    if out.ndim != 4:
        raise ValueError(
            f"the layers before nn.Flatten must output a (B, C, h, w) map, got {tuple(out.shape)}"
        )
    return int(out.shape[1]), int(out.shape[2]), int(out.shape[3])


def convolutionalize(classifier: nn.Sequential, crop_size: int | tuple[int, int]) -> nn.Sequential:
    """Turn a crop classifier ``features -> Flatten -> Linear -> ... -> Linear`` into an FCN.

    ``classifier``: an ``nn.Sequential`` with exactly one ``nn.Flatten``; the first
    ``nn.Linear`` after it reads the ``(C, h, w)`` map that a ``crop_size`` crop produces
    and becomes ``Conv2d(C, out, (h, w))``; every later ``nn.Linear`` becomes a 1x1
    convolution (:func:`linear_to_conv`); other layers (ReLU, Dropout...) are kept.
    Returns a new ``nn.Sequential`` (the classifier is not modified) mapping an image
    ``(B, 3, H, W)`` to a score map ``(B, K, H', W')`` whose ``[:, :, i, j]`` are the
    classifier's logits for the window at ``(i * stride, j * stride)``.
    """
    if not isinstance(classifier, nn.Sequential):
        raise TypeError(f"classifier must be an nn.Sequential, got {type(classifier).__name__}")
    layers = list(classifier)
    flats = [i for i, layer in enumerate(layers) if isinstance(layer, nn.Flatten)]
    if len(flats) != 1:
        raise ValueError(f"classifier must contain exactly one nn.Flatten, found {len(flats)}")
    crop_size = _pair(crop_size, "crop_size")
    at = flats[0]
    channels, height, width = _feature_shape(layers[:at], crop_size)
    converted: list[nn.Module] = [copy.deepcopy(layer) for layer in layers[:at]]
    first = True
    for layer in layers[at + 1 :]:
        if isinstance(layer, nn.Linear):
            if first:
                converted.append(linear_to_conv(layer, channels, (height, width)))
                first = False
            else:
                converted.append(linear_to_conv(layer, layer.in_features, 1))
        elif isinstance(layer, (nn.Flatten, nn.Unflatten)):
            raise ValueError("only one nn.Flatten is allowed")
        else:
            converted.append(copy.deepcopy(layer))
    if first:
        raise ValueError(
            "classifier has no nn.Linear after its nn.Flatten: nothing to convolutionalize"
        )
    return nn.Sequential(*converted)


def feature_stride(classifier: nn.Sequential) -> int:
    """The total stride (input pixels per output step) of the layers before ``nn.Flatten``."""
    stride = 1
    for layer in classifier:
        if isinstance(layer, nn.Flatten):
            break
        value = getattr(layer, "stride", 1)
        stride *= value if isinstance(value, int) else value[0]
    return stride


def sliding_window_scores(
    classifier: nn.Module, image: torch.Tensor, window: int, stride: int, batch_size: int = 256
) -> torch.Tensor:
    """Run ``classifier`` on every ``window`` x ``window`` crop of ``image`` (the slow way).

    ``image``: float ``(3, H, W)``; windows start at ``0, stride, 2*stride, ...`` while they
    fit. Returns float ``(K, ny, nx)`` with ``ny = (H - window) // stride + 1``: entry
    ``[:, i, j]`` is the classifier's output for the crop at ``(i*stride, j*stride)``.
    The crops go through ``classifier`` in batches of at most ``batch_size``.
    """
    if not isinstance(image, torch.Tensor) or image.ndim != 3:
        raise ValueError(
            f"image must be a (3, H, W) tensor, got {getattr(image, 'shape', type(image))}"
        )
    check_int(window, "window")
    check_int(stride, "stride")
    check_int(batch_size, "batch_size")
    channels, height, width = image.shape
    if window > min(height, width):
        raise ValueError(f"window {window} is larger than the image {height}x{width}")
    crops = image.unfold(1, window, stride).unfold(2, window, stride)  # (3, ny, nx, window, window)
    ny, nx = crops.shape[1], crops.shape[2]
    crops = crops.permute(1, 2, 0, 3, 4).reshape(ny * nx, channels, window, window)
    scores = torch.cat(
        [classifier(crops[i : i + batch_size]) for i in range(0, len(crops), batch_size)]
    )
    return scores.reshape(ny, nx, -1).permute(2, 0, 1)
