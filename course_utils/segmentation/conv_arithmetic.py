"""Convolution arithmetic: output sizes, parameter and MAC counts, and the pictures of
Dumoulin & Visin, "A guide to convolution arithmetic for deep learning" (2016), drawn by code.

Sizes are per spatial dimension (the same formula applies to height and width):

* ``nn.Conv2d``:           ``out = floor((n + 2p - d(k-1) - 1) / s) + 1``
* ``nn.ConvTranspose2d``:  ``out = (n-1) s - 2p + d(k-1) + output_padding + 1``

The pictures show a grid of input cells (blue; padding and inserted zeros white, dashed),
the kernel's footprint for one output cell (dark) and the output grid (green) with that
cell highlighted. A transposed convolution is drawn as Dumoulin & Visin draw it: the
direct convolution (stride 1) over the input with ``s - 1`` zeros inserted between pixels
and ``d(k-1) - p`` zeros of padding around it.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle

from course_utils.core.validate import check_int

__all__ = [
    "conv2d_output_size",
    "conv_transpose2d_output_size",
    "output_padding_to_invert",
    "conv2d_cost",
    "draw_convolution",
    "draw_scatter",
    "arithmetic_figure",
]

_INPUT = "#7fb3d5"
_INPUT_EDGE = "#1f618d"
_FOOTPRINT = "#1a5276"
_OUTPUT = "#a9dfbf"
_OUTPUT_HIT = "#1e8449"


def _check_size_args(size, kernel_size, stride, padding, dilation) -> None:
    check_int(size, "size", 1)
    check_int(kernel_size, "kernel_size", 1)
    check_int(stride, "stride", 1)
    check_int(padding, "padding", 0)
    check_int(dilation, "dilation", 1)


def conv2d_output_size(
    size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """Output length of ``nn.Conv2d`` along one dimension of length ``size``.

    The dilated kernel spans ``d(k-1) + 1`` pixels; it fits ``floor((n + 2p - span) / s) + 1``
    times into the padded input. Raises ``ValueError`` when the kernel does not fit at all
    (PyTorch raises a RuntimeError there).
    """
    _check_size_args(size, kernel_size, stride, padding, dilation)
    span = dilation * (kernel_size - 1) + 1
    if size + 2 * padding < span:
        raise ValueError(
            f"the dilated kernel spans {span} pixels but the padded input has only "
            f"{size + 2 * padding}: no output"
        )
    return (size + 2 * padding - span) // stride + 1


def conv_transpose2d_output_size(
    size: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
    dilation: int = 1,
) -> int:
    """Output length of ``nn.ConvTranspose2d`` along one dimension of length ``size``.

    Each of the ``n`` input pixels scatters a dilated kernel (span ``d(k-1) + 1``) at steps
    of ``s``: the canvas is ``(n-1) s + d(k-1) + 1`` long; ``p`` pixels are cropped on each
    side and ``output_padding`` pixels added at the end (bottom/right). PyTorch requires
    ``output_padding < max(stride, dilation)``.
    """
    _check_size_args(size, kernel_size, stride, padding, dilation)
    check_int(output_padding, "output_padding", 0)
    if output_padding >= max(stride, dilation):
        raise ValueError(
            f"output_padding must be smaller than stride or dilation, got "
            f"output_padding={output_padding}, stride={stride}, dilation={dilation}"
        )
    out = (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1
    if out < 1:
        raise ValueError(f"padding={padding} crops the whole output (length {out})")
    return out


def output_padding_to_invert(
    size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """The ``output_padding`` that makes ``ConvTranspose2d`` return to length ``size``.

    A strided convolution maps several input lengths to the same output length (the floor
    in its formula); ``output_padding`` picks which one the transposed convolution gives back.
    """
    small = conv2d_output_size(size, kernel_size, stride, padding, dilation)
    base = (small - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + 1
    return size - base


def conv2d_cost(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    input_size: tuple[int, int],
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
    bias: bool = True,
) -> dict:
    """Shapes, parameters and multiply-accumulates of one ``nn.Conv2d`` on one image.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias:
            as ``nn.Conv2d`` (square kernels, same stride/padding/dilation in both dimensions).
        input_size: ``(H, W)`` of the input.

    Returns:
        dict with ``output_shape`` ``(out_channels, H_out, W_out)``, ``weights``
        (``out * in/groups * k * k``), ``params`` (weights + ``out`` biases) and ``macs``
        (``H_out * W_out * weights``: each output value is a dot product of length
        ``in/groups * k * k``). Dilation changes neither parameters nor MACs.
    """
    check_int(in_channels, "in_channels", 1)
    check_int(out_channels, "out_channels", 1)
    check_int(groups, "groups", 1)
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"in_channels ({in_channels}) and out_channels ({out_channels}) must both be "
            f"divisible by groups ({groups})"
        )
    if not (isinstance(input_size, (tuple, list)) and len(input_size) == 2):
        raise TypeError(f"input_size must be a pair (H, W), got {input_size!r}")
    height, width = (
        conv2d_output_size(n, kernel_size, stride, padding, dilation) for n in input_size
    )
    weights = out_channels * (in_channels // groups) * kernel_size * kernel_size
    return {
        "output_shape": (out_channels, height, width),
        "weights": weights,
        "params": weights + (out_channels if bias else 0),
        "macs": height * width * weights,
    }


# ---------------------------------------------------------------- pictures
def _cell(
    ax,
    x: float,
    y: float,
    face: str,
    edge: str = _INPUT_EDGE,
    dashed: bool = False,
    alpha: float = 1.0,
) -> None:
    ax.add_patch(
        Rectangle(
            (x, y),
            1,
            1,
            facecolor=face,
            edgecolor=edge,
            alpha=alpha,
            linestyle="--" if dashed else "-",
            linewidth=0.8,
        )
    )


def _draw_grid_convolution(
    ax,
    real: int,
    insert: int,
    pad_lo: int,
    pad_hi: int,
    kernel_size: int,
    stride: int,
    dilation: int,
    output_index: tuple[int, int],
    output_size: int,
    title: str,
) -> None:
    """Shared drawing: a direct convolution over a (possibly stretched and padded) grid."""
    stretched = (real - 1) * insert + 1
    first, last = -pad_lo, stretched - 1 + pad_hi  # grid coordinates shown
    side = last - first + 1
    row, col = output_index
    if not (0 <= row < output_size and 0 <= col < output_size):
        raise ValueError(
            f"output_index must lie in the {output_size}x{output_size} output, got {output_index}"
        )
    footprint = {
        (row * stride + a * dilation, col * stride + b * dilation)
        for a in range(kernel_size)
        for b in range(kernel_size)
    }
    for i in range(side):
        for j in range(side):
            gi, gj = i + first, j + first
            is_real = (
                0 <= gi <= stretched - 1
                and 0 <= gj <= stretched - 1
                and gi % insert == 0
                and gj % insert == 0
            )
            _cell(ax, j, i, _INPUT if is_real else "white", dashed=not is_real)
            if (i, j) in footprint:
                _cell(ax, j, i, _FOOTPRINT, edge=_FOOTPRINT, alpha=0.75)
    offset = side + 1.5
    top = (side - output_size) / 2
    for i in range(output_size):
        for j in range(output_size):
            hit = (i, j) == (row, col)
            _cell(ax, offset + j, top + i, _OUTPUT_HIT if hit else _OUTPUT, edge="#145a32")
    centre_in = (
        col * stride + dilation * (kernel_size - 1) / 2 + 0.5,
        row * stride + dilation * (kernel_size - 1) / 2 + 0.5,
    )
    ax.annotate(
        "",
        xy=(offset + col + 0.5, top + row + 0.5),
        xytext=centre_in,
        arrowprops={"arrowstyle": "->", "color": "#922b21", "lw": 1.2},
    )
    ax.set_xlim(-0.5, offset + output_size + 0.5)
    ax.set_ylim(max(side, output_size) + 0.5, -0.5 - max(0.0, -top))
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=9)


def draw_convolution(
    ax,
    input_size: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    output_index: tuple[int, int] = (0, 0),
    transposed: bool = False,
    output_padding: int = 0,
) -> int:
    """Draw one convolution (or transposed convolution) on a matplotlib ``ax``; return the
    output size.

    Square input ``input_size x input_size``; ``output_index`` ``(row, col)`` picks the output
    cell whose kernel footprint is drawn. With ``transposed=True`` the picture is the
    equivalent direct convolution: ``stride - 1`` zeros between input pixels, ``d(k-1) - p``
    zeros of padding (plus ``output_padding`` at the bottom/right), stride 1.
    """
    if transposed:
        out = conv_transpose2d_output_size(
            input_size, kernel_size, stride, padding, output_padding, dilation
        )
        pad = dilation * (kernel_size - 1) - padding
        title = (
            f"transposed: in {input_size}, k {kernel_size}, s {stride}, p {padding}"
            + (f", d {dilation}" if dilation > 1 else "")
            + (f", op {output_padding}" if output_padding else "")
            + f" -> out {out}"
        )
        _draw_grid_convolution(
            ax,
            input_size,
            stride,
            pad,
            pad + output_padding,
            kernel_size,
            1,
            dilation,
            output_index,
            out,
            title,
        )
    else:
        out = conv2d_output_size(input_size, kernel_size, stride, padding, dilation)
        title = (
            f"conv: in {input_size}, k {kernel_size}, s {stride}, p {padding}"
            + (f", d {dilation}" if dilation > 1 else "")
            + f" -> out {out}"
        )
        _draw_grid_convolution(
            ax,
            input_size,
            1,
            padding,
            padding,
            kernel_size,
            stride,
            dilation,
            output_index,
            out,
            title,
        )
    return out


def draw_scatter(
    ax, input_size: int, kernel_size: int, stride: int = 1, input_index: tuple[int, int] = (0, 0)
) -> torch.Tensor:
    """Draw the "scatter" view of a transposed convolution (no padding): each input pixel adds
    a copy of the kernel to the output canvas at ``stride`` steps.

    The canvas cells are shaded by how many copies overlap there (the cause of checkerboard
    artifacts when ``kernel_size`` is not divisible by ``stride``); the copy of
    ``input_index`` is outlined. Returns the overlap counts, an int tensor
    ``(canvas, canvas)`` with ``canvas = (n-1) s + k``.
    """
    _check_size_args(input_size, kernel_size, stride, 0, 1)
    canvas = (input_size - 1) * stride + kernel_size
    counts = torch.zeros(canvas, canvas, dtype=torch.int64)
    for i in range(input_size):
        for j in range(input_size):
            counts[
                i * stride : i * stride + kernel_size, j * stride : j * stride + kernel_size
            ] += 1
    row, col = input_index
    if not (0 <= row < input_size and 0 <= col < input_size):
        raise ValueError(
            f"input_index must lie in the {input_size}x{input_size} input, got {input_index}"
        )
    for i in range(input_size):
        for j in range(input_size):
            _cell(
                ax, j, i + (canvas - input_size) / 2, _FOOTPRINT if (i, j) == (row, col) else _INPUT
            )
    offset = input_size + 1.5
    top_count = int(counts.max())
    for i in range(canvas):
        for j in range(canvas):
            shade = 0.15 + 0.85 * int(counts[i, j]) / top_count
            _cell(ax, offset + j, i, _OUTPUT_HIT, edge="#145a32", alpha=shade)
            ax.text(
                offset + j + 0.5,
                i + 0.5,
                str(int(counts[i, j])),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if shade > 0.6 else "black",
            )
    ax.add_patch(
        Rectangle(
            (offset + col * stride, row * stride),
            kernel_size,
            kernel_size,
            fill=False,
            edgecolor="#922b21",
            linewidth=2,
        )
    )
    ax.set_xlim(-0.5, offset + canvas + 0.5)
    ax.set_ylim(canvas + 0.5, -0.5)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(
        f"scatter: in {input_size}, k {kernel_size}, s {stride} (numbers: overlapping copies)",
        fontsize=9,
    )
    return counts


def arithmetic_figure(settings: list[dict], columns: int = 2, panel_size: float = 3.6):
    """A figure with one :func:`draw_convolution` panel per dict of keyword arguments.

    Example: ``arithmetic_figure([dict(input_size=5, kernel_size=3), dict(input_size=5,
    kernel_size=3, stride=2, padding=1)])``. Returns the matplotlib Figure.
    """
    if not settings or not all(isinstance(s, dict) for s in settings):
        raise TypeError("settings must be a non-empty list of dicts of draw_convolution arguments")
    rows = math.ceil(len(settings) / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(panel_size * columns * 1.5, panel_size * rows), squeeze=False
    )
    for ax, kwargs in zip(axes.flat, settings):
        draw_convolution(ax, **kwargs)
    for ax in list(axes.flat)[len(settings) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig
