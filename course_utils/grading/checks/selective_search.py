"""Checks for the Selective Search assignments: colour histogram, the four similarities, the merge step.

A region is a dict of float64 tensors, as ``course_utils.detection.selective_search.region_dict`` gives it::

    {"id": 7, "size": tensor(130.), "box": tensor([x1, y1, x2, y2]),      # pixels, x2/y2 exclusive
     "color": (C*25,) histogram, "texture": (C*80,) histogram,             # each sums to 1
     "neighbours": frozenset({3, 9})}                                       # ids of touching regions

The references are the library's functions (``region_color_histogram``, ``region_similarities``,
``merge_region_dicts``), which the unit tests tie to closed forms. The cases are regions cut out of small
images whose answers are known (flat squares side by side, touching at a corner, one inside another's box, a
non-square image) plus regions of a real segmented scene.

Usage in a notebook::

    check_similarities(similarities)     # graded cell: raises on a wrong answer, prints one line on success
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from course_utils.detection import selective_search as ss
from course_utils.grading.assignments import (
    Case,
    assignment_check,
    describe,
    not_a_tensor_problem,
    run_cases,
)

__all__ = [
    "CHECKS",
    "check_color_histogram",
    "check_merge_regions",
    "check_similarities",
    "color_histogram_cases",
    "merge_regions_cases",
    "similarities_cases",
]

_SEED = 2011


# ----------------------------------------------------------------------------------------------------------
# Building regions with known answers
# ----------------------------------------------------------------------------------------------------------


def _square_masks(
    shape: tuple[int, int], squares: list[tuple[int, int, int, int]]
) -> list[np.ndarray]:
    """Boolean masks of axis-aligned rectangles given as (x1, y1, x2, y2), x2/y2 exclusive."""
    masks = []
    for x1, y1, x2, y2 in squares:
        mask = np.zeros(shape, dtype=bool)
        mask[y1:y2, x1:x2] = True
        masks.append(mask)
    return masks


def make_region(
    image: np.ndarray, mask: np.ndarray, region_id: int, neighbours=(), texture=None
) -> dict:
    """The region dict of the pixels ``mask`` (H, W) of ``image`` (H, W, C) in [0, 1].

    ``texture`` (H, W, C*8) are the image's per-pixel texture bins (``ss.texture_bins``); computed
    when None. Histograms are float64 tensors summing to 1; the box is the tight box of the mask.
    """
    if texture is None:
        texture = ss.texture_bins(image)
    labels = mask.astype(np.int64)
    ys, xs = np.nonzero(mask)
    texture_hist = ss.region_histograms(labels, texture, ss.TEXTURE_BINS, 2)[1]
    return {
        "id": int(region_id),
        "size": torch.tensor(float(mask.sum()), dtype=torch.float64),
        "box": torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float64),
        "color": torch.from_numpy(ss.color_histogram(image[mask])),
        "texture": torch.from_numpy(texture_hist),
        "neighbours": frozenset(int(n) for n in neighbours),
    }


def _flat_image(
    shape: tuple[int, int],
    masks: list[np.ndarray],
    colors: list[tuple[float, float, float]],
    noise: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """A grey image with each mask painted in a colour, plus a little noise (so texture is not all zero)."""
    image = np.full(shape + (3,), 0.5)
    for mask, color in zip(masks, colors):
        image[mask] = color
    return np.clip(image + noise * rng.standard_normal(image.shape), 0.0, 1.0)


@lru_cache(maxsize=4)
def _scene_graph(index: int, space: str) -> ss.RegionGraph:
    """The initial region graph of test scene ``index`` (k = 100, min_size = 20); cached, never modified."""
    from course_utils.data.scenes import generate_scene, scene_seed

    image = ss.as_hwc_float(generate_scene(scene_seed("test", index)).image)
    return ss.region_graph(image, ss.Strategy(space, 100.0, "CTSF", min_size=20))[0]


def _scene_regions(count: int, rng: np.random.Generator) -> tuple[list[dict], tuple[int, int]]:
    """``count`` regions of a real segmented scene (built with the library), with their neighbours."""
    graph = _scene_graph(7, "hsv")
    ids = rng.choice(graph.count, size=count, replace=False)
    return [ss.region_dict(graph, int(i)) for i in ids], (128, 128)


def _scene_pairs(
    count: int, rng: np.random.Generator
) -> tuple[list[tuple[dict, dict]], tuple[int, int], int]:
    """``count`` pairs of touching regions of a real segmented scene, and the id a merge would give."""
    graph = _scene_graph(3, "lab")
    pairs = sorted((i, j) for i, touching in graph.neighbours.items() for j in touching if i < j)
    chosen = rng.choice(len(pairs), size=count, replace=False)
    regions = [
        (ss.region_dict(graph, pairs[k][0]), ss.region_dict(graph, pairs[k][1])) for k in chosen
    ]
    return regions, (128, 128), graph.count


# ----------------------------------------------------------------------------------------------------------
# Comparators
# ----------------------------------------------------------------------------------------------------------


def _close(
    got: torch.Tensor, expected: torch.Tensor, atol: float = 1e-6, rtol: float = 1e-5
) -> bool:
    return bool(
        torch.allclose(
            got.detach().cpu().double(), expected.detach().cpu().double(), atol=atol, rtol=rtol
        )
    )


def _compare_histogram(got: Any, expected: torch.Tensor, case: Case) -> str | None:
    problem = not_a_tensor_problem(got)
    if problem:
        return problem
    if got.shape != expected.shape:
        channels = case.args[0].shape[1]
        return (
            f"returned shape {tuple(got.shape)}, expected {tuple(expected.shape)}: {channels} channel(s) x "
            f"{ss.COLOR_BINS} bins, the channels' histograms one after the other in a single vector."
        )
    if not got.is_floating_point():
        return f"returned dtype {got.dtype}: a histogram of fractions must be a float tensor."
    if got.dtype != expected.dtype:
        return (
            f"returned dtype {got.dtype}, expected {expected.dtype} (the pixels' dtype): let the input decide "
            "the dtype (no .float(), .double() or new tensors with a default dtype)."
        )
    if _close(got, expected):
        return None
    total = float(got.sum())
    if abs(total - 1.0) > 1e-4:
        return (
            f"the histogram sums to {total:.4g}, expected 1: divide the whole vector by its sum (L1 norm), "
            "so that the intersection of two histograms lies in [0, 1]."
        )
    channels = case.args[0].shape[1]
    interleaved = expected.reshape(channels, ss.COLOR_BINS).T.reshape(-1)
    if channels > 1 and _close(got, interleaved):
        return (
            "the bins are interleaved (bin-major, index = bin * C + channel): put channel c's 25 bins at "
            "c * 25 ... c * 25 + 24 (channel-major), one channel's histogram after the other."
        )
    wrong = torch.nonzero(
        ~torch.isclose(got.cpu().double(), expected.cpu().double(), atol=1e-6)
    ).flatten()
    first = int(wrong[0])
    return (
        f"values differ at index {first} (channel {first // ss.COLOR_BINS}, bin {first % ss.COLOR_BINS}): "
        f"expected {float(expected[first]):.6g}, got {float(got[first]):.6g} ({len(wrong)} of {expected.numel()} "
        "values wrong)."
    )


_SIMILARITY_NAMES = ("colour", "texture", "size", "fill")


def _compare_similarities(got: Any, expected: torch.Tensor, case: Case) -> str | None:
    problem = not_a_tensor_problem(got)
    if problem:
        return problem
    if got.shape != expected.shape:
        return (
            f"returned shape {tuple(got.shape)}, expected (4,): the four similarities (colour, texture, size, "
            "fill) in this order, not their sum."
        )
    if not got.is_floating_point():
        return f"returned dtype {got.dtype}: similarities are fractions, return a float tensor."
    for index, name in enumerate(_SIMILARITY_NAMES):
        if not _close(got[index], expected[index]):
            return (
                f"the {name} similarity (entry {index}) is wrong: expected {float(expected[index]):.6g}, "
                f"got {float(got[index]):.6g}. It is {_SIMILARITY_FORMULAS[index]}."
            )
    return None


_SIMILARITY_FORMULAS = (
    "sum_k min(color_a[k], color_b[k]), the histogram intersection of the colour histograms",
    "sum_k min(texture_a[k], texture_b[k]), the histogram intersection of the texture histograms",
    "1 - (size_a + size_b) / (H * W), with the regions' pixel counts",
    "1 - (area(BB) - size_a - size_b) / (H * W), BB = the tight box around both regions' boxes",
)


_MERGE_RULES = {
    "size": "The merged size is size_a + size_b (pixels).",
    "box": "The merged box is (min x1, min y1, max x2, max y2) of the two boxes: it contains both.",
    "color": "The merged histogram is the size-weighted average (size_a * h_a + size_b * h_b) / (size_a + size_b).",
    "texture": "The merged histogram is the size-weighted average (size_a * h_a + size_b * h_b) / (size_a + size_b).",
}


def _compare_merged(got: Any, expected: dict, case: Case) -> str | None:
    if not isinstance(got, dict):
        return f"returned a {type(got).__name__}, expected a dict with keys {list(ss.REGION_KEYS)}."
    missing = [key for key in ss.REGION_KEYS if key not in got]
    if missing:
        return f"the returned dict misses the keys {missing}: a region has {list(ss.REGION_KEYS)}."
    if got["id"] != expected["id"]:
        return f"the merged region's id is {got['id']!r}, expected new_id = {expected['id']}."
    for key in ("size", "box", "color", "texture"):
        value = got[key]
        problem = not_a_tensor_problem(value)
        if problem:
            return f"region['{key}']: {problem}"
        if tuple(value.shape) != tuple(expected[key].shape):
            return f"region['{key}'] has shape {tuple(value.shape)}, expected {tuple(expected[key].shape)}."
        if not _close(value, expected[key]):
            return (
                f"region['{key}'] is wrong: expected {describe(expected[key])}, got {describe(value)}. "
                + _MERGE_RULES[key]
                + (
                    f" It sums to {float(value.sum()):.4g}; a merged histogram still sums to 1."
                    if key in ("color", "texture") and abs(float(value.sum()) - 1) > 1e-4
                    else ""
                )
            )
    if not isinstance(got["neighbours"], (set, frozenset)):
        return f"region['neighbours'] is a {type(got['neighbours']).__name__}, expected a set (or frozenset) of ids."
    neighbours = {int(n) for n in got["neighbours"]}
    if neighbours != set(expected["neighbours"]):
        extra, lost = (
            sorted(neighbours - expected["neighbours"]),
            sorted(expected["neighbours"] - neighbours),
        )
        return (
            f"region['neighbours'] is {sorted(neighbours)}, expected {sorted(expected['neighbours'])}"
            + (f"; it should not contain {extra}" if extra else "")
            + (f"; it misses {lost}" if lost else "")
            + "."
        )
    return None


# ----------------------------------------------------------------------------------------------------------
# Colour histogram
# ----------------------------------------------------------------------------------------------------------


@assignment_check("color_histogram", reference=ss.region_color_histogram)
def check_color_histogram(
    color_histogram: Callable[[torch.Tensor], torch.Tensor], *, quiet: bool = False
) -> None:
    """Check ``color_histogram(pixels) -> histogram`` (IJCV 3.2).

    pixels: float tensor (N, C), the region's N pixels, each channel in [0, 1]; histogram: (C * 25,) with the
    pixels' dtype: 25 bins per channel (value v in bin min(floor(25 v), 24)), channel c's bins at
    ``c * 25 ... c * 25 + 24``, the whole vector divided by its sum (it sums to 1).
    """
    run_cases(
        color_histogram,
        color_histogram_cases(),
        name="color_histogram",
        reference=ss.region_color_histogram,
        compare=_compare_histogram,
        quiet=quiet,
    )


def _away_from_edges(
    shape: tuple[int, ...],
    g: torch.Generator,
    dtype=torch.float32,
    low: float = 0.1,
    high: float = 0.9,
    bins: tuple[int, int] = (0, ss.COLOR_BINS),
) -> torch.Tensor:
    """Random values in bins ``bins[0] .. bins[1] - 1``, each between ``low`` and ``high`` of the way through its
    bin (at least 0.1 bin from every edge, so float rounding cannot move them)."""
    bins = torch.randint(bins[0], bins[1], shape, generator=g)
    offset = low + (high - low) * torch.rand(shape, generator=g)
    return ((bins + offset) / ss.COLOR_BINS).to(dtype)


def color_histogram_cases() -> list[Case]:
    """The cases of :func:`check_color_histogram`."""
    g = torch.Generator().manual_seed(_SEED)
    t = torch.tensor
    return [
        Case(
            "pixels between 0.2 and 0.4 only (one channel): the bins cover [0, 1], not the pixels' range",
            (_away_from_edges((40, 1), g, low=0.1, high=0.4, bins=(5, 10)),),
            hint="The bin edges are fixed at k / 25; torch.histc with its default min=max=0 uses the data's range "
            "(pass min=0, max=1). Use pixels.shape[1] channels, not a hard-coded 3.",
        ),
        Case(
            "one pure red pixel (1, 0, 0): 1.0 falls in the last bin (24), 0.0 in the first",
            (t([[1.0, 0.0, 0.0]]),),
            hint="25 * 1.0 = 25 is one past the last bin: clamp the bin index to 24 (min(floor(25 v), 24)).",
        ),
        Case(
            "10 identical pixels (0.21, 0.45, 0.81): one bin per channel, each 1/3",
            (t([[0.21, 0.45, 0.81]]).repeat(10, 1),),
            hint="Normalise the whole 75-vector by its sum (3 N), not each channel by N and not at all.",
        ),
        Case(
            "values 0.035 and 0.985 (bins 0 and 24): the bin is floor(25 v), not round(25 v)",
            (t([[0.035, 0.985, 0.035], [0.985, 0.035, 0.5]]),),
            hint="Use floor (or .long() of a non-negative value), not round: 25 * 0.035 = 0.875 is bin 0.",
        ),
        Case(
            "50 random pixels (float32)",
            (_away_from_edges((50, 3), g),),
            hint="Channel c's 25 bins come at positions c * 25 ... c * 25 + 24 (channel-major, not interleaved).",
        ),
        Case(
            "1000 random pixels: still sums to 1",
            (_away_from_edges((1000, 3), g),),
            hint="Divide by the total count (3 N), so that large and small regions are comparable.",
        ),
        Case(
            "a single pixel (shape (1, 3))",
            (_away_from_edges((1, 3), g),),
            hint="Work with the (N, C) tensor as it is; do not .squeeze() it.",
        ),
        Case(
            "one-channel pixels (N, 1), e.g. intensity: 25 bins",
            (_away_from_edges((30, 1), g),),
            hint="Use pixels.shape[1] channels, not a hard-coded 3.",
        ),
        Case(
            "float64 pixels: the histogram is float64",
            (_away_from_edges((20, 3), g, dtype=torch.float64),),
            hint="Let the input decide the dtype: build counts, then convert with .to(pixels.dtype).",
        ),
    ]


# ----------------------------------------------------------------------------------------------------------
# The four similarities
# ----------------------------------------------------------------------------------------------------------


@assignment_check("similarities", reference=ss.region_similarities)
def check_similarities(similarities: Callable[..., torch.Tensor], *, quiet: bool = False) -> None:
    """Check ``similarities(region_a, region_b, image_shape) -> tensor (4,)`` (IJCV eqs. 1-5).

    Regions are dicts with ``size`` (pixels), ``box`` (x1, y1, x2, y2) with exclusive x2/y2, ``color`` and
    ``texture`` (L1-normalised histograms), as float64 tensors; image_shape = (H, W). Returns
    [s_colour, s_texture, s_size, s_fill] as a float tensor:
    s_colour = sum_k min(color_a[k], color_b[k]), s_texture likewise, s_size = 1 - (size_a + size_b) / (H W),
    s_fill = 1 - (area(box around both) - size_a - size_b) / (H W).
    """
    run_cases(
        similarities,
        similarities_cases(),
        name="similarities",
        reference=ss.region_similarities,
        compare=_compare_similarities,
        quiet=quiet,
    )


def similarities_cases() -> list[Case]:
    """The cases of :func:`check_similarities`, with their closed-form answers in their names."""
    rng = np.random.default_rng(_SEED)
    cases = []
    shape = (100, 100)
    side_by_side = _square_masks(shape, [(20, 30, 30, 40), (30, 30, 40, 40)])
    image = _flat_image(shape, side_by_side, [(0.9, 0.1, 0.1), (0.1, 0.1, 0.9)], 0.0, rng)
    texture = ss.texture_bins(image)
    a, b = (make_region(image, m, k, texture=texture) for k, m in enumerate(side_by_side))
    cases.append(
        Case(
            "a red and a blue 10x10 square side by side in a 100x100 image: colour 1/3 (green is 0.1 in both), "
            "size 1 - 200/10000 = 0.98, fill 1 (their box holds nothing else)",
            (a, b, shape),
            hint="Histogram intersection is the sum of the element-wise MIN; fill uses the box around BOTH regions.",
        )
    )
    corner = _square_masks(shape, [(20, 30, 30, 40), (30, 40, 40, 50)])
    image = _flat_image(shape, corner, [(0.9, 0.1, 0.1), (0.9, 0.1, 0.1)], 0.0, rng)
    texture = ss.texture_bins(image)
    a, b = (make_region(image, m, k, texture=texture) for k, m in enumerate(corner))
    cases.append(
        Case(
            "two red 10x10 squares touching at a corner: colour 1, size 0.98, fill 1 - (400 - 200)/10000 = 0.98",
            (a, b, shape),
            hint="size(BB_ab) is the area of the tight box around both regions, (max x2 - min x1) * (max y2 - min y1), "
            "not the sum of their boxes' areas nor their intersection.",
        )
    )
    ring_masks = _square_masks(shape, [(10, 10, 50, 50), (20, 20, 40, 40)])
    ring = ring_masks[0] & ~ring_masks[1]
    image = _flat_image(shape, [ring, ring_masks[1]], [(0.2, 0.6, 0.2), (0.8, 0.8, 0.1)], 0.02, rng)
    texture = ss.texture_bins(image)
    a, b = (
        make_region(image, ring, 0, texture=texture),
        make_region(image, ring_masks[1], 1, texture=texture),
    )
    cases.append(
        Case(
            "a square inside a ring: the box around both is the ring's box, fill 1; size 1 - 1600/10000 = 0.84",
            (a, b, shape),
            hint="Fill compares the box around both regions with their sizes (pixel counts), not with their boxes.",
        )
    )
    tall = (64, 128)
    masks = _square_masks(tall, [(0, 0, 16, 8), (100, 50, 128, 64)])
    image = _flat_image(tall, masks, [(0.5, 0.2, 0.9), (0.5, 0.3, 0.8)], 0.03, rng)
    texture = ss.texture_bins(image)
    a, b = (make_region(image, m, k, texture=texture) for k, m in enumerate(masks))
    cases.append(
        Case(
            "far apart regions in a 64x128 image (H x W, not square): size(im) = 64 * 128 = 8192",
            (a, b, tall),
            hint="size(im) is the number of pixels H * W (image_shape = (H, W)), not H * H, H + W or max(H, W).",
        )
    )
    scene, scene_shape = _scene_regions(8, rng)
    for k in range(4):
        cases.append(
            Case(
                f"regions {scene[2 * k]['id']} and {scene[2 * k + 1]['id']} of a segmented 128x128 scene",
                (scene[2 * k], scene[2 * k + 1], scene_shape),
                hint="s_texture is the histogram intersection of the 'texture' histograms, like colour.",
            )
        )
    return cases


# ----------------------------------------------------------------------------------------------------------
# The merge step
# ----------------------------------------------------------------------------------------------------------


@assignment_check("merge_regions", reference=ss.merge_region_dicts)
def check_merge_regions(
    merge_regions: Callable[[dict, dict, int], dict], *, quiet: bool = False
) -> None:
    """Check ``merge_regions(region_a, region_b, new_id) -> region`` (IJCV 3.1-3.2), a new dict.

    size = size_a + size_b; box = the tight box around both boxes; color and texture: the size-weighted average
    (size_a * h_a + size_b * h_b) / (size_a + size_b); neighbours = the union of both neighbour sets without
    a and b; id = new_id. The inputs must not be modified.
    """
    run_cases(
        merge_regions,
        merge_regions_cases(),
        name="merge_regions",
        reference=ss.merge_region_dicts,
        compare=_compare_merged,
        quiet=quiet,
    )


def merge_regions_cases() -> list[Case]:
    """The cases of :func:`check_merge_regions`."""
    rng = np.random.default_rng(_SEED + 1)
    shape = (60, 80)
    cases = []
    masks = _square_masks(shape, [(10, 10, 20, 20), (20, 10, 30, 20)])
    image = _flat_image(shape, masks, [(0.9, 0.2, 0.2), (0.2, 0.9, 0.2)], 0.02, rng)
    texture = ss.texture_bins(image)
    a = make_region(image, masks[0], 4, neighbours=(5, 1, 2), texture=texture)
    b = make_region(image, masks[1], 5, neighbours=(4, 2, 3), texture=texture)
    cases.append(
        Case(
            "two 10x10 squares side by side, a touches {5, 1, 2} and b touches {4, 2, 3}: the new region touches "
            "{1, 2, 3}",
            (a, b, 6),
            hint="The new region's neighbours are the union of both sets, minus the two merged regions themselves.",
        )
    )
    masks = _square_masks(shape, [(0, 0, 30, 30), (30, 20, 33, 23)])
    image = _flat_image(shape, masks, [(0.1, 0.3, 0.8), (0.9, 0.9, 0.1)], 0.02, rng)
    texture = ss.texture_bins(image)
    a = make_region(image, masks[0], 0, neighbours=(1, 2), texture=texture)
    b = make_region(image, masks[1], 1, neighbours=(0,), texture=texture)
    cases.append(
        Case(
            "a 900-pixel region and a 9-pixel region: the histograms are weighted 900/909 and 9/909",
            (a, b, 3),
            hint="Weight each histogram by its region's size: (size_a * h_a + size_b * h_b) / (size_a + size_b), "
            "not the plain average (h_a + h_b) / 2, and not the sum.",
        )
    )
    masks = _square_masks(shape, [(5, 30, 25, 40), (40, 5, 45, 50)])
    image = _flat_image(shape, masks, [(0.5, 0.5, 0.5), (0.7, 0.2, 0.4)], 0.05, rng)
    texture = ss.texture_bins(image)
    a = make_region(image, masks[0], 10, neighbours=(11,), texture=texture)
    b = make_region(image, masks[1], 11, neighbours=(10, 12), texture=texture)
    cases.append(
        Case(
            "a wide and a tall bar whose boxes cross: the box of the union is (5, 5, 45, 50)",
            (a, b, 20),
            hint="The merged box is (min x1, min y1, max x2, max y2) of the two boxes, not their intersection.",
        )
    )
    b_only = dict(b, neighbours=frozenset({10}))
    a_only = dict(a, neighbours=frozenset({11}))
    cases.append(
        Case(
            "two regions that touch only each other: the merged region has no neighbours",
            (a_only, b_only, 12),
            hint="Remove both merged ids from the union of the neighbour sets (an empty set is a valid answer).",
        )
    )
    pairs, _, next_id = _scene_pairs(3, rng)
    for region_a, region_b in pairs:
        cases.append(
            Case(
                f"neighbouring regions {region_a['id']} and {region_b['id']} of a segmented 128x128 scene",
                (region_a, region_b, next_id),
                hint="Return a new dict (id, size, box, color, texture, neighbours); don't modify region_a or region_b.",
            )
        )
    return cases


CHECKS = (check_color_histogram, check_similarities, check_merge_regions)
