"""Box proposals for the scenes: quality measures, naive baselines and an on-disk cache.

Quality (IJCV 2013, section 5.1): for each ground-truth box, its *best overlap* is the
highest IoU any proposal reaches. Then

* recall at IoU >= t: the fraction of ground-truth boxes whose best overlap is >= t
  (t = 0.5, the Pascal VOC criterion);
* ABO of a class: the mean best overlap of that class's ground-truth boxes;
  MABO: the mean of the ABOs over classes.

Both depend on how many proposals are kept: :func:`proposal_quality` gives them for the
first ``n`` proposals of each image, for several ``n`` (a curve).

Cache: :func:`load_proposals` returns Selective Search proposals for the first
``num_images`` scenes of a split, computing only what is missing and storing it under
``course_utils.core.paths.data_dir() / "proposals"``, one file per (split, scene configuration,
parameters), written atomically. Notebooks 03 (R-CNN) and 04 (Fast R-CNN) use it.

Boxes are float32 ``(x1, y1, x2, y2)`` pixels with exclusive x2/y2, as the scenes' ground truth.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou
from tqdm.auto import tqdm

from course_utils.core import validate
from course_utils.core.paths import data_dir
from course_utils.core.tensors import plain
from course_utils.data.datasets import SceneDataset
from course_utils.data.scenes import SPLITS, SceneConfig, config_hash
from course_utils.detection.selective_search import MODES, selective_search

#: Bumped whenever the proposal algorithm's output changes, so old cache files are not reused.
PROPOSALS_VERSION = 1

#: Parameters used when ``load_proposals(params=None)``: Selective Search "fast" (8 hierarchies).
DEFAULT_PARAMS: dict = {"mode": "fast", "seed": 0}

_ALLOWED_PARAMS = {"mode", "seed", "scales", "min_size", "sigma", "randomize"}


# --------------------------------------------------------------------------- quality


def _as_boxes(boxes, name: str) -> torch.Tensor:
    """Boxes (N, 4) xyxy as checked float32 on the CPU.

    Accepts a tensor, a tv_tensor or an array; empty boxes may be shaped (0,).
    """
    if isinstance(boxes, np.ndarray):
        boxes = torch.from_numpy(boxes)
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(f"{name} must be a tensor (N, 4) xyxy, got {type(boxes).__name__}")
    boxes = plain(boxes).detach().cpu()
    if boxes.ndim == 1 and boxes.numel() == 0:
        boxes = boxes.reshape(0, 4)
    return validate.check_boxes(boxes.float(), name)


def best_overlaps(proposals, gt_boxes) -> torch.Tensor:
    """Best IoU of each ground-truth box with any proposal: float32 (G,), 0 without proposals.

    proposals (P, 4), gt_boxes (G, 4): float xyxy pixels.
    """
    proposals, gt_boxes = _as_boxes(proposals, "proposals"), _as_boxes(gt_boxes, "gt_boxes")
    if len(proposals) == 0 or len(gt_boxes) == 0:
        return torch.zeros(len(gt_boxes))
    return box_iou(gt_boxes, proposals).max(dim=1).values


def _cumulative_best(
    proposals: torch.Tensor, gt_boxes: torch.Tensor, counts: np.ndarray
) -> np.ndarray:
    """(K, G): best overlap of each gt box with the first counts[k] proposals."""
    out = np.zeros((len(counts), len(gt_boxes)))
    if len(proposals) == 0 or len(gt_boxes) == 0:
        return out
    running = np.maximum.accumulate(box_iou(proposals, gt_boxes).numpy(), axis=0)  # (P, G)
    usable = counts > 0
    rows = np.minimum(counts[usable], len(proposals)) - 1
    out[usable] = running[rows]
    return out


def _check_quality_inputs(
    proposals: Sequence,
    gt_boxes: Sequence,
    gt_labels: Sequence | None,
    counts: Sequence[int],
    iou_threshold: float,
) -> np.ndarray:
    """The checks of :func:`proposal_quality` (one entry per image each); ``counts`` as int64."""
    if len(proposals) != len(gt_boxes):
        raise ValueError(
            "proposals and gt_boxes must have one entry per image, "
            f"got {len(proposals)} and {len(gt_boxes)}"
        )
    if gt_labels is not None and len(gt_labels) != len(gt_boxes):
        raise ValueError(
            "gt_labels must have one entry per image, "
            f"got {len(gt_labels)} for {len(gt_boxes)} images"
        )
    counts_array = np.asarray(list(counts), dtype=np.int64)
    if counts_array.ndim != 1 or len(counts_array) == 0 or (counts_array < 0).any():
        raise ValueError(f"counts must be a non-empty list of non-negative ints, got {counts}")
    if validate.check_number(iou_threshold, "iou_threshold", maximum=1.0) <= 0.0:
        raise ValueError(f"iou_threshold must lie in (0, 1], got {iou_threshold}")
    return counts_array


def proposal_quality(
    proposals: Sequence,
    gt_boxes: Sequence,
    gt_labels: Sequence | None = None,
    counts: Sequence[int] = (10, 30, 100, 300, 1000),
    iou_threshold: float = 0.5,
) -> dict:
    """Recall, ABO and MABO of ranked proposals, keeping the first ``n`` per image, n in ``counts``.

    ``proposals``: per image a (P_i, 4) xyxy tensor, best first; ``gt_boxes``: per image (G_i, 4);
    ``gt_labels``: per image (G_i,) class ids (``None``: one class, MABO = ABO).
    Returns a dict of numpy arrays over counts: ``counts`` (K,), ``recall`` (K,) (fraction of
    ground-truth boxes with best overlap >= ``iou_threshold``), ``abo`` (K,) (mean best overlap of
    all boxes), ``mabo`` (K,) (mean over classes of each class's ABO), ``mean_proposals`` (K,)
    (proposals actually used per image: an image may have fewer than n), and
    ``best_overlaps`` (K, G) for all ground-truth boxes of all images in order.
    """
    counts_array = _check_quality_inputs(proposals, gt_boxes, gt_labels, counts, iou_threshold)
    overlaps, labels, used = [], [], np.zeros(len(counts_array))
    for index, (boxes, truth) in enumerate(zip(proposals, gt_boxes)):
        boxes = _as_boxes(boxes, f"proposals[{index}]")
        truth = _as_boxes(truth, f"gt_boxes[{index}]")
        overlaps.append(_cumulative_best(boxes, truth, counts_array))
        used += np.minimum(counts_array, len(boxes))
        if gt_labels is not None:
            image_labels = torch.as_tensor(gt_labels[index]).reshape(-1)
            validate.check_labels(image_labels, len(truth), f"gt_labels[{index}]")
            labels.append(image_labels.cpu().numpy())
    best = np.concatenate(overlaps, axis=1) if overlaps else np.zeros((len(counts_array), 0))
    classes = (
        np.concatenate(labels)
        if gt_labels is not None and labels
        else np.zeros(best.shape[1], np.int64)
    )
    if best.shape[1] == 0:
        raise ValueError("there is no ground-truth box: recall and MABO are undefined")
    per_class = [best[:, classes == label].mean(axis=1) for label in np.unique(classes)]
    return {
        "counts": counts_array,
        "recall": (best >= iou_threshold).mean(axis=1),
        "abo": best.mean(axis=1),
        "mabo": np.mean(per_class, axis=0),
        "mean_proposals": used / max(len(proposals), 1),
        "best_overlaps": best,
    }


# --------------------------------------------------------------------------- naive baselines


def random_proposals(
    num: int,
    canvas_size: tuple[int, int],
    min_side: float = 6.0,
    max_aspect: float = 2.0,
    seed: int = 0,
) -> torch.Tensor:
    """``num`` random boxes inside an (H, W) image: float32 (num, 4) xyxy pixels, integer corners.

    Side length log-uniform in [min_side, image side], aspect ratio log-uniform in
    [1/max_aspect, max_aspect], position uniform: a baseline that knows nothing about the image.
    """
    num = validate.check_int(num, "num", minimum=0)
    height, width = canvas_size
    validate.check_number(min_side, "min_side", minimum=1, maximum=min(height, width))
    rng = np.random.default_rng(seed)
    side = np.exp(rng.uniform(np.log(min_side), np.log(max(height, width)), num))
    aspect = np.exp(rng.uniform(-np.log(max_aspect), np.log(max_aspect), num))
    box_w = np.clip(np.round(side * np.sqrt(aspect)), 1, width)
    box_h = np.clip(np.round(side / np.sqrt(aspect)), 1, height)
    x1 = np.floor(rng.uniform(0, 1, num) * (width - box_w + 1))
    y1 = np.floor(rng.uniform(0, 1, num) * (height - box_h + 1))
    return torch.from_numpy(np.stack([x1, y1, x1 + box_w, y1 + box_h], axis=1).astype(np.float32))


def sliding_window_proposals(
    canvas_size: tuple[int, int],
    sizes: Sequence[int] = (16, 32, 64, 128),
    stride_fraction: float = 0.5,
) -> torch.Tensor:
    """Square windows of each size with stride ``size * stride_fraction``: float32 (N, 4) xyxy.

    Ordered from the largest windows to the smallest (coarse first), clipped to the image.
    """
    height, width = canvas_size
    if validate.check_number(stride_fraction, "stride_fraction", maximum=1.0) <= 0:
        raise ValueError(f"stride_fraction must lie in (0, 1], got {stride_fraction}")
    boxes = []
    for size in sorted(sizes, reverse=True):
        stride = max(1, int(round(size * stride_fraction)))
        xs = np.arange(0, max(width - size, 0) + 1, stride)
        ys = np.arange(0, max(height - size, 0) + 1, stride)
        grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
        corner = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)
        boxes.append(np.concatenate([corner, np.minimum(corner + size, [width, height])], axis=1))
    return torch.from_numpy(np.concatenate(boxes).astype(np.float32))


# --------------------------------------------------------------------------- the cache


def normalize_params(params: dict | None = None) -> dict:
    """Selective Search keyword arguments for the cache: :data:`DEFAULT_PARAMS` with ``params``.

    Allowed keys: mode ("single", "fast", "quality"), seed, scales (tuple of k), min_size, sigma,
    randomize (see :func:`course_utils.detection.selective_search.selective_search`).
    """
    if params is not None and not isinstance(params, dict):
        raise TypeError(
            f"params must be a dict of selective_search arguments, got {type(params).__name__}"
        )
    merged = dict(DEFAULT_PARAMS, **(params or {}))
    unknown = set(merged) - _ALLOWED_PARAMS
    if unknown:
        raise ValueError(
            f"unknown proposal parameters {sorted(unknown)}; allowed: {sorted(_ALLOWED_PARAMS)}"
        )
    if merged["mode"] not in MODES:
        raise ValueError(f"params['mode'] must be one of {MODES}, got {merged['mode']!r}")
    if merged.get("scales") is not None:
        merged["scales"] = [float(k) for k in merged["scales"]]
    return merged


def params_key(params: dict | None = None) -> str:
    """A short hex digest naming the proposals of ``params`` (and the algorithm's version)."""
    text = json.dumps({"version": PROPOSALS_VERSION, **normalize_params(params)}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def cache_path(split: str, params: dict | None = None, config: SceneConfig = SceneConfig()) -> Path:
    """The cache file of a split and parameters, created folder included.

    ``data_dir()/proposals/<split>-<scene config hash>-<params hash>.pt``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    folder = data_dir() / "proposals"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{split}-{config_hash(config)}-{params_key(params)}.pt"


def _read_cache(path: Path, params: dict) -> dict[int, torch.Tensor]:
    """The cached boxes by image index; an unreadable or foreign file warns and counts as empty."""
    if not path.exists():
        return {}
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(stored, dict) or stored.get("params") != json.dumps(
            params, sort_keys=True
        ):
            raise ValueError("the file was written for other parameters")
        boxes = stored["boxes"]
        if not isinstance(boxes, dict) or not all(
            isinstance(v, torch.Tensor) and v.ndim == 2 and v.shape[1] == 4 for v in boxes.values()
        ):
            raise ValueError("the boxes are not (P, 4) tensors")
        return {int(index): value for index, value in boxes.items()}
    except Exception as error:  # a truncated or corrupt file: recompute
        warnings.warn(
            f"proposal cache {path} is unreadable ({type(error).__name__}: {error}); "
            "recomputing it",
            stacklevel=3,
        )
        return {}


def _write_cache(path: Path, params: dict, boxes: dict[int, torch.Tensor]) -> None:
    """Write atomically: a temporary file in the same folder, then ``os.replace``."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    os.close(handle)
    try:
        torch.save(
            {
                "params": json.dumps(params, sort_keys=True),
                "version": PROPOSALS_VERSION,
                "boxes": boxes,
            },
            tmp,
        )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _compute(image: np.ndarray, params: dict) -> torch.Tensor:
    """Selective Search proposals of one uint8 image (H, W, 3) as int16 (P, 4) xyxy pixels."""
    scales = tuple(params["scales"]) if params.get("scales") is not None else None
    kwargs = {key: params[key] for key in ("min_size", "sigma", "randomize") if key in params}
    boxes = selective_search(
        image, mode=params["mode"], seed=params["seed"], scales=scales, **kwargs
    )
    return boxes.round().to(torch.int16)


def _scene_images(split: str, num_images: int, config: SceneConfig):
    """``image(i)`` -> uint8 (H, W, 3) scene i of the split, read from the scenes' cache."""
    dataset = SceneDataset(split, num_images, config, progress=False)
    return lambda index: dataset.scene(index).image


def load_proposals(
    split: str,
    num_images: int,
    params: dict | None = None,
    max_proposals: int | None = None,
    config: SceneConfig = SceneConfig(),
    progress: bool = True,
) -> list[torch.Tensor]:
    """Selective Search proposals of images ``0..num_images-1`` of a scenes split, best first.

    Returns a list of ``num_images`` float32 tensors (P_i, 4) xyxy pixels (x2/y2 exclusive, as
    the scenes' boxes), at most ``max_proposals`` each. Image i is
    ``generate_scene(scene_seed(split, i), config)``, item i of
    ``SceneDataset(split, num_images, config)``. Proposals missing from the cache
    (:func:`cache_path`) are computed (with a progress bar) and the cache is rewritten
    atomically; a corrupt cache file is recomputed with a warning. ``params`` are
    ``selective_search`` arguments (:func:`normalize_params`); ``max_proposals`` is applied on
    loading, so one cache serves every count.
    """
    num_images = validate.check_int(num_images, "num_images", minimum=0)
    max_proposals = validate.check_int(max_proposals, "max_proposals", allow_none=True)
    params = normalize_params(params)
    path = cache_path(split, params, config)
    cached = _read_cache(path, params)
    missing = [index for index in range(num_images) if index not in cached]
    if missing:
        images = _scene_images(split, num_images, config)
        for index in tqdm(
            missing, desc=f"Selective Search ({split})", disable=not progress or len(missing) < 2
        ):
            cached[index] = _compute(images(index), params)
        # Keep what another process added meanwhile.
        cached = {**_read_cache(path, params), **cached}
        _write_cache(path, params, cached)
    return [cached[index][:max_proposals].float() for index in range(num_images)]


def save_proposals(
    split: str,
    proposals: Sequence[torch.Tensor],
    params: dict | None = None,
    config: SceneConfig = SceneConfig(),
) -> Path:
    """Store proposals computed elsewhere (e.g. in notebook 02) as images ``0..len-1`` of the cache.

    ``proposals[i]``: float (P_i, 4) xyxy pixel boxes of image i, all of them (not truncated),
    computed with ``selective_search(image, **params)``; they must be integer pixel coordinates,
    as Selective Search gives. Entries already cached for other images are kept. Returns the
    cache file.
    """
    params = normalize_params(params)
    boxes = {}
    for index, value in enumerate(proposals):
        value = _as_boxes(value, f"proposals[{index}]")
        if not torch.equal(value, value.round()):
            raise ValueError(
                f"proposals[{index}] must hold integer pixel coordinates, as Selective Search gives"
            )
        boxes[index] = value.to(torch.int16)
    path = cache_path(split, params, config)
    _write_cache(path, params, {**_read_cache(path, params), **boxes})
    return path


def clear_proposal_cache(split: str | None = None) -> int:
    """Delete cached proposal files (of one split, or all); returns how many were deleted."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    folder = data_dir() / "proposals"
    if not folder.exists():
        return 0
    files = list(folder.glob(f"{split or '*'}-*.pt"))
    for file in files:
        file.unlink()
    return len(files)
