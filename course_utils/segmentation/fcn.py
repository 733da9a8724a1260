"""Fully convolutional networks (Long, Shelhamer & Darrell, CVPR 2015), tiny enough for a CPU.

Two ideas of the paper, one small piece of code each:

1. **Convolutionalization.** A fully connected layer that reads a ``(C, h, w)`` feature map
   is a ``Conv2d(C, out, (h, w))`` with the same numbers; every later fully connected layer
   is a 1x1 convolution. :func:`linear_to_conv` converts one layer, :func:`convolutionalize`
   a whole crop classifier (:func:`crop_classifier`), which then slides over a larger image
   in one pass and gives the scores :func:`sliding_window_scores` computes window by window.
2. **Dense prediction with skips.** :class:`FCN` = a five-stage front-end
   (:class:`TinyBackbone`, strides 2, 4, 8, 16, 32) + the convolutionalized classifier head
   ("fc6", "fc7", "score") + up-sampling back to the image. ``variant="32s"`` up-samples the
   stride-32 scores in one step; ``"16s"`` first fuses them with scores read from ``pool4``
   (stride 16), ``"8s"`` additionally with ``pool3`` (stride 8).

Hooks for the next notebooks:

* ``upsample="bilinear"`` (fixed, ``F.interpolate``) or ``"learned"`` (``ConvTranspose2d``
  initialised with :func:`bilinear_kernel`, trained with the rest) — notebook 09;
* ``context=`` an ``nn.Module`` mapping the front-end's class scores ``(B, K, h, w)`` to
  ``(B, K, h, w)`` (Yu & Koltun's context module), and
  ``replace_stride_with_dilation=(True, True)`` for a dilated front-end of stride 8 — notebook 10.

Shapes: images float ``(B, 3, H, W)`` in [0, 1] with ``H`` and ``W`` multiples of the
backbone's total stride (32 by default); logits float ``(B, K, H, W)``; semantic maps int64
``(B, H, W)``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

VARIANTS: tuple[str, ...] = ("32s", "16s", "8s")
UPSAMPLE_MODES: tuple[str, ...] = ("bilinear", "learned")
_SKIPS = {"32s": (), "16s": ("pool4",), "8s": ("pool4", "pool3")}


def _require_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise TypeError(f"{name} must be an int or a pair (h, w) of ints, got {value!r}")
    for v in value:
        _require_positive_int(v, name)
    return int(value[0]), int(value[1])


# --------------------------------------------------------------------------- convolutionalization


def linear_to_conv(
    linear: nn.Linear, in_channels: int, kernel_size: int | tuple[int, int] = 1
) -> nn.Conv2d:
    """The convolution that computes exactly what ``linear`` computes on a flattened map.

    ``linear``: ``nn.Linear(in_channels * kh * kw, out)`` that reads a ``(in_channels, kh, kw)``
    map flattened in PyTorch's order (channel-major, as ``torch.flatten``/``nn.Flatten``).
    Returns ``nn.Conv2d(in_channels, out, (kh, kw))`` whose weight is the linear weight
    reshaped to ``(out, in_channels, kh, kw)`` (no transpose) and whose bias is the same
    bias. On an input of exactly ``(kh, kw)`` it gives a ``(out, 1, 1)`` map equal to the
    linear layer's output; on a larger input it gives the same scores at every position.
    ``kernel_size=1`` is the 1x1 case (e.g. Linear(4096, 1000) -> Conv2d(4096, 1000, 1)).
    """
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
    _require_positive_int(in_channels, "in_channels")
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
    _require_positive_int(num_classes, "num_classes")
    _require_positive_int(crop_size, "crop_size")
    _require_positive_int(hidden, "hidden")
    layers: list[nn.Module] = []
    channels, size = 3, crop_size
    for width in widths:
        _require_positive_int(width, "widths[i]")
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
    """
    if not isinstance(image, torch.Tensor) or image.ndim != 3:
        raise ValueError(
            f"image must be a (3, H, W) tensor, got {getattr(image, 'shape', type(image))}"
        )
    _require_positive_int(window, "window")
    _require_positive_int(stride, "stride")
    _require_positive_int(batch_size, "batch_size")
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


