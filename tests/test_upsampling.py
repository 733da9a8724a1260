"""Unit tests for course_utils.segmentation.upsampling and course_utils.segmentation.conv_arithmetic."""

import itertools

import matplotlib
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.segmentation import conv_arithmetic as ca
from course_utils.segmentation import upsampling as up

matplotlib.use("Agg")

# (size, kernel, stride, padding, output_padding, dilation) settings PyTorch accepts
TRANSPOSED_SETTINGS = [
    (4, 3, 1, 0, 0, 1),
    (4, 3, 2, 0, 0, 1),
    (4, 3, 2, 1, 1, 1),
    (3, 4, 2, 1, 0, 1),
    (5, 2, 2, 0, 1, 1),
    (3, 3, 3, 2, 2, 1),
    (4, 3, 1, 1, 1, 2),
    (3, 3, 2, 2, 1, 2),
    (2, 1, 3, 0, 0, 1),
    (3, 5, 1, 2, 0, 1),
]


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


# ---------------------------------------------------------------- transposed convolution
@pytest.mark.parametrize("setting", TRANSPOSED_SETTINGS)
@pytest.mark.parametrize(
    "implementation", [up.conv_transpose2d_scatter, up.conv_transpose2d_via_conv]
)
def test_transposed_convolution_matches_pytorch(setting, implementation):
    n, k, s, p, op, d = setting
    generator = torch.Generator().manual_seed(sum(setting))
    x = torch.randn(2, 3, n, n + 1, generator=generator)
    weight = torch.randn(3, 2, k, k, generator=generator)
    bias = torch.randn(2, generator=generator)
    expected = F.conv_transpose2d(x, weight, bias, s, p, op, dilation=d)
    got = implementation(x, weight, bias, stride=s, padding=p, output_padding=op, dilation=d)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_scatter_accepts_pairs_and_rejects_mistakes():
    x = torch.randn(1, 2, 3, 4)
    weight = torch.randn(2, 1, 2, 3)
    expected = F.conv_transpose2d(x, weight, stride=(2, 1), padding=(0, 1))
    torch.testing.assert_close(
        up.conv_transpose2d_scatter(x, weight, stride=(2, 1), padding=(0, 1)), expected
    )
    with pytest.raises(ValueError, match="input channels"):
        up.conv_transpose2d_scatter(x, torch.randn(3, 1, 3, 3))
    with pytest.raises(ValueError, match="output_padding"):
        up.conv_transpose2d_scatter(x, weight, stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        up.conv_transpose2d_scatter(x[0], weight)


def test_insert_zeros():
    x = torch.arange(1.0, 5.0).view(1, 1, 2, 2)
    out = up.insert_zeros(x, 3)
    assert out.shape == (1, 1, 4, 4)
    assert out[0, 0, ::3, ::3].equal(x[0, 0]) and out.sum() == x.sum()


def test_transposed_convolution_is_the_gradient_and_the_transpose_of_the_convolution():
    generator = torch.Generator().manual_seed(0)
    for size, k, s, p, d in [(7, 3, 2, 1, 1), (8, 3, 2, 1, 1), (6, 4, 2, 1, 1), (9, 3, 1, 2, 2)]:
        weight = torch.randn(2, 3, k, k, dtype=torch.float64, generator=generator)  # Conv2d(3 -> 2)
        x = torch.randn(
            1, 3, size, size, dtype=torch.float64, generator=generator, requires_grad=True
        )
        y = F.conv2d(x, weight, stride=s, padding=p, dilation=d)
        g = torch.randn_like(y)
        (grad,) = torch.autograd.grad(y, x, g)
        op = ca.output_padding_to_invert(size, k, s, p, d)
        transposed = F.conv_transpose2d(
            g, weight, stride=s, padding=p, output_padding=op, dilation=d
        )
        torch.testing.assert_close(grad, transposed)
        matrix = up.conv2d_matrix(weight, (size, size), s, p, d)
        assert matrix.shape == (y.numel(), x.numel())
        torch.testing.assert_close(matrix @ x.detach().flatten(), y.detach().flatten())
        torch.testing.assert_close(matrix.T @ g.flatten(), transposed.flatten())


def test_overlap_count_checkerboard_only_when_kernel_not_divisible_by_stride():
    uneven = up.overlap_count(6, 3, 2, crop=2)
    even = up.overlap_count(6, 4, 2, crop=2)
    assert uneven.min() < uneven.max()
    assert even.min() == even.max() == 4
    assert up.overlap_count(4, 3, 2).shape == (9, 9)
    deeper = up.overlap_count(4, 3, 2, layers=2, crop=6)
    assert deeper.max() / deeper.min() > uneven.max() / uneven.min() - 1e-6
    with pytest.raises(ValueError, match="stride"):
        up.overlap_count(4, 3, 0)


# ---------------------------------------------------------------- bilinear up-sampling
@pytest.mark.parametrize("factor", [2, 3, 4, 8])
def test_bilinear_upsampler_equals_interpolate_inside(factor):
    x = torch.rand(2, 3, 6, 5)
    layer = up.bilinear_upsampler(3, factor)
    got = layer(x)
    expected = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert got.shape == expected.shape == (2, 3, 6 * factor, 5 * factor)
    b = up.border_rows(factor)
    torch.testing.assert_close(
        got[..., b : -b or None, b : -b or None], expected[..., b : -b or None, b : -b or None]
    )
    if b:
        # the border rows really differ (zeros pulled in, values darker)
        assert (got[..., :b, b:-b] < expected[..., :b, b:-b] - 1e-4).all()
        assert (got[..., -b:, b:-b] < expected[..., -b:, b:-b] - 1e-4).all()
        assert (got[..., b, b:-b] - expected[..., b, b:-b]).abs().max() < 1e-5


def test_bilinear_upsampler_learnable_flag():
    assert up.bilinear_upsampler(2, 2).weight.requires_grad
    frozen = up.bilinear_upsampler(2, 2, learnable=False)
    assert not frozen.weight.requires_grad and frozen.bias is None
    with pytest.raises(ValueError, match="factor"):
        up.bilinear_upsampler(2, 0)


def test_resize_conv_shape_and_no_checkerboard_on_constant_input():
    layer = up.resize_conv(2, 3, 2)
    with torch.no_grad():
        layer[1].weight.fill_(1.0)
        layer[1].bias.zero_()
        out = layer(torch.ones(1, 2, 5, 5))
    assert out.shape == (1, 3, 10, 10)
    inner = out[..., 1:-1, 1:-1]
    assert inner.min() == inner.max()
    with pytest.raises(ValueError, match="odd"):
        up.resize_conv(2, 3, 2, kernel_size=4)


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
    assert len(axes[0].patches) > 25
    with pytest.raises(ValueError, match="output_index"):
        ca.draw_convolution(axes[0], 5, 3, output_index=(3, 0))
    plt.close(fig)
    fig = ca.arithmetic_figure(
        [dict(input_size=4, kernel_size=3), dict(input_size=2, kernel_size=3, transposed=True)]
    )
    assert len(fig.axes) == 2
    plt.close(fig)
