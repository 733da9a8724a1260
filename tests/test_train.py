"""course_utils.engine.train: the shared loop resumes exactly, checkpoints safely, records what it did."""

import collections
import math
import signal

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, TensorDataset
from torchvision import tv_tensors

from course_utils.engine import train
from course_utils.engine.checkpoint import load_checkpoint
from course_utils.engine.train import (
    CheckpointError,
    History,
    SeededBatchSampler,
    classification_loss,
    detection_loss,
    epoch_permutation,
    fit,
    segmentation_logits,
    segmentation_loss,
    to_device,
)

STEPS, BATCH = 12, 8


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors: OpenMP threads only add waiting on a busy 2-core machine (tens of ms per op)."""
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


class CountingLoss:
    """classification_loss that counts its calls and can raise KeyboardInterrupt on call ``interrupt_at``."""

    def __init__(self, interrupt_at=None):
        self.calls, self.interrupt_at = 0, interrupt_at

    def __call__(self, model, batch):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return classification_loss(model, batch)


def _run(tmp_path, name, kind="sgd", init_seed=5, loss_fn=None, **kwargs):
    model, optimizer, scheduler = _setup(kind, init_seed)
    history = fit(
        model,
        NoisyDataset(),
        loss_fn=loss_fn or classification_loss,
        optimizer=optimizer,
        scheduler=scheduler,
        steps=STEPS,
        batch_size=BATCH,
        checkpoint=tmp_path / f"{name}.pt",
        checkpoint_every=5,
        device="cpu",
        progress=False,
        **kwargs,
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
        with train._interrupts_deferred():
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


def test_more_steps_than_the_checkpoint_continues_training(tmp_path, capsys):
    model, optimizer, _ = _setup("sgd")
    fit(
        model,
        NoisyDataset(),
        loss_fn=classification_loss,
        optimizer=optimizer,
        steps=4,
        batch_size=BATCH,
        checkpoint=tmp_path / "grow.pt",
        device="cpu",
        progress=False,
    )
    history = fit(
        model,
        NoisyDataset(),
        loss_fn=classification_loss,
        optimizer=optimizer,
        steps=6,
        batch_size=BATCH,
        checkpoint=tmp_path / "grow.pt",
        device="cpu",
        progress=False,
    )
    assert "resumed from step 4 of 6" in capsys.readouterr().out
    assert [r["step"] for r in history.records] == [1, 2, 3, 4, 5, 6]


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
            loss_fn=classification_loss,
            optimizer=torch.optim.SGD(other.parameters(), lr=0.1),
            steps=STEPS,
            batch_size=BATCH,
            checkpoint=tmp_path / "small.pt",
            device="cpu",
            progress=False,
        )
    assert all(torch.equal(before[key], value) for key, value in other.state_dict().items())


def test_a_checkpoint_with_another_optimizer_raises(tmp_path):
    _run(tmp_path, "sgd_run", stop_after=3)
    model, _, _ = _setup("sgd")
    with pytest.raises(CheckpointError, match="optimizer"):
        fit(
            model,
            NoisyDataset(),
            loss_fn=classification_loss,
            optimizer=torch.optim.Adam(model.parameters()),
            steps=STEPS,
            batch_size=BATCH,
            checkpoint=tmp_path / "sgd_run.pt",
            device="cpu",
            progress=False,
        )


def test_a_file_not_written_by_fit_raises(tmp_path):
    model, optimizer, _ = _setup("sgd")
    torch.save(
        {"model": model.state_dict()}, tmp_path / "bare.pt"
    )  # a plain state dict, no format tag
    with pytest.raises(CheckpointError, match="not a checkpoint written by"):
        fit(
            model,
            NoisyDataset(),
            loss_fn=classification_loss,
            optimizer=optimizer,
            steps=2,
            batch_size=BATCH,
            checkpoint=tmp_path / "bare.pt",
            device="cpu",
            progress=False,
        )


def test_resuming_with_other_settings_warns(tmp_path):
    _run(tmp_path, "changed", stop_after=3)
    model, optimizer, scheduler = _setup("sgd")
    with pytest.warns(UserWarning, match="batch_size"):
        fit(
            model,
            NoisyDataset(),
            loss_fn=classification_loss,
            optimizer=optimizer,
            scheduler=scheduler,
            steps=STEPS,
            batch_size=4,
            checkpoint=tmp_path / "changed.pt",
            device="cpu",
            progress=False,
        )


def test_checkpoints_are_written_atomically_and_periodically(tmp_path, monkeypatch):
    saved_steps = []
    original = train.save_checkpoint

    def spy(state, path):
        saved_steps.append(state["step"])
        return original(state, path)

    monkeypatch.setattr(train, "save_checkpoint", spy)
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


def test_a_checkpoint_name_goes_to_the_checkpoint_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    model, optimizer, _ = _setup("sgd")
    history = fit(
        model,
        NoisyDataset(),
        loss_fn=classification_loss,
        optimizer=optimizer,
        steps=2,
        batch_size=BATCH,
        checkpoint="named_run",
        device="cpu",
        progress=False,
    )
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
        loss_fn=classification_loss,
        optimizer=optimizer,
        scheduler=scheduler,
        steps=10,
        batch_size=BATCH,
        val_fn=val_fn,
        val_every=4,
        device="cpu",
        progress=False,
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
    history = fit(
        model,
        NoisyDataset(),
        loss_fn=loss_fn,
        optimizer=optimizer,
        steps=3,
        batch_size=BATCH,
        device="cpu",
        progress=False,
    )
    for record in history.records:
        assert set(record["components"]) == {"loss_a", "loss_b"}
        assert record["components"]["loss_b"] == pytest.approx(2 * record["components"]["loss_a"])
        assert record["loss"] == pytest.approx(3 * record["components"]["loss_a"])
    assert {"loss_a", "loss_b"} <= set(history.flat_records()[0])


def test_a_history_plots_its_loss_components_and_validation_points():
    import matplotlib.pyplot as plt
    import numpy as np

    from course_utils.viz import plot_history

    records = [
        {
            "step": s,
            "loss": 1 / s,
            "lr": 0.1,
            "components": {"loss_box": 0.5 / s},
            **({"val": {"AP": s / 10}} if s % 5 == 0 else {}),
        }
        for s in range(1, 11)
    ]
    history = History(records=records, steps=10)
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


def test_progress_bar_runs(capsys):
    model, optimizer, _ = _setup("sgd")
    fit(
        model,
        NoisyDataset(),
        loss_fn=classification_loss,
        optimizer=optimizer,
        steps=2,
        batch_size=BATCH,
        val_fn=lambda m: {"acc": 1.0},
        device="cpu",
        progress=True,
    )
    assert "loss=" in capsys.readouterr().err


def test_a_nan_loss_stops_with_advice():
    model, optimizer, _ = _setup("sgd")
    with pytest.raises(FloatingPointError, match="learning rate"):
        fit(
            model,
            NoisyDataset(),
            loss_fn=lambda m, b: classification_loss(m, b) * float("nan"),
            optimizer=optimizer,
            steps=2,
            batch_size=BATCH,
            device="cpu",
            progress=False,
        )


@pytest.mark.parametrize(
    "changes, error",
    [
        ({"steps": 0}, ValueError),
        ({"batch_size": 0}, ValueError),
        ({"steps": 2.5}, ValueError),
        ({"val_every": 5}, ValueError),
        ({"stop_after": 3}, ValueError),
        ({"loss_fn": "ce"}, TypeError),
        ({"optimizer": "sgd"}, TypeError),
        ({"model": lambda x: x}, TypeError),
        ({"dataset": []}, ValueError),
        ({"checkpoint_every": -1}, ValueError),
    ],
)
def test_fit_rejects_bad_arguments(changes, error):
    model, optimizer, _ = _setup("sgd")
    arguments = {
        "model": model,
        "dataset": NoisyDataset(),
        "loss_fn": classification_loss,
        "optimizer": optimizer,
        "steps": 2,
        "batch_size": 4,
        "device": "cpu",
        "progress": False,
        **changes,
    }
    with pytest.raises(error):
        fit(arguments.pop("model"), arguments.pop("dataset"), **arguments)


def test_reduce_lr_on_plateau_is_rejected():
    model, optimizer, _ = _setup("sgd")
    with pytest.raises(TypeError, match="ReduceLROnPlateau"):
        fit(
            model,
            NoisyDataset(),
            loss_fn=classification_loss,
            optimizer=optimizer,
            steps=2,
            batch_size=4,
            scheduler=torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer),
            device="cpu",
            progress=False,
        )


@pytest.mark.parametrize("bad", [torch.ones(3), "loss", {}, {"a": 1.0}])
def test_loss_fn_must_return_scalar_tensors(bad):
    model, optimizer, _ = _setup("sgd")
    with pytest.raises((TypeError, ValueError)):
        fit(
            model,
            NoisyDataset(),
            loss_fn=lambda m, b: bad,
            optimizer=optimizer,
            steps=1,
            batch_size=4,
            device="cpu",
            progress=False,
        )


# --------------------------------------------------------------------------- batches


def test_the_sampler_resumes_with_the_same_batches():
    full = list(SeededBatchSampler(10, 3, seed=4, stop=9))
    assert len(full) == 9 and all(len(batch) == 3 for batch in full)
    for epoch in range(
        3
    ):  # 3 batches per epoch (the 10th item is dropped), no repeats within an epoch
        items = sum(full[3 * epoch : 3 * epoch + 3], [])
        assert len(set(items)) == 9 and set(items) <= set(range(10))
        assert items == epoch_permutation(10, 4, epoch)[:9].tolist()
    assert list(SeededBatchSampler(10, 3, seed=4, start=4, stop=9)) == full[4:]
    assert [SeededBatchSampler(10, 3, seed=4, stop=9).batch(step) for step in range(9)] == full
    assert list(SeededBatchSampler(10, 3, seed=5, stop=9)) != full
    assert len(SeededBatchSampler(10, 3, start=4, stop=9)) == 5


def test_a_batch_larger_than_the_dataset_uses_the_whole_dataset():
    batches = list(SeededBatchSampler(5, 8, stop=3))
    assert all(sorted(batch) == [0, 1, 2, 3, 4] for batch in batches)


def test_epoch_permutations_differ_between_epochs_and_repeat_for_the_same_seed():
    assert torch.equal(epoch_permutation(50, 0, 3), epoch_permutation(50, 0, 3))
    assert not torch.equal(epoch_permutation(50, 0, 3), epoch_permutation(50, 0, 4))
    assert sorted(epoch_permutation(50, 1, 0).tolist()) == list(range(50))


# --------------------------------------------------------------------------- to_device and loss functions


def test_to_device_walks_containers_and_keeps_tv_tensors():
    Pair = collections.namedtuple("Pair", "image target")
    boxes = tv_tensors.BoundingBoxes(
        torch.tensor([[1.0, 2, 5, 6]]), format="XYXY", canvas_size=(8, 8)
    )
    batch = [
        Pair(tv_tensors.Image(torch.rand(3, 8, 8)), {"boxes": boxes, "image_id": 3, "name": None}),
        (torch.zeros(2), "text"),
    ]
    moved = to_device(batch, "meta")
    assert isinstance(moved, list) and isinstance(moved[0], Pair) and isinstance(moved[1], tuple)
    assert moved[0].image.device.type == "meta" and isinstance(moved[0].image, tv_tensors.Image)
    moved_boxes = moved[0].target["boxes"]
    assert isinstance(moved_boxes, tv_tensors.BoundingBoxes) and moved_boxes.device.type == "meta"
    assert tuple(moved_boxes.canvas_size) == (8, 8)
    assert (
        moved[0].target["image_id"] == 3
        and moved[0].target["name"] is None
        and moved[1][1] == "text"
    )


def test_classification_loss_is_cross_entropy():
    model = nn.Linear(4, 3)
    x, y = torch.randn(5, 4), torch.tensor([0, 2, 1, 1, 0])
    assert torch.allclose(classification_loss(model, (x, y)), F.cross_entropy(model(x), y))


def test_segmentation_loss_upsamples_ignores_255_and_weights_aux():
    class HalfResolution(nn.Module):
        def __init__(self, aux):
            super().__init__()
            self.conv, self.aux = nn.Conv2d(3, 4, 1, stride=2), aux

        def forward(self, x):
            out = self.conv(x)
            return {"out": out, "aux": -out} if self.aux else {"out": out}

    torch.manual_seed(0)
    images = torch.rand(2, 3, 8, 8)
    masks = torch.randint(0, 4, (2, 8, 8))
    masks[:, :4] = 255
    model = HalfResolution(aux=False)
    logits = F.interpolate(model.conv(images), size=(8, 8), mode="bilinear", align_corners=False)
    keep = masks != 255
    expected = F.cross_entropy(logits.permute(0, 2, 3, 1)[keep], masks[keep])
    assert torch.allclose(segmentation_loss(model, (images, tv_tensors.Mask(masks))), expected)
    assert torch.allclose(segmentation_loss(model, (images, masks[:, None])), expected)
    with_aux = segmentation_loss(HalfResolution(aux=True), (images, masks))
    assert set(with_aux) == {"out", "aux"} and with_aux["aux"] > 0


def test_segmentation_logits_accepts_tensors_and_dicts():
    logits = torch.randn(1, 3, 4, 4)
    assert segmentation_logits(logits, (4, 4)) is logits
    assert segmentation_logits({"out": logits}, (8, 8)).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError):
        segmentation_logits(torch.randn(3, 4, 4), (4, 4))


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
        loss_fn=detection_loss,
        collate_fn=lambda batch: tuple(zip(*batch)),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        steps=2,
        batch_size=2,
        device="cpu",
        progress=False,
    )
    assert set(history.records[-1]["components"]) == set(losses)
    with pytest.raises(TypeError, match="dict of losses"):
        detection_loss(lambda images, targets: torch.zeros(1), tuple(zip(*items[:2])))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA for mixed precision")
def test_mixed_precision_on_cuda_trains_and_stores_the_scaler(tmp_path):
    model, optimizer, scheduler = _setup("sgd")
    history = fit(
        model,
        TensorDataset(torch.randn(32, 6), torch.randint(0, 2, (32,))),
        loss_fn=classification_loss,
        optimizer=optimizer,
        scheduler=scheduler,
        steps=4,
        batch_size=8,
        checkpoint=tmp_path / "amp.pt",
        device="cuda",
        amp=True,
        progress=False,
    )
    assert all(math.isfinite(loss) for loss in history.losses)
    assert "scale" in load_checkpoint(tmp_path / "amp.pt")["scaler"]
