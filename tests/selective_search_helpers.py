"""Small region maps with known answers, shared by the Selective Search tests."""

from __future__ import annotations

import numpy as np

from course_utils.detection.hierarchical_grouping import RegionGraph
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


def three_regions() -> np.ndarray:
    """Labels int64 (6, 8): region 0 left (24 px), 1 top right and 2 bottom right (12 px each)."""
    labels = np.zeros((6, 8), dtype=np.int64)
    labels[:3, 4:] = 1
    labels[3:, 4:] = 2
    return labels


def small_graph() -> RegionGraph:
    """The :class:`RegionGraph` of :func:`three_regions` on an image with a bright left half."""
    labels = three_regions()
    image = np.zeros((6, 8, 3))
    image[:, :4] = 0.9
    image[3:, 4:] = 0.5
    count = 3
    return RegionGraph.from_initial(
        region_sizes(labels),
        region_boxes(labels),
        region_histograms(labels, color_bins(image), COLOR_BINS, count),
        region_histograms(labels, texture_bins(image), TEXTURE_BINS, count),
        region_adjacency(labels),
        labels.size,
    )
