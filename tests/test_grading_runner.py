"""The check runner and comparators: running cases, failure messages, stubs, mutation, devices."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from test_assignments import cases, check_double, double

from course_utils.grading.compare import (
    compare_tensors,
    describe,
    not_a_tensor_problem,
    tensor_type_problem,
)
from course_utils.grading.runner import (
    Case,
    CheckFailed,
    brief,
    check_devices,
    run_cases,
    success_lines,
    with_device_copies,
)


def failure(fn) -> str:
    with pytest.raises(CheckFailed) as info:
        check_double(fn)
    return str(info.value)


# ---------------------------------------------------------------- run_cases


def test_correct_function_passes_with_one_line(capsys):
    assert run_cases(lambda x: x + x, cases(), name="double", reference=double) == 3
    first = cases()[0]
    expected = success_lines("double", cases(), double(*first.args), double(*first.args))
    assert capsys.readouterr().out == "\n".join(expected) + "\n"
    assert expected[0] == "✓ double: all 3 cases pass"
    assert expected[1].startswith(f"  case 1, {first.name}: yours ")


def test_quiet_prints_nothing(capsys):
    run_cases(lambda x: x * 2, cases(), name="double", reference=double, quiet=True)
    assert capsys.readouterr().out == ""


def test_warnings_become_a_note_on_stdout_not_stderr(capsys):
    def warns(x):
        warnings.warn("copying a tensor", UserWarning, stacklevel=2)
        return 2 * x

    run_cases(warns, cases(), name="double", reference=double)
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = captured.out.splitlines()
    assert lines[0] == "✓ double: all 3 cases pass" and lines[1].startswith("  case 1, ")
    assert lines[2:] == ["  note: double raised a warning (UserWarning: copying a tensor)"]


def test_wrong_values_name_the_case_expected_got_and_hint():
    message = failure(lambda x: 3 * x)
    assert message.startswith("double failed case 1 of 3: three numbers")
    assert "expected: [2., 4., 6.]" in message
    assert "got:      [3., 6., 9.]" in message
    assert "values differ at index [0]: expected 2, got 3" in message
    assert "hint:     multiply by two" in message
    assert "x = [1., 2., 3.]" in message  # inputs named after the reference's parameters


def test_failure_on_a_later_case_reports_that_case():
    message = failure(lambda x: 2 * x if x.dim() == 1 else x)
    assert "case 3 of 3: a matrix" in message
    assert "hint:" not in message  # this case has no hint


def test_stub_raises_friendly_not_implemented_error():
    def stub(x):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError, match="double is not written yet") as info:
        check_double(stub)
    assert not isinstance(info.value, CheckFailed)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_crash_becomes_check_failed_chained_to_the_students_error():
    def crashes_on_empty(x):
        return torch.stack([2 * v for v in x])

    with pytest.raises(CheckFailed, match="case 2 of 3: no numbers") as info:
        check_double(crashes_on_empty)
    assert "raised RuntimeError" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "got:" not in str(info.value)


def test_returning_none_says_return_is_missing():
    def forgot_return(x):
        2 * x

    assert "did you forget the `return`" in failure(forgot_return)


def test_mutating_the_input_fails_even_with_right_values():
    def in_place(x):
        x.mul_(2)
        return x.clone()

    message = failure(in_place)
    assert "modified its input `x` in place" in message


def test_reference_and_student_get_separate_clones():
    seen = []

    def remembers(x):
        seen.append(x)
        return 2 * x

    run_cases(remembers, cases(), name="double", reference=double, quiet=True)
    assert all(a is not c.args[0] for a, c in zip(seen, cases()))


def test_kwargs_are_cloned_and_checked_for_mutation():
    def ref(x, *, scale):
        return x * scale

    case = Case("kw", (torch.ones(2),), kwargs={"scale": torch.tensor(3.0)})

    def mutates_kwarg(x, *, scale):
        scale.add_(0)
        scale.fill_(3.0)
        out = x * scale
        scale.fill_(5.0)
        return out

    assert (
        run_cases(lambda x, *, scale: x * scale, [case], name="f", reference=ref, quiet=True) == 1
    )
    with pytest.raises(CheckFailed, match="modified its input `scale`"):
        run_cases(mutates_kwarg, [case], name="f", reference=ref)


def test_numpy_inputs_in_nested_containers_are_cloned_and_checked():
    def total(region):
        return torch.as_tensor(region["pixels"].sum())

    case = Case("dict with an array", ({"pixels": np.arange(4.0), "id": 3},))

    def zeroes_the_array(region):
        out = total(region)
        region["pixels"][:] = 0
        return out

    assert run_cases(total, [case], name="total", reference=total, quiet=True) == 1
    with pytest.raises(CheckFailed, match="modified its input `region` in place"):
        run_cases(zeroes_the_array, [case], name="total", reference=total)
    assert case.args[0]["pixels"].tolist() == [
        0.0,
        1.0,
        2.0,
        3.0,
    ]  # the case itself is never touched


def test_passing_the_result_instead_of_the_function_is_a_type_error():
    with pytest.raises(TypeError, match=r"pass the function itself, check_double\(double\)"):
        check_double(torch.ones(3))
    with pytest.raises(TypeError, match="expects your function double"):
        check_double(None)


def test_run_cases_needs_cases():
    with pytest.raises(ValueError, match="no cases"):
        run_cases(double, [], name="double", reference=double)


# ---------------------------------------------------------------- comparisons


@pytest.mark.parametrize(
    ("got", "words"),
    [
        (np.zeros(3), "returned a numpy.ndarray"),
        ([0.0, 0.0, 0.0], "returned a list"),
        (torch.zeros(3, 1), "extra dimension"),
        (torch.zeros(()), "A dimension is missing"),
        (torch.zeros(3, dtype=torch.float64), "dtype torch.float64, expected torch.float32"),
        (torch.zeros(3, dtype=torch.int64), "integer division"),
    ],
)
def test_compare_tensors_reports_type_shape_and_dtype(got, words):
    problem = compare_tensors(got, torch.zeros(3), Case("c", ()))
    assert problem is not None and words in problem


def test_compare_tensors_spots_a_transposed_matrix():
    expected = torch.arange(6.0).reshape(2, 3)
    assert "transposed" in compare_tensors(expected.T, expected, Case("c", ()))
    assert compare_tensors(expected.clone(), expected, Case("c", ())) is None


def test_compare_tensors_tolerance_and_integers():
    expected = torch.tensor([1.0, 2.0])
    assert compare_tensors(expected + 1e-7, expected, Case("c", ())) is None
    assert "1 of 2 values wrong" in compare_tensors(
        torch.tensor([1.0, 2.1]), expected, Case("c", ())
    )
    assert (
        compare_tensors(
            torch.tensor([nan := float("nan"), 1.0]), torch.tensor([nan, 1.0]), Case("c", ())
        )
        is None
    )
    assert compare_tensors(torch.tensor([1, 3]), torch.tensor([1, 2]), Case("c", ())) is not None


def test_type_problem_helpers():
    assert not_a_tensor_problem(torch.zeros(1)) is None
    assert "None" in not_a_tensor_problem(None)
    assert tensor_type_problem(torch.zeros(2), torch.zeros(2)) is None
    if torch.cuda.is_available():
        assert "on cpu" in tensor_type_problem(torch.zeros(2), torch.zeros(2, device="cuda"))


def test_describe_small_large_and_other_values():
    small = describe(torch.tensor([1.5, 2.0]))
    assert small.startswith("[1.5, 2.") and small.endswith("(shape (2,), float32)")
    assert describe(torch.zeros(30, 4)) == "tensor of shape (30, 4), float32"
    assert describe(np.zeros((2, 2))).startswith("numpy array of shape (2, 2)")
    assert describe(0.5) == "0.5"
    assert describe("x" * 500).endswith("...")
    assert describe([torch.zeros(1)]).startswith("list of 1")


# ---------------------------------------------------------------- devices


def test_check_devices_and_device_copies():
    devices = check_devices()
    assert devices[0] == torch.device("cpu")
    assert (torch.device("cuda") in devices) == torch.cuda.is_available()
    base = cases()
    assert len(with_device_copies(base, devices=["cpu"])) == len(base)
    assert len(with_device_copies(base)) == len(base) * len(devices)


def test_case_to_moves_tensors_and_renames():
    original = Case(
        "c", (torch.ones(2), 0.5, [torch.zeros(1)]), hint="h", kwargs={"k": torch.ones(1)}
    )
    case = original.to("cpu")
    assert case.name == "c (on cpu)" and case.hint == "h"
    assert case.args[1] == 0.5 and isinstance(case.args[2], list)
    assert torch.equal(case.args[0], original.args[0]) and case.args[0].device.type == "cpu"
    assert torch.equal(case.kwargs["k"], torch.ones(1)) and original.name == "c"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_result_on_the_wrong_device_is_reported():
    on_cuda = [c.to("cuda") for c in cases()]
    with pytest.raises(CheckFailed, match="on cpu, but the inputs were on cuda"):
        run_cases(lambda x: (2 * x).cpu(), on_cuda, name="double", reference=double)


def test_run_cases_calls_the_function_and_the_reference_once_per_case():
    calls = {"fn": 0, "reference": 0}

    def counted(key):
        def fn(x):
            calls[key] += 1
            return 2 * x

        return fn

    run_cases(counted("fn"), cases(), name="double", reference=counted("reference"), quiet=True)
    assert calls == {"fn": 3, "reference": 3}


def test_brief_says_a_value_in_one_short_line():
    assert brief(torch.tensor(2.5)) == "2.5"
    assert brief(torch.tensor(3)) == "3"
    assert brief(torch.tensor([[1.0, 0.25], [0.5, 2.0]])) == "[1.0, 0.25, 0.5, 2.0] (shape (2, 2))"
    assert brief(torch.ones(3, 4)) == "a tensor of shape (3, 4), mean 1"
    assert brief(torch.ones(3, 4, dtype=torch.bool)) == "a tensor of shape (3, 4), sum 12"
    assert brief(torch.nn.Linear(3, 2)) == "a Linear with 8 parameters"
    assert brief(torch.nn.Identity()) == "an Identity with 0 parameters"
    assert brief("short") == "'short'"
    assert len(brief("x" * 500)) == 60


def test_success_lines_show_case_one_beside_the_reference():
    lines = success_lines("double", cases(), torch.tensor(4.0), torch.tensor(4.0))
    assert lines == [
        "✓ double: all 3 cases pass",
        f"  case 1, {cases()[0].name}: yours 4; expected 4",
    ]
