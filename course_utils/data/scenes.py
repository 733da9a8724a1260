"""The course's "scenes": synthetic photographs of shapes lying on textured ground.

Every scene is an RGB image (``size`` x ``size``, 128 by default) made of

* **stuff**: the background split into 2-3 regions (a wavy horizon, warped Voronoi
  boundaries), each one of ``STUFF_CLASSES``: ``sky`` is a smooth colour gradient,
  ``grass``, ``gravel`` and ``brick`` are crops of scikit-image's real photographs of
  those materials (shipped inside the scikit-image wheel, nothing is downloaded), taken
  at random offsets, scales and orientations and tinted with varied colours;
* **distractors** (0-1 by default, ``max_distractors``): rings, bars, crosses, squares
  and scribbles painted on the stuff with the same colours and textures as the objects.
  They are *not* instances: in the semantic map they belong to the stuff underneath;
* **things**: 1-6 objects of ``THING_CLASSES`` (disk, triangle, star) with random
  colour (independent of the class, but at least ``min_thing_contrast`` away from what
  they cover), texture (flat, stripes, checker, noise, shading), rotation, aspect ratio
  (up to 1.3) and size (14-56 px at 128 px, log-uniform, scaled with ``size``). Later
  objects occlude earlier ones, but every instance keeps at least
  ``min_visible_fraction`` (70 %) of its area and ``min_visible_pixels`` pixels
  (placements are re-sampled otherwise).

The defaults were calibrated with ``tools/calibrate_faster_rcnn.py`` (a small Faster
R-CNN trained from scratch for about two CPU minutes reaches AP50 ~0.55-0.85, see
``data/README.md``); every difficulty knob is a ``SceneConfig`` field.

Targets are exact because rendering is hard-edged (no anti-aliasing):

* ``masks``: bool (N, H, W), the *visible* pixels of each instance (disjoint);
* ``boxes``: float32 (N, 4), ``(x1, y1, x2, y2)`` in pixels, the tight box of the visible
  mask with an **exclusive** right/bottom edge: ``x1`` = first column, ``x2`` = last
  column + 1 (so ``x2 - x1`` is the width in pixels, as in COCO's ``[x, y, w, h]``).
  Note: ``torchvision.ops.masks_to_boxes`` returns the *last* column as ``x2``; see
  ``boxes_from_masks``;
* ``labels``: int64 (N,), 1..3 indexing ``THING_CLASSES`` (0 is background);
* ``semantic``: uint8 (H, W), ids into ``SEMANTIC_CLASSES``: stuff 0..3, thing label k
  -> ``len(STUFF_CLASSES) + k - 1`` (4..6).

Determinism: ``generate_scene(seed)`` draws everything from one
``numpy.random.Generator`` seeded with ``SeedSequence(seed)`` (PCG64, the same stream on
every platform for a given NumPy version); polygon vertices and other ``sin``/``cos``
results are rounded to 1/256 px, so last-bit differences between C libraries or SIMD
paths (almost) never move a pixel.
``scene_seed(split, index)`` gives train/val/test disjoint seeds by construction.

This module is the scenes' vocabulary and contract (classes, ``SceneConfig``, seeds,
``Scene``, mask/box conversions, ``generate_scene``); how the pixels are painted lives in
``course_utils.data.scene_painting``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch

from course_utils.core.validate import check_int, check_number
from course_utils.data import scene_painting

STUFF_CLASSES: tuple[str, ...] = ("sky", "grass", "gravel", "brick")
THING_CLASSES: tuple[str, ...] = ("disk", "triangle", "star")
SEMANTIC_CLASSES: tuple[str, ...] = STUFF_CLASSES + THING_CLASSES
SPLITS: tuple[str, ...] = ("train", "val", "test")

#: Bumped whenever the generator's output changes, so old caches are never reused.
GENERATOR_VERSION = 4

_SPLIT_IDS = {"train": 1, "val": 2, "test": 3}
_MAX_INDEX = 2**32


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SceneConfig:
    """Everything that controls how hard the scenes are (immutable, hashable).

    Sizes are in pixels of a ``size`` x ``size`` image; ``None`` object sizes scale the
    default 14..56 px (at 128 px) with ``size``. An object's size is the diameter of the circle
    its shape is drawn in: a disk's longest extent, an upper bound for a triangle's or a star's.
    ``thing_texture_strength`` (0..1) is how far a textured surface's second colour is
    from its first (1: an independent random colour, which breaks silhouettes up);
    ``texture_contrast`` scales the stuff photographs' contrast; ``random_stuff_color``
    is the chance that a textured stuff region gets a random hue instead of its usual tint.
    ``min_thing_contrast`` is the smallest RGB distance (colours in [0, 1]) between an
    object's main colour and the mean colour of what it covers (re-sampled up to 20 times),
    so that objects are rarely camouflaged.
    """

    size: int = 128
    min_objects: int = 1
    max_objects: int = 6
    min_object_size: float | None = None
    max_object_size: float | None = None
    max_aspect: float = 1.3
    thing_texture_strength: float = 0.3
    min_thing_contrast: float = 0.25
    min_visible_fraction: float = 0.7
    min_visible_pixels: int = 16
    min_distractors: int = 0
    max_distractors: int = 1
    texture_contrast: float = 0.3
    random_stuff_color: float = 0.2
    sky_probability: float = 0.6
    noise_level: int = 0
    placement_attempts: int = 30

    def __post_init__(self) -> None:
        _validate_config(self)

    def object_size_range(self) -> tuple[float, float]:
        """``(smallest, largest)`` object size in pixels for this image size."""
        low = self.min_object_size if self.min_object_size is not None else 14.0 * self.size / 128
        high = self.max_object_size if self.max_object_size is not None else 56.0 * self.size / 128
        return float(low), float(high)

    def object_area_bins(self) -> tuple[float, float]:
        """``(small_below, large_above)``: the object areas in square pixels (mask pixels) under
        which an object counts as *small* and over which it counts as *large*, for AP_small and
        AP_large. COCO's 32² and 96² are meant for 640-pixel photographs, where almost every
        object of our 128-pixel scenes would be "small"; ours are 12² and 24² at 128 px
        (scaled with ``size``): about a quarter of the objects fall in each outer bin."""
        return (12.0 * self.size / 128) ** 2, (24.0 * self.size / 128) ** 2

    def to_dict(self) -> dict:
        """The configuration as a plain JSON-able dict."""
        return dataclasses.asdict(self)


def _check_order(config: SceneConfig, low_name: str, high_name: str) -> None:
    """ValueError unless ``config.<high_name> >= config.<low_name>``."""
    low, high = getattr(config, low_name), getattr(config, high_name)
    if high < low:
        raise ValueError(f"SceneConfig.{high_name} ({high}) must be >= {low_name} ({low})")


def _validate_config(config: SceneConfig) -> None:
    """Raise TypeError (wrong type) or ValueError (out of range) naming the first bad field."""
    name = "SceneConfig."
    check_int(config.size, name + "size", 32, 4096)
    check_int(config.min_objects, name + "min_objects", 0, 50)
    check_int(config.max_objects, name + "max_objects", 0, 50)
    _check_order(config, "min_objects", "max_objects")
    for field in ("min_object_size", "max_object_size"):
        if getattr(config, field) is not None:
            check_number(getattr(config, field), name + field, minimum=4.0)
    low, high = config.object_size_range()
    if high > config.size:
        raise ValueError(f"SceneConfig.max_object_size ({high:g}) must be <= size ({config.size})")
    if low > high:
        raise ValueError(
            f"SceneConfig.min_object_size ({low:g}) must be <= max_object_size ({high:g})"
        )
    check_number(config.max_aspect, name + "max_aspect", 1.0, 4.0)
    check_number(config.thing_texture_strength, name + "thing_texture_strength", 0.0, 1.0)
    check_number(config.min_thing_contrast, name + "min_thing_contrast", 0.0, 1.0)
    check_number(config.min_visible_fraction, name + "min_visible_fraction", 0.05, 1.0)
    check_int(config.min_visible_pixels, name + "min_visible_pixels", minimum=1)
    check_int(config.min_distractors, name + "min_distractors", 0, 50)
    check_int(config.max_distractors, name + "max_distractors", 0, 50)
    _check_order(config, "min_distractors", "max_distractors")
    check_number(config.texture_contrast, name + "texture_contrast", 0.0, 2.0)
    check_number(config.random_stuff_color, name + "random_stuff_color", 0.0, 1.0)
    check_number(config.sky_probability, name + "sky_probability", 0.0, 1.0)
    check_int(config.noise_level, name + "noise_level", 0, 64)
    check_int(config.placement_attempts, name + "placement_attempts", minimum=1)


def config_hash(config: SceneConfig) -> str:
    """A short hex digest of ``config`` and the generator version (names cache files)."""
    if not isinstance(config, SceneConfig):
        raise TypeError(f"config must be a SceneConfig, got {type(config).__name__}")
    text = json.dumps({"version": GENERATOR_VERSION, **config.to_dict()}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


# --------------------------------------------------------------------------- seeds and scenes


def check_split(split) -> str:
    """``split`` if it is one of ``SPLITS`` ("train", "val", "test"), else ValueError."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def scene_seed(split: str, index: int) -> int:
    """The seed of image ``index`` of ``split``: ``split_id * 2**32 + index``.

    ``split_id`` is 1, 2, 3 for train, val, test, so the three splits never share a seed;
    ``index`` is an int in [0, 2**32).
    """
    index = check_int(index, "index", minimum=0, maximum=_MAX_INDEX - 1)
    return _SPLIT_IDS[check_split(split)] * _MAX_INDEX + index


