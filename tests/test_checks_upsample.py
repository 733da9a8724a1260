"""The up-sampling layer check (notebook 09, ``check_Upsample``) accepts correct classes and
rejects stubs and plausible student mistakes.

Each ``Wrong`` below is a real, deliberately wrong class a student might write (written in
``tests/upsample_wrongs.py``); the check must raise CheckFailed for it, with a message that says
what is wrong (``says``), a phrase no other wrong class's message contains. ``CORRECT`` and
``WRONG`` hold ``check_Upsample``'s rows only, for ``tests/test_checks_upsampling.py`` (the topic's
tables, which ``tests/test_check_contract.py`` reads) to add to its own.
"""

from __future__ import annotations

import functools

import pytest
import torch
import upsample_wrongs as w
from check_contract import Wrong, assert_cases_deterministic_with_hints
from torch import nn

from course_utils.grading.checks import all_checks
from course_utils.grading.checks.upsampling import check_Upsample, upsample_cases
from course_utils.grading.runner import CheckFailed
from course_utils.segmentation.upsampling import Upsample

CORRECT = [
    (check_Upsample, Upsample),
    (check_Upsample, w.GoodUpsample),
    (check_Upsample, w.GoodUpsampleModules),
]

WRONG = [
    Wrong(check_Upsample, w.UpAlignCorners, "with align_corners=True"),
    Wrong(check_Upsample, w.UpNearest, "(mode='nearest')"),
    Wrong(check_Upsample, w.UpBicubic, "the output is bicubic interpolation"),
    Wrong(check_Upsample, w.UpBilinearByKernel, "sees zeros beyond the border"),
    Wrong(check_Upsample, w.UpKernelTwiceFactor, "16 rows of 5, not 15"),
    Wrong(check_Upsample, w.UpKernelTwiceFactorPaddingUp, "14 rows of 5, not 15"),
    Wrong(check_Upsample, w.UpKernelTwiceFactorOutputPadding, "15 rows of 5, but not with"),
    Wrong(check_Upsample, w.UpPaddingFactor, "has padding (2, 2), expected (1, 1)"),
    Wrong(check_Upsample, w.UpStrideTwo, "has stride (2, 2), expected (4, 4)"),
    Wrong(check_Upsample, w.UpBias, "self.deconv has a bias (deconv.bias)"),
    Wrong(check_Upsample, w.UpDefaultInit, "PyTorch's default random initialisation"),
    Wrong(check_Upsample, w.UpFrozen, "is frozen (requires_grad=False)"),
    Wrong(check_Upsample, w.UpLearnedInterpolates, "mode='learned' has no parameters"),
    Wrong(check_Upsample, w.UpDeconvForFactorOne, "with factor = 1 the layer is the identity"),
    Wrong(check_Upsample, w.UpAlwaysDeconv, "mode='bilinear' has no parameters, found"),
    Wrong(check_Upsample, w.UpMixesChannels, "the tent for every channel pair"),
    Wrong(check_Upsample, w.UpTentSumsToOne, "diagonal kernels are not"),
    Wrong(check_Upsample, w.UpDepthwise, "has groups 3, expected 1"),
    Wrong(check_Upsample, w.UpFixedKernelInForward, "not with self.deconv's"),
    Wrong(check_Upsample, w.UpNamedUp, "the state_dict's keys are up.weight"),
    Wrong(check_Upsample, w.UpNoGrad, "the output has no gradient"),
]


@functools.cache
def _message(cls: type) -> str:
    """The CheckFailed message ``check_Upsample`` gives ``cls``; AssertionError if it passes."""
    with pytest.raises(CheckFailed) as info:
        check_Upsample(cls, quiet=True)
    return str(info.value)


def test_the_check_is_listed_with_its_reference():
    assert check_Upsample in all_checks()["upsampling"]
    assert check_Upsample.function_name == "Upsample"
    assert check_Upsample.reference is Upsample
    assert "Reference: ``course_utils.segmentation.upsampling.Upsample``" in check_Upsample.__doc__


