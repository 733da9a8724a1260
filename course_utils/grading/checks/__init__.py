"""Check functions for the assignment cells, one module per topic (``boxes``, ``nms``, ...).

Every check is declared with ``course_utils.grading.assignments.assignment_check`` as
``check_<name>(<name>, *, quiet=False) -> None`` and listed in its module's ``CHECKS`` tuple. It
runs the student's function on random and edge cases against the reference it declares, raises on
the first wrong case and prints one line on success. Modules whose name starts with ``_`` hold
shared helpers, not checks. See docs/ASSIGNMENTS.md for how to add a topic module.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from types import ModuleType

__all__ = ["all_checks", "check_modules"]


def check_modules() -> list[ModuleType]:
    """Every topic module of this package (imported), sorted by name."""
    names = sorted(
        info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")
    )
    return [importlib.import_module(f"{__name__}.{name}") for name in names]


def all_checks() -> dict[str, tuple[Callable[..., None], ...]]:
    """Topic name -> that module's ``CHECKS`` tuple, e.g. ``{"boxes": (check_box_area, ...)}``."""
    checks = {}
    for module in check_modules():
        listed = getattr(module, "CHECKS", None)
        if not isinstance(listed, tuple):
            raise TypeError(f"{module.__name__} must define CHECKS, a tuple of its check functions")
        checks[module.__name__.rsplit(".", 1)[-1]] = listed
    return checks
