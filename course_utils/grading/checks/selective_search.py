"""Checks for the Selective Search assignments: colour histogram, the four similarities, the merge.

A region is a dict of float64 tensors, as ``course_utils.detection.region_dicts.region_dict``
gives it::

    {"id": 7, "size": tensor(130.), "box": tensor([x1, y1, x2, y2]),  # pixels, x2/y2 exclusive
     "color": (C*25,) histogram, "texture": (C*80,) histogram,         # each sums to 1
     "neighbours": frozenset({3, 9})}                                   # ids of touching regions

Each check's reference is the library function its declaration names (in
``course_utils.detection.region_dicts``), which the unit tests tie to closed forms. The cases are
regions cut out of small images whose answers are known (flat squares side by side, touching at a
corner, one inside another's box, a non-square image) plus regions of a real segmented scene.

Usage in a notebook::

    check_similarities(similarities)   # graded cell: raises on a wrong answer, prints one line
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from course_utils.detection.region_descriptors import texture_bins
from course_utils.detection.region_dicts import (
    merge_region_dicts,
    region_color_histogram,
    region_similarities,
)
from course_utils.grading.assignments import assignment_check
from course_utils.grading.checks._selective_search_compare import (
    compare_histogram,
    compare_merged,
    compare_similarities,
)
from course_utils.grading.checks._selective_search_regions import (
    SCENE_SHAPE,
    away_from_edges,
    flat_image,
    make_region,
    scene_pairs,
    scene_regions,
    square_masks,
)
from course_utils.grading.runner import Case

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


# ------------------------------------------------------------------------------------------------
# Colour histogram
# ------------------------------------------------------------------------------------------------


def color_histogram_cases() -> list[Case]:
    """The cases of :func:`check_color_histogram`."""
    g = torch.Generator().manual_seed(_SEED)
    t = torch.tensor
    return [
        Case(
            "pixels between 0.2 and 0.4 only (one channel): the bins cover [0, 1], "
            "not the pixels' range",
            (away_from_edges((40, 1), g, low=0.1, high=0.4, bins=(5, 10)),),
            hint=(
                "The bin edges are fixed at k / 25; torch.histc with its default min=max=0 uses "
                "the data's range (pass min=0, max=1). Use pixels.shape[1] channels, not a "
                "hard-coded 3."
            ),
        ),
        Case(
            "one pure red pixel (1, 0, 0): 1.0 falls in the last bin (24), 0.0 in the first",
            (t([[1.0, 0.0, 0.0]]),),
            hint=(
                "25 * 1.0 = 25 is one past the last bin: clamp the bin index to 24 "
                "(min(floor(25 v), 24))."
            ),
        ),
        Case(
            "10 identical pixels (0.21, 0.45, 0.81): one bin per channel, each 1/3",
            (t([[0.21, 0.45, 0.81]]).repeat(10, 1),),
            hint=(
                "Normalise the whole 75-vector by its sum (3 N), not each channel by N and not at "
                "all."
            ),
        ),
        Case(
            "values 0.035 and 0.985 (bins 0 and 24): the bin is floor(25 v), not round(25 v)",
            (t([[0.035, 0.985, 0.035], [0.985, 0.035, 0.5]]),),
            hint=(
                "Use floor (or .long() of a non-negative value), not round: 25 * 0.035 = 0.875 is "
                "bin 0."
            ),
        ),
        Case(
            "50 random pixels (float32)",
            (away_from_edges((50, 3), g),),
            hint=(
                "Channel c's 25 bins come at positions c * 25 ... c * 25 + 24 "
                "(channel-major, not interleaved)."
            ),
        ),
        Case(
            "1000 random pixels: still sums to 1",
            (away_from_edges((1000, 3), g),),
            hint="Divide by the total count (3 N), so that large and small regions are comparable.",
        ),
        Case(
            "a single pixel (shape (1, 3))",
            (away_from_edges((1, 3), g),),
            hint="Work with the (N, C) tensor as it is; do not .squeeze() it.",
        ),
        Case(
            "one-channel pixels (N, 1), e.g. intensity: 25 bins",
            (away_from_edges((30, 1), g),),
            hint="Use pixels.shape[1] channels, not a hard-coded 3.",
        ),
        Case(
            "float64 pixels: the histogram is float64",
            (away_from_edges((20, 3), g, dtype=torch.float64),),
            hint=(
                "Let the input decide the dtype: build counts, then convert with .to(pixels.dtype)."
            ),
        ),
    ]


@assignment_check(
    reference=region_color_histogram, cases=color_histogram_cases, compare=compare_histogram
)
def check_color_histogram(
    color_histogram: Callable[[torch.Tensor], torch.Tensor], *, quiet: bool = False
) -> None:
    """Check ``color_histogram(pixels) -> histogram`` (IJCV 3.2).

    pixels: float tensor (N, C), the region's N pixels, each channel in [0, 1]; histogram: (C * 25,)
    with the pixels' dtype: 25 bins per channel (value v in bin min(floor(25 v), 24)), channel c's
    bins at ``c * 25 ... c * 25 + 24``, the whole vector divided by its sum (it sums to 1).
    """


# ------------------------------------------------------------------------------------------------
# The four similarities
# ------------------------------------------------------------------------------------------------


def similarities_cases() -> list[Case]:
    """The cases of :func:`check_similarities`, with their closed-form answers in their names."""
    rng = np.random.default_rng(_SEED)
    cases = []
    shape = (100, 100)
    side_by_side = square_masks(shape, [(20, 30, 30, 40), (30, 30, 40, 40)])
    image = flat_image(shape, side_by_side, [(0.9, 0.1, 0.1), (0.1, 0.1, 0.9)], 0.0, rng)
    texture = texture_bins(image)
    a, b = (make_region(image, m, k, texture=texture) for k, m in enumerate(side_by_side))
    cases.append(
        Case(
            "a red and a blue 10x10 square side by side in a 100x100 image: colour 1/3 "
            "(green is 0.1 in both), size 1 - 200/10000 = 0.98, fill 1 (their box holds "
            "nothing else)",
            (a, b, shape),
            hint=(
                "Histogram intersection is the sum of the element-wise MIN; fill uses the box "
                "around BOTH regions."
            ),
        )
    )
    corner = square_masks(shape, [(20, 30, 30, 40), (30, 40, 40, 50)])
    image = flat_image(shape, corner, [(0.9, 0.1, 0.1), (0.9, 0.1, 0.1)], 0.0, rng)
    texture = texture_bins(image)
    a, b = (make_region(image, m, k, texture=texture) for k, m in enumerate(corner))
    cases.append(
        Case(
            "two red 10x10 squares touching at a corner: colour 1, size 0.98, "
            "fill 1 - (400 - 200)/10000 = 0.98",
            (a, b, shape),
            hint=(
                "size(BB_ab) is the area of the tight box around both regions, "
                "(max x2 - min x1) * (max y2 - min y1), not the sum of their boxes' areas nor "
                "their intersection."
            ),
        )
    )
    ring_masks = square_masks(shape, [(10, 10, 50, 50), (20, 20, 40, 40)])
    ring = ring_masks[0] & ~ring_masks[1]
    image = flat_image(shape, [ring, ring_masks[1]], [(0.2, 0.6, 0.2), (0.8, 0.8, 0.1)], 0.02, rng)
    texture = texture_bins(image)
    a, b = (
        make_region(image, ring, 0, texture=texture),
        make_region(image, ring_masks[1], 1, texture=texture),
    )
    cases.append(
        Case(
            "a square inside a ring: the box around both is the ring's box, fill 1; "
            "size 1 - 1600/10000 = 0.84",
            (a, b, shape),
            hint=(
                "Fill compares the box around both regions with their sizes (pixel counts), not "
                "with their boxes."
            ),
        )
    )
    tall = (64, 128)
    masks = square_masks(tall, [(0, 0, 16, 8), (100, 50, 128, 64)])
    image = flat_image(tall, masks, [(0.5, 0.2, 0.9), (0.5, 0.3, 0.8)], 0.03, rng)
    texture = texture_bins(image)
    a, b = (make_region(image, m, k, texture=texture) for k, m in enumerate(masks))
    cases.append(
        Case(
            "far apart regions in a 64x128 image (H x W, not square): size(im) = 64 * 128 = 8192",
            (a, b, tall),
            hint=(
                "size(im) is the number of pixels H * W (image_shape = (H, W)), "
                "not H * H, H + W or max(H, W)."
            ),
        )
    )
    scene = scene_regions(8, rng)
    for k in range(4):
        cases.append(
            Case(
                f"regions {scene[2 * k]['id']} and {scene[2 * k + 1]['id']} of a segmented 128x128 "
                "scene",
                (scene[2 * k], scene[2 * k + 1], SCENE_SHAPE),
                hint=(
                    "s_texture is the histogram intersection of the 'texture' histograms, like "
                    "colour."
                ),
            )
        )
    return cases


@assignment_check(
    reference=region_similarities, cases=similarities_cases, compare=compare_similarities
)
def check_similarities(similarities: Callable[..., torch.Tensor], *, quiet: bool = False) -> None:
    """Check ``similarities(region_a, region_b, image_shape) -> tensor (4,)`` (IJCV eqs. 1-5).

    Regions are dicts with ``size`` (pixels), ``box`` (x1, y1, x2, y2) with exclusive x2/y2,
    ``color`` and ``texture`` (L1-normalised histograms), as float64 tensors; image_shape = (H, W).
    Returns [s_colour, s_texture, s_size, s_fill] as a float tensor:
    s_colour = sum_k min(color_a[k], color_b[k]), s_texture likewise,
    s_size = 1 - (size_a + size_b) / (H W),
    s_fill = 1 - (area(box around both) - size_a - size_b) / (H W).
    """


# ------------------------------------------------------------------------------------------------
# The merge step
# ------------------------------------------------------------------------------------------------


def merge_regions_cases() -> list[Case]:
    """The cases of :func:`check_merge_regions`."""
    rng = np.random.default_rng(_SEED + 1)
    shape = (60, 80)
    cases = []
    masks = square_masks(shape, [(10, 10, 20, 20), (20, 10, 30, 20)])
    image = flat_image(shape, masks, [(0.9, 0.2, 0.2), (0.2, 0.9, 0.2)], 0.02, rng)
    texture = texture_bins(image)
    a = make_region(image, masks[0], 4, neighbours=(5, 1, 2), texture=texture)
    b = make_region(image, masks[1], 5, neighbours=(4, 2, 3), texture=texture)
    cases.append(
        Case(
            "two 10x10 squares side by side, a touches {5, 1, 2} and b touches {4, 2, 3}: "
            "the new region touches {1, 2, 3}",
            (a, b, 6),
            hint=(
                "The new region's neighbours are the union of both sets, minus the two merged "
                "regions themselves."
            ),
        )
    )
    masks = square_masks(shape, [(0, 0, 30, 30), (30, 20, 33, 23)])
    image = flat_image(shape, masks, [(0.1, 0.3, 0.8), (0.9, 0.9, 0.1)], 0.02, rng)
    texture = texture_bins(image)
    a = make_region(image, masks[0], 0, neighbours=(1, 2), texture=texture)
    b = make_region(image, masks[1], 1, neighbours=(0,), texture=texture)
    cases.append(
        Case(
            "a 900-pixel region and a 9-pixel region: the histograms are weighted 900/909 and "
            "9/909",
            (a, b, 3),
            hint=(
                "Weight each histogram by its region's size: "
                "(size_a * h_a + size_b * h_b) / (size_a + size_b), not the plain average "
                "(h_a + h_b) / 2, and not the sum."
            ),
        )
    )
    masks = square_masks(shape, [(5, 30, 25, 40), (40, 5, 45, 50)])
    image = flat_image(shape, masks, [(0.5, 0.5, 0.5), (0.7, 0.2, 0.4)], 0.05, rng)
    texture = texture_bins(image)
    a = make_region(image, masks[0], 10, neighbours=(11,), texture=texture)
    b = make_region(image, masks[1], 11, neighbours=(10, 12), texture=texture)
    cases.append(
        Case(
            "a wide and a tall bar whose boxes cross: the box of the union is (5, 5, 45, 50)",
            (a, b, 20),
            hint=(
                "The merged box is (min x1, min y1, max x2, max y2) of the two boxes, "
                "not their intersection."
            ),
        )
    )
    b_only = dict(b, neighbours=frozenset({10}))
    a_only = dict(a, neighbours=frozenset({11}))
    cases.append(
        Case(
            "two regions that touch only each other: the merged region has no neighbours",
            (a_only, b_only, 12),
            hint=(
                "Remove both merged ids from the union of the neighbour sets "
                "(an empty set is a valid answer)."
            ),
        )
    )
    pairs, next_id = scene_pairs(3, rng)
    for region_a, region_b in pairs:
        cases.append(
            Case(
                f"neighbouring regions {region_a['id']} and {region_b['id']} of a segmented "
                "128x128 scene",
                (region_a, region_b, next_id),
                hint=(
                    "Return a new dict (id, size, box, color, texture, neighbours); "
                    "don't modify region_a or region_b."
                ),
            )
        )
    return cases


@assignment_check(reference=merge_region_dicts, cases=merge_regions_cases, compare=compare_merged)
def check_merge_regions(
    merge_regions: Callable[[dict, dict, int], dict], *, quiet: bool = False
) -> None:
    """Check ``merge_regions(region_a, region_b, new_id) -> region`` (IJCV 3.1-3.2), a new dict.

    size = size_a + size_b; box = the tight box around both boxes; color and texture: the
    size-weighted average (size_a * h_a + size_b * h_b) / (size_a + size_b); neighbours = the union
    of both neighbour sets without a and b; id = new_id. The inputs must not be modified.
    """


CHECKS = (check_color_histogram, check_similarities, check_merge_regions)
