"""course_utils.engine.history.History: what fit recorded, its views and its saved state."""

import matplotlib.pyplot as plt
import numpy as np

from course_utils.engine import History
from course_utils.viz import plot_history


def _records(steps=10, val_every=5):
    return [
        {
            "step": s,
            "loss": 1 / s,
            "lr": 0.1,
            "components": {"loss_box": 0.5 / s},
            **({"val": {"AP": s / 10}} if s % val_every == 0 else {}),
        }
        for s in range(1, steps + 1)
    ]


def test_a_history_plots_its_loss_components_and_validation_points():
    history = History(records=_records(), steps=10)
    _, (loss_ax, metric_ax) = plot_history(history, smoothing=0.5)
    lines = {line.get_label(): line for line in loss_ax.get_lines()}
    assert set(lines) == {"loss", "loss (smoothed 0.5)", "loss_box"}
    np.testing.assert_allclose(lines["loss"].get_xdata(), range(1, 11))
    np.testing.assert_allclose(lines["loss"].get_ydata(), [1 / s for s in range(1, 11)])
    (val_line,) = metric_ax.get_lines()
    assert val_line.get_label() == "val_AP"
    np.testing.assert_allclose(val_line.get_xdata(), [5, 10])
    np.testing.assert_allclose(val_line.get_ydata(), [0.5, 1.0])
    plt.close("all")


def test_history_state_round_trips():
    history = History(
        records=[{"step": 1, "loss": 0.5, "lr": 0.1, "components": {"a": 0.5}}],
        steps=3,
        seconds=2.0,
    )
    again = History.from_state_dict(history.state_dict())
    assert again.records == history.records and again.steps == 3 and again.seconds == 2.0
    assert again.step == 1 and not again.finished
    resumed = History.from_state_dict(history.state_dict(), resumed_from=1, checkpoint="x.pt")
    assert resumed.resumed_from == 1 and resumed.checkpoint == "x.pt"


def test_the_views_of_a_history():
    history = History(records=_records(steps=10, val_every=4), steps=12, seconds=3.0)
    assert history.step == 10 and not history.finished
    assert history.losses == [1 / s for s in range(1, 11)]
    assert history.val == [{"step": 4, "AP": 0.4}, {"step": 8, "AP": 0.8}]
    flat = history.flat_records()
    assert flat[3] == {"step": 4, "loss": 0.25, "lr": 0.1, "loss_box": 0.125, "val_AP": 0.4}
    assert flat[0] == {"step": 1, "loss": 1.0, "lr": 0.1, "loss_box": 0.5}
    assert repr(history) == "History(step 10/12, loss 0.1, AP 0.8, 3.0 s)"
    assert History(steps=5).step == 0 and not History(steps=5).finished
    assert repr(History(steps=5, resumed_from=2)) == "History(step 0/5, 0.0 s, resumed from 2)"


def test_metrics_already_named_val_keep_their_name():
    records = [{"step": 1, "loss": 0.5, "lr": 0.1, "components": {}, "val": {"val_acc": 0.9}}]
    assert History(records=records, steps=1).flat_records()[0]["val_acc"] == 0.9
