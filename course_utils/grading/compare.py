"""How a check compares a student's answer with the reference's, and how it shows values.

* :func:`compare_tensors` is the default comparator of
  :func:`course_utils.grading.runner.run_cases`: type, shape, dtype, device, then values;
* :func:`tensor_type_problem` and :func:`not_a_tensor_problem` are its type part, for comparators
  of their own (several right answers, a pair of tensors, a 0-dim loss...);
* :func:`describe` writes a value for a failure message (small tensors in full).

Every comparator returns None when the answer is right, else one sentence saying what is wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from course_utils.grading.runner import Case

__all__ = [
    "MESSAGE_WIDTH",
    "compare_tensors",
    "describe",
    "not_a_tensor_problem",
    "tensor_type_problem",
]

MESSAGE_WIDTH = 88  # message lines are wrapped at this many characters
_SMALL_TENSOR = 24  # tensors with at most this many values are printed in full in messages


def compare_tensors(
    got: Any, expected: torch.Tensor, case: Case, *, atol: float = 1e-5, rtol: float = 1e-4
) -> str | None:
    """The default comparator: ``got`` must be a tensor with the expected shape, dtype, device and
    values.

    Values are compared with ``torch.isclose(got, expected, rtol, atol, equal_nan=True)``; integer
    and bool tensors must be equal; ``case`` is unused (comparators that need the inputs read them
    from it). Returns None when right, else a sentence naming the first thing wrong.
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
    """None if ``got`` is a tensor of ``expected``'s shape, dtype and device, else what differs."""
    problem = not_a_tensor_problem(got)
    if problem:
        return problem
    if got.shape != expected.shape:
        return _shape_problem(got, expected)
    if got.dtype != expected.dtype:
        return (
            f"returned dtype {got.dtype}, expected {expected.dtype}. Avoid .int(), .long(), "
            ".float(), integer division (//) and new tensors with a default dtype; let the inputs "
            "decide the dtype."
        )
    if got.device != expected.device:
        return (
            f"returned a tensor on {got.device}, but the inputs were on {expected.device}: keep "
            "the result on the inputs' device (no .cpu(); create new tensors with device=...)."
        )
    return None


def _shape_problem(got: torch.Tensor, expected: torch.Tensor) -> str:
    """The sentence for a wrong shape, with a guess at the cause (transpose, lost or extra dim)."""
    problem = f"returned shape {tuple(got.shape)}, expected {tuple(expected.shape)}."
    square = got.dim() == 2 and got.shape[0] == got.shape[1]
    if got.dim() == 2 and expected.dim() == 2 and got.shape == expected.shape[::-1] and not square:
        problem += " It looks transposed: row i should belong to the first input's box i."
    elif got.dim() < expected.dim():
        problem += " A dimension is missing: was a result summed, averaged or squeezed away?"
    elif got.dim() > expected.dim():
        problem += " There is an extra dimension: check keepdim, [:, None] or a final .squeeze(1)."
    return problem


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
            array, precision=4, separator=", ", suppress_small=True, max_line_width=MESSAGE_WIDTH
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


def _item(tensor: torch.Tensor, index: tuple[int, ...]) -> str:
    """``tensor[index]`` as text: floats with 6 significant digits."""
    value = tensor[index].item()
    return f"{value:.6g}" if isinstance(value, float) else str(value)
