"""R-CNN's class-specific box regressors: ridge regression from CNN features to box targets.

The CNN (``features``: crops -> (N, D), ``head``: (N, D) -> logits, like ``CropClassifier``) is
run on warped regions; for each class k a linear map ``[features 1] @ W_k`` predicts the
``encode_boxes`` targets ``(tx, ty, tw, th)`` that move a proposal onto its object (R-CNN,
appendix C)::

    weights = fit_region_regressors(cnn, regions, num_classes=4)   # float64 (K+1, D+1, 4)
    features, probs = region_features(cnn, crops)                  # (N, D), (N, K+1)
    deltas = apply_box_regressors(features, weights)               # (N, K+1, 4)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.core.tensors import plain
from course_utils.core.validate import check_int, check_number
from course_utils.detection.box_coding import encode_boxes
from course_utils.detection.warped_regions import RegionSet, as_float_crops

__all__ = [
    "apply_box_regressors",
    "fit_box_regressors",
    "fit_region_regressors",
    "region_features",
]


@torch.no_grad()
def region_features(
    cnn: nn.Module, crops: torch.Tensor, batch_size: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features (N, D), class probabilities (N, K+1))`` of warped crops (N, C, S, S), in eval
    mode (the CNN's mode is restored afterwards).

    ``crops``: float in [0, 1] or uint8 0..255 (a ``RegionSet``'s). ``cnn`` has ``features``
    (crops -> (N, D)) and ``head`` ((N, D) -> logits), like ``CropClassifier``. Float results,
    on the crops' device, computed ``batch_size`` crops at a time on the CNN's device.
    """
    check_int(batch_size, "batch_size")
    device = next(cnn.parameters()).device
    was_training = cnn.training
    cnn.eval()
    try:
        if len(crops) == 0:  # one blank crop tells the shapes
            blank = cnn.features(torch.zeros((1, *crops.shape[1:]), device=device))
            num_classes = cnn.head(blank).shape[1]
            return (
                torch.zeros((0, blank.shape[1]), device=crops.device),
                torch.zeros((0, num_classes), device=crops.device),
            )
        features, probs = [], []
        for start in range(0, len(crops), batch_size):
            chunk = cnn.features(as_float_crops(crops[start : start + batch_size]).to(device))
            features.append(chunk)
            probs.append(F.softmax(cnn.head(chunk).float(), dim=1))
    finally:
        cnn.train(was_training)
    return torch.cat(features).to(crops.device), torch.cat(probs).to(crops.device)


def fit_box_regressors(
    features: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor,
    num_classes: int,
    ridge: float = 1000.0,
) -> torch.Tensor:
    """Class-specific linear box regressors by ridge regression (R-CNN, appendix C), in closed
    form.

    For each class k >= 1, on the regions labelled k:
    ``W_k = argmin ||[X 1] W - T||^2 + ridge ||W[:-1]||^2`` (the bias is not penalized).
    Background (k = 0) and classes without regions get zero weights (they predict deltas 0: the
    proposal unchanged).

    Args:
        features: float (N, D) CNN features of the regions.
        labels: int64 (N,) class of each region, 1..K for the ones to fit on (others are
            skipped).
        targets: float (N, 4) :func:`~course_utils.detection.box_coding.encode_boxes` targets.
        num_classes: K + 1 (background included).
        ridge: the L2 penalty (the paper's lambda = 1000 for pool5 features).

    Returns:
        float64 weights (num_classes, D + 1, 4): the last row of each class is its bias.
    """
    features, labels, targets = plain(features), plain(labels), plain(targets)
    if (
        features.ndim != 2
        or targets.shape != (len(features), 4)
        or labels.shape != (len(features),)
    ):
        raise ValueError(
            f"need features (N, D), labels (N,) and targets (N, 4), got {tuple(features.shape)}, "
            f"{tuple(labels.shape)} and {tuple(targets.shape)}"
        )
    check_int(num_classes, "num_classes", minimum=2)
    ridge = check_number(ridge, "ridge", minimum=0)
    x = torch.cat(
        [features.double().cpu(), torch.ones(len(features), 1, dtype=torch.float64)], dim=1
    )
    t = targets.double().cpu()
    labels = labels.cpu()
    penalty = torch.eye(x.shape[1], dtype=torch.float64) * float(ridge)
    penalty[-1, -1] = 1e-8  # leave the bias free (a tiny value keeps the system solvable)
    weights = torch.zeros(num_classes, x.shape[1], 4, dtype=torch.float64)
    for k in range(1, num_classes):
        rows = labels == k
        if int(rows.sum()) == 0:
            continue
        xk, tk = x[rows], t[rows]
        weights[k] = torch.linalg.solve(xk.T @ xk + penalty, xk.T @ tk)
    return weights


def apply_box_regressors(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Class-specific deltas (N, K+1, 4), features' dtype, of features (N, D) with weights
    (K+1, D+1, 4) from :func:`fit_box_regressors`."""
    features = plain(features)
    if features.ndim != 2 or weights.ndim != 3 or weights.shape[1] != features.shape[1] + 1:
        raise ValueError(
            f"need features (N, D) and weights (K+1, D+1, 4), got {tuple(features.shape)} and "
            f"{tuple(weights.shape)}"
        )
    weights = weights.to(features)
    return torch.einsum("nd,kdc->nkc", features, weights[:, :-1]) + weights[None, :, -1]


def fit_region_regressors(
    cnn: nn.Module,
    regions: RegionSet,
    num_classes: int,
    *,
    min_iou: float = 0.6,
    ridge: float = 1000.0,
    encode_fn: Callable | None = None,
) -> torch.Tensor:
    """R-CNN's box regressors for a fine-tuned CNN.

    Ridge regression (:func:`fit_box_regressors`) from the CNN features of the positive
    proposals of ``regions`` (not the added ground-truth boxes) with IoU >= ``min_iou`` (the
    paper's 0.6) to their targets (``encode_fn(boxes, matched_boxes)``, default
    :func:`~course_utils.detection.box_coding.encode_boxes`).

    Returns:
        float64 weights (num_classes, D + 1, 4).
    """
    chosen = (regions.ious >= min_iou) & (regions.labels > 0) & ~regions.is_gt
    features, _ = region_features(cnn, regions.crops[chosen])
    targets = (encode_fn or encode_boxes)(regions.boxes[chosen], regions.matched_boxes[chosen])
    return fit_box_regressors(features, regions.labels[chosen], targets, num_classes, ridge)
