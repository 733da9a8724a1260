"""What every assignment check must do, whatever its topic: the tables' types and shared helpers.

Each ``tests/test_checks_<topic>.py`` lists its ``CHECKS``, the ``CORRECT`` implementations each
check must accept and the ``WRONG`` ones (plausible student mistakes) each must reject;
``tests/test_check_contract.py`` runs the same contract over every topic's tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from course_utils.grading.runner import Case


@dataclass(frozen=True)
class Wrong:
    """A deliberately wrong ``fn`` that ``check`` must reject with a message containing ``says``.

    ``cuda_only``: the mistake only shows with CUDA tensors (e.g. returning results on the CPU).
    """

    check: Callable[..., None]
    fn: Callable[..., object]
    says: str
    cuda_only: bool = False

    def __repr__(self) -> str:
        return f"{self.check.function_name}-{self.fn.__name__}"


def same_value(a: Any, b: Any) -> bool:
    """Whether two case inputs are equal: tensors, arrays, modules by value; containers deeply."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, nn.Module):
        return type(a) is type(b) and same_value(a.state_dict(), b.state_dict())
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same_value, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return a == b


def assert_cases_deterministic_with_hints(make_cases: Callable[[], list[Case]]) -> list[Case]:
    """Two calls of ``make_cases`` give equal cases (names, inputs, hints); every case has a hint.

    Returns the cases, for further assertions.
    """
    first, second = make_cases(), make_cases()
    assert [c.name for c in first] == [c.name for c in second]
    assert len({c.name for c in first}) == len(first), "case names must be unique"
    for a, b in zip(first, second):
        assert a.hint, f"case {a.name!r} needs a hint"
        assert a.hint == b.hint
        assert same_value(a.args, b.args), a.name
        assert same_value(dict(a.kwargs), dict(b.kwargs)), a.name
    return first


def input_size(value: Any) -> int:
    """How many numbers an input holds: tensor and array elements, module parameters, else 1."""
    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, np.ndarray):
        return int(value.size)
    if isinstance(value, nn.Module):
        return sum(p.numel() for p in value.parameters())
    if isinstance(value, (list, tuple)):
        return sum(input_size(v) for v in value)
    if isinstance(value, dict):
        return sum(input_size(v) for v in value.values())
    return 1
