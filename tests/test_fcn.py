"""Unit tests for course_utils.segmentation.fcn (FCN-32s/16s/8s, staged training, helpers) and
course_utils.segmentation.backbone (the five-stage front-end)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.segmentation import fcn
from course_utils.segmentation import receptive_field as rf
from course_utils.segmentation.backbone import TinyBackbone, conv_bn_relu
from course_utils.segmentation.upsampling import UPSAMPLE_MODES, Upsample

SMALL = dict(channels=(4, 4, 8, 8, 8), head_channels=8)


def _up(t: torch.Tensor, factor: int) -> torch.Tensor:
    return F.interpolate(t, scale_factor=factor, mode="bilinear", align_corners=False)


class _FrontEnd(nn.Module):
    """The head's scores of an FCN as a plain module (for the gradient measurement)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        return self.model.head(self.model.backbone(images)["pool5"])


# ---------------------------------------------------------------- the backbone
def test_backbone_strides_and_dilation():
    backbone = TinyBackbone(channels=(4, 4, 8, 8, 8))
    features = backbone(torch.rand(1, 3, 64, 64))
    assert list(features) == ["pool1", "pool2", "pool3", "pool4", "pool5"]
    assert backbone.strides == {"pool1": 2, "pool2": 4, "pool3": 8, "pool4": 16, "pool5": 32}
    for name, stride in backbone.strides.items():
        assert features[name].shape[-1] == 64 // stride
        assert features[name].shape[1] == backbone.out_channels[name]
    assert backbone.total_stride == 32 and backbone.dilation == 1
    dilated = TinyBackbone(channels=(4, 4, 8, 8, 8), replace_stride_with_dilation=(True, True))
    assert dilated.total_stride == 8 and dilated.dilation == 4
    assert dilated.strides == {"pool1": 2, "pool2": 4, "pool3": 8, "pool4": 8, "pool5": 8}
    assert dilated.stages["pool5"][0][0].dilation == (2, 2)
    assert dilated(torch.rand(1, 3, 64, 64))["pool5"].shape[-1] == 8
    half = TinyBackbone(channels=(4, 4, 8, 8, 8), replace_stride_with_dilation=(False, True))
    assert half.total_stride == 16 and half.dilation == 2


def test_backbone_stages_and_parameter_names():
    backbone = TinyBackbone(channels=(4, 4, 8, 8, 8), convs_per_stage=2)
    stem = backbone.stages["pool1"]
    assert stem[0][0].stride == (2, 2) and len(stem) == 2  # no pool after the stem
    assert (
        isinstance(backbone.stages["pool2"][-1], nn.MaxPool2d)
        and len(backbone.stages["pool2"]) == 3
    )
    # checkpoints depend on these names
    assert "stages.pool1.0.0.weight" in backbone.state_dict()
    assert "stages.pool5.1.1.running_mean" in backbone.state_dict()


def test_backbone_rejects_bad_settings():
    with pytest.raises(ValueError, match="5 stage"):
        TinyBackbone(channels=(4, 4))
    with pytest.raises(ValueError, match="convs_per_stage"):
        TinyBackbone(convs_per_stage=0)
    with pytest.raises(TypeError, match=r"channels\[i\]"):
        TinyBackbone(channels=(4, 4, 8, 8, 8.0))
    with pytest.raises(ValueError, match="replace_stride_with_dilation"):
        TinyBackbone(replace_stride_with_dilation=(True,))


def test_conv_bn_relu_keeps_the_size_at_any_dilation():
    for dilation in (1, 2, 3):
        block = conv_bn_relu(2, 5, dilation)
        assert block(torch.rand(1, 2, 9, 11)).shape == (1, 5, 9, 11)
        assert block[0].bias is None and isinstance(block[1], nn.BatchNorm2d)
    assert conv_bn_relu(2, 5, stride=2)(torch.rand(1, 2, 8, 8)).shape == (1, 5, 4, 4)


# ---------------------------------------------------------------- the FCN variants
@pytest.mark.parametrize("variant,stride", [("32s", 32), ("16s", 16), ("8s", 8)])
@pytest.mark.parametrize("upsample", UPSAMPLE_MODES)
def test_fcn_variants_output_full_resolution(variant, stride, upsample):
    model = fcn.fcn(5, variant, upsample=upsample, **SMALL)
    assert model.output_stride == stride
    assert (
        set(model.score_skips)
        == {"32s": set(), "16s": {"pool4"}, "8s": {"pool4", "pool3"}}[variant]
    )
    out = model(torch.rand(2, 3, 64, 96))
    assert out.shape == (2, 5, 64, 96)
    out.sum().backward()
    assert model.backbone.stages["pool1"][0][0].weight.grad is not None
    learned = [p for name, p in model.named_parameters() if "upscore" in name]
    assert (len(learned) > 0) == (upsample == "learned")


