"""Assignment cells: run a student's function on check cases, explain failures, fall back to a reference.

Every assignment in the course follows the same three cells (see docs/ASSIGNMENTS.md):

1. a *solution cell* where the student writes a function (``def box_iou(boxes1, boxes2): ...``);
2. a graded *check cell*, ``check_box_iou(box_iou)``, which raises on any wrong answer (nbgrader grades
   by errors) and prints one line on success, e.g. ``✓ box_iou: all 14 cases pass``;
3. an ungraded *fallback cell*,
   ``box_iou = use_reference_if_stuck(box_iou, check=check_box_iou, enabled=USE_REFERENCE_SOLUTIONS)``,
   so that a stuck student who sets ``USE_REFERENCE_SOLUTIONS = True`` can run the rest of the notebook.

A check function (one per assignment, in ``course_utils.grading.checks.<topic>``) builds a list of :class:`Case`
objects and hands them to :func:`run_cases`, which

- calls the reference on clones of each case's inputs to get the expected value,
- calls the student's function on other clones, and verifies that the inputs were not modified,
- turns a ``NotImplementedError`` (the release stub) into a friendly ``NotImplementedError``,
- turns any other exception, or a mismatch reported by the comparator, into :class:`CheckFailed` saying which
  case failed, the inputs, the expected and returned values, what is wrong and a hint.

Nothing here holds state: each call is independent.
"""

from __future__ import annotations

import inspect
import textwrap
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = [
    "Case",
    "CheckFailed",
    "Comparator",
    "assignment_check",
    "check_devices",
    "compare_tensors",
    "describe",
    "not_a_tensor_problem",
    "run_cases",
    "run_quietly",
    "tensor_type_problem",
    "use_reference_if_stuck",
    "with_device_copies",
]

CheckFn = TypeVar("CheckFn", bound=Callable[..., None])

_SMALL_TENSOR = 24  # tensors with at most this many values are printed in full in messages
_WIDTH = 88  # message lines are wrapped at this many characters
_NOTHING = object()  # "the student's function returned nothing at all" (it raised)


class CheckFailed(AssertionError):
    """A student's function gave a wrong answer (or crashed) on one check case.

    Subclasses AssertionError so that nbgrader, nbval and pytest all count it as a failed test.
    """


@dataclass(frozen=True)
class Case:
    """One input on which a student's function is compared with the reference.

    Attributes:
        name: what the case is, in the student's words ("two boxes touching along an edge").
        args: positional arguments (tensors are cloned before every call, never shared).
        hint: what students usually get wrong on this case; shown when the case fails.
        kwargs: keyword arguments (cloned like args).
    """

    name: str
    args: tuple[Any, ...]
    hint: str = ""
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> Case:
        """A copy with every tensor moved to ``device`` and the device named in the case's name."""
        device = torch.device(device)
        return replace(
            self,
            name=f"{self.name} (on {device.type})",
            args=_map_tensors(self.args, lambda t: t.to(device)),
            kwargs=_map_tensors(dict(self.kwargs), lambda t: t.to(device)),
        )


# A comparator returns None when ``got`` is right for ``case`` and otherwise a sentence saying what is wrong.
Comparator = Callable[[Any, Any, Case], "str | None"]


# ----------------------------------------------------------------------------------------------------------
# Declaring and running checks
# ----------------------------------------------------------------------------------------------------------


def assignment_check(
    function_name: str, reference: Callable[..., Any]
) -> Callable[[CheckFn], CheckFn]:
    """Decorator marking a check function: stores the assignment's function name and its reference.

    ``use_reference_if_stuck`` takes the reference from ``check.reference`` when none is given, and
    ``course_utils.grading.checks.all_checks`` finds check functions through these attributes.
    """
    if not isinstance(function_name, str) or not function_name.isidentifier():
        raise ValueError(
            f"function_name must be a Python identifier like 'box_iou', got {function_name!r}"
        )
    if not callable(reference):
        raise TypeError(f"reference must be callable, got {type(reference).__name__}")

    def mark(check: CheckFn) -> CheckFn:
        check.function_name = function_name  # type: ignore[attr-defined]
        check.reference = reference  # type: ignore[attr-defined]
        return check

    return mark


def check_devices() -> list[torch.device]:
    """Devices the checks run on: the CPU, plus CUDA when it is available."""
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    return devices


