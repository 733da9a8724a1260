"""Comparators and case builders shared by several topic modules (private: not a topic module)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from course_utils.grading.runner import Case

__all__ = ["compare_int"]


def compare_int(got: Any, expected: int, case: Case) -> str | None:
    """None if ``got`` is the int ``expected`` (a Python or numpy integer), else what is wrong."""
    if got is None:
        return "returned None: did you forget the `return` statement?"
    if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
        if isinstance(got, torch.Tensor) and got.numel() == 1 and not got.is_floating_point():
            return "returned a tensor, expected a Python int: use Python arithmetic (or .item())."
        if isinstance(got, (float, np.floating)) or isinstance(got, torch.Tensor):
            return (
                f"returned {got!r} ({type(got).__name__}), expected the int {expected}: sizes are "
                "whole "
                "numbers; divide with // (floor division), not /."
            )
        return f"returned a {type(got).__name__}, expected an int."
    if int(got) != expected:
        return (
            f"returned {int(got)}, expected {expected} "
            f"({'too large' if got > expected else 'too small'} by {abs(int(got) - expected)})."
        )
    return None
