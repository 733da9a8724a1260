"""Assignment cells: declare a check with its reference, and fall back to the reference when stuck.

Every assignment in the course follows the same three cells (see docs/ASSIGNMENTS.md):

1. a *solution cell* where the student writes a function (``def box_iou(boxes1, boxes2): ...``);
2. a graded *check cell*, ``check_box_iou(box_iou)``, which raises on any wrong answer (nbgrader
   grades by errors) and prints two lines on success, e.g. ``✓ box_iou: all 14 cases pass``
   and case 1's answer beside the reference's;
3. an ungraded *fallback cell*, ``box_iou = use_reference_if_stuck(box_iou,
   check=check_box_iou, enabled=USE_REFERENCE_SOLUTIONS)``, so that a stuck student who sets
   ``USE_REFERENCE_SOLUTIONS = True`` can run the rest of the notebook.

A check (one per assignment, in ``course_utils.grading.checks.<topic>``) is declared once with
:func:`assignment_check`: its reference, its cases and its comparator. The check runs with
:func:`course_utils.grading.runner.run_cases`; its docstring and the fallback's message name the
reference from that one declaration.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable
from typing import Any

from course_utils.grading.compare import MESSAGE_WIDTH
from course_utils.grading.runner import Case, Comparator, run_cases

__all__ = ["assignment_check", "reference_name", "run_quietly", "use_reference_if_stuck"]

CheckDeclaration = Callable[..., None]


def assignment_check(
    *,
    reference: Callable[..., Any],
    cases: Callable[[], list[Case]],
    compare: Comparator | None = None,
) -> Callable[[CheckDeclaration], Callable[..., None]]:
    """Decorator declaring a check: the one place that names its reference, cases and comparator.

    It decorates a body-less ``def check_<name>(<name>, *, quiet=False) -> None`` whose docstring
    states what ``<name>`` takes and returns (shapes, dtypes, formats)::

        @assignment_check(reference=torchvision.ops.box_iou, cases=box_iou_cases)
        def check_box_iou(box_iou, *, quiet: bool = False) -> None:
            \"\"\"Check ``box_iou(boxes1, boxes2) -> iou``: ...\"\"\"

    and returns the check: ``check_box_iou(fn, quiet=False)`` runs
    ``run_cases(fn, cases(), name="box_iou", reference=reference, compare=compare, quiet=quiet)``.
    The check keeps the declaration's name, signature and docstring, plus a last docstring line
    naming the reference, and has the attributes ``function_name`` (``"box_iou"``), ``reference``,
    ``cases`` and ``compare``: ``use_reference_if_stuck`` and ``checks.all_checks`` read them.

    Raises:
        TypeError: ``reference`` or ``cases`` is not callable.
        ValueError: the declaration is not ``check_<name>(<name>, *, quiet=False)``.
    """
    if not callable(reference):
        raise TypeError(f"reference must be callable, got {type(reference).__name__}")
    if not callable(cases):
        raise TypeError(f"cases must be a function returning the cases, got {type(cases).__name__}")

    def declare(declaration: CheckDeclaration) -> Callable[..., None]:
        function_name = _declared_function_name(declaration)

        def check(fn: Any, *, quiet: bool = False) -> None:
            __tracebackhide__ = True  # noqa: F841  (IPython and pytest hide this frame)
            run_cases(
                fn, cases(), name=function_name, reference=reference, compare=compare, quiet=quiet
            )

        check.__name__ = declaration.__name__
        check.__qualname__ = declaration.__qualname__
        check.__module__ = declaration.__module__
        check.__signature__ = inspect.signature(declaration)  # type: ignore[attr-defined]
        check.__doc__ = _check_doc(declaration, reference)
        check.function_name = function_name  # type: ignore[attr-defined]
        check.reference = reference  # type: ignore[attr-defined]
        check.cases = cases  # type: ignore[attr-defined]
        check.compare = compare  # type: ignore[attr-defined]
        return check

    return declare


def _declared_function_name(declaration: CheckDeclaration) -> str:
    """``"box_iou"`` for ``def check_box_iou(box_iou, *, quiet=False)``; ValueError otherwise."""
    name = declaration.__name__.removeprefix("check_")
    parameters = list(inspect.signature(declaration).parameters.values())
    expected = f"check_{name}({name}, *, quiet=False)"
    if (
        not declaration.__name__.startswith("check_")
        or not name.isidentifier()
        or [p.name for p in parameters] != [name, "quiet"]
        or parameters[1].kind is not inspect.Parameter.KEYWORD_ONLY
        or parameters[1].default is not False
    ):
        raise ValueError(
            f"a check is declared as `def {expected}`, got {declaration.__name__}"
            f"{inspect.signature(declaration)}"
        )
    if not inspect.getdoc(declaration):
        raise ValueError(f"{declaration.__name__} needs a docstring stating shapes and dtypes")
    return name


def _check_doc(declaration: CheckDeclaration, reference: Callable[..., Any]) -> str:
    """The declaration's docstring followed by the line naming the reference."""
    return f"{inspect.getdoc(declaration)}\n\nReference: ``{reference_name(reference)}``."


