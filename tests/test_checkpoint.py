"""course_utils.engine.checkpoint: checkpoint paths, atomic writes, safe loads, generator states."""

import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from course_utils.engine.checkpoint import (
    CheckpointError,
    checkpoint_path,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def _draws():
    return (
        random.random(),
        random.gauss(0, 1),
        float(np.random.rand()),
        float(np.random.randn()),
        torch.rand(3),
    )


def _leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".tmp"))


def test_a_name_goes_to_the_checkpoint_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path / "drive"))
    assert checkpoint_path("fast_rcnn") == tmp_path / "drive" / "fast_rcnn.pt"
    assert (tmp_path / "drive").is_dir()


def test_paths_are_used_as_given(tmp_path):
    assert checkpoint_path(tmp_path / "a.ckpt") == tmp_path / "a.ckpt"
    assert checkpoint_path(str(tmp_path / "sub" / "b")) == tmp_path / "sub" / "b"
    assert checkpoint_path("model.pt") == Path("model.pt")


@pytest.mark.parametrize("bad, error", [("", ValueError), ("   ", ValueError), (3, TypeError)])
def test_bad_names_are_rejected(bad, error):
    with pytest.raises(error):
        checkpoint_path(bad)


def test_save_then_load_round_trips_with_weights_only(tmp_path):
    state = {
        "model": {"w": torch.randn(3, 4)},
        "step": 7,
        "history": {"records": [{"step": 1, "loss": 0.5}]},
        "nested": [1, 2.5, "x", None, (3, 4)],
    }
    path = save_checkpoint(state, tmp_path / "deep" / "run.pt")
    assert path == tmp_path / "deep" / "run.pt" and path.is_file()
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["model"]["w"], state["model"]["w"])
    assert (
        loaded["step"] == 7
        and loaded["history"] == state["history"]
        and loaded["nested"] == state["nested"]
    )
    assert _leftovers(path.parent) == []


def test_a_failed_save_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    path = save_checkpoint({"step": 1}, tmp_path / "run.pt")
    with pytest.raises((pickle.PicklingError, AttributeError)):  # which one depends on Python
        save_checkpoint({"step": 2, "not_picklable": lambda: None}, path)
    assert load_checkpoint(path)["step"] == 1
    assert _leftovers(tmp_path) == []


def test_an_interrupt_while_saving_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_checkpoint({"step": 1}, tmp_path / "run.pt")

    def interrupted_save(obj, file):
        file.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert _leftovers(tmp_path) == []


def test_save_rejects_non_dicts(tmp_path):
    with pytest.raises(TypeError):
        save_checkpoint([1, 2], tmp_path / "x.pt")


def test_missing_file_raises(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_files_raise_a_clear_error(tmp_path, damage):
    path = save_checkpoint({"model": {"w": torch.randn(50, 50)}, "step": 3}, tmp_path / "run.pt")
    data = path.read_bytes()
    path.write_bytes(
        {"truncate": data[: len(data) // 2], "garbage": b"\x00not a zip\xff" * 10, "empty": b""}[
            damage
        ]
    )
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "Delete" in message


def test_non_dict_contents_and_unsafe_objects_raise(tmp_path):
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint dict"):
        load_checkpoint(tmp_path / "tensor.pt")
    torch.save({"object": torch.nn.Linear(2, 2)}, tmp_path / "module.pt")  # needs full unpickling
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(tmp_path / "module.pt")


def test_rng_state_restores_every_generator_even_through_a_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.randn()  # leaves a cached Gaussian in NumPy's legacy state
    path = save_checkpoint({"rng": rng_state()}, tmp_path / "rng.pt")
    first = _draws()
    set_rng_state(load_checkpoint(path)["rng"])
    second = _draws()
    assert first[:4] == second[:4] and torch.equal(first[4], second[4])


def test_rng_state_holds_only_weights_only_types():
    state = rng_state()
    assert isinstance(state["torch"], torch.Tensor) and isinstance(
        state["python"]["state"], torch.Tensor
    )
    assert (
        isinstance(state["numpy"]["keys"], torch.Tensor) and state["numpy"]["keys"].numel() == 624
    )
