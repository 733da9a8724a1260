"""The course's U-Net (``course_utils.segmentation.unet``): milesial/Pytorch-UNet's layout and
parameter count, any input size, ``skips_off`` and the paper's valid sizes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import unet_wrongs as w
from torch import nn

from course_utils.segmentation.unet import (
    DoubleConv,
    Down,
    OutConv,
    UNet,
    Up,
    pad_to,
    skips_off,
    valid_unet_output_size,
    valid_unet_skip_crops,
    valid_unet_stage_sizes,
)


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def _double_conv_parameters(c_in: int, c_out: int, mid: int | None = None) -> int:
    """Two bias-free 3x3 convolutions, each followed by a BatchNorm (scale and shift)."""
    mid = mid or c_out
    return 9 * c_in * mid + 2 * mid + 9 * mid * c_out + 2 * c_out


def _unet_parameters(n_channels: int, n_classes: int, w: int, bilinear: bool) -> int:
    """The slide's UNet counted by hand, part by part."""
    f = 2 if bilinear else 1
    total = _double_conv_parameters(n_channels, w)
    downs = [(w, 2 * w), (2 * w, 4 * w), (4 * w, 8 * w), (8 * w, 16 * w // f)]
    total += sum(_double_conv_parameters(a, b) for a, b in downs)
    for c_in, c_out in [(16 * w, 8 * w // f), (8 * w, 4 * w // f), (4 * w, 2 * w // f), (2 * w, w)]:
        if bilinear:
            total += _double_conv_parameters(c_in, c_out, c_in // 2)
        else:  # 2x2 transposed convolution c_in -> c_in // 2, with bias
            total += 4 * c_in * (c_in // 2) + c_in // 2 + _double_conv_parameters(c_in, c_out)
    return total + w * n_classes + n_classes


# ----------------------------------------------------------------------------------------------
# structure
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_classes", "bilinear", "count"),
    [(2, False, 31_037_698), (3, False, 31_037_763), (2, True, 17_263_042)],
)
def test_width_64_has_milesials_parameter_count(n_classes, bilinear, count):
    """31,037,763 is the width-64 transposed-convolution UNet with 3 classes (2 classes: 65 fewer,
    one fewer 1x1 filter of 64 weights and a bias)."""
    model = UNet(3, n_classes, width=64, bilinear=bilinear)
    assert sum(p.numel() for p in model.parameters()) == count
    assert _unet_parameters(3, n_classes, 64, bilinear) == count


@pytest.mark.parametrize("bilinear", [True, False])
def test_parameter_count_follows_the_width(bilinear):
    for width in (2, 4, 8, 16):
        model = UNet(1, 5, width, bilinear)
        assert sum(p.numel() for p in model.parameters()) == _unet_parameters(1, 5, width, bilinear)


def test_state_dict_keys_are_milesials():
    keys = list(UNet(3, 2, 4, bilinear=False).state_dict())
    for key in (
        "inc.double_conv.0.weight",
        "inc.double_conv.1.running_var",
        "inc.double_conv.4.num_batches_tracked",
        "down1.maxpool_conv.1.double_conv.0.weight",
        "down4.maxpool_conv.1.double_conv.3.weight",
        "up1.up.weight",
        "up1.up.bias",
        "up1.conv.double_conv.0.weight",
        "up4.conv.double_conv.4.bias",
        "outc.conv.weight",
        "outc.conv.bias",
    ):
        assert key in keys, key
    parts = list(dict.fromkeys(k.split(".")[0] for k in keys))
    assert parts == [
        "inc",
        *[f"down{k}" for k in range(1, 5)],
        *[f"up{k}" for k in range(1, 5)],
        "outc",
    ]
    assert not any(
        k.endswith("double_conv.0.bias") or k.endswith("double_conv.3.bias") for k in keys
    )
    assert not any(k.startswith("up1.up") for k in UNet(3, 2, 4, bilinear=True).state_dict())


def test_bilinear_divides_the_deep_channels_by_factor():
    model = UNet(3, 2, width=4, bilinear=True)
    assert model.down4.maxpool_conv[1].double_conv[3].out_channels == 32  # 16w // 2
    first, second = model.up1.conv.double_conv[0], model.up1.conv.double_conv[3]
    assert (first.in_channels, first.out_channels, second.out_channels) == (64, 32, 16)
    assert (
        model.up4.conv.double_conv[0].in_channels,
        model.up4.conv.double_conv[3].out_channels,
    ) == (8, 4)
    assert isinstance(model.up1.up, nn.Upsample) and model.up1.up.align_corners is True
    transposed = UNet(3, 2, width=4, bilinear=False).up1.up
    assert isinstance(transposed, nn.ConvTranspose2d)
    assert (transposed.in_channels, transposed.out_channels, transposed.kernel_size) == (
        64,
        32,
        (2, 2),
    )


def test_parts_are_the_slides():
    block = DoubleConv(3, 5, 4).double_conv
    assert [type(m) for m in block] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU] * 2
    assert (block[0].out_channels, block[0].bias, block[0].padding) == (4, None, (1, 1))
    down = Down(4, 8)
    assert isinstance(down.maxpool_conv[0], nn.MaxPool2d)
    assert down(torch.randn(1, 4, 9, 7)).shape == (1, 8, 4, 3)
    assert OutConv(4, 3).conv.kernel_size == (1, 1)


# ----------------------------------------------------------------------------------------------
# forward
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bilinear", [True, False])
@pytest.mark.parametrize("size", [(16, 16), (17, 31), (37, 45), (64, 48)])
def test_any_size_gives_logits_of_the_input_size(bilinear, size):
    model = UNet(2, 3, width=2, bilinear=bilinear).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 2, *size)).shape == (1, 3, *size)


def test_pad_to_puts_the_odd_pixel_right_and_bottom():
    padded = pad_to(torch.ones(1, 1, 2, 3), torch.zeros(1, 1, 5, 4))
    assert padded.shape == (1, 1, 5, 4)
    assert torch.equal(padded[0, 0].nonzero()[:, 0].unique(), torch.tensor([1, 2]))
    assert torch.equal(padded[0, 0].nonzero()[:, 1].unique(), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="larger than the skip"):
        pad_to(torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 3, 4))


@pytest.mark.parametrize("bilinear", [True, False])
def test_up_concatenates_the_skip_first_then_the_padded_map(bilinear):
    up = Up(8, 3, bilinear).eval()
    x1 = torch.randn(2, 4 if bilinear else 8, 4, 5)
    x2 = torch.randn(2, 4, 9, 11)
    with torch.no_grad():
        raised = up.up(x1)
        manual = F.pad(raised, [0, 1, 0, 1])  # diff 1: nothing left / top, one pixel right / bottom
        expected = up.conv(torch.cat([x2, manual], dim=1))
        torch.testing.assert_close(up(x1, x2), expected)


def test_up_names_the_channels_it_expects():
    with pytest.raises(
        ValueError, match=r"x1 \(the deeper map\) with 4 channels \(in_channels // 2"
    ):
        Up(8, 2, True)(torch.randn(1, 8, 3, 3), torch.randn(1, 4, 6, 6))
    with pytest.raises(ValueError, match=r"x1 \(the deeper map\) with 8 channels \(in_channels"):
        Up(8, 2, False)(torch.randn(1, 4, 3, 3), torch.randn(1, 4, 6, 6))
    with pytest.raises(ValueError, match=r"x2 \(the skip\) with 4 channels"):
        Up(8, 2, False)(torch.randn(1, 8, 3, 3), torch.randn(1, 8, 6, 6))
    with pytest.raises(ValueError, match="4 dimensions"):
        Up(8, 2)(torch.randn(4, 3, 3), torch.randn(1, 4, 6, 6))


def test_unet_validates_its_arguments_and_input():
    with pytest.raises(TypeError, match="bilinear must be True or False"):
        UNet(3, 2, 4, bilinear="yes")
    with pytest.raises(ValueError, match="width must be an int >= 2"):
        UNet(3, 2, 1)
    with pytest.raises(TypeError, match="n_classes"):
        UNet(3, 2.0)
    model = UNet(3, 2, 2)
    with pytest.raises(ValueError, match="this UNet takes n_channels = 3"):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match="H, W >= 16"):
        model(torch.randn(1, 3, 15, 32))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model([[0.0]])


