"""course_utils.core.progress: a leave=False bar leaves no closed widget in a notebook's output."""

from __future__ import annotations

import pytest
from tqdm import std
from tqdm.notebook import tqdm as notebook_tqdm

from course_utils.core import progress


class FakeHandle:
    """What IPython's display(..., display_id=True) returns, recording the updates."""

    def __init__(self, shown):
        self.shown, self.updates = shown, []

    def update(self, data, raw=False):
        self.updates.append((data, raw))


@pytest.fixture
def in_notebook(monkeypatch):
    """tqdm.auto behaving as in a Jupyter kernel: notebook bars, displays recorded."""
    import IPython.display
    import tqdm.auto

    handles = []

    def fake_display(obj, display_id=False):
        handles.append(FakeHandle(obj))
        return handles[-1]

    monkeypatch.setattr(tqdm.auto, "tqdm", notebook_tqdm)
    monkeypatch.setattr(IPython.display, "display", fake_display)
    progress._self_clearing_notebook_bar.cache_clear()
    yield handles
    progress._self_clearing_notebook_bar.cache_clear()


def test_outside_a_notebook_it_is_tqdms_text_bar():
    bar = progress.progress_bar(range(3), leave=False, disable=True)
    assert isinstance(bar, std.tqdm) and not isinstance(bar, notebook_tqdm)
    assert list(bar) == [0, 1, 2]


def test_a_finished_leave_false_bar_replaces_its_widget_by_empty_text(in_notebook):
    assert list(progress.progress_bar(range(4), leave=False)) == [0, 1, 2, 3]
    (handle,) = in_notebook
    assert handle.shown.__class__.__name__ == "TqdmHBox"
    assert handle.updates == [({"text/plain": ""}, True)], "the closed widget must leave no view"


def test_a_bar_stopped_early_keeps_its_red_widget(in_notebook):
    for index in progress.progress_bar(range(10), leave=False):
        if index == 3:
            break
    (handle,) = in_notebook
    bar_widget = handle.shown.children[1]
    assert handle.updates == [], "a bar that stopped early shows where it stopped"
    assert bar_widget.bar_style == "danger"


def test_a_bar_that_stays_is_tqdms_own_notebook_bar(in_notebook):
    bar = progress.progress_bar(range(2))
    assert type(bar) is notebook_tqdm
    list(bar)
    assert all(handle.updates == [] for handle in in_notebook)