def test_at_least_ten_mistakes_each_with_its_own_words():
    assert len(WRONG) >= 10
    assert len({wrong.fn for wrong in WRONG}) == len({wrong.says for wrong in WRONG}) == len(WRONG)


def test_cases_are_deterministic_and_have_hints():
    cases = assert_cases_deterministic_with_hints(upsample_cases)
    args = {case.args for case in cases}
    assert {(3, 1, "learned"), (3, 1, "bilinear")} <= args  # the identity, both modes
    assert any(factor % 2 and mode == "learned" for _, factor, mode in args)  # odd kernel
    assert any(factor % 2 and mode == "bilinear" for _, factor, mode in args)
    assert all(case.args[0] >= 2 for case in cases)  # channel mixing shows


@pytest.mark.parametrize("wrong", WRONG, ids=repr)
def test_each_mistake_is_rejected_with_its_own_message(wrong):
    message = _message(wrong.fn)
    assert wrong.says in message, message
    assert "expected:" in message and "problem:" in message and "hint:" in message
    others = [other.fn.__name__ for other in WRONG if other is not wrong]
    assert not [name for name in others if wrong.says in _message(getattr(w, name))]


@pytest.mark.parametrize(("check", "fn"), CORRECT, ids=lambda value: getattr(value, "__name__", ""))
def test_correct_classes_pass_with_the_success_line(check, fn, capsys):
    check(fn)
    out = capsys.readouterr()
    first, second = out.out.splitlines()
    assert first == f"✓ Upsample: all {len(upsample_cases())} cases pass"
    assert second.startswith("  case 1, Upsample(") and "; expected " in second
    assert not out.err


def test_quiet_prints_nothing(capsys):
    check_Upsample(Upsample, quiet=True)
    with pytest.raises(CheckFailed):
        check_Upsample(w.UpNearest, quiet=True)
    assert capsys.readouterr() == ("", "")


def test_the_check_leaves_the_global_rng_as_it_was(capsys):
    """A notebook builds and trains its FCN after the check cell: same random numbers."""
    torch.manual_seed(5)
    before = torch.get_rng_state()
    check_Upsample(Upsample)
    assert torch.equal(torch.get_rng_state(), before)
    for wrong in (w.UpDefaultInit, w.UpFixedKernelInForward, w.UpAlignCorners):
        with pytest.raises(CheckFailed):
            check_Upsample(wrong, quiet=True)
        assert torch.equal(torch.get_rng_state(), before)


def test_the_check_is_deterministic_whatever_the_global_seed():
    for seed in (0, 1):
        torch.manual_seed(seed)
        for check, fn in CORRECT:
            check(fn, quiet=True)
        assert "PyTorch's default random initialisation" in str(_uncached(w.UpDefaultInit))


def _uncached(cls: type) -> CheckFailed:
    with pytest.raises(CheckFailed) as info:
        check_Upsample(cls, quiet=True)
    return info.value


class _StubInInit(nn.Module):
    def __init__(self, *args):
        super().__init__()
        raise NotImplementedError()


class _StubInForward(w.GoodUpsample):
    def forward(self, x):
        raise NotImplementedError()


@pytest.mark.parametrize("stub", [_StubInInit, _StubInForward])
def test_a_stub_class_is_not_written_yet(stub):
    with pytest.raises(NotImplementedError, match="Upsample is not written yet"):
        check_Upsample(stub)


def test_an_instance_instead_of_the_class_fails():
    with pytest.raises(CheckFailed, match="Upsample raised"):
        check_Upsample(Upsample(3, 2), quiet=True)


def test_the_bilinear_transposed_convolution_differs_from_interpolation_only_at_the_border():
    """Why ``UpBilinearByKernel`` is wrong yet close: the learned layer starts as the fixed one
    inside the image, so the check must (and does) look at the border rows."""
    x = torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    for factor in (2, 3, 4):
        learned, fixed = Upsample(3, factor, "learned"), Upsample(3, factor)
        with torch.no_grad():
            a, b = learned(x), fixed(x)
        inner = slice(factor, -factor)
        assert torch.allclose(a[..., inner, inner], b[..., inner, inner], atol=1e-5)
        assert not torch.allclose(a, b, atol=1e-3)