def with_device_copies(
    cases: Sequence[Case], devices: Iterable[torch.device | str] | None = None
) -> list[Case]:
    """``cases`` followed by a copy of each case on every non-CPU device (default: :func:`check_devices`)."""
    devices = check_devices() if devices is None else [torch.device(d) for d in devices]
    out = list(cases)
    for device in devices:
        if device.type != "cpu":
            out.extend(case.to(device) for case in cases)
    return out


def run_cases(
    fn: Any,
    cases: Sequence[Case],
    *,
    name: str,
    reference: Callable[..., Any],
    compare: Comparator | None = None,
    quiet: bool = False,
) -> int:
    """Run a student's ``fn`` on every case, comparing with ``reference``; return the number of cases.

    Args:
        fn: the student's function.
        cases: the check cases, edge cases included (see :class:`Case`).
        name: the function's name as the notebook calls it (``"box_iou"``), used in every message.
        reference: the trusted implementation (torchvision.ops, pycocotools, a closed form...).
        compare: ``compare(got, expected, case) -> None | str``; default :func:`compare_tensors`.
        quiet: when False, print one line on success (``✓ box_iou: all 14 cases pass``).

    Raises:
        TypeError: ``fn`` is not callable (e.g. the result of the function was passed instead of the function).
        NotImplementedError: ``fn`` still raises NotImplementedError (the release stub).
        CheckFailed: ``fn`` crashed, modified its inputs or returned a wrong value on some case.
    """
    __tracebackhide__ = True  # noqa: F841  (IPython and pytest hide this frame in tracebacks)
    _require_function(fn, name)
    if not cases:
        raise ValueError(f"the check for {name} has no cases")
    compare = compare_tensors if compare is None else compare
    names = _parameter_names(reference)
    # Warnings are collected, not shown on stderr: nbgrader counts any stderr output as a failed check cell.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _run_each_case(fn, cases, name=name, reference=reference, compare=compare, names=names)
    if not quiet:
        print(f"✓ {name}: all {len(cases)} cases pass")
        if caught:
            first = caught[0]
            print(f"  note: {name} raised a warning ({first.category.__name__}: {first.message})")
    return len(cases)


def _run_each_case(
    fn: Callable[..., Any],
    cases: Sequence[Case],
    *,
    name: str,
    reference: Callable[..., Any],
    compare: Comparator,
    names: Sequence[str],
) -> None:
    """The loop of :func:`run_cases`: raise on the first case ``fn`` gets wrong."""
    __tracebackhide__ = True  # noqa: F841
    for number, case in enumerate(cases, start=1):
        expected = reference(*_clone(case.args), **_clone(dict(case.kwargs)))
        args, kwargs = _clone(case.args), _clone(dict(case.kwargs))
        try:
            got = fn(*args, **kwargs)
        except NotImplementedError:
            raise NotImplementedError(
                f"{name} is not written yet: replace `raise NotImplementedError()` in its cell with your code, "
                "run that cell, then run this check again."
            ) from None
        except Exception as error:
            problem = f"{name} raised {type(error).__name__}: {error}"
            raise CheckFailed(
                _failure(name, number, len(cases), case, names, expected, _NOTHING, problem)
            ) from error
        changed = _changed_inputs(case, args, kwargs, names)
        if changed:
            problem = (
                f"{name} modified its input {changed} in place. Compute new tensors instead "
                "(avoid +=, -=, x[...] = ..., and methods ending in _ such as clamp_ on the inputs)."
            )
            raise CheckFailed(
                _failure(name, number, len(cases), case, names, expected, got, problem)
            )
        problem = compare(got, expected, case)
        if problem:
            raise CheckFailed(
                _failure(name, number, len(cases), case, names, expected, got, problem)
            )


def run_quietly(check: Callable[..., Any], fn: Any) -> Exception | None:
    """Run ``check(fn, quiet=True)``; return None if it passes, else the exception it raised."""
    try:
        check(fn, quiet=True)
    except (
        Exception
    ) as error:  # NotImplementedError, CheckFailed, TypeError... all mean "not passing"
        return error
    return None