# --------------------------------------------------------------------------- up-sampling


def bilinear_kernel(channels: int, factor: int) -> torch.Tensor:
    """Weights of a ``ConvTranspose2d`` that up-samples each channel bilinearly by ``factor``.

    Returns float32 ``(channels, channels, k, k)`` with ``k = 2 * factor - factor % 2``:
    channel ``c`` maps to channel ``c`` only (diagonal), with the separable tent
    ``(1 - |x - centre| / factor) * (1 - |y - centre| / factor)``. With
    ``stride=factor, padding=factor // 2`` the transposed convolution maps ``(h, w)`` to
    ``(factor*h, factor*w)`` and equals ``F.interpolate(..., mode="bilinear",
    align_corners=False)`` away from the border (at the border it sees zeros instead of
    replicating the edge).
    """
    _require_positive_int(channels, "channels")
    _require_positive_int(factor, "factor")
    size = 2 * factor - factor % 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    steps = torch.arange(size, dtype=torch.float32)
    tent = 1 - (steps - centre).abs() / factor
    kernel = tent[:, None] * tent[None, :]
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = kernel
    return weight


class Upsample(nn.Module):
    """Up-sample a score map ``(B, C, h, w)`` -> ``(B, C, factor*h, factor*w)``.

    ``mode="bilinear"``: fixed bilinear interpolation (``F.interpolate``, no parameters).
    ``mode="learned"``: ``ConvTranspose2d(C, C, 2f - f%2, stride=f, padding=f//2, bias=False)``
    initialised with :func:`bilinear_kernel` and trained with the network (FCN's "deconvolution").
    ``factor=1`` is the identity in both modes.
    """

    def __init__(self, channels: int, factor: int, mode: str = "bilinear") -> None:
        super().__init__()
        _require_positive_int(channels, "channels")
        _require_positive_int(factor, "factor")
        if mode not in UPSAMPLE_MODES:
            raise ValueError(f"upsample mode must be one of {UPSAMPLE_MODES}, got {mode!r}")
        self.factor, self.mode = factor, mode
        self.deconv: nn.ConvTranspose2d | None = None
        if mode == "learned" and factor > 1:
            weight = bilinear_kernel(channels, factor)
            self.deconv = nn.ConvTranspose2d(
                channels, channels, weight.shape[-1], stride=factor, padding=factor // 2, bias=False
            )
            with torch.no_grad():
                self.deconv.weight.copy_(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor == 1:
            return x
        if self.deconv is not None:
            return self.deconv(x)
        return F.interpolate(x, scale_factor=self.factor, mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"factor={self.factor}, mode={self.mode!r}"


# --------------------------------------------------------------------------- the network


def conv_bn_relu(
    in_channels: int, out_channels: int, dilation: int = 1, stride: int = 1
) -> nn.Sequential:
    """3x3 convolution (padding = dilation keeps the size at stride 1) + BatchNorm + ReLU."""
    return nn.Sequential(
        nn.Conv2d(
            in_channels,
            out_channels,
            3,
            stride=stride,
            padding=dilation,
            dilation=dilation,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class TinyBackbone(nn.Module):
    """A VGG-like front-end: five stages of ``convs_per_stage`` x conv-BN-ReLU + 2x2 max-pool.

    Stage 1 is a stride-2 convolution instead of conv + pool (the full-resolution layers
    are what costs most on a CPU).

    ``forward(images (B, 3, H, W))`` returns a dict ``{"pool1": ..., "pool5": ...}`` of
    feature maps; with the default strides ``pool_k`` is ``(B, channels[k-1], H/2**k, W/2**k)``
    (128 px -> 64, 32, 16, 8, 4). ``replace_stride_with_dilation=(d4, d5)``: drop the pool of
    stage 4 and/or 5 and dilate every later 3x3 convolution instead (Yu & Koltun's
    front-end), so the map keeps its resolution while the receptive field grows as before.
    ``strides`` and ``out_channels`` name each output's stride and width; ``dilation`` is
    the dilation a layer on top of ``pool5`` should use.
    """

    def __init__(
        self,
        channels: Sequence[int] = (16, 32, 48, 64, 96),
        convs_per_stage: int = 1,
        in_channels: int = 3,
        replace_stride_with_dilation: Sequence[bool] = (False, False),
    ) -> None:
        super().__init__()
        channels = tuple(channels)
        if len(channels) != 5:
            raise ValueError(f"channels must give 5 stage widths, got {channels}")
        for width in channels:
            _require_positive_int(width, "channels[i]")
        _require_positive_int(convs_per_stage, "convs_per_stage")
        dilate = tuple(bool(d) for d in replace_stride_with_dilation)
        if len(dilate) != 2:
            raise ValueError(
                f"replace_stride_with_dilation must be 2 booleans (stages 4, 5), got {dilate}"
            )
        self.stages = nn.ModuleDict()
        self.strides: dict[str, int] = {}
        self.out_channels: dict[str, int] = {}
        stride, dilation, previous = 1, 1, in_channels
        for index, width in enumerate(channels, start=1):
            if (
                index == 1
            ):  # the stem: a stride-2 convolution instead of conv + pool at full resolution
                layers = [conv_bn_relu(previous, width, stride=2)]
                layers += [conv_bn_relu(width, width) for _ in range(convs_per_stage - 1)]
                stride *= 2
                self.stages["pool1"] = nn.Sequential(*layers)
                self.strides["pool1"], self.out_channels["pool1"] = stride, width
                previous = width
                continue
            layers = [
                conv_bn_relu(previous if i == 0 else width, width, dilation)
                for i in range(convs_per_stage)
            ]
            if index >= 4 and dilate[index - 4]:
                dilation *= 2
            else:
                layers.append(nn.MaxPool2d(2))
                stride *= 2
            name = f"pool{index}"
            self.stages[name] = nn.Sequential(*layers)
            self.strides[name], self.out_channels[name] = stride, width
            previous = width
        self.dilation = dilation

    @property
    def total_stride(self) -> int:
        """The stride of ``pool5`` (32, or 16 / 8 with dilation)."""
        return self.strides["pool5"]

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = {}
        x = images
        for name, stage in self.stages.items():
            x = stage(x)
            features[name] = x
        return features


class FCN(nn.Module):
    """FCN-32s / 16s / 8s on a :class:`TinyBackbone`.

    ``forward(images (B, 3, H, W))`` -> logits ``(B, num_classes, H, W)``, ``H`` and ``W``
    multiples of ``backbone.total_stride``.

    * head (the convolutionalized classifier): ``fc6`` 3x3 conv on ``pool5``
      (``head_channels``, dilated like the backbone), ``fc7`` 1x1 conv, ``score`` 1x1 conv
      to ``num_classes`` -> the front-end's scores at stride 32;
    * ``context``: optional ``nn.Module`` applied to those scores, ``(B, K, h, w)`` ->
      ``(B, K, h, w)`` (notebook 10);
    * ``variant``: ``"32s"`` up-samples the scores straight to the image; ``"16s"``
      up-samples them x2 (``upscore2``), adds ``score_pool4`` (1x1 conv on ``pool4``,
      zero-initialised as in the paper so training starts from the 32s prediction), then
      up-samples x16; ``"8s"`` adds ``score_pool3`` the same way before a final x8;
    * ``upsample``: ``"bilinear"`` (fixed) or ``"learned"`` (transposed convolutions
      initialised bilinear, see :class:`Upsample`), used for every up-sampling step.

    ``output_stride`` is the stride of the last map before the final up-sampling (32, 16, 8).
    """

    def __init__(
        self,
        num_classes: int,
        variant: str = "32s",
        backbone: TinyBackbone | None = None,
        head_channels: int = 96,
        upsample: str = "bilinear",
        context: nn.Module | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _require_positive_int(num_classes, "num_classes")
        _require_positive_int(head_channels, "head_channels")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        if context is not None and not isinstance(context, nn.Module):
            raise TypeError(f"context must be an nn.Module or None, got {type(context).__name__}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.backbone = backbone if backbone is not None else TinyBackbone()
        if not isinstance(self.backbone, TinyBackbone):
            raise TypeError(f"backbone must be a TinyBackbone, got {type(self.backbone).__name__}")
        self.num_classes, self.variant, self.upsample_mode = num_classes, variant, upsample
        dilation = self.backbone.dilation
        self.head = nn.Sequential(
            nn.Conv2d(
                self.backbone.out_channels["pool5"],
                head_channels,
                3,
                padding=dilation,
                dilation=dilation,
            ),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
            nn.Conv2d(head_channels, head_channels, 1),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
            nn.Conv2d(head_channels, num_classes, 1),
        )
        self.context = context
        self.skips = _SKIPS[variant]
        self.score_skips = nn.ModuleDict()
        self.upscore = nn.ModuleDict()
        stride = self.backbone.strides["pool5"]
        for name in self.skips:
            conv = nn.Conv2d(self.backbone.out_channels[name], num_classes, 1)
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
            self.score_skips[name] = conv
            skip_stride = self.backbone.strides[name]
            self.upscore[name] = Upsample(num_classes, stride // skip_stride, upsample)
            stride = skip_stride
        self.output_stride = stride
        self.upscore_final = Upsample(num_classes, stride, upsample)

    def front_end(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Scores at ``pool5``'s stride ``(B, K, H/32, W/32)`` (before ``context``) and the features."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.front_end_frozen):
            features = self.backbone(images)
            return self.head(features["pool5"]), features

    @property
    def front_end_frozen(self) -> bool:
        """True after :meth:`freeze_front_end`: backbone and head are fixed (eval mode, no gradients)."""
        return getattr(self, "_front_end_frozen", False)

    def freeze_front_end(self, frozen: bool = True) -> FCN:
        """Fix the backbone and the head (no gradients, BatchNorm in eval mode even in ``train()``).

        What is left to train: the skip scorers, learned up-sampling and ``context``. Used to
        measure what a skip adds on top of exactly the same front-end. Returns ``self``.
        """
        self._front_end_frozen = bool(frozen)
        for part in (self.backbone, self.head):
            part.requires_grad_(not frozen)
        return self.train(self.training)

    def train(self, mode: bool = True) -> FCN:
        super().train(mode)
        if self.front_end_frozen:
            self.backbone.eval()
            self.head.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        total = self.backbone.total_stride
        if images.shape[-2] % total or images.shape[-1] % total:
            raise ValueError(
                f"image height and width must be multiples of {total} (the backbone's stride), "
                f"got {tuple(images.shape[-2:])}: pad or resize the images"
            )
        scores, features = self.front_end(images)
        if self.context is not None:
            scores = self.context(scores)
        for name in self.skips:
            scores = self.upscore[name](scores) + self.score_skips[name](features[name])
        return self.upscore_final(scores)

    def init_from(self, other: FCN) -> FCN:
        """Copy every parameter ``other`` has with the same name and shape (staged training).

        FCN-16s is initialised from a trained FCN-32s and FCN-8s from FCN-16s: backbone and
        head come over, new skip scorers stay zero, so the new model starts out predicting
        exactly what ``other`` predicts. Returns ``self``.
        """
        if not isinstance(other, FCN):
            raise TypeError(f"other must be an FCN, got {type(other).__name__}")
        own = self.state_dict()
        copied = {key: value for key, value in other.state_dict().items() if key in own}
        mismatched = [key for key, value in copied.items() if own[key].shape != value.shape]
        if mismatched:
            raise ValueError(
                f"other has another architecture: {mismatched[0]} is {tuple(copied[mismatched[0]].shape)} "
                f"there but {tuple(own[mismatched[0]].shape)} here (same channels/head_channels/classes?)"
            )
        missing = [
            key for key in own if key.startswith(("backbone.", "head.")) and key not in copied
        ]
        if missing:
            raise ValueError(
                f"other lacks {missing[0]}: both models need the same backbone and head"
            )
        self.load_state_dict(copied, strict=False)
        return self


def fcn(
    num_classes: int,
    variant: str = "32s",
    *,
    channels: Sequence[int] = (16, 32, 48, 64, 96),
    convs_per_stage: int = 1,
    head_channels: int = 96,
    upsample: str = "bilinear",
    context: nn.Module | None = None,
    replace_stride_with_dilation: Sequence[bool] = (False, False),
    dropout: float = 0.0,
) -> FCN:
    """Build an :class:`FCN` with a fresh :class:`TinyBackbone` (one call, every knob)."""
    backbone = TinyBackbone(
        channels, convs_per_stage, replace_stride_with_dilation=replace_stride_with_dilation
    )
    return FCN(
        num_classes,
        variant,
        backbone,
        head_channels=head_channels,
        upsample=upsample,
        context=context,
        dropout=dropout,
    )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def predict_semantic(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Per-pixel class ids int64 ``(B, H, W)`` (argmax of the logits), model in eval mode."""
    was_training = model.training
    model.eval()
    try:
        return model(images).argmax(1)
    finally:
        model.train(was_training)


def boundary_mask(semantic: torch.Tensor, width: int = 2, ignore_index: int = 255) -> torch.Tensor:
    """Pixels within ``width`` pixels of a class boundary: bool, same shape as ``semantic``.

    ``semantic``: integer class ids ``(H, W)`` or ``(B, H, W)``. A pixel is on a boundary
    when its ``(2*width+1)`` square neighbourhood holds more than one class (``ignore_index``
    pixels count as a class of their own; the image border is not a boundary). Used to score
    how sharp a prediction is: accuracy on these pixels vs everywhere.
    """
    if not isinstance(semantic, torch.Tensor) or semantic.ndim not in (2, 3):
        raise ValueError(
            f"semantic must be an (H, W) or (B, H, W) tensor, got {getattr(semantic, 'shape', type(semantic))}"
        )
    if semantic.is_floating_point() or semantic.dtype == torch.bool:
        raise TypeError(f"semantic must hold integer class ids, got dtype {semantic.dtype}")
    _require_positive_int(width, "width")
    ids = semantic.as_subclass(torch.Tensor).float()
    ids = ids[None, None] if semantic.ndim == 2 else ids[:, None]
    size = 2 * width + 1
    high = F.max_pool2d(F.pad(ids, (width,) * 4, mode="replicate"), size, stride=1)
    low = -F.max_pool2d(F.pad(-ids, (width,) * 4, mode="replicate"), size, stride=1)
    mask = high != low
    return mask[0, 0] if semantic.ndim == 2 else mask[:, 0]


def receptive_field(model: FCN) -> int:
    """Receptive field (pixels, one side) of one ``score`` output of the front-end.

    Computed layer by layer: ``r += (k_eff - 1) * jump`` where ``k_eff = d * (k - 1) + 1``
    and ``jump`` is the product of the strides so far.
    """
    if not isinstance(model, FCN):
        raise TypeError(f"model must be an FCN, got {type(model).__name__}")
    size, jump = 1, 1
    for module in list(model.backbone.modules()) + list(model.head.modules()):
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
            kernel = (
                module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
            )
            dilation = module.dilation if isinstance(module.dilation, int) else module.dilation[0]
            stride = module.stride if isinstance(module.stride, int) else module.stride[0]
            size += (dilation * (kernel - 1)) * jump
            jump *= stride
    return int(size)
