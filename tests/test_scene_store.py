"""Tests of the scenes store and its .npz cache (course_utils.data.scene_store)."""

import numpy as np
import pytest
import torch

from course_utils.data.datasets import SceneDataset
from course_utils.data.scene_store import (
    STORE_KEYS,
    cache_path,
    generate_store,
    load_or_generate,
)
from course_utils.data.scenes import (
    SceneConfig,
    config_hash,
    generate_scene,
    instance_map_from_masks,
    scene_seed,
)

SMALL = SceneConfig(size=64)


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_generate_store_holds_the_generated_scenes():
    store = generate_store("val", 4, SMALL)
    assert set(store) == set(STORE_KEYS)
    assert store["images"].shape == (4, 64, 64, 3) and store["images"].dtype == np.uint8
    assert store["counts"].dtype == np.int64 and store["labels"].dtype == np.int64
    assert store["boxes"].shape == (int(store["counts"].sum()), 4)
    start = 0
    for index in range(4):
        scene = generate_scene(scene_seed("val", index), SMALL)
        stop = start + len(scene.labels)
        assert store["counts"][index] == len(scene.labels)
        assert np.array_equal(store["images"][index], scene.image)
        assert np.array_equal(store["semantic"][index], scene.semantic)
        assert np.array_equal(store["instances"][index], instance_map_from_masks(scene.masks))
        assert np.array_equal(store["labels"][start:stop], scene.labels)
        assert np.array_equal(store["boxes"][start:stop], scene.boxes)
        start = stop


def test_cache_path_names_split_count_and_config(data_dir):
    path = cache_path("test", 12, SMALL)
    assert path == data_dir / "scenes" / f"test_12_{config_hash(SMALL)}.npz"
    with pytest.raises(ValueError, match="split"):
        cache_path("dev", 12, SMALL)
    with pytest.raises(TypeError, match="num_images"):
        cache_path("test", 1.5, SMALL)
    with pytest.raises(ValueError, match="num_images"):
        generate_store("test", 0, SMALL)


def test_load_or_generate_without_cache_writes_nothing(data_dir):
    store = load_or_generate("train", 3, SMALL, cache=False, progress=False)
    assert not (data_dir / "scenes").exists()
    expected = generate_store("train", 3, SMALL)
    for key in STORE_KEYS:
        assert np.array_equal(store[key], expected[key])


def test_cache_is_written_once_and_reused_for_smaller_requests(data_dir):
    first = SceneDataset("train", 5, SMALL, progress=False)
    path = cache_path("train", 5, SMALL)
    assert path.exists() and path.parent == data_dir / "scenes"
    assert not list(path.parent.glob("*.tmp"))
    stamp = path.stat().st_mtime_ns
    again = SceneDataset("train", 5, SMALL, progress=False)
    prefix = SceneDataset("train", 3, SMALL, progress=False)
    assert path.stat().st_mtime_ns == stamp and not cache_path("train", 3, SMALL).exists()
    for index in range(3):
        assert torch.equal(first[index][0], again[index][0]) and torch.equal(
            first[index][0], prefix[index][0]
        )
        assert torch.equal(first[index][1]["boxes"], prefix[index][1]["boxes"])


def test_corrupt_cache_is_regenerated():
    SceneDataset("train", 2, SMALL, progress=False)
    path = cache_path("train", 2, SMALL)
    path.write_bytes(b"not a zip")
    dataset = SceneDataset("train", 2, SMALL, progress=False)
    assert len(dataset) == 2 and path.stat().st_size > 100
    regenerated = load_or_generate("train", 2, SMALL, progress=False)  # read back from the file
    assert np.array_equal(
        regenerated["images"][1], generate_scene(scene_seed("train", 1), SMALL).image
    )
