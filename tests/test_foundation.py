"""Unit tests for paths, device, validate, results and the Colab set-up cell."""

import random
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from course_utils.core import colab, device, paths, results, tensors, validate

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- paths
def test_repo_root_found_from_notebooks_folder():
    assert paths.repo_root(ROOT / "notebooks") == ROOT
    assert paths.repo_root(Path("/")) is None


def test_dirs_follow_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "r"))
    assert paths.data_dir() == tmp_path / "d" and (tmp_path / "d").is_dir()
    assert paths.checkpoint_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
    assert paths.results_dir() == tmp_path / "r"


def test_checkpoints_default_under_data(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("COURSE_CHECKPOINT_DIR", raising=False)
    assert paths.checkpoint_dir() == tmp_path / "checkpoints"


def test_outside_a_checkout_uses_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(paths, "_CACHE_HOME", tmp_path / "cache")
    assert paths.data_dir() == tmp_path / "cache" / "data"


# ---------------------------------------------------------------- device
def test_pick_device_and_bad_preference():
    assert device.pick_device("cpu").type == "cpu"
    assert device.pick_device().type in {"cpu", "cuda", "mps"}
    with pytest.raises(ValueError, match="one of"):
        device.pick_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            device.pick_device("cuda")


def test_seed_everything_repeats_all_generators():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    device.seed_everything(3)
    first = draw()
    device.seed_everything(3)
    assert draw() == first
    with pytest.raises(ValueError):
        device.seed_everything(-1)


def test_loader_policy_cpu_uses_main_process():
    assert device.loader_workers("cpu") == 0
    assert device.loader_kwargs("cpu") == {
        "num_workers": 0,
        "pin_memory": False,
        "persistent_workers": False,
    }


def test_loader_policy_cuda_respects_shared_memory(monkeypatch):
    monkeypatch.setattr(device.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(device, "_shared_memory_bytes", lambda: 10 * 1024**3)
    assert device.loader_workers(torch.device("cuda")) == 1
    monkeypatch.setattr(device, "_shared_memory_bytes", lambda: 64 * 1024**2)
    assert device.loader_workers(torch.device("cuda")) == 0


def test_environment_report_is_one_line(capsys):
    line = device.environment_report("cpu")
    assert "\n" not in line and "torch" in line and "device cpu" in line
    assert device.notebook_setup(seed=0, prefer="cpu").type == "cpu"
    assert "torchvision" in capsys.readouterr().out


# ---------------------------------------------------------------- validate
def test_check_image_accepts_and_rejects():
    validate.check_image(torch.rand(3, 8, 8))
    with pytest.raises(TypeError, match="float"):
        validate.check_image(torch.zeros(3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="0-255"):
        validate.check_image(torch.rand(3, 8, 8) * 255)
    with pytest.raises(ValueError, match="HWC"):
        validate.check_image(torch.rand(8, 8, 3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        validate.check_image(np.zeros((3, 8, 8)))


def test_check_boxes_accepts_empty_and_valid():
    validate.check_boxes(torch.zeros(0, 4))
    validate.check_boxes(torch.tensor([[1.0, 2.0, 30.0, 40.0]]), canvas_size=(64, 64))


@pytest.mark.parametrize(
    "boxes, error, words",
    [
        (torch.tensor([[10.0, 10.0, 5.0, 20.0]]), ValueError, "xywh"),  # x2 < x1
        (torch.tensor([[1, 2, 3, 4]]), TypeError, "float"),  # integer boxes
        (torch.zeros(4), ValueError, r"\(N, 4\)"),  # not 2-D
        (torch.tensor([[0.1, 0.1, 0.5, 0.6]]), ValueError, "normalized"),  # [0, 1] boxes
        (torch.tensor([[0.0, 0.0, 500.0, 20.0]]), ValueError, "leave"),  # outside the image
        (torch.tensor([[0.0, float("nan"), 5.0, 5.0]]), ValueError, "NaN"),
    ],
)
def test_check_boxes_rejects(boxes, error, words):
    with pytest.raises(error, match=words):
        validate.check_boxes(boxes, canvas_size=(64, 64))


def test_check_labels_and_masks():
    validate.check_labels(torch.tensor([1, 2]), 2)
    with pytest.raises(ValueError, match="one entry per box"):
        validate.check_labels(torch.tensor([1]), 2)
    with pytest.raises(TypeError, match="int64"):
        validate.check_labels(torch.tensor([1.0]), 1)
    with pytest.raises(ValueError, match=">= 0"):
        validate.check_labels(torch.tensor([-1]), 1)
    validate.check_masks(torch.zeros(2, 8, 8, dtype=torch.bool), 2, (8, 8))
    with pytest.raises(TypeError, match="bool or uint8"):
        validate.check_masks(torch.zeros(1, 8, 8), 1)
    with pytest.raises(ValueError, match="0/1"):
        validate.check_masks(torch.full((1, 8, 8), 255, dtype=torch.uint8), 1)
    with pytest.raises(ValueError, match="one mask per box"):
        validate.check_masks(torch.zeros(1, 8, 8, dtype=torch.bool), 2)
    with pytest.raises(ValueError, match=r"\(8, 8\)"):
        validate.check_masks(torch.zeros(1, 4, 4, dtype=torch.bool), 1, (8, 8))


def test_check_target_masks_must_agree_with_boxes():
    masks = torch.zeros(1, 16, 16, dtype=torch.bool)
    masks[0, 2:6, 3:9] = True
    good = {
        "boxes": torch.tensor([[3.0, 2.0, 9.0, 6.0]]),
        "labels": torch.tensor([1]),
        "masks": masks,
    }
    validate.check_target(good, canvas_size=(16, 16))
    swapped = dict(good, boxes=torch.tensor([[2.0, 3.0, 6.0, 9.0]]))  # x and y swapped
    with pytest.raises(ValueError, match="disagree"):
        validate.check_target(swapped, canvas_size=(16, 16))
    empty = {
        "boxes": torch.zeros(0, 4),
        "labels": torch.zeros(0, dtype=torch.int64),
        "masks": torch.zeros(0, 16, 16, dtype=torch.bool),
    }
    validate.check_target(empty, canvas_size=(16, 16))
    with pytest.raises(ValueError, match="missing"):
        validate.check_target({"boxes": torch.zeros(0, 4)})


def test_check_semantic():
    validate.check_semantic(torch.tensor([[0, 6], [255, 1]]), num_classes=7)
    with pytest.raises(ValueError, match=r"\[0, 7\)"):
        validate.check_semantic(torch.tensor([[0, 7]]), num_classes=7)
    with pytest.raises(TypeError, match="integer"):
        validate.check_semantic(torch.zeros(2, 2), num_classes=7)


# ---------------------------------------------------------------- results
def test_record_replaces_and_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    results.record("01_x", "AP50", 0.5)
    results.record("01_x", "AP50", 0.75, "")
    results.record("02_y", "time", 12, "ms/image")
    entries = results.load_all()
    assert [(e["notebook"], e["name"], e["value"]) for e in entries] == [
        ("01_x", "AP50", 0.75),
        ("02_y", "time", 12.0),
    ]
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match="finite"):
        results.record("01_x", "bad", float("nan"))
    with pytest.raises(TypeError, match="number"):
        results.record("01_x", "bad", "high")


# ---------------------------------------------------------------- Colab set-up and packaging
def test_setup_cell_installs_without_dependencies():
    cell = colab.setup_cell("https://github.com/someone/their-course")
    assert '%pip install --quiet --no-deps "{source}"' in cell
    assert '"git+https://github.com/someone/their-course"' in cell
    assert all(f'glob.glob("{place}")' in cell for place in colab.WHEEL_PLACES)
    compile(cell.replace("%pip", "pass  #"), "<setup>", "exec")
    assert colab.colab_badge_url("00_welcome").endswith("/blob/main/release/00_welcome.ipynb")
    badge = colab.colab_badge_url("05_x", "https://github.com/a/b", "notebooks")
    assert badge == "https://colab.research.google.com/github/a/b/blob/main/notebooks/05_x.ipynb"
    for bad in ("http://github.com/a/b", "https://gitlab.com/a/b", "https://github.com/a"):
        with pytest.raises(ValueError, match="github.com"):
            colab.setup_cell(bad)


def test_setup_cell_takes_the_first_wheel_found(tmp_path, monkeypatch):
    """The cell's Python, run with %pip replaced: a wheel next to the notebook wins."""
    cell = colab.setup_cell().replace("import course_utils", "import course_utils_missing")
    cell = cell.replace('%pip install --quiet --no-deps "{source}"', "chosen.append(source)")
    monkeypatch.chdir(tmp_path)
    chosen: list[str] = []
    with pytest.raises(ImportError):  # the last import fails: nothing was installed
        exec(compile(cell, "<setup>", "exec"), {"chosen": chosen})
    assert chosen == ["git+" + colab.DEFAULT_REPOSITORY_URL]
    (tmp_path / "detseg_course-0.1.0-py3-none-any.whl").write_bytes(b"")
    chosen.clear()
    with pytest.raises(ImportError):
        exec(compile(cell, "<setup>", "exec"), {"chosen": chosen})
    assert chosen == ["detseg_course-0.1.0-py3-none-any.whl"]


def test_repository_url_in_one_place(tmp_path):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert colab.repository_url() == project["urls"]["Repository"]
    other = tmp_path / "pyproject.toml"
    other.write_text(
        '[project]\nname = "x"\n[project.urls]\nRepository = "https://github.com/o/n"\n'
    )
    assert colab.repository_url(other) == "https://github.com/o/n"
    other.write_text(
        '[project]\nname = "x"\n[project.urls]\nRepository = "https://example.com/o/n"\n'
    )
    with pytest.raises(ValueError, match="github.com"):
        colab.repository_url(other)


def test_colab_packages_are_ranges_not_pins():
    """Colab's torch 2.11 / ipywidgets 7.7.1 must satisfy the runtime requirements unchanged."""
    from packaging.requirements import Requirement

    colab_versions = {
        "torch": "2.11.0",
        "torchvision": "0.26.0",
        "numpy": "2.0.2",
        "ipywidgets": "7.7.1",
        "matplotlib": "3.10.0",
        "scikit-image": "0.25.2",
        "scipy": "1.15.3",
        "pycocotools": "2.0.10",
        "tqdm": "4.67.1",
    }
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"]:
        requirement = Requirement(line)
        assert "==" not in str(requirement.specifier), f"{line} pins a version"
        assert requirement.specifier.contains(colab_versions[requirement.name]), (
            f"Colab's {requirement.name} {colab_versions[requirement.name]} does not satisfy {line}"
        )
    assert not any("opencv" in line for line in project["dependencies"]), (
        "OpenCV stays out of the runtime dependencies "
        "(a second OpenCV wheel on Colab can hide cv2.ximgproc)"
    )
    python = project["requires-python"]
    assert all(
        Requirement(f"python{python}").specifier.contains(v) for v in ("3.11", "3.12", "3.13")
    )


def test_one_thread_restores_the_thread_count_even_after_an_error():
    before = torch.get_num_threads()
    with device.one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ZeroDivisionError):
        with device.one_thread():
            raise ZeroDivisionError("inside one_thread")
    assert torch.get_num_threads() == before


def test_notebook_setup_turns_tf32_off():
    # on Ampere GPUs TF32 convolutions would make Conv2d and its equal Linear differ by ~1e-2
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        device.notebook_setup(seed=0, prefer="cpu")
        assert (
            torch.backends.cudnn.allow_tf32 is False
            and torch.backends.cuda.matmul.allow_tf32 is False
        )
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


# --------------------------------------------------------------------------- settings checks


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.uint8(200)])
def test_check_int_accepts_python_and_numpy_ints(value):
    checked = validate.check_int(value, "steps")
    assert checked == int(value) and type(checked) is int


@pytest.mark.parametrize("value", [True, 1.0, "3", None, torch.tensor(3)])
def test_check_int_rejects_other_types_with_a_type_error_naming_the_argument(value):
    with pytest.raises(TypeError, match=r"steps must be an int >= 1, got"):
        validate.check_int(value, "steps")


@pytest.mark.parametrize(
    "value, minimum, maximum, words",
    [(0, 1, None, ">= 1, got 0"), (11, 0, 10, "in [0, 10], got 11"), (-1, 0, 10, "in [0, 10]")],
)
def test_check_int_rejects_values_out_of_range(value, minimum, maximum, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        validate.check_int(value, "size", minimum, maximum)


def test_check_int_lets_none_through_only_when_allowed():
    assert validate.check_int(None, "val_every", allow_none=True) is None
    assert validate.check_int(0, "offset", minimum=None) == 0
    with pytest.raises(TypeError):
        validate.check_int(None, "val_every")


@pytest.mark.parametrize("value", [0, 0.5, 1, np.float32(0.25)])
def test_check_number_accepts_numbers_in_range(value):
    assert validate.check_number(value, "iou", 0, 1) == pytest.approx(float(value))


@pytest.mark.parametrize(
    "value, error",
    [
        (True, TypeError),
        ("0.5", TypeError),
        (None, TypeError),
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        (1.5, ValueError),
        (-0.1, ValueError),
    ],
)
def test_check_number_rejects_wrong_types_and_values(value, error):
    with pytest.raises(error, match=r"iou must be a number in \[0, 1\]"):
        validate.check_number(value, "iou", 0, 1)


# --------------------------------------------------------------------------- tensors


def test_plain_strips_the_tv_tensor_wrapper_without_copying():
    from torchvision import tv_tensors

    boxes = tv_tensors.BoundingBoxes([[0, 0, 4, 4]], format="XYXY", canvas_size=(8, 8))
    result = tensors.plain(boxes)
    assert type(result) is torch.Tensor and result.data_ptr() == boxes.data_ptr()
    assert tensors.plain([1, 2]) == [1, 2]


def test_to_device_walks_containers_and_keeps_tv_tensors():
    from collections import namedtuple

    from torchvision import tv_tensors

    Pair = namedtuple("Pair", "image target")
    boxes = tv_tensors.BoundingBoxes(
        torch.tensor([[1.0, 2, 5, 6]]), format="XYXY", canvas_size=(8, 8)
    )
    batch = [
        Pair(tv_tensors.Image(torch.rand(3, 8, 8)), {"boxes": boxes, "image_id": 3, "name": None}),
        (torch.zeros(2), "text"),
    ]
    moved = tensors.to_device(batch, "meta")
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


def test_segmentation_logits_reads_dicts_and_resizes():
    logits = torch.randn(2, 5, 4, 4)
    assert tensors.segmentation_logits({"out": logits}, (4, 4)) is logits
    resized = tensors.segmentation_logits(logits, (8, 8))
    assert resized.shape == (2, 5, 8, 8)
    expected = torch.nn.functional.interpolate(logits, size=(8, 8), mode="bilinear")
    torch.testing.assert_close(resized, expected)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\) logits"):
        tensors.segmentation_logits(torch.randn(5, 4, 4), (4, 4))


# --------------------------------------------------------------------------- kernel environment


def test_kernel_environment_fills_in_what_the_caller_has_not_set():
    from course_utils.core.kernel_env import KERNEL_ENVIRONMENT, apply_kernel_environment

    assert KERNEL_ENVIRONMENT["OMP_WAIT_POLICY"] == "PASSIVE"
    env = apply_kernel_environment({"OMP_WAIT_POLICY": "ACTIVE", "HOME": "/h"})
    assert env["OMP_WAIT_POLICY"] == "ACTIVE" and env["HOME"] == "/h"
    assert apply_kernel_environment({}) == dict(KERNEL_ENVIRONMENT)


def test_kernel_environment_prints_name_value_lines_for_make():
    import subprocess
    import sys

    from course_utils.core.kernel_env import KERNEL_ENVIRONMENT

    printed = subprocess.run(
        [sys.executable, "-m", "course_utils.core.kernel_env"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert printed == [f"{name}={value}" for name, value in KERNEL_ENVIRONMENT.items()]


@pytest.mark.parametrize(
    "value, kwargs, words",
    [
        (0, {"minimum": 0, "open_minimum": True}, "> 0, got 0"),
        (1.0, {"minimum": 0, "maximum": 1, "open_maximum": True}, "in [0, 1), got 1.0"),
        (0, {"minimum": 0, "maximum": 1, "open_minimum": True}, "in (0, 1], got 0"),
        (2, {"maximum": 2, "open_maximum": True}, "< 2, got 2"),
    ],
)
def test_check_number_open_bounds_exclude_the_bound_itself(value, kwargs, words):
    with pytest.raises(ValueError, match=re.escape(f"p must be a number {words}")):
        validate.check_number(value, "p", **kwargs)


def test_check_number_open_bounds_keep_the_values_inside():
    assert validate.check_number(1e-9, "window", 0, open_minimum=True) == 1e-9
    assert validate.check_number(0.0, "dropout", 0, 1, open_maximum=True) == 0.0
    assert validate.check_number(0.999, "dropout", 0, 1, open_maximum=True) == 0.999