def use_reference_if_stuck(
    student_fn: Any,
    *,
    check: Callable[..., Any],
    enabled: bool,
    reference: Callable[..., Any] | None = None,
) -> Any:
    """The function later cells should use: the student's, or the reference when the student opted in.

    Put this in an ungraded cell right after the graded check cell::

        box_iou = use_reference_if_stuck(box_iou, check=check_box_iou, enabled=USE_REFERENCE_SOLUTIONS)

    Args:
        student_fn: the student's function.
        check: the assignment's check function (``check_box_iou``).
        enabled: the notebook's ``USE_REFERENCE_SOLUTIONS`` setting (must be a bool).
        reference: what to use instead; default ``check.reference`` (set by :func:`assignment_check`).

    Returns:
        ``student_fn`` unchanged, silently, when ``enabled`` is False. When True, the check is re-run
        quietly: ``student_fn`` if it passes, otherwise ``reference``; either way one line says which.
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
    reason = (
        str(error).strip().splitlines()[0].rstrip(".")
        if str(error).strip()
        else type(error).__name__
    )
    note = (
        f"→ {name}: the cells below use the reference {_qualified_name(reference)} because yours does not pass "
        f"its check yet ({reason}). To use yours: fix it, re-run its cell and the check, and set "
        "USE_REFERENCE_SOLUTIONS = False."
    )
    print(textwrap.fill(note, _WIDTH, break_on_hyphens=False, break_long_words=False))
    return reference


# ----------------------------------------------------------------------------------------------------------
# Comparing outputs
# ----------------------------------------------------------------------------------------------------------


def compare_tensors(
    got: Any, expected: torch.Tensor, case: Case, *, atol: float = 1e-5, rtol: float = 1e-4
) -> str | None:
    """The default comparator: ``got`` must be a tensor with the expected shape, dtype, device and values.

    Values are compared with ``torch.allclose(got, expected, rtol, atol, equal_nan=True)``; integer and
    bool tensors must be equal. Returns None when right, else a sentence naming the first thing wrong.
    """
    problem = tensor_type_problem(got, expected)
    if problem:
        return problem
    if got.is_floating_point() or got.is_complex():
        close = torch.isclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
    else:
        close = got == expected
    if bool(close.all()):
        return None
    wrong = (~close).nonzero()
    first = tuple(int(i) for i in wrong[0])
    at = f" at index {list(first)}" if first else ""
    return (
        f"values differ{at}: expected {_item(expected, first)}, got {_item(got, first)} "
        f"({len(wrong)} of {expected.numel()} values wrong)."
    )


def tensor_type_problem(got: Any, expected: torch.Tensor) -> str | None:
    """None if ``got`` is a tensor with ``expected``'s shape, dtype and device, else what differs."""
    problem = not_a_tensor_problem(got)
    if problem:
        return problem
    if got.shape != expected.shape:
        problem = f"returned shape {tuple(got.shape)}, expected {tuple(expected.shape)}."
        square = got.dim() == 2 and got.shape[0] == got.shape[1]
        if (
            got.dim() == 2
            and expected.dim() == 2
            and got.shape == expected.shape[::-1]
            and not square
        ):
            problem += " It looks transposed: row i should belong to the first input's box i."
        elif got.dim() < expected.dim():
            problem += " A dimension is missing: was a result summed, averaged or squeezed away?"
        elif got.dim() > expected.dim():
            problem += (
                " There is an extra dimension: check keepdim, [:, None] or a final .squeeze(1)."
            )
        return problem
    if got.dtype != expected.dtype:
        return (
            f"returned dtype {got.dtype}, expected {expected.dtype}. Avoid .int(), .long(), .float(), "
            "integer division (//) and new tensors with a default dtype; let the inputs decide the dtype."
        )
    if got.device != expected.device:
        return (
            f"returned a tensor on {got.device}, but the inputs were on {expected.device}: keep the result on the "
            "inputs' device (no .cpu(); create new tensors with device=...)."
        )
    return None


def not_a_tensor_problem(got: Any) -> str | None:
    """None if ``got`` is a torch.Tensor, else a sentence saying what came back instead."""
    if got is None:
        return "returned None: did you forget the `return` statement?"
    if isinstance(got, torch.Tensor):
        return None
    kind = (
        f"{type(got).__module__}.{type(got).__name__}"
        if isinstance(got, np.ndarray)
        else type(got).__name__
    )
    return (
        f"returned a {kind}, expected a torch.Tensor: do the computation with torch operations "
        "(no .numpy(), .tolist() or Python lists)."
    )


def describe(value: Any) -> str:
    """A short, human-readable description of a value for check messages (small tensors in full)."""
    if isinstance(value, torch.Tensor):
        meta = f"shape {tuple(value.shape)}, {str(value.dtype).removeprefix('torch.')}"
        if value.device.type != "cpu":
            meta += f", on {value.device}"
        if value.numel() > _SMALL_TENSOR:
            return f"tensor of {meta}"
        array = value.detach().cpu().numpy()
        text = np.array2string(
            array, precision=4, separator=", ", suppress_small=True, max_line_width=_WIDTH
        )
        return f"{text}  ({meta})"
    if isinstance(value, np.ndarray):
        return f"numpy array of shape {value.shape}, {value.dtype}"
    if isinstance(value, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in value):
        return f"{type(value).__name__} of {len(value)}: " + ", ".join(
            describe(v) for v in value[:3]
        )
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


