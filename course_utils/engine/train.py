"""One training loop for every notebook: ``fit``, the loss functions it calls, and ``History``.

``fit`` counts optimizer steps, not epochs. Its batches come from a seeded, resumable
sampler (each epoch is a permutation drawn from a generator seeded by ``(seed, epoch)``),
and its checkpoint holds the model, optimizer, scheduler, gradient scaler, history and
every random generator. So when a Colab runtime disconnects, running the same cell again
continues from the checkpoint and ends with the same weights as an uninterrupted run
(bit for bit on the CPU with ``num_workers=0``, the course's CPU setting). Once the run is
finished, the same cell only loads the weights: the load-or-train pattern.

    history = fit(model, train_set, loss_fn=classification_loss, optimizer=optimizer,
                  steps=300, batch_size=32, checkpoint="crop_classifier")
    viz.plot_history(history)
"""

from __future__ import annotations

import math
import numbers
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler, default_collate
from tqdm.auto import tqdm

from course_utils.core.device import loader_kwargs, pick_device, seed_everything
from course_utils.core.tensors import segmentation_logits, to_device
from course_utils.engine.checkpoint import (
    CheckpointError,
    checkpoint_path,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)

CHECKPOINT_FORMAT = "course_utils.train/1"

__all__ = [
    "CheckpointError",
    "History",
    "SeededBatchSampler",
    "classification_loss",
    "detection_loss",
    "epoch_permutation",
    "fit",
    "segmentation_logits",
    "segmentation_loss",
    "to_device",
]


# --------------------------------------------------------------------------- loss functions


def classification_loss(model: torch.nn.Module, batch) -> torch.Tensor:
    """Cross-entropy of ``model(x)`` (B, K) logits against ``y`` (B,) int64 for ``batch = (x, y)``."""
    images, labels = batch
    return F.cross_entropy(model(images), labels)


def detection_loss(model: torch.nn.Module, batch) -> dict[str, torch.Tensor]:
    """The loss dict of a torchvision-style detector for ``batch = (images, targets)``.

    ``images``: list of float CHW tensors in [0, 1]; ``targets``: list of dicts with
    ``boxes`` (N, 4) xyxy pixels and ``labels`` (N,) int64 (plus ``masks`` for Mask R-CNN).
    In train mode such a model returns e.g. ``{"loss_classifier": ..., "loss_box_reg": ...,
    "loss_objectness": ..., "loss_rpn_box_reg": ...}``; ``fit`` sums them and logs each.
    """
    images, targets = batch
    losses = model(list(images), list(targets))
    if not isinstance(losses, Mapping):
        raise TypeError(
            "detection_loss expects a model that returns a dict of losses when given "
            f"(images, targets) in train mode (torchvision's detectors do); got {type(losses).__name__}"
        )
    return dict(losses)


def segmentation_loss(model: torch.nn.Module, batch, ignore_index: int = 255):
    """Pixel-wise cross-entropy for ``batch = (images (B, 3, H, W), masks (B, H, W) int64)``.

    Pixels equal to ``ignore_index`` (255) do not count. The model may return logits or a
    dict with ``"out"``; logits are up-sampled to the mask size when smaller. When the dict
    also has ``"aux"`` (torchvision's auxiliary classifier), returns
    ``{"out": loss, "aux": 0.5 * aux_loss}`` as torchvision's reference recipe does.
    """
    images, masks = batch
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    masks = masks.as_subclass(torch.Tensor).long()
    output = model(images)
    loss = F.cross_entropy(
        segmentation_logits(output, masks.shape[-2:]), masks, ignore_index=ignore_index
    )
    if isinstance(output, Mapping) and output.get("aux") is not None:
        aux = F.cross_entropy(
            segmentation_logits(output["aux"], masks.shape[-2:]), masks, ignore_index=ignore_index
        )
        return {"out": loss, "aux": 0.5 * aux}
    return loss


def _total_loss(output) -> tuple[torch.Tensor, float, dict[str, float]]:
    """(tensor to back-propagate, its value, {component: value}) from a loss_fn's result."""
    if isinstance(output, torch.Tensor):
        parts = {}
        total = output
    elif isinstance(output, Mapping) and output:
        parts = dict(output)
        if not all(isinstance(value, torch.Tensor) for value in parts.values()):
            raise TypeError(
                "every value of the loss dict must be a tensor, got "
                f"{ {key: type(value).__name__ for key, value in parts.items()} }"
            )
        total = sum(parts.values())
    else:
        raise TypeError(
            "loss_fn(model, batch) must return a scalar tensor or a non-empty dict of scalar "
            f"tensors, got {type(output).__name__}"
        )
    if total.numel() != 1 or any(value.numel() != 1 for value in parts.values()):
        raise ValueError(
            "loss_fn must return scalar losses (reduce with .mean() or .sum()), got shapes "
            f"{tuple(total.shape)} {[tuple(value.shape) for value in parts.values()]}"
        )
    values = torch.stack(
        [
            total.detach().float().reshape(()),
            *(value.detach().float().reshape(()) for value in parts.values()),
        ]
    ).tolist()
    return total.reshape(()), values[0], dict(zip(map(str, parts), values[1:]))


