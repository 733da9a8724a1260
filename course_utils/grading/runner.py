"""The check runner: run a student's function on check cases and explain the first wrong answer.

:func:`run_cases`, for every :class:`Case`,

- calls the reference on clones of the case's inputs to get the expected value,
- calls the student's function on other clones, and verifies that the inputs were not modified,
- turns a ``NotImplementedError`` (the release stub) into a friendly ``NotImplementedError``,
- turns any other exception, or a mismatch reported by the comparator, into :class:`CheckFailed`
  saying which case failed, the inputs, the expected and returned values, what is wrong and a hint.

Checks are declared with :func:`course_utils.grading.assignments.assignment_check`, which calls
:func:`run_cases` with the check's reference. Nothing here holds state: each call is independent.
"""

from __future__ import annotations

import inspect
import textwrap
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from course_utils.core.tensors import to_device
from course_utils.grading.compare import MESSAGE_WIDTH, compare_tensors, describe

__all__ = [
    "Case",
    "CheckFailed",
    "Comparator",
    "brief",
    "check_devices",
    "run_cases",
    "success_lines",
    "with_device_copies",
]

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
            args=to_device(self.args, device),
            kwargs=to_device(dict(self.kwargs), device),
        )


# A comparator returns None when ``got`` is right for ``case``, else a sentence saying what is
# wrong.
Comparator = Callable[[Any, Any, Case], "str | None"]


def check_devices() -> list[torch.device]:
    """Devices the checks run on: the CPU, plus CUDA when it is available."""
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    return devices


def with_device_copies(
    cases: Sequence[Case], devices: Iterable[torch.device | str] | None = None
) -> list[Case]:
    """``cases``, then a copy of each case on every non-CPU device (default: check_devices())."""
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
    """Run a student's ``fn`` on every case, comparing with ``reference``; return how many cases.

    Args:
        fn: the student's function.
        cases: the check cases, edge cases included (see :class:`Case`).
        name: the function's name as the notebook calls it (``"box_iou"``), used in every message.
        reference: the trusted implementation (torchvision.ops, pycocotools, a closed form...).
        compare: ``compare(got, expected, case) -> None | str``; default :func:`compare_tensors`.
        quiet: when False, print two lines on success: ``✓ box_iou: all 14 cases pass`` and the
            first case's answer next to the expected one (:func:`success_lines`).

    Raises:
        TypeError: ``fn`` is not callable (e.g. the function's result was passed, not the function).
        NotImplementedError: ``fn`` still raises NotImplementedError (the release stub).
        CheckFailed: ``fn`` crashed, modified its inputs or returned a wrong value on some case.
    """
    __tracebackhide__ = True  # noqa: F841  (IPython and pytest hide this frame in tracebacks)
    _require_function(fn, name)
    if not cases:
        raise ValueError(f"the check for {name} has no cases")
    compare = compare_tensors if compare is None else compare
    names = _parameter_names(reference)
    # Warnings are collected, not shown on stderr: nbgrader counts any stderr output as a failure.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        answers = [
            _run_case(fn, case, _Where(name, number, len(cases), names), reference, compare)
            for number, case in enumerate(cases, start=1)
        ]
    if not quiet:
        print("\n".join(success_lines(name, cases, *answers[0])))
        if caught:
            first = caught[0]
            print(f"  note: {name} raised a warning ({first.category.__name__}: {first.message})")
    return len(cases)


def _brief_tensor(tensor: torch.Tensor) -> str:
    """Up to 6 values in full, else the shape and the mean (floats) or sum (others)."""
    shape = f"shape {tuple(tensor.shape)}"
    values = tensor.detach().cpu()
    if values.ndim == 0:
        number = values.item()
        return f"{number:.4g}" if isinstance(number, float) else str(number)
    if values.numel() <= 6:
        numbers = [round(v, 4) if isinstance(v, float) else v for v in values.flatten().tolist()]
        return f"{numbers} ({shape})"
    if values.is_floating_point():
        return f"a tensor of {shape}, mean {values.double().mean().item():.4g}"
    return f"a tensor of {shape}, sum {values.long().sum().item()}"


def brief(value: Any, width: int = 60) -> str:
    """``value`` in one short line for a success message: a tensor by its values or its shape and
    mean, a module by class and parameter count, anything else as ``describe`` says it."""
    if isinstance(value, torch.nn.Module):
        count = sum(parameter.numel() for parameter in value.parameters())
        name = type(value).__name__
        article = "an" if name[:1].lower() in "aeiou" else "a"
        return f"{article} {name} with {count:,} parameters"
    if isinstance(value, torch.Tensor):
        return _brief_tensor(value)
    text = describe(value)
    if "\n" not in text and len(text) <= width:
        return text
    first = text.splitlines()[0]
    return first if len(first) <= width else first[: width - 3] + "..."


