"""What every assignment check must do, whatever its topic: the table type of the wrong implementations.

Each ``tests/test_checks_<topic>.py`` lists its ``CHECKS``, the ``CORRECT`` implementations each check must
accept and the ``WRONG`` ones (plausible student mistakes) each must reject; ``tests/test_check_contract.py``
runs the same contract over every topic's tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Wrong:
    """A deliberately wrong implementation ``fn`` that ``check`` must reject with a message containing ``says``.

    ``cuda_only``: the mistake only shows with CUDA tensors (e.g. returning results on the CPU).
    """

    check: Callable[..., None]
    fn: Callable[..., object]
    says: str
    cuda_only: bool = False

    def __repr__(self) -> str:
        return f"{self.check.function_name}-{self.fn.__name__}"
