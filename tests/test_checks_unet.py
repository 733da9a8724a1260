"""The U-Net checks (notebook 11) accept correct classes and reject stubs and plausible student
mistakes.

Each ``Wrong`` below is a real, deliberately wrong class a student might write (written in
``tests/unet_wrongs.py``); the check must raise CheckFailed for it, with a message that says what
is wrong (``says``); ``tests/test_check_contract.py`` runs them all. The other tests prove that
every wrong class gets its own message, that the mistakes the Up check recognises from outputs
really differ from the reference, and that a check leaves torch's global RNG as it was.
"""

from __future__ import annotations

import pytest
import torch
import unet_wrongs as w
from check_contract import Wrong, assert_cases_deterministic_with_hints
from torch import nn

from course_utils.grading.checks import all_checks
from course_utils.grading.checks._unet_up import _PAIRS, _variants
from course_utils.grading.checks.unet import CHECKS, check_UNet, check_Up, unet_cases, up_cases
from course_utils.grading.runner import CheckFailed
from course_utils.segmentation import unet

CORRECT = [
    (check_Up, unet.Up),
    (check_Up, w.GoodUp),
    (check_Up, w.GoodUpOwnParts),
    (check_UNet, unet.UNet),
    (check_UNet, w.GoodUNet),
    (check_UNet, w.GoodUNetOwnUp),
]

WRONG = [
    Wrong(check_Up, w.UpCatSwapped, "the concatenation order is swapped"),
    Wrong(check_Up, w.UpNoPadding, "pad the up-sampled map to the skip's size before"),
    Wrong(check_Up, w.UpPadLeftTop, "the odd pixel of padding is on the wrong side"),
    Wrong(check_Up, w.UpPadAxesSwapped, "the height and width paddings are swapped"),
    Wrong(check_Up, w.UpCropSkip, "rather than cropping the skip"),
    Wrong(check_Up, w.UpResized, "resized (interpolated) to the skip's size: pad it"),
    Wrong(check_Up, w.UpWrongMid, "expected mid_channels = in_channels // 2 = 4"),
    Wrong(check_Up, w.UpUpsampleThen1x1, "self.up has weights (up.1.weight, up.1.bias)"),
    Wrong(check_Up, w.UpTransposedKernel3, "self.up has kernel_size (3, 3), expected (2, 2)"),
    Wrong(check_Up, w.UpTransposedFullChannels, "expected in_channels // 2 = 4: the up-conv"),
    Wrong(check_Up, w.UpNearest, "self.up uses mode='nearest'"),
    Wrong(check_Up, w.UpAlignCornersFalse, "self.up has align_corners=False"),
    Wrong(check_Up, w.UpFunctionalNearest, "x1 is up-sampled by nearest neighbour"),
    Wrong(check_Up, w.UpSingleConv, "self.conv is a single nn.Conv2d"),
    Wrong(check_Up, w.UpSingleBlock, "has a single convolution (Conv2d, BatchNorm2d, ReLU)"),
    Wrong(check_Up, w.UpReLUBeforeBN, "applies the ReLU before the BatchNorm"),
    Wrong(check_Up, w.UpConvBias, "self.conv.double_conv[0] has a bias: use bias=False"),
    Wrong(check_Up, w.UpIgnoresBilinear, "with bilinear=False self.up is the learned up-sampling"),
    Wrong(check_Up, w.UpRenamed, "self.up is missing"),
    Wrong(check_Up, w.UpReturnsConcatenation, "the output has 8 channels, expected out_channels"),
    Wrong(check_Up, w.UpDetachedSkip, "the gradient with respect to x2 (the skip) is wrong"),
    Wrong(check_UNet, w.UNetSkipsShifted, "self.up1's skip (second argument) is x3, expected x4"),
    Wrong(check_UNet, w.UNetSkipsReversed, "the skips are paired in reverse order"),
    Wrong(check_UNet, w.UNetSkipDropped, "self.up4 gets the same map as its input and its skip"),
    Wrong(check_UNet, w.UNetX5Twice, "x5 is fed to self.up2 again"),
    Wrong(check_UNet, w.UNetUpsWrongOrder, "self.up4 is called where self.up1 is expected"),
    Wrong(check_UNet, w.UNetOutcBeforeLastUp, "self.outc is called before self.up4"),
    Wrong(check_UNet, w.UNetNoOutc, "self.outc is never called in forward"),
    Wrong(check_UNet, w.UNetSoftmax, "the output looks like softmax(logits)"),
    Wrong(check_UNet, w.UNetSigmoid, "the output looks like sigmoid(logits)"),
    Wrong(check_UNet, w.UNetDetachedSkip, "the gradient with respect to the input x is wrong"),
    Wrong(check_UNet, w.UNetNoFactor, "with bilinear=True, factor = 2 divides them"),
    Wrong(check_UNet, w.UNetDown4NoFactor, "self.down4 is not Down(8 * width, 16 * width // f"),
    Wrong(check_UNet, w.UNetUpFactorForgotten, "self.up1 is not Up(16 * width, 8 * width // f"),
    Wrong(check_UNet, w.UNetWidth64, "inc gives 64 channels, expected width = 4"),
    Wrong(check_UNet, w.UNetThreeChannels, "inc reads 3 channels, expected n_channels = 1"),
    Wrong(check_UNet, w.UNetTwoClasses, "outc gives 2 channels, expected n_classes = 3"),
    Wrong(check_UNet, w.UNetAlwaysTransposed, "self.up1's state_dict keys differ from Up(16"),
    Wrong(check_UNet, w.UNetModuleListUps, "self.up1 is missing (the module's parts: inc"),
]


