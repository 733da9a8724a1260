"""OpenCV's Selective Search (``cv2.ximgproc.segmentation``, in opencv-contrib), for comparison.

* :func:`opencv_status`: whether OpenCV's contrib modules can be used, and why not (on Colab,
  e.g., ``opencv-python`` shadows ``opencv-contrib-python``);
* :func:`opencv_selective_search`: its proposals for one image, as float32 (P, 4)
  ``(x1, y1, x2, y2)`` pixels with exclusive x2/y2 (the course's convention), in OpenCV's order.

OpenCV is imported only inside these functions, never when this module is imported: it is not
a dependency of the course.
"""

from __future__ import annotations

import numpy as np
import torch

from course_utils.core import validate
from course_utils.detection.graph_segmentation import DEFAULT_MIN_SIZE, DEFAULT_SIGMA, as_hwc_float
from course_utils.detection.selective_search import MODES, strategies


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
        f"packages: {', '.join(installed) or 'unknown'}. When several are installed, the one "
        "without contrib hides the other: keep only opencv-contrib-python(-headless), same version"
    )


_OPENCV_MEASURES = {
    "single": ("CTSF",),
    "fast": ("CTSF", "TSF"),
    "quality": ("CTSF", "TSF", "F", "S"),
}


def _opencv_images(bgr: np.ndarray, mode: str) -> list[np.ndarray]:
    """The images of the colour spaces OpenCV's switchTo* functions use, from uint8 BGR (H, W, 3).

    HSV (single); HSV, Lab (fast); HSV, Lab, gray, hue, rgI (quality).
    """
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
    """OpenCV's similarity strategy of a similarity string such as "CTSF" (equal weights)."""
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


def _use_opencv_settings(search, bgr: np.ndarray, mode: str) -> None:
    """OpenCV's own set-up of ``mode`` (its k values, sigma 0.8, min_size 100) on ``search``."""
    search.setBaseImage(bgr)
    {
        "single": search.switchToSingleStrategy,
        "fast": search.switchToSelectiveSearchFast,
        "quality": search.switchToSelectiveSearchQuality,
    }[mode]()


def _use_our_settings(
    search, bgr: np.ndarray, mode: str, scales: list[float], sigma: float, min_size: int
) -> None:
    """``mode``'s colour spaces and similarities on ``search``, with our segmentation settings."""
    import cv2

    seg = cv2.ximgproc.segmentation
    for converted in _opencv_images(bgr, mode):
        search.addImage(converted)
    for k in scales:
        search.addGraphSegmentation(seg.createGraphSegmentation(sigma, float(k), min_size))
    for measures in _OPENCV_MEASURES[mode]:
        search.addStrategy(_opencv_strategy(measures))


def opencv_selective_search(
    image,
    mode: str = "fast",
    scales: tuple[float, ...] | None = None,
    sigma: float | None = None,
    min_size: int | None = None,
    max_proposals: int | None = None,
) -> torch.Tensor:
    """OpenCV's Selective Search on one image: float32 (P, 4) xyxy pixels (x2/y2 exclusive).

    ``image``: any format ``as_hwc_float`` accepts. With ``scales``, ``sigma`` and ``min_size``
    all None, OpenCV's own set-up for ``mode`` (``switchToSingleStrategy``,
    ``switchToSelectiveSearchFast``, ``switchToSelectiveSearchQuality``): k = 200 (single),
    150, 300, 450 (fast), 150 ... 750 (quality), sigma 0.8, and its graph segmentation's default
    minimum region size of 100 pixels -- tuned for ~500 px photographs. Giving any of them
    builds the same colour spaces and similarity combinations with those parameters instead
    (missing ones: ``strategies(mode)``'s k values, sigma 0.5, min_size 10, as ours).
    Boxes come in OpenCV's order: it ranks each hierarchy's *first* (smallest) regions first,
    the reverse of the paper; ``max_proposals`` keeps the first ones. Raises ``ImportError``
    with :func:`opencv_status`'s reason when OpenCV's contrib modules are missing.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    max_proposals = validate.check_int(max_proposals, "max_proposals", minimum=0, allow_none=True)
    available, reason = opencv_status()
    if not available:
        raise ImportError(reason)
    import cv2

    bgr = np.ascontiguousarray((as_hwc_float(image) * 255.0 + 0.5).astype(np.uint8)[..., ::-1])
    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    if scales is None and sigma is None and min_size is None:
        _use_opencv_settings(search, bgr, mode)
    else:
        _use_our_settings(
            search,
            bgr,
            mode,
            sorted({s.scale for s in strategies(mode)}) if scales is None else list(scales),
            DEFAULT_SIGMA if sigma is None else float(sigma),
            DEFAULT_MIN_SIZE if min_size is None else int(min_size),
        )
    rects = np.asarray(search.process(), dtype=np.float32).reshape(-1, 4)
    if max_proposals is not None:
        rects = rects[:max_proposals]
    boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
    return torch.from_numpy(np.ascontiguousarray(boxes))
