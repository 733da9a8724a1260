"""The loss functions ``fit`` calls, and how it reads what they return.

A loss function is ``loss_fn(model, batch)`` returning a scalar tensor, or a dict of scalar
tensors that ``fit`` sums for the backward pass and logs one by one (torchvision's detectors
return such a dict). :func:`total_loss` turns either into what the loop needs.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from course_utils.core.tensors import segmentation_logits

__all__ = ["classification_loss", "detection_loss", "segmentation_loss", "total_loss"]


def classification_loss(model: torch.nn.Module, batch) -> torch.Tensor:
    """Cross-entropy of the (B, K) logits ``model(x)`` against ``y`` (B,) int64, ``batch = (x, y)``.

    Returns a scalar float tensor (the mean over the batch).
    """
    images, labels = batch
    return F.cross_entropy(model(images), labels)


def detection_loss(model: torch.nn.Module, batch) -> dict[str, torch.Tensor]:
    """The loss dict of a torchvision-style detector for ``batch = (images, targets)``.

    ``images``: list of float CHW tensors in [0, 1]; ``targets``: list of dicts with
    ``boxes`` (N, 4) xyxy pixels and ``labels`` (N,) int64 (plus ``masks`` for Mask R-CNN).
    In train mode such a model returns e.g. ``{"loss_classifier": ..., "loss_box_reg": ...,
    "loss_objectness": ..., "loss_rpn_box_reg": ...}``; ``fit`` sums them and logs each.
    """
    images, targets = batch
    losses = model(list(images), list(targets))
    if not isinstance(losses, Mapping):
        raise TypeError(
            "detection_loss expects a model that returns a dict of losses when given "
            "(images, targets) in train mode (torchvision's detectors do); "
            f"got {type(losses).__name__}"
        )
    return dict(losses)


def segmentation_loss(model: torch.nn.Module, batch, ignore_index: int = 255):
    """Pixel-wise cross-entropy for ``batch = (images (B, 3, H, W), masks (B, H, W) int64)``.

    Pixels equal to ``ignore_index`` (255) do not count. The model may return logits or a
    dict with ``"out"``; logits are up-sampled to the mask size when smaller. When the dict
    also has ``"aux"`` (torchvision's auxiliary classifier), returns
    ``{"out": loss, "aux": 0.5 * aux_loss}`` as torchvision's reference recipe does.
    """
    images, masks = batch
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    masks = masks.as_subclass(torch.Tensor).long()
    output = model(images)
    loss = F.cross_entropy(
        segmentation_logits(output, masks.shape[-2:]), masks, ignore_index=ignore_index
    )
    if isinstance(output, Mapping) and output.get("aux") is not None:
        aux = F.cross_entropy(
            segmentation_logits(output["aux"], masks.shape[-2:]), masks, ignore_index=ignore_index
        )
        return {"out": loss, "aux": 0.5 * aux}
    return loss


def total_loss(output) -> tuple[torch.Tensor, float, dict[str, float]]:
    """``(total, value, components)`` from what a ``loss_fn`` returned.

    ``output``: a scalar tensor, or a non-empty dict of scalar tensors (summed). Returns the
    0-d tensor to back-propagate, its value as a float, and ``{name: float}`` for each dict
    entry (``{}`` for a plain tensor). Raises ``TypeError`` for anything else and
    ``ValueError`` for non-scalar losses.
    """
    if isinstance(output, torch.Tensor):
        parts = {}
        total = output
    elif isinstance(output, Mapping) and output:
        parts = dict(output)
        if not all(isinstance(value, torch.Tensor) for value in parts.values()):
            raise TypeError(
                "every value of the loss dict must be a tensor, got "
                f"{ {key: type(value).__name__ for key, value in parts.items()} }"
            )
        total = sum(parts.values())
    else:
        raise TypeError(
            "loss_fn(model, batch) must return a scalar tensor or a non-empty dict of scalar "
            f"tensors, got {type(output).__name__}"
        )
    if total.numel() != 1 or any(value.numel() != 1 for value in parts.values()):
        raise ValueError(
            "loss_fn must return scalar losses (reduce with .mean() or .sum()), got shapes "
            f"{tuple(total.shape)} {[tuple(value.shape) for value in parts.values()]}"
        )
    values = torch.stack(
        [
            total.detach().float().reshape(()),
            *(value.detach().float().reshape(()) for value in parts.values()),
        ]
    ).tolist()
    return total.reshape(()), values[0], dict(zip(map(str, parts), values[1:]))
