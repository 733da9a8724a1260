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
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from skimage.draw import polygon as _fill_polygon

STUFF_CLASSES: tuple[str, ...] = ("sky", "grass", "gravel", "brick")
THING_CLASSES: tuple[str, ...] = ("disk", "triangle", "star")
SEMANTIC_CLASSES: tuple[str, ...] = STUFF_CLASSES + THING_CLASSES
SPLITS: tuple[str, ...] = ("train", "val", "test")
THING_TEXTURES: tuple[str, ...] = ("flat", "stripes", "checker", "noise", "shading")
DISTRACTOR_SHAPES: tuple[str, ...] = ("ring", "bar", "cross", "square", "scribble")

#: Bumped whenever the generator's output changes, so old caches are never reused.
GENERATOR_VERSION = 4

_SPLIT_IDS = {"train": 1, "val": 2, "test": 3}
_MAX_INDEX = 2**32
_VERTEX_GRID = (
    256.0  # polygon vertices are rounded to 1/256 px (platform-independent rasterisation)
)

# Tint priors of the textured stuff classes: (hue centre, hue jitter, saturation range, value range).
_STUFF_TINTS = {
    "grass": (0.27, 0.08, (0.35, 0.85), (0.35, 0.80)),
    "gravel": (0.10, 0.50, (0.00, 0.20), (0.40, 0.85)),
    "brick": (0.03, 0.05, (0.40, 0.85), (0.35, 0.80)),
}


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SceneConfig:
    """Everything that controls how hard the scenes are (immutable, hashable).

    Sizes are in pixels of a ``size`` x ``size`` image; ``None`` object sizes scale the
    default 14..56 px (at 128 px) with ``size``. An object's size is its longest extent.
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

    def to_dict(self) -> dict:
        """The configuration as a plain JSON-able dict."""
        return dataclasses.asdict(self)


def _require_int(value, name: str, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"SceneConfig.{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low or (high is not None and value > high):
        upper = f" and <= {high}" if high is not None else ""
        raise ValueError(f"SceneConfig.{name} must be >= {low}{upper}, got {value}")


def _require_fraction(value, name: str, low: float = 0.0, high: float = 1.0) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(
            f"SceneConfig.{name} must be a number, got {type(value).__name__} {value!r}"
        )
    if not low <= float(value) <= high:
        raise ValueError(f"SceneConfig.{name} must lie in [{low}, {high}], got {value}")


def _validate_config(config: SceneConfig) -> None:
    """Raise ValueError/TypeError naming the first field that is out of range."""
    _require_int(config.size, "size", 32, 4096)
    _require_int(config.min_objects, "min_objects", 0, 50)
    _require_int(config.max_objects, "max_objects", 0, 50)
    if config.max_objects < config.min_objects:
        raise ValueError(
            f"SceneConfig.max_objects ({config.max_objects}) must be >= min_objects ({config.min_objects})"
        )
    for name in ("min_object_size", "max_object_size"):
        value = getattr(config, name)
        if value is not None:
            _require_fraction(value, name, 4.0, float("inf"))
    low, high = config.object_size_range()
    if high > config.size:
        raise ValueError(f"SceneConfig.max_object_size ({high:g}) must be <= size ({config.size})")
    if low > high:
        raise ValueError(
            f"SceneConfig.min_object_size ({low:g}) must be <= max_object_size ({high:g})"
        )
    _require_fraction(config.max_aspect, "max_aspect", 1.0, 4.0)
    _require_fraction(config.thing_texture_strength, "thing_texture_strength")
    _require_fraction(config.min_thing_contrast, "min_thing_contrast", 0.0, 1.0)
    _require_fraction(config.min_visible_fraction, "min_visible_fraction", 0.05, 1.0)
    _require_int(config.min_visible_pixels, "min_visible_pixels", 1)
    _require_int(config.min_distractors, "min_distractors", 0, 50)
    _require_int(config.max_distractors, "max_distractors", 0, 50)
    if config.max_distractors < config.min_distractors:
        raise ValueError(
            f"SceneConfig.max_distractors ({config.max_distractors}) must be >= "
            f"min_distractors ({config.min_distractors})"
        )
    _require_fraction(config.texture_contrast, "texture_contrast", 0.0, 2.0)
    _require_fraction(config.random_stuff_color, "random_stuff_color")
    _require_fraction(config.sky_probability, "sky_probability")
    _require_int(config.noise_level, "noise_level", 0, 64)
    _require_int(config.placement_attempts, "placement_attempts", 1)


def config_hash(config: SceneConfig) -> str:
    """A short hex digest of ``config`` and the generator version (names cache files)."""
    if not isinstance(config, SceneConfig):
        raise TypeError(f"config must be a SceneConfig, got {type(config).__name__}")
    text = json.dumps({"version": GENERATOR_VERSION, **config.to_dict()}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


# --------------------------------------------------------------------------- seeds and scenes


def scene_seed(split: str, index: int) -> int:
    """The seed of image ``index`` of ``split``: ``split_id * 2**32 + index``.

    ``split_id`` is 1, 2, 3 for train, val, test, so the three splits never share a seed.
    """
    if split not in _SPLIT_IDS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"index must be an int, got {type(index).__name__}")
    if not 0 <= index < _MAX_INDEX:
        raise ValueError(f"index must lie in [0, 2**32), got {index}")
    return _SPLIT_IDS[split] * _MAX_INDEX + int(index)


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


# --------------------------------------------------------------------------- colours and textures


@lru_cache(maxsize=None)
def _material(name: str) -> np.ndarray:
    """scikit-image's grayscale photograph of ``name`` as float32 z-scores (read-only).

    grass, gravel and brick ship in the scikit-image wheel (``skimage/data/*.png``), so no
    download ever happens.
    """
    import skimage.data

    pixels = getattr(skimage.data, name)().astype(np.float32)
    pixels = (pixels - pixels.mean()) / (pixels.std() + 1e-6)
    pixels.setflags(write=False)
    return pixels


def _on_grid(values: np.ndarray) -> np.ndarray:
    """Round to multiples of 1/256: results of ``sin``/``cos`` that differ in the last bits
    between C libraries or SIMD paths then (almost always) land on the same value."""
    return np.round(np.asarray(values) * _VERTEX_GRID) / _VERTEX_GRID


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    """One HSV colour (all in [0, 1]) -> float64 RGB (3,) in [0, 1] (plain arithmetic)."""
    h = (h % 1.0) * 6.0
    sector = int(h) % 6
    f = h - int(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][sector])


def _random_color(
    rng: np.random.Generator, avoid: np.ndarray | None = None, distance: float = 0.0
) -> np.ndarray:
    """A colour for a thing or distractor: any hue, mostly saturated, never black.

    With ``avoid`` (RGB), re-sampled (at most 20 times) until it is at least ``distance``
    away from it in RGB.
    """
    for _ in range(20):
        color = _hsv_to_rgb(rng.random(), rng.uniform(0.25, 1.0), rng.uniform(0.3, 1.0))
        if avoid is None or float(np.sqrt(((color - avoid) ** 2).sum())) >= distance:
            break
    return color


def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates (size, size) of the pixel centres, float64."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    return rows, cols


def _thing_texture(
    rng: np.random.Generator,
    ys: np.ndarray,
    xs: np.ndarray,
    center: np.ndarray,
    scale: float,
    strength: float = 1.0,
    avoid: np.ndarray | None = None,
    contrast: float = 0.0,
) -> np.ndarray:
    """Colours (K, 3) float of the pixels ``(ys, xs)`` of one object's (or distractor's) surface.

    Picks one of ``THING_TEXTURES``; colours are independent of the object's class.
    ``center`` (row, col) and ``scale`` (radius in px) place the shading's highlight;
    ``strength`` in [0, 1] moves the second colour from the first towards a random one;
    the first colour is at least ``contrast`` away from ``avoid`` (RGB) when given.
    """
    kind = THING_TEXTURES[rng.integers(len(THING_TEXTURES))]
    first = _random_color(rng, avoid, contrast)
    second = first * (1 - strength) + _random_color(rng) * strength
    rows, cols = ys.astype(np.float64), xs.astype(np.float64)
    if kind == "flat":
        weight = np.zeros_like(rows)
    elif kind == "stripes":
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(3.0, 8.0)
        weight = np.floor(_on_grid((cols * np.cos(angle) + rows * np.sin(angle)) / period)) % 2
    elif kind == "checker":
        cell = int(rng.integers(2, 7))
        weight = ((ys // cell + xs // cell) % 2).astype(np.float64)
    elif kind == "noise":
        block = int(rng.integers(1, 4))
        coarse = rng.random(
            (int(ys.max(initial=0)) // block + 1, int(xs.max(initial=0)) // block + 1)
        )
        weight = coarse[ys // block, xs // block]
    else:  # shading: a lit sphere-like gradient from a highlight point
        highlight = center + rng.uniform(-0.3, 0.3, 2) * scale
        weight = np.clip(
            np.hypot(rows - highlight[0], cols - highlight[1]) / max(scale, 1.0), 0.0, 1.0
        )
        second = first * rng.uniform(0.15, 0.5)
    weight = weight[:, None]
    return first * (1 - weight) + second * weight


def _stuff_texture(
    rng: np.random.Generator, name: str, size: int, contrast: float, random_color: float
) -> np.ndarray:
    """RGB float (size, size, 3) filling a stuff region of class ``name``."""
    if name == "sky":
        top = _hsv_to_rgb(rng.normal(0.58, 0.04), rng.uniform(0.3, 0.8), rng.uniform(0.55, 0.95))
        bottom = _hsv_to_rgb(rng.normal(0.56, 0.06), rng.uniform(0.05, 0.4), rng.uniform(0.8, 1.0))
        ramp = np.linspace(0.0, 1.0, size)[:, None, None]
        return np.broadcast_to(top * (1 - ramp) + bottom * ramp, (size, size, 3))
    hue, jitter, saturation, value = _STUFF_TINTS[name]
    if rng.random() < random_color:
        hue, jitter = rng.random(), 0.0
    base = _hsv_to_rgb(
        hue + rng.uniform(-jitter, jitter), rng.uniform(*saturation), rng.uniform(*value)
    )
    material = _material(name)
    step = int(rng.integers(1, 3))
    offset = rng.integers(0, material.shape[0], 2)
    rows = (offset[0] + step * np.arange(size)) % material.shape[0]
    cols = (offset[1] + step * np.arange(size)) % material.shape[1]
    crop = material[np.ix_(rows, cols)]
    if rng.random() < 0.5:
        crop = crop.T
    shade = np.clip(1.0 + 0.35 * contrast * crop, 0.0, 2.0)[..., None]
    return base * shade


# --------------------------------------------------------------------------- geometry


def _rasterize(vertices: np.ndarray, size: int) -> np.ndarray:
    """Hard-edged bool mask (size, size) of a polygon given as (K, 2) (row, col) vertices."""
    vertices = _on_grid(vertices)
    mask = np.zeros((size, size), dtype=bool)
    rr, cc = _fill_polygon(vertices[:, 0], vertices[:, 1], shape=(size, size))
    mask[rr, cc] = True
    return mask


def _unit_outline(rng: np.random.Generator, shape: str) -> np.ndarray:
    """Outline (K, 2) of a class shape in unit coordinates (radius 1, x then y)."""
    if shape == "disk":
        angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if shape == "triangle":
        angles = np.deg2rad(np.array([90.0, 210.0, 330.0]) + rng.uniform(-15, 15, 3))
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if shape == "star":
        points = int(rng.integers(5, 7))
        angles = np.linspace(0, 2 * np.pi, 2 * points, endpoint=False)
        radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, rng.uniform(0.38, 0.55))
        return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    raise ValueError(f"unknown shape {shape!r}")


def _place(
    outline: np.ndarray, center: np.ndarray, size: float, aspect: float, angle: float
) -> np.ndarray:
    """Stretch (1 x 1/aspect), rotate, scale to ``size`` (longest extent), move to ``center`` (row, col)."""
    stretched = outline * np.array([1.0, 1.0 / aspect])
    cos, sin = np.cos(angle), np.sin(angle)
    rotated = stretched @ np.array([[cos, sin], [-sin, cos]])
    xy = rotated * (size / 2.0)
    return np.stack([center[0] + xy[:, 1], center[1] + xy[:, 0]], axis=1)


def _segment_polygon(start: np.ndarray, end: np.ndarray, width: float) -> np.ndarray:
    """Rectangle (4, 2) (row, col) of a thick line segment from ``start`` to ``end``."""
    direction = end - start
    length = max(float(np.hypot(*direction)), 1e-6)
    normal = np.array([-direction[1], direction[0]]) / length * (width / 2.0)
    return np.stack([start + normal, end + normal, end - normal, start - normal])


def _distractor_mask(rng: np.random.Generator, size: int, low: float, high: float) -> np.ndarray:
    """Bool mask (size, size) of one non-class shape (``DISTRACTOR_SHAPES``)."""
    kind = DISTRACTOR_SHAPES[rng.integers(len(DISTRACTOR_SHAPES))]
    extent = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    center = rng.uniform(extent / 2, size - extent / 2, 2)
    angle = rng.uniform(0, 2 * np.pi)
    if kind == "ring":
        circle = _unit_outline(rng, "disk")
        outer = _rasterize(_place(circle, center, extent, 1.0, 0.0), size)
        inner = _rasterize(_place(circle, center, extent * rng.uniform(0.45, 0.75), 1.0, 0.0), size)
        return outer & ~inner
    if kind in ("bar", "cross", "square"):
        aspect = 1.0 if kind == "square" else rng.uniform(3.0, 6.0)
        square = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float64) / np.sqrt(2)
        mask = _rasterize(_place(square, center, extent, aspect, angle), size)
        if kind == "cross":
            mask |= _rasterize(_place(square, center, extent, aspect, angle + np.pi / 2), size)
        return mask
    points = center + rng.uniform(-extent / 2, extent / 2, (int(rng.integers(3, 6)), 2))
    width = rng.uniform(1.5, 3.5)
    mask = np.zeros((size, size), dtype=bool)
    for start, end in zip(points[:-1], points[1:]):
        mask |= _rasterize(_segment_polygon(start, end, width), size)
    return mask


# --------------------------------------------------------------------------- layers of a scene


def _stuff_layout(rng: np.random.Generator, config: SceneConfig) -> np.ndarray:
    """uint8 (H, W) stuff ids: optional sky above a wavy horizon, warped Voronoi regions below."""
    size = config.size
    rows, cols = _pixel_grid(size)
    textured = [1, 2, 3]
    rng.shuffle(textured)
    regions = int(rng.integers(2, 4))
    with_sky = rng.random() < config.sky_probability
    count = regions - 1 if with_sky else regions
    seeds = rng.uniform(0, size, (count, 2))
    amplitude = rng.uniform(0, 0.08 * size)
    frequency = rng.uniform(0.5, 2.5) * 2 * np.pi / size
    phase = rng.uniform(0, 2 * np.pi, 2)
    warped_rows = _on_grid(rows + amplitude * np.sin(frequency * cols + phase[0]))
    warped_cols = _on_grid(cols + amplitude * np.sin(frequency * rows + phase[1]))
    distance = (warped_rows[None] - seeds[:, 0, None, None]) ** 2 + (
        warped_cols[None] - seeds[:, 1, None, None]
    ) ** 2
    layout = np.asarray(textured[:count], dtype=np.uint8)[np.argmin(distance, axis=0)]
    if with_sky:
        horizon = rng.uniform(0.2, 0.55) * size + rng.uniform(0, 0.06 * size) * np.sin(
            rng.uniform(0.5, 2.0) * 2 * np.pi * cols / size + rng.uniform(0, 2 * np.pi)
        )
        layout[rows < _on_grid(horizon)] = 0
    return layout


def _paint_stuff(rng: np.random.Generator, layout: np.ndarray, config: SceneConfig) -> np.ndarray:
    """RGB float (H, W, 3) of the background, one texture per stuff id present in ``layout``."""
    image = np.zeros((config.size, config.size, 3))
    for stuff_id in np.unique(layout):
        fill = _stuff_texture(
            rng,
            STUFF_CLASSES[stuff_id],
            config.size,
            config.texture_contrast,
            config.random_stuff_color,
        )
        region = layout == stuff_id
        image[region] = fill[region]
    return image


def _paint_distractors(rng: np.random.Generator, image: np.ndarray, config: SceneConfig) -> None:
    """Paint non-class shapes onto ``image`` in place (they stay stuff in the semantic map)."""
    low, high = config.object_size_range()
    for _ in range(int(rng.integers(config.min_distractors, config.max_distractors + 1))):
        mask = _distractor_mask(rng, config.size, low, high)
        ys, xs = np.nonzero(mask)
        if ys.size == 0:
            continue
        center = np.array([ys.mean(), xs.mean()])
        image[ys, xs] = _thing_texture(
            rng, ys, xs, center, max(float(np.sqrt(ys.size)), 2.0), config.thing_texture_strength
        )


def _sample_thing(
    rng: np.random.Generator, config: SceneConfig
) -> tuple[int, np.ndarray, np.ndarray, float]:
    """(label 1..3, full bool mask (H, W), centre (row, col), size in px) of one candidate object."""
    low, high = config.object_size_range()
    label = int(rng.integers(1, len(THING_CLASSES) + 1))
    extent = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    center = rng.uniform(extent / 2, config.size - extent / 2, 2)
    aspect = rng.uniform(1.0, config.max_aspect)
    angle = rng.uniform(0, 2 * np.pi)
    outline = _unit_outline(rng, THING_CLASSES[label - 1])
    mask = _rasterize(_place(outline, center, extent, aspect, angle), config.size)
    return label, mask, center, extent


def _visible_enough(owner: np.ndarray, areas: list[int], config: SceneConfig) -> bool:
    """Whether every instance in the ``owner`` id map keeps enough visible pixels."""
    visible = np.bincount(owner.ravel(), minlength=len(areas) + 1)[1:]
    areas_array = np.asarray(areas)
    return bool(
        np.all(
            (visible >= config.min_visible_pixels)
            & (visible >= config.min_visible_fraction * areas_array)
        )
    )


def _place_things(
    rng: np.random.Generator, config: SceneConfig
) -> tuple[list[int], list[tuple], np.ndarray]:
    """Labels, (centre, size) pairs and the uint8 owner map (0 = stuff, i + 1 = object i) after occlusion.

    Objects are drawn in order (later ones on top); a placement that would leave any
    instance with too few visible pixels is re-sampled, up to ``placement_attempts`` times,
    then the object is dropped.
    """
    owner = np.zeros((config.size, config.size), dtype=np.uint8)
    labels: list[int] = []
    placed: list[tuple[np.ndarray, float]] = []
    areas: list[int] = []
    for _ in range(int(rng.integers(config.min_objects, config.max_objects + 1))):
        for _attempt in range(config.placement_attempts):
            label, mask, center, extent = _sample_thing(rng, config)
            area = int(mask.sum())
            candidate = np.where(mask, np.uint8(len(labels) + 1), owner)
            if area and _visible_enough(candidate, areas + [area], config):
                owner = candidate
                labels.append(label)
                placed.append((center, extent))
                areas.append(area)
                break
    return labels, placed, owner


def generate_scene(seed: int, config: SceneConfig = SceneConfig()) -> Scene:
    """Render the scene of ``seed`` (byte-identical for the same seed, config and NumPy).

    Returns a ``Scene``: image uint8 (H, W, 3), boxes float32 (N, 4) xyxy with exclusive
    x2/y2, labels int64 (N,) in 1..3, masks bool (N, H, W) of visible pixels, semantic
    uint8 (H, W). ``N`` may be 0 when ``config.min_objects == 0``.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(f"seed must be a non-negative int, got {seed!r}")
    if not isinstance(config, SceneConfig):
        raise TypeError(f"config must be a SceneConfig, got {type(config).__name__}")
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)))
    layout = _stuff_layout(rng, config)
    image = _paint_stuff(rng, layout, config)
    _paint_distractors(rng, image, config)
    labels, placed, owner = _place_things(rng, config)
    for index, (center, extent) in enumerate(placed):
        ys, xs = np.nonzero(owner == index + 1)
        image[ys, xs] = _thing_texture(
            rng,
            ys,
            xs,
            center,
            extent / 2,
            config.thing_texture_strength,
            image[ys, xs].mean(axis=0),
            config.min_thing_contrast,
        )
    if config.noise_level:
        image = (
            image + rng.integers(-config.noise_level, config.noise_level + 1, image.shape) / 255.0
        )
    pixels = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    masks = masks_from_instance_map(owner, len(labels))
    label_array = np.asarray(labels, dtype=np.int64)
    semantic = layout.copy()
    semantic[owner > 0] = (len(STUFF_CLASSES) - 1 + label_array[owner[owner > 0] - 1]).astype(
        np.uint8
    )
    return Scene(
        image=pixels,
        boxes=boxes_from_masks(masks),
        labels=label_array,
        masks=masks,
        semantic=semantic,
    )
