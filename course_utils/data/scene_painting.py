"""How a scene is painted: stuff layout and textures, distractors, placed and textured things.

``course_utils.data.scenes.generate_scene`` calls the five layers below in this order, all
drawing from one ``numpy.random.Generator`` (the order of the draws *is* the dataset: do not
reorder them without bumping ``scenes.GENERATOR_VERSION``)::

    layout = stuff_layout(rng, config)                      # uint8 (H, W) stuff ids
    image = paint_stuff(rng, layout, config, STUFF_CLASSES)  # float64 (H, W, 3) in [0, ~2]
    paint_distractors(rng, image, config)                   # in place, stay "stuff"
    labels, placed, owner = place_things(rng, config, THING_CLASSES)
    paint_things(rng, image, owner, placed, config)         # in place

Coordinates are ``(row, col)`` pixels unless stated; polygons are rasterised hard-edged (no
anti-aliasing) after rounding their vertices to 1/256 px, so that last-bit differences of
``sin``/``cos`` between platforms (almost) never move a pixel. Stuff id 0 is the sky, ids
1..3 the textured materials (the order of ``scenes.STUFF_CLASSES``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import skimage.data
from skimage.draw import polygon as _fill_polygon

if TYPE_CHECKING:
    from course_utils.data.scenes import SceneConfig

THING_TEXTURES: tuple[str, ...] = ("flat", "stripes", "checker", "noise", "shading")
DISTRACTOR_SHAPES: tuple[str, ...] = ("ring", "bar", "cross", "square", "scribble")

#: Polygon vertices are rounded to 1/256 px (platform-independent rasterisation).
_VERTEX_GRID = 256.0

# Tint priors of the textured stuff classes:
# (hue centre, hue jitter, saturation range, value range).
_STUFF_TINTS = {
    "grass": (0.27, 0.08, (0.35, 0.85), (0.35, 0.80)),
    "gravel": (0.10, 0.50, (0.00, 0.20), (0.40, 0.85)),
    "brick": (0.03, 0.05, (0.40, 0.85), (0.35, 0.80)),
}


# --------------------------------------------------------------------------- colours and textures


@lru_cache(maxsize=None)
def _material(name: str) -> np.ndarray:
    """scikit-image's grayscale photograph of ``name`` as float32 z-scores (read-only).

    grass, gravel and brick ship in the scikit-image wheel (``skimage/data/*.png``), so no
    download ever happens.
    """
    pixels = getattr(skimage.data, name)().astype(np.float32)
    pixels = (pixels - pixels.mean()) / (pixels.std() + 1e-6)
    pixels.setflags(write=False)
    return pixels


def _on_grid(values: np.ndarray) -> np.ndarray:
    """Round to multiples of 1/256: results of ``sin``/``cos`` that differ in the last bits
    between C libraries or SIMD paths then (almost always) land on the same value."""
    return np.round(np.asarray(values) * _VERTEX_GRID) / _VERTEX_GRID


def hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
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
        color = hsv_to_rgb(rng.random(), rng.uniform(0.25, 1.0), rng.uniform(0.3, 1.0))
        if avoid is None or float(np.sqrt(((color - avoid) ** 2).sum())) >= distance:
            break
    return color


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
        top = hsv_to_rgb(rng.normal(0.58, 0.04), rng.uniform(0.3, 0.8), rng.uniform(0.55, 0.95))
        bottom = hsv_to_rgb(rng.normal(0.56, 0.06), rng.uniform(0.05, 0.4), rng.uniform(0.8, 1.0))
        ramp = np.linspace(0.0, 1.0, size)[:, None, None]
        return np.broadcast_to(top * (1 - ramp) + bottom * ramp, (size, size, 3))
    hue, jitter, saturation, value = _STUFF_TINTS[name]
    if rng.random() < random_color:
        hue, jitter = rng.random(), 0.0
    base = hsv_to_rgb(
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


# --------------------------------------------------------------------------- outlines


def rasterize(vertices: np.ndarray, size: int) -> np.ndarray:
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
    """Stretch (1 x 1/aspect), rotate, scale the unit circle to diameter ``size`` and move to
    ``center`` (row, col): unit outline (K, 2) x/y -> polygon (K, 2) (row, col)."""
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
        outer = rasterize(_place(circle, center, extent, 1.0, 0.0), size)
        inner = rasterize(_place(circle, center, extent * rng.uniform(0.45, 0.75), 1.0, 0.0), size)
        return outer & ~inner
    if kind in ("bar", "cross", "square"):
        aspect = 1.0 if kind == "square" else rng.uniform(3.0, 6.0)
        square = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float64) / np.sqrt(2)
        mask = rasterize(_place(square, center, extent, aspect, angle), size)
        if kind == "cross":
            mask |= rasterize(_place(square, center, extent, aspect, angle + np.pi / 2), size)
        return mask
    points = center + rng.uniform(-extent / 2, extent / 2, (int(rng.integers(3, 6)), 2))
    width = rng.uniform(1.5, 3.5)
    mask = np.zeros((size, size), dtype=bool)
    for start, end in zip(points[:-1], points[1:]):
        mask |= rasterize(_segment_polygon(start, end, width), size)
    return mask


# --------------------------------------------------------------------------- layers of a scene


def stuff_layout(rng: np.random.Generator, config: SceneConfig) -> np.ndarray:
    """uint8 (H, W) stuff ids: optional sky (0) above a wavy horizon, warped Voronoi regions
    of the textured stuff (1..3) below."""
    size = config.size
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
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


def paint_stuff(
    rng: np.random.Generator, layout: np.ndarray, config: SceneConfig, names: Sequence[str]
) -> np.ndarray:
    """RGB float64 (H, W, 3) of the background: one texture per stuff id present in
    ``layout``, stuff id ``i`` being the material ``names[i]`` ("sky", "grass", ...)."""
    image = np.zeros((config.size, config.size, 3))
    for stuff_id in np.unique(layout):
        fill = _stuff_texture(
            rng, names[stuff_id], config.size, config.texture_contrast, config.random_stuff_color
        )
        region = layout == stuff_id
        image[region] = fill[region]
    return image


def paint_distractors(rng: np.random.Generator, image: np.ndarray, config: SceneConfig) -> None:
    """Paint non-class shapes onto ``image`` (H, W, 3) in place (they stay stuff in the
    semantic map)."""
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
    rng: np.random.Generator, config: SceneConfig, shapes: Sequence[str]
) -> tuple[int, np.ndarray, np.ndarray, float]:
    """(label 1..len(shapes), full bool mask (H, W), centre (row, col), size in px) of one
    candidate object."""
    low, high = config.object_size_range()
    label = int(rng.integers(1, len(shapes) + 1))
    extent = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    center = rng.uniform(extent / 2, config.size - extent / 2, 2)
    aspect = rng.uniform(1.0, config.max_aspect)
    angle = rng.uniform(0, 2 * np.pi)
    outline = _unit_outline(rng, shapes[label - 1])
    mask = rasterize(_place(outline, center, extent, aspect, angle), config.size)
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


def place_things(
    rng: np.random.Generator, config: SceneConfig, shapes: Sequence[str]
) -> tuple[list[int], list[tuple[np.ndarray, float]], np.ndarray]:
    """Labels, (centre, size) pairs and the uint8 owner map (H, W) (0 = stuff, i + 1 =
    object i) after occlusion.

    Label ``k`` is the shape ``shapes[k - 1]`` ("disk", "triangle" or "star"). Objects are
    drawn in order (later ones on top); a placement that would leave any instance with too
    few visible pixels is re-sampled, up to ``placement_attempts`` times, then the object
    is dropped.
    """
    owner = np.zeros((config.size, config.size), dtype=np.uint8)
    labels: list[int] = []
    placed: list[tuple[np.ndarray, float]] = []
    areas: list[int] = []
    for _ in range(int(rng.integers(config.min_objects, config.max_objects + 1))):
        for _attempt in range(config.placement_attempts):
            label, mask, center, extent = _sample_thing(rng, config, shapes)
            area = int(mask.sum())
            candidate = np.where(mask, np.uint8(len(labels) + 1), owner)
            if area and _visible_enough(candidate, areas + [area], config):
                owner = candidate
                labels.append(label)
                placed.append((center, extent))
                areas.append(area)
                break
    return labels, placed, owner


def paint_things(
    rng: np.random.Generator,
    image: np.ndarray,
    owner: np.ndarray,
    placed: list[tuple[np.ndarray, float]],
    config: SceneConfig,
) -> None:
    """Texture the visible pixels of every placed object onto ``image`` (H, W, 3) in place,
    each in a colour at least ``config.min_thing_contrast`` away from what it covers."""
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
