"""Selective Search's starting point: an image, one of its colour spaces, its initial regions.

Felzenszwalb & Huttenlocher, "Efficient graph-based image segmentation", IJCV 2004, as
``skimage.segmentation.felzenszwalb`` implements it (``scale`` is the paper's ``k``), run on the
image in one colour space (IJCV 2013, section 3.1 and 4.1):

* :func:`as_hwc_float`: any image format the course uses -> float64 (H, W, 3) RGB in [0, 1];
* :func:`convert_color`: RGB -> one of :data:`COLOR_SPACES`, every channel in [0, 1];
* :func:`initial_regions`: the over-segmentation, int64 region ids (H, W) numbered 0..R-1.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage import color as skcolor
from skimage.segmentation import felzenszwalb

from course_utils.core import validate

#: Colour spaces :func:`convert_color` knows; "h" (hue) and "i" (intensity) have one channel.
COLOR_SPACES: tuple[str, ...] = ("rgb", "hsv", "lab", "rgi", "h", "i")
#: Felzenszwalb's pre-smoothing. The paper uses 0.8 on ~500 x 375 photographs; on the 128 x 128
#: scenes, whose objects have hard 1-pixel edges and can be 10 px small, 0.8 blurs thin strips
#: into separate regions and costs about 0.1 MABO (measured in notebook 02's development), so 0.5.
DEFAULT_SIGMA = 0.5
#: Smallest initial region in pixels (the paper's code uses k pixels; our smallest objects have
#: about 16 visible pixels).
DEFAULT_MIN_SIZE = 10


def _shape_text(value) -> object:
    return getattr(value, "shape", type(value))


def _array_from_tensor(image: torch.Tensor) -> np.ndarray:
    """A float tensor (3, H, W) in [0, 1] (checked) as a float64 array (H, W, 3)."""
    image = validate.check_image(image.detach().cpu().float())
    return image.permute(1, 2, 0).numpy().astype(np.float64)


def _array_from_numpy(image: np.ndarray) -> np.ndarray:
    """A uint8 or float array (H, W, 3) or (H, W, 1) as float64 in [0, 1] (not yet clipped)."""
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(f"image array must be (H, W, 3) (or (H, W, 1)), got shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"image array must be uint8 or float in [0, 1], got dtype {image.dtype}")
    array = image.astype(np.float64)
    if array.size and (array.min() < -1e-3 or array.max() > 1 + 1e-3):
        raise ValueError(
            "float image arrays must lie in [0, 1], "
            f"got range [{array.min():.3g}, {array.max():.3g}]"
        )
    return array


def as_hwc_float(image) -> np.ndarray:
    """An image as a float64 array (H, W, 3) in [0, 1].

    Accepts a float tensor (3, H, W) in [0, 1] (the course's convention, checked by
    ``course_utils.core.validate.check_image``), a uint8 array (H, W, 3) (scikit-image, PIL) or a
    float array (H, W, 3) in [0, 1]. A one-channel image is repeated to three channels. Float
    values that are 8-bit levels (k / 255 up to float32 rounding) are snapped to k / 255 exactly,
    so a uint8 image and its float tensor give the same proposals.
    """
    if isinstance(image, torch.Tensor):
        array = _array_from_tensor(image)
    elif isinstance(image, np.ndarray):
        array = _array_from_numpy(image)
    else:
        raise TypeError(
            "image must be a float tensor (3, H, W) or an array (H, W, 3), "
            f"got {type(image).__name__}"
        )
    if array.shape[0] < 2 or array.shape[1] < 2:
        raise ValueError(f"image must be at least 2x2 pixels, got {array.shape[:2]}")
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    levels = np.round(array * 255.0)
    # An 8-bit image stored as floats: snap float32 rounding away, so that every format gives
    # the same proposals.
    if np.abs(array * 255.0 - levels).max(initial=0.0) < 1e-3:
        array = levels / 255.0
    return np.clip(array, 0.0, 1.0)


def _rgi(image: np.ndarray, space: str) -> np.ndarray:
    """Intensity (R + G + B) / 3 ("i"), or normalised r, g and intensity ("rgi").

    float64 (H, W, 3) RGB -> (H, W, 1) or (H, W, 3); a black pixel has r = g = 1/3.
    """
    total = image.sum(axis=-1, keepdims=True)
    intensity = total / 3.0
    if space == "i":
        return intensity
    chroma = np.divide(
        image[..., :2],
        total,
        out=np.full(image.shape[:2] + (2,), 1.0 / 3.0),
        where=total > 0,
    )
    return np.concatenate([chroma, intensity], axis=-1)


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
            f"image must be an RGB array (H, W, 3) in [0, 1], got {_shape_text(image)}"
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
        out = _rgi(image, space)
    return np.clip(np.asarray(out, dtype=np.float64), 0.0, 1.0)


def initial_regions(
    image: np.ndarray, scale: float, sigma: float = DEFAULT_SIGMA, min_size: int = DEFAULT_MIN_SIZE
) -> np.ndarray:
    """Felzenszwalb & Huttenlocher's segmentation of ``image`` (H, W, C) in [0, 1].

    ``scale`` is the paper's ``k`` (larger = fewer, bigger regions; in 0-255 intensity units,
    as skimage's), ``sigma`` the pre-smoothing, ``min_size`` the smallest region in pixels.
    Returns int64 labels (H, W) numbered 0..R-1 without gaps.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3:
        raise ValueError(f"image must be an array (H, W, C), got {_shape_text(image)}")
    scale = validate.check_number(scale, "scale (Felzenszwalb's k)")
    if scale <= 0:
        raise ValueError(f"scale (Felzenszwalb's k) must be > 0, got {scale}")
    min_size = validate.check_int(min_size, "min_size (pixels)", minimum=1)
    sigma = validate.check_number(sigma, "sigma", minimum=0.0)
    labels = felzenszwalb(image, scale=scale, sigma=sigma, min_size=min_size, channel_axis=-1)
    _, labels = np.unique(labels, return_inverse=True)
    return labels.reshape(image.shape[:2]).astype(np.int64)
