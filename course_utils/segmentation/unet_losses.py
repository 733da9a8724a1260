"""U-Net's losses (Ronneberger, Fischer & Brox, MICCAI 2015): the border weight map, class
balancing, the pixel-wise weighted cross-entropy, and the soft Dice loss.

* :func:`border_weight_map` is the paper's equation 2,
  ``w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2))``: the thin background gaps
  between two touching objects weigh up to ``1 + w0`` so that the network learns to separate
  them. ``d1`` / ``d2`` are the Euclidean distances (pixels) from ``x`` to the nearest / second
  nearest object instance, measured to that instance's nearest pixel, so a background pixel
  touching an object is at distance 1 (diagonally sqrt(2)). :func:`border_distances` returns
  ``(d1, d2)``;
* :func:`class_balance_weights` gives the ``w_c`` of rare classes: weights inversely
  proportional to the classes' pixel frequencies;
* :func:`weighted_cross_entropy` is the paper's energy, ``w(x) * -log p_{l(x)}(x)``, averaged
  over the valid pixels;
* :func:`dice_loss` is the multi-class soft Dice loss (as in V-Net and most U-Net ports, but with
  linear, not squared, denominators): one minus the mean, over the classes present in the
  target, of ``2 sum(p_c t_c) / (sum(p_c) + sum(t_c))``, sums over the whole batch.

Segmentation targets follow the course's conventions: instance masks bool or uint8 ``(G, H, W)``
(``SceneDataset``'s ``target["masks"]``), semantic maps int64 ``(N, H, W)`` of class ids in
``[0, K)``, ``ignore_index`` (255) for pixels that count for nothing.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from course_utils.core.validate import check_int, check_masks, check_number, check_semantic

__all__ = [
    "border_distances",
    "border_weight_map",
    "class_balance_weights",
    "dice_loss",
    "weighted_cross_entropy",
]


# --------------------------------------------------------------------------- the border weights


def _object_masks(instance_masks) -> np.ndarray:
    """Validated masks as a bool numpy array ``(G', H, W)``, empty masks dropped."""
    masks = check_masks(instance_masks, name="instance_masks")
    array = masks.detach().as_subclass(torch.Tensor).cpu().numpy().astype(bool)
    return array[array.any(axis=(1, 2))]


def _two_nearest(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(d1, d2)`` float64 ``(H, W)``: the smallest and second smallest per-object distances
    (``inf`` where there is no such object)."""
    from scipy import ndimage  # imported here: only this loss needs scipy

    height, width = masks.shape[1:]
    per_object = [ndimage.distance_transform_edt(~mask) for mask in masks]
    per_object += [np.full((height, width), np.inf)] * max(0, 2 - len(per_object))
    two = np.partition(np.stack(per_object), 1, axis=0)
    return two[0], two[1]


def border_distances(instance_masks) -> tuple[torch.Tensor, torch.Tensor]:
    """The distances of equation 2: ``(d1, d2)``, float32 ``(H, W)`` each, on the masks' device.

    ``instance_masks``: bool or uint8 ``(G, H, W)``. ``d1[y, x]`` / ``d2[y, x]`` is the Euclidean
    distance from pixel ``(y, x)`` to the nearest pixel of the nearest / second nearest instance
    (``scipy.ndimage.distance_transform_edt`` of each mask's complement): 0 on the instance
    itself, 1 for a pixel touching it. ``inf`` when there are fewer than 1 / 2 instances. Empty
    masks are not instances (they are skipped).
    """
    d1, d2 = _two_nearest(_object_masks(instance_masks))
    device = instance_masks.device
    return (
        torch.from_numpy(d1).float().to(device),
        torch.from_numpy(d2).float().to(device),
    )


def _class_weight_map(
    class_map, class_weights, size: tuple[int, int], ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(w_c, valid)`` on the CPU: float64 ``(H, W)`` 1 or ``class_weights[class_map]`` (0
    where ignored), and bool ``(H, W)``, False where ``class_map`` is ``ignore_index``."""
    if class_map is None and class_weights is None:
        return torch.ones(size, dtype=torch.float64), torch.ones(size, dtype=torch.bool)
    if class_map is None or class_weights is None:
        raise ValueError(
            "pass both class_map (H, W) and class_weights (K,) for w_c, or neither (w_c = 1)"
        )
    if not isinstance(class_weights, torch.Tensor) or class_weights.ndim != 1:
        raise TypeError(
            "class_weights must be a float tensor (K,) (class_balance_weights), got "
            f"{getattr(class_weights, 'shape', type(class_weights).__name__)}"
        )
    if not class_weights.is_floating_point() or not bool(torch.isfinite(class_weights).all()):
        raise ValueError("class_weights must hold finite float weights, one per class")
    classes = check_semantic(class_map, len(class_weights), size, "class_map", ignore_index)
    classes = classes.as_subclass(torch.Tensor).cpu().long()
    valid = classes != ignore_index
    weights = class_weights.detach().cpu().double()[classes.where(valid, 0)]
    return weights * valid, valid


def border_weight_map(
    instance_masks,
    w0: float = 10.0,
    sigma: float = 5.0,
    *,
    class_map=None,
    class_weights=None,
    ignore_index: int = 255,
) -> torch.Tensor:
    """U-Net's weight map (equation 2): float32 ``(H, W)`` on the masks' device.

    ``w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2))``, the exponential term on
    background pixels only (pixels of no instance) and only when there are at least two
    instances; ``d1``, ``d2`` as :func:`border_distances` (Euclidean, to each instance's nearest
    pixel). The paper uses ``w0 = 10`` and ``sigma ~ 5`` pixels. In the course's scenes the
    instances are the things (``target["masks"]``); the stuff regions are background here.
    ``w0`` and ``sigma`` come first so that the assignment's ``border_weight_map(instance_masks,
    w0, sigma)`` calls this function unchanged.

    Args:
        instance_masks: bool or uint8 ``(G, H, W)`` (``G = 0`` allowed; empty masks skipped).
        w0: the border weight (>= 0); ``sigma``: its width in pixels (> 0).
        class_map: optional integer ``(H, W)`` class ids in ``[0, K)`` or ``ignore_index``, with
            ``class_weights`` float ``(K,)`` (:func:`class_balance_weights`): then
            ``w_c(x) = class_weights[class_map[x]]``, and ignored pixels get ``w = 0``. Without
            them ``w_c = 1`` (the assignment's version).
    """
    masks = _object_masks(instance_masks)
    w0 = check_number(w0, "w0", minimum=0.0)
    sigma = check_number(sigma, "sigma", minimum=0.0, open_minimum=True)
    ignore_index = check_int(ignore_index, "ignore_index", minimum=None)
    size = tuple(instance_masks.shape[-2:])
    weights, valid = _class_weight_map(class_map, class_weights, size, ignore_index)
    if len(masks) >= 2:
        d1, d2 = _two_nearest(masks)
        term = w0 * np.exp(-((d1 + d2) ** 2) / (2.0 * sigma**2)) * ~masks.any(0)
        weights = weights + torch.from_numpy(term) * valid
    return weights.float().to(instance_masks.device)


def class_balance_weights(
    class_maps: torch.Tensor, num_classes: int, ignore_index: int = 255
) -> torch.Tensor:
    """Class-balancing weights ``w_c``: float32 ``(K,)`` on the maps' device.

    ``class_maps``: integer ids in ``[0, K)`` or ``ignore_index``, any shape (one map ``(H,
    W)`` or a stack ``(N, H, W)``). With ``f_c`` the fraction of the valid pixels of class ``c``,
    ``w_c = 1 / (K' f_c)``, K' the number of classes present: inversely proportional to the
    frequency and normalised so that the pixel-weighted mean weight ``sum_c f_c w_c`` is 1 (a
    class of average frequency ``1 / K'`` weighs 1). A class absent from the maps gets 1, the
    neutral weight, rather than 0, which would silently drop it from the loss on other maps.
    Raises ValueError when no pixel is valid.
    """
    num_classes = check_int(num_classes, "num_classes")
    ignore_index = check_int(ignore_index, "ignore_index", minimum=None)
    if not isinstance(class_maps, torch.Tensor) or class_maps.ndim < 1:
        raise TypeError(
            f"class_maps must be an integer tensor such as (N, H, W), got {type(class_maps)}"
        )
    maps = class_maps.as_subclass(torch.Tensor)
    if maps.is_floating_point() or maps.dtype == torch.bool:
        raise TypeError(f"class_maps must hold integer class ids, got dtype {maps.dtype}")
    ids = maps[maps != ignore_index].long()
    if ids.numel() == 0:
        raise ValueError("class_maps has no valid pixel (all are ignore_index): no frequencies")
    if int(ids.min()) < 0 or int(ids.max()) >= num_classes:
        raise ValueError(
            f"class_maps must hold ids in [0, {num_classes}) or {ignore_index} (ignored), got "
            f"the range [{int(ids.min())}, {int(ids.max())}]"
        )
    counts = torch.bincount(ids, minlength=num_classes).double()
    frequency = counts / counts.sum()
    present = counts > 0
    weights = torch.ones(num_classes, dtype=torch.float64, device=maps.device)
    weights[present] = 1.0 / (int(present.sum()) * frequency[present])
    return weights.float()


# --------------------------------------------------------------------------- the losses


def _check_logits_target(logits, target, ignore_index, name: str) -> int:
    """Validate ``logits`` float ``(N, K, H, W)`` and ``target`` int64 ``(N, H, W)``; return
    the ignore index as an int."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 4:
        raise ValueError(
            f"{name}: logits must be a float tensor (N, K, H, W), got "
            f"{getattr(logits, 'shape', type(logits).__name__)}"
        )
    if not logits.is_floating_point():
        raise TypeError(f"{name}: logits must be a float tensor, got dtype {logits.dtype}")
    if not isinstance(target, torch.Tensor) or target.dtype != torch.int64:
        raise TypeError(
            f"{name}: target must be an int64 tensor (N, H, W) of class ids (use .long()), got "
            f"{getattr(target, 'dtype', type(target).__name__)}"
        )
    wanted = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != wanted:
        raise ValueError(
            f"{name}: target must have shape (N, H, W) = {wanted} to match logits "
            f"{tuple(logits.shape)}, got {tuple(target.shape)}"
        )
    ignore_index = check_int(ignore_index, "ignore_index", minimum=None)
    valid = target != ignore_index
    if bool(((target < 0) | (target >= logits.shape[1]))[valid].any()):
        raise ValueError(
            f"{name}: target must hold class ids in [0, {logits.shape[1]}) or {ignore_index} "
            f"(ignored), got {target[valid].unique()[:8].tolist()}"
        )
    return ignore_index


def weighted_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight_map: torch.Tensor,
    ignore_index: int = 255,
) -> torch.Tensor:
    """U-Net's pixel-wise weighted cross-entropy: a 0-dim tensor of the logits' dtype.

    ``logits`` float ``(N, K, H, W)``; ``target`` int64 ``(N, H, W)``, ids in ``[0, K)`` or
    ``ignore_index``; ``weight_map`` float ``(N, H, W)``, ``>= 0`` (a stack of
    :func:`border_weight_map`). Returns the mean over the valid pixels of ``w(x) * CE(x)``,
    ``CE(x) = -log softmax(logits)[target(x)]``: the paper's energy ``sum_x w(x) log p(x)``
    (its sign flipped) divided by the number of valid pixels, so that its scale does not depend
    on the image size (with ``w = 1`` it is ``F.cross_entropy``). No valid pixel: a zero that
    keeps the graph (``logits.sum() * 0``).
    """
    ignore_index = _check_logits_target(logits, target, ignore_index, "weighted_cross_entropy")
    if not isinstance(weight_map, torch.Tensor) or not weight_map.is_floating_point():
        raise TypeError(
            "weighted_cross_entropy: weight_map must be a float tensor (N, H, W), got "
            f"{getattr(weight_map, 'dtype', type(weight_map).__name__)}"
        )
    if weight_map.shape != target.shape:
        raise ValueError(
            f"weighted_cross_entropy: weight_map must have the target's shape "
            f"{tuple(target.shape)}, got {tuple(weight_map.shape)}"
        )
    if not bool(torch.isfinite(weight_map).all()) or bool((weight_map < 0).any()):
        raise ValueError("weighted_cross_entropy: weight_map must be finite and >= 0")
    valid = target != ignore_index
    if not bool(valid.any()):
        return logits.sum() * 0
    losses = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none")
    return (weight_map.to(losses.dtype) * losses)[valid].mean()


def dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Multi-class soft Dice loss: a 0-dim tensor of the logits' dtype, on their device.

    ``logits`` float ``(N, K, H, W)``; ``target`` int64 ``(N, H, W)``, ids in ``[0, K)`` or
    ``ignore_index``. With ``p = softmax(logits, dim=1)`` and ``t`` the target's one-hot, both
    zero on ignored pixels, per class ``c`` over the whole batch (sums over N, H and W)::

        dice_c = 2 * sum(p_c * t_c) / (sum(p_c) + sum(t_c))
        loss = 1 - mean of dice_c over the classes present in the target (sum(t_c) > 0)

    A class absent from the target is left out of the mean: counting it as Dice 1 would be a
    free reward, as 0 a penalty the network cannot avoid (softmax is never exactly 0). There
    is no smoothing constant: a present class has ``sum(t_c) >= 1``, so no denominator is 0.
    No valid pixel: a zero that keeps the graph (``logits.sum() * 0``). 0 for a perfect,
    infinitely confident prediction; at most 1.
    """
    ignore_index = _check_logits_target(logits, target, ignore_index, "dice_loss")
    valid = target != ignore_index
    if not bool(valid.any()):
        return logits.sum() * 0
    keep = valid.unsqueeze(1).to(logits.dtype)
    probs = logits.softmax(dim=1) * keep
    one_hot = F.one_hot(target.where(valid, 0), logits.shape[1]).permute(0, 3, 1, 2)
    one_hot = one_hot.to(logits.dtype) * keep
    dims = (0, 2, 3)
    intersection = (probs * one_hot).sum(dims)
    sizes = probs.sum(dims) + one_hot.sum(dims)
    present = one_hot.sum(dims) > 0
    return 1 - (2 * intersection[present] / sizes[present]).mean()
