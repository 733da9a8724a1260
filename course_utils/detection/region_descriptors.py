"""What Selective Search knows about each initial region: size, box, neighbours, histograms.

IJCV 2013, section 3.2. Every function works on all regions at once from a region id map
``labels`` (int (H, W), ids 0..R-1 without gaps, as
:func:`course_utils.detection.graph_segmentation.initial_regions` gives), mostly with one
``np.bincount``:

* :func:`region_sizes`, :func:`region_boxes` (float64 ``(x1, y1, x2, y2)`` pixels, x2/y2
  exclusive) and :func:`region_adjacency` (the touching pairs);
* per-pixel bins: :func:`color_bins` (25 per channel) and :func:`texture_bins` (gaussian
  derivatives, sigma = 1, in 8 orientations, :func:`gaussian_derivatives`; 10 bins each);
* :func:`region_histograms` of those bins, L1-normalised over the whole vector (a region's
  channel histograms together sum to 1); :func:`color_histogram` of one region's pixels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Colour histogram bins per channel (IJCV: 25).
COLOR_BINS = 25
#: Texture histogram bins per orientation and channel (IJCV: 10).
TEXTURE_BINS = 10
#: Gaussian-derivative orientations (IJCV: 8).
TEXTURE_ORIENTATIONS = 8


def _check_region_ids(labels) -> np.ndarray:
    """``labels`` unchanged if it is an integer array (H, W) of ids >= 0, else ValueError."""
    if (
        not isinstance(labels, np.ndarray)
        or labels.ndim != 2
        or not np.issubdtype(labels.dtype, np.integer)
    ):
        raise ValueError(
            f"labels must be an integer array (H, W) of region ids 0..R-1, got "
            f"{getattr(labels, 'dtype', type(labels))} {getattr(labels, 'shape', '')}"
        )
    if labels.size and labels.min() < 0:
        raise ValueError(f"region ids must be >= 0, got {labels.min()}")
    return labels


def _check_planes(image, what: str = "(H, W, C)") -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3:
        raise ValueError(
            f"image must be an array {what}, got {getattr(image, 'shape', type(image))}"
        )
    return image


# --------------------------------------------------------------------------- size, box, neighbours


def region_sizes(labels: np.ndarray) -> np.ndarray:
    """Pixel count of every region: float64 (R,) for labels (H, W) with ids 0..R-1."""
    labels = _check_region_ids(labels)
    return np.bincount(labels.ravel()).astype(np.float64)


def region_boxes(labels: np.ndarray) -> np.ndarray:
    """Tight box of every region: float64 (R, 4) ``(x1, y1, x2, y2)``, x2/y2 exclusive."""
    labels = _check_region_ids(labels)
    slices = ndimage.find_objects(labels + 1)
    boxes = np.zeros((len(slices), 4), dtype=np.float64)
    for index, found in enumerate(slices):
        if found is None:
            raise ValueError(
                f"region id {index} has no pixel: labels must be numbered 0..R-1 without gaps"
            )
        rows, cols = found
        boxes[index] = (cols.start, rows.start, cols.stop, rows.stop)
    return boxes


def region_adjacency(labels: np.ndarray) -> np.ndarray:
    """Pairs of regions that touch (4-connectivity): int64 (E, 2), rows ``i < j``, sorted."""
    labels = _check_region_ids(labels)
    first = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
    second = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
    keep = first != second
    low, high = np.minimum(first[keep], second[keep]), np.maximum(first[keep], second[keep])
    base = int(labels.max()) + 1 if labels.size else 1
    codes = np.unique(low.astype(np.int64) * base + high)
    return np.stack([codes // base, codes % base], axis=1).astype(np.int64)


# --------------------------------------------------------------------------- per-pixel bins


def color_bins(image: np.ndarray, bins: int = COLOR_BINS) -> np.ndarray:
    """The colour bin of every pixel and channel: int64 (H, W, C) in 0..bins-1.

    ``image`` (H, W, C) in [0, 1]; channel value v falls in bin ``min(floor(v * bins), bins - 1)``.
    """
    image = _check_planes(image, "(H, W, C) in [0, 1]")
    return np.minimum((np.clip(image, 0.0, 1.0) * bins).astype(np.int64), bins - 1)


def gaussian_derivatives(image: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Rectified gaussian derivatives in 8 orientations: float32 (H, W, C, 8) >= 0.

    For each channel, the derivative along direction theta = 0, 45, ..., 315 degrees is
    ``cos(theta) d/dx + sin(theta) d/dy`` of the gaussian-smoothed channel; its positive
    part is kept (theta and theta + 180 degrees are the two signs of one derivative).
    """
    image = _check_planes(image)
    out = np.empty(image.shape + (TEXTURE_ORIENTATIONS,), dtype=np.float32)
    half = TEXTURE_ORIENTATIONS // 2
    angles = np.arange(half) * np.pi / half
    for channel in range(image.shape[-1]):
        plane = image[..., channel].astype(np.float32)
        dx = ndimage.gaussian_filter(plane, sigma, order=(0, 1))
        dy = ndimage.gaussian_filter(plane, sigma, order=(1, 0))
        for index, angle in enumerate(angles):
            derivative = np.float32(np.cos(angle)) * dx + np.float32(np.sin(angle)) * dy
            np.maximum(derivative, 0.0, out=out[..., channel, index])
            np.maximum(-derivative, 0.0, out=out[..., channel, index + half])
    return out


