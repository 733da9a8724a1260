"""``TrainConfig``: the plain settings of one training run (how long, how, where to save).

The objects being trained (model, dataset, loss function, optimizer, scheduler) are arguments
of :func:`course_utils.engine.loop.fit`; everything that is a number, a name or a switch lives
here, checked once when the config is built::

    TrainConfig(steps=300, batch_size=32, checkpoint="crop_classifier")

A wrong type raises ``TypeError`` and a value out of range ``ValueError``, both naming the field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from course_utils.core.validate import check_int

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    """The settings of a :func:`~course_utils.engine.loop.fit` run.

    Attributes:
        steps: optimizer steps to train for in total (int >= 1), counting those of earlier
            sessions when resuming.
        batch_size: items per batch (int >= 1; reduced to the dataset size if larger).
        seed: seeds Python, NumPy and torch (``seed_everything``) and the batch order (int >= 0).
        val_every: run ``val_fn`` every this many steps (and after the last step); ``None``:
            only after the last step. Needs ``val_fn``.
        checkpoint: a name (stored as ``checkpoint_dir()/name.pt``) or a path; ``None``: no
            checkpoint. If it exists, a finished run is loaded without training and an
            unfinished one resumes.
        checkpoint_every: save the checkpoint every this many steps (int >= 1), besides at
            the end and on KeyboardInterrupt.
        device: ``"cpu"``, ``"cuda"``, a ``torch.device``, or ``None`` for ``pick_device()``.
        amp: mixed precision (fp16 autocast + GradScaler) on CUDA; ignored on other devices.
        stop_after: stop after this step, saving the checkpoint, to simulate a disconnect
            (needs ``checkpoint``); calling ``fit`` again with the same arguments resumes.
        progress: show a tqdm bar with the live loss.
    """

    steps: int
    batch_size: int
    seed: int = 0
    val_every: int | None = None
    checkpoint: str | os.PathLike | None = None
    checkpoint_every: int = 50
    device: torch.device | str | None = None
    amp: bool = True
    stop_after: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        counts = {
            "steps": check_int(self.steps, "steps"),
            "batch_size": check_int(self.batch_size, "batch_size"),
            "seed": check_int(self.seed, "seed", minimum=0),
            "val_every": check_int(self.val_every, "val_every", allow_none=True),
            "checkpoint_every": check_int(self.checkpoint_every, "checkpoint_every"),
            "stop_after": check_int(self.stop_after, "stop_after", allow_none=True),
        }
        for name, value in counts.items():  # NumPy integers become plain ints
            object.__setattr__(self, name, value)
        _check_checkpoint(self.checkpoint)
        _check_device(self.device)
        for name in ("amp", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(
                    f"{name} must be True or False, got {type(getattr(self, name)).__name__}"
                )
        if self.stop_after is not None and self.checkpoint is None:
            raise ValueError(
                "stop_after simulates a disconnect and needs checkpoint= to resume from"
            )

    @property
    def last_step(self) -> int:
        """The step this call trains up to: ``steps``, or ``stop_after`` when that is earlier."""
        return min(self.steps, self.stop_after) if self.stop_after is not None else self.steps


def _check_checkpoint(checkpoint) -> None:
    """``None``, a non-empty name (str) or a path (``os.PathLike``)."""
    if checkpoint is None or isinstance(checkpoint, os.PathLike):
        return
    if not isinstance(checkpoint, str):
        raise TypeError(
            f"checkpoint must be a name (str) or a path, got {type(checkpoint).__name__}"
        )
    if not checkpoint.strip():
        raise ValueError("checkpoint name must not be empty")


def _check_device(device) -> None:
    """``None``, a ``torch.device`` or a string ``torch.device`` understands."""
    if device is None or isinstance(device, torch.device):
        return
    if not isinstance(device, str):
        raise TypeError(
            f"device must be a str such as 'cpu' or 'cuda', a torch.device or None, "
            f"got {type(device).__name__}"
        )
    try:
        torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"device {device!r} is not a device torch knows: {error}") from error