def test_fcn_32s_output_is_an_upsampled_coarse_map():
    model = fcn.fcn(3, "32s", **SMALL).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        coarse, features = model.front_end(x)
        out = model(x)
    assert coarse.shape == (1, 3, 2, 2) and features["pool5"].shape == (1, 8, 2, 2)
    assert torch.allclose(
        out, F.interpolate(coarse, size=(64, 64), mode="bilinear", align_corners=False)
    )


def test_fcn_16s_adds_the_pool4_scores_before_upsampling():
    torch.manual_seed(0)
    model = fcn.fcn(3, "16s", **SMALL).eval()
    with torch.no_grad():
        model.score_skips["pool4"].weight.normal_()
        model.score_skips["pool4"].bias.fill_(0.5)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        coarse, features = model.front_end(x)
        expected = _up(_up(coarse, 2) + model.score_skips["pool4"](features["pool4"]), 16)
        assert torch.allclose(model(x), expected, atol=1e-5)


def test_staged_init_starts_from_the_coarser_prediction():
    torch.manual_seed(0)
    m32 = fcn.fcn(3, "32s", **SMALL).eval()
    m16 = fcn.fcn(3, "16s", **SMALL).init_from(m32).eval()
    m8 = fcn.fcn(3, "8s", **SMALL).init_from(m16).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        coarse, _ = m32.front_end(x)
        b, c = m16(x), m8(x)
    # zero-initialised skip scorers: the new model predicts what the old one did, up-sampled
    # in steps
    assert torch.allclose(b, _up(_up(coarse, 2), 16), atol=1e-5)
    assert torch.allclose(c, _up(_up(_up(coarse, 2), 2), 8), atol=1e-5)
    assert torch.equal(m8.head[0].weight, m32.head[0].weight)
    assert torch.equal(
        m8.backbone.stages["pool3"][0][1].running_var,
        m32.backbone.stages["pool3"][0][1].running_var,
    )
    assert torch.count_nonzero(m8.score_skips["pool3"].weight) == 0
    with pytest.raises(ValueError, match="another architecture"):
        fcn.fcn(3, "16s", channels=(8, 8, 8, 8, 8), head_channels=8).init_from(m32)
    with pytest.raises(TypeError, match="FCN"):
        m16.init_from(nn.Linear(2, 2))


def test_frozen_front_end_trains_only_the_skips():
    model = fcn.fcn(3, "16s", **SMALL).freeze_front_end()
    assert model.front_end_frozen
    model.train()
    assert not model.backbone.training and not model.head.training and model.score_skips.training
    trainable = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"score_skips"}
    running = model.backbone.stages["pool1"][0][1].running_mean.clone()
    model(torch.rand(2, 3, 64, 64)).sum().backward()
    assert torch.equal(running, model.backbone.stages["pool1"][0][1].running_mean)
    assert model.score_skips["pool4"].weight.grad is not None
    assert model.head[0].weight.grad is None
    model.freeze_front_end(False)
    assert not model.front_end_frozen
    assert model.backbone.training and all(p.requires_grad for p in model.parameters())


