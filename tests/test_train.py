"""course_utils.engine.loop.fit: resumes exactly, checkpoints safely, records what it did."""

import math
import signal

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset
from torchvision import tv_tensors

from course_utils.engine import (
    CheckpointError,
    TrainConfig,
    classification_loss,
    detection_loss,
    fit,
    loop,
)
from course_utils.engine.checkpoint import load_checkpoint

STEPS, BATCH = 12, 8


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors: OpenMP threads only add waiting on a busy 2-core machine (tens of ms/op)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class NoisyDataset(Dataset):
    """Random augmentation drawn from the global torch generator, like a v2 transform would."""

    def __init__(self, num_items=40):
        generator = torch.Generator().manual_seed(123)
        self.x = torch.randn(num_items, 6, generator=generator)
        self.y = (self.x[:, 0] + self.x[:, 1] > 0).long()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        return self.x[index] + 0.1 * torch.randn(6), self.y[index]


def _model():
    return nn.Sequential(
        nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2)
    )


def _setup(kind, init_seed=5):
    torch.manual_seed(init_seed)
    model = _model()
    if kind == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, total_steps=STEPS)
    return model, optimizer, scheduler


def _cpu(**settings) -> TrainConfig:
    """A TrainConfig for the tests: on the CPU, no progress bar."""
    return TrainConfig(device="cpu", progress=False, **settings)


class CountingLoss:
    """classification_loss that counts its calls and can raise KeyboardInterrupt on call
    ``interrupt_at``."""

    def __init__(self, interrupt_at=None):
        self.calls, self.interrupt_at = 0, interrupt_at

    def __call__(self, model, batch):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return classification_loss(model, batch)


def _run(tmp_path, name, kind="sgd", init_seed=5, loss_fn=None, **settings):
    model, optimizer, scheduler = _setup(kind, init_seed)
    config = _cpu(
        steps=STEPS,
        batch_size=BATCH,
        checkpoint=tmp_path / f"{name}.pt",
        checkpoint_every=5,
        **settings,
    )
    history = fit(
        model,
        NoisyDataset(),
        loss_fn or classification_loss,
        optimizer,
        config,
        scheduler=scheduler,
    )
    return model, history


def _assert_same_state(a: nn.Module, b: nn.Module):
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


def _temp_files(folder):
    return [path.name for path in folder.iterdir() if path.name.endswith(".tmp")]


# --------------------------------------------------------------------------- resuming


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_resuming_after_stop_after_gives_the_uninterrupted_weights(tmp_path, capsys, kind):
    reference, reference_history = _run(tmp_path, "straight", kind)
    _, first = _run(tmp_path, "resumed", kind, stop_after=7)
    assert first.step == 7 and len(first.records) == 7
    assert load_checkpoint(tmp_path / "resumed.pt")["step"] == 7
    assert "stopped after step 7 of 12 (stop_after)" in capsys.readouterr().out
    counting = CountingLoss()
    # A different initialisation: everything must come from the checkpoint.
    model, history = _run(tmp_path, "resumed", kind, init_seed=99, loss_fn=counting)
    assert "resumed from step 7 of 12" in capsys.readouterr().out
    assert counting.calls == STEPS - 7
    assert history.resumed_from == 7
    _assert_same_state(model, reference)
    assert history.losses == reference_history.losses
    assert [r["lr"] for r in history.records] == [r["lr"] for r in reference_history.records]


def test_keyboard_interrupt_saves_and_the_rerun_resumes_exactly(tmp_path, capsys):
    reference, _ = _run(tmp_path, "straight")
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, "interrupted", loss_fn=CountingLoss(interrupt_at=9))  # during step 9
    state = load_checkpoint(tmp_path / "interrupted.pt")
    assert (
        state["step"] == 8 and len(state["history"]["records"]) == 8
    )  # step 8 was not a periodic save
    assert "interrupted at step 8 of 12" in capsys.readouterr().out
    assert _temp_files(tmp_path) == []
    model, history = _run(tmp_path, "interrupted", init_seed=99)
    _assert_same_state(model, reference)
    assert history.step == STEPS


