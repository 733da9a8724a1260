"""A ``fit`` checkpoint: what it holds, whether it fits the run, and resuming from it.

The file (written by :func:`course_utils.engine.checkpoint.save_checkpoint`) is one dict::

    {"format": "course_utils.train/1", "step": int, "steps": int,
     "config": {"batch_size", "seed", "num_items", "model", "optimizer", "scheduler"},
     "model", "optimizer", "scheduler", "scaler": state dicts (scheduler may be None),
     "history": History.state_dict(), "rng": rng_state() after step "step"}

The format string stays ``"course_utils.train/1"`` so that checkpoints written before the
engine was split into modules keep loading.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from course_utils.engine.checkpoint import CheckpointError
from course_utils.engine.config import TrainConfig
from course_utils.engine.history import History

CHECKPOINT_FORMAT = "course_utils.train/1"

__all__ = [
    "CHECKPOINT_FORMAT",
    "check_checkpoint_matches",
    "load_training_state",
    "run_settings",
    "training_state",
    "warn_if_settings_changed",
]


def run_settings(model, dataset, optimizer, scheduler, config: TrainConfig) -> dict:
    """The settings a checkpoint records to recognise its run (the checkpoint's ``"config"``).

    ``{"batch_size": int, "seed": int, "num_items": len(dataset), "model": class name,
    "optimizer": class name, "scheduler": class name or None}``.
    """
    return {
        "batch_size": config.batch_size,
        "seed": config.seed,
        "num_items": len(dataset),
        "model": type(model).__name__,
        "optimizer": type(optimizer).__name__,
        "scheduler": type(scheduler).__name__ if scheduler is not None else None,
    }


def training_state(
    *,
    settings: dict,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    scaler: torch.amp.GradScaler,
    history: History,
    rng: dict,
) -> dict:
    """The checkpoint dict of a run after step ``history.step`` (see the module docstring)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "step": history.step,
        "steps": history.steps,
        "config": settings,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict(),
        "history": history.state_dict(),
        "rng": rng,
    }


def check_checkpoint_matches(state: dict, path: Path, model: torch.nn.Module, optimizer) -> None:
    """Raise CheckpointError if ``state`` is not a fit checkpoint of this model and optimizer."""
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a checkpoint written by course_utils.engine.fit "
            f"(format {state.get('format')!r}); delete it or pass another checkpoint name"
        )
    details = _state_dict_differences(state["model"], model.state_dict())
    if details:
        raise CheckpointError(
            f"{path} was written for a different model ({state['config'].get('model')}, "
            f"now {type(model).__name__}): {details}. Use another checkpoint name for this "
            "model, or delete the file to train from scratch."
        )
    saved_optimizer = state["config"].get("optimizer")
    if saved_optimizer != type(optimizer).__name__:
        raise CheckpointError(
            f"{path} was written with optimizer {saved_optimizer}, "
            f"now {type(optimizer).__name__}; use another checkpoint name or delete the file"
        )


def _state_dict_differences(saved: Mapping, expected: Mapping) -> str:
    """How two model state dicts differ, or ``""`` when they match in keys and shapes.

    E.g. ``"missing: ['fc.bias']; shape differs: ['fc.weight (2, 16) vs (2, 32)']"``,
    at most 3 keys per kind.
    """
    missing = [key for key in expected if key not in saved]
    unexpected = [key for key in saved if key not in expected]
    reshaped = [
        f"{key} {tuple(saved[key].shape)} vs {tuple(expected[key].shape)}"
        for key in expected
        if key in saved and hasattr(saved[key], "shape") and saved[key].shape != expected[key].shape
    ]
    return "; ".join(
        f"{label}: {items[:3]}{' ...' if len(items) > 3 else ''}"
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape differs", reshaped),
        )
        if items
    )


def load_training_state(
    state: dict, path: Path, optimizer, scheduler, scaler: torch.amp.GradScaler
) -> None:
    """Load the optimizer, scheduler and GradScaler states of a checkpoint.

    Raises CheckpointError when they do not fit (another optimizer's groups, a scheduler
    where the checkpoint has none or the reverse).
    """
    try:
        optimizer.load_state_dict(state["optimizer"])
        if (scheduler is None) != (state["scheduler"] is None):
            raise ValueError(
                "the checkpoint was written "
                + ("without" if scheduler is not None else "with")
                + " a scheduler"
            )
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"{path} does not fit this optimizer/scheduler ({error}); use another "
            "checkpoint name or delete the file"
        ) from error
    if scaler.is_enabled() and state["scaler"]:
        scaler.load_state_dict(state["scaler"])


def warn_if_settings_changed(
    saved: Mapping, settings: Mapping, path: Path, stacklevel: int = 2
) -> None:
    """Warn when batch size, seed or dataset size differ from the checkpoint's: the resumed
    run then trains on other batches than the uninterrupted one would have.

    ``stacklevel`` counts as in ``warnings.warn``: 2 points the warning at the caller.
    """
    changed = [
        f"{key} {saved.get(key)!r} -> {settings[key]!r}"
        for key in ("batch_size", "seed", "num_items")
        if saved.get(key) != settings[key]
    ]
    if changed:
        warnings.warn(
            f"resuming {path} with changed settings ({', '.join(changed)}): training continues "
            "but will not repeat the uninterrupted run",
            stacklevel=stacklevel,
        )
