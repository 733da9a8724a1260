"""Are touching objects of the same class kept apart? (U-Net's weight map, notebook 11.)

A semantic map has no instances: two touching disks are one blob of "disk" pixels, unless the
prediction leaves at least one pixel of another class between them. U-Net's border weight map
trains exactly that thin gap. These functions count it::

    pairs = touching_pairs(masks, labels)                 # same-class instances that touch
    apart = pairs_separated(predicted_map, masks, labels, pairs, class_of_label)

and compare a semantic map with an instance model (notebook 12)::

    regions, region_labels = connected_instances(predicted_map, class_of_label, (1, 2, 3))
    covering = covering_instances(regions, region_labels, masks, labels)  # int64 (G,), -1: none

Masks are bool or uint8 (G, H, W) instance masks; labels int (G,); maps int64 (H, W).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy import ndimage

from course_utils.core.tensors import plain

__all__ = ["connected_instances", "covering_instances", "pairs_separated", "touching_pairs"]


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


def connected_instances(
    semantic_map, class_of_label: Callable[[int], int], labels: Sequence[int], min_pixels: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """The instances a semantic map implies: every connected region (4-connected) of every thing
    class becomes one instance, the only way to count objects without an instance model.

    Args:
        semantic_map: int (H, W) class ids. class_of_label: maps an instance label to its class
            id in the map. labels: the instance labels to look for (e.g. 1..K).
        min_pixels: smaller regions are dropped (specks of a noisy map).

    Returns:
        ``(masks bool (N, H, W), labels int64 (N,))``, label by label, regions in scan order.
    """
    semantic = plain(semantic_map)
    if not isinstance(semantic, torch.Tensor) or semantic.ndim != 2:
        raise ValueError("semantic_map must be an (H, W) tensor of class ids")
    if not isinstance(min_pixels, int) or min_pixels < 1:
        raise ValueError(f"min_pixels must be an int >= 1, got {min_pixels!r}")
    semantic = semantic.cpu().numpy()
    masks, found = [], []
    for label in labels:
        components, count = ndimage.label(semantic == class_of_label(int(label)))
        sizes = np.bincount(components.ravel(), minlength=count + 1)
        kept = [index for index in range(1, count + 1) if sizes[index] >= min_pixels]
        masks += [components == index for index in kept]
        found += [int(label)] * len(kept)
    if not masks:
        return torch.zeros((0, *semantic.shape), dtype=torch.bool), torch.zeros(
            0, dtype=torch.int64
        )
    return torch.from_numpy(np.stack(masks)), torch.tensor(found, dtype=torch.int64)


def covering_instances(
    predicted_masks, predicted_labels, instance_masks, labels, min_cover: float = 0.5
) -> torch.Tensor:
    """int64 (G,): for each true instance, the predicted instance of its label that covers most
    of its pixels, if that is at least ``min_cover`` of them; -1 where none does.

    Two touching instances are kept apart when both are covered, by different predictions: the
    criterion of :func:`pairs_separated` (which asks only "mostly"), made the same for a semantic
    map's regions (:func:`connected_instances`) and an instance model's masks, which may overlap.

    Args:
        predicted_masks: bool/uint8 (N, H, W), or float probabilities cut at 0.5.
        predicted_labels: int (N,). instance_masks: bool/uint8 (G, H, W). labels: int (G,).
        min_cover: the share of an instance's pixels its predicted instance must cover, (0, 1].
    """
    truth = _masks(instance_masks)
    predicted = plain(predicted_masks)
    if not isinstance(predicted, torch.Tensor) or predicted.ndim != 3:
        raise ValueError("predicted_masks must be an (N, H, W) tensor of masks")
    if predicted.is_floating_point():
        predicted = predicted >= 0.5
    predicted = predicted.cpu().numpy().astype(bool)
    if predicted.shape[1:] != truth.shape[1:]:
        raise ValueError(
            f"predicted_masks (N, H, W) must have the size of instance_masks {truth.shape[1:]}, "
            f"got {predicted.shape}"
        )
    predicted_labels = plain(predicted_labels).cpu().reshape(-1).numpy()
    labels = plain(labels).cpu().reshape(-1).tolist()
    if len(predicted_labels) != len(predicted) or len(labels) != len(truth):
        raise ValueError("one label per mask, for the predictions and for the instances")
    if not 0.0 < float(min_cover) <= 1.0:
        raise ValueError(f"min_cover must be in (0, 1], got {min_cover!r}")
    covering = torch.full((len(truth),), -1, dtype=torch.int64)
    flat = predicted.reshape(len(predicted), truth.shape[1] * truth.shape[2])
    for index, (mask, label) in enumerate(zip(truth, labels)):
        candidates = np.flatnonzero(predicted_labels == label)
        if not len(candidates) or not mask.any():
            continue
        covered = (flat[candidates] & mask.reshape(1, -1)).sum(1)
        best = int(covered.argmax())
        if covered[best] >= min_cover * mask.sum():
            covering[index] = int(candidates[best])
    return covering
