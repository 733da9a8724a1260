"""Unit tests for course_utils.segmentation.convolutionalization: crop classifier -> FCN."""

import pytest
import torch
from torch import nn

from course_utils.segmentation import convolutionalization as cz


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- linear_to_conv
def test_linear_to_conv_1x1_matches_linear_at_every_pixel():
    torch.manual_seed(0)
    linear = nn.Linear(40, 10)
    conv = cz.linear_to_conv(linear, 40)
    assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1)
    assert conv.in_channels == 40 and conv.out_channels == 10
    x = torch.randn(2, 40, 3, 5)
    expected = linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    assert torch.allclose(conv(x), expected, atol=1e-5)


def test_linear_to_conv_kxk_reads_a_flattened_map():
    torch.manual_seed(1)
    linear = nn.Linear(6 * 3 * 2, 7)
    conv = cz.linear_to_conv(linear, 6, (3, 2))
    assert conv.kernel_size == (3, 2) and conv.weight.shape == (7, 6, 3, 2)
    x = torch.randn(4, 6, 3, 2)
    assert torch.allclose(conv(x)[:, :, 0, 0], linear(x.flatten(1)), atol=1e-5)
    # the weights are shared, not retrained: same numbers, reshaped (channel-major, no transpose)
    assert torch.equal(conv.weight.flatten(1), linear.weight)
    assert torch.equal(conv.bias, linear.bias)
    assert torch.equal(conv.weight[2, 1, 0, 1], linear.weight[2, 1 * 6 + 0 * 2 + 1])


def test_linear_to_conv_returns_a_copy_not_a_view():
    linear = nn.Linear(4, 2)
    conv = cz.linear_to_conv(linear, 4)
    before = linear.weight.detach().clone()
    with torch.no_grad():
        conv.weight.add_(1.0)
    assert torch.equal(linear.weight, before)


