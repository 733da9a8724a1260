"""Per-pixel class maps: what a segmenter predicts, and which pixels lie near a class edge.

:func:`predict_semantic` turns a segmenter's logits into class ids; :func:`boundary_mask`
marks the pixels near a class boundary, where coarse predictions (FCN-32s) go wrong first, so
a notebook can score accuracy there as well as everywhere (:func:`boundary_accuracy`, the
course-wide segmentation table's "boundary acc."). Semantic maps are integer
``(H, W)`` or ``(B, H, W)`` class ids, 255 = ignored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.core.validate import check_int

__all__ = ["boundary_accuracy", "boundary_mask", "predict_semantic"]


@torch.no_grad()
def predict_semantic(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Per-pixel class ids int64 ``(B, H, W)`` (argmax of the logits), model in eval mode."""
    was_training = model.training
    model.eval()
    try:
        return model(images).argmax(1)
    finally:
        model.train(was_training)


def boundary_mask(semantic: torch.Tensor, width: int = 2, ignore_index: int = 255) -> torch.Tensor:
    """Pixels within ``width`` pixels of a class boundary: bool, same shape as ``semantic``.

    ``semantic``: integer class ids ``(H, W)`` or ``(B, H, W)``. A pixel is on a boundary
    when its ``(2*width+1)`` square neighbourhood holds more than one class (``ignore_index``
    pixels count as a class of their own; the image border is not a boundary). Used to score
    how sharp a prediction is: accuracy on these pixels vs everywhere.
    """
    if not isinstance(semantic, torch.Tensor) or semantic.ndim not in (2, 3):
        raise ValueError(
            "semantic must be an (H, W) or (B, H, W) tensor, got "
            f"{getattr(semantic, 'shape', type(semantic))}"
        )
    if semantic.is_floating_point() or semantic.dtype == torch.bool:
        raise TypeError(f"semantic must hold integer class ids, got dtype {semantic.dtype}")
    check_int(width, "width")
    ids = semantic.as_subclass(torch.Tensor).float()
    ids = ids[None, None] if semantic.ndim == 2 else ids[:, None]
    size = 2 * width + 1
    high = F.max_pool2d(F.pad(ids, (width,) * 4, mode="replicate"), size, stride=1)
    low = -F.max_pool2d(F.pad(-ids, (width,) * 4, mode="replicate"), size, stride=1)
    mask = high != low
    return mask[0, 0] if semantic.ndim == 2 else mask[:, 0]


def boundary_accuracy(
    predicted: torch.Tensor, semantic: torch.Tensor, width: int = 2, ignore_index: int = 255
) -> float:
    """Share of the pixels within ``width`` pixels of a class boundary of ``semantic`` (the true
    map, :func:`boundary_mask`) that ``predicted`` labels right; ``ignore_index`` pixels are not
    counted. Both maps hold integer class ids of the same shape, ``(H, W)`` or ``(B, H, W)``."""
    if not isinstance(predicted, torch.Tensor) or not isinstance(semantic, torch.Tensor):
        raise TypeError("predicted and semantic must be tensors of class ids")
    if predicted.shape != semantic.shape:
        raise ValueError(
            f"predicted {tuple(predicted.shape)} and semantic {tuple(semantic.shape)} must have "
            "the same (H, W) or (B, H, W) shape"
        )
    if predicted.is_floating_point() or predicted.dtype == torch.bool:
        raise TypeError(f"predicted must hold integer class ids, got dtype {predicted.dtype}")
    predicted, semantic = predicted.as_subclass(torch.Tensor), semantic.as_subclass(torch.Tensor)
    near = boundary_mask(semantic, width, ignore_index) & (semantic != ignore_index)
    if not bool(near.any()):
        raise ValueError("semantic has no class boundary: boundary accuracy is undefined")
    return float((predicted.to(semantic.device)[near] == semantic[near]).float().mean())
