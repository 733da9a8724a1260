"""course_utils.viz.history: smooth and the curves plot_history draws (Agg backend)."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from course_utils import viz


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_smooth_is_an_unbiased_moving_average():
    values = np.array([1.0, 3.0, 2.0, 5.0])
    np.testing.assert_allclose(viz.smooth(values, 0.0), values)
    np.testing.assert_allclose(viz.smooth(np.full(10, 7.0), 0.9), 7.0)
    noisy = np.random.default_rng(0).normal(size=200)
    assert viz.smooth(noisy, 0.9)[20:].std() < noisy[20:].std() / 2
    with pytest.raises(ValueError):
        viz.smooth(values, 1.0)


def test_smooth_by_hand():
    # weight 0.5: averages 0.5, 1.75, 1.875 divided by 1 - 0.5 ** t = 0.5, 0.75, 0.875
    np.testing.assert_allclose(viz.smooth([1.0, 3.0, 2.0], 0.5), [1.0, 7 / 3, 15 / 7])
    assert viz.smooth([], 0.5).shape == (0,)


@pytest.mark.parametrize(
    "weight, error", [(-0.1, ValueError), (1.0, ValueError), ("0.9", TypeError)]
)
def test_smooth_rejects_a_weight_outside_zero_one(weight, error):
    with pytest.raises(error, match="weight"):
        viz.smooth([1.0, 2.0], weight)


def _records():
    records = [{"step": step, "loss": 2.0 / (1 + step), "lr": 0.01} for step in range(0, 60, 2)]
    records[10]["val_mAP"] = 0.2
    records[20]["val_mAP"] = 0.5
    records[29]["val_mAP"] = 0.6
    return records


class _History:
    def __init__(self, records):
        self.records = records


@pytest.mark.parametrize("wrap", [list, _History])
def test_plot_history_raw_and_smoothed_loss_and_metrics_on_a_second_axis(wrap):
    records = _records()
    fig, (loss_ax, metric_ax) = viz.plot_history(wrap(records), smoothing=0.8)
    raw, smoothed = loss_ax.get_lines()
    np.testing.assert_allclose(raw.get_xdata(), [r["step"] for r in records])
    np.testing.assert_allclose(raw.get_ydata(), [r["loss"] for r in records])
    np.testing.assert_allclose(smoothed.get_ydata(), viz.smooth(raw.get_ydata(), 0.8))
    assert raw.get_color() == smoothed.get_color() and raw.get_alpha() == 0.3
    assert metric_ax is not None and metric_ax in fig.axes
    (metric_line,) = metric_ax.get_lines()
    np.testing.assert_allclose(metric_line.get_xdata(), [20, 40, 58])
    np.testing.assert_allclose(metric_line.get_ydata(), [0.2, 0.5, 0.6])
    assert metric_line.get_color() != raw.get_color()
    labels = [text.get_text() for text in loss_ax.get_legend().get_texts()]
    assert labels == ["loss", "loss (smoothed 0.8)", "val_mAP"]  # lr is bookkeeping
    assert (loss_ax.get_xlabel(), loss_ax.get_ylabel()) == ("step", "loss")
    assert metric_ax.get_ylabel() == "validation"
    assert loss_ax.get_yscale() == "linear"


def test_plot_history_log_loss_axis():
    fig, (loss_ax, _) = viz.plot_history(_records(), log_loss=True)
    assert loss_ax.get_yscale() == "log"


def test_plot_history_loss_parts_share_the_loss_axis():
    records = [
        {"step": s, "loss": 1.0 / (s + 1), "loss_box": 0.5 / (s + 1), "cls": 0.3, "lr": 0.1}
        for s in range(10)
    ]
    fig, (loss_ax, metric_ax) = viz.plot_history(records)
    assert metric_ax is None
    lines = loss_ax.get_lines()
    assert [line.get_label() for line in lines][2:] == ["loss_box", "cls"]
    np.testing.assert_allclose(  # dense parts are smoothed like the loss
        lines[2].get_ydata(), viz.smooth([r["loss_box"] for r in records], 0.9)
    )
    assert len({line.get_color() for line in lines[1:]}) == 3
    fig, (loss_ax, metric_ax) = viz.plot_history(records, components=False)
    assert len(loss_ax.get_lines()) == 2


def test_plot_history_reads_the_train_modules_nested_records():
    records = [
        {"step": s, "loss": 2.0 - s / 10, "lr": 0.01, "components": {"obj": 1.0 - s / 20}}
        for s in range(1, 11)
    ]
    records[4]["val"] = {"AP50": 0.3, "loss": 1.5}
    records[9]["val"] = {"AP50": 0.6, "loss": 1.1}
    fig, (loss_ax, metric_ax) = viz.plot_history(_History(records))
    labels = [line.get_label() for line in loss_ax.get_lines()]
    assert labels[2:] == ["obj", "val_loss"]
    (metric_line,) = metric_ax.get_lines()
    assert metric_line.get_label() == "val_AP50"
    np.testing.assert_allclose(metric_line.get_xdata(), [5, 10])
    np.testing.assert_allclose(metric_line.get_ydata(), [0.3, 0.6])
    val_loss = loss_ax.get_lines()[3]
    np.testing.assert_allclose(val_loss.get_xdata(), [5, 10])
    np.testing.assert_allclose(val_loss.get_ydata(), [1.5, 1.1])  # sparse: points, not smoothed
    assert val_loss.get_marker() == "o"


def test_plot_history_explicit_metrics_and_given_axes():
    records = _records()
    for record in records:
        record["mAP"] = record["step"] / 100
    fig, ax = plt.subplots()
    returned, (loss_ax, metric_ax) = viz.plot_history(
        records, metrics=["mAP"], ax=ax, smoothing=0.0
    )
    assert returned is fig and loss_ax is ax
    assert [line.get_label() for line in metric_ax.get_lines()] == ["mAP"]
    np.testing.assert_allclose(metric_ax.get_lines()[0].get_ydata(), [r["mAP"] for r in records])
    assert len(loss_ax.get_lines()) == 1  # smoothing 0: the raw loss only; val_mAP not chosen


def test_plot_history_metrics_only_and_skips_missing_values():
    records = [{"step": 1, "val_AP": 0.1}, {"step": 2, "val_AP": None}, {"step": 3, "val_AP": 0.3}]
    fig, (loss_ax, metric_ax) = viz.plot_history(records)
    assert loss_ax.get_lines() == []
    np.testing.assert_allclose(metric_ax.get_lines()[0].get_xdata(), [1, 3])


@pytest.mark.parametrize(
    "history, kwargs, error",
    [
        ("not a history", {}, TypeError),
        ([{"loss": 1.0}], {}, ValueError),
        ([{"step": 0}], {}, ValueError),
        (_records(), {"metrics": ["val_AP"]}, ValueError),
        (_records(), {"smoothing": 1.0}, ValueError),
        (_records(), {"smoothing": "high"}, TypeError),
    ],
)
def test_plot_history_rejects_bad_records(history, kwargs, error):
    with pytest.raises(error):
        viz.plot_history(history, **kwargs)
