"""course_utils.detection.detector_training: every detector's optimizer, schedule and loop."""

import pytest
import torch
from torch import nn

from course_utils.detection import detector_training
from course_utils.detection.detector_training import train_detector
from course_utils.engine import History


class Points(torch.utils.data.Dataset):
    """Eight (x (2,), y ()) pairs of a linear function."""

    def __len__(self):
        return 8

    def __getitem__(self, index):
        x = torch.tensor([float(index), 1.0])
        return x, 2 * x[0] - 1


def squared_error(model, batch):
    x, y = batch
    return {"mse": ((model(x).squeeze(1) - y) ** 2).mean()}


def test_validates_steps_and_lr():
    model = nn.Linear(2, 1)
    for steps, error in ((0, ValueError), (-3, ValueError), (2.5, TypeError)):
        with pytest.raises(error, match="steps"):
            train_detector(model, Points(), squared_error, steps=steps)
    for lr in (0, 0.0, -1e-3, float("nan")):
        with pytest.raises(ValueError, match="lr"):
            train_detector(model, Points(), squared_error, steps=2, lr=lr)


def test_adamw_with_a_one_cycle_schedule(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    history = train_detector(
        model,
        Points(),
        squared_error,
        steps=40,
        images_per_batch=4,
        lr=0.01,
        progress=False,
        device="cpu",
    )
    lrs = [record["lr"] for record in history.records]
    assert len(lrs) == 40 and set(history.records[0]["components"]) == {"mse"}
    peak = lrs.index(max(lrs))
    assert peak == 3  # 10 % warm-up of 40 steps (OneCycleLR peaks at step 0.1 * 40 - 1)
    assert lrs[peak] == pytest.approx(0.01)
    assert lrs[0] == pytest.approx(0.01 / 25)  # OneCycleLR's default start
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1 : peak + 1]))  # rises
    assert all(a > b for a, b in zip(lrs[peak:], lrs[peak + 1 :]))  # then falls
    assert lrs[-1] < 0.01 / 100


def test_passes_its_settings_to_fit(monkeypatch):
    seen = {}

    def spy_fit(model, dataset, loss_fn, optimizer, config, *, scheduler=None, collate_fn=None):
        seen.update(optimizer=optimizer, config=config, scheduler=scheduler, collate=collate_fn)
        return History()

    def collate(items):
        return items

    monkeypatch.setattr(detector_training, "fit", spy_fit)
    model = nn.Linear(2, 1)
    result = train_detector(
        model,
        Points(),
        squared_error,
        steps=30,
        images_per_batch=3,
        lr=0.02,
        weight_decay=0.05,
        checkpoint="run",
        seed=7,
        progress=False,
        collate_fn=collate,
    )
    assert isinstance(result, History)
    optimizer, config, scheduler = seen["optimizer"], seen["config"], seen["scheduler"]
    assert type(optimizer) is torch.optim.AdamW
    assert optimizer.param_groups[0]["weight_decay"] == 0.05
    assert optimizer.param_groups[0]["params"] == list(model.parameters())
    assert isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR)
    assert scheduler.optimizer is optimizer and scheduler.total_steps == 30
    assert optimizer.param_groups[0]["max_lr"] == 0.02
    assert (config.steps, config.batch_size, config.seed) == (30, 3, 7)
    assert config.checkpoint == "run" and config.progress is False
    assert seen["collate"] is collate


def test_collate_fn_makes_every_batch(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    batches = []

    def collate(items):
        batches.append(len(items))
        xs, ys = zip(*items)
        return torch.stack(xs), torch.stack(ys)

    train_detector(
        nn.Linear(2, 1),
        Points(),
        squared_error,
        steps=3,
        images_per_batch=2,
        progress=False,
        device="cpu",
        collate_fn=collate,
    )
    assert batches == [2, 2, 2]


def test_train_with_loss_splits_recipe_options_from_loss_options(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    seen = []

    def scaled_error(model, batch, *, scale):
        seen.append(scale)
        return {"mse": scale * squared_error(model, batch)["mse"]}

    history = detector_training.train_with_loss(
        nn.Linear(2, 1),
        Points(),
        scaled_error,
        steps=3,
        images_per_batch=2,  # the recipe's
        lr=0.02,
        progress=False,
        device="cpu",
        scale=3.0,  # the loss's
    )
    assert seen == [3.0, 3.0, 3.0]
    direct = train_detector(
        nn.Linear(2, 1),
        Points(),
        squared_error,
        steps=3,
        images_per_batch=2,
        lr=0.02,
        progress=False,
    )
    default = train_detector(nn.Linear(2, 1), Points(), squared_error, steps=3, progress=False)
    lrs = [r["lr"] for r in history.records]
    assert lrs == [r["lr"] for r in direct.records]  # lr reached train_detector
    assert lrs != [r["lr"] for r in default.records]
    with pytest.raises(TypeError, match="unexpected keyword"):
        detector_training.train_with_loss(
            nn.Linear(2, 1), Points(), squared_error, steps=1, progress=False, lr_typo=0.1
        )
