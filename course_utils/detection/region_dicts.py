"""One region as a dict of tensors: the reference versions of notebook 02's assignments.

The notebook's assignments work on single regions held as dicts (readable, one region at a
time); :mod:`course_utils.detection.hierarchical_grouping` works on whole arrays (fast). These
functions give exactly the same numbers as the array code:

* :func:`region_dict`: region ``index`` of a :class:`RegionGraph` as a dict (:data:`REGION_KEYS`);
* :func:`region_color_histogram`, :func:`region_similarities`, :func:`merge_region_dicts`: the
  references of the checks in ``course_utils.grading.checks.selective_search``;
* :func:`merge_fn_from_dicts`: turns a dict merge (the student's) into a ``merge_fn`` for
  :func:`course_utils.detection.hierarchical_grouping.hierarchical_grouping`.

A region dict holds ``id`` (int), ``size`` (float64 scalar tensor, pixels), ``box`` (4,)
``(x1, y1, x2, y2)`` pixels with exclusive x2/y2, ``color`` (C*25,) and ``texture`` (C*80,)
L1-normalised float64 histograms, and ``neighbours`` (frozenset of ids).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from course_utils.detection.hierarchical_grouping import RegionGraph
from course_utils.detection.region_descriptors import color_histogram
from course_utils.detection.region_similarity import (
    fill_similarity,
    histogram_intersection,
    size_similarity,
)

#: The keys of a region dict.
REGION_KEYS: tuple[str, ...] = ("id", "size", "box", "color", "texture", "neighbours")


def region_dict(graph: RegionGraph, index: int) -> dict:
    """Region ``index`` of ``graph`` as a dict of :data:`REGION_KEYS` (copies, see the module).

    id (int), size (float64 scalar tensor), box (4,), color (C*25,), texture (C*80,) float64
    tensors, neighbours (frozenset of ids).
    """
    return {
        "id": int(index),
        "size": torch.tensor(graph.size[index], dtype=torch.float64),
        "box": torch.from_numpy(graph.box[index].copy()),
        "color": torch.from_numpy(graph.color[index].copy()),
        "texture": torch.from_numpy(graph.texture[index].copy()),
        "neighbours": frozenset(graph.neighbours.get(index, ())),
    }


def region_color_histogram(pixels: torch.Tensor) -> torch.Tensor:
    """:func:`~course_utils.detection.region_descriptors.color_histogram` of a tensor.

    pixels (N, C) in [0, 1], N >= 1 -> (C * 25,) with the pixels' float dtype (float32 for
    integer pixels), on their device; sums to 1.
    """
    if not isinstance(pixels, torch.Tensor) or pixels.ndim != 2 or pixels.shape[0] == 0:
        raise ValueError(
            "pixels must be a tensor (N, C) with N >= 1, "
            f"got {getattr(pixels, 'shape', type(pixels))}"
        )
    dtype = pixels.dtype if pixels.is_floating_point() else torch.float32
    histogram = color_histogram(pixels.detach().cpu().double().numpy())
    return torch.from_numpy(histogram).to(dtype=dtype, device=pixels.device)


def region_similarities(
    region_a: dict, region_b: dict, image_shape: tuple[int, int]
) -> torch.Tensor:
    """The four similarities of two regions (IJCV eqs. 1-5): (4,) = colour, texture, size, fill.

    Regions are dicts as :func:`region_dict` gives (size, box xyxy, color and texture
    histograms, as tensors); ``image_shape`` = (H, W), so size(im) = H * W pixels. The result
    has the float dtype (else float32) and device of region_a's colour histogram.
    """
    image_size = float(image_shape[0] * image_shape[1])
    ref = region_a["color"]

    def arr(region: dict, key: str) -> np.ndarray:
        return torch.as_tensor(region[key]).detach().cpu().double().numpy()

    values = [
        histogram_intersection(arr(region_a, "color"), arr(region_b, "color")),
        histogram_intersection(arr(region_a, "texture"), arr(region_b, "texture")),
        size_similarity(arr(region_a, "size"), arr(region_b, "size"), image_size),
        fill_similarity(
            arr(region_a, "box"),
            arr(region_b, "box"),
            arr(region_a, "size"),
            arr(region_b, "size"),
            image_size,
        ),
    ]
    dtype = ref.dtype if ref.is_floating_point() else torch.float32
    return torch.tensor([float(v) for v in values], dtype=dtype, device=ref.device)


def merge_region_dicts(region_a: dict, region_b: dict, new_id: int) -> dict:
    """Region ``new_id`` = region_a U region_b, as a new dict (the inputs are not modified).

    size: sum; box: the union box; color and texture: size-weighted averages of the
    histograms; neighbours: every neighbour of a or b except a and b themselves.
    """
    size_a, size_b = region_a["size"], region_b["size"]
    total = size_a + size_b
    return {
        "id": int(new_id),
        "size": total,
        "box": torch.cat(
            [
                torch.minimum(region_a["box"][:2], region_b["box"][:2]),
                torch.maximum(region_a["box"][2:], region_b["box"][2:]),
            ]
        ),
        "color": (size_a * region_a["color"] + size_b * region_b["color"]) / total,
        "texture": (size_a * region_a["texture"] + size_b * region_b["texture"]) / total,
        "neighbours": frozenset(
            (set(region_a["neighbours"]) | set(region_b["neighbours"]))
            - {region_a["id"], region_b["id"]}
        ),
    }


def merge_fn_from_dicts(
    merge_dicts: Callable[[dict, dict, int], dict],
) -> Callable[[RegionGraph, int, int], int]:
    """Turn ``merge_dicts(region_a, region_b, new_id) -> dict`` into ``merge_fn(graph, i, j) -> t``.

    The result replaces :func:`~course_utils.detection.hierarchical_grouping.merge_regions` in
    ``hierarchical_grouping`` and ``selective_search.build_hierarchy``.

    The returned dict's size, box, histograms and neighbours are written to row ``t``; every
    region in its neighbours then touches ``t`` instead of ``i`` and ``j``.
    """

    def merge_fn(graph: RegionGraph, i: int, j: int) -> int:
        t = graph.count
        merged = merge_dicts(region_dict(graph, i), region_dict(graph, j), t)
        graph.size[t] = float(merged["size"])
        graph.box[t] = torch.as_tensor(merged["box"]).double().numpy()
        graph.color[t] = torch.as_tensor(merged["color"]).double().numpy()
        graph.texture[t] = torch.as_tensor(merged["texture"]).double().numpy()
        graph.neighbours.pop(i, None)
        graph.neighbours.pop(j, None)
        touching = {int(n) for n in merged["neighbours"] if int(n) in graph.neighbours}
        for other in touching:
            graph.neighbours[other] -= {i, j}
            graph.neighbours[other].add(t)
        graph.neighbours[t] = touching
        graph.count = t + 1
        return t

    return merge_fn
