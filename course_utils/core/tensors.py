"""Tensors between devices and out of models: moving nested batches, plain tensors, logits.

* :func:`to_device` moves every tensor of a nested batch (dicts, lists, tuples, tv_tensors).
* :func:`plain` strips the tv_tensor wrapper (``Image``, ``BoundingBoxes``, ``Mask``) so that
  arithmetic on the result gives ordinary tensors.
* :func:`segmentation_logits` reads (B, C, H, W) logits from a segmentation model's output.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

__all__ = ["plain", "segmentation_logits", "to_device"]


def to_device(obj, device: torch.device | str, non_blocking: bool = False):
    """``obj`` with every tensor moved to ``device``.

    Walks dicts, lists, tuples and named tuples; tv_tensors (Image, BoundingBoxes, Mask)
    keep their type and metadata; anything else (ints, strings, None) is returned as is.
    """
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, Mapping):
        return {key: to_device(value, device, non_blocking) for key, value in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(to_device(value, device, non_blocking) for value in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(value, device, non_blocking) for value in obj)
    return obj


def plain(value):
    """``value`` as a plain ``torch.Tensor`` when it is a tensor subclass (a tv_tensor); else
    unchanged.

    Same device, dtype and storage: no copy is made.
    """
    return value.as_subclass(torch.Tensor) if isinstance(value, torch.Tensor) else value


def segmentation_logits(output, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """The (B, C, H, W) logits of a segmentation model's output, resized to ``size = (H, W)``.

    ``output`` is a tensor or a dict with ``"out"`` (torchvision's segmentation models).
    Logits at a coarser resolution are up-sampled bilinearly (``align_corners=False``).
    """
    logits = output["out"] if isinstance(output, Mapping) else output
    if not isinstance(logits, torch.Tensor) or logits.ndim != 4:
        raise ValueError(
            "a segmentation model must return (B, C, H, W) logits or a dict with 'out', got "
            + (
                f"shape {tuple(logits.shape)}"
                if isinstance(logits, torch.Tensor)
                else type(logits).__name__
            )
        )
    if tuple(logits.shape[-2:]) != tuple(size):
        logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
    return logits
