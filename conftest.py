"""Test-session set-up shared by unit tests and the notebooks run through nbval.

Every run trains from scratch: checkpoints and recorded results go to fresh temporary
folders (notebook kernels inherit these variables), so an old checkpoint can never
stand in for the training a notebook is meant to do.
"""

import os
import tempfile

import matplotlib

matplotlib.use("Agg")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: starts servers or runs notebooks (still part of make test)"
    )
    scratch = tempfile.mkdtemp(prefix="course-test-")
    os.environ["COURSE_CHECKPOINT_DIR"] = os.path.join(scratch, "checkpoints")
    os.environ["COURSE_RESULTS_DIR"] = os.path.join(scratch, "results")
    os.environ.setdefault("MPLBACKEND", "Agg")
    # Idle OpenMP threads sleep instead of spinning: on a busy 2-core machine spinning threads
    # slow a training step 10x. Read once when a kernel starts, so it must be set here.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
