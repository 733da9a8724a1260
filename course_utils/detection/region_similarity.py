"""The four similarities of two regions (IJCV 2013, eqs. 1-6), on NumPy arrays that broadcast.

* colour and texture: :func:`histogram_intersection` of the regions' L1-normalised histograms;
* size: :func:`size_similarity`, high for two small regions (merge small ones first);
* fill: :func:`fill_similarity`, high when the regions fill their union box (:func:`union_box`);
* :func:`similarity_weights`: the 0/1 weights of a similarity string such as ``"CTSF"``.

Sizes and ``image_size`` are pixel counts (``image_size`` = H * W); boxes are
``(x1, y1, x2, y2)`` pixels with exclusive x2/y2. Every similarity lies in [0, 1].
"""

from __future__ import annotations

import numpy as np

#: The letters of a similarity string: colour, texture, size, fill.
SIMILARITY_LETTERS = "CTSF"


def histogram_intersection(hist_a: np.ndarray, hist_b: np.ndarray) -> np.ndarray:
    """``sum_k min(a_k, b_k)`` over the last axis (IJCV eqs. 1-2); broadcasts.

    In [0, 1] for L1-normalised histograms (float (..., D) -> float64 (...)).
    """
    return np.minimum(hist_a, hist_b).sum(axis=-1)


def size_similarity(size_a, size_b, image_size: float) -> np.ndarray:
    """``1 - (size_a + size_b) / size(im)`` (IJCV eq. 4): sizes and ``image_size`` in pixels."""
    return 1.0 - (np.asarray(size_a, dtype=np.float64) + size_b) / float(image_size)


def union_box(box_a: np.ndarray, box_b: np.ndarray) -> np.ndarray:
    """The tight box around both boxes: ``(min x1, min y1, max x2, max y2)``.

    Boxes (..., 4) xyxy, broadcast; returns float64.
    """
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
    """0/1 weights float64 (4,) (colour, texture, size, fill) of a string like "CTSF" or "TSF"."""
    if not isinstance(measures, str) or not measures or set(measures) - set(SIMILARITY_LETTERS):
        raise ValueError(
            f"similarity must be a non-empty string of the letters {SIMILARITY_LETTERS!r} "
            f"(colour, texture, size, fill), e.g. 'CTSF' or 'TSF'; got {measures!r}"
        )
    return np.array([float(letter in measures) for letter in SIMILARITY_LETTERS])
