"""Hierarchical grouping (IJCV 2013, section 3.1, Algorithm 1): merge the most similar neighbours.

* :class:`RegionGraph`: the regions of one hierarchy as arrays (size, box, colour and texture
  histograms) with room for every merge, and who touches whom;
* :func:`merge_regions`: one merge step (size-weighted histograms, union box, union
  neighbourhood), in place; :func:`pair_similarity`: the weighted sum of the four similarities
  (:mod:`course_utils.detection.region_similarity`) of region pairs;
* :func:`hierarchical_grouping`: the greedy loop, with a heap of pair similarities, until one
  region is left; :class:`Hierarchy`: its result, every region's box and every level's labels.

Boxes are float ``(x1, y1, x2, y2)`` pixels with exclusive x2/y2; sizes are pixel counts.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import torch

from course_utils.core import validate
from course_utils.detection.region_similarity import (
    fill_similarity,
    histogram_intersection,
    similarity_weights,
    size_similarity,
    union_box,
)

if TYPE_CHECKING:
    from course_utils.detection.selective_search import Strategy


@dataclass
class RegionGraph:
    """Regions of one hierarchy and who touches whom.

    Region ids are rows: 0..R-1 the initial regions, R, R+1, ... the merged ones in merge
    order. Arrays have room for all 2R - 1 regions; rows ``>= count`` are not used yet.

    size (2R-1,) float64 pixels; box (2R-1, 4) float64 xyxy (exclusive x2/y2);
    ``histograms`` (2R-1, C*25 + C*80) holds each region's colour histogram (the view
    ``color``, (2R-1, C*25)) then its texture histogram (the view ``texture``, (2R-1, C*80)),
    each L1-normalised (``color_dims`` = C*25 columns of colour); neighbours: for each *alive*
    (not yet merged) region, the set of
    alive regions it touches; image_size = H * W pixels; count = regions created so far.
    """

    size: np.ndarray
    box: np.ndarray
    histograms: np.ndarray
    color_dims: int
    neighbours: dict[int, set[int]]
    image_size: float
    count: int

    @property
    def color(self) -> np.ndarray:
        """Colour histograms (2R-1, C*25), a view: writing ``graph.color[t] = h`` stores h."""
        return self.histograms[:, : self.color_dims]

    @property
    def texture(self) -> np.ndarray:
        """Texture histograms (2R-1, C*80), a view: writing ``graph.texture[t] = h`` stores h."""
        return self.histograms[:, self.color_dims :]

    @classmethod
    def from_initial(
        cls,
        sizes: np.ndarray,
        boxes: np.ndarray,
        color: np.ndarray,
        texture: np.ndarray,
        adjacency: np.ndarray,
        image_size: float,
    ) -> RegionGraph:
        """Allocate room for 2R - 1 regions and fill the R initial ones.

        sizes (R,), boxes (R, 4), color (R, Dc), texture (R, Dt), adjacency (E, 2) pairs of ids.
        """
        num = len(sizes)
        if not (len(boxes) == len(color) == len(texture) == num) or num == 0:
            raise ValueError(
                f"sizes, boxes, color and texture must describe the same R >= 1 regions, got "
                f"{len(sizes)}, {len(boxes)}, {len(color)}, {len(texture)}"
            )
        capacity = 2 * num - 1

        def room(values: np.ndarray) -> np.ndarray:
            values = np.asarray(values, dtype=np.float64)
            out = np.zeros((capacity,) + values.shape[1:], dtype=np.float64)
            out[:num] = values
            return out

        neighbours: dict[int, set[int]] = {index: set() for index in range(num)}
        for i, j in np.asarray(adjacency, dtype=np.int64).reshape(-1, 2).tolist():
            neighbours[i].add(j)
            neighbours[j].add(i)
        histograms = room(
            np.concatenate([np.asarray(color, np.float64), np.asarray(texture, np.float64)], axis=1)
        )
        return cls(
            room(sizes),
            room(boxes),
            histograms,
            int(np.shape(color)[1]),
            neighbours,
            float(image_size),
            num,
        )

    def copy(self) -> RegionGraph:
        """A deep copy (arrays and neighbour sets)."""
        return RegionGraph(
            self.size.copy(),
            self.box.copy(),
            self.histograms.copy(),
            self.color_dims,
            {key: set(value) for key, value in self.neighbours.items()},
            self.image_size,
            self.count,
        )


def merge_regions(graph: RegionGraph, i: int, j: int) -> int:
    """Merge neighbours ``i`` and ``j`` into a new region ``t = graph.count``, in place; return t.

    IJCV 3.1 and 3.2: size_t = size_i + size_j; box_t = union box; histograms
    ``(size_i * h_i + size_j * h_j) / size_t``; t touches every neighbour of i or j (except i
    and j), those neighbours now touch t instead of i and j, and i, j leave ``neighbours``.
    """
    t = graph.count
    size_i, size_j = graph.size[i], graph.size[j]
    total = size_i + size_j
    graph.size[t] = total
    graph.box[t] = union_box(graph.box[i], graph.box[j])
    graph.color[t] = (size_i * graph.color[i] + size_j * graph.color[j]) / total
    graph.texture[t] = (size_i * graph.texture[i] + size_j * graph.texture[j]) / total
    touching = (graph.neighbours.pop(i) | graph.neighbours.pop(j)) - {i, j}
    for other in touching:
        graph.neighbours[other] -= {i, j}
        graph.neighbours[other].add(t)
    graph.neighbours[t] = touching
    graph.count = t + 1
    return t


def pair_similarity(graph: RegionGraph, a, b, weights: np.ndarray) -> np.ndarray:
    """Similarity of regions ``a[k]`` and ``b[k]`` for each k (ids, broadcast): float64 (K,).

    ``weights`` (4,) = :func:`similarity_weights` (0/1 each): a_colour s_colour + a_texture
    s_texture + a_size s_size + a_fill s_fill (IJCV eq. 6), each term in [0, 1].
    """
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    total = np.zeros(np.broadcast_shapes(a.shape, b.shape))
    if weights[0] and weights[1]:  # one intersection over the concatenated histograms
        total += histogram_intersection(graph.histograms[a], graph.histograms[b])
    elif weights[0]:
        total += histogram_intersection(graph.color[a], graph.color[b])
    elif weights[1]:
        total += histogram_intersection(graph.texture[a], graph.texture[b])
    size_a, size_b = graph.size[a], graph.size[b]
    if weights[2]:
        total += size_similarity(size_a, size_b, graph.image_size)
    if weights[3]:
        total += fill_similarity(graph.box[a], graph.box[b], size_a, size_b, graph.image_size)
    return total


# --------------------------------------------------------------------------- the hierarchy


@dataclass
class Hierarchy:
    """The result of hierarchical grouping on one initial segmentation.

    initial_labels int64 (H, W) ids 0..R-1; boxes float32 (2R-1, 4) xyxy of every region
    (initial ones, then merged ones in merge order; fewer rows if the image has several
    disconnected parts); sizes float64 (same rows); merges int64 (M, 3) rows ``(i, j, t)``:
    step s merged i and j into t; merge_similarity float64 (M,) the similarity of that pair.
    """

    initial_labels: np.ndarray
    boxes: np.ndarray
    sizes: np.ndarray
    merges: np.ndarray
    merge_similarity: np.ndarray
    strategy: Strategy | None = None

    @property
    def num_initial(self) -> int:
        """R, the number of initial regions."""
        return int(self.initial_labels.max()) + 1

    @property
    def num_steps(self) -> int:
        """M, the number of merges (R - 1 for a connected image)."""
        return len(self.merges)

    @cached_property
    def levels(self) -> np.ndarray:
        """int64 (M + 1, R): ``levels[s, r]`` is initial region r's region after s merges."""
        current = np.arange(self.num_initial)
        out = np.empty((self.num_steps + 1, self.num_initial), dtype=np.int64)
        out[0] = current
        for step, (i, j, t) in enumerate(self.merges.tolist(), start=1):
            current = np.where((current == i) | (current == j), t, current)
            out[step] = current
        return out

    def labels_at(self, step: int) -> np.ndarray:
        """Region id map (H, W) after ``step`` merges (0 = the initial segmentation)."""
        step = validate.check_int(step, "step", minimum=0, maximum=self.num_steps)
        return self.levels[step][self.initial_labels]

    def regions_at(self, step: int) -> np.ndarray:
        """Ids of the regions alive after ``step`` merges, sorted: int64 (R - step,)."""
        return np.unique(self.levels[step])

    def proposals(self) -> torch.Tensor:
        """Every region's box, the hierarchy's proposals in creation order: float32 (P, 4) xyxy."""
        return torch.from_numpy(self.boxes.astype(np.float32))