@dataclass(frozen=True)
class Scene:
    """One generated scene (numpy arrays, see the module docstring for conventions).

    image uint8 (H, W, 3); boxes float32 (N, 4) xyxy pixels with exclusive x2/y2;
    labels int64 (N,) in 1..3; masks bool (N, H, W) visible pixels (disjoint);
    semantic uint8 (H, W) ids into ``SEMANTIC_CLASSES``.
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    semantic: np.ndarray

    @property
    def instance_map(self) -> np.ndarray:
        """uint8 (H, W): 0 where no instance is visible, i + 1 on the pixels of instance i."""
        return instance_map_from_masks(self.masks)


def instance_map_from_masks(masks: np.ndarray) -> np.ndarray:
    """Disjoint bool masks (N, H, W) -> uint8 id map (H, W): 0 = none, i + 1 = instance i."""
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"masks must have shape (N, H, W), got {masks.shape}")
    if masks.shape[0] > 255:
        raise ValueError(f"at most 255 instances fit a uint8 id map, got {masks.shape[0]}")
    if masks.shape[0] and masks.sum(axis=0).max() > 1:
        raise ValueError("masks overlap: an id map needs disjoint (visible-pixel) masks")
    ids = np.arange(1, masks.shape[0] + 1, dtype=np.uint8)[:, None, None]
    return (
        (masks * ids).sum(axis=0, dtype=np.uint8)
        if masks.shape[0]
        else np.zeros(masks.shape[1:], np.uint8)
    )


def masks_from_instance_map(instance_map: np.ndarray, num_instances: int) -> np.ndarray:
    """uint8 id map (H, W) -> bool masks (N, H, W) with ``N = num_instances``."""
    instance_map = np.asarray(instance_map)
    if instance_map.ndim != 2:
        raise ValueError(f"instance_map must have shape (H, W), got {instance_map.shape}")
    ids = np.arange(1, num_instances + 1, dtype=instance_map.dtype)[:, None, None]
    return instance_map[None] == ids


def boxes_from_masks(masks: np.ndarray | torch.Tensor) -> np.ndarray:
    """Tight boxes of masks (N, H, W) -> float32 (N, 4) ``(x1, y1, x2, y2)``, x2/y2 exclusive.

    Equals ``torchvision.ops.masks_to_boxes(masks) + [0, 0, 1, 1]`` (tested):
    torchvision gives the last covered column/row, the course's boxes end one pixel
    later so that ``x2 - x1`` is the number of columns covered (COCO's width). Written
    in NumPy so that the generator never starts torch's intra-op threads. Every mask
    must have at least one pixel.
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"masks must have shape (N, H, W), got {masks.shape}")
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    if not rows.any(axis=1).all():
        raise ValueError("every mask must have at least one pixel to have a box")
    height, width = masks.shape[1:]
    boxes = np.stack(
        [
            cols.argmax(axis=1),
            rows.argmax(axis=1),
            width - cols[:, ::-1].argmax(axis=1),
            height - rows[:, ::-1].argmax(axis=1),
        ],
        axis=1,
    )
    return boxes.astype(np.float32).reshape(-1, 4)


