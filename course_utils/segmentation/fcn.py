"""FCN-32s / 16s / 8s (Long, Shelhamer & Darrell, CVPR 2015): dense prediction with skips.

:class:`FCN` = a five-stage front-end (:class:`~course_utils.segmentation.backbone.TinyBackbone`,
strides 2, 4, 8, 16, 32) + the convolutionalized classifier head ("fc6", "fc7", "score") +
up-sampling back to the image. ``variant="32s"`` up-samples the stride-32 scores in one step;
``"16s"`` first fuses them with scores read from ``pool4`` (stride 16), ``"8s"`` additionally
with ``pool3`` (stride 8). Staged training: :meth:`FCN.init_from` starts a finer variant from a
trained coarser one, :meth:`FCN.freeze_front_end` trains only what a skip adds. The decoder
(up-sample, score the skip with a 1x1 convolution, crop, add; then the final up-sampling) is the
function :func:`fuse_skips`, which ``FCN(..., fusion=...)`` replaces (notebook 08's assignment).
(Convolutionalization itself, the crop classifier as a sliding window, is in
``convolutionalization``.)

Hooks for the next notebooks:

* ``upsample="bilinear"`` (fixed, ``F.interpolate``) or ``"learned"`` (``ConvTranspose2d``
  initialised with ``upsampling.bilinear_kernel``, trained with the rest) -- notebook 09;
* ``context=`` an ``nn.Module`` mapping the front-end's class scores ``(B, K, h, w)`` to
  ``(B, K, h, w)`` (Yu & Koltun's context module, ``receptive_field.ContextModule``), and
  ``replace_stride_with_dilation=(True, True)`` for a dilated front-end of stride 8 --
  notebook 10.

Shapes: images float ``(B, 3, H, W)`` in [0, 1] with ``H`` and ``W`` multiples of the
backbone's total stride (32 by default); logits float ``(B, K, H, W)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from course_utils.core.validate import check_int, check_number
from course_utils.segmentation.backbone import TinyBackbone
from course_utils.segmentation.receptive_field import layers_of
from course_utils.segmentation.receptive_field import receptive_field as stack_receptive_field
from course_utils.segmentation.upsampling import UPSAMPLE_MODES, Upsample

__all__ = ["FCN", "VARIANTS", "count_parameters", "fcn", "fuse_skips", "receptive_field"]

#: The FCN variants, by the stride of the last map before the final up-sampling.
VARIANTS: tuple[str, ...] = ("32s", "16s", "8s")
#: The backbone maps each variant fuses, coarsest first.
_SKIPS = {"32s": (), "16s": ("pool4",), "8s": ("pool4", "pool3")}


def fuse_skips(
    scores: torch.Tensor,
    features: Mapping[str, torch.Tensor],
    skips: Sequence[str],
    upscore: Mapping[str, nn.Module],
    score_skips: Mapping[str, nn.Module],
    upscore_final: nn.Module,
) -> torch.Tensor:
    """FCN's skip fusion: the front-end's coarse class scores -> logits at the image's size.

    For each ``name`` in ``skips`` (coarsest first: ``("pool4", "pool3")`` for FCN-8s),
    ``up = upscore[name](scores)`` (2x, or 1x for a dilated stage), ``skip =
    score_skips[name](features[name])`` (the 1x1 convolution "score_pool4" / "score_pool3" to
    K classes), ``up`` cropped to ``skip``'s height and width keeping its top-left corner (the
    paper's crop layer; both maps start at the image's top-left pixel), then ``scores = up +
    skip``. Finally ``upscore_final(scores)``. With ``skips = ()`` (FCN-32s) only the final
    up-sampling remains.

    Args:
        scores: float ``(B, K, h, w)``, the head's scores at the coarsest stride.
        features: the backbone's maps, ``features[name]`` float ``(B, C_name, h_name, w_name)``.
        skips: the names of the maps to fuse, coarsest first.
        upscore: ``upscore[name]`` maps ``(B, K, h, w)`` -> ``(B, K, f h, f w)``.
        score_skips: ``score_skips[name]`` maps ``(B, C_name, ., .)`` -> ``(B, K, ., .)``.
        upscore_final: maps the last fused scores to the image's resolution.

    Returns:
        float ``(B, K, H, W)``: ``upscore_final``'s output.

    Raises:
        ValueError: ``scores`` is not ``(B, K, h, w)``, or the up-sampled scores are smaller
            than a skip map (nothing to crop).
    """
    if not isinstance(scores, torch.Tensor) or scores.ndim != 4:
        raise ValueError(
            f"scores must be a (B, K, h, w) tensor, got {getattr(scores, 'shape', scores)}"
        )
    for name in skips:
        skip = score_skips[name](features[name])
        up = upscore[name](scores)
        height, width = skip.shape[-2:]
        if up.shape[-2] < height or up.shape[-1] < width:
            raise ValueError(
                f"the up-sampled scores {tuple(up.shape[-2:])} are smaller than {name}'s "
                f"{(height, width)}: nothing to crop (is the input a multiple of the stride?)"
            )
        scores = up[..., :height, :width] + skip
    return upscore_final(scores)


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
      initialised bilinear, see :class:`Upsample`), used for every up-sampling step;
      ``upsample_layer``: the class built for each step, ``upsample_layer(num_classes, factor,
      upsample)`` (default :class:`Upsample`; notebook 09 passes the student's);
    * ``fusion``: the function that runs the decoder, called as ``fusion(scores, features,
      self.skips, self.upscore, self.score_skips, self.upscore_final)`` with the signature of
      :func:`fuse_skips` (the default). It only reads the layers, so another function (a
      student's) keeps the same parameters and ``state_dict`` keys.

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
        fusion: Callable[..., torch.Tensor] | None = None,
        upsample_layer: Callable[[int, int, str], nn.Module] = Upsample,
    ) -> None:
        super().__init__()
        check_int(num_classes, "num_classes")
        check_int(head_channels, "head_channels")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        if context is not None and not isinstance(context, nn.Module):
            raise TypeError(f"context must be an nn.Module or None, got {type(context).__name__}")
        check_number(dropout, "dropout", 0.0, 1.0, open_maximum=True)
        if fusion is not None and not callable(fusion):
            raise TypeError(
                f"fusion must be a function like fuse_skips, got {type(fusion).__name__}"
            )
        if not callable(upsample_layer):
            raise TypeError(f"upsample_layer must be a class like Upsample, got {upsample_layer!r}")
        self.fusion = fuse_skips if fusion is None else fusion
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
            self.upscore[name] = upsample_layer(num_classes, stride // skip_stride, upsample)
            stride = skip_stride
        self.output_stride = stride
        self.upscore_final = upsample_layer(num_classes, stride, upsample)

    def front_end(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The head's scores at ``pool5``'s stride, float ``(B, K, H/32, W/32)`` (before
        ``context``), and the backbone's feature maps (:class:`TinyBackbone`'s dict)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.front_end_frozen):
            features = self.backbone(images)
            return self.head(features["pool5"]), features

    @property
    def front_end_frozen(self) -> bool:
        """True after :meth:`freeze_front_end`: backbone and head are fixed (eval mode, no
        gradients)."""
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
        return self.fusion(
            scores, features, self.skips, self.upscore, self.score_skips, self.upscore_final
        )

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
            key = mismatched[0]
            raise ValueError(
                f"other has another architecture: {key} is {tuple(copied[key].shape)} "
                f"there but {tuple(own[key].shape)} here (same channels/head_channels/classes?)"
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
    fusion: Callable[..., torch.Tensor] | None = None,
    upsample_layer: Callable[[int, int, str], nn.Module] = Upsample,
) -> FCN:
    """Build an :class:`FCN` with a fresh :class:`TinyBackbone` (one call, every knob;
    ``fusion`` and ``upsample_layer``: see :class:`FCN`)."""
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
        fusion=fusion,
        upsample_layer=upsample_layer,
    )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def receptive_field(model: FCN) -> int:
    """Receptive field (pixels, one side) of one ``score`` output of the front-end.

    Computed layer by layer over the backbone's and the head's convolutions and pools
    (``receptive_field.layers_of``): ``r += (k_eff - 1) * jump`` where
    ``k_eff = d * (k - 1) + 1`` and ``jump`` is the product of the strides so far.
    """
    if not isinstance(model, FCN):
        raise TypeError(f"model must be an FCN, got {type(model).__name__}")
    return stack_receptive_field(layers_of(model.backbone) + layers_of(model.head))