# ----------------------------------------------------------------------------------------------
# skips_off
# ----------------------------------------------------------------------------------------------


def _forward_without(model: nn.Module, x: torch.Tensor, levels) -> torch.Tensor:
    """The slide's forward written out, with the skips of ``levels`` replaced by zeros."""
    x1 = model.inc(x)
    x2 = model.down1(x1)
    x3 = model.down2(x2)
    x4 = model.down3(x3)
    y = model.down4(x4)
    for level, skip in zip(range(1, 5), (x4, x3, x2, x1)):
        y = getattr(model, f"up{level}")(y, torch.zeros_like(skip) if level in levels else skip)
    return model.outc(y)


@pytest.mark.parametrize("levels", [(1,), (4,), (2, 3), (1, 2, 3, 4), 3, ()])
@pytest.mark.parametrize("bilinear", [True, False])
def test_skips_off_zeroes_exactly_the_chosen_skips(levels, bilinear):
    model = UNet(2, 3, width=2, bilinear=bilinear)  # train mode: BatchNorm normalises the batch
    x = torch.randn(2, 2, 33, 40)
    chosen = (levels,) if isinstance(levels, int) else levels
    with torch.no_grad():
        plain = model(x)
        with skips_off(model, levels) as inside:
            assert inside is model
            off = model(x)
        after = model(x)
        torch.testing.assert_close(off, _forward_without(model, x, chosen))
    assert torch.equal(after, plain)  # the hooks are gone
    assert chosen == () or not torch.allclose(off, plain)
    assert all(not getattr(model, f"up{k}")._forward_pre_hooks for k in range(1, 5))


