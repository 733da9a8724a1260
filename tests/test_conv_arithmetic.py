"""Unit tests for course_utils.segmentation.conv_arithmetic: sizes, costs and the pictures."""

import itertools

import matplotlib
import pytest
import torch
from torch import nn

from course_utils.segmentation import conv_arithmetic as ca

matplotlib.use("Agg")


# ---------------------------------------------------------------- output sizes
def test_conv2d_output_size_matches_pytorch_on_a_grid():
    checked = 0
    for n, k, s, p, d in itertools.product(
        (1, 4, 7, 10), (1, 2, 3, 5), (1, 2, 3), (0, 1, 2), (1, 2, 3)
    ):
        if n + 2 * p < d * (k - 1) + 1:
            with pytest.raises(ValueError, match="spans"):
                ca.conv2d_output_size(n, k, s, p, d)
            continue
        real = nn.Conv2d(1, 1, k, s, p, d)(torch.zeros(1, 1, n, n)).shape[-1]
        assert ca.conv2d_output_size(n, k, s, p, d) == real
        checked += 1
    assert checked > 300


def test_conv_transpose2d_output_size_matches_pytorch_on_a_grid():
    checked = 0
    for n, k, s, p, op, d in itertools.product(
        (1, 3, 6), (1, 2, 3, 4), (1, 2, 3), (0, 1, 2), (0, 1, 2), (1, 2)
    ):
        if op >= max(s, d):
            with pytest.raises(ValueError, match="output_padding"):
                ca.conv_transpose2d_output_size(n, k, s, p, op, d)
            continue
        expected = (n - 1) * s - 2 * p + d * (k - 1) + op + 1
        if expected < 1:
            with pytest.raises(ValueError, match="crops"):
                ca.conv_transpose2d_output_size(n, k, s, p, op, d)
            continue
        layer = nn.ConvTranspose2d(1, 1, k, s, p, op, dilation=d)
        assert (
            ca.conv_transpose2d_output_size(n, k, s, p, op, d)
            == layer(torch.zeros(1, 1, n, n)).shape[-1]
        )
        checked += 1
    assert checked > 150


def test_output_padding_to_invert_returns_to_the_input_size():
    for n, k, s, p, d in itertools.product((5, 6, 7, 8), (3, 4), (1, 2, 3), (0, 1), (1, 2)):
        if n + 2 * p < d * (k - 1) + 1:
            continue
        small = ca.conv2d_output_size(n, k, s, p, d)
        op = ca.output_padding_to_invert(n, k, s, p, d)
        assert 0 <= op < max(s, d)
        assert ca.conv_transpose2d_output_size(small, k, s, p, op, d) == n


def test_size_functions_reject_bad_arguments():
    with pytest.raises(TypeError):
        ca.conv2d_output_size(4.0, 3)
    with pytest.raises(ValueError, match="stride"):
        ca.conv2d_output_size(4, 3, stride=0)
    with pytest.raises(ValueError, match="padding"):
        ca.conv_transpose2d_output_size(4, 3, padding=-1)
    with pytest.raises(TypeError, match="dilation"):
        ca.conv2d_output_size(4, 3, dilation=True)
    with pytest.raises(TypeError, match="output_padding"):
        ca.conv_transpose2d_output_size(4, 3, output_padding=0.0)
    with pytest.raises(ValueError, match="in_channels"):
        ca.conv2d_cost(0, 8, 3, (8, 8))
    with pytest.raises(TypeError, match="input_size"):
        ca.conv2d_cost(2, 8, 3, 8)


def test_conv2d_cost_matches_a_real_layer_and_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    for cin, cout, k, s, p, d, g, bias in [
        (8, 16, 3, 1, 1, 1, 1, True),
        (8, 16, 3, 2, 1, 1, 1, False),
        (8, 8, 3, 1, 2, 2, 8, True),
        (6, 12, 5, 1, 2, 1, 3, True),
    ]:
        layer = nn.Conv2d(cin, cout, k, s, p, d, g, bias)
        x = torch.zeros(1, cin, 20, 24)
        cost = ca.conv2d_cost(cin, cout, k, (20, 24), s, p, d, g, bias)
        with FlopCounterMode(display=False) as counter:
            y = layer(x)
        assert cost["output_shape"] == tuple(y.shape[1:])
        assert cost["params"] == sum(q.numel() for q in layer.parameters())
        assert 2 * cost["macs"] == counter.get_total_flops()
    with pytest.raises(ValueError, match="groups"):
        ca.conv2d_cost(6, 8, 3, (8, 8), groups=4)


# ---------------------------------------------------------------- pictures
def test_pictures_draw_and_return_sizes():
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3)
    assert ca.draw_convolution(axes[0], 5, 3, stride=2, padding=1, output_index=(1, 2)) == 3
    assert (
        ca.draw_convolution(axes[1], 3, 3, stride=2, padding=1, transposed=True, output_padding=1)
        == 6
    )
    counts = ca.draw_scatter(axes[2], 3, 3, 2, (1, 1))
    assert counts.shape == (7, 7) and int(counts.max()) == 4
    assert counts[0].tolist() == [1, 1, 2, 1, 2, 1, 1] and int(counts.sum()) == 9 * 9
    assert len(axes[0].patches) > 25
    with pytest.raises(ValueError, match="output_index"):
        ca.draw_convolution(axes[0], 5, 3, output_index=(3, 0))
    plt.close(fig)
    fig = ca.arithmetic_figure(
        [dict(input_size=4, kernel_size=3), dict(input_size=2, kernel_size=3, transposed=True)]
    )
    assert len(fig.axes) == 2
    plt.close(fig)