# --------------------------------------------------------------------------- resumable batches


def epoch_permutation(num_items: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of the items in ``epoch``: ``randperm`` from a generator seeded by (seed, epoch)."""
    mixed = int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0])
    generator = torch.Generator().manual_seed(mixed)
    return torch.randperm(num_items, generator=generator)


class SeededBatchSampler(Sampler[list[int]]):
    """The index batches of optimizer steps ``start .. stop - 1``, the same for any ``start``.

    Step ``s`` takes batch ``s % batches_per_epoch`` of epoch ``s // batches_per_epoch``
    where ``batches_per_epoch = num_items // batch_size`` (the incomplete last batch of an
    epoch is dropped; a batch size larger than the dataset is reduced to the dataset size).
    Because nothing depends on what ran before, a run resumed at step ``k`` sees exactly
    the batches an uninterrupted run sees from step ``k`` on.
    """

    def __init__(
        self, num_items: int, batch_size: int, *, seed: int = 0, start: int = 0, stop: int
    ):
        if num_items < 1:
            raise ValueError(f"the dataset is empty (num_items={num_items})")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= start <= stop:
            raise ValueError(f"need 0 <= start <= stop, got start={start}, stop={stop}")
        self.num_items, self.seed, self.start, self.stop = num_items, seed, start, stop
        self.batch_size = min(batch_size, num_items)
        self.batches_per_epoch = num_items // self.batch_size

    def batch(self, step: int) -> list[int]:
        """The dataset indices used by optimizer step ``step`` (0-based)."""
        epoch, position = divmod(step, self.batches_per_epoch)
        order = epoch_permutation(self.num_items, self.seed, epoch)
        return order[position * self.batch_size : (position + 1) * self.batch_size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        epoch, order = None, None
        for step in range(self.start, self.stop):
            step_epoch, position = divmod(step, self.batches_per_epoch)
            if step_epoch != epoch:
                epoch, order = step_epoch, epoch_permutation(self.num_items, self.seed, step_epoch)
            yield order[position * self.batch_size : (position + 1) * self.batch_size].tolist()

    def __len__(self) -> int:
        return self.stop - self.start


# --------------------------------------------------------------------------- history


@dataclass
class History:
    """What ``fit`` recorded: one dict per optimizer step.

    Each record is ``{"step": int (1-based), "loss": float, "components": {name: float},
    "lr": float (learning rate of the first parameter group used by that step)}`` plus
    ``"val": {metric: float}`` on steps where ``val_fn`` ran. ``seconds`` is the training
    time summed over all sessions; ``resumed_from`` the step this call started from
    (``None`` for a fresh start).
    """

    records: list[dict] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    resumed_from: int | None = None
    checkpoint: str | None = None

    @property
    def step(self) -> int:
        """The number of optimizer steps done so far."""
        return self.records[-1]["step"] if self.records else 0

    @property
    def finished(self) -> bool:
        return self.steps > 0 and self.step >= self.steps

    @property
    def losses(self) -> list[float]:
        """The loss of every step, in order."""
        return [record["loss"] for record in self.records]

    @property
    def val(self) -> list[dict]:
        """``[{"step": s, metric: value, ...}]`` for every step where validation ran."""
        return [
            {"step": record["step"], **record["val"]}
            for record in self.records
            if record.get("val")
        ]

    def state_dict(self) -> dict:
        """Plain lists, dicts and numbers (safe for ``torch.load(weights_only=True)``)."""
        return {"records": self.records, "steps": self.steps, "seconds": self.seconds}

    @classmethod
    def from_state_dict(cls, state: Mapping, **extra) -> History:
        return cls(
            records=list(state["records"]),
            steps=int(state["steps"]),
            seconds=float(state["seconds"]),
            **extra,
        )

    def flat_records(self) -> list[dict]:
        """One flat dict per step: ``step``, ``loss``, ``lr``, each loss component, and the
        validation metrics prefixed ``val_`` (unless already so named), e.g.
        ``{"step": 50, "loss": 0.8, "lr": 0.01, "loss_classifier": 0.3, "val_AP": 0.41}``."""
        flat = []
        for record in self.records:
            row = {
                "step": record["step"],
                "loss": record["loss"],
                "lr": record["lr"],
                **record["components"],
            }
            row.update(
                {
                    key if key.startswith("val") else f"val_{key}": value
                    for key, value in (record.get("val") or {}).items()
                }
            )
            flat.append(row)
        return flat

    def __repr__(self) -> str:
        last_val = self.val[-1] if self.val else {}
        shown = ", ".join(f"{key} {value:.3g}" for key, value in list(last_val.items())[1:4])
        loss = f", loss {self.losses[-1]:.4g}" if self.records else ""
        return (
            f"History(step {self.step}/{self.steps}{loss}{', ' + shown if shown else ''}, "
            f"{self.seconds:.1f} s{', resumed from ' + str(self.resumed_from) if self.resumed_from else ''})"
        )


# --------------------------------------------------------------------------- fit


def _check_positive_int(value, name: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_fit_arguments(
    model,
    dataset,
    loss_fn,
    optimizer,
    steps,
    batch_size,
    scheduler,
    val_fn,
    val_every,
    checkpoint,
    checkpoint_every,
    stop_after,
) -> None:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise TypeError(
            f"dataset must be a map-style dataset with __len__ and __getitem__, got {type(dataset).__name__}"
        )
    if len(dataset) == 0:
        raise ValueError("dataset is empty")
    if not callable(loss_fn):
        raise TypeError(
            "loss_fn must be a function loss_fn(model, batch) -> tensor or dict of tensors"
        )
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        raise TypeError(
            "fit steps the scheduler once per optimizer step without arguments; "
            "ReduceLROnPlateau needs a metric and is not supported"
        )
    _check_positive_int(steps, "steps")
    _check_positive_int(batch_size, "batch_size")
    _check_positive_int(checkpoint_every, "checkpoint_every")
    _check_positive_int(val_every, "val_every", allow_none=True)
    _check_positive_int(stop_after, "stop_after", allow_none=True)
    if val_every is not None and val_fn is None:
        raise ValueError("val_every needs val_fn (a function val_fn(model) -> dict of floats)")
    if val_fn is not None and not callable(val_fn):
        raise TypeError("val_fn must be a function val_fn(model) -> dict of floats")
    if stop_after is not None and checkpoint is None:
        raise ValueError("stop_after simulates a disconnect and needs checkpoint= to resume from")


def _check_checkpoint_matches(state: dict, path, model: torch.nn.Module, optimizer) -> None:
    """Raise CheckpointError if ``state`` is not a fit checkpoint of this model and optimizer."""
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a checkpoint written by course_utils.engine.train.fit "
            f"(format {state.get('format')!r}); delete it or pass another checkpoint name"
        )
    saved, expected = state["model"], model.state_dict()
    missing = [key for key in expected if key not in saved]
    unexpected = [key for key in saved if key not in expected]
    reshaped = [
        f"{key} {tuple(saved[key].shape)} vs {tuple(expected[key].shape)}"
        for key in expected
        if key in saved and hasattr(saved[key], "shape") and saved[key].shape != expected[key].shape
    ]
    if missing or unexpected or reshaped:
        details = "; ".join(
            f"{label}: {items[:3]}{' ...' if len(items) > 3 else ''}"
            for label, items in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("shape differs", reshaped),
            )
            if items
        )
        raise CheckpointError(
            f"{path} was written for a different model ({state['config'].get('model')}, "
            f"now {type(model).__name__}): {details}. Use another checkpoint name for this "
            "model, or delete the file to train from scratch."
        )
    saved_optimizer = state["config"].get("optimizer")
    if saved_optimizer != type(optimizer).__name__:
        raise CheckpointError(
            f"{path} was written with optimizer {saved_optimizer}, now {type(optimizer).__name__}; "
            "use another checkpoint name or delete the file"
        )


def _load_training_state(state: dict, path, optimizer, scheduler, scaler) -> None:
    """Optimizer, scheduler and GradScaler states from a checkpoint (CheckpointError if they do not fit)."""
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


def _warn_if_config_changed(saved: Mapping, config: Mapping, path) -> None:
    changed = [
        f"{key} {saved.get(key)!r} -> {config[key]!r}"
        for key in ("batch_size", "seed", "num_items")
        if saved.get(key) != config[key]
    ]
    if changed:
        warnings.warn(
            f"resuming {path} with changed settings ({', '.join(changed)}): training continues but "
            "will not repeat the uninterrupted run",
            stacklevel=3,
        )


@contextmanager
def _interrupts_deferred():
    """Hold back Ctrl-C / "interrupt kernel" until the block is done (main thread only).

    The parameter update runs inside, so an interrupt never leaves a half-updated model.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is None
    ):
        yield  # not ours to change (a handler installed outside Python cannot be put back)
        return
    received = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    except (ValueError, OSError):  # not allowed here (e.g. a sub-interpreter)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            if callable(previous):
                previous(signal.SIGINT, None)
            elif previous == signal.SIG_DFL:
                raise KeyboardInterrupt


