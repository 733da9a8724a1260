"""Pick the device, seed every generator, choose DataLoader workers, time on one thread, report the
environment.

Nothing here runs at import: notebooks call these functions in their set-up cell.
"""

from __future__ import annotations

import os
import platform
import random
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

_MIN_SHM_BYTES_PER_WORKER = 512 * 1024**2


def pick_device(prefer: str | None = None) -> torch.device:
    """The fastest available device: CUDA, then Apple's MPS, then the CPU.

    ``prefer`` ("cuda", "mps" or "cpu") forces one; asking for one that is not
    available raises ``ValueError`` so a typo never silently falls back to the CPU.
    """
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None
        and torch.backends.mps.is_available(),
    }
    if prefer is not None:
        if prefer not in available:
            raise ValueError(f"prefer must be one of 'cuda', 'mps', 'cpu' or None, got {prefer!r}")
        if not available[prefer]:
            raise ValueError(
                f"device {prefer!r} was requested but is not available on this machine"
            )
        return torch.device(prefer)
    for name in ("cuda", "mps"):
        if available[name]:
            return torch.device(name)
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's (CPU and CUDA) random generators."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _shared_memory_bytes() -> int:
    """Free space in /dev/shm, where DataLoader workers pass tensors (0 if absent)."""
    try:
        return shutil.disk_usage("/dev/shm").free
    except OSError:
        return 0


def loader_workers(device: torch.device | str | None = None) -> int:
    """How many DataLoader worker processes to use.

    The course's datasets live in memory, so workers only pay off when a GPU is
    waiting. On a CPU the main process needs every core for the model: 0 workers.
    With CUDA, use up to 2 workers (Colab has 2 CPUs), and 0 when shared memory is
    too small to hold the batches (Colab's /dev/shm is small; a crash there reads
    "bus error" or "DataLoader worker killed").
    """
    device = torch.device(device) if device is not None else pick_device()
    if device.type != "cuda":
        return 0
    cpus = os.cpu_count() or 1
    workers = min(2, max(cpus - 1, 0))
    while workers and _shared_memory_bytes() < workers * _MIN_SHM_BYTES_PER_WORKER:
        workers -= 1
    return workers


def loader_kwargs(device: torch.device | str | None = None) -> dict:
    """Keyword arguments for ``torch.utils.data.DataLoader`` following :func:`loader_workers`."""
    device = torch.device(device) if device is not None else pick_device()
    workers = loader_workers(device)
    return {
        "num_workers": workers,
        "pin_memory": device.type == "cuda",
        "persistent_workers": workers > 0,
    }


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for queued GPU work so a timer measures it (no-op on the CPU)."""
    device = torch.device(device) if device is not None else pick_device()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block on one CPU thread (``torch.set_num_threads(1)``), then restore the previous
    count.

    For CPU timings: on a machine shared with other programs several threads mostly wait for each
    other, so one thread gives steadier numbers, and a comparison of two methods measures their
    work, not how well each parallelizes. It does not affect GPU kernels. The count is restored
    even if the block raises.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def environment_report(device: torch.device | str | None = None) -> str:
    """One line saying what this notebook runs on, e.g.

    ``Python 3.12.1 · torch 2.11.0 · torchvision 0.26.0 · device cuda (Tesla T4, 15.0 GB) · 2 CPUs``
    """
    import torchvision

    device = torch.device(device) if device is not None else pick_device()
    where = device.type
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        where += f" ({props.name}, {props.total_memory / 1e9:.1f} GB)"
    return (
        f"Python {platform.python_version()} · torch {torch.__version__} · "
        f"torchvision {torchvision.__version__} · device {where} · {os.cpu_count()} CPUs · "
        f"{torch.get_num_threads()} torch threads"
    )


def full_float32_precision() -> None:
    """Turn off TF32 for cuDNN convolutions and CUDA matrix products (Ampere and later GPUs: A100,
    L4, H100).

    PyTorch lets cuDNN convolutions use TF32 (10-bit mantissa) by default but not matrix products,
    so on those GPUs a ``Conv2d`` and the ``Linear`` layer it equals differ by ~1e-2, and the
    notebooks' equality checks (convolutionalization, transposed convolution) would fail there but
    not on a T4 or a CPU. The course's models are small: full float32 costs them little.
    """
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def notebook_setup(seed: int = 0, prefer: str | None = None) -> torch.device:
    """The second line of every notebook: seed, full float32 precision on every GPU
    (:func:`full_float32_precision`), print the environment report, return the device."""
    device = pick_device(prefer)
    seed_everything(seed)
    full_float32_precision()
    print(environment_report(device))
    return device
