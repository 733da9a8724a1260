"""Regions with known answers for the Selective Search checks (private: not a topic module).

A region is a dict of float64 tensors, as ``course_utils.detection.region_dicts.region_dict``
gives it: ``id``, ``size`` (pixels), ``box`` (x1, y1, x2, y2) pixels with exclusive x2/y2,
``color`` (C*25,) and ``texture`` (C*80,) L1-normalised histograms, ``neighbours`` (frozenset).
They are cut out of small painted images (:func:`square_masks`, :func:`flat_image`,
:func:`make_region`) or out of a real segmented scene (:func:`scene_regions`,
:func:`scene_pairs`). :func:`away_from_edges` draws pixel values safely inside colour bins.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from course_utils.data.scenes import generate_scene, scene_seed
from course_utils.detection.hierarchical_grouping import RegionGraph
from course_utils.detection.region_descriptors import (
    COLOR_BINS,
    TEXTURE_BINS,
    color_histogram,
    region_histograms,
    texture_bins,
)
from course_utils.detection.region_dicts import region_dict
from course_utils.detection.selective_search import Strategy, region_graph

#: (H, W) of the scenes whose regions some cases use.
SCENE_SHAPE = (128, 128)


def square_masks(
    shape: tuple[int, int], squares: list[tuple[int, int, int, int]]
) -> list[np.ndarray]:
    """Boolean masks (H, W) of axis-aligned rectangles given as (x1, y1, x2, y2), x2/y2
    exclusive."""
    masks = []
    for x1, y1, x2, y2 in squares:
        mask = np.zeros(shape, dtype=bool)
        mask[y1:y2, x1:x2] = True
        masks.append(mask)
    return masks


def flat_image(
    shape: tuple[int, int],
    masks: list[np.ndarray],
    colors: list[tuple[float, float, float]],
    noise: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """A grey float64 image (H, W, 3) in [0, 1], each mask painted in a colour, plus noise.

    The noise (standard deviation ``noise``, drawn from ``rng``) keeps the texture from being
    all zero.
    """
    image = np.full(shape + (3,), 0.5)
    for mask, color in zip(masks, colors):
        image[mask] = color
    return np.clip(image + noise * rng.standard_normal(image.shape), 0.0, 1.0)


def make_region(
    image: np.ndarray, mask: np.ndarray, region_id: int, neighbours=(), texture=None
) -> dict:
    """The region dict of the pixels ``mask`` (H, W) of ``image`` (H, W, C) in [0, 1].

    ``texture`` (H, W, C*8) are the image's per-pixel texture bins (``texture_bins``); computed
    when None. Histograms are float64 tensors summing to 1; the box is the tight box of the mask.
    """
    if texture is None:
        texture = texture_bins(image)
    labels = mask.astype(np.int64)
    ys, xs = np.nonzero(mask)
    texture_hist = region_histograms(labels, texture, TEXTURE_BINS, 2)[1]
    return {
        "id": int(region_id),
        "size": torch.tensor(float(mask.sum()), dtype=torch.float64),
        "box": torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float64),
        "color": torch.from_numpy(color_histogram(image[mask])),
        "texture": torch.from_numpy(texture_hist),
        "neighbours": frozenset(int(n) for n in neighbours),
    }


@lru_cache(maxsize=4)
def _scene_graph(index: int, space: str) -> RegionGraph:
    """The initial region graph of test scene ``index`` (k = 100, min_size = 20), never modified."""
    image = generate_scene(scene_seed("test", index)).image
    return region_graph(image, Strategy(space, 100.0, "CTSF", min_size=20))[0]


def scene_regions(count: int, rng: np.random.Generator) -> list[dict]:
    """``count`` regions of a real segmented 128x128 scene, with their neighbours."""
    graph = _scene_graph(7, "hsv")
    ids = rng.choice(graph.count, size=count, replace=False)
    return [region_dict(graph, int(i)) for i in ids]


def scene_pairs(count: int, rng: np.random.Generator) -> tuple[list[tuple[dict, dict]], int]:
    """``count`` pairs of touching regions of a real segmented scene, and the id a merge gives."""
    graph = _scene_graph(3, "lab")
    pairs = sorted((i, j) for i, touching in graph.neighbours.items() for j in touching if i < j)
    chosen = rng.choice(len(pairs), size=count, replace=False)
    regions = [(region_dict(graph, pairs[k][0]), region_dict(graph, pairs[k][1])) for k in chosen]
    return regions, graph.count


def away_from_edges(
    shape: tuple[int, ...],
    g: torch.Generator,
    dtype=torch.float32,
    low: float = 0.1,
    high: float = 0.9,
    bins: tuple[int, int] = (0, COLOR_BINS),
) -> torch.Tensor:
    """Random pixel values (``shape``, ``dtype``) in colour bins ``bins[0] .. bins[1] - 1``.

    Each value lies between ``low`` and ``high`` of the way through its bin (at least 0.1 bin
    from every edge, so float rounding cannot move it to another bin).
    """
    bins = torch.randint(bins[0], bins[1], shape, generator=g)
    offset = low + (high - low) * torch.rand(shape, generator=g)
    return ((bins + offset) / COLOR_BINS).to(dtype)