def test_linear_to_conv_without_bias_and_keeps_dtype():
    linear = nn.Linear(8, 3, bias=False).double()
    conv = cz.linear_to_conv(linear, 8)
    assert conv.bias is None and conv.weight.dtype == torch.float64
    x = torch.randn(1, 8, 2, 2, dtype=torch.float64)
    assert torch.allclose(conv(x), linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


def test_linear_to_conv_rejects_wrong_sizes():
    with pytest.raises(ValueError, match="in_features"):
        cz.linear_to_conv(nn.Linear(10, 2), 3, 2)
    with pytest.raises(TypeError, match="nn.Linear"):
        cz.linear_to_conv(nn.Conv2d(3, 3, 1), 3)
    with pytest.raises(TypeError, match="kernel_size"):
        cz.linear_to_conv(nn.Linear(4, 2), 4, 1.5)
    with pytest.raises(ValueError, match="kernel_size"):
        cz.linear_to_conv(nn.Linear(4, 2), 4, (1, 0))
    with pytest.raises(TypeError, match="in_channels"):
        cz.linear_to_conv(nn.Linear(4, 2), 4.0)
    with pytest.raises(ValueError, match="in_channels"):
        cz.linear_to_conv(nn.Linear(4, 2), 0)


# ---------------------------------------------------------------- the crop classifier
def test_crop_classifier_layers_shapes_and_stride():
    model = cz.crop_classifier(num_classes=5, crop_size=40, widths=(8, 8), hidden=16)
    assert model(torch.rand(3, 3, 40, 40)).shape == (3, 5)
    # 40 -> conv 38 -> pool 19 -> conv 17 -> pool 8: the first Linear reads 8 * 8 * 8 values
    linears = [layer for layer in model if isinstance(layer, nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(8 * 8 * 8, 16), (16, 5)]
    assert all(conv.padding == (0, 0) for conv in model if isinstance(conv, nn.Conv2d))
    assert cz.feature_stride(model) == 4
    assert cz.feature_stride(cz.crop_classifier()) == 8


def test_crop_classifier_rejects_bad_settings():
    with pytest.raises(ValueError, match="too small"):
        cz.crop_classifier(crop_size=8, widths=(8, 8, 8))
    with pytest.raises(TypeError, match="num_classes"):
        cz.crop_classifier(num_classes=4.0)
    with pytest.raises(ValueError, match="hidden"):
        cz.crop_classifier(hidden=0)
    with pytest.raises(ValueError, match=r"widths\[i\]"):
        cz.crop_classifier(widths=(8, -1))


# ---------------------------------------------------------------- convolutionalize
def test_convolutionalized_classifier_equals_sliding_window():
    torch.manual_seed(0)
    classifier = cz.crop_classifier(num_classes=4, crop_size=32).eval()
    dense = cz.convolutionalize(classifier, 32).eval()
    image = torch.rand(3, 96, 80, generator=_seeded())
    stride = cz.feature_stride(classifier)
    assert stride == 8
    with torch.no_grad():
        slow = cz.sliding_window_scores(classifier, image, 32, stride)
        fast = dense(image[None])[0]
    assert slow.shape == fast.shape == (4, (96 - 32) // 8 + 1, (80 - 32) // 8 + 1)
    assert torch.allclose(slow, fast, atol=1e-5)
    # on exactly one crop the dense output is the classifier's logits, as a 1x1 map
    with torch.no_grad():
        assert torch.allclose(
            dense(image[None, :, :32, :32])[:, :, 0, 0],
            classifier(image[None, :, :32, :32]),
            atol=1e-5,
        )


def test_convolutionalize_converts_each_linear_and_keeps_the_rest():
    classifier = cz.crop_classifier(crop_size=32)
    dense = cz.convolutionalize(classifier, 32)
    convs = [layer for layer in dense if isinstance(layer, nn.Conv2d)]
    # three feature convolutions, then fc6 as a 2x2 convolution and the classifier as 1x1
    assert [conv.kernel_size for conv in convs] == [(3, 3)] * 3 + [(2, 2), (1, 1)]
    assert len(dense) == len(classifier) - 1  # only nn.Flatten is gone
    assert sum(isinstance(layer, nn.ReLU) for layer in dense) == 4


def test_convolutionalize_leaves_the_classifier_alone_and_checks_structure():
    classifier = cz.crop_classifier(crop_size=32)
    before = {k: v.clone() for k, v in classifier.state_dict().items()}
    dense = cz.convolutionalize(classifier, 32)
    assert not any(isinstance(layer, (nn.Linear, nn.Flatten)) for layer in dense)
    with torch.no_grad():
        dense[-1].weight.add_(1.0)
        dense[0].weight.add_(1.0)
    assert all(torch.equal(before[k], v) for k, v in classifier.state_dict().items())
    with pytest.raises(ValueError, match="Flatten"):
        cz.convolutionalize(nn.Sequential(nn.Linear(3, 2)), 32)
    with pytest.raises(ValueError, match="nn.Linear"):
        cz.convolutionalize(nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten()), 8)
    with pytest.raises(TypeError):
        cz.convolutionalize(nn.Linear(3, 2), 32)


def test_convolutionalize_accepts_a_rectangular_crop():
    torch.manual_seed(3)
    classifier = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 10, 2)).eval()
    dense = cz.convolutionalize(classifier, (8, 12)).eval()
    crop = torch.rand(1, 3, 8, 12, generator=_seeded(3))
    with torch.no_grad():
        assert torch.allclose(dense(crop)[:, :, 0, 0], classifier(crop), atol=1e-5)


# ---------------------------------------------------------------- sliding window
def test_sliding_window_scores_runs_the_classifier_on_each_window():
    image = torch.arange(3 * 6 * 7, dtype=torch.float32).reshape(3, 6, 7)

    class WindowMean(nn.Module):
        def forward(self, crops):  # (N, 3, w, w) -> (N, 2): mean and top-left value
            return torch.stack([crops.mean((1, 2, 3)), crops[:, 0, 0, 0]], dim=1)

    scores = cz.sliding_window_scores(WindowMean(), image, window=3, stride=2)
    assert scores.shape == (2, 2, 3)  # rows 0, 2; columns 0, 2, 4
    for i, top in enumerate((0, 2)):
        for j, left in enumerate((0, 2, 4)):
            crop = image[:, top : top + 3, left : left + 3]
            assert scores[0, i, j] == pytest.approx(float(crop.mean()))
            assert scores[1, i, j] == image[0, top, left]
    batched = cz.sliding_window_scores(WindowMean(), image, 3, 2, batch_size=1)
    assert torch.equal(batched, scores)


def test_sliding_window_rejects_large_window_and_bad_settings():
    with pytest.raises(ValueError, match="larger"):
        cz.sliding_window_scores(nn.Identity(), torch.rand(3, 16, 16), 32, 8)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        cz.sliding_window_scores(nn.Identity(), torch.rand(1, 3, 16, 16), 8, 8)
    with pytest.raises(ValueError, match="stride"):
        cz.sliding_window_scores(nn.Identity(), torch.rand(3, 16, 16), 8, 0)
    with pytest.raises(TypeError, match="window"):
        cz.sliding_window_scores(nn.Identity(), torch.rand(3, 16, 16), 8.0, 8)
