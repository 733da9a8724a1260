"""Detection and instance segmentation scores: COCO AP and AR, computed by pycocotools.

:func:`detection_ap` builds COCO objects in memory and runs pycocotools' ``COCOeval``
itself, so the numbers are exactly the COCO benchmark's (AP = mean over IoU
0.50:0.05:0.95 of the 101-point interpolated precision). :func:`evaluate_detector` runs a
torchvision-style detector over a dataset and scores it.

Predictions and targets are one dict per image, boxes float (N, 4) ``(x1, y1, x2, y2)`` in
absolute pixels, labels int64 (N,) 1..K; images are matched by position.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch.utils.data import DataLoader

from course_utils.core.device import loader_kwargs, pick_device
from course_utils.core.tensors import plain
from course_utils.core.validate import (
    check_boxes,
    check_int,
    check_labels,
    check_number,
    check_target,
)
from course_utils.data.datasets import detection_collate
from course_utils.data.scenes import SceneConfig

__all__ = ["COCO_METRICS", "detection_ap", "evaluate_detector", "scene_size_ap"]

#: The names of ``COCOeval.stats``, in order.
COCO_METRICS = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)


def _cpu(value):
    """A detached CPU tensor without the tv_tensor wrapper; anything else is returned as is."""
    return plain(value).detach().cpu() if isinstance(value, torch.Tensor) else value


def _canvas_size(target: Mapping) -> tuple[int, int] | None:
    """(H, W) of a target's image, from BoundingBoxes.canvas_size or the masks' shape."""
    size = getattr(target["boxes"], "canvas_size", None)
    if size is not None:
        return (int(size[0]), int(size[1]))
    masks = target.get("masks")
    if isinstance(masks, torch.Tensor) and masks.ndim == 3:
        return (int(masks.shape[-2]), int(masks.shape[-1]))
    return None


def _prediction_masks(masks, num: int, canvas_size, name: str) -> torch.Tensor:
    """Predicted masks (N, H, W) or (N, 1, H, W), probabilities or bool, as bool (N, H, W).

    Probabilities are cut at 0.5 (``> 0.5``); the masks must be the image's ``canvas_size``.
    """
    if not isinstance(masks, torch.Tensor):
        raise TypeError(
            f"{name} must be a tensor (N, H, W) or (N, 1, H, W), got {type(masks).__name__}"
        )
    masks = _cpu(masks)
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.ndim != 3 or masks.shape[0] != num:
        raise ValueError(
            f"{name} must have shape ({num}, H, W) or ({num}, 1, H, W), got {tuple(masks.shape)}"
        )
    if canvas_size is not None and tuple(masks.shape[-2:]) != tuple(canvas_size):
        raise ValueError(
            f"{name} must be {tuple(canvas_size)} like the image, got {tuple(masks.shape[-2:])}"
        )
    return masks if masks.dtype == torch.bool else masks.float() > 0.5


def _check_prediction(prediction, index: int, iou_type: str, canvas_size) -> dict:
    """Validated CPU copy of one prediction dict: boxes float (N, 4) xyxy, scores float (N,),
    labels int (N,) and, for "segm", masks bool (N, H, W)."""
    name = f"predictions[{index}]"
    if not isinstance(prediction, Mapping):
        raise TypeError(
            f"{name} must be a dict with 'boxes', 'scores', 'labels' (a detector's output), "
            f"got {type(prediction).__name__}"
        )
    required = {"boxes", "scores", "labels"} | ({"masks"} if iou_type == "segm" else set())
    missing = required - set(prediction)
    if missing:
        raise ValueError(f"{name} is missing {sorted(missing)}; expected keys {sorted(required)}")
    boxes = check_boxes(_cpu(prediction["boxes"]), f"{name}['boxes']", canvas_size)
    scores = prediction["scores"]
    if (
        not isinstance(scores, torch.Tensor)
        or scores.ndim != 1
        or not scores.is_floating_point()
        or scores.shape[0] != boxes.shape[0]
    ):
        raise ValueError(
            f"{name}['scores'] must be a float tensor ({boxes.shape[0]},), got "
            + (
                f"{scores.dtype} {tuple(scores.shape)}"
                if isinstance(scores, torch.Tensor)
                else type(scores).__name__
            )
        )
    labels = check_labels(_cpu(prediction["labels"]), boxes.shape[0], f"{name}['labels']")
    checked = {"boxes": boxes, "scores": _cpu(scores), "labels": labels}
    if iou_type == "segm":
        checked["masks"] = _prediction_masks(
            prediction["masks"], boxes.shape[0], canvas_size, f"{name}['masks']"
        )
    return checked


def _check_iou_type(iou_type) -> None:
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")


def _check_target(target, index: int, iou_type: str) -> tuple[dict, tuple[int, int] | None]:
    """(validated CPU copy of one target, its image's (H, W) or None when unknown).

    The copy has boxes float64 (M, 4) xyxy, labels (M,), masks bool (M, H, W) when given
    (required for "segm"), and ``iscrowd`` (M,) when given.
    """
    size = (
        _canvas_size(target)
        if isinstance(target, Mapping) and isinstance(target.get("boxes"), torch.Tensor)
        else None
    )
    check_target(target, canvas_size=size, name=f"targets[{index}]")
    if iou_type == "segm" and target.get("masks") is None:
        raise ValueError(
            f"targets[{index}] has no 'masks': iou_type='segm' needs instance masks (N, H, W)"
        )
    checked = {
        "boxes": _cpu(target["boxes"]).double(),
        "labels": _cpu(target["labels"]),
    }
    if target.get("masks") is not None:
        checked["masks"] = _cpu(target["masks"]).bool()
    if "iscrowd" in target:
        checked["iscrowd"] = _cpu(torch.as_tensor(target["iscrowd"]))
    return checked, size


def _check_inputs(predictions, targets, iou_type: str) -> tuple[list[dict], list[dict], list]:
    """(checked predictions, checked targets, image sizes (H, W) or None), one per image."""
    _check_iou_type(iou_type)
    for name, value in (("predictions", predictions), ("targets", targets)):
        if not isinstance(value, Sequence) or isinstance(value, (str, Mapping)):
            raise TypeError(
                f"{name} must be a list with one dict per image, got {type(value).__name__}"
            )
    if len(predictions) != len(targets):
        raise ValueError(
            f"predictions and targets must have one entry per image: got {len(predictions)} "
            f"predictions for {len(targets)} targets"
        )
    checked_targets, sizes = [], []
    for index, target in enumerate(targets):
        checked, size = _check_target(target, index, iou_type)
        checked_targets.append(checked)
        sizes.append(size)
    checked_predictions = [
        _check_prediction(prediction, index, iou_type, sizes[index])
        for index, prediction in enumerate(predictions)
    ]
    return checked_predictions, checked_targets, sizes


def _xywh(boxes: torch.Tensor) -> list[list[float]]:
    """xyxy boxes (N, 4) as COCO's ``[x, y, width, height]`` lists of floats."""
    boxes = boxes.double()
    return torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()


def _encode(masks: torch.Tensor) -> list[dict]:
    """Bool (N, H, W) masks as COCO run-length encodings, one dict per mask.

    pycocotools wants a Fortran-order uint8 array (H, W, N).
    """
    if masks.shape[0] == 0:
        return []
    return mask_utils.encode(np.asfortranarray(masks.permute(1, 2, 0).numpy().astype(np.uint8)))


def _coco_ground_truth(
    targets: list[dict], sizes: list, categories: list[int], iou_type: str
) -> COCO:
    """The ground truth as an in-memory COCO dataset: image ``i`` gets id ``i + 1``.

    Object areas are the mask areas when targets have masks, else the box areas.
    """
    images, annotations = [], []
    for index, (target, size) in enumerate(zip(targets, sizes)):
        height, width = size if size is not None else (0, 0)
        images.append({"id": index + 1, "height": int(height), "width": int(width)})
        boxes, labels = target["boxes"], target["labels"].tolist()
        masks = target.get("masks")
        areas = (
            masks.flatten(1).sum(1).double()
            if masks is not None
            else (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        ).tolist()
        crowd = target.get("iscrowd", torch.zeros(len(labels), dtype=torch.int64)).tolist()
        rles = _encode(masks) if iou_type == "segm" else [None] * len(labels)
        for box, label, area, is_crowd, rle in zip(_xywh(boxes), labels, areas, crowd, rles):
            annotation = {
                "id": len(annotations) + 1,  # COCOeval needs ids >= 1
                "image_id": index + 1,
                "category_id": int(label),
                "bbox": box,
                "area": float(area),
                "iscrowd": int(is_crowd),
            }
            if rle is not None:
                annotation["segmentation"] = rle
            annotations.append(annotation)
    coco = COCO()
    coco.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": category, "name": str(category)} for category in categories],
    }
    coco.createIndex()
    return coco


def _coco_results(predictions: list[dict], iou_type: str) -> list[dict]:
    """The detections as COCO's result list (``loadRes`` input): one dict per detection."""
    results = []
    for index, prediction in enumerate(predictions):
        scores, labels = prediction["scores"].tolist(), prediction["labels"].tolist()
        if iou_type == "bbox":
            locations = [{"bbox": box} for box in _xywh(prediction["boxes"])]
        else:
            # no "bbox" key: loadRes takes the box and area from the mask, as for COCO's results
            locations = [{"segmentation": rle} for rle in _encode(prediction["masks"])]
        for location, score, label in zip(locations, scores, labels):
            results.append(
                {
                    "image_id": index + 1,
                    "category_id": int(label),
                    "score": float(score),
                    **location,
                }
            )
    return results


def _check_area_bins(area_bins) -> tuple[float, float] | None:
    """``None`` or ``(small_below, large_above)`` as floats with 0 < small_below <= large_above."""
    if area_bins is None:
        return None
    if not isinstance(area_bins, (tuple, list)) or len(area_bins) != 2:
        raise ValueError(
            "area_bins must be None or (small_below, large_above) in square pixels, "
            f"got {area_bins!r}"
        )
    small, large = (float(check_number(value, "area_bins")) for value in area_bins)
    if not 0 < small <= large:
        raise ValueError(
            f"area_bins must satisfy 0 < small_below <= large_above, got ({small:g}, {large:g})"
        )
    return small, large


def detection_ap(
    predictions: Sequence[Mapping],
    targets: Sequence[Mapping],
    iou_type: str = "bbox",
    area_bins: tuple[float, float] | None = None,
) -> dict:
    """COCO average precision and recall of detections, computed by pycocotools' ``COCOeval``.

    Args:
        predictions: one dict per image as torchvision's detectors return in eval mode:
            ``boxes`` float (N, 4) ``(x1, y1, x2, y2)`` pixels, ``scores`` float (N,),
            ``labels`` int64 (N,) and, for ``iou_type="segm"``, ``masks`` (N, H, W) or
            (N, 1, H, W), probabilities (thresholded at 0.5) or bool.
        targets: one dataset target dict per image, same order: ``boxes`` (M, 4) xyxy pixels,
            ``labels`` (M,), ``masks`` (M, H, W) bool/uint8 (needed for "segm"); optional
            ``iscrowd`` (M,). ``image_id`` is not used: images are matched by position.
        iou_type: "bbox" (box IoU) or "segm" (mask IoU: instance segmentation AP).

    Returns:
        ``{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"}``
        as floats, exactly ``COCOeval.stats``. A value is ``-1.0`` where COCO gives -1: no
        ground-truth object in that category/area range (e.g. ``APs`` when no object is
        smaller than 32x32 pixels; everything when no image has an object). An image with
        no objects still counts: its detections are false positives. Object areas (for
        s/m/l) are the mask areas when targets have masks, else the box areas.

    ``area_bins=(small_below, large_above)`` replaces COCO's size bins (32², 96² square
    pixels) for APs/APm/APl and ARs/ARm/ARl, e.g. ``SceneConfig().object_area_bins()``.
    """
    bins = _check_area_bins(area_bins)
    predictions, targets, sizes = _check_inputs(predictions, targets, iou_type)
    categories = sorted(
        {int(label) for item in (*targets, *predictions) for label in item["labels"].tolist()}
    )
    results = _coco_results(predictions, iou_type)
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = _coco_ground_truth(targets, sizes, categories, iou_type)
        if results:
            detections = ground_truth.loadRes(results)
        else:  # loadRes cannot take an empty list
            detections = COCO()
            detections.dataset = {
                "images": list(ground_truth.dataset["images"]),
                "annotations": [],
                "categories": list(ground_truth.dataset["categories"]),
            }
            detections.createIndex()
        evaluation = COCOeval(ground_truth, detections, iou_type)
        if bins is not None:
            small, large = bins
            evaluation.params.areaRng = [[0, 1e10], [0, small], [small, large], [large, 1e10]]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {name: float(value) for name, value in zip(COCO_METRICS, evaluation.stats)}


def scene_size_ap(
    predictions: Sequence[Mapping], targets: Sequence[Mapping], iou_type: str = "bbox"
) -> dict:
    """The course-wide detection table's scores: ``{"AP50", "AP", "AP_small", "AP_large"}``.

    :func:`detection_ap` with the scenes' size bins (``SceneConfig().object_area_bins()``:
    small under 12² mask pixels, large over 24²), not COCO's (32², 96²), under which no object
    of a 128-pixel scene is large. Same arguments as :func:`detection_ap`; a bin without
    objects gives -1.
    """
    scores = detection_ap(predictions, targets, iou_type, SceneConfig().object_area_bins())
    return {
        "AP50": scores["AP50"],
        "AP": scores["AP"],
        "AP_small": scores["APs"],
        "AP_large": scores["APl"],
    }


def _cpu_prediction(output: Mapping, score_threshold: float) -> dict:
    """A detector's output for one image on the CPU: the detections with scores >= threshold,
    masks as bool (N, H, W) (probabilities > 0.5)."""
    keep = output["scores"] >= score_threshold
    prediction = {
        key: _cpu(value[keep])
        for key, value in output.items()
        if isinstance(value, torch.Tensor) and value.shape[:1] == keep.shape
    }
    if "masks" in prediction:
        masks = prediction["masks"]
        prediction["masks"] = (masks[:, 0] if masks.ndim == 4 else masks).float() > 0.5
    return prediction


def evaluate_detector(
    model: torch.nn.Module,
    dataset,
    device: torch.device | str | None = None,
    batch_size: int = 8,
    score_threshold: float = 0.0,
    iou_type: str = "bbox",
) -> tuple[dict, list[dict]]:
    """Run a torchvision-style detector over ``dataset`` and score it with :func:`detection_ap`.

    The model is moved to ``device`` and run in eval mode under ``no_grad`` (its previous
    mode is restored). ``dataset`` items are ``(image, target)``; batches use
    ``course_utils.data.datasets.detection_collate``. Detections with a score below
    ``score_threshold`` are dropped (COCO evaluation wants them all: keep 0.0 for AP).

    Returns:
        (metrics dict of :func:`detection_ap`, predictions): one CPU dict per image with
        ``boxes``, ``scores``, ``labels`` and, for Mask R-CNN, ``masks`` as bool (N, H, W)
        (thresholded at 0.5 to save memory).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_int(batch_size, "batch_size")
    check_number(score_threshold, "score_threshold")
    _check_iou_type(iou_type)  # before the pass over the dataset, not after it
    device = torch.device(device) if device is not None else pick_device()
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        collate_fn=detection_collate,
        **loader_kwargs(device),
    )
    was_training = model.training
    model.to(device).eval()
    predictions, targets = [], []
    try:
        with torch.no_grad():
            for images, batch_targets in loader:
                outputs = model([image.to(device) for image in images])
                predictions.extend(_cpu_prediction(output, score_threshold) for output in outputs)
                targets.extend(batch_targets)
    finally:
        model.train(was_training)
    return detection_ap(predictions, targets, iou_type), predictions
