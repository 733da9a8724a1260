"""How good is a detector or a segmenter, and how fast: the numbers every notebook reports.

* Detection and instance segmentation: :func:`detection_ap` builds COCO objects in memory
  and runs pycocotools' ``COCOeval`` itself, so the numbers are exactly the COCO
  benchmark's (AP = mean over IoU 0.50:0.05:0.95 of the 101-point interpolated precision).
* Semantic segmentation: :func:`confusion_matrix` and :func:`segmentation_scores`
  (per-class IoU, mIoU, pixel accuracy, mean class accuracy).
* Speed: :func:`time_per_image`.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch.utils.data import DataLoader

from course_utils.core.device import loader_kwargs, pick_device, synchronize
from course_utils.core.tensors import segmentation_logits, to_device
from course_utils.core.validate import check_boxes, check_labels, check_target

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

__all__ = [
    "COCO_METRICS",
    "confusion_matrix",
    "detection_ap",
    "evaluate_detector",
    "evaluate_segmenter",
    "segmentation_scores",
    "time_per_image",
]


# --------------------------------------------------------------------------- detection AP


def _plain(tensor: torch.Tensor) -> torch.Tensor:
    """A CPU tensor without the tv_tensor subclass."""
    return tensor.detach().as_subclass(torch.Tensor).cpu()


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
    """Predicted masks (N, H, W) or (N, 1, H, W), probabilities or bool, as bool (N, H, W) (> 0.5)."""
    if not isinstance(masks, torch.Tensor):
        raise TypeError(
            f"{name} must be a tensor (N, H, W) or (N, 1, H, W), got {type(masks).__name__}"
        )
    masks = _plain(masks)
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
    """Validated CPU copy of one prediction dict: boxes (N, 4) xyxy, scores (N,), labels (N,), masks."""
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
    boxes = check_boxes(_plain(prediction["boxes"]), f"{name}['boxes']", canvas_size)
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
    labels = check_labels(_plain(prediction["labels"]), boxes.shape[0], f"{name}['labels']")
    checked = {"boxes": boxes, "scores": _plain(scores), "labels": labels}
    if iou_type == "segm":
        checked["masks"] = _prediction_masks(
            prediction["masks"], boxes.shape[0], canvas_size, f"{name}['masks']"
        )
    return checked


def _check_inputs(predictions, targets, iou_type: str) -> tuple[list[dict], list[dict], list]:
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
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
    sizes, checked_targets = [], []
    for index, target in enumerate(targets):
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
        checked = {"boxes": _plain(target["boxes"]).double(), "labels": _plain(target["labels"])}
        if target.get("masks") is not None:
            checked["masks"] = _plain(target["masks"]).bool()
        if "iscrowd" in target:
            checked["iscrowd"] = _plain(torch.as_tensor(target["iscrowd"]))
        checked_targets.append(checked)
        sizes.append(size)
    checked_predictions = [
        _check_prediction(prediction, index, iou_type, sizes[index])
        for index, prediction in enumerate(predictions)
    ]
    return checked_predictions, checked_targets, sizes


def _xywh(boxes: torch.Tensor) -> list[list[float]]:
    boxes = boxes.double()
    return torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()


def _encode(masks: torch.Tensor) -> list[dict]:
    """Bool (N, H, W) masks as COCO run-length encodings (pycocotools wants Fortran-order uint8 H, W, N)."""
    if masks.shape[0] == 0:
        return []
    return mask_utils.encode(np.asfortranarray(masks.permute(1, 2, 0).numpy().astype(np.uint8)))


def _coco_ground_truth(
    targets: list[dict], sizes: list, categories: list[int], iou_type: str
) -> COCO:
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
    results = []
    for index, prediction in enumerate(predictions):
        scores, labels = prediction["scores"].tolist(), prediction["labels"].tolist()
        if iou_type == "bbox":
            locations = [{"bbox": box} for box in _xywh(prediction["boxes"])]
        else:  # no "bbox" key, so loadRes takes the box and area from the mask, as for COCO's own results
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


def detection_ap(
    predictions: Sequence[Mapping], targets: Sequence[Mapping], iou_type: str = "bbox"
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
    """
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
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {name: float(value) for name, value in zip(COCO_METRICS, evaluation.stats)}


