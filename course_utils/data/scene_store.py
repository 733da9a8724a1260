"""The scenes materialised: compact arrays of a whole split, cached as ``.npz`` under ``data/``.

``generate_store`` renders scenes ``0..M-1`` of a split into a few arrays (one uint8 id map per
image instead of N masks); ``load_or_generate`` reads them from
``data_dir()/"scenes"/<split>_<M>_<config hash>.npz`` when a cache with at least ``M`` images
of the same split and configuration exists (scenes are index-deterministic, so its first ``M``
images are the ones asked for), and otherwise generates and writes it atomically. The config
hash includes ``scenes.GENERATOR_VERSION``, so a changed generator never reads stale files.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from course_utils.core.paths import data_dir
from course_utils.core.progress import progress_bar
from course_utils.core.validate import check_int
from course_utils.data.scenes import (
    SceneConfig,
    check_split,
    config_hash,
    generate_scene,
    instance_map_from_masks,
    scene_seed,
)

#: The arrays of a store (and of a cache file).
STORE_KEYS: tuple[str, ...] = ("images", "semantic", "instances", "labels", "boxes", "counts")


def generate_store(
    split: str, num_images: int, config: SceneConfig = SceneConfig(), progress: bool = False
) -> dict[str, np.ndarray]:
    """Generate scenes ``0..num_images-1`` of ``split`` into compact arrays.

    Returns a dict: ``images`` uint8 (M, H, W, 3), ``semantic`` uint8 (M, H, W),
    ``instances`` uint8 (M, H, W) (0 = none, i + 1 = instance i of that image),
    ``labels`` int64 (T,) and ``boxes`` float32 (T, 4) of all T instances in image
    order, ``counts`` int64 (M,) instances per image.
    """
    check_split(split)
    check_int(num_images, "num_images")
    size = config.size
    store = {
        "images": np.zeros((num_images, size, size, 3), np.uint8),
        "semantic": np.zeros((num_images, size, size), np.uint8),
        "instances": np.zeros((num_images, size, size), np.uint8),
        "counts": np.zeros(num_images, np.int64),
    }
    labels, boxes = [], []
    bar = progress_bar(range(num_images), desc=f"scenes/{split}", disable=not progress, leave=False)
    for index in bar:
        scene = generate_scene(scene_seed(split, index), config)
        store["images"][index] = scene.image
        store["semantic"][index] = scene.semantic
        store["instances"][index] = instance_map_from_masks(scene.masks)
        store["counts"][index] = len(scene.labels)
        labels.append(scene.labels)
        boxes.append(scene.boxes)
    store["labels"] = np.concatenate(labels).astype(np.int64)
    store["boxes"] = np.concatenate(boxes).astype(np.float32).reshape(-1, 4)
    return store


def cache_path(split: str, num_images: int, config: SceneConfig = SceneConfig()) -> Path:
    """``data_dir()/"scenes"/<split>_<num_images>_<config hash>.npz``."""
    check_split(split)
    num_images = check_int(num_images, "num_images")
    return data_dir() / "scenes" / f"{split}_{num_images}_{config_hash(config)}.npz"


def _slice_store(store: dict[str, np.ndarray], num_images: int) -> dict[str, np.ndarray]:
    """The first ``num_images`` images of a store (scenes are index-deterministic)."""
    total = int(store["counts"][:num_images].sum())
    out = {key: store[key][:num_images] for key in ("images", "semantic", "instances", "counts")}
    out["labels"], out["boxes"] = store["labels"][:total], store["boxes"][:total]
    return out


def _read_store(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file, or None when it is missing, truncated or incomplete."""
    try:
        with np.load(path) as archive:
            store = {key: archive[key] for key in STORE_KEYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    return store


def _write_store(path: Path, store: dict[str, np.ndarray]) -> None:
    """Write a cache file atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=path.stem, suffix=".tmp", delete=False
    )
    try:
        with handle:
            np.savez_compressed(handle, **store)
        os.chmod(handle.name, 0o644)  # NamedTemporaryFile makes 0600 files
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def _cached_store(path: Path, split: str, num_images: int, config: SceneConfig):
    """The first ``num_images`` of the smallest readable cache file of ``split`` and
    ``config`` holding at least that many images (in ``path``'s folder), or None."""
    candidates = []
    for found in path.parent.glob(f"{split}_*_{config_hash(config)}.npz"):
        count = found.stem.split("_")[1]
        if count.isdigit() and int(count) >= num_images:
            candidates.append((int(count), found))
    for _, found in sorted(candidates):
        store = _read_store(found)
        if store is not None and len(store["counts"]) >= num_images:
            return _slice_store(store, num_images)
    return None


def load_or_generate(
    split: str,
    num_images: int,
    config: SceneConfig = SceneConfig(),
    cache: bool = True,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """The store of ``generate_store``, read from the cache when possible.

    A cached file of the same split and configuration with *at least* ``num_images``
    images is reused (its first ``num_images`` are the same scenes). Otherwise the scenes
    are generated and, with ``cache=True``, written to ``cache_path(...)``.
    """
    path = cache_path(split, num_images, config)
    if cache:
        store = _cached_store(path, split, num_images, config)
        if store is not None:
            return store
    store = generate_store(split, num_images, config, progress=progress)
    if cache:
        _write_store(path, store)
    return store
