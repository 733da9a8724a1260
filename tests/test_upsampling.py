"""Unit tests for course_utils.segmentation.upsampling: transposed convolutions three ways and
the bilinear up-sampling layers."""

import pytest
import torch
import torch.nn.functional as F

from course_utils.segmentation import conv_arithmetic as ca
from course_utils.segmentation import upsampling as up


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


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
    assert torch.count_nonzero(out) == 4
    assert up.insert_zeros(x, (1, 2)).shape == (1, 1, 2, 3)
    with pytest.raises(ValueError, match="stride"):
        up.insert_zeros(x, 0)


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
    with pytest.raises(TypeError, match="kernel_size"):
        up.overlap_count(4, 3.0, 2)
    with pytest.raises(ValueError, match="crop"):
        up.overlap_count(4, 3, 2, crop=-1)


def test_overlap_count_values_of_one_layer():
    # kernel 3, stride 2 on 3 pixels: copies at 0-2, 2-4, 4-6 overlap at 2 and 4
    counts = up.overlap_count(3, 3, 2)
    assert counts[0].tolist() == [1.0, 1.0, 2.0, 1.0, 2.0, 1.0, 1.0]
    assert torch.equal(counts, counts[0][:, None] * counts[0][None, :])


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
    layer = up.bilinear_upsampler(2, 2)
    assert layer.weight.requires_grad
    assert layer.stride == (2, 2) and layer.padding == (1, 1) and layer.kernel_size == (4, 4)
    assert torch.equal(layer.weight.detach(), up.bilinear_kernel(2, 2))
    frozen = up.bilinear_upsampler(2, 2, learnable=False)
    assert not frozen.weight.requires_grad and frozen.bias is None
    with pytest.raises(ValueError, match="factor"):
        up.bilinear_upsampler(2, 0)
    with pytest.raises(TypeError, match="channels"):
        up.bilinear_upsampler(2.0, 2)


def test_border_rows():
    assert [up.border_rows(f) for f in (1, 2, 3, 4, 8)] == [0, 1, 1, 2, 4]
    with pytest.raises(ValueError, match="factor"):
        up.border_rows(0)
    with pytest.raises(TypeError, match="factor"):
        up.border_rows(2.0)


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
def test_bilinear_kernel_matches_interpolate_inside(factor):
    x = torch.rand(1, 3, 5, 6, generator=_seeded(factor))
    weight = up.bilinear_kernel(3, factor)
    assert weight.shape == (3, 3, 2 * factor - factor % 2, 2 * factor - factor % 2)
    assert weight.dtype == torch.float32
    out = F.conv_transpose2d(x, weight, stride=factor, padding=factor // 2)
    ref = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert out.shape == ref.shape
    border = factor  # transposed conv sees zeros beyond the edge
    inner = (slice(None), slice(None), slice(border, -border), slice(border, -border))
    assert torch.allclose(out[inner], ref[inner], atol=1e-5)
    assert not torch.allclose(out[..., 0, 0], ref[..., 0, 0])


def test_bilinear_kernel_values_and_rejects_bad_settings():
    weight = up.bilinear_kernel(4, 2)
    off_diagonal = weight.clone()
    off_diagonal[range(4), range(4)] = 0
    assert off_diagonal.abs().sum() == 0
    tent = torch.tensor([0.25, 0.75, 0.75, 0.25])
    assert all(torch.equal(weight[c, c], tent[:, None] * tent[None, :]) for c in range(4))
    odd = torch.tensor([1 / 3, 2 / 3, 1.0, 2 / 3, 1 / 3])
    assert torch.allclose(up.bilinear_kernel(1, 3)[0, 0], odd[:, None] * odd[None, :])
    assert torch.equal(up.bilinear_kernel(2, 1), torch.eye(2)[:, :, None, None])
    with pytest.raises(ValueError, match="factor"):
        up.bilinear_kernel(3, 0)
    with pytest.raises(TypeError, match="factor"):
        up.bilinear_kernel(3, 2.0)
    with pytest.raises(ValueError, match="channels"):
        up.bilinear_kernel(0, 2)


@pytest.mark.parametrize("mode", up.UPSAMPLE_MODES)
def test_upsample_modes(mode):
    layer = up.Upsample(3, 4, mode)
    x = torch.rand(2, 3, 4, 4, generator=_seeded())
    out = layer(x)
    assert out.shape == (2, 3, 16, 16)
    ref = F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
    assert torch.allclose(out[..., 4:-4, 4:-4], ref[..., 4:-4, 4:-4], atol=1e-5)
    assert (sum(p.numel() for p in layer.parameters()) > 0) == (mode == "learned")
    if mode == "learned":
        assert torch.equal(layer.deconv.weight.detach(), up.bilinear_kernel(3, 4))
        assert layer.deconv.weight.requires_grad and layer.deconv.bias is None
    else:
        assert torch.equal(out, ref)
    assert up.Upsample(3, 1, mode)(x) is x
    assert f"mode={mode!r}" in repr(layer)
    with pytest.raises(ValueError, match="mode"):
        up.Upsample(3, 2, "nearest")
    with pytest.raises(TypeError, match="factor"):
        up.Upsample(3, 2.0, mode)


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
    with pytest.raises(TypeError, match="factor"):
        up.resize_conv(2, 3, 2.5)
