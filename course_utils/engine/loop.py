"""``fit``: the one training loop every notebook trains with.

``fit`` counts optimizer steps, not epochs. Its batches come from a seeded, resumable sampler
(:mod:`course_utils.engine.sampling`), and its checkpoint holds the model, optimizer,
scheduler, gradient scaler, history and every random generator
(:mod:`course_utils.engine.resume`). So when a Colab runtime disconnects, running the same
cell again continues from the checkpoint and ends with the same weights as an uninterrupted
run (bit for bit on the CPU with ``num_workers=0``, the course's CPU setting). Once the run is
finished, the same cell only loads the weights: the load-or-train pattern::

    history = fit(model, train_set, classification_loss, optimizer,
                  TrainConfig(steps=300, batch_size=32, checkpoint="crop_classifier"))
    viz.plot_history(history)
"""

from __future__ import annotations

import math
import numbers
import signal
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from course_utils.core.device import pick_device, seed_everything
from course_utils.core.tensors import to_device
from course_utils.engine.checkpoint import (
    checkpoint_path,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from course_utils.engine.config import TrainConfig
from course_utils.engine.history import History
from course_utils.engine.losses import total_loss
from course_utils.engine.resume import (
    check_checkpoint_matches,
    load_training_state,
    run_settings,
    training_state,
    warn_if_settings_changed,
)
from course_utils.engine.sampling import seeded_loader

#: Seconds between two redraws of the progress bar. In Jupyter every redraw is a few widget
#: messages; tqdm's default (0.1 s) sends thousands in a minute-long run, more than a kernel's
#: output channel queues for a client that is busy (nbval, a slow browser), which then drops them.
PROGRESS_INTERVAL_S = 1.0


__all__ = ["fit"]


def fit(
    model: torch.nn.Module,
    dataset,
    loss_fn: Callable,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    *,
    scheduler=None,
    val_fn: Callable | None = None,
    collate_fn: Callable | None = None,
) -> History:
    """Train ``model`` for ``config.steps`` optimizer steps and return its :class:`History`.

    Args:
        model: moved to ``config.device``; build ``optimizer`` (and ``scheduler``) on its
            parameters first.
        dataset: map-style dataset; batches are drawn by ``SeededBatchSampler`` and collated
            by ``collate_fn`` (default: ``default_collate``; detection needs
            ``course_utils.data.datasets.detection_collate``). DataLoader workers follow
            ``course_utils.core.device.loader_kwargs``.
        loss_fn: ``loss_fn(model, batch) -> scalar tensor`` or dict of scalar tensors (summed
            for backward, each logged), e.g. ``classification_loss``, ``detection_loss``,
            ``segmentation_loss``. Runs under autocast.
        optimizer: any ``torch.optim.Optimizer``.
        config: the settings (:class:`~course_utils.engine.config.TrainConfig`): steps,
            batch size, seed, validation period, checkpoint, device, mixed precision...
        scheduler: stepped once after every optimizer step (ReduceLROnPlateau is not supported).
        val_fn: ``val_fn(model) -> {metric: float}``, run in eval mode under ``no_grad`` every
            ``config.val_every`` steps and after the last step; train mode is restored
            afterwards. Non-scalar values are not recorded.
        collate_fn: turns a list of dataset items into a batch.

    The checkpoint (``config.checkpoint``) is written every ``config.checkpoint_every`` steps,
    at the end, and on KeyboardInterrupt (then re-raised). If it exists, a finished run is
    loaded without training and an unfinished one resumes.

    Raises:
        CheckpointError: the checkpoint file is unreadable, or belongs to another model/optimizer.
        FloatingPointError: the loss became NaN or infinite (the last checkpoint is kept).
    """
    _check_fit_arguments(model, dataset, loss_fn, optimizer, config, scheduler, val_fn)
    was_training = model.training
    run = _Run(model, dataset, optimizer, scheduler, config)
    saved_rng = run.resume() if run.path is not None and run.path.exists() else None
    if run.history.step < config.last_step:
        loader = seeded_loader(
            dataset,
            config.batch_size,
            seed=config.seed,
            start=run.history.step,
            stop=config.last_step,
            device=run.device,
            collate_fn=collate_fn,
        )
        _train(run, loader, loss_fn, val_fn, saved_rng)
    model.train(was_training)
    return run.history


def _check_fit_arguments(model, dataset, loss_fn, optimizer, config, scheduler, val_fn) -> None:
    """Raise TypeError/ValueError naming the first argument of ``fit`` that cannot work."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise TypeError(
            "dataset must be a map-style dataset with __len__ and __getitem__, "
            f"got {type(dataset).__name__}"
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
    if not isinstance(config, TrainConfig):
        raise TypeError(
            "config must be a TrainConfig, e.g. TrainConfig(steps=300, batch_size=32), "
            f"got {type(config).__name__}"
        )
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        raise TypeError(
            "fit steps the scheduler once per optimizer step without arguments; "
            "ReduceLROnPlateau needs a metric and is not supported"
        )
    if config.val_every is not None and val_fn is None:
        raise ValueError("val_every needs val_fn (a function val_fn(model) -> dict of floats)")
    if val_fn is not None and not callable(val_fn):
        raise TypeError("val_fn must be a function val_fn(model) -> dict of floats")


class _Run:
    """The objects one call of ``fit`` trains, and how to step, resume and save them.

    Creating it seeds every generator with ``config.seed`` and moves the model to the device.
    """

    def __init__(self, model, dataset, optimizer, scheduler, config: TrainConfig):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.config = config
        self.device = torch.device(config.device) if config.device is not None else pick_device()
        self.path = checkpoint_path(config.checkpoint) if config.checkpoint is not None else None
        self.settings = run_settings(model, dataset, optimizer, scheduler, config)
        seed_everything(config.seed)
        model.to(self.device)
        self.use_amp = config.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.use_amp)
        self.history = History(
            steps=config.steps, checkpoint=str(self.path) if self.path is not None else None
        )
        self.seconds_before, self.started = 0.0, time.perf_counter()

    def resume(self) -> dict | None:
        """Load the existing checkpoint; return the generator states to restore, or None.

        A checkpoint at or past ``config.last_step`` only loads the model and history (None:
        nothing to train); an earlier one also loads the optimizer, scheduler and scaler.
        """
        state = load_checkpoint(self.path)
        check_checkpoint_matches(state, self.path, self.model, self.optimizer)
        self.model.load_state_dict(state["model"])
        self.history = History.from_state_dict(
            state["history"], resumed_from=state["step"], checkpoint=str(self.path)
        )
        self.history.steps = steps = self.config.steps
        if state["step"] >= steps:
            print(
                f"loaded the finished checkpoint {self.path} ({state['step']} steps); not "
                "training. Delete it or pass another checkpoint name to train again."
            )
            return None
        if state["step"] >= self.config.last_step:
            print(
                f"checkpoint {self.path} is already at step {state['step']} of {steps}; not "
                f"training (stop_after={self.config.stop_after})"
            )
            return None
        warn_if_settings_changed(state["config"], self.settings, self.path, stacklevel=4)
        load_training_state(state, self.path, self.optimizer, self.scheduler, self.scaler)
        print(f"resumed from step {state['step']} of {steps} ({self.path})")
        return state["rng"]

    def start_clock(self) -> None:
        """Start timing this session; ``history.seconds`` adds it to the earlier sessions'."""
        self.seconds_before, self.started = self.history.seconds, time.perf_counter()

    def stop_clock(self) -> None:
        """Set ``history.seconds``: the earlier sessions' time plus this one's so far."""
        self.history.seconds = self.seconds_before + time.perf_counter() - self.started

    def save(self, rng: dict) -> None:
        """Write the checkpoint after ``history.step`` with the generator states ``rng``."""
        self.stop_clock()
        state = training_state(
            settings=self.settings,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            history=self.history,
            rng=rng,
        )
        save_checkpoint(state, self.path)

    def optimizer_step(self, loss_fn: Callable, batch) -> float:
        """Forward, backward and update on ``batch``; record the step; return its loss.

        The update (optimizer, scaler, scheduler, record) runs with interrupts deferred, so
        Ctrl-C never leaves a half-updated model. Raises FloatingPointError on a NaN/inf loss.
        """
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
            total, loss_value, components = total_loss(loss_fn(self.model, batch))
        if not math.isfinite(loss_value):
            kept = f"; the checkpoint {self.path} keeps the last saved step" if self.path else ""
            raise FloatingPointError(
                f"the loss is {loss_value} at step {self.history.step + 1}: training diverged. "
                f"Lower the learning rate or check the inputs and targets{kept}"
            )
        self.scaler.scale(total).backward()
        with _interrupts_deferred():
            lr = float(self.optimizer.param_groups[0]["lr"])
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.scheduler is not None:
                self.scheduler.step()
            self.history.records.append(
                {
                    "step": self.history.step + 1,
                    "loss": loss_value,
                    "components": components,
                    "lr": lr,
                }
            )
        return loss_value


def _train(run: _Run, loader: DataLoader, loss_fn, val_fn, saved_rng: dict | None) -> None:
    """Steps ``run.history.step + 1 .. config.last_step``: validate, show, save as configured."""
    config, history = run.config, run.history
    start = step_begun = history.step
    rng_before_step = None
    run.start_clock()
    bar = tqdm(
        total=config.steps,
        initial=start,
        disable=not config.progress,
        unit="step",
        desc=run.path.stem if run.path is not None else "training",
        mininterval=PROGRESS_INTERVAL_S,
    )
    run.model.train()
    try:
        batches = iter(loader)
        if saved_rng is not None:
            set_rng_state(saved_rng)
        while history.step < config.last_step:
            step_begun = history.step
            rng_before_step = rng_state() if run.path is not None else None
            batch = to_device(next(batches), run.device, run.device.type == "cuda")
            loss_value = run.optimizer_step(loss_fn, batch)
            step = history.step
            if val_fn is not None and _validation_due(config, step):
                history.records[-1]["val"] = _validate(run.model, val_fn)
            _show_progress(bar, loss_value, history.records[-1].get("val", {}))
            periodic = step % config.checkpoint_every == 0 and step < config.last_step
            if run.path is not None and periodic:
                run.save(rng_state())
    except KeyboardInterrupt:
        bar.close()
        if run.path is not None and history.step > start:
            # The step in progress either finished its update (keep the current generators)
            # or did not (keep those from before it, so the rerun repeats it exactly).
            run.save(rng_before_step if history.step == step_begun else rng_state())
            print(
                f"interrupted at step {history.step} of {config.steps}: saved {run.path}; "
                "run the cell again to resume"
            )
        raise
    finally:
        bar.close()
    if run.path is not None:
        run.save(rng_state())
    else:
        run.stop_clock()
    if config.last_step < config.steps:
        print(
            f"stopped after step {config.last_step} of {config.steps} (stop_after): saved "
            f"{run.path}; call fit again with the same arguments to resume"
        )


def _validation_due(config: TrainConfig, step: int) -> bool:
    """Validate every ``config.val_every`` steps (when set) and after the last step."""
    return bool(config.val_every and step % config.val_every == 0) or step == config.steps


def _show_progress(bar: tqdm, loss_value: float, metrics: Mapping[str, float]) -> None:
    """Advance the progress bar by one step, showing the loss and up to two metrics."""
    shown = {key: f"{value:.3f}" for key, value in list(metrics.items())[:2]}
    bar.set_postfix(loss=f"{loss_value:.4f}", **shown, refresh=False)
    bar.update(1)


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
