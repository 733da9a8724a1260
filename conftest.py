"""Test-session set-up shared by unit tests and the notebooks run through nbval.

Every run trains from scratch: checkpoints and recorded results go to fresh temporary
folders (notebook kernels inherit these variables), so an old checkpoint can never
stand in for the training a notebook is meant to do.
"""

import os
import tempfile

import matplotlib

from course_utils.core.kernel_env import apply_kernel_environment

matplotlib.use("Agg")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: starts servers or runs notebooks (still part of make test)"
    )
    scratch = tempfile.mkdtemp(prefix="course-test-")
    os.environ["COURSE_CHECKPOINT_DIR"] = os.path.join(scratch, "checkpoints")
    os.environ["COURSE_RESULTS_DIR"] = os.path.join(scratch, "results")
    os.environ.setdefault("MPLBACKEND", "Agg")
    # The kernels nbval starts inherit this: OMP_WAIT_POLICY=PASSIVE and the rest of the
    # course's kernel environment (read once when a kernel starts, so it must be set here).
    apply_kernel_environment(os.environ)
