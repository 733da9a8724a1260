"""Start the course's JupyterLab: `make lab` (students), `make lab-instructor`, the browser test.

    .venv/bin/python tools/lab.py [--instructor] [options for jupyter lab ...]

What every course lab needs, in one place:

* the kernels' environment (``course_utils.core.kernel_env``: ``OMP_WAIT_POLICY=PASSIVE`` and the
  rest), set on the server so that every kernel it starts inherits it;
* ``--allow-root`` only when run as root (Docker, cloud VMs, Colab's terminal): Jupyter refuses to
  start as root without it, and a normal user does not need it;
* for students, the configuration in ``tools/student_lab/`` (put first on ``JUPYTER_CONFIG_PATH``):
  nbgrader's lab extension and server routes are off, so no Formgrader, Assignment List or Course
  List menu appears even where the instructor tools are installed, and there is no news feed or
  update check (the course works offline). ``--instructor`` keeps nbgrader's menus.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from course_utils.core.kernel_env import apply_kernel_environment

STUDENT_CONFIG = Path(__file__).resolve().parent / "student_lab"


def lab_environment(base: Mapping[str, str], *, instructor: bool = False) -> dict[str, str]:
    """``base`` plus the kernels' variables (those ``base`` lacks) and, for a student's lab, the
    student configuration first on ``JUPYTER_CONFIG_PATH``."""
    env = apply_kernel_environment(dict(base))
    if not instructor:
        earlier = [part for part in base.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if part]
        env["JUPYTER_CONFIG_PATH"] = os.pathsep.join([str(STUDENT_CONFIG), *earlier])
    return env


def lab_command(
    lab_args: Sequence[str], *, python: str = sys.executable, as_root: bool | None = None
) -> list[str]:
    """The ``jupyter lab`` command line: ``lab_args`` plus ``--allow-root`` when running as root
    (``as_root=None``: ask the operating system)."""
    if as_root is None:
        as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    command = [python, "-m", "jupyterlab", *lab_args]
    if as_root and "--allow-root" not in lab_args:
        command.append("--allow-root")
    return command


def main(argv: Sequence[str]) -> None:
    """Replace this process by JupyterLab (so Ctrl+C and signals reach it directly)."""
    args = list(argv)
    instructor = "--instructor" in args
    if instructor:
        args.remove("--instructor")
    command = lab_command(args)
    env = lab_environment(os.environ, instructor=instructor)
    sys.stdout.flush()
    os.execve(command[0], command, env)


if __name__ == "__main__":
    main(sys.argv[1:])