def test_skips_off_removes_its_hooks_on_error():
    model = UNet(1, 2, width=2)
    with pytest.raises(RuntimeError, match="boom"), skips_off(model, (1, 2)):
        raise RuntimeError("boom")
    assert all(not getattr(model, f"up{k}")._forward_pre_hooks for k in range(1, 5))


def test_skips_off_works_on_a_students_unet():
    """Only the names up1..up4 matter: here the student's own Up classes and forward loop."""
    model = w.GoodUNetOwnUp(1, 2, 2, True)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad(), skips_off(model, (4,)):
        off = model(x)
    with torch.no_grad():
        torch.testing.assert_close(off, _forward_without(model, x, (4,)))


def test_skips_off_accepts_a_skip_passed_by_keyword():
    up = Up(4, 2)
    holder = nn.Module()
    holder.up1 = up
    x1, x2 = torch.randn(1, 2, 3, 3), torch.randn(1, 2, 6, 6)
    with torch.no_grad(), skips_off(holder, 1):
        torch.testing.assert_close(up(x1, x2=x2), up(x1, torch.zeros_like(x2)))


def test_skips_off_validates_its_arguments():
    model = UNet(1, 2, 2)
    with pytest.raises(ValueError, match=r"in \[1, 4\], got 5"):
        with skips_off(model, (1, 5)):
            pass
    with pytest.raises(ValueError, match=r"in \[1, 4\], got 0"):
        with skips_off(model, 0):
            pass
    with pytest.raises(TypeError, match="levels must be an int or ints"):
        with skips_off(model, "12"):
            pass
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        with skips_off("model", 1):
            pass
    with pytest.raises(ValueError, match="model has no module up2"):
        with skips_off(nn.Conv2d(1, 1, 1), 2):
            pass


# ----------------------------------------------------------------------------------------------
# the paper's unpadded network
# ----------------------------------------------------------------------------------------------


def _measured_stages(size: int, depth: int) -> list[int]:
    """The same sizes from torch's own layers (one channel, unpadded convolutions)."""
    x, sizes = torch.zeros(1, 1, size, size), [size]
    conv = torch.zeros(1, 1, 3, 3)

    def step(y):
        sizes.append(y.shape[-1])
        return y

    for _ in range(depth):
        x = step(F.conv2d(step(F.conv2d(x, conv)), conv))
        x = step(F.max_pool2d(x, 2))
    x = step(F.conv2d(step(F.conv2d(x, conv)), conv))
    for _ in range(depth):
        x = step(F.conv_transpose2d(x, torch.zeros(1, 1, 2, 2), stride=2))
        x = step(F.conv2d(step(F.conv2d(x, conv)), conv))
    return sizes


def test_the_papers_572_input_gives_388():
    assert valid_unet_output_size(572) == 388
    stages = valid_unet_stage_sizes(572)
    assert stages[:4] == [("input", 572), ("enc1 conv1", 570), ("enc1 conv2", 568), ("pool1", 284)]
    assert dict(stages)["bottom conv2"] == 28 and dict(stages)["up1 up-conv"] == 56
    assert stages[-1] == ("up4 conv2", 388)
    assert [size for _, size in stages] == _measured_stages(572, 4)
    assert valid_unet_skip_crops(572) == [
        ("up1", 64, 56),
        ("up2", 136, 104),
        ("up3", 280, 200),
        ("up4", 568, 392),
    ]


@pytest.mark.parametrize(("size", "depth"), [(188, 4), (556, 4), (60, 1), (44, 2)])
def test_other_valid_sizes_match_torchs_layers(size, depth):
    stages = valid_unet_stage_sizes(size, depth)
    assert [s for _, s in stages] == _measured_stages(size, depth)
    assert len(stages) == 1 + 3 * depth + 2 + 3 * depth


def test_an_odd_pool_input_is_refused_with_the_nearest_valid_sizes():
    with pytest.raises(ValueError, match=r"pool2 receives an odd size 279.*556 and 572"):
        valid_unet_output_size(570)
    with pytest.raises(ValueError, match="pool1 receives an odd size 567"):
        valid_unet_stage_sizes(571)
    with pytest.raises(ValueError, match=r"fewer than its 3x3 kernel.*sizes: 188"):
        valid_unet_output_size(3)
    with pytest.raises(TypeError, match="input_size must be an int"):
        valid_unet_output_size(572.0)
    with pytest.raises(ValueError, match="depth must be an int >= 1"):
        valid_unet_output_size(572, depth=0)
