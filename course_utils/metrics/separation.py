"""Are touching objects of the same class kept apart? (U-Net's weight map, notebook 11.)

A semantic map has no instances: two touching disks are one blob of "disk" pixels, unless the
prediction leaves at least one pixel of another class between them. U-Net's border weight map
trains exactly that thin gap. These functions count it::

    pairs = touching_pairs(masks, labels)                 # same-class instances that touch
    apart = pairs_separated(predicted_map, masks, labels, pairs, class_of_label)

Masks are bool or uint8 (G, H, W) instance masks; labels int (G,); maps int64 (H, W).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy import ndimage

from course_utils.core.tensors import plain

__all__ = ["pairs_separated", "touching_pairs"]


def _masks(instance_masks) -> np.ndarray:
    masks = plain(instance_masks)
    if not isinstance(masks, torch.Tensor) or masks.ndim != 3:
        raise ValueError("instance_masks must be a (G, H, W) tensor of bool or uint8 masks")
    return masks.cpu().numpy().astype(bool)


def touching_pairs(instance_masks, labels, gap: int = 1) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, of instances with the same label whose masks come within ``gap``
    pixels of each other (``gap = 1``: they touch, 8-connected).

    Args:
        instance_masks: bool/uint8 (G, H, W). labels: int (G,).
    """
    masks = _masks(instance_masks)
    labels = plain(labels)
    if len(labels) != len(masks):
        raise ValueError(f"labels must have one entry per mask: {len(masks)} masks, {len(labels)}")
    if not isinstance(gap, int) or gap < 1:
        raise ValueError(f"gap must be an int >= 1 (pixels), got {gap!r}")
    structure = ndimage.generate_binary_structure(2, 2)
    grown = [ndimage.binary_dilation(m, structure, iterations=gap) for m in masks]
    return [
        (i, j)
        for i in range(len(masks))
        for j in range(i + 1, len(masks))
        if int(labels[i]) == int(labels[j]) and bool((grown[i] & masks[j]).any())
    ]


def _component_of(components: np.ndarray, mask: np.ndarray) -> int:
    """The component label that covers most of ``mask``'s pixels (0: none)."""
    values = components[mask]
    values = values[values > 0]
    return int(np.bincount(values).argmax()) if len(values) else 0


def pairs_separated(
    predicted_map,
    instance_masks,
    labels,
    pairs: Sequence[tuple[int, int]],
    class_of_label: Callable[[int], int] = lambda label: label,
) -> torch.Tensor:
    """For each pair of touching same-class instances: does the prediction keep them apart?

    The pixels predicted as the pair's class are split into connected components
    (4-connected); the pair counts as separated when each instance's own pixels fall mostly in a
    different component (and both are found at all).

    Args:
        predicted_map: int (H, W), class ids. instance_masks: bool/uint8 (G, H, W).
        labels: int (G,). pairs: from :func:`touching_pairs`.
        class_of_label: maps an instance label to its class id in ``predicted_map``.

    Returns:
        bool (P,): separated or not, one per pair.
    """
    prediction = plain(predicted_map)
    if not isinstance(prediction, torch.Tensor) or prediction.ndim != 2:
        raise ValueError("predicted_map must be an (H, W) tensor of class ids")
    masks = _masks(instance_masks)
    if tuple(masks.shape[1:]) != tuple(prediction.shape):
        raise ValueError(
            f"instance_masks (G, H, W) must match predicted_map's {tuple(prediction.shape)}, "
            f"got {tuple(masks.shape)}"
        )
    prediction = prediction.cpu().numpy()
    separated = []
    for i, j in pairs:
        components, _ = ndimage.label(prediction == class_of_label(int(labels[i])))
        first, second = _component_of(components, masks[i]), _component_of(components, masks[j])
        separated.append(first > 0 and second > 0 and first != second)
    return torch.tensor(separated, dtype=torch.bool)