def test_an_interrupt_during_the_update_is_held_back_until_it_is_done():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with loop._interrupts_deferred():
            signal.raise_signal(signal.SIGINT)
            done.append("update finished")
    assert done == ["update finished"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_finished_checkpoint_is_loaded_without_training(tmp_path, capsys):
    trained, trained_history = _run(tmp_path, "done")
    counting = CountingLoss()
    model, history = _run(tmp_path, "done", init_seed=99, loss_fn=counting)
    assert counting.calls == 0
    assert "loaded the finished checkpoint" in capsys.readouterr().out
    _assert_same_state(model, trained)
    assert history.losses == trained_history.losses and history.finished


def test_a_checkpoint_already_past_stop_after_is_loaded_without_training(tmp_path, capsys):
    stopped, _ = _run(tmp_path, "early", stop_after=7)
    counting = CountingLoss()
    model, history = _run(tmp_path, "early", init_seed=99, loss_fn=counting, stop_after=5)
    assert counting.calls == 0 and history.step == 7 and not history.finished
    assert "already at step 7 of 12; not training (stop_after=5)" in capsys.readouterr().out
    _assert_same_state(model, stopped)


def test_more_steps_than_the_checkpoint_continues_training(tmp_path, capsys):
    model, optimizer, _ = _setup("sgd")
    for steps in (4, 6):
        config = _cpu(steps=steps, batch_size=BATCH, checkpoint=tmp_path / "grow.pt")
        history = fit(model, NoisyDataset(), classification_loss, optimizer, config)
    assert "resumed from step 4 of 6" in capsys.readouterr().out
    assert [r["step"] for r in history.records] == [1, 2, 3, 4, 5, 6]


def test_fit_restores_the_models_mode(tmp_path):
    model, optimizer, _ = _setup("sgd")
    model.eval()
    fit(model, NoisyDataset(), classification_loss, optimizer, _cpu(steps=2, batch_size=BATCH))
    assert not model.training


# --------------------------------------------------------------------------- checkpoint safety


def test_a_truncated_checkpoint_raises_instead_of_starting_afresh(tmp_path):
    _run(tmp_path, "broken", stop_after=5)
    path = tmp_path / "broken.pt"
    path.write_bytes(path.read_bytes()[:1000])
    counting = CountingLoss()
    with pytest.raises(CheckpointError, match="broken.pt"):
        _run(tmp_path, "broken", loss_fn=counting)
    assert counting.calls == 0 and path.exists()


def test_a_checkpoint_of_another_model_raises_and_leaves_the_model_alone(tmp_path):
    _run(tmp_path, "small", stop_after=3)
    other = nn.Sequential(
        nn.Linear(6, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2)
    )
    before = {key: value.clone() for key, value in other.state_dict().items()}
    with pytest.raises(CheckpointError, match="different model"):
        fit(
            other,
            NoisyDataset(),
            classification_loss,
            torch.optim.SGD(other.parameters(), lr=0.1),
            _cpu(steps=STEPS, batch_size=BATCH, checkpoint=tmp_path / "small.pt"),
        )
    assert all(torch.equal(before[key], value) for key, value in other.state_dict().items())


def test_a_checkpoint_with_another_optimizer_raises(tmp_path):
    _run(tmp_path, "sgd_run", stop_after=3)
    model, _, _ = _setup("sgd")
    with pytest.raises(CheckpointError, match="optimizer"):
        fit(
            model,
            NoisyDataset(),
            classification_loss,
            torch.optim.Adam(model.parameters()),
            _cpu(steps=STEPS, batch_size=BATCH, checkpoint=tmp_path / "sgd_run.pt"),
        )


def test_a_checkpoint_without_a_scheduler_raises_when_resumed_with_one(tmp_path):
    model, optimizer, scheduler = _setup("sgd")
    path = tmp_path / "plain.pt"
    config = _cpu(steps=STEPS, batch_size=BATCH, checkpoint=path, stop_after=3)
    fit(model, NoisyDataset(), classification_loss, optimizer, config)
    config = _cpu(steps=STEPS, batch_size=BATCH, checkpoint=path)
    with pytest.raises(CheckpointError, match="without a scheduler"):
        fit(model, NoisyDataset(), classification_loss, optimizer, config, scheduler=scheduler)


def test_a_file_not_written_by_fit_raises(tmp_path):
    model, optimizer, _ = _setup("sgd")
    torch.save(
        {"model": model.state_dict()}, tmp_path / "bare.pt"
    )  # a plain state dict, no format tag
    with pytest.raises(CheckpointError, match="not a checkpoint written by"):
        fit(
            model,
            NoisyDataset(),
            classification_loss,
            optimizer,
            _cpu(steps=2, batch_size=BATCH, checkpoint=tmp_path / "bare.pt"),
        )


def test_resuming_with_other_settings_warns(tmp_path):
    _run(tmp_path, "changed", stop_after=3)
    model, optimizer, scheduler = _setup("sgd")
    with pytest.warns(UserWarning, match="batch_size") as warned:
        fit(
            model,
            NoisyDataset(),
            classification_loss,
            optimizer,
            _cpu(steps=STEPS, batch_size=4, checkpoint=tmp_path / "changed.pt"),
            scheduler=scheduler,
        )
    assert "batch_size 8 -> 4" in str(warned[0].message)
    assert warned[0].filename == __file__  # the warning points at the caller of fit


def test_checkpoints_are_written_atomically_and_periodically(tmp_path, monkeypatch):
    saved_steps = []
    original = loop.save_checkpoint

    def spy(state, path):
        saved_steps.append(state["step"])
        return original(state, path)

    monkeypatch.setattr(loop, "save_checkpoint", spy)
    _run(tmp_path, "periodic")
    assert saved_steps == [5, 10, 12]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["periodic.pt"]


def test_the_checkpoint_holds_everything_needed_to_resume(tmp_path):
    _run(tmp_path, "contents", kind="adam")
    state = load_checkpoint(tmp_path / "contents.pt")
    assert {"model", "optimizer", "scheduler", "scaler", "step", "history", "rng", "config"} <= set(
        state
    )
    assert state["optimizer"]["state"] and state["scheduler"]["last_epoch"] == STEPS
    assert {"python", "numpy", "torch", "cuda"} <= set(state["rng"])


def test_the_checkpoint_format_and_saved_settings_are_unchanged(tmp_path):
    """Checkpoints written before the engine was split must keep loading: same tag, same dict."""
    _run(tmp_path, "format")
    state = load_checkpoint(tmp_path / "format.pt")
    assert state["format"] == "course_utils.train/1"
    assert state["step"] == STEPS and state["steps"] == STEPS
    assert state["config"] == {
        "batch_size": BATCH,
        "seed": 0,
        "num_items": 40,
        "model": "Sequential",
        "optimizer": "SGD",
        "scheduler": "StepLR",
    }
    assert set(state["history"]) == {"records", "steps", "seconds"}


def test_a_checkpoint_name_goes_to_the_checkpoint_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    model, optimizer, _ = _setup("sgd")
    config = _cpu(steps=2, batch_size=BATCH, checkpoint="named_run")
    history = fit(model, NoisyDataset(), classification_loss, optimizer, config)
    assert (tmp_path / "ckpt" / "named_run.pt").is_file()
    assert history.checkpoint == str(tmp_path / "ckpt" / "named_run.pt")


# --------------------------------------------------------------------------- history and validation


def test_history_records_steps_losses_lr_and_validation(tmp_path):
    seen = []

    def val_fn(model):
        seen.append((model.training, torch.is_grad_enabled()))
        return {"accuracy": torch.tensor(0.5), "count": 3, "per_class": torch.ones(2)}

    model, optimizer, _ = _setup("sgd")
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.1)
    history = fit(
        model,
        NoisyDataset(),
        classification_loss,
        optimizer,
        _cpu(steps=10, batch_size=BATCH, val_every=4),
        scheduler=scheduler,
        val_fn=val_fn,
    )
    assert [r["step"] for r in history.records] == list(range(1, 11))
    assert all(math.isfinite(loss) for loss in history.losses) and len(history.losses) == 10
    assert [r["lr"] for r in history.records] == pytest.approx(
        [0.1 * 0.1 ** ((s - 1) // 3) for s in range(1, 11)]
    )
    assert [row["step"] for row in history.val] == [4, 8, 10]
    assert history.val[0] == {
        "step": 4,
        "accuracy": 0.5,
        "count": 3.0,
    }  # non-scalars are not recorded
    assert seen == [(False, False)] * 3 and model.training
    assert history.seconds > 0 and history.resumed_from is None and history.finished
    flat = history.flat_records()
    assert flat[3]["val_accuracy"] == 0.5 and "val_accuracy" not in flat[2]
    assert "step 10/10" in repr(history)


def test_loss_dicts_are_summed_and_each_component_logged():
    def loss_fn(model, batch):
        base = classification_loss(model, batch)
        return {"loss_a": base, "loss_b": 2 * base}

    model, optimizer, _ = _setup("sgd")
    history = fit(model, NoisyDataset(), loss_fn, optimizer, _cpu(steps=3, batch_size=BATCH))
    for record in history.records:
        assert set(record["components"]) == {"loss_a", "loss_b"}
        assert record["components"]["loss_b"] == pytest.approx(2 * record["components"]["loss_a"])
        assert record["loss"] == pytest.approx(3 * record["components"]["loss_a"])
    assert {"loss_a", "loss_b"} <= set(history.flat_records()[0])


def test_progress_bar_runs(capsys):
    model, optimizer, _ = _setup("sgd")
    fit(
        model,
        NoisyDataset(),
        classification_loss,
        optimizer,
        TrainConfig(steps=2, batch_size=BATCH, device="cpu", progress=True),
        val_fn=lambda m: {"acc": 1.0},
    )
    err = capsys.readouterr().err
    assert "loss=" in err and "acc=1.000" in err and "2/2" in err


def test_the_progress_bar_redraws_at_most_about_once_a_second(monkeypatch):
    """A minute of training must not flood a notebook's output channel with redraws."""
    from course_utils.engine import loop

    redraws = []

    clock = iter(i * 0.05 for i in range(100_000))  # every reading: 50 ms later

    class CountingBar(loop.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._time = lambda: next(clock)
            self.start_t = self.last_print_t = self._time()

        def refresh(self, *args, **kwargs):
            redraws.append(self.n)
            return super().refresh(*args, **kwargs)

    monkeypatch.setattr(loop, "tqdm", CountingBar)
    model, optimizer, _ = _setup("sgd")
    config = TrainConfig(steps=40, batch_size=BATCH, device="cpu", progress=True)
    fit(model, NoisyDataset(), classification_loss, optimizer, config)
    # 40 steps x a few clock readings span several simulated seconds: with tqdm's default
    # interval (0.1 s) that is over a dozen redraws; with PROGRESS_INTERVAL_S = 1 s a few.
    assert loop.PROGRESS_INTERVAL_S >= 0.5
    assert 1 <= len(redraws) <= 5, redraws


def test_a_nan_loss_stops_with_advice(tmp_path):
    model, optimizer, _ = _setup("sgd")
    with pytest.raises(FloatingPointError, match="learning rate") as raised:
        fit(
            model,
            NoisyDataset(),
            lambda m, b: classification_loss(m, b) * float("nan"),
            optimizer,
            _cpu(steps=2, batch_size=BATCH, checkpoint=tmp_path / "nan.pt"),
        )
    assert "at step 1" in str(raised.value) and "keeps the last saved step" in str(raised.value)
    assert not (tmp_path / "nan.pt").exists()  # nothing was saved: no step finished


# --------------------------------------------------------------------------- arguments


def _arguments(**changes):
    model, optimizer, _ = _setup("sgd")
    return {
        "model": model,
        "dataset": NoisyDataset(),
        "loss_fn": classification_loss,
        "optimizer": optimizer,
        "config": _cpu(steps=2, batch_size=4),
        **changes,
    }


@pytest.mark.parametrize(
    "changes, error, words",
    [
        ({"config": _cpu(steps=2, batch_size=4, val_every=5)}, ValueError, "val_fn"),
        ({"val_fn": "accuracy"}, TypeError, "val_fn"),
        ({"loss_fn": "ce"}, TypeError, "loss_fn"),
        ({"optimizer": "sgd"}, TypeError, "optimizer"),
        ({"model": lambda x: x}, TypeError, "model"),
        ({"dataset": []}, ValueError, "dataset is empty"),
        ({"dataset": 3}, TypeError, "map-style"),
        ({"config": {"steps": 2, "batch_size": 4}}, TypeError, "TrainConfig"),
    ],
)
def test_fit_rejects_bad_arguments(changes, error, words):
    arguments = _arguments(**changes)
    val_fn = arguments.pop("val_fn", None)
    with pytest.raises(error, match=words):
        fit(*arguments.values(), val_fn=val_fn)


def test_reduce_lr_on_plateau_is_rejected():
    model, optimizer, _ = _setup("sgd")
    with pytest.raises(TypeError, match="ReduceLROnPlateau"):
        fit(
            model,
            NoisyDataset(),
            classification_loss,
            optimizer,
            _cpu(steps=2, batch_size=4),
            scheduler=torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer),
        )


@pytest.mark.parametrize(
    "bad, error",
    [(torch.ones(3), ValueError), ("loss", TypeError), ({}, TypeError), ({"a": 1.0}, TypeError)],
)
def test_loss_fn_must_return_scalar_tensors(bad, error):
    model, optimizer, _ = _setup("sgd")
    with pytest.raises(error, match="loss"):
        fit(model, NoisyDataset(), lambda m, b: bad, optimizer, _cpu(steps=1, batch_size=4))


# --------------------------------------------------------------------------- detectors, CUDA


def _tiny_faster_rcnn():
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU())
    backbone.out_channels = 8
    anchors = AnchorGenerator(sizes=((16, 32),), aspect_ratios=((1.0,),))
    return FasterRCNN(
        backbone,
        num_classes=4,
        rpn_anchor_generator=anchors,
        min_size=64,
        max_size=64,
        rpn_batch_size_per_image=32,
        box_batch_size_per_image=32,
    )


def _detection_item(index):
    generator = torch.Generator().manual_seed(index)
    boxes = tv_tensors.BoundingBoxes(
        torch.tensor([[8.0, 8, 30, 30], [34, 20, 60, 50]]), format="XYXY", canvas_size=(64, 64)
    )
    return (
        tv_tensors.Image(torch.rand(3, 64, 64, generator=generator)),
        {"boxes": boxes, "labels": torch.tensor([1, 3]), "image_id": index},
    )


def test_detection_loss_returns_the_models_loss_dict_and_fit_trains_a_detector():
    torch.manual_seed(0)
    model = _tiny_faster_rcnn()
    items = [_detection_item(index) for index in range(4)]
    losses = detection_loss(model.train(), tuple(zip(*items[:2])))
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    history = fit(
        model,
        items,
        detection_loss,
        torch.optim.SGD(model.parameters(), lr=0.01),
        _cpu(steps=2, batch_size=2),
        collate_fn=lambda batch: tuple(zip(*batch)),
    )
    assert set(history.records[-1]["components"]) == set(losses)
    last = history.records[-1]
    assert last["loss"] == pytest.approx(sum(last["components"].values()), rel=1e-5)
    with pytest.raises(TypeError, match="dict of losses"):
        detection_loss(lambda images, targets: torch.zeros(1), tuple(zip(*items[:2])))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA for mixed precision")
def test_mixed_precision_on_cuda_trains_and_stores_the_scaler(tmp_path):
    model, optimizer, scheduler = _setup("sgd")
    history = fit(
        model,
        TensorDataset(torch.randn(32, 6), torch.randint(0, 2, (32,))),
        classification_loss,
        optimizer,
        TrainConfig(
            steps=4,
            batch_size=8,
            checkpoint=tmp_path / "amp.pt",
            device="cuda",
            amp=True,
            progress=False,
        ),
        scheduler=scheduler,
    )
    assert all(math.isfinite(loss) for loss in history.losses)
    assert "scale" in load_checkpoint(tmp_path / "amp.pt")["scaler"]