def success_lines(name: str, cases: Sequence[Case], got: Any, expected: Any) -> list[str]:
    """What a passed check prints: the count, then case 1's answer beside the reference's."""
    return [
        f"✓ {name}: all {len(cases)} cases pass",
        f"  case 1, {cases[0].name}: yours {brief(got)}; expected {brief(expected)}",
    ]


@dataclass(frozen=True)
class _Where:
    """Which function and case a failure message is about."""

    name: str  # the function's name in the notebook
    number: int  # the case's number, from 1
    total: int  # how many cases the check has
    names: Sequence[str]  # the reference's parameter names, to label the inputs


def _run_case(
    fn: Callable[..., Any],
    case: Case,
    where: _Where,
    reference: Callable[..., Any],
    compare: Comparator,
) -> tuple[Any, Any]:
    """Run ``fn`` on one case; raise NotImplementedError or CheckFailed when it is not right.
    Returns ``(got, expected)``."""
    __tracebackhide__ = True  # noqa: F841
    name = where.name
    expected = reference(*_clone(case.args), **_clone(dict(case.kwargs)))
    args, kwargs = _clone(case.args), _clone(dict(case.kwargs))
    try:
        got = fn(*args, **kwargs)
    except NotImplementedError:
        raise NotImplementedError(
            f"{name} is not written yet: replace `raise NotImplementedError()` in its cell with "
            "your code, run that cell, then run this check again."
        ) from None
    except Exception as error:
        problem = f"{name} raised {type(error).__name__}: {error}"
        raise CheckFailed(_failure(where, case, expected, _NOTHING, problem)) from error
    changed = _changed_inputs(case, args, kwargs, where.names)
    if changed:
        problem = (
            f"{name} modified its input {changed} in place. Compute new tensors instead "
            "(avoid +=, -=, x[...] = ..., and methods ending in _ such as clamp_ on the inputs)."
        )
        raise CheckFailed(_failure(where, case, expected, got, problem))
    problem = compare(got, expected, case)
    if problem:
        raise CheckFailed(_failure(where, case, expected, got, problem))
    return got, expected


def _require_function(fn: Any, name: str) -> None:
    """Raise TypeError, with a hint, when ``fn`` is not a function."""
    if callable(fn):
        return
    hint = ""
    if isinstance(fn, torch.Tensor):
        hint = f" It got a tensor: pass the function itself, check_{name}({name}), not {name}(...)."
    raise TypeError(f"the check expects your function {name}, got a {type(fn).__name__}.{hint}")


# ----------------------------------------------------------------------------------------------
# Copies of the inputs, and whether the student's call modified them
# ----------------------------------------------------------------------------------------------


def _clone(value: Any) -> Any:
    """A deep copy of the tensors and numpy arrays inside tuples, lists and dicts (other leaves
    are shared)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, tuple):
        return tuple(_clone(v) for v in value)
    if isinstance(value, list):
        return [_clone(v) for v in value]
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    return value


def _same(a: Any, b: Any) -> bool:
    """Whether ``b`` still equals ``a``: same tensors and arrays (type, shape, dtype, device,
    values), same containers."""
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


# ----------------------------------------------------------------------------------------------
# The failure message
# ----------------------------------------------------------------------------------------------


def _parameter_names(fn: Callable[..., Any]) -> list[str]:
    """``fn``'s parameter names (to label a case's inputs), or [] when it has no signature."""
    try:
        return [p.name for p in inspect.signature(fn).parameters.values()]
    except (TypeError, ValueError):
        return []


def _arg_name(names: Sequence[str], index: int) -> str:
    return names[index] if index < len(names) else f"argument {index + 1}"


def _hanging(text: str, indent: int) -> str:
    """``text`` with every line after the first indented by ``indent`` spaces."""
    return ("\n" + " " * indent).join(text.splitlines() or [""])


def _failure(where: _Where, case: Case, expected: Any, got: Any, problem: str) -> str:
    """The multi-line message of a CheckFailed: case, inputs, expected, got, problem, hint."""
    rows: list[tuple[str, str]] = []
    labelled = [(_arg_name(where.names, i), a) for i, a in enumerate(case.args)]
    labelled += list(case.kwargs.items())
    for index, (arg, value) in enumerate(labelled):
        prefix = f"{arg} = "
        text = prefix + _hanging(describe(value), 12 + len(prefix))
        rows.append(("inputs:" if index == 0 else "", text))
    rows.append(("expected:", _hanging(describe(expected), 12)))
    if got is not _NOTHING:
        rows.append(("got:", _hanging(describe(got), 12)))
    rows.append(("problem:", _hanging(textwrap.fill(problem, MESSAGE_WIDTH), 12)))
    if case.hint:
        rows.append(("hint:", _hanging(textwrap.fill(case.hint, MESSAGE_WIDTH), 12)))
    lines = [f"{where.name} failed case {where.number} of {where.total}: {case.name}"]
    lines += [f"  {label:<10}{text}" for label, text in rows]
    return "\n".join(lines)