def reference_name(fn: Callable[..., Any]) -> str:
    """Where a reference lives, e.g. ``torchvision.ops.boxes.box_iou``, for messages and docs."""
    module = getattr(fn, "__module__", None) or ""
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn))
    return f"{module}.{qualname}" if module and not module.startswith("__") else qualname


def run_quietly(check: Callable[..., Any], fn: Any) -> Exception | None:
    """Run ``check(fn, quiet=True)``; return None if it passes, else the exception it raised."""
    try:
        check(fn, quiet=True)
    except Exception as error:  # NotImplementedError, CheckFailed, TypeError: all "not passing"
        return error
    return None


def use_reference_if_stuck(
    student_fn: Any,
    *,
    check: Callable[..., Any],
    enabled: bool,
    reference: Callable[..., Any] | None = None,
) -> Any:
    """The function later cells use: the student's, or the reference when the student opted in.

    Put this in an ungraded cell right after the graded check cell::

        box_iou = use_reference_if_stuck(
            box_iou, check=check_box_iou, enabled=USE_REFERENCE_SOLUTIONS
        )

    Args:
        student_fn: the student's function.
        check: the assignment's check function (``check_box_iou``).
        enabled: the notebook's ``USE_REFERENCE_SOLUTIONS`` setting (must be a bool).
        reference: what to use instead; default ``check.reference`` (from :func:`assignment_check`).

    Returns:
        ``student_fn`` unchanged, silently, when ``enabled`` is False. When True, the check is
        re-run quietly: ``student_fn`` if it passes, otherwise ``reference``; either way one line
        says which.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be True or False (USE_REFERENCE_SOLUTIONS), got {enabled!r}")
    if not callable(check):
        raise TypeError(
            f"check must be a check function such as check_box_iou, got {type(check).__name__}"
        )
    reference = getattr(check, "reference", None) if reference is None else reference
    if not callable(reference):
        raise TypeError(f"no reference implementation: pass reference=... (got {reference!r})")
    if not enabled:
        return student_fn
    name = getattr(check, "function_name", None) or getattr(student_fn, "__name__", "your function")
    error = run_quietly(check, student_fn)
    if error is None:
        print(f"✓ {name}: yours passes its check, so the cells below use your {name}.")
        return student_fn
    text = str(error).strip()
    reason = text.splitlines()[0].rstrip(".") if text else type(error).__name__
    note = (
        f"→ {name}: the cells below use the reference {reference_name(reference)} because yours "
        f"does not pass its check yet ({reason}). To use yours: fix it, re-run its cell and the "
        "check, and set USE_REFERENCE_SOLUTIONS = False."
    )
    print(textwrap.fill(note, MESSAGE_WIDTH, break_on_hyphens=False, break_long_words=False))
    return reference
