"""Training curves: :func:`plot_history` draws a run's loss and validation metrics over steps.

A history is ``course_utils.engine.History`` (its ``.records``) or a list of dicts, one per
logged step: ``{"step": 100, "loss": 0.5, "components": {...}, "val": {...}}`` or flat keys
such as ``"val_mAP"``. :func:`smooth` is the exponential moving average drawn over the loss.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from course_utils.core import validate

__all__ = ["plot_history", "smooth"]

#: Numeric record keys that are not curves to plot (step counters, learning rate, timing).
_BOOKKEEPING_KEYS = frozenset(
    {
        "step",
        "loss",
        "lr",
        "learning_rate",
        "epoch",
        "time",
        "elapsed",
        "elapsed_s",
        "seconds",
        "wall_s",
        "batch_size",
        "images_per_s",
        "samples",
        "grad_norm",
    }
)


def _check_weight(value, name: str) -> float:
    """``value`` as a float in [0, 1) (TypeError for a non-number, ValueError out of range)."""
    weight = validate.check_number(value, name, 0.0, 1.0)
    if weight == 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {value}")
    return weight


def smooth(values, weight: float = 0.9) -> np.ndarray:
    """Exponential moving average with bias correction (as TensorBoard's smoothing).

    ``values`` (T,) -> (T,); ``weight`` in [0, 1): 0 returns the values unchanged.
    """
    weight = _check_weight(weight, "weight")
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    out = np.empty_like(values)
    average = 0.0
    for index, value in enumerate(values):
        average = weight * average + (1 - weight) * value
        out[index] = average / (1 - weight ** (index + 1))
    return out


def _flatten_record(record: Mapping) -> dict:
    """One flat dict per step: nested ``components`` (loss parts) are merged as they are and
    nested ``val`` metrics with a ``val_`` prefix (the layout of ``course_utils.engine.History``
    records)."""
    flat = {key: value for key, value in record.items() if key not in ("components", "val")}
    components = record.get("components")
    if isinstance(components, Mapping):
        flat.update(components)
    val = record.get("val")
    if isinstance(val, Mapping):
        flat.update(
            {
                key if str(key).startswith("val") else f"val_{key}": value
                for key, value in val.items()
            }
        )
    return flat


def _history_records(history) -> list[dict]:
    """The flattened records of a History (``.records``) or of a list of dicts with ``step``."""
    records = getattr(history, "records", history)
    if not isinstance(records, Sequence) or isinstance(records, str):
        raise TypeError(
            "history must be a History (with .records) or a list of dicts like "
            f"{{'step': 10, 'loss': 0.5}}, got {type(history).__name__}"
        )
    for index, record in enumerate(records):
        if not isinstance(record, Mapping) or "step" not in record:
            raise ValueError(
                f"history record {index} must be a dict with a 'step' key, got {record!r}"
            )
    return [_flatten_record(record) for record in records]


def _is_number(value) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _series(records: Sequence[Mapping], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) float64 (T,) of the records where ``key`` is a finite number."""
    points = [(float(r["step"]), float(r[key])) for r in records if _is_number(r.get(key))]
    array = np.array(points, dtype=np.float64).reshape(-1, 2)
    return array[:, 0], array[:, 1]


def _numeric_keys(records: Sequence[Mapping]) -> list[str]:
    """Every key with a number somewhere, in order of first appearance, bookkeeping excluded."""
    keys: list[str] = []
    for record in records:
        keys.extend(
            key
            for key, value in record.items()
            if key not in _BOOKKEEPING_KEYS and key not in keys and _is_number(value)
        )
    return keys


def _is_validation_metric(key: str) -> bool:
    return key.startswith("val") and "loss" not in key


def _choose_keys(
    records: Sequence[Mapping], metrics: Sequence[str] | None, components: bool
) -> tuple[list[str], list[str]]:
    """(keys for the metric axis, extra keys for the loss axis), in order of first appearance."""
    numeric = _numeric_keys(records)
    if metrics is None:
        metric_keys = [key for key in numeric if _is_validation_metric(key)]
    else:
        metric_keys = list(metrics)
        missing = [key for key in metric_keys if key not in numeric]
        if missing:
            raise ValueError(
                f"metrics {missing} have no numbers in the history's records "
                f"(numeric keys: {numeric})"
            )
    loss_keys = [
        key
        for key in numeric
        if key not in metric_keys
        and not _is_validation_metric(key)
        and (components or key.startswith("val"))
    ]
    return metric_keys, loss_keys


def _plot_losses(ax: Axes, records, loss_keys, smoothing: float, colors) -> None:
    """The loss (raw, faint; smoothed, bold) and the other loss curves on ``ax``.

    A key logged at more than half the loss's steps is dense: drawn smoothed as a line;
    a sparser one (e.g. ``val_loss``) is drawn raw, with markers.
    """
    steps, losses = _series(records, "loss")
    loss_color = next(colors)
    if steps.size:
        ax.plot(steps, losses, color=loss_color, alpha=0.3, linewidth=1, label="loss")
        if smoothing > 0:
            ax.plot(
                steps,
                smooth(losses, smoothing),
                color=loss_color,
                linewidth=2,
                label=f"loss (smoothed {smoothing})",
            )
    for key in loss_keys:
        key_steps, values = _series(records, key)
        dense = key_steps.size > 0.5 * max(steps.size, 1)
        ax.plot(
            key_steps,
            smooth(values, smoothing) if dense and smoothing > 0 else values,
            marker=None if dense else "o",
            markersize=3,
            linewidth=1.2,
            color=next(colors),
            label=key,
        )


def _plot_metrics(ax: Axes, records, metric_keys, colors) -> Axes:
    """The validation metrics, raw with markers, on a second y axis of ``ax``; returns it."""
    metric_ax = ax.twinx()
    for key in metric_keys:
        key_steps, values = _series(records, key)
        metric_ax.plot(
            key_steps,
            values,
            marker="o",
            markersize=3,
            linewidth=1.5,
            color=next(colors),
            label=key,
        )
    metric_ax.set_ylabel("validation")
    return metric_ax


def plot_history(
    history,
    smoothing: float = 0.9,
    metrics: Sequence[str] | None = None,
    components: bool = True,
    ax: Axes | None = None,
    log_loss: bool = False,
):
    """Plot a training run: the loss per step (raw, faint) with its smoothed curve, and the
    validation metrics on a second y axis.

    ``history``: a ``course_utils.engine.History`` (its ``.records``; nested ``components``
    and ``val`` dicts are understood) or a list of dicts, each with ``step`` and any of
    ``loss``, loss components and ``val_*`` metrics (e.g. ``{"step": 100, "val_mAP": 0.4}``).
    ``smoothing``: the :func:`smooth` weight in [0, 1) (0: no smoothed curve).
    ``metrics``: the keys for the second axis (default: the keys starting with "val",
    except validation losses, which share the loss axis). ``components``: also draw the
    other numeric keys (loss parts such as ``loss_box_reg``; bookkeeping like ``lr`` is
    skipped), smoothed, on the loss axis. ``log_loss``: a log scale for the loss axis.
    Returns ``fig, (loss_ax, metric_ax)``; ``metric_ax`` is None without metrics.
    """
    smoothing = _check_weight(smoothing, "smoothing")
    records = _history_records(history)
    metric_keys, loss_keys = _choose_keys(records, metrics, components)
    if _series(records, "loss")[0].size == 0 and not metric_keys and not loss_keys:
        raise ValueError("history has no 'loss' and no metric values to plot")
    created = ax is None
    if created:
        fig, ax = plt.subplots(figsize=(6, 3.5))
    else:
        fig = ax.figure
    colors = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4)
    _plot_losses(ax, records, loss_keys, smoothing, colors)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if log_loss:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    metric_ax = None
    handles, names = ax.get_legend_handles_labels()
    if metric_keys:
        metric_ax = _plot_metrics(ax, records, metric_keys, colors)
        more_handles, more_names = metric_ax.get_legend_handles_labels()
        handles, names = handles + more_handles, names + more_names
    ax.legend(handles, names, fontsize=7, loc="best")
    if created:
        fig.tight_layout()
    return fig, (ax, metric_ax)
