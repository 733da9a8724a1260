"""Checkpoint files for the shared training loop: where they live, atomic writes, safe loads.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so it loads
with ``torch.load(..., weights_only=True)`` (no arbitrary code runs when a notebook
opens a file someone shared). Writing goes to a temporary file in the same folder
followed by ``os.replace``, so a disconnect while saving never leaves a half-written
checkpoint under the real name.

The random-generator states (Python, NumPy, torch CPU and CUDA) are stored as tensors
and plain numbers, which is what makes a resumed run repeat the uninterrupted one.
"""

from __future__ import annotations

import os
import random
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from course_utils.core.paths import checkpoint_dir


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be used: unreadable, truncated, or written for another model."""


def checkpoint_path(checkpoint: str | os.PathLike) -> Path:
    """Where a checkpoint lives.

    A bare name such as ``"fast_rcnn"`` becomes ``checkpoint_dir() / "fast_rcnn.pt"``
    (``$COURSE_CHECKPOINT_DIR`` may point at Google Drive). Anything that looks like a path
    (a ``Path``, or a string holding a ``/`` or ending in ``.pt``/``.pth``) is used as is.
    """
    if isinstance(checkpoint, os.PathLike):
        return Path(checkpoint).expanduser()
    if not isinstance(checkpoint, str):
        raise TypeError(
            f"checkpoint must be a name (str) or a path, got {type(checkpoint).__name__}"
        )
    if not checkpoint.strip():
        raise ValueError("checkpoint name must not be empty")
    looks_like_path = (
        "/" in checkpoint or os.sep in checkpoint or checkpoint.endswith((".pt", ".pth"))
    )
    if looks_like_path:
        return Path(checkpoint).expanduser()
    return checkpoint_dir() / f"{checkpoint}.pt"


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically and return the path.

    The bytes go to a temporary file in the same folder, are flushed to disk, and then
    ``os.replace`` swaps it in. If anything fails (or the user interrupts), the temporary
    file is removed and an existing checkpoint at ``path`` is left untouched.
    """
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` onto the CPU.

    Uses ``torch.load(weights_only=True)``. Raises :class:`CheckpointError` naming the file
    and what to do when it is missing, truncated, corrupt or not a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        if zipfile.is_zipfile(path) and "weights_only" in str(error).lower().replace(" ", "_"):
            cause = (
                "it holds Python objects that safe loading (torch.load(weights_only=True)) "
                "refuses, so it was not written by course_utils"
            )
        else:
            first_line = (str(error).strip().splitlines() or [""])[0][:120]
            cause = (
                f"it is truncated or corrupt ({type(error).__name__}: {first_line}); the runtime "
                "may have stopped while writing it, or a Drive sync is incomplete"
            )
        raise CheckpointError(
            f"cannot read the checkpoint {path}: {cause}. Delete the file to train from "
            "scratch, or pass another checkpoint name."
        ) from error
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path} holds a {type(state).__name__}, not a checkpoint dict; "
            "delete it or pass another checkpoint name"
        )
    return state


def rng_state() -> dict:
    """The states of Python's, NumPy's and torch's (CPU and every CUDA device) generators.

    Only tensors, ints, floats, strings, lists and ``None``: safe for ``weights_only`` loading.
    """
    version, python_words, gauss_next = random.getstate()
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "python": {
            "version": version,
            "state": torch.tensor(python_words, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict) -> None:
    """Restore generator states captured by :func:`rng_state`.

    CUDA states are restored only when the same number of CUDA devices is present
    (a checkpoint from a GPU runtime still resumes on a CPU, just not bit-for-bit).
    """
    python = state["python"]
    random.setstate(
        (
            python["version"],
            tuple(int(word) for word in python["state"].tolist()),
            python["gauss_next"],
        )
    )
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["kind"],
            numpy["keys"].numpy().astype(np.uint32),
            numpy["position"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)
