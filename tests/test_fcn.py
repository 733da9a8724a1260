"""Unit tests for course_utils.segmentation.fcn: convolutionalization, bilinear up-sampling, the FCN variants."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.segmentation import fcn


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- linear_to_conv
def test_linear_to_conv_1x1_matches_linear_at_every_pixel():
    torch.manual_seed(0)
    linear = nn.Linear(40, 10)
    conv = fcn.linear_to_conv(linear, 40)
    assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1)
    x = torch.randn(2, 40, 3, 5)
    expected = linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    assert torch.allclose(conv(x), expected, atol=1e-5)


def test_linear_to_conv_kxk_reads_a_flattened_map():
    torch.manual_seed(1)
    linear = nn.Linear(6 * 3 * 2, 7)
    conv = fcn.linear_to_conv(linear, 6, (3, 2))
    x = torch.randn(4, 6, 3, 2)
    assert torch.allclose(conv(x)[:, :, 0, 0], linear(x.flatten(1)), atol=1e-5)
    # the weights are shared, not retrained: same numbers, reshaped
    assert torch.equal(conv.weight.flatten(1), linear.weight)
    assert torch.equal(conv.bias, linear.bias)


def test_linear_to_conv_without_bias_and_keeps_dtype():
    linear = nn.Linear(8, 3, bias=False).double()
    conv = fcn.linear_to_conv(linear, 8)
    assert conv.bias is None and conv.weight.dtype == torch.float64


def test_linear_to_conv_rejects_wrong_sizes():
    with pytest.raises(ValueError, match="in_features"):
        fcn.linear_to_conv(nn.Linear(10, 2), 3, 2)
    with pytest.raises(TypeError, match="nn.Linear"):
        fcn.linear_to_conv(nn.Conv2d(3, 3, 1), 3)
    with pytest.raises(TypeError, match="kernel_size"):
        fcn.linear_to_conv(nn.Linear(4, 2), 4, 1.5)


# ---------------------------------------------------------------- convolutionalize
def test_convolutionalized_classifier_equals_sliding_window():
    torch.manual_seed(0)
    classifier = fcn.crop_classifier(num_classes=4, crop_size=32).eval()
    dense = fcn.convolutionalize(classifier, 32).eval()
    image = torch.rand(3, 96, 80, generator=_seeded())
    stride = fcn.feature_stride(classifier)
    assert stride == 8
    with torch.no_grad():
        slow = fcn.sliding_window_scores(classifier, image, 32, stride)
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


def test_convolutionalize_leaves_the_classifier_alone_and_checks_structure():
    classifier = fcn.crop_classifier(crop_size=32)
    before = {k: v.clone() for k, v in classifier.state_dict().items()}
    dense = fcn.convolutionalize(classifier, 32)
    assert not any(isinstance(layer, (nn.Linear, nn.Flatten)) for layer in dense)
    with torch.no_grad():
        dense[-1].weight.add_(1.0)
    assert all(torch.equal(before[k], v) for k, v in classifier.state_dict().items())
    with pytest.raises(ValueError, match="Flatten"):
        fcn.convolutionalize(nn.Sequential(nn.Linear(3, 2)), 32)
    with pytest.raises(ValueError, match="nn.Linear"):
        fcn.convolutionalize(nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten()), 8)
    with pytest.raises(TypeError):
        fcn.convolutionalize(nn.Linear(3, 2), 32)


def test_crop_classifier_shapes_and_too_small_crop():
    model = fcn.crop_classifier(num_classes=5, crop_size=40, widths=(8, 8), hidden=16)
    assert model(torch.rand(3, 3, 40, 40)).shape == (3, 5)
    with pytest.raises(ValueError, match="too small"):
        fcn.crop_classifier(crop_size=8, widths=(8, 8, 8))


def test_sliding_window_rejects_large_window():
    with pytest.raises(ValueError, match="larger"):
        fcn.sliding_window_scores(nn.Identity(), torch.rand(3, 16, 16), 32, 8)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        fcn.sliding_window_scores(nn.Identity(), torch.rand(1, 3, 16, 16), 8, 8)


# ---------------------------------------------------------------- bilinear up-sampling
@pytest.mark.parametrize("factor", [2, 3, 4, 8])
def test_bilinear_kernel_matches_interpolate_inside(factor):
    x = torch.rand(1, 3, 5, 6, generator=_seeded(factor))
    weight = fcn.bilinear_kernel(3, factor)
    assert weight.shape == (3, 3, 2 * factor - factor % 2, 2 * factor - factor % 2)
    out = F.conv_transpose2d(x, weight, stride=factor, padding=factor // 2)
    ref = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert out.shape == ref.shape
    border = factor  # transposed conv sees zeros beyond the edge
    inner = (slice(None), slice(None), slice(border, -border), slice(border, -border))
    assert torch.allclose(out[inner], ref[inner], atol=1e-5)
    assert not torch.allclose(out[..., 0, 0], ref[..., 0, 0])


def test_bilinear_kernel_is_per_channel_and_rejects_bad_factor():
    weight = fcn.bilinear_kernel(4, 2)
    off_diagonal = weight.clone()
    off_diagonal[range(4), range(4)] = 0
    assert off_diagonal.abs().sum() == 0
    assert torch.allclose(
        weight[0, 0].sum(), torch.tensor(4.0)
    )  # factor**2: each input spreads over f*f outputs
    with pytest.raises(ValueError):
        fcn.bilinear_kernel(3, 0)
    with pytest.raises(TypeError):
        fcn.bilinear_kernel(3, 2.0)


@pytest.mark.parametrize("mode", fcn.UPSAMPLE_MODES)
def test_upsample_modes(mode):
    layer = fcn.Upsample(3, 4, mode)
    x = torch.rand(2, 3, 4, 4, generator=_seeded())
    out = layer(x)
    assert out.shape == (2, 3, 16, 16)
    ref = F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
    assert torch.allclose(out[..., 4:-4, 4:-4], ref[..., 4:-4, 4:-4], atol=1e-5)
    assert (sum(p.numel() for p in layer.parameters()) > 0) == (mode == "learned")
    assert fcn.Upsample(3, 1, mode)(x) is x
    with pytest.raises(ValueError, match="mode"):
        fcn.Upsample(3, 2, "nearest")


# ---------------------------------------------------------------- backbone and FCN
def test_backbone_strides_and_dilation():
    backbone = fcn.TinyBackbone(channels=(4, 4, 8, 8, 8))
    features = backbone(torch.rand(1, 3, 64, 64))
    for name, stride in backbone.strides.items():
        assert features[name].shape[-1] == 64 // stride
        assert features[name].shape[1] == backbone.out_channels[name]
    assert backbone.total_stride == 32
    dilated = fcn.TinyBackbone(channels=(4, 4, 8, 8, 8), replace_stride_with_dilation=(True, True))
    assert dilated.total_stride == 8 and dilated.dilation == 4
    assert dilated(torch.rand(1, 3, 64, 64))["pool5"].shape[-1] == 8
    with pytest.raises(ValueError, match="5 stage"):
        fcn.TinyBackbone(channels=(4, 4))


@pytest.mark.parametrize("variant,stride", [("32s", 32), ("16s", 16), ("8s", 8)])
@pytest.mark.parametrize("upsample", fcn.UPSAMPLE_MODES)
def test_fcn_variants_output_full_resolution(variant, stride, upsample):
    model = fcn.fcn(5, variant, channels=(4, 4, 8, 8, 8), head_channels=8, upsample=upsample)
    assert model.output_stride == stride
    out = model(torch.rand(2, 3, 64, 96))
    assert out.shape == (2, 5, 64, 96)
    out.sum().backward()
    assert model.backbone.stages["pool1"][0][0].weight.grad is not None


def test_fcn_32s_output_is_an_upsampled_coarse_map():
    model = fcn.fcn(3, "32s", channels=(4, 4, 8, 8, 8), head_channels=8).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        coarse, _ = model.front_end(x)
        out = model(x)
    assert coarse.shape == (1, 3, 2, 2)
    assert torch.allclose(
        out, F.interpolate(coarse, size=(64, 64), mode="bilinear", align_corners=False)
    )


def test_staged_init_starts_from_the_coarser_prediction():
    torch.manual_seed(0)
    small = dict(channels=(4, 4, 8, 8, 8), head_channels=8)
    m32 = fcn.fcn(3, "32s", **small).eval()
    m16 = fcn.fcn(3, "16s", **small).init_from(m32).eval()
    m8 = fcn.fcn(3, "8s", **small).init_from(m16).eval()
    x = torch.rand(2, 3, 64, 64)

    def up(t, f):
        return F.interpolate(t, scale_factor=f, mode="bilinear", align_corners=False)

    with torch.no_grad():
        coarse, _ = m32.front_end(x)
        b, c = m16(x), m8(x)
    # zero-initialised skip scorers: the new model predicts what the old one did, up-sampled in steps
    assert torch.allclose(b, up(up(coarse, 2), 16), atol=1e-5)
    assert torch.allclose(c, up(up(up(coarse, 2), 2), 8), atol=1e-5)
    assert torch.equal(m8.head[0].weight, m32.head[0].weight)
    with pytest.raises(ValueError, match="another architecture"):
        fcn.fcn(3, "16s", channels=(8, 8, 8, 8, 8), head_channels=8).init_from(m32)
    with pytest.raises(TypeError, match="FCN"):
        m16.init_from(nn.Linear(2, 2))


def test_frozen_front_end_trains_only_the_skips():
    small = dict(channels=(4, 4, 8, 8, 8), head_channels=8)
    model = fcn.fcn(3, "16s", **small).freeze_front_end()
    model.train()
    assert not model.backbone.training and not model.head.training and model.score_skips.training
    trainable = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"score_skips"}
    running = model.backbone.stages["pool1"][0][1].running_mean.clone()
    model(torch.rand(2, 3, 64, 64)).sum().backward()
    assert torch.equal(running, model.backbone.stages["pool1"][0][1].running_mean)
    assert model.score_skips["pool4"].weight.grad is not None
    model.freeze_front_end(False)
    assert model.backbone.training and all(p.requires_grad for p in model.parameters())


def test_fcn_context_hook_sees_front_end_scores():
    seen = {}

    class Probe(nn.Module):
        def forward(self, scores):
            seen["shape"] = tuple(scores.shape)
            return scores * 0

    model = fcn.fcn(3, "32s", channels=(4, 4, 8, 8, 8), head_channels=8, context=Probe())
    out = model(torch.rand(1, 3, 64, 64))
    assert seen["shape"] == (1, 3, 2, 2)
    assert torch.count_nonzero(out) == 0
    dilated = fcn.fcn(
        3,
        "32s",
        channels=(4, 4, 8, 8, 8),
        head_channels=8,
        context=Probe(),
        replace_stride_with_dilation=(True, True),
    )
    assert dilated(torch.rand(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    assert seen["shape"] == (1, 3, 8, 8) and dilated.output_stride == 8


def test_fcn_rejects_bad_arguments_and_sizes():
    with pytest.raises(ValueError, match="variant"):
        fcn.fcn(3, "4s")
    with pytest.raises(ValueError, match="upsample"):
        fcn.fcn(3, upsample="nearest")
    with pytest.raises(TypeError, match="context"):
        fcn.fcn(3, context=lambda x: x)
    model = fcn.fcn(3, channels=(4, 4, 8, 8, 8), head_channels=8)
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.rand(1, 3, 60, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(3, 64, 64))


def test_helpers_count_predict_receptive_field():
    model = fcn.fcn(3, "8s", channels=(4, 4, 8, 8, 8), head_channels=8)
    assert fcn.count_parameters(model) == sum(p.numel() for p in model.parameters())
    model.train()
    labels = fcn.predict_semantic(model, torch.rand(2, 3, 64, 64))
    assert labels.shape == (2, 64, 64) and labels.dtype == torch.int64 and model.training
    # stem 3 + conv/pool stages + 3x3 head at stride 32: bigger than 32 and grows with dilation
    rf = fcn.receptive_field(model)
    dilated = fcn.fcn(
        3,
        "8s",
        channels=(4, 4, 8, 8, 8),
        head_channels=8,
        replace_stride_with_dilation=(True, True),
    )
    assert 32 < rf and fcn.receptive_field(dilated) > 32


def test_boundary_mask_marks_pixels_near_class_edges():
    semantic = torch.zeros(10, 12, dtype=torch.int64)
    semantic[:, 6:] = 3  # a vertical edge between columns 5 and 6
    mask = fcn.boundary_mask(semantic, width=2)
    assert mask.dtype == torch.bool and mask.shape == semantic.shape
    assert mask[:, 4:8].all() and not mask[:, :4].any() and not mask[:, 8:].any()
    batch = fcn.boundary_mask(torch.stack([semantic, torch.ones_like(semantic)]), width=1)
    assert batch[0, :, 5:7].all() and batch[0].sum() == 20 and not batch[1].any()
    with pytest.raises(TypeError):
        fcn.boundary_mask(semantic.float())
    with pytest.raises(ValueError):
        fcn.boundary_mask(semantic[0])