def texture_bins(image: np.ndarray, bins: int = TEXTURE_BINS, sigma: float = 1.0) -> np.ndarray:
    """The texture bin of every pixel, channel and orientation: int64 (H, W, C * 8) in 0..bins-1.

    Each orientation's response (:func:`gaussian_derivatives`) is divided by its maximum over
    the image, then binned like :func:`color_bins`. Column ``c * 8 + o`` is channel c,
    orientation o.
    """
    responses = gaussian_derivatives(image, sigma).reshape(image.shape[0], image.shape[1], -1)
    peak = responses.max(axis=(0, 1))
    factor = np.where(peak > 0, bins / np.maximum(peak, 1e-12), 0.0).astype(np.float32)
    responses *= factor
    return np.minimum(responses.astype(np.int64), bins - 1)


# --------------------------------------------------------------------------- histograms


def region_histograms(
    labels: np.ndarray, pixel_bins: np.ndarray, bins: int, num_regions: int | None = None
) -> np.ndarray:
    """L1-normalised histograms of all regions at once: float64 (R, D * bins).

    ``pixel_bins`` (H, W, D) holds each pixel's bin (0..bins-1) in each of D descriptors
    (3 colour channels, or 3 x 8 texture orientations); region r's row concatenates the D
    histograms and sums to 1. One ``np.bincount`` over ``(region, descriptor, bin)`` indices.
    """
    labels = _check_region_ids(labels)
    if pixel_bins.shape[:2] != labels.shape:
        raise ValueError(
            f"pixel_bins must be (H, W, D) with (H, W) = labels.shape {labels.shape}, "
            f"got {pixel_bins.shape}"
        )
    num_regions = int(labels.max()) + 1 if num_regions is None else num_regions
    depth = pixel_bins.shape[-1]
    offsets = np.arange(depth, dtype=np.int64) * bins
    index = labels.reshape(-1, 1) * (depth * bins) + offsets + pixel_bins.reshape(-1, depth)
    counts = np.bincount(index.ravel(), minlength=num_regions * depth * bins).astype(np.float64)
    counts = counts.reshape(num_regions, depth * bins)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)


def color_histogram(pixels: np.ndarray, bins: int = COLOR_BINS) -> np.ndarray:
    """The colour histogram of one region (IJCV 3.2): float64 (C * bins,), sums to 1.

    ``pixels`` (N, C) are the region's pixel values in [0, 1] (N >= 1); channel c's ``bins``
    counts come at ``c * bins``; the whole vector is divided by its sum (L1 norm, = C * N).
    """
    pixels = np.asarray(pixels, dtype=np.float64)
    if pixels.ndim != 2 or pixels.shape[0] == 0:
        raise ValueError(f"pixels must be (N, C) with N >= 1, got shape {pixels.shape}")
    binned = np.minimum((np.clip(pixels, 0, 1) * bins).astype(np.int64), bins - 1)
    index = binned + np.arange(pixels.shape[1]) * bins
    counts = np.bincount(index.ravel(), minlength=pixels.shape[1] * bins).astype(np.float64)
    return counts / counts.sum()
