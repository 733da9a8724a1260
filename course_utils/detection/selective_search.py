"""Selective Search: box proposals by hierarchical grouping of an over-segmentation.

Van de Sande, Uijlings, Gevers & Smeulders, "Segmentation as selective search for object
recognition", ICCV 2011; Uijlings, van de Sande, Gevers & Smeulders, "Selective search for
object recognition", IJCV 2013 (section 3). The steps, one function each:

1. :func:`initial_regions` — Felzenszwalb & Huttenlocher's graph-based segmentation
   (``skimage.segmentation.felzenszwalb``; ``scale`` is the paper's ``k``) of the image in
   one colour space (:func:`convert_color`).
2. Region features, computed for all initial regions at once with ``np.bincount``:
   :func:`region_sizes`, :func:`region_boxes`, :func:`region_histograms` of the per-pixel
   bins of :func:`color_bins` (25 bins per channel) and :func:`texture_bins` (gaussian
   derivatives, sigma = 1, in 8 orientations, 10 bins each, per channel).
   :func:`region_adjacency` lists the touching pairs.
3. The four similarities (IJCV eqs. 1-5): :func:`histogram_intersection` (colour and
   texture), :func:`size_similarity`, :func:`fill_similarity`, combined by
   :func:`similarity` with the 0/1 weights of a similarity string such as ``"CTSF"``.
4. Greedy merging (:func:`hierarchical_grouping`): merge the most similar neighbours
   (:func:`merge_regions`: size-weighted histograms, union box, union neighbourhood),
   compute the new region's similarities to its neighbours, repeat until one region is
   left. Every region of every level gives a box.
5. Diversification (:func:`strategies`): several colour spaces, ``k`` values and
   similarity combinations, each giving one hierarchy; :func:`rank_proposals` combines
   them with the paper's pseudo-random ranking and removes duplicate boxes.

Conventions: images as the course uses them (float CHW tensors in [0, 1]) or as
scikit-image gives them (uint8 or float (H, W, 3) arrays). Boxes are float32
``(x1, y1, x2, y2)`` pixels with an exclusive right/bottom edge (``x2`` = last column + 1),
as the scenes' ground truth. Histograms are float64, L1-normalised over the whole vector
(the three channel histograms of a region together sum to 1, so every similarity lies in
[0, 1]).

OpenCV's implementation (``cv2.ximgproc.segmentation``, in opencv-contrib) is wrapped by
:func:`opencv_selective_search`; OpenCV is imported only there, never at import time.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from scipy import ndimage
from skimage import color as skcolor
from skimage.segmentation import felzenszwalb

from course_utils.core import validate

#: Colour histogram bins per channel (IJCV: 25).
COLOR_BINS = 25
#: Texture histogram bins per orientation and channel (IJCV: 10).
TEXTURE_BINS = 10
#: Gaussian-derivative orientations (IJCV: 8).
TEXTURE_ORIENTATIONS = 8
#: Colour spaces :func:`convert_color` knows; "h" (hue) and "i" (intensity) have one channel.
COLOR_SPACES: tuple[str, ...] = ("rgb", "hsv", "lab", "rgi", "h", "i")
#: The letters of a similarity string: colour, texture, size, fill.
SIMILARITY_LETTERS = "CTSF"
#: Modes of :func:`strategies`.
MODES: tuple[str, ...] = ("single", "fast", "quality")
#: The Felzenszwalb ``k`` values of the modes, the paper's: "single" uses k = 100, "fast" 50 and 100,
#: "quality" all four.
DEFAULT_SCALES: tuple[float, ...] = (50.0, 100.0, 150.0, 300.0)
#: Felzenszwalb's pre-smoothing. The paper uses 0.8 on ~500 x 375 photographs; on the 128 x 128
#: scenes, whose objects have hard 1-pixel edges and can be 10 px small, 0.8 blurs thin strips
#: into separate regions and costs about 0.1 MABO (measured in notebook 02's development), so 0.5.
DEFAULT_SIGMA = 0.5
#: Smallest initial region in pixels (the paper's code uses k pixels; our smallest objects have
#: about 16 visible pixels).
DEFAULT_MIN_SIZE = 10


# --------------------------------------------------------------------------- images and colour spaces


def as_hwc_float(image) -> np.ndarray:
    """An image as a float64 array (H, W, 3) in [0, 1].

    Accepts a float tensor (3, H, W) in [0, 1] (the course's convention, checked by
    ``course_utils.core.validate.check_image``), a uint8 array (H, W, 3) (scikit-image, PIL) or a
    float array (H, W, 3) in [0, 1]. A one-channel image is repeated to three channels. Float
    values that are 8-bit levels (k / 255 up to float32 rounding) are snapped to k / 255 exactly,
    so a uint8 image and its float tensor give the same proposals.
    """
    if isinstance(image, torch.Tensor):
        image = validate.check_image(image.detach().cpu().float())
        array = image.permute(1, 2, 0).numpy().astype(np.float64)
    elif isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[-1] not in (1, 3):
            raise ValueError(
                f"image array must be (H, W, 3) (or (H, W, 1)), got shape {image.shape}"
            )
        if image.dtype == np.uint8:
            array = image.astype(np.float64) / 255.0
        elif np.issubdtype(image.dtype, np.floating):
            array = image.astype(np.float64)
            if array.size and (array.min() < -1e-3 or array.max() > 1 + 1e-3):
                raise ValueError(
                    f"float image arrays must lie in [0, 1], got range [{array.min():.3g}, {array.max():.3g}]"
                )
        else:
            raise TypeError(
                f"image array must be uint8 or float in [0, 1], got dtype {image.dtype}"
            )
    else:
        raise TypeError(
            f"image must be a float tensor (3, H, W) or an array (H, W, 3), got {type(image).__name__}"
        )
    if array.shape[0] < 2 or array.shape[1] < 2:
        raise ValueError(f"image must be at least 2x2 pixels, got {array.shape[:2]}")
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    levels = np.round(array * 255.0)
    if np.abs(array * 255.0 - levels).max(initial=0.0) < 1e-3:  # an 8-bit image stored as floats:
        array = (
            levels / 255.0
        )  # snap float32 rounding away, so every format gives the same proposals
    return np.clip(array, 0.0, 1.0)


def convert_color(image: np.ndarray, space: str) -> np.ndarray:
    """Convert an RGB float image (H, W, 3) in [0, 1] to ``space``, every channel in [0, 1].

    Returns float64 (H, W, C): C = 3 for "rgb", "hsv", "lab" (L / 100, (a + 128) / 255,
    (b + 128) / 255) and "rgi" (normalised r = R / (R + G + B), g, and intensity
    (R + G + B) / 3); C = 1 for "h" (hue) and "i" (intensity).
    """
    if space not in COLOR_SPACES:
        raise ValueError(f"space must be one of {COLOR_SPACES}, got {space!r}")
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(
            f"image must be an RGB array (H, W, 3) in [0, 1], got {getattr(image, 'shape', type(image))}"
        )
    if space == "rgb":
        out = image
    elif space in ("hsv", "h"):
        out = skcolor.rgb2hsv(image)
        out = out[..., :1] if space == "h" else out
    elif space == "lab":
        lab = skcolor.rgb2lab(image)
        out = np.stack(
            [lab[..., 0] / 100.0, (lab[..., 1] + 128.0) / 255.0, (lab[..., 2] + 128.0) / 255.0],
            axis=-1,
        )
    else:
        total = image.sum(axis=-1, keepdims=True)
        intensity = total / 3.0
        if space == "i":
            out = intensity
        else:
            chroma = np.divide(
                image[..., :2],
                total,
                out=np.full(image.shape[:2] + (2,), 1.0 / 3.0),
                where=total > 0,
            )
            out = np.concatenate([chroma, intensity], axis=-1)
    return np.clip(np.asarray(out, dtype=np.float64), 0.0, 1.0)


# --------------------------------------------------------------------------- initial regions


def initial_regions(
    image: np.ndarray, scale: float, sigma: float = DEFAULT_SIGMA, min_size: int = DEFAULT_MIN_SIZE
) -> np.ndarray:
    """Felzenszwalb & Huttenlocher's segmentation of ``image`` (H, W, C) in [0, 1].

    ``scale`` is the paper's ``k`` (larger = fewer, bigger regions; in 0-255 intensity units,
    as skimage's), ``sigma`` the pre-smoothing, ``min_size`` the smallest region in pixels.
    Returns int64 labels (H, W) numbered 0..R-1 without gaps.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3:
        raise ValueError(
            f"image must be an array (H, W, C), got {getattr(image, 'shape', type(image))}"
        )
    if not scale > 0:
        raise ValueError(f"scale (Felzenszwalb's k) must be > 0, got {scale}")
    if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)) or min_size < 1:
        raise ValueError(f"min_size must be a positive int (pixels), got {min_size!r}")
    labels = felzenszwalb(
        image, scale=float(scale), sigma=float(sigma), min_size=int(min_size), channel_axis=-1
    )
    _, labels = np.unique(labels, return_inverse=True)
    return labels.reshape(image.shape[:2]).astype(np.int64)