def _detection_collate():
    try:
        from course_utils.data.datasets import detection_collate
    except ImportError:

        def detection_collate(batch):
            return tuple(zip(*batch))

    return detection_collate


def _cpu_prediction(output: Mapping, score_threshold: float) -> dict:
    """A detector's output for one image on the CPU, scores >= threshold, masks as bool (N, H, W)."""
    keep = output["scores"] >= score_threshold
    prediction = {
        key: _plain(value[keep])
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
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    device = torch.device(device) if device is not None else pick_device()
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        collate_fn=_detection_collate(),
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


# --------------------------------------------------------------------------- semantic segmentation


def _check_label_map(value, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of class ids, got {type(value).__name__}")
    if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
        raise TypeError(
            f"{name} must hold integer class ids, got dtype {value.dtype}"
            + (" (for logits (B, C, H, W) take logits.argmax(1))" if name == "pred" else "")
        )
    return value.as_subclass(torch.Tensor).long().flatten()


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = 255
) -> torch.Tensor:
    """Pixel counts ``C[t, p]``: pixels of true class ``t`` predicted as ``p``.

    Args:
        pred: integer class ids, any shape (e.g. (B, H, W) = ``logits.argmax(1)``).
        target: integer class ids in [0, num_classes) or ``ignore_index``, same shape.
    Returns:
        int64 tensor (num_classes, num_classes) on ``target``'s device; rows = target,
        columns = prediction. Pixels whose target is ``ignore_index`` are not counted.
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if (
        isinstance(pred, torch.Tensor)
        and isinstance(target, torch.Tensor)
        and pred.shape != target.shape
    ):
        raise ValueError(
            f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    pred, target = _check_label_map(pred, "pred"), _check_label_map(target, "target")
    valid = target != ignore_index
    pred, target = pred[valid], target[valid]
    for name, ids in (("target", target), ("pred", pred)):
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= num_classes):
            raise ValueError(
                f"{name} must hold class ids in [0, {num_classes})"
                + (f" or {ignore_index} (ignored)" if name == "target" else "")
                + f", got range [{int(ids.min())}, {int(ids.max())}]"
            )
    counts = torch.bincount(target * num_classes + pred.to(target.device), minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


def segmentation_scores(confusion: torch.Tensor) -> dict:
    """Scores from a confusion matrix (rows = target, columns = prediction).

    Returns:
        ``iou``: float64 tensor (C,), ``TP / (TP + FP + FN)`` per class, NaN for a class that
        is neither in the targets nor in the predictions (a class predicted but absent from
        the targets gets 0); ``mIoU``: mean of the non-NaN IoUs; ``pixel_accuracy``: correct
        pixels / counted pixels; ``mean_accuracy``: mean over classes present in the targets
        of the fraction of their pixels predicted correctly. NaN when nothing was counted.
    """
    if (
        not isinstance(confusion, torch.Tensor)
        or confusion.ndim != 2
        or confusion.shape[0] != confusion.shape[1]
    ):
        raise ValueError(
            "confusion must be a square (C, C) tensor, got "
            + (
                f"shape {tuple(confusion.shape)}"
                if isinstance(confusion, torch.Tensor)
                else type(confusion).__name__
            )
        )
    counts = confusion.detach().cpu().double()
    if counts.numel() and float(counts.min()) < 0:
        raise ValueError("confusion must hold non-negative pixel counts")
    correct = counts.diagonal()
    in_target, in_prediction = counts.sum(1), counts.sum(0)
    iou = correct / (in_target + in_prediction - correct)  # 0 / 0 = NaN for absent classes
    class_accuracy = correct / in_target
    return {
        "iou": iou,
        "mIoU": float(iou.nanmean()),
        "pixel_accuracy": float(correct.sum() / counts.sum()),
        "mean_accuracy": float(class_accuracy.nanmean()),
    }


def evaluate_segmenter(
    model: torch.nn.Module,
    dataset,
    num_classes: int,
    device: torch.device | str | None = None,
    batch_size: int = 16,
    ignore_index: int = 255,
) -> dict:
    """Run a segmentation model over ``dataset`` of ``(image (3, H, W), mask (H, W) int64)`` items.

    The model may return logits (B, C, h, w) or a dict with ``"out"``; logits are up-sampled
    to the mask size when needed. Eval mode and ``no_grad`` (the previous mode is restored).

    Returns:
        :func:`segmentation_scores` of the summed confusion matrix, plus ``"confusion"``
        (int64 (C, C), rows = target).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    device = torch.device(device) if device is not None else pick_device()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, **loader_kwargs(device))
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    was_training = model.training
    model.to(device).eval()
    try:
        with torch.no_grad():
            for images, masks in loader:
                images, masks = images.to(device), masks.to(device)
                if masks.ndim == 4 and masks.shape[1] == 1:
                    masks = masks[:, 0]
                logits = segmentation_logits(model(images), masks.shape[-2:])
                if logits.shape[1] != num_classes:
                    raise ValueError(
                        f"the model predicts {logits.shape[1]} classes but num_classes={num_classes}"
                    )
                confusion += confusion_matrix(logits.argmax(1), masks, num_classes, ignore_index)
    finally:
        model.train(was_training)
    return {**segmentation_scores(confusion), "confusion": confusion.cpu()}