# ----------------------------------------------------------------------------------------------------------
# Internals
# ----------------------------------------------------------------------------------------------------------


def _require_function(fn: Any, name: str) -> None:
    if callable(fn):
        return
    hint = ""
    if isinstance(fn, torch.Tensor):
        hint = f" It got a tensor: pass the function itself, check_{name}({name}), not {name}(...)."
    raise TypeError(f"the check expects your function {name}, got a {type(fn).__name__}.{hint}")


def _map_tensors(
    value: Any,
    fn: Callable[[torch.Tensor], torch.Tensor],
    array_fn: Callable[[np.ndarray], Any] | None = None,
) -> Any:
    """``value`` with ``fn`` applied to every tensor (and ``array_fn`` to every numpy array) inside tuples,
    lists and dicts."""
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, np.ndarray) and array_fn is not None:
        return array_fn(value)
    if isinstance(value, tuple):
        return tuple(_map_tensors(v, fn, array_fn) for v in value)
    if isinstance(value, list):
        return [_map_tensors(v, fn, array_fn) for v in value]
    if isinstance(value, dict):
        return {k: _map_tensors(v, fn, array_fn) for k, v in value.items()}
    return value


def _clone(value: Any) -> Any:
    """A deep copy of the tensors and numpy arrays in ``value`` (other leaves are shared)."""
    return _map_tensors(value, lambda t: t.detach().clone(), lambda a: a.copy())


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.shape == b.shape
            and a.dtype == b.dtype
            and a.device == b.device
            and bool(torch.equal(a, b))
        )
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.shape == b.shape
            and a.dtype == b.dtype
            and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
        )
    if isinstance(a, (list, tuple)):
        return (
            isinstance(b, type(a)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return True  # numbers and strings cannot be modified in place


def _changed_inputs(case: Case, args: tuple, kwargs: dict, names: Sequence[str]) -> str:
    """Name of the first argument the student's call modified, or '' if none."""
    for index, (before, after) in enumerate(zip(case.args, args)):
        if not _same(before, after):
            return f"`{_arg_name(names, index)}`"
    for key, before in case.kwargs.items():
        if not _same(before, kwargs.get(key)):
            return f"`{key}`"
    return ""


def _parameter_names(fn: Callable[..., Any]) -> list[str]:
    try:
        return [p.name for p in inspect.signature(fn).parameters.values()]
    except (TypeError, ValueError):
        return []


def _arg_name(names: Sequence[str], index: int) -> str:
    return names[index] if index < len(names) else f"argument {index + 1}"


def _item(tensor: torch.Tensor, index: tuple[int, ...]) -> str:
    value = tensor[index].item()
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _qualified_name(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or ""
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn))
    return f"{module}.{qualname}" if module and not module.startswith("__") else qualname


def _hanging(text: str, indent: int) -> str:
    """``text`` with every line after the first indented by ``indent`` spaces."""
    return ("\n" + " " * indent).join(text.splitlines() or [""])


def _failure(
    name: str,
    number: int,
    total: int,
    case: Case,
    names: Sequence[str],
    expected: Any,
    got: Any,
    problem: str,
) -> str:
    """The multi-line message of a CheckFailed: case, inputs, expected, got, problem, hint."""
    rows: list[tuple[str, str]] = []
    labelled = [(_arg_name(names, i), a) for i, a in enumerate(case.args)] + list(
        case.kwargs.items()
    )
    for index, (arg, value) in enumerate(labelled):
        prefix = f"{arg} = "
        rows.append(
            ("inputs:" if index == 0 else "", prefix + _hanging(describe(value), 12 + len(prefix)))
        )
    rows.append(("expected:", _hanging(describe(expected), 12)))
    if got is not _NOTHING:
        rows.append(("got:", _hanging(describe(got), 12)))
    rows.append(("problem:", _hanging(textwrap.fill(problem, _WIDTH), 12)))
    if case.hint:
        rows.append(("hint:", _hanging(textwrap.fill(case.hint, _WIDTH), 12)))
    lines = [f"{name} failed case {number} of {total}: {case.name}"]
    lines += [f"  {label:<10}{text}" for label, text in rows]
    return "\n".join(lines)