def _validate(model: torch.nn.Module, val_fn: Callable) -> dict[str, float]:
    """Run ``val_fn(model)`` in eval mode without gradients; keep its scalar values as floats."""
    model.eval()
    try:
        with torch.no_grad():
            metrics = val_fn(model)
    finally:
        model.train()
    if not isinstance(metrics, Mapping):
        raise TypeError(f"val_fn(model) must return a dict of floats, got {type(metrics).__name__}")
    kept = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            kept[str(key)] = float(value)
        elif isinstance(value, numbers.Real):
            kept[str(key)] = float(value)
    return kept  # non-scalar values (e.g. per-class IoU tensors) are not recorded


def _make_loader(
    dataset, batch_size: int, collate_fn, seed: int, start: int, stop: int, device: torch.device
) -> DataLoader:
    sampler = SeededBatchSampler(len(dataset), batch_size, seed=seed, start=start, stop=stop)
    # A private generator: creating the loader's iterator must not draw from the global
    # torch generator, whose state the checkpoint restores.
    worker_seed = int(np.random.SeedSequence([seed, start]).generate_state(1, dtype=np.uint64)[0])
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_fn or default_collate,
        generator=torch.Generator().manual_seed(worker_seed),
        **loader_kwargs(device),
    )


def fit(
    model: torch.nn.Module,
    dataset,
    *,
    loss_fn: Callable,
    optimizer: torch.optim.Optimizer,
    steps: int,
    batch_size: int,
    collate_fn: Callable | None = None,
    scheduler=None,
    val_fn: Callable | None = None,
    val_every: int | None = None,
    checkpoint=None,
    checkpoint_every: int = 50,
    device: torch.device | str | None = None,
    amp: bool = True,
    seed: int = 0,
    stop_after: int | None = None,
    progress: bool = True,
) -> History:
    """Train ``model`` for ``steps`` optimizer steps and return its :class:`History`.

    Args:
        model: moved to ``device``; build ``optimizer`` (and ``scheduler``) on its parameters first.
        dataset: map-style dataset; batches are drawn by :class:`SeededBatchSampler` and
            collated by ``collate_fn`` (default: ``default_collate``; detection needs
            ``course_utils.data.datasets.detection_collate``). DataLoader workers follow
            ``course_utils.core.device.loader_kwargs``.
        loss_fn: ``loss_fn(model, batch) -> scalar tensor`` or dict of scalar tensors (summed
            for backward, each logged), e.g. :func:`classification_loss`,
            :func:`detection_loss`, :func:`segmentation_loss`. Runs under autocast.
        scheduler: stepped once after every optimizer step (ReduceLROnPlateau is not supported).
        val_fn: ``val_fn(model) -> {metric: float}``, run in eval mode under ``no_grad`` every
            ``val_every`` steps and after the last step; train mode is restored afterwards.
        checkpoint: a name (stored as ``checkpoint_dir()/name.pt``) or a path. Written every
            ``checkpoint_every`` steps, at the end, and on KeyboardInterrupt (then re-raised).
            If it exists: a finished run is loaded without training, an unfinished one resumes.
        amp: mixed precision (fp16 autocast + GradScaler) on CUDA; ignored on other devices.
        seed: seeds Python, NumPy and torch (``seed_everything``) and the batch order.
        stop_after: stop after this step (saving the checkpoint), to simulate a disconnect;
            calling ``fit`` again with the same arguments resumes.
        progress: show a tqdm bar with the live loss.

    Raises:
        CheckpointError: the checkpoint file is unreadable, or belongs to another model/optimizer.
        FloatingPointError: the loss became NaN or infinite (the last checkpoint is kept).
    """
    _check_fit_arguments(
        model,
        dataset,
        loss_fn,
        optimizer,
        steps,
        batch_size,
        scheduler,
        val_fn,
        val_every,
        checkpoint,
        checkpoint_every,
        stop_after,
    )
    device = torch.device(device) if device is not None else pick_device()
    path = checkpoint_path(checkpoint) if checkpoint is not None else None
    stop = min(steps, stop_after) if stop_after is not None else steps
    config = {
        "batch_size": batch_size,
        "seed": seed,
        "num_items": len(dataset),
        "model": type(model).__name__,
        "optimizer": type(optimizer).__name__,
        "scheduler": type(scheduler).__name__ if scheduler is not None else None,
    }
    was_training = model.training
    seed_everything(seed)
    model.to(device)
    use_amp = bool(amp) and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    history = History(steps=steps, checkpoint=str(path) if path is not None else None)
    saved_rng = None

    if path is not None and path.exists():
        state = load_checkpoint(path)
        _check_checkpoint_matches(state, path, model, optimizer)
        model.load_state_dict(state["model"])
        history = History.from_state_dict(
            state["history"], resumed_from=state["step"], checkpoint=str(path)
        )
        history.steps = steps
        if state["step"] >= stop:
            if state["step"] >= steps:
                print(
                    f"loaded the finished checkpoint {path} ({state['step']} steps); not training. "
                    "Delete it or pass another checkpoint name to train again."
                )
            else:
                print(
                    f"checkpoint {path} is already at step {state['step']} of {steps}; not training "
                    f"(stop_after={stop_after})"
                )
            model.train(was_training)
            return history
        _warn_if_config_changed(state["config"], config, path)
        _load_training_state(state, path, optimizer, scheduler, scaler)
        saved_rng = state["rng"]
        print(f"resumed from step {state['step']} of {steps} ({path})")

    start = history.step
    loader = _make_loader(dataset, batch_size, collate_fn, seed, start, stop, device)
    non_blocking = device.type == "cuda"
    started = time.perf_counter()
    seconds_before = history.seconds

    def save(step_rng) -> None:
        history.seconds = seconds_before + time.perf_counter() - started
        save_checkpoint(
            {
                "format": CHECKPOINT_FORMAT,
                "step": history.step,
                "steps": steps,
                "config": config,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "scaler": scaler.state_dict(),
                "history": history.state_dict(),
                "rng": step_rng,
            },
            path,
        )

    bar = tqdm(
        total=steps,
        initial=start,
        disable=not progress,
        unit="step",
        desc=path.stem if path is not None else "training",
    )
    phase, step_rng = "setup", None
    model.train()
    try:
        batches = iter(loader)
        if saved_rng is not None:
            set_rng_state(saved_rng)
        while history.step < stop:
            step_rng = rng_state() if path is not None else None  # = state after the previous step
            phase = "step"
            batch = to_device(next(batches), device, non_blocking)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                total, loss_value, components = _total_loss(loss_fn(model, batch))
            if not math.isfinite(loss_value):
                raise FloatingPointError(
                    f"the loss is {loss_value} at step {history.step + 1}: training diverged. "
                    "Lower the learning rate or check the inputs and targets"
                    + (f"; the checkpoint {path} keeps the last saved step" if path else "")
                )
            scaler.scale(total).backward()
            with _interrupts_deferred():
                lr = float(optimizer.param_groups[0]["lr"])
                scaler.step(optimizer)
                scaler.update()
                if scheduler is not None:
                    scheduler.step()
                history.records.append(
                    {
                        "step": history.step + 1,
                        "loss": loss_value,
                        "components": components,
                        "lr": lr,
                    }
                )
                phase = "after"
            step = history.step
            if val_fn is not None and ((val_every and step % val_every == 0) or step == steps):
                history.records[-1]["val"] = _validate(model, val_fn)
            bar.set_postfix(
                loss=f"{loss_value:.4f}",
                **{
                    key: f"{value:.3f}"
                    for key, value in list(history.records[-1].get("val", {}).items())[:2]
                },
                refresh=False,
            )
            bar.update(1)
            if path is not None and step % checkpoint_every == 0 and step < stop:
                save(rng_state())
    except KeyboardInterrupt:
        bar.close()
        if path is not None and history.step > start:
            save(step_rng if phase == "step" else rng_state())
            print(
                f"interrupted at step {history.step} of {steps}: saved {path}; run the cell again to resume"
            )
        raise
    finally:
        bar.close()
    if path is not None:
        save(rng_state())
    else:
        history.seconds = seconds_before + time.perf_counter() - started
    if stop < steps:
        print(
            f"stopped after step {stop} of {steps} (stop_after): saved {path}; "
            "call fit again with the same arguments to resume"
        )
    model.train(was_training)
    return history