def test_the_module_lists_its_checks():
    assert all_checks()["unet"] == CHECKS == (check_Up, check_UNet)
    assert [check.function_name for check in CHECKS] == ["Up", "UNet"]
    assert check_Up.reference is unet.Up and check_UNet.reference is unet.UNet


@pytest.mark.parametrize("make_cases", [up_cases, unet_cases])
def test_cases_are_deterministic_and_have_hints(make_cases):
    cases = assert_cases_deterministic_with_hints(make_cases)
    assert {case.args[-1] for case in cases} == {True, False}  # bilinear and transposed


def _problem(wrong: Wrong) -> str:
    with pytest.raises(CheckFailed) as info:
        wrong.check(wrong.fn, quiet=True)
    text = str(info.value)
    return text[text.index("problem:") : text.index("hint:")]


def test_every_wrong_class_gets_its_own_message():
    problems = [_problem(wrong) for wrong in WRONG]
    assert len(set(problems)) == len(problems)
    for check in CHECKS:
        assert sum(wrong.check is check for wrong in WRONG) >= 10


@pytest.mark.parametrize("bilinear", [True, False])
def test_every_mistake_the_up_check_names_differs_from_the_reference(bilinear):
    reference = unet.Up(8, 4, bilinear)
    differs = dict.fromkeys(_variants(reference, torch.zeros(1, 8, 2, 2), torch.zeros(1, 4, 4, 4)))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, small, large in _PAIRS:
            x1 = torch.randn(2, 4 if bilinear else 8, *small, generator=g)
            x2 = torch.randn(2, 4, *large, generator=g)
            want = reference(x1, x2)
            for text, mistake in _variants(reference, x1, x2).items():
                wrong = mistake()
                differs[text] = differs[text] or wrong.shape != want.shape
                differs[text] = differs[text] or not torch.allclose(wrong, want, atol=1e-4)
    assert all(differs.values()), [text for text, seen in differs.items() if not seen]


@pytest.mark.parametrize(("check", "right"), [(check_Up, unet.Up), (check_UNet, unet.UNet)])
def test_the_checks_leave_the_global_rng_as_it_was(check, right, capsys):
    """A notebook builds and trains its networks after the check cell: same random numbers."""
    torch.manual_seed(3)
    before = torch.get_rng_state()
    check(right)
    assert torch.equal(torch.get_rng_state(), before)
    with pytest.raises(CheckFailed):
        check(w.UpCatSwapped if check is check_Up else w.UNetSoftmax, quiet=True)
    assert torch.equal(torch.get_rng_state(), before)


class _UpStubInInit(nn.Module):
    def __init__(self, *args):
        super().__init__()
        raise NotImplementedError()


class _UpStubInForward(w.GoodUp):
    def forward(self, x1, x2):
        raise NotImplementedError()


class _UNetStubInForward(w.GoodUNet):
    def forward(self, x):
        raise NotImplementedError()


@pytest.mark.parametrize(
    ("check", "stub", "name"),
    [
        (check_Up, _UpStubInInit, "Up"),
        (check_Up, _UpStubInForward, "Up"),
        (check_UNet, _UpStubInInit, "UNet"),
        (check_UNet, _UNetStubInForward, "UNet"),
    ],
)
def test_the_checks_say_a_stub_class_is_not_written_yet(check, stub, name):
    with pytest.raises(NotImplementedError, match=f"{name} is not written yet"):
        check(stub)


def test_an_instance_instead_of_the_class_fails():
    """An instance is callable too: the runner calls its forward with the case's arguments."""
    with pytest.raises(CheckFailed, match="Up raised"):
        check_Up(unet.Up(8, 2), quiet=True)
    with pytest.raises(CheckFailed, match="UNet raised"):
        check_UNet(unet.UNet(3, 2, 4), quiet=True)
