"""course_utils.metrics.timing: time_per_image's calls, clock readings and arithmetic."""

import time

import pytest
import torch

from course_utils.metrics import timing
from course_utils.metrics.timing import time_per_image


def test_time_per_image_calls_the_batch_warmup_plus_repeats_times():
    calls = []

    def slow(images):
        calls.append((len(images), torch.is_grad_enabled()))
        time.sleep(0.02)

    result = time_per_image(slow, torch.zeros(4, 3, 8, 8), warmup=2, repeats=3)
    assert calls == [(4, False)] * 5
    assert result["ms_per_image"] >= 0.02 * 1000 / 4 * 0.9
    assert result["images_per_s"] * result["ms_per_image"] == pytest.approx(1000.0)


class FakeClock:
    """A clock that moves only when the timed function runs: durations are exact."""

    def __init__(self, durations):
        self.now, self.durations, self.events = 0.0, list(durations), []

    def perf_counter(self):
        self.events.append("read")
        return self.now

    def synchronize(self, device):
        self.events.append(f"sync {torch.device(device).type}")

    def run(self, images):
        self.events.append("run")
        self.now += self.durations.pop(0)


def test_time_per_image_is_the_median_of_the_timed_calls_per_image(monkeypatch):
    clock = FakeClock([100.0, 100.0, 1.0, 5.0, 2.0])  # two warm-up calls, then three timed
    monkeypatch.setattr(timing, "perf_counter", clock.perf_counter)
    monkeypatch.setattr(timing, "synchronize", clock.synchronize)
    result = time_per_image(clock.run, torch.zeros(4, 3, 8, 8), warmup=2, repeats=3)
    assert result == {"ms_per_image": pytest.approx(500.0), "images_per_s": pytest.approx(2.0)}
    timed = ["sync cpu", "read", "run", "sync cpu", "read"]  # GPU work queued counts
    assert clock.events == ["run", "run", *timed * 3]


def test_time_per_image_of_an_instant_function_is_finite(monkeypatch):
    clock = FakeClock([0.0])
    monkeypatch.setattr(timing, "perf_counter", clock.perf_counter)
    monkeypatch.setattr(timing, "synchronize", clock.synchronize)
    result = time_per_image(clock.run, torch.zeros(1, 3, 4, 4), warmup=0, repeats=1)
    assert result["ms_per_image"] == pytest.approx(1e-6) and result[
        "images_per_s"
    ] == pytest.approx(1e9)


def test_time_per_image_takes_lists_and_moves_them():
    seen = []
    images = [torch.zeros(3, 8, 8), torch.zeros(3, 8, 8)]
    result = time_per_image(
        lambda batch: seen.append(batch[0].device.type), images, warmup=0, repeats=1, device="meta"
    )
    assert seen == ["meta"] and result["images_per_s"] > 0


@pytest.mark.parametrize(
    "arguments, error",
    [
        (("not callable", torch.zeros(1, 3, 4, 4)), TypeError),
        ((print, torch.zeros(3, 4, 4)), ValueError),
        ((print, []), TypeError),
        ((print, torch.zeros(1, 3, 4, 4), -1), ValueError),
        ((print, torch.zeros(1, 3, 4, 4), 1, 0), ValueError),
        ((print, torch.zeros(1, 3, 4, 4), 1.0), TypeError),
        ((print, torch.zeros(1, 3, 4, 4), 1, "5"), TypeError),
        ((print, torch.zeros(0, 3, 4, 4)), ValueError),
    ],
)
def test_time_per_image_rejects_bad_arguments(arguments, error):
    with pytest.raises(error):
        time_per_image(*arguments)
