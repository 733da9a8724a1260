"""course_utils.engine.config.TrainConfig: every setting checked once, naming the field."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from course_utils.engine import TrainConfig

REQUIRED = {"steps": 10, "batch_size": 4}


def test_defaults_are_the_documented_ones():
    config = TrainConfig(**REQUIRED)
    assert dataclasses.asdict(config) == {
        "steps": 10,
        "batch_size": 4,
        "seed": 0,
        "val_every": None,
        "checkpoint": None,
        "checkpoint_every": 50,
        "device": None,
        "amp": True,
        "stop_after": None,
        "progress": True,
    }


def test_a_config_is_frozen():
    config = TrainConfig(**REQUIRED)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.steps = 20


def test_numpy_integers_become_python_ints():
    config = TrainConfig(steps=np.int64(10), batch_size=np.int32(4), stop_after=np.int64(3),
                         checkpoint="run")  # fmt: skip
    assert type(config.steps) is int and type(config.batch_size) is int
    assert type(config.stop_after) is int and config.stop_after == 3


@pytest.mark.parametrize(
    "settings",
    [
        {"checkpoint": "run"},
        {"checkpoint": Path("runs/a.pt")},
        {"device": "cpu"},
        {"device": torch.device("cpu")},
        {"val_every": 1, "seed": 0, "checkpoint_every": 1, "amp": False, "progress": False},
        {"checkpoint": "run", "stop_after": 1},
    ],
)
def test_valid_settings_are_kept(settings):
    config = TrainConfig(**REQUIRED, **settings)
    assert all(getattr(config, name) == value for name, value in settings.items())


@pytest.mark.parametrize(
    "field, value",
    [
        ("steps", 2.5),
        ("steps", "10"),
        ("batch_size", 4.0),
        ("batch_size", True),
        ("seed", 0.5),
        ("val_every", "5"),
        ("checkpoint", 3),
        ("checkpoint_every", 5.0),
        ("device", 0),
        ("amp", 1),
        ("stop_after", 3.0),
        ("progress", "yes"),
    ],
)
def test_a_wrong_type_raises_type_error_naming_the_field(field, value):
    settings = {**REQUIRED, "checkpoint": "run", field: value}
    with pytest.raises(TypeError, match=field):
        TrainConfig(**settings)


@pytest.mark.parametrize(
    "field, value",
    [
        ("steps", 0),
        ("steps", -3),
        ("batch_size", 0),
        ("seed", -1),
        ("val_every", 0),
        ("checkpoint", ""),
        ("checkpoint", "   "),
        ("checkpoint_every", -1),
        ("checkpoint_every", 0),
        ("device", "gpu"),
        ("stop_after", 0),
    ],
)
def test_a_value_out_of_range_raises_value_error_naming_the_field(field, value):
    settings = {**REQUIRED, "checkpoint": "run", field: value}
    with pytest.raises(ValueError, match=field):
        TrainConfig(**settings)


def test_stop_after_needs_a_checkpoint_to_resume_from():
    with pytest.raises(ValueError, match="stop_after.*checkpoint"):
        TrainConfig(**REQUIRED, stop_after=3)


@pytest.mark.parametrize("stop_after, last_step", [(None, 10), (3, 3), (10, 10), (25, 10)])
def test_last_step_is_the_earlier_of_steps_and_stop_after(stop_after, last_step):
    config = TrainConfig(**REQUIRED, checkpoint="run", stop_after=stop_after)
    assert config.last_step == last_step
