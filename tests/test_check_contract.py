"""The contract of every assignment check, over every topic's tables (see ``check_contract.py``):

* it rejects each wrong implementation, saying which case failed, what was expected and a hint;
* it accepts each correct implementation with one short line;
* it never passes a stub (``raise NotImplementedError()``), also when run quietly;
* it has at least 8 wrong implementations that run on this machine;
* it does a bounded amount of work: few cases, small inputs, one call of the student's function
  per case (counted, not timed: a timing assert flakes on a loaded machine).
"""

from __future__ import annotations

import importlib

import pytest
import torch
from check_contract import input_size

from course_utils.grading.assignments import run_quietly
from course_utils.grading.checks import all_checks
from course_utils.grading.runner import CheckFailed, check_devices

# Every topic module of course_utils.grading.checks has its tables in tests/test_checks_<topic>.py.
TOPICS = {topic: importlib.import_module(f"test_checks_{topic}") for topic in all_checks()}
NO_CUDA = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="this mistake only shows on a CUDA machine"
)
# The heaviest check today has 33 cases and 5,200 input values in all (per device): these bounds
# leave room to grow but fail a check that got 100 times heavier.
MAX_CASES = 60
MAX_INPUT_VALUES = 20_000


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


def test_every_topic_has_its_tables():
    for topic, checks in all_checks().items():
        module = TOPICS[topic]
        assert module.CHECKS == checks, f"test_checks_{topic}.CHECKS must be the module's CHECKS"
        assert {check for check, _ in module.CORRECT} == set(checks), topic
        assert {wrong.check for wrong in module.WRONG} == set(checks), topic


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
    first, second = out.out.splitlines()
    assert first == f"✓ {check.function_name}: all {len(check.cases())} cases pass"
    assert second.startswith("  case 1, ") and "; expected " in second
    assert not out.err


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


@pytest.mark.parametrize("check", _check_params())
def test_every_check_does_a_bounded_amount_of_work(check):
    cases = check.cases()
    devices = len(check_devices())
    assert 1 <= len(cases) <= MAX_CASES * devices
    assert sum(input_size((c.args, dict(c.kwargs))) for c in cases) <= MAX_INPUT_VALUES * devices
    calls = []

    def counted_reference(*args, **kwargs):
        calls.append(len(args) + len(kwargs))
        return check.reference(*args, **kwargs)

    check(counted_reference, quiet=True)
    assert len(calls) == len(cases)  # the student's function runs once per case, no more
    assert calls == [len(c.args) + len(c.kwargs) for c in cases]