def _check_labels(labels) -> np.ndarray:
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


def region_sizes(labels: np.ndarray) -> np.ndarray:
    """Pixel count of every region: float64 (R,) for labels (H, W) with ids 0..R-1."""
    labels = _check_labels(labels)
    return np.bincount(labels.ravel()).astype(np.float64)


def region_boxes(labels: np.ndarray) -> np.ndarray:
    """Tight box of every region: float64 (R, 4) ``(x1, y1, x2, y2)``, x2/y2 exclusive."""
    labels = _check_labels(labels)
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
    """Pairs of regions that touch (4-connectivity): int64 (E, 2), each row ``i < j``, sorted, unique."""
    labels = _check_labels(labels)
    first = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
    second = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
    keep = first != second
    low, high = np.minimum(first[keep], second[keep]), np.maximum(first[keep], second[keep])
    base = int(labels.max()) + 1 if labels.size else 1
    codes = np.unique(low.astype(np.int64) * base + high)
    return np.stack([codes // base, codes % base], axis=1).astype(np.int64)


# --------------------------------------------------------------------------- per-pixel bins and histograms


def color_bins(image: np.ndarray, bins: int = COLOR_BINS) -> np.ndarray:
    """The colour bin of every pixel and channel: int64 (H, W, C) in 0..bins-1.

    ``image`` (H, W, C) in [0, 1]; channel value v falls in bin ``min(floor(v * bins), bins - 1)``.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3:
        raise ValueError(
            f"image must be an array (H, W, C) in [0, 1], got {getattr(image, 'shape', type(image))}"
        )
    return np.minimum((np.clip(image, 0.0, 1.0) * bins).astype(np.int64), bins - 1)


def gaussian_derivatives(image: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Rectified gaussian derivatives in 8 orientations: float32 (H, W, C, 8) >= 0.

    For each channel, the derivative along direction theta = 0, 45, ..., 315 degrees is
    ``cos(theta) d/dx + sin(theta) d/dy`` of the gaussian-smoothed channel; its positive
    part is kept (theta and theta + 180 degrees are the two signs of one derivative).
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3:
        raise ValueError(
            f"image must be an array (H, W, C), got {getattr(image, 'shape', type(image))}"
        )
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
    the image, then binned like :func:`color_bins`. Column ``c * 8 + o`` is channel c, orientation o.
    """
    responses = gaussian_derivatives(image, sigma).reshape(image.shape[0], image.shape[1], -1)
    peak = responses.max(axis=(0, 1))
    factor = np.where(peak > 0, bins / np.maximum(peak, 1e-12), 0.0).astype(np.float32)
    responses *= factor
    return np.minimum(responses.astype(np.int64), bins - 1)


def region_histograms(
    labels: np.ndarray, pixel_bins: np.ndarray, bins: int, num_regions: int | None = None
) -> np.ndarray:
    """L1-normalised histograms of all regions at once: float64 (R, D * bins).

    ``pixel_bins`` (H, W, D) holds each pixel's bin (0..bins-1) in each of D descriptors
    (3 colour channels, or 3 x 8 texture orientations); region r's row concatenates the D
    histograms and sums to 1. One ``np.bincount`` over ``(region, descriptor, bin)`` indices.
    """
    labels = _check_labels(labels)
    if pixel_bins.shape[:2] != labels.shape:
        raise ValueError(
            f"pixel_bins must be (H, W, D) with (H, W) = labels.shape {labels.shape}, got {pixel_bins.shape}"
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


# --------------------------------------------------------------------------- the four similarities


def histogram_intersection(hist_a: np.ndarray, hist_b: np.ndarray) -> np.ndarray:
    """``sum_k min(a_k, b_k)`` over the last axis (IJCV eqs. 1-2); broadcasts; in [0, 1] for L1-normalised inputs."""
    return np.minimum(hist_a, hist_b).sum(axis=-1)


def size_similarity(size_a, size_b, image_size: float) -> np.ndarray:
    """``1 - (size_a + size_b) / size(im)`` (IJCV eq. 4): sizes and ``image_size`` in pixels (H * W)."""
    return 1.0 - (np.asarray(size_a, dtype=np.float64) + size_b) / float(image_size)


def union_box(box_a: np.ndarray, box_b: np.ndarray) -> np.ndarray:
    """The tight box around both boxes: ``(min x1, min y1, max x2, max y2)``; shapes (..., 4), broadcasts."""
    box_a, box_b = np.asarray(box_a, dtype=np.float64), np.asarray(box_b, dtype=np.float64)
    out = np.empty(np.broadcast_shapes(box_a.shape, box_b.shape))
    np.minimum(box_a[..., :2], box_b[..., :2], out=out[..., :2])
    np.maximum(box_a[..., 2:], box_b[..., 2:], out=out[..., 2:])
    return out


def fill_similarity(
    box_a: np.ndarray, box_b: np.ndarray, size_a, size_b, image_size: float
) -> np.ndarray:
    """``1 - (size(BB_ab) - size_a - size_b) / size(im)`` (IJCV eq. 5).

    ``BB_ab`` is the tight box around both regions (their union box); boxes (..., 4) xyxy with
    exclusive x2/y2, sizes in pixels; broadcasts.
    """
    box_a, box_b = np.asarray(box_a, dtype=np.float64), np.asarray(box_b, dtype=np.float64)
    width = np.maximum(box_a[..., 2], box_b[..., 2]) - np.minimum(box_a[..., 0], box_b[..., 0])
    height = np.maximum(box_a[..., 3], box_b[..., 3]) - np.minimum(box_a[..., 1], box_b[..., 1])
    return 1.0 - (width * height - size_a - size_b) / float(image_size)


def similarity_weights(measures: str) -> np.ndarray:
    """0/1 weights (colour, texture, size, fill) of a similarity string such as "CTSF" or "TSF"."""
    if not isinstance(measures, str) or not measures or set(measures) - set(SIMILARITY_LETTERS):
        raise ValueError(
            f"similarity must be a non-empty string of the letters {SIMILARITY_LETTERS!r} "
            f"(colour, texture, size, fill), e.g. 'CTSF' or 'TSF'; got {measures!r}"
        )
    return np.array([float(letter in measures) for letter in SIMILARITY_LETTERS])


# --------------------------------------------------------------------------- the region graph and one merge


@dataclass
class RegionGraph:
    """Regions of one hierarchy and who touches whom.

    Region ids are rows: 0..R-1 the initial regions, R, R+1, ... the merged ones in merge
    order. Arrays have room for all 2R - 1 regions; rows ``>= count`` are not used yet.

    size (2R-1,) float64 pixels; box (2R-1, 4) float64 xyxy (exclusive x2/y2);
    ``histograms`` (2R-1, C*25 + C*80) holds each region's colour histogram (the view
    ``color``, (2R-1, C*25)) then its texture histogram (the view ``texture``, (2R-1, C*80)),
    each L1-normalised; neighbours: for each *alive* (not yet merged) region, the set of
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
    """Merge neighbours ``i`` and ``j`` into a new region ``t = graph.count`` (in place); return ``t``.

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


# --------------------------------------------------------------------------- one region as a dict of tensors
#
# The notebook's assignments work on single regions held as dicts of float64 tensors
# (readable, one region at a time); the grouping above works on whole arrays (fast).
# These reference versions give exactly the same numbers as the array code.

REGION_KEYS: tuple[str, ...] = ("id", "size", "box", "color", "texture", "neighbours")


def region_dict(graph: RegionGraph, index: int) -> dict:
    """Region ``index`` of ``graph`` as a dict: id (int), size (float64 scalar tensor), box (4,),
    color (C*25,), texture (C*80,) float64 tensors, neighbours (frozenset of ids)."""
    return {
        "id": int(index),
        "size": torch.tensor(graph.size[index], dtype=torch.float64),
        "box": torch.from_numpy(graph.box[index].copy()),
        "color": torch.from_numpy(graph.color[index].copy()),
        "texture": torch.from_numpy(graph.texture[index].copy()),
        "neighbours": frozenset(graph.neighbours.get(index, ())),
    }


def region_color_histogram(pixels: torch.Tensor) -> torch.Tensor:
    """:func:`color_histogram` for a tensor (N, C) in [0, 1]: (C * 25,) with the pixels' float dtype, sums to 1."""
    if not isinstance(pixels, torch.Tensor) or pixels.ndim != 2 or pixels.shape[0] == 0:
        raise ValueError(
            f"pixels must be a tensor (N, C) with N >= 1, got {getattr(pixels, 'shape', type(pixels))}"
        )
    dtype = pixels.dtype if pixels.is_floating_point() else torch.float32
    histogram = color_histogram(pixels.detach().cpu().double().numpy())
    return torch.from_numpy(histogram).to(dtype=dtype, device=pixels.device)


def region_similarities(
    region_a: dict, region_b: dict, image_shape: tuple[int, int]
) -> torch.Tensor:
    """The four similarities of two regions (IJCV eqs. 1-5): tensor (4,) = colour, texture, size, fill.

    Regions are dicts as :func:`region_dict` gives (size, box xyxy, color and texture
    histograms, as tensors); ``image_shape`` = (H, W), so size(im) = H * W pixels.
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


def merge_fn_from_dicts(merge_dicts) -> callable:
    """Turn ``merge_dicts(region_a, region_b, new_id) -> dict`` into a ``merge_fn(graph, i, j) -> t``
    for :func:`hierarchical_grouping` / :func:`build_hierarchy`.

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
        """int64 (M + 1, R): ``levels[s, r]`` is the region that initial region r belongs to after s merges."""
        current = np.arange(self.num_initial)
        out = np.empty((self.num_steps + 1, self.num_initial), dtype=np.int64)
        out[0] = current
        for step, (i, j, t) in enumerate(self.merges.tolist(), start=1):
            current = np.where((current == i) | (current == j), t, current)
            out[step] = current
        return out

    def labels_at(self, step: int) -> np.ndarray:
        """Region id map (H, W) after ``step`` merges (0 = the initial segmentation)."""
        if not 0 <= step <= self.num_steps:
            raise ValueError(f"step must lie in [0, {self.num_steps}], got {step}")
        return self.levels[step][self.initial_labels]

    def regions_at(self, step: int) -> np.ndarray:
        """Ids of the regions alive after ``step`` merges, sorted: int64 (R - step,)."""
        return np.unique(self.levels[step])

    def proposals(self) -> torch.Tensor:
        """Every region's box, the hierarchy's proposals in creation order: float32 (P, 4) xyxy."""
        return torch.from_numpy(self.boxes.astype(np.float32))


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
    alive = np.zeros(len(graph.size), dtype=bool)
    alive[: graph.count] = True
    pairs = sorted((i, j) for i, touching in graph.neighbours.items() for j in touching if i < j)
    first = np.array([i for i, _ in pairs], dtype=np.int64)
    second = np.array([j for _, j in pairs], dtype=np.int64)
    values0 = pair_similarity(graph, first, second, weights) if pairs else np.zeros(0)
    heap = list(zip((-values0).tolist(), first.tolist(), second.tolist()))
    heapq.heapify(heap)
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
        others = sorted(graph.neighbours.get(t, ()))
        if others:
            others = np.array(others)
            for value, other in zip(
                pair_similarity(graph, t, others, weights).tolist(), others.tolist()
            ):
                heapq.heappush(heap, (-value, other, t) if other < t else (-value, t, other))
    return np.array(merges, dtype=np.int64).reshape(-1, 3), np.array(values, dtype=np.float64)


# --------------------------------------------------------------------------- strategies


@dataclass(frozen=True)
class Strategy:
    """One hierarchical grouping: colour space, Felzenszwalb's k (``scale``), similarity string."""

    color_space: str = "hsv"
    scale: float = 100.0
    measures: str = "CTSF"
    sigma: float = DEFAULT_SIGMA
    min_size: int = DEFAULT_MIN_SIZE

    def __post_init__(self) -> None:
        if self.color_space not in COLOR_SPACES:
            raise ValueError(f"color_space must be one of {COLOR_SPACES}, got {self.color_space!r}")
        if not self.scale > 0:
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
        spaces, ks, measures = (
            ("hsv", "lab", "rgi", "h", "i"),
            scales[:4],
            ("CTSF", "TSF", "F", "S"),
        )
    return tuple(
        Strategy(space, k, measure, sigma, min_size)
        for space in spaces
        for k in ks
        for measure in measures
    )


def region_graph(
    image: np.ndarray, strategy: Strategy, _cache: dict | None = None
) -> tuple[RegionGraph, np.ndarray]:
    """Initial regions of ``image`` (H, W, 3) RGB in [0, 1] and their graph, for one strategy.

    Returns a fresh :class:`RegionGraph` and the initial labels (H, W). ``_cache`` (a dict kept
    for one image) shares the per-pixel bins of a colour space and the segmentation of a
    (colour space, k) between strategies, which then differ only in their similarity.
    """
    cache = {} if _cache is None else _cache
    space_key = ("bins", strategy.color_space)
    if space_key not in cache:
        converted = convert_color(image, strategy.color_space)
        cache[space_key] = (converted, color_bins(converted), texture_bins(converted))
    segment_key = ("graph", strategy.color_space, strategy.scale, strategy.sigma, strategy.min_size)
    if segment_key not in cache:
        converted, colour, texture = cache[space_key]
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
        cache[segment_key] = (graph, labels)
    graph, labels = cache[segment_key]
    return graph.copy(), labels


def build_hierarchy(
    image, strategy: Strategy = Strategy(), merge_fn=merge_regions, _cache: dict | None = None
) -> Hierarchy:
    """Run one strategy on an image (any format :func:`as_hwc_float` accepts): the whole hierarchy.

    ``merge_fn(graph, i, j) -> t`` replaces :func:`merge_regions` (to test your own).
    """
    if not isinstance(strategy, Strategy):
        raise TypeError(f"strategy must be a Strategy, got {type(strategy).__name__}")
    array = image if _cache is not None else as_hwc_float(image)
    graph, labels = region_graph(array, strategy, _cache)
    merges, values = hierarchical_grouping(graph, strategy.measures, merge_fn)
    return Hierarchy(
        labels,
        graph.box[: graph.count].astype(np.float32),
        graph.size[: graph.count].copy(),
        merges,
        values,
        strategy,
    )


# --------------------------------------------------------------------------- ranking and the whole pipeline


def rank_proposals(
    hierarchy_boxes: list[np.ndarray], seed: int = 0, randomize: bool = True
) -> np.ndarray:
    """Combine the boxes of several hierarchies into one ranked list without duplicates (IJCV 4.2).

    ``hierarchy_boxes``: for each hierarchy, its boxes (n_h, 4) in creation order (the last one
    is the whole image). Each box gets position ``p = n_h - index`` (1 = the last created, the
    top of the hierarchy) and value ``v = RND * p`` with RND uniform in [0, 1) (``randomize=False``
    uses ``v = p``: round-robin over hierarchies from the top). Boxes are sorted by v; a box seen
    before (same coordinates) is dropped, keeping its best rank. Returns float32 (P, 4).
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
    """Selective Search box proposals for one image, best ranked first: float32 (P, 4) xyxy pixels.

    ``image``: float tensor (3, H, W) in [0, 1] or uint8/float array (H, W, 3). ``mode`` picks
    the strategies (:func:`strategies`) unless ``strategy_list`` is given; ``seed`` drives the
    pseudo-random ranking (:func:`rank_proposals`); ``max_proposals`` keeps the first ones.
    """
    if max_proposals is not None and (
        isinstance(max_proposals, bool)
        or not isinstance(max_proposals, (int, np.integer))
        or max_proposals < 0
    ):
        raise ValueError(f"max_proposals must be a non-negative int or None, got {max_proposals!r}")
    array = as_hwc_float(image)
    chosen = (
        strategies(mode, scales, min_size, sigma) if strategy_list is None else tuple(strategy_list)
    )
    if not chosen:
        raise ValueError("strategy_list must hold at least one Strategy")
    cache: dict = {}
    boxes = [build_hierarchy(array, strategy, _cache=cache).boxes for strategy in chosen]
    ranked = rank_proposals(boxes, seed=seed, randomize=randomize)
    if max_proposals is not None:
        ranked = ranked[:max_proposals]
    return torch.from_numpy(np.ascontiguousarray(ranked))


# --------------------------------------------------------------------------- OpenCV's implementation


def opencv_status() -> tuple[bool, str]:
    """Whether OpenCV's Selective Search (``cv2.ximgproc.segmentation``) can be used, and why not.

    Returns ``(True, "OpenCV <version> with ximgproc")`` or ``(False, reason)``; the reason names
    the installed OpenCV distributions when ``cv2`` imports but ``ximgproc`` is missing (on
    Colab, e.g., ``opencv-python`` 5 beside ``opencv-contrib-python`` 4.x: the package without
    contrib modules shadows the one with them).
    """
    try:
        import cv2
    except ImportError as error:
        return (
            False,
            f"OpenCV is not installed ({error}); pip install opencv-contrib-python-headless",
        )
    version = getattr(cv2, "__version__", "?")
    segmentation = getattr(getattr(cv2, "ximgproc", None), "segmentation", None)
    if segmentation is not None and hasattr(segmentation, "createSelectiveSearchSegmentation"):
        return True, f"OpenCV {version} with ximgproc"
    try:
        from importlib import metadata

        installed = sorted(
            f"{dist.metadata['Name']} {dist.version}"
            for dist in metadata.distributions()
            if (dist.metadata["Name"] or "").lower().startswith("opencv")
        )
    except Exception:  # pragma: no cover - metadata is best effort
        installed = []
    return False, (
        f"cv2 {version} imports but has no ximgproc (the contrib modules). Installed OpenCV "
        f"packages: {', '.join(installed) or 'unknown'}. When several are installed, the one without "
        "contrib hides the other: keep only opencv-contrib-python(-headless), same version"
    )


_OPENCV_MEASURES = {
    "single": ("CTSF",),
    "fast": ("CTSF", "TSF"),
    "quality": ("CTSF", "TSF", "F", "S"),
}


def _opencv_images(bgr: np.ndarray, mode: str) -> list[np.ndarray]:
    """The colour spaces OpenCV's switchTo* functions use: HSV (single); HSV, Lab (fast); + gray, hue, rgI (quality)."""
    import cv2

    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    images = [hsv]
    if mode != "single":
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2Lab))
    if mode == "quality":
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        images += [
            gray,
            np.ascontiguousarray(hsv[..., 0]),
            np.ascontiguousarray(np.dstack([bgr[..., 2], bgr[..., 1], gray])),
        ]
    return images


def _opencv_strategy(measures: str):
    import cv2

    seg = cv2.ximgproc.segmentation
    make = {
        "C": seg.createSelectiveSearchSegmentationStrategyColor,
        "T": seg.createSelectiveSearchSegmentationStrategyTexture,
        "S": seg.createSelectiveSearchSegmentationStrategySize,
        "F": seg.createSelectiveSearchSegmentationStrategyFill,
    }
    parts = [make[letter]() for letter in measures]
    return (
        parts[0]
        if len(parts) == 1
        else seg.createSelectiveSearchSegmentationStrategyMultiple(*parts)
    )


def opencv_selective_search(
    image,
    mode: str = "fast",
    scales: tuple[float, ...] | None = None,
    sigma: float | None = None,
    min_size: int | None = None,
    max_proposals: int | None = None,
) -> torch.Tensor:
    """OpenCV's Selective Search on one image: float32 (P, 4) xyxy pixels (x2/y2 exclusive), OpenCV's order.

    With ``scales``, ``sigma`` and ``min_size`` all None, OpenCV's own set-up for ``mode``
    (``switchToSingleStrategy``, ``switchToSelectiveSearchFast``, ``switchToSelectiveSearchQuality``):
    k = 200 (single), 150, 300, 450 (fast), 150 ... 750 (quality), sigma 0.8, and its graph
    segmentation's default minimum region size of 100 pixels -- tuned for ~500 px photographs.
    Giving any of them builds the same colour spaces and similarity combinations with those
    parameters instead (missing ones: ``strategies(mode)``'s k values, sigma 0.5, min_size 10, as ours).
    OpenCV ranks each hierarchy's *first* (smallest) regions first, the reverse of the paper.
    Raises ``ImportError`` with :func:`opencv_status`'s reason when OpenCV's contrib modules are missing.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    available, reason = opencv_status()
    if not available:
        raise ImportError(reason)
    import cv2

    bgr = np.ascontiguousarray((as_hwc_float(image) * 255.0 + 0.5).astype(np.uint8)[..., ::-1])
    seg = cv2.ximgproc.segmentation
    search = seg.createSelectiveSearchSegmentation()
    if scales is None and sigma is None and min_size is None:
        search.setBaseImage(bgr)
        {
            "single": search.switchToSingleStrategy,
            "fast": search.switchToSelectiveSearchFast,
            "quality": search.switchToSelectiveSearchQuality,
        }[mode]()
    else:
        ks = sorted({s.scale for s in strategies(mode)}) if scales is None else list(scales)
        sigma = 0.5 if sigma is None else float(sigma)
        min_size = 10 if min_size is None else int(min_size)
        for converted in _opencv_images(bgr, mode):
            search.addImage(converted)
        for k in ks:
            search.addGraphSegmentation(seg.createGraphSegmentation(sigma, float(k), min_size))
        for measures in _OPENCV_MEASURES[mode]:
            search.addStrategy(_opencv_strategy(measures))
    rects = np.asarray(search.process(), dtype=np.float32).reshape(-1, 4)
    if max_proposals is not None:
        rects = rects[:max_proposals]
    boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
    return torch.from_numpy(np.ascontiguousarray(boxes))