def _semantic_map(layout: np.ndarray, owner: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """uint8 (H, W) ids into ``SEMANTIC_CLASSES``: the stuff ``layout`` where no object is
    visible, ``len(STUFF_CLASSES) + label - 1`` on the pixels each object of ``owner`` owns."""
    semantic = layout.copy()
    semantic[owner > 0] = (len(STUFF_CLASSES) - 1 + labels[owner[owner > 0] - 1]).astype(np.uint8)
    return semantic


def generate_scene(seed: int, config: SceneConfig = SceneConfig()) -> Scene:
    """Render the scene of ``seed`` (byte-identical for the same seed, config and NumPy).

    Returns a ``Scene``: image uint8 (H, W, 3), boxes float32 (N, 4) xyxy with exclusive
    x2/y2, labels int64 (N,) in 1..3, masks bool (N, H, W) of visible pixels, semantic
    uint8 (H, W). ``N`` may be 0 when ``config.min_objects == 0``. ``seed`` is an int >= 0.
    """
    seed = check_int(seed, "seed", minimum=0)
    if not isinstance(config, SceneConfig):
        raise TypeError(f"config must be a SceneConfig, got {type(config).__name__}")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    layout = scene_painting.stuff_layout(rng, config)
    image = scene_painting.paint_stuff(rng, layout, config, STUFF_CLASSES)
    scene_painting.paint_distractors(rng, image, config)
    labels, placed, owner = scene_painting.place_things(rng, config, THING_CLASSES)
    scene_painting.paint_things(rng, image, owner, placed, config)
    if config.noise_level:
        image = (
            image + rng.integers(-config.noise_level, config.noise_level + 1, image.shape) / 255.0
        )
    pixels = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    masks = masks_from_instance_map(owner, len(labels))
    label_array = np.asarray(labels, dtype=np.int64)
    return Scene(
        image=pixels,
        boxes=boxes_from_masks(masks),
        labels=label_array,
        masks=masks,
        semantic=_semantic_map(layout, owner, label_array),
    )