# --------------------------------------------------------------------------- speed


def _first_device(images) -> torch.device:
    if isinstance(images, torch.Tensor):
        return images.device
    for image in images:
        if isinstance(image, torch.Tensor):
            return image.device
    return pick_device()


def time_per_image(
    fn: Callable,
    images,
    warmup: int = 2,
    repeats: int = 5,
    device: torch.device | str | None = None,
) -> dict:
    """Milliseconds per image of ``fn(images)``, the median over ``repeats`` timed calls.

    ``fn`` is called on the whole batch at once (``images``: a (B, C, H, W) tensor or a list
    of B CHW tensors, as torchvision's detectors take), ``warmup`` times untimed and then
    ``repeats`` times, each timed between two ``course_utils.core.device.synchronize`` calls so
    queued GPU work counts. Runs under ``torch.no_grad()``; put the model in eval mode first.
    ``images`` are moved to ``device`` when one is given.

    Returns:
        ``{"ms_per_image": median seconds / B * 1000, "images_per_s": B / median seconds}``.
    """
    if not callable(fn):
        raise TypeError(
            f"fn must be callable (a model or a function of the images), got {type(fn).__name__}"
        )
    if isinstance(images, torch.Tensor):
        if images.ndim != 4 or images.shape[0] == 0:
            raise ValueError(
                f"images must be a (B, C, H, W) batch with B >= 1, got shape {tuple(images.shape)}"
            )
    elif not isinstance(images, (list, tuple)) or not images:
        raise TypeError("images must be a (B, C, H, W) tensor or a non-empty list of CHW tensors")
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0, got {warmup!r}")
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}")
    if device is not None:
        device = torch.device(device)
        images = to_device(images, device)
    else:
        device = _first_device(images)
    count = len(images)
    seconds = []
    with torch.no_grad():
        for _ in range(warmup):
            fn(images)
        for _ in range(repeats):
            synchronize(device)
            started = time.perf_counter()
            fn(images)
            synchronize(device)
            seconds.append(time.perf_counter() - started)
    median = max(statistics.median(seconds), 1e-9)
    return {"ms_per_image": 1000.0 * median / count, "images_per_s": count / median}
