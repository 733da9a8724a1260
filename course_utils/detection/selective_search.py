"""Selective Search: box proposals by hierarchical grouping of an over-segmentation.

Van de Sande, Uijlings, Gevers & Smeulders, "Segmentation as selective search for object
recognition", ICCV 2011; Uijlings, van de Sande, Gevers & Smeulders, "Selective search for
object recognition", IJCV 2013 (section 3). This module is the entry point; the steps live in
their own modules of ``course_utils.detection``:

1. ``graph_segmentation``: the image in one colour space, Felzenszwalb & Huttenlocher's
   initial regions (``scale`` is the paper's ``k``);
2. ``region_descriptors``: each initial region's size, box, neighbours, colour and texture
   histograms, all regions at once;
3. ``region_similarity``: the four similarities (IJCV eqs. 1-5) and their 0/1 weights;
4. ``hierarchical_grouping``: greedy merging of the most similar neighbours until one region is
   left; every region of every level gives a box (``region_dicts`` holds the one-region
   versions that notebook 02's assignments check);
5. here, diversification: a :class:`Strategy` is one (colour space, k, similarity string);
   :func:`strategies` lists a mode's, :class:`ImageSegmentations` shares the work strategies of
   one image have in common, :func:`rank_proposals` combines the hierarchies with the paper's
   pseudo-random ranking and :func:`selective_search` runs it all.

Conventions: images as the course uses them (float CHW tensors in [0, 1]) or as scikit-image
gives them (uint8 or float (H, W, 3) arrays). Boxes are float32 ``(x1, y1, x2, y2)`` pixels with
an exclusive right/bottom edge (``x2`` = last column + 1), as the scenes' ground truth.
OpenCV's implementation, for comparison, is in ``opencv_selective_search``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from course_utils.core import validate
from course_utils.detection.graph_segmentation import (
    COLOR_SPACES,
    DEFAULT_MIN_SIZE,
    DEFAULT_SIGMA,
    as_hwc_float,
    convert_color,
    initial_regions,
)
from course_utils.detection.hierarchical_grouping import (
    Hierarchy,
    RegionGraph,
    hierarchical_grouping,
    merge_regions,
)
from course_utils.detection.region_descriptors import (
    COLOR_BINS,
    TEXTURE_BINS,
    color_bins,
    region_adjacency,
    region_boxes,
    region_histograms,
    region_sizes,
    texture_bins,
)
from course_utils.detection.region_similarity import similarity_weights

#: Modes of :func:`strategies`.
MODES: tuple[str, ...] = ("single", "fast", "quality")
#: The Felzenszwalb ``k`` values of the modes, the paper's: "single" uses k = 100, "fast" 50 and
#: 100, "quality" all four.
DEFAULT_SCALES: tuple[float, ...] = (50.0, 100.0, 150.0, 300.0)


# --------------------------------------------------------------------------- strategies


@dataclass(frozen=True)
class Strategy:
    """One hierarchical grouping: colour space, Felzenszwalb's k (``scale``), similarity string.

    ``measures`` holds the letters of the similarities summed (``"CTSF"``: colour, texture,
    size, fill); ``sigma`` and ``min_size`` (pixels) are Felzenszwalb's pre-smoothing and
    smallest region.
    """

    color_space: str = "hsv"
    scale: float = 100.0
    measures: str = "CTSF"
    sigma: float = DEFAULT_SIGMA
    min_size: int = DEFAULT_MIN_SIZE

    def __post_init__(self) -> None:
        if self.color_space not in COLOR_SPACES:
            raise ValueError(f"color_space must be one of {COLOR_SPACES}, got {self.color_space!r}")
        if validate.check_number(self.scale, "scale") <= 0:
            raise ValueError(f"scale must be > 0, got {self.scale}")
        similarity_weights(self.measures)

    def label(self) -> str:
        """Short text such as ``"hsv k=50 CTSF"``."""
        return f"{self.color_space} k={self.scale:g} {self.measures}"


def strategies(
    mode: str = "fast",
    scales: tuple[float, ...] | None = None,
    min_size: int = DEFAULT_MIN_SIZE,
    sigma: float = DEFAULT_SIGMA,
) -> tuple[Strategy, ...]:
    """The diversification strategies of a mode (IJCV 4.1).

    * "single": HSV, k = scales[1], C+T+S+F (1 hierarchy, the paper's best single strategy);
    * "fast" (IJCV's "Selective Search Fast"): colour spaces HSV and Lab x k in scales[:2] x
      similarities C+T+S+F and T+S+F (8 hierarchies);
    * "quality": HSV, Lab, rgI, H, I x 4 values of k x C+T+S+F, T+S+F, F, S (80 hierarchies).

    ``scales`` defaults to :data:`DEFAULT_SCALES` (50, 100, 150, 300), the paper's k values.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    scales = tuple(DEFAULT_SCALES if scales is None else scales)
    needed = {"single": 2, "fast": 2, "quality": 4}[mode]
    if len(scales) < needed:
        raise ValueError(f"mode {mode!r} needs at least {needed} scales, got {scales}")
    if mode == "single":
        return (Strategy("hsv", scales[1], "CTSF", sigma, min_size),)
    if mode == "fast":
        spaces, ks, measures = ("hsv", "lab"), scales[:2], ("CTSF", "TSF")
    else:
        spaces, ks = ("hsv", "lab", "rgi", "h", "i"), scales[:4]
        measures = ("CTSF", "TSF", "F", "S")
    return tuple(
        Strategy(space, k, measure, sigma, min_size)
        for space in spaces
        for k in ks
        for measure in measures
    )


# ------------------------------------------------------------------ one image, many strategies


class ImageSegmentations:
    """One image's colour conversions and initial region graphs, each computed once.

    Strategies that share a colour space share its per-pixel colour and texture bins; those
    that also share k, sigma and min_size share the initial regions and their graph, and then
    differ only in the similarity that groups them. ``image``: any format :func:`as_hwc_float`
    accepts, kept as :attr:`image`, float64 (H, W, 3) RGB in [0, 1].
    """

    def __init__(self, image) -> None:
        self.image = as_hwc_float(image)
        self._pixel_bins: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._graphs: dict[tuple, tuple[RegionGraph, np.ndarray]] = {}

    def pixel_bins(self, color_space: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The image in ``color_space`` and its per-pixel bins.

        Returns the converted image float64 (H, W, C), its colour bins int64 (H, W, C) and its
        texture bins int64 (H, W, C * 8).
        """
        if color_space not in self._pixel_bins:
            converted = convert_color(self.image, color_space)
            self._pixel_bins[color_space] = (
                converted,
                color_bins(converted),
                texture_bins(converted),
            )
        return self._pixel_bins[color_space]

    def region_graph(self, strategy: Strategy) -> tuple[RegionGraph, np.ndarray]:
        """A fresh :class:`RegionGraph` of the strategy's initial regions, and their labels (H, W).

        The graph is a copy: grouping may modify it without touching the shared one.
        """
        key = (strategy.color_space, strategy.scale, strategy.sigma, strategy.min_size)
        if key not in self._graphs:
            converted, colour, texture = self.pixel_bins(strategy.color_space)
            labels = initial_regions(converted, strategy.scale, strategy.sigma, strategy.min_size)
            count = int(labels.max()) + 1
            graph = RegionGraph.from_initial(
                region_sizes(labels),
                region_boxes(labels),
                region_histograms(labels, colour, COLOR_BINS, count),
                region_histograms(labels, texture, TEXTURE_BINS, count),
                region_adjacency(labels),
                labels.size,
            )
            self._graphs[key] = (graph, labels)
        graph, labels = self._graphs[key]
        return graph.copy(), labels

    def hierarchy(self, strategy: Strategy, merge_fn=merge_regions) -> Hierarchy:
        """Run one strategy: the whole :class:`Hierarchy` of the image.

        ``merge_fn(graph, i, j) -> t`` replaces
        :func:`~course_utils.detection.hierarchical_grouping.merge_regions` (to test your own).
        """
        if not isinstance(strategy, Strategy):
            raise TypeError(f"strategy must be a Strategy, got {type(strategy).__name__}")
        graph, labels = self.region_graph(strategy)
        merges, values = hierarchical_grouping(graph, strategy.measures, merge_fn)
        return Hierarchy(
            labels,
            graph.box[: graph.count].astype(np.float32),
            graph.size[: graph.count].copy(),
            merges,
            values,
            strategy,
        )


def region_graph(image, strategy: Strategy) -> tuple[RegionGraph, np.ndarray]:
    """Initial regions of ``image`` and their graph, for one strategy.

    ``image``: any format :func:`as_hwc_float` accepts. Returns a fresh :class:`RegionGraph`
    and the initial labels int64 (H, W). Several strategies of one image: use
    :class:`ImageSegmentations`, which computes what they share once.
    """
    return ImageSegmentations(image).region_graph(strategy)


def build_hierarchy(image, strategy: Strategy = Strategy(), merge_fn=merge_regions) -> Hierarchy:
    """Run one strategy on an image (any format :func:`as_hwc_float` accepts): the whole hierarchy.

    ``merge_fn(graph, i, j) -> t`` replaces
    :func:`~course_utils.detection.hierarchical_grouping.merge_regions` (to test your own).
    """
    return ImageSegmentations(image).hierarchy(strategy, merge_fn)


# -------------------------------------------------------------------- ranking and the pipeline


def rank_proposals(
    hierarchy_boxes: list[np.ndarray], seed: int = 0, randomize: bool = True
) -> np.ndarray:
    """Combine the boxes of several hierarchies into one ranked list without duplicates (IJCV 4.2).

    ``hierarchy_boxes``: for each hierarchy, its boxes (n_h, 4) in creation order (the last one
    is the whole image). Each box gets position ``p = n_h - index`` (1 = the last created, the
    top of the hierarchy) and value ``v = RND * p`` with RND uniform in [0, 1)
    (``randomize=False`` uses ``v = p``: round-robin over hierarchies from the top). Boxes are
    sorted by v; a box seen before (same coordinates) is dropped, keeping its best rank.
    Returns float32 (P, 4).
    """
    boxes = [np.asarray(b, dtype=np.float32).reshape(-1, 4) for b in hierarchy_boxes]
    if not boxes or sum(len(b) for b in boxes) == 0:
        return np.zeros((0, 4), dtype=np.float32)
    rng = np.random.default_rng(seed)
    positions = np.concatenate([np.arange(len(b), 0, -1, dtype=np.float64) for b in boxes])
    hierarchy = np.concatenate([np.full(len(b), h) for h, b in enumerate(boxes)])
    values = positions * rng.random(len(positions)) if randomize else positions
    order = np.lexsort((hierarchy, values))
    stacked = np.concatenate(boxes)[order]
    _, first = np.unique(stacked, axis=0, return_index=True)
    return stacked[np.sort(first)]


def selective_search(
    image,
    mode: str = "fast",
    strategy_list: tuple[Strategy, ...] | None = None,
    max_proposals: int | None = None,
    seed: int = 0,
    scales: tuple[float, ...] | None = None,
    min_size: int = DEFAULT_MIN_SIZE,
    sigma: float = DEFAULT_SIGMA,
    randomize: bool = True,
) -> torch.Tensor:
    """Selective Search proposals for one image, best ranked first: float32 (P, 4) xyxy pixels.

    ``image``: float tensor (3, H, W) in [0, 1] or uint8/float array (H, W, 3). ``mode`` picks
    the strategies (:func:`strategies`) unless ``strategy_list`` is given; ``seed`` drives the
    pseudo-random ranking (:func:`rank_proposals`); ``max_proposals`` keeps the first ones.
    """
    max_proposals = validate.check_int(max_proposals, "max_proposals", minimum=0, allow_none=True)
    segmentations = ImageSegmentations(image)
    chosen = (
        strategies(mode, scales, min_size, sigma) if strategy_list is None else tuple(strategy_list)
    )
    if not chosen:
        raise ValueError("strategy_list must hold at least one Strategy")
    boxes = [segmentations.hierarchy(strategy).boxes for strategy in chosen]
    ranked = rank_proposals(boxes, seed=seed, randomize=randomize)
    if max_proposals is not None:
        ranked = ranked[:max_proposals]
    return torch.from_numpy(np.ascontiguousarray(ranked))
