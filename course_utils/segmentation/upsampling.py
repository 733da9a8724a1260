"""Up-sampling convolutions ("deconvolutions") and bilinear up-sampling, written out.

The layer has many names (all the same ``nn.ConvTranspose2d``): deconvolution, up-convolution,
fractionally strided convolution, backwards strided convolution, transposed convolution.

Three equivalent views, each a function here:

* **scatter** (:func:`conv_transpose2d_scatter`): every input pixel adds a copy of the kernel,
  scaled by the pixel's value, to the output canvas at ``stride`` steps; overlaps add up;
  ``padding`` pixels are then cropped from each side.
* **fractionally strided** (:func:`conv_transpose2d_via_conv`): insert ``stride - 1`` zeros
  between input pixels, pad with ``d(k-1) - p`` zeros, and run an ordinary stride-1
  convolution with the kernel flipped and its in/out channels swapped.
* **transpose** (:func:`conv2d_matrix`): a convolution is a matrix ``C`` acting on the
  flattened image; the transposed convolution multiplies by ``C.T`` -- which is also what
  autograd does to send the gradient back through the convolution.

Up-sampling layers built on it: :func:`bilinear_kernel` (the weights of bilinear
interpolation as a transposed convolution), :func:`bilinear_upsampler` (the layer that
starts as bilinear up-sampling, FCN's "deconvolution"), :class:`Upsample` (fixed or learned
bilinear up-sampling, the FCN's up-sampling steps) and :func:`resize_conv` (Odena et al.'s
resize-then-convolve).

Weights follow PyTorch: ``nn.ConvTranspose2d.weight`` has shape ``(C_in, C_out, kH, kW)``,
``nn.Conv2d.weight`` has shape ``(C_out, C_in, kH, kW)``. Tensors are ``(N, C, H, W)`` float.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.core.validate import check_int

__all__ = [
    "UPSAMPLE_MODES",
    "Upsample",
    "bilinear_kernel",
    "conv_transpose2d_scatter",
    "insert_zeros",
    "conv_transpose2d_via_conv",
    "conv2d_matrix",
    "overlap_count",
    "bilinear_upsampler",
    "resize_conv",
    "border_rows",
]


def _pair(value, name: str, minimum: int) -> tuple[int, int]:
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(values) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    return tuple(check_int(v, name, minimum) for v in values)


def _check_batch(x, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(
            f"{name} must be a float tensor (N, C, H, W), got shape {tuple(x.shape)}, "
            f"dtype {x.dtype}"
        )
    return x


def _check_transposed_weight(x: torch.Tensor, weight) -> torch.Tensor:
    if not isinstance(weight, torch.Tensor) or weight.ndim != 4:
        raise ValueError(
            "weight must be a tensor (C_in, C_out, kH, kW) as nn.ConvTranspose2d.weight, got "
            f"{getattr(weight, 'shape', type(weight).__name__)}"
        )
    if weight.shape[0] != x.shape[1]:
        raise ValueError(
            f"weight has {weight.shape[0]} input channels (dim 0 of (C_in, C_out, kH, kW)) "
            f"but x has {x.shape[1]}"
        )
    return weight


def _transposed_sizes(x, weight, stride, padding, output_padding, dilation):
    s, p, op, d = (
        _pair(stride, "stride", 1),
        _pair(padding, "padding", 0),
        _pair(output_padding, "output_padding", 0),
        _pair(dilation, "dilation", 1),
    )
    for axis in range(2):
        if op[axis] >= max(s[axis], d[axis]):
            raise ValueError(
                f"output_padding must be smaller than stride or dilation, got {output_padding!r} "
                f"with stride {stride!r}, dilation {dilation!r}"
            )
    kernel = weight.shape[-2:]
    canvas = [(x.shape[2 + a] - 1) * s[a] + d[a] * (kernel[a] - 1) + 1 for a in range(2)]
    out = [canvas[a] - 2 * p[a] + op[a] for a in range(2)]
    if min(out) < 1:
        raise ValueError(f"padding {padding!r} crops the whole output (size {out})")
    return s, p, op, d, canvas, out


def conv_transpose2d_scatter(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride=1,
    padding=0,
    output_padding=0,
    dilation=1,
) -> torch.Tensor:
    """Transposed convolution as a scatter: the same result as ``F.conv_transpose2d``.

    Args:
        x: ``(N, C_in, H, W)`` float.
        weight: ``(C_in, C_out, kH, kW)`` (as ``nn.ConvTranspose2d.weight``).
        bias: ``(C_out,)`` or ``None``.
        stride, padding, output_padding, dilation: int or pair, as ``nn.ConvTranspose2d``.

    Returns:
        ``(N, C_out, H_out, W_out)`` with ``H_out = (H-1) s - 2p + d(kH-1) + output_padding + 1``.

    Input pixel ``(i, j)`` adds ``x[:, :, i, j] @ weight`` -- a ``(C_out, kH, kW)`` copy of the
    kernel -- to the canvas rows ``i*s, i*s + d, ..., i*s + d(kH-1)`` (same for columns).
    The canvas is then cropped by ``padding`` on each side; ``output_padding`` extends it at
    the bottom/right. One Python loop over input pixels: for small images only.
    """
    x = _check_batch(x)
    weight = _check_transposed_weight(x, weight)
    s, p, op, d, canvas, out = _transposed_sizes(
        x, weight, stride, padding, output_padding, dilation
    )
    kh, kw = weight.shape[-2:]
    n, _, height, width = x.shape
    full = x.new_zeros(n, weight.shape[1], canvas[0] + op[0], canvas[1] + op[1])
    for i in range(height):
        for j in range(width):
            copy = torch.einsum("nc,cokl->nokl", x[:, :, i, j], weight)
            rows = slice(i * s[0], i * s[0] + d[0] * (kh - 1) + 1, d[0])
            cols = slice(j * s[1], j * s[1] + d[1] * (kw - 1) + 1, d[1])
            full[:, :, rows, cols] += copy
    result = full[:, :, p[0] : p[0] + out[0], p[1] : p[1] + out[1]]
    if bias is not None:
        result = result + bias.view(1, -1, 1, 1)
    return result


def insert_zeros(x: torch.Tensor, stride) -> torch.Tensor:
    """Put ``stride - 1`` zeros between neighbouring pixels: ``(N, C, H, W)`` ->
    ``(N, C, (H-1) s + 1, (W-1) s + 1)`` (the "fractional stride" of 1/s)."""
    x = _check_batch(x)
    s = _pair(stride, "stride", 1)
    n, c, height, width = x.shape
    out = x.new_zeros(n, c, (height - 1) * s[0] + 1, (width - 1) * s[1] + 1)
    out[:, :, :: s[0], :: s[1]] = x
    return out


def conv_transpose2d_via_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride=1,
    padding=0,
    output_padding=0,
    dilation=1,
) -> torch.Tensor:
    """Transposed convolution as an ordinary convolution (Dumoulin & Visin's picture).

    Same arguments and result as :func:`conv_transpose2d_scatter`. Steps: insert ``s - 1``
    zeros between pixels; pad ``d(k-1) - p`` zeros on each side (plus ``output_padding``
    at the bottom/right; a negative amount crops); convolve with stride 1, dilation ``d``
    and the kernel flipped in both spatial axes with in/out channels swapped,
    ``weight.flip(-2, -1).transpose(0, 1)`` -- shape ``(C_out, C_in, kH, kW)``.
    """
    x = _check_batch(x)
    weight = _check_transposed_weight(x, weight)
    s, p, op, d, _, _ = _transposed_sizes(x, weight, stride, padding, output_padding, dilation)
    kh, kw = weight.shape[-2:]
    stretched = insert_zeros(x, s)
    pad_h, pad_w = d[0] * (kh - 1) - p[0], d[1] * (kw - 1) - p[1]
    stretched = F.pad(stretched, (pad_w, pad_w + op[1], pad_h, pad_h + op[0]))  # negative = crop
    return F.conv2d(stretched, weight.flip(-2, -1).transpose(0, 1), bias, stride=1, dilation=d)


def conv2d_matrix(
    weight: torch.Tensor, input_size: tuple[int, int], stride=1, padding=0, dilation=1
) -> torch.Tensor:
    """The matrix ``C`` of a convolution: ``conv2d(x).flatten() == C @ x.flatten()`` for one image.

    Args:
        weight: ``(C_out, C_in, kH, kW)`` (as ``nn.Conv2d.weight``).
        input_size: ``(H, W)``.

    Returns:
        ``(C_out * H_out * W_out, C_in * H * W)``: column ``k`` is the convolution of the
        ``k``-th one-hot image. ``C.T`` is the matrix of the transposed convolution with the
        same weight, stride, padding and dilation (and the ``output_padding`` that returns to
        ``(H, W)``).
    """
    if not isinstance(weight, torch.Tensor) or weight.ndim != 4:
        raise ValueError("weight must be a tensor (C_out, C_in, kH, kW) as nn.Conv2d.weight")
    height, width = _pair(input_size, "input_size", 1)
    numel = weight.shape[1] * height * width
    basis = torch.eye(numel, dtype=weight.dtype, device=weight.device).view(
        numel, weight.shape[1], height, width
    )
    columns = F.conv2d(basis, weight, None, stride=stride, padding=padding, dilation=dilation)
    return columns.reshape(numel, -1).T


def overlap_count(
    input_size: int, kernel_size: int, stride: int, layers: int = 1, crop: int = 0
) -> torch.Tensor:
    """How unevenly a transposed convolution covers its output: ``(H, W)`` float.

    ``layers`` transposed convolutions with all-one ``kernel_size`` kernels and ``stride``
    (no padding) applied to a constant ``input_size x input_size`` image of ones. With one
    layer the value is the number of kernel copies overlapping at each output pixel: a
    checkerboard when ``kernel_size % stride != 0`` (Odena et al. 2016), uniform away from
    the border when it divides. ``crop`` removes that many pixels at each border.
    """
    for name, value, minimum in (
        ("input_size", input_size, 1),
        ("kernel_size", kernel_size, 1),
        ("stride", stride, 1),
        ("layers", layers, 1),
        ("crop", crop, 0),
    ):
        check_int(value, name, minimum)
    image = torch.ones(1, 1, input_size, input_size)
    kernel = torch.ones(1, 1, kernel_size, kernel_size)
    for _ in range(layers):
        image = F.conv_transpose2d(image, kernel, stride=stride)
    if crop:
        image = image[:, :, crop:-crop, crop:-crop]
    return image[0, 0]


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
    check_int(channels, "channels")
    check_int(factor, "factor")
    size = 2 * factor - factor % 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    steps = torch.arange(size, dtype=torch.float32)
    tent = 1 - (steps - centre).abs() / factor
    kernel = tent[:, None] * tent[None, :]
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = kernel
    return weight


def bilinear_upsampler(channels: int, factor: int, learnable: bool = True) -> nn.ConvTranspose2d:
    """A ``ConvTranspose2d`` that starts as bilinear up-sampling by ``factor`` (channel-wise).

    Kernel ``2f - f % 2``, stride ``f``, padding ``f // 2``, no bias; the weight is
    :func:`bilinear_kernel` ``(channels, factor)`` (each channel up-samples itself).
    The output ``(N, C, f H, f W)`` equals
    ``F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)`` except in
    the ``f // 2`` border rows/columns, where the transposed convolution sums zero
    padding instead of repeating the edge pixel (see :func:`border_rows`).
    ``learnable=False`` freezes the weight (fixed bilinear up-sampling).
    """
    check_int(channels, "channels")
    check_int(factor, "factor")
    size = 2 * factor - factor % 2
    layer = nn.ConvTranspose2d(
        channels, channels, size, stride=factor, padding=factor // 2, bias=False
    )
    with torch.no_grad():
        layer.weight.copy_(
            bilinear_kernel(channels, factor).to(layer.weight.dtype).view_as(layer.weight)
        )
    layer.weight.requires_grad_(learnable)
    return layer


#: How :class:`Upsample` up-samples: fixed interpolation or a learned transposed convolution.
UPSAMPLE_MODES: tuple[str, ...] = ("bilinear", "learned")


class Upsample(nn.Module):
    """Up-sample a score map ``(B, C, h, w)`` -> ``(B, C, factor*h, factor*w)``.

    ``mode="bilinear"``: fixed bilinear interpolation (``F.interpolate``, no parameters).
    ``mode="learned"``: ``ConvTranspose2d(C, C, 2f - f%2, stride=f, padding=f//2, bias=False)``
    initialised with :func:`bilinear_kernel` (:func:`bilinear_upsampler`) and trained with the
    network (FCN's "deconvolution"). ``factor=1`` is the identity in both modes.
    """

    def __init__(self, channels: int, factor: int, mode: str = "bilinear") -> None:
        super().__init__()
        check_int(channels, "channels")
        check_int(factor, "factor")
        if mode not in UPSAMPLE_MODES:
            raise ValueError(f"upsample mode must be one of {UPSAMPLE_MODES}, got {mode!r}")
        self.factor, self.mode = factor, mode
        self.deconv: nn.ConvTranspose2d | None = None
        if mode == "learned" and factor > 1:
            self.deconv = bilinear_upsampler(channels, factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor == 1:
            return x
        if self.deconv is not None:
            return self.deconv(x)
        return F.interpolate(x, scale_factor=self.factor, mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"factor={self.factor}, mode={self.mode!r}"


def border_rows(factor: int) -> int:
    """How many output rows (and columns) at each border differ between the bilinear
    transposed convolution and ``F.interpolate(..., align_corners=False)``: ``f // 2``.

    Output row ``o`` samples the input at ``(o + 0.5) / f - 0.5``; below 0 (or above
    ``H - 1``) one of its two neighbours is the zero padding, whereas ``F.interpolate``
    clamps the coordinate and repeats the edge pixel.
    """
    return check_int(factor, "factor") // 2


def resize_conv(
    in_channels: int, out_channels: int, factor: int, kernel_size: int = 3
) -> nn.Sequential:
    """Odena et al.'s fix for checkerboard artifacts: nearest-neighbour resize by ``factor``,
    then a ``kernel_size`` convolution with "same" padding. ``(N, C_in, H, W)`` ->
    ``(N, C_out, f H, f W)``."""
    check_int(in_channels, "in_channels")
    check_int(out_channels, "out_channels")
    check_int(factor, "factor")
    if check_int(kernel_size, "kernel_size") % 2 == 0:
        raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
    return nn.Sequential(
        nn.Upsample(scale_factor=factor, mode="nearest"),
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
    )
