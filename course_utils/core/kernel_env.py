"""The environment every notebook kernel of the course starts with, in one place.

``make lab`` starts JupyterLab with these variables set, so its kernels inherit them; the
notebook tests (conftest.py) and ``make report`` set those the caller has not set. They are read
once, when a kernel starts, so a notebook cannot set them itself.

    python -m course_utils.core.kernel_env     # prints NAME=value lines, for `env $(...)` in make
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

__all__ = ["KERNEL_ENVIRONMENT", "apply_kernel_environment"]

#: ``OMP_WAIT_POLICY=PASSIVE``: idle OpenMP threads sleep instead of spinning. On a 2-core
#: machine where other programs run (a browser, a second kernel), spinning threads slow a
#: training step several times over. ``PYDEVD_DISABLE_FILE_VALIDATION=1`` silences a debugger
#: warning that every kernel prints when it starts.
KERNEL_ENVIRONMENT: Mapping[str, str] = {
    "OMP_WAIT_POLICY": "PASSIVE",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
}


def apply_kernel_environment(env: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Set each :data:`KERNEL_ENVIRONMENT` variable that ``env`` lacks; returns ``env``."""
    for name, value in KERNEL_ENVIRONMENT.items():
        env.setdefault(name, value)
    return env


if __name__ == "__main__":
    print("\n".join(f"{name}={value}" for name, value in KERNEL_ENVIRONMENT.items()))
