"""Semantic segmentation scores: the confusion matrix and the IoUs computed from it.

:func:`confusion_matrix` counts pixels (rows = true class, columns = predicted class);
:func:`segmentation_scores` turns the counts into per-class IoU, mIoU, pixel accuracy and
mean class accuracy; :func:`evaluate_segmenter` runs a model over a dataset and sums the
counts. Label maps hold integer class ids ``0..C-1``; ``ignore_index`` (255) pixels of the
target are not counted.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from course_utils.core.device import loader_kwargs, pick_device
from course_utils.core.tensors import plain, segmentation_logits
from course_utils.core.validate import check_int

__all__ = ["confusion_matrix", "evaluate_segmenter", "segmentation_scores"]


def _check_label_map(value, name: str) -> torch.Tensor:
    """An integer tensor of class ids, any shape, as a flat int64 tensor (same device)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of class ids, got {type(value).__name__}")
    if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
        raise TypeError(
            f"{name} must hold integer class ids, got dtype {value.dtype}"
            + (" (for logits (B, C, H, W) take logits.argmax(1))" if name == "pred" else "")
        )
    return plain(value).long().flatten()


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
    check_int(num_classes, "num_classes")
    if (
        isinstance(pred, torch.Tensor)
        and isinstance(target, torch.Tensor)
        and pred.shape != target.shape
    ):
        raise ValueError(
            "pred and target must have the same shape, got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
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
    check_int(num_classes, "num_classes")
    check_int(batch_size, "batch_size")
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
                        f"the model predicts {logits.shape[1]} classes "
                        f"but num_classes={num_classes}"
                    )
                confusion += confusion_matrix(logits.argmax(1), masks, num_classes, ignore_index)
    finally:
        model.train(was_training)
    return {**segmentation_scores(confusion), "confusion": confusion.cpu()}
