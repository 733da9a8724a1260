"""The context-module check (notebook 10) accepts correct classes and rejects stubs and plausible
student mistakes.

Each ``Wrong`` below is a real, deliberately wrong class a student might write (written in
``tests/context_module_wrongs.py``); the check must raise CheckFailed for it, with a message that
says what is wrong (``says``); ``tests/test_check_contract.py`` runs them all. The other tests
prove that the reference does what the check's docstring says.
"""

from __future__ import annotations

import context_module_wrongs as w
import pytest
import torch
from check_contract import Wrong, assert_cases_deterministic_with_hints
from torch import nn

from course_utils.grading.checks import all_checks
from course_utils.grading.checks.context_module import (
    CHECKS,
    check_ContextModule,
    context_module_cases,
)
from course_utils.grading.runner import CheckFailed
from course_utils.segmentation import receptive_field as rf

CORRECT = [
    (check_ContextModule, rf.ContextModule),
    (check_ContextModule, w.GoodContextModule),
    (check_ContextModule, w.GoodContextModuleInit),
]

(_MODULE,) = CHECKS

WRONG = [
    Wrong(_MODULE, w.ContextUnpadded, "has padding (0, 0), expected (1, 1)"),
    Wrong(_MODULE, w.ContextPaddingOne, "(padding=1 is only right"),
    Wrong(_MODULE, w.ContextReversed, "they are in reverse"),
    Wrong(_MODULE, w.ContextOneByOne, "has kernel_size (1, 1), expected (3, 3)"),
    Wrong(_MODULE, w.ContextNoBias, "self.body[0] has no bias"),
    Wrong(_MODULE, w.ContextBodyList, "self.body is a Python list"),
    Wrong(_MODULE, w.ContextModuleList, "found a ModuleList"),
    Wrong(_MODULE, w.ContextWithoutReLU, "self.body has no nn.ReLU"),
    Wrong(_MODULE, w.ContextNoLastReLU, "self.body has 9 modules, expected 10"),
    Wrong(_MODULE, w.ContextDilationsList, "expected the tuple (1, 1, 2, 4, 1)"),
    Wrong(_MODULE, w.ContextCentreOnEveryChannel, "for every input channel"),
    Wrong(_MODULE, w.ContextCentreTopLeft, "top-left tap"),
    Wrong(_MODULE, w.ContextOutNotZeroed, "self.out.weight is not zero"),
    Wrong(_MODULE, w.ContextBiasNotZeroed, "self.body[0].bias is not zero"),
    Wrong(_MODULE, w.ContextAlwaysIdentity, "initialised as the identity anyway"),
    Wrong(_MODULE, w.ContextNoResidual, "without the input"),
    Wrong(_MODULE, w.ContextResidualBeforeOut, "added before the 1x1 layer"),
    Wrong(_MODULE, w.ContextReLUAfterSum, "no ReLU after the residual sum"),
    Wrong(_MODULE, w.ContextFinalReLU, "goes through a ReLU"),
    Wrong(_MODULE, w.ContextDetached, "gradient with respect to the input"),
    Wrong(_MODULE, w.ContextInEvalMode, "eval mode"),
]


def test_the_module_lists_its_checks():
    assert all_checks()["context_module"] == CHECKS
    assert [check.function_name for check in CHECKS] == ["ContextModule"]
    assert check_ContextModule.reference is rf.ContextModule


def test_cases_are_deterministic_and_have_hints():
    cases = assert_cases_deterministic_with_hints(context_module_cases)
    assert len(cases) >= 4
    assert {case.args[2] for case in cases} == {True, False}
    assert any(isinstance(case.args[1], list) for case in cases)


def test_the_reference_follows_the_checks_docstring():
    module = rf.ContextModule(3, [1, 2, 4])
    assert module.dilations == (1, 2, 4) and isinstance(module.body, nn.Sequential)
    convs = list(module.body)[0::2]
    assert all(isinstance(relu, nn.ReLU) for relu in list(module.body)[1::2])
    for conv, d in zip(convs, (1, 2, 4)):
        assert (conv.kernel_size, conv.padding, conv.dilation) == ((3, 3), (d, d), (d, d))
        want = torch.zeros(3, 3, 3, 3)
        want[range(3), range(3), 1, 1] = 1
        assert torch.equal(conv.weight, want) and not conv.bias.any()
    assert module.out.kernel_size == (1, 1) and not module.out.weight.any()
    x = torch.randn(2, 3, 13, 17)
    assert torch.equal(module(x), x)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_()
    torch.testing.assert_close(module(x), x + module.out(module.body(x)))


def test_the_wrong_classes_differ_where_their_names_say():
    """The forward mistakes are built with correct layers and weights: only forward differs."""
    for wrong in (w.ContextNoResidual, w.ContextReLUAfterSum, w.ContextDetached):
        assert rf.layers_of(wrong(4, (1, 2))) == rf.layers_of(rf.ContextModule(4, (1, 2)))
    module = w.ContextCentreOnEveryChannel(2, (1,))
    assert module.body[0].weight[:, :, 1, 1].eq(1).all()


class _StubInInit(nn.Module):
    def __init__(self, *args):
        super().__init__()
        raise NotImplementedError()


class _StubInForward(w.GoodContextModule):
    def forward(self, x):
        raise NotImplementedError()


@pytest.mark.parametrize("stub", [_StubInInit, _StubInForward])
def test_the_check_says_a_stub_class_is_not_written_yet(stub):
    with pytest.raises(NotImplementedError, match="ContextModule is not written yet"):
        check_ContextModule(stub)


def test_an_instance_instead_of_the_class_fails():
    """An instance is callable too: the runner calls its forward with the case's arguments."""
    with pytest.raises(CheckFailed, match="ContextModule raised TypeError"):
        check_ContextModule(rf.ContextModule(2, (1,)), quiet=True)
