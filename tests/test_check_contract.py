"""The contract of every assignment check, over every topic's tables (see ``check_contract.py``):

* it rejects each wrong implementation, saying which case failed, what was expected and a hint;
* it accepts each correct implementation with one short line;
* it never passes a stub (``raise NotImplementedError()``), also when run quietly;
* it has at least 8 wrong implementations that run on this machine.
"""

from __future__ import annotations

import pytest
import test_checks_boxes
import test_checks_conv
import test_checks_rcnn
import test_checks_segmentation
import test_checks_selective_search
import torch

from course_utils.grading.assignments import CheckFailed, run_quietly

TOPICS = {
    "boxes": test_checks_boxes,
    "conv": test_checks_conv,
    "rcnn": test_checks_rcnn,
    "segmentation": test_checks_segmentation,
    "selective_search": test_checks_selective_search,
}
NO_CUDA = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="this mistake only shows on a CUDA machine"
)


def _wrong_params() -> list:
    return [
        pytest.param(wrong, id=f"{topic}-{wrong!r}", marks=[NO_CUDA] if wrong.cuda_only else [])
        for topic, module in TOPICS.items()
        for wrong in module.WRONG
    ]


def _correct_params() -> list:
    return [
        pytest.param(
            check, fn, id=f"{topic}-{check.function_name}-{getattr(fn, '__name__', 'lambda')}"
        )
        for topic, module in TOPICS.items()
        for check, fn in module.CORRECT
    ]


def _check_params() -> list:
    return [
        pytest.param(check, id=f"{topic}-{check.function_name}")
        for topic, module in TOPICS.items()
        for check in module.CHECKS
    ]


@pytest.mark.parametrize("wrong", _wrong_params())
def test_check_rejects_wrong_implementation(wrong):
    with pytest.raises(CheckFailed) as info:
        wrong.check(wrong.fn, quiet=True)
    message = str(info.value)
    assert wrong.says in message, message
    assert "expected:" in message and "problem:" in message and "hint:" in message


@pytest.mark.parametrize(("check", "fn"), _correct_params())
def test_check_accepts_correct_implementation(check, fn, capsys):
    check(fn)
    out = capsys.readouterr()
    assert out.out.startswith(f"✓ {check.function_name}: all ") and out.out.endswith(
        " cases pass\n"
    )
    assert out.out.count("\n") == 1 and not out.err


@pytest.mark.parametrize("check", _check_params())
def test_check_never_passes_a_stub(check):
    def stub(*args, **kwargs):
        # YOUR CODE HERE
        raise NotImplementedError()

    with pytest.raises(NotImplementedError, match=f"{check.function_name} is not written yet"):
        check(stub)
    assert isinstance(run_quietly(check, stub), NotImplementedError)


@pytest.mark.parametrize("check", _check_params())
def test_every_check_has_many_wrong_implementations(check):
    wrongs = [wrong for module in TOPICS.values() for wrong in module.WRONG]
    assert sum(w.check is check and not w.cuda_only for w in wrongs) >= 8