def test_fcn_context_hook_sees_front_end_scores():
    seen = {}

    class Probe(nn.Module):
        def forward(self, scores):
            seen["shape"] = tuple(scores.shape)
            return scores * 0

    model = fcn.fcn(3, "32s", context=Probe(), **SMALL)
    out = model(torch.rand(1, 3, 64, 64))
    assert seen["shape"] == (1, 3, 2, 2)
    assert torch.count_nonzero(out) == 0
    dilated = fcn.fcn(3, "32s", context=Probe(), replace_stride_with_dilation=(True, True), **SMALL)
    assert dilated(torch.rand(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    assert seen["shape"] == (1, 3, 8, 8) and dilated.output_stride == 8
    assert dilated.head[0].dilation == (4, 4)


def test_fcn_rejects_bad_arguments_and_sizes():
    with pytest.raises(ValueError, match="variant"):
        fcn.fcn(3, "4s")
    with pytest.raises(ValueError, match="upsample"):
        fcn.fcn(3, upsample="nearest")
    with pytest.raises(TypeError, match="context"):
        fcn.fcn(3, context=lambda x: x)
    with pytest.raises(ValueError, match="dropout"):
        fcn.fcn(3, dropout=1.0)
    with pytest.raises(TypeError, match="num_classes"):
        fcn.fcn(3.0)
    with pytest.raises(TypeError, match="backbone"):
        fcn.FCN(3, backbone=nn.Identity())
    model = fcn.fcn(3, **SMALL)
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.rand(1, 3, 60, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(3, 64, 64))


# ---------------------------------------------------------------- the fusion hook
def test_fusion_hook_runs_the_given_function_with_the_same_layers():
    """fusion= replaces only the decoder's code: same parameters, same state_dict keys, the
    reference's output (and gradients) when the function computes the same thing."""
    calls = []

    def own_fusion(scores, features, skips, upscore, score_skips, upscore_final):
        calls.append(tuple(skips))
        for name in skips:
            skip = score_skips[name](features[name])
            scores = upscore[name](scores)[..., : skip.shape[-2], : skip.shape[-1]] + skip
        return upscore_final(scores)

    torch.manual_seed(0)
    reference = fcn.fcn(3, "8s", upsample="learned", **SMALL)
    assert reference.fusion is fcn.fuse_skips
    mine = fcn.fcn(3, "8s", upsample="learned", fusion=own_fusion, **SMALL)
    assert mine.fusion is own_fusion
    assert list(mine.state_dict()) == list(reference.state_dict())
    assert {key for key in reference.state_dict() if "skip" in key or "upscore" in key} == {
        "score_skips.pool4.weight",
        "score_skips.pool4.bias",
        "score_skips.pool3.weight",
        "score_skips.pool3.bias",
        "upscore.pool4.deconv.weight",
        "upscore.pool3.deconv.weight",
        "upscore_final.deconv.weight",
    }
    mine.load_state_dict(reference.state_dict())
    with torch.no_grad():
        for layer in (*mine.score_skips.values(), *reference.score_skips.values()):
            layer.weight.fill_(0.1)  # not zero, so that the skips count
    x = torch.rand(2, 3, 64, 64)
    out, want = mine.eval()(x), reference.eval()(x)
    assert calls == [("pool4", "pool3")]
    torch.testing.assert_close(out, want)
    out.square().sum().backward()
    want.square().sum().backward()
    torch.testing.assert_close(
        mine.score_skips["pool3"].weight.grad, reference.score_skips["pool3"].weight.grad
    )
    with pytest.raises(TypeError, match="fusion"):
        fcn.fcn(3, fusion="fuse_skips")


# ---------------------------------------------------------------- helpers
def test_count_parameters_counts_only_what_trains():
    model = fcn.fcn(3, "8s", **SMALL)
    total = sum(p.numel() for p in model.parameters())
    assert fcn.count_parameters(model) == total
    model.freeze_front_end()
    skips = sum(p.numel() for p in model.score_skips.parameters())
    assert fcn.count_parameters(model) == skips == 8 * 3 + 3 + 8 * 3 + 3
    assert fcn.count_parameters(nn.Linear(4, 2)) == 10


def test_receptive_field_of_the_front_end():
    # stem 3 (jump 2); conv + pool per stage: 7, 9 | 17, 21 | 37, 45 | 77, 93 (jump 32); head +64
    model = fcn.fcn(3, "8s")
    assert fcn.receptive_field(model) == 157
    # dilated: no pools after stage 3 (jump 8); stage 5 dilation 2, head dilation 4
    dilated = fcn.fcn(3, "8s", replace_stride_with_dilation=(True, True))
    assert fcn.receptive_field(dilated) == 21 + 16 + 32 + 64
    # the formula agrees with the gradient measurement
    small = fcn.fcn(3, "32s", replace_stride_with_dilation=(True, True), **SMALL)
    expected = fcn.receptive_field(small)
    assert rf.measure_receptive_field(_FrontEnd(small).eval(), 288, in_channels=3) == (
        expected,
        expected,
    )
    with pytest.raises(TypeError, match="FCN"):
        fcn.receptive_field(nn.Conv2d(3, 3, 3))


def test_upsample_layer_builds_every_up_sampling_step():
    built = []

    class Counted(Upsample):
        def __init__(self, channels, factor, mode):
            super().__init__(channels, factor, mode)
            built.append((channels, factor, mode))

    torch.manual_seed(0)
    reference = fcn.fcn(5, "8s", upsample="learned")
    torch.manual_seed(0)
    model = fcn.fcn(5, "8s", upsample="learned", upsample_layer=Counted)
    assert built == [(5, 2, "learned"), (5, 2, "learned"), (5, 8, "learned")]
    assert model.state_dict().keys() == reference.state_dict().keys()
    images = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(model.eval()(images), reference.eval()(images))
    with pytest.raises(TypeError, match="upsample_layer"):
        fcn.fcn(5, upsample_layer="bilinear")
