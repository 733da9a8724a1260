"""Declaring checks (one reference each), finding them, and the fallback to the reference.

The toy assignment here, ``double``, is also what ``test_grading_runner.py`` runs.
"""

from __future__ import annotations

import inspect

import pytest
import torch

from course_utils.grading import checks
from course_utils.grading.assignments import (
    assignment_check,
    reference_name,
    run_quietly,
    use_reference_if_stuck,
)
from course_utils.grading.runner import Case, CheckFailed


def double(x: torch.Tensor) -> torch.Tensor:
    """The reference of the toy assignment used here: 2 * x."""
    return 2 * x


def cases() -> list[Case]:
    return [
        Case("three numbers", (torch.tensor([1.0, 2.0, 3.0]),), hint="multiply by two"),
        Case("no numbers", (torch.zeros(0),), hint="empty works too"),
        Case("a matrix", (torch.arange(6.0).reshape(2, 3),)),
    ]


@assignment_check(reference=double, cases=cases)
def check_double(double, *, quiet: bool = False) -> None:
    """Check ``double(x) -> 2 * x`` for a float tensor x of any shape."""


# ---------------------------------------------------------------- declaring checks


def test_assignment_check_stores_name_reference_cases_and_compare():
    assert check_double.function_name == "double" and check_double.reference is double
    assert check_double.cases is cases and check_double.compare is None
    assert check_double.__name__ == "check_double"
    assert check_double.__module__ == __name__


def test_the_check_keeps_the_declared_signature_and_names_its_reference_once():
    assert str(inspect.signature(check_double)) == "(double, *, quiet: 'bool' = False) -> 'None'"
    assert check_double.__doc__ == (
        "Check ``double(x) -> 2 * x`` for a float tensor x of any shape.\n\n"
        "Reference: ``test_assignments.double``."
    )
    assert reference_name(double) == "test_assignments.double"
    assert reference_name(torch.nn.functional.relu) == "torch.nn.functional.relu"


def test_the_check_runs_the_declared_cases_with_the_declared_comparator(capsys):
    seen = []

    def compare(got, expected, case):
        seen.append(case.name)
        return None if torch.equal(got, expected) else "not equal"

    @assignment_check(reference=double, cases=cases, compare=compare)
    def check_exact(exact, *, quiet: bool = False) -> None:
        """Check ``exact(x)``."""

    check_exact(lambda x: x + x)
    assert seen == [c.name for c in cases()]
    assert capsys.readouterr().out.splitlines()[0] == "✓ exact: all 3 cases pass"
    with pytest.raises(CheckFailed, match="problem:  not equal"):
        check_exact(lambda x: x + x + 1e-9 * (x != 0) + 1)


def test_assignment_check_validates_the_declaration():
    with pytest.raises(TypeError, match="reference must be callable"):
        assignment_check(reference=3, cases=cases)
    with pytest.raises(TypeError, match="cases must be a function"):
        assignment_check(reference=double, cases=cases())
    declare = assignment_check(reference=double, cases=cases)

    def verify_double(double, *, quiet=False):
        """Not named check_<name>."""

    def check_double_wrong_parameter(fn, *, quiet=False):
        """The parameter is not named after the function."""

    def check_triple(triple, quiet=False):
        """quiet is not keyword-only."""

    def check_half(half, *, quiet=True):
        """quiet defaults to True."""

    def check_undocumented(undocumented, *, quiet=False):
        pass

    for declaration in (verify_double, check_double_wrong_parameter, check_triple, check_half):
        with pytest.raises(ValueError, match=r"a check is declared as `def check_"):
            declare(declaration)
    with pytest.raises(ValueError, match="needs a docstring"):
        declare(check_undocumented)


def test_all_checks_lists_every_decorated_check_of_every_module():
    found = checks.all_checks()
    assert set(found) >= {
        "boxes",
        "nms",
        "labelling",
        "box_coding",
        "roi",
        "conv_arithmetic",
        "upsampling",
        "receptive_field",
        "segmentation_metrics",
        "fcn",
        "selective_search",
    }
    for module in checks.check_modules():
        decorated = {
            value
            for name, value in vars(module).items()
            if name.startswith("check_") and callable(value) and hasattr(value, "reference")
        }
        listed = found[module.__name__.rsplit(".", 1)[-1]]
        assert set(listed) == decorated, f"{module.__name__}.CHECKS must list every check function"
        for check in listed:
            assert check.__name__ == f"check_{check.function_name}"
            assert check.__doc__.endswith(f"Reference: ``{reference_name(check.reference)}``.")
            assert check.__doc__.startswith(f"Check ``{check.function_name}("), check.__name__


# ---------------------------------------------------------------- run_quietly and the fallback


def test_run_quietly_returns_the_error_or_none(capsys):
    assert run_quietly(check_double, double) is None
    assert isinstance(run_quietly(check_double, lambda x: x), CheckFailed)
    assert capsys.readouterr().out == ""


def test_fallback_disabled_returns_the_students_function_silently(capsys):
    def mine(x):
        raise NotImplementedError()

    assert use_reference_if_stuck(mine, check=check_double, enabled=False) is mine
    assert capsys.readouterr().out == ""


def test_fallback_enabled_keeps_a_passing_function(capsys):
    def mine(x):
        return x * 2

    assert use_reference_if_stuck(mine, check=check_double, enabled=True) is mine
    out = capsys.readouterr().out
    assert "yours passes its check" in out and out.count("\n") == 1


@pytest.mark.parametrize("mine", [lambda x: x, None], ids=["wrong", "missing"])
def test_fallback_enabled_uses_the_reference_for_a_failing_function(capsys, mine):
    assert use_reference_if_stuck(mine, check=check_double, enabled=True) is double
    out = capsys.readouterr().out
    assert "use the reference" in out and "test_assignments.double" in out
    assert "USE_REFERENCE_SOLUTIONS = False" in out


def test_fallback_with_an_explicit_reference(capsys):
    def other(x):
        return x + x

    def stub(x):
        raise NotImplementedError()

    assert use_reference_if_stuck(stub, check=check_double, reference=other, enabled=True) is other
    assert "not written yet" in capsys.readouterr().out


def test_fallback_validates_its_arguments():
    with pytest.raises(TypeError, match="True or False"):
        use_reference_if_stuck(double, check=check_double, enabled="False")
    with pytest.raises(TypeError, match="check function"):
        use_reference_if_stuck(double, check=None, enabled=False)
    with pytest.raises(TypeError, match="reference"):
        use_reference_if_stuck(double, check=lambda fn, quiet=False: None, enabled=False)