def _pair_heap(graph: RegionGraph, weights: np.ndarray) -> list[tuple[float, int, int]]:
    """A heap of ``(-similarity, i, j)`` over every touching pair ``i < j`` of ``graph``."""
    pairs = sorted((i, j) for i, touching in graph.neighbours.items() for j in touching if i < j)
    first = np.array([i for i, _ in pairs], dtype=np.int64)
    second = np.array([j for _, j in pairs], dtype=np.int64)
    values = pair_similarity(graph, first, second, weights) if pairs else np.zeros(0)
    heap = list(zip((-values).tolist(), first.tolist(), second.tolist()))
    heapq.heapify(heap)
    return heap


def _push_neighbours(heap: list, graph: RegionGraph, t: int, weights: np.ndarray) -> None:
    """Add the similarities of the new region ``t`` to each of its neighbours to ``heap``."""
    others = sorted(graph.neighbours.get(t, ()))
    if not others:
        return
    others = np.array(others)
    for value, other in zip(pair_similarity(graph, t, others, weights).tolist(), others.tolist()):
        heapq.heappush(heap, (-value, other, t) if other < t else (-value, t, other))


def hierarchical_grouping(
    graph: RegionGraph, measures: str = "CTSF", merge_fn=merge_regions, max_steps: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy grouping (IJCV Algorithm 1) on ``graph``, in place.

    Computes the similarity of every touching pair, then repeatedly merges the most similar
    pair with ``merge_fn(graph, i, j) -> t`` and adds the similarities of ``t`` to its
    neighbours, until no touching pair is left (or ``max_steps`` merges). A heap holds the
    similarities; pairs whose regions were merged already are skipped when popped (region
    features never change after creation, so stale entries are exactly the dead pairs).
    Ties are broken by the smaller ids. Returns ``merges`` int64 (M, 3) rows ``(i, j, t)`` and
    the merged pairs' similarities float64 (M,).
    """
    weights = similarity_weights(measures)
    max_steps = validate.check_int(max_steps, "max_steps", minimum=0, allow_none=True)
    alive = np.zeros(len(graph.size), dtype=bool)
    alive[: graph.count] = True
    heap = _pair_heap(graph, weights)
    merges, values = [], []
    limit = len(graph.size) if max_steps is None else max_steps
    while heap and len(merges) < limit:
        negative, i, j = heapq.heappop(heap)
        if not (alive[i] and alive[j]):
            continue
        t = merge_fn(graph, i, j)
        if t >= len(alive):
            raise ValueError(
                f"merge_fn returned region id {t}, but the graph has room for {len(alive)} regions"
            )
        alive[i] = alive[j] = False
        alive[t] = True
        merges.append((i, j, t))
        values.append(-negative)
        _push_neighbours(heap, graph, t, weights)
    return np.array(merges, dtype=np.int64).reshape(-1, 3), np.array(values, dtype=np.float64)
