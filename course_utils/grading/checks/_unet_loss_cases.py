"""The cases of the U-Net loss checks (``checks.unet_losses``; private: not a topic module), and
the usual mistakes each comparator recognises.

``border_weight_map_cases`` are small hand-drawn canvases (squares, rectangles, disks, a ring),
CPU only: the weight map is data preparation, computed with scipy on the CPU. ``dice_loss_cases``
are small random logits and targets, on every available device. ``weight_map_variants`` and
``dice_variants`` compute, from a case's inputs, what each usual mistake returns, so that a
comparator can say which mistake a wrong answer is.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from course_utils.grading.runner import Case, with_device_copies

__all__ = ["border_weight_map_cases", "dice_loss_cases", "dice_variants", "weight_map_variants"]

_SEED = 1111

# ----------------------------------------------------------------------------------------------
# border_weight_map
# ----------------------------------------------------------------------------------------------

_FORMULA = (
    "w(x) = 1 + w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2)) on the background pixels (pixels "
    "of no instance), w = 1 on the objects; d1, d2 = Euclidean distances to the nearest and the "
    "second nearest object, e.g. the two smallest of scipy.ndimage.distance_transform_edt(~mask) "
    "over the masks (0 on the object, 1 next to it)."
)


def _canvas(height: int, width: int, *shapes) -> torch.Tensor:
    """Bool masks ``(G, height, width)``, one per shape: ``("rect", top, left, h, w)``,
    ``("disk", cy, cx, r)`` or ``("ring", cy, cx, r_in, r_out)``."""
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    masks = torch.zeros(len(shapes), height, width, dtype=torch.bool)
    for index, (kind, *p) in enumerate(shapes):
        if kind == "rect":
            masks[index, p[0] : p[0] + p[2], p[1] : p[1] + p[3]] = True
        else:
            r2 = (y - p[0]) ** 2 + (x - p[1]) ** 2
            masks[index] = (r2 <= p[2] ** 2) if kind == "disk" else (r2 >= p[2] ** 2)
            if kind == "ring":
                masks[index] &= r2 <= p[3] ** 2
    return masks


def border_weight_map_cases() -> list[Case]:
    """The cases of ``check_border_weight_map`` (CPU only): ``(instance_masks, w0, sigma)``."""
    squares = _canvas(12, 16, ("rect", 3, 2, 6, 6), ("rect", 3, 9, 6, 6))
    three = _canvas(20, 24, ("rect", 2, 1, 16, 5), ("disk", 10, 12, 4.5), ("rect", 4, 19, 12, 4))
    four = _canvas(
        16, 16, ("rect", 1, 1, 6, 6), ("rect", 1, 9, 5, 6), ("disk", 12, 4, 3), ("rect", 9, 9, 6, 6)
    )
    wide = _canvas(14, 26, ("disk", 6, 5, 4), ("rect", 2, 11, 9, 5), ("disk", 8, 21, 3.5))
    diagonal = _canvas(16, 16, ("rect", 1, 1, 5, 5), ("rect", 8, 8, 6, 6), ("disk", 3, 12, 2.5))
    ring = _canvas(18, 18, ("ring", 9, 9, 5.5, 8.5), ("disk", 9, 9, 3))
    return [
        Case(
            "two 6x6 squares with a 1-pixel gap between them (w0 = 10, sigma = 5)",
            (squares, 10.0, 5.0),
            hint="In the gap d1 = d2 = 1, so w = 1 + 10 * exp(-4 / 50) = 10.23; inside the "
            "squares w = 1. " + _FORMULA,
        ),
        Case(
            "three objects, 2-pixel gaps: d2 is the SECOND nearest object (w0 = 10, sigma = 3)",
            (three, 10.0, 3.0),
            hint="With three objects or more, d2 is the second smallest of the per-object "
            "distances (sort them, or np.partition), not the largest. " + _FORMULA,
        ),
        Case(
            "a single object: no gap between two objects, so w = 1 everywhere",
            (_canvas(10, 12, ("disk", 5, 6, 3)), 10.0, 5.0),
            hint="The exponential term separates two objects: with fewer than two objects "
            "there is no second nearest object and the term is 0 (w = 1 everywhere).",
        ),
        Case(
            "no object at all (G = 0, masks of shape (0, 8, 10)): w = 1 everywhere",
            (torch.zeros(0, 8, 10, dtype=torch.bool), 10.0, 5.0),
            hint="Handle G = 0 before taking distances (there are none): return "
            "torch.ones(H, W) in float32.",
        ),
        Case(
            "four objects as uint8 masks, as SceneDataset's target['masks'] (w0 = 10, sigma = 4)",
            (four.to(torch.uint8), 10.0, 4.0),
            hint="Convert uint8 masks to bool first (masks.bool()): ~ on uint8 values flips all "
            "8 bits (~1 = 254, ~0 = 255). " + _FORMULA,
        ),
        Case(
            "a non-square 14x26 canvas (H x W), w0 = 5, sigma = 2",
            (wide, 5.0, 2.0),
            hint="The map has the masks' (H, W) shape: rows are y, columns x. " + _FORMULA,
        ),
        Case(
            "objects placed diagonally, w0 = 3, sigma = 8: use the arguments",
            (diagonal, 3.0, 8.0),
            hint="Use the w0 and sigma passed in, not the paper's 10 and 5; distances are "
            "Euclidean, also along diagonals (sqrt(dy**2 + dx**2)). " + _FORMULA,
        ),
        Case(
            "a disk inside a ring, a 2-3 pixel moat between them (w0 = 10, sigma = 5)",
            (ring, 10.0, 5.0),
            hint="Measure distances to each object's nearest pixel (its border), not to its "
            "centre: the ring's centre lies inside the disk. " + _FORMULA,
        ),
    ]


def _per_object(masks: np.ndarray, how: str) -> np.ndarray:
    """Per-object distance maps ``(G, H, W)`` float64 computed the way ``how`` names."""
    maps = []
    height, width = masks.shape[1:]
    y, x = np.mgrid[:height, :width]
    for mask in masks:
        if how in ("taxicab", "chessboard"):
            maps.append(ndimage.distance_transform_cdt(~mask, metric=how).astype(float))
        elif how == "centre":
            ys, xs = np.nonzero(mask)
            maps.append(np.hypot(y - ys.mean(), x - xs.mean()))
        elif how == "inside":
            maps.append(ndimage.distance_transform_edt(mask))
        elif how == "uint8 invert":
            maps.append(ndimage.distance_transform_edt(~mask.astype(np.uint8)))
        else:
            maps.append(ndimage.distance_transform_edt(~mask))
    return np.stack(maps)


def _weights(d1, d2, background, w0, sigma, *, power=2.0, denominator=None, base=1.0):
    """``base + w0 * exp(-(d1 + d2)**power / denominator)`` on ``background``, else ``base``."""
    denominator = 2 * sigma**2 if denominator is None else denominator
    return base + w0 * np.exp(-((d1 + d2) ** power) / denominator) * background


def weight_map_variants(masks: torch.Tensor, w0: float, sigma: float) -> dict[str, np.ndarray]:
    """What each usual mistake returns on these inputs (float64 ``(H, W)``), by its message;
    empty with fewer than two objects."""
    array = masks.cpu().numpy().astype(bool)
    array = array[array.any(axis=(1, 2))]
    if len(array) < 2:
        return {}
    bg = ~array.any(0)
    dist = {
        how: np.sort(_per_object(array, how), axis=0)
        for how in ("edt", "taxicab", "chessboard", "centre", "inside", "uint8 invert")
    }
    d1, d2, far = dist["edt"][0], dist["edt"][1], dist["edt"][-1]
    variants = {
        "inside the objects the weight is above 1: the exponential term applies only to the "
        "background pixels (pixels of no instance), the gaps the network must learn to keep; on "
        "an object w = w_c = 1.": _weights(d1, d2, True, w0, sigma),
        "the sum d1 + d2 is not squared: the exponent is -(d1 + d2)**2 / (2 * sigma**2).": (
            _weights(d1, d2, bg, w0, sigma, power=1.0)
        ),
        "the exponent is divided by sigma**2: the paper divides by 2 * sigma**2.": _weights(
            d1, d2, bg, w0, sigma, denominator=sigma**2
        ),
        "the exponent is divided by 2 * sigma (not squared): divide by 2 * sigma**2.": _weights(
            d1, d2, bg, w0, sigma, denominator=2 * sigma
        ),
        "d2 is left out (the exponent uses d1 alone): it is (d1 + d2)**2, d2 the distance to the "
        "second nearest object.": _weights(d1, 0.0, bg, w0, sigma),
        "d2 equals d1 (the nearest object counted twice, 2 * d1): d2 is the distance to the "
        "SECOND nearest object, the second smallest of the per-object distances.": _weights(
            d1, d1, bg, w0, sigma
        ),
        "d2 is the distance to the FARTHEST object: take the second smallest of the per-object "
        "distances (sorted along the objects' dimension, index 1), not the largest.": _weights(
            d1, far, bg, w0, sigma
        ),
        "the distances are measured to the objects' centres: measure them to each object's "
        "nearest pixel (its border), distance_transform_edt(~mask).": _weights(
            dist["centre"][0], dist["centre"][1], bg, w0, sigma
        ),
        "distance_transform_edt(mask) is the distance from an object's pixels to the background "
        "(0 outside it): take the complement, distance_transform_edt(~mask), the distance of "
        "every pixel to the object.": _weights(dist["inside"][0], dist["inside"][1], bg, w0, sigma),
        "the exponential term is not multiplied by w0.": _weights(d1, d2, bg, 1.0, sigma),
        "far from every object w should be 1: w = w_c + w0 * exp(...) with w_c = 1; you "
        "returned the exponential term alone.": _weights(d1, d2, bg, w0, sigma, base=0.0),
        "d1 and d2 are squared before the sum: distance_transform_edt returns distances, use them "
        "as they are ((d1 + d2)**2, not (d1**2 + d2**2)**2).": _weights(
            d1**2, d2**2, bg, w0, sigma
        ),
        "the distances are city-block (|dy| + |dx|, distance_transform_cdt's 'taxicab'): use "
        "Euclidean distances, scipy.ndimage.distance_transform_edt.": _weights(
            dist["taxicab"][0], dist["taxicab"][1], bg, w0, sigma
        ),
        "the distances are chessboard (max(|dy|, |dx|), distance_transform_cdt's default): use "
        "Euclidean distances, scipy.ndimage.distance_transform_edt.": _weights(
            dist["chessboard"][0], dist["chessboard"][1], bg, w0, sigma
        ),
    }
    if (w0, sigma) != (10.0, 5.0):
        variants[
            "this is the map of the paper's w0 = 10 and sigma = 5: use the w0 and sigma arguments."
        ] = _weights(d1, d2, bg, 10.0, 5.0)
    if masks.dtype == torch.uint8:
        variants[
            "the distances on these uint8 masks are wrong: ~ on uint8 values flips all 8 bits "
            "(~1 = 254, ~0 = 255, both non-zero), so distance_transform_edt sees no object. "
            "Convert to bool first (masks.bool() or masks > 0), or use 1 - mask."
        ] = _weights(dist["uint8 invert"][0], dist["uint8 invert"][1], bg, w0, sigma)
    return variants


# ----------------------------------------------------------------------------------------------
# dice_loss
# ----------------------------------------------------------------------------------------------

_DICE = (
    "p = softmax(logits, dim=1), t = one-hot of the target, both 0 on ignored pixels; for each "
    "class c, sums over the whole batch (dims 0, 2, 3): dice_c = 2 * sum(p_c * t_c) / (sum(p_c) "
    "+ sum(t_c)); loss = 1 - mean of dice_c over the classes present in the target "
    "(sum(t_c) > 0), no smoothing constant."
)


def _random(g: torch.Generator, n: int, k: int, h: int, w: int, classes=None):
    """Logits float32 ``(n, k, h, w)`` (scale 2) and an int64 target ``(n, h, w)`` drawn from
    ``classes`` (default all k)."""
    logits = torch.randn(n, k, h, w, generator=g) * 2
    pool = torch.tensor(range(k) if classes is None else classes)
    return logits, pool[torch.randint(0, len(pool), (n, h, w), generator=g)]


def dice_loss_cases() -> list[Case]:
    """The cases of ``check_dice_loss`` (on every available device): ``(logits, target,
    ignore_index)``."""
    g = torch.Generator().manual_seed(_SEED)
    perfect_target = torch.randint(0, 3, (2, 5, 6), generator=g)
    perfect = 20.0 * F.one_hot(perfect_target, 3).permute(0, 3, 1, 2).float()
    uniform_target = torch.randint(0, 3, (1, 5, 5), generator=g)
    random_logits, random_target = _random(g, 2, 4, 6, 7)
    absent_logits, absent_target = _random(g, 2, 5, 6, 6, classes=[0, 1, 2])
    ignored_logits, ignored_target = _random(g, 2, 3, 6, 8)
    ignored_target[:, 1:4, 2:6] = 255
    ignored_logits[:, 0, 1:4, 2:6] += 3.0  # the ignored pixels lean to class 0
    batch_logits, batch_target = _random(g, 3, 4, 5, 5)
    batch_target[0] %= 2  # image 0: classes 0, 1
    batch_target[1] = torch.tensor([0, 2, 3])[batch_target[1] % 3]  # image 1: 0, 2, 3
    batch_target[2] = 1  # image 2: class 1 only
    minus_logits, minus_target = _random(g, 1, 3, 6, 6)
    minus_target[0, :2] = -1
    double_logits, double_target = _random(g, 2, 3, 4, 5)
    cases = [
        Case(
            "random logits, K = 5 classes, 3 and 4 absent from the target (batch of 2)",
            (absent_logits, absent_target, 255),
            hint="A class absent from the target (sum(t_c) = 0) is left out of the mean: as "
            "Dice 1 it would be a free reward, as 0 a penalty the network cannot avoid. " + _DICE,
        ),
        Case(
            "random logits, 4 classes, all present in the target (batch of 2)",
            (random_logits, random_target, 255),
            hint=_DICE,
        ),
        Case(
            "a perfect, very confident prediction (logits 20 on the right class): loss ~ 0",
            (perfect, perfect_target, 255),
            hint="Soft Dice of a perfect prediction is 1 for every class, so the loss is 0: "
            "return 1 - mean Dice, not the Dice itself. " + _DICE,
        ),
        Case(
            "uniform logits (all 0: p = 1/3 everywhere)",
            (torch.zeros(1, 3, 5, 5), uniform_target, 255),
            hint=_DICE,
        ),
        Case(
            "ignored pixels (255) where the logits lean to class 0",
            (ignored_logits, ignored_target, 255),
            hint="An ignored pixel counts for nothing: multiply both p and t by the valid mask "
            "(target != ignore_index) before the sums; build the one-hot from "
            "target.where(valid, 0). " + _DICE,
        ),
        Case(
            "every pixel ignored: no valid pixel, loss 0",
            (torch.randn(1, 3, 4, 4, generator=g), torch.full((1, 4, 4), 255), 255),
            hint="With no valid pixel there is nothing to compare: return logits.sum() * 0, a 0 "
            "that keeps the graph (2 * 0 / 0 is nan).",
        ),
        Case(
            "a batch of 3 images holding different classes: sums over the whole batch",
            (batch_logits, batch_target, 255),
            hint="Sum each class over the batch's pixels (dims 0, 2, 3), then average over the "
            "classes present in the batch: one Dice per class, not one per image. " + _DICE,
        ),
        Case(
            "ignore_index = -1 (not 255): use the argument",
            (minus_logits, minus_target, -1),
            hint="Compare the target with the ignore_index argument, never a hard-coded 255. "
            + _DICE,
        ),
        Case(
            "float64 logits: a float64 loss",
            (double_logits.double(), double_target, 255),
            hint="Let the logits decide the dtype (no .float()); the loss is a 0-dim tensor.",
        ),
    ]
    return with_device_copies(cases)


def _dice(
    logits,
    target,
    ignore_index,
    *,
    probs="softmax",
    ignored_as=None,
    mask_probs=True,
    factor=2.0,
    squared=False,
    absent="skip",
    smooth=0.0,
    per_image=False,
    pooled=False,
    complement=True,
) -> float:
    """The soft Dice loss computed with one of the usual mistakes (float64, on the CPU)."""
    logits, target = logits.detach().cpu().double(), target.cpu()
    k = logits.shape[1]
    valid = target != ignore_index
    if probs == "argmax":
        p = F.one_hot(logits.argmax(1), k).permute(0, 3, 1, 2).double()
    else:
        p = {
            "softmax": logits.softmax(1),
            "sigmoid": logits.sigmoid(),
            "raw": logits,
            "last": logits.softmax(-1),
        }[probs]
    keep = valid if ignored_as is None else torch.ones_like(valid)
    labels = target.where(valid, 0 if ignored_as is None else ignored_as)
    t = F.one_hot(labels, k).permute(0, 3, 1, 2).double() * keep[:, None]
    p = p * keep[:, None] if mask_probs else p
    dims = (2, 3) if per_image else (0, 2, 3)
    if pooled:
        dice = factor * (p * t).sum() / (p.sum() + t.sum())
        return float(1 - dice)
    sizes = (p**2 if squared else p).sum(dims) + t.sum(dims)
    dice = (factor * (p * t).sum(dims) + smooth) / (sizes + smooth)
    present = t.sum(dims) > 0
    if absent == "one":
        dice = dice.where(present, torch.ones_like(dice))
    means = dice.mean(-1) if absent != "skip" else (dice * present).sum(-1) / present.sum(-1)
    mean = float(means.mean())
    return 1 - mean if complement else mean


def dice_variants(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> dict:
    """What each usual mistake returns on these inputs (a float), by its message."""
    k = logits.shape[1]
    if not bool((target != ignore_index).any()):
        return {}
    options = {
        "a class absent from the target counts as Dice 1, a free reward: average only over the "
        "classes present in the target (sum(t_c) > 0).": {"absent": "one"},
        "the mean is over all K classes, so an absent class gets Dice 0 (2 * 0 / sum(p_c)), a "
        "penalty the network cannot avoid: average only over the classes present in the "
        "target (sum(t_c) > 0).": {"absent": "all"},
        "you average over all K classes with a smoothing constant ((2 I + 1) / (P + T + 1)): "
        "leave out the classes absent from the target and drop the smoothing.": {
            "absent": "all",
            "smooth": 1.0,
        },
        "a smoothing constant ((2 I + 1) / (P + T + 1)) changes the value: this Dice has none "
        "(a present class has sum(t_c) >= 1, so no denominator is 0).": {"smooth": 1.0},
        "the loss uses argmax (a hard one-hot prediction): argmax has no gradient, so the "
        "network could not learn from it; use the softmax probabilities (soft Dice).": {
            "probs": "argmax"
        },
        "the probabilities come from a sigmoid: the classes are exclusive, use "
        "logits.softmax(dim=1).": {"probs": "sigmoid"},
        "the raw logits are used as probabilities: apply logits.softmax(dim=1) first.": {
            "probs": "raw"
        },
        "the softmax runs over the last dimension (the image's width): run it over dim=1, the "
        "classes.": {"probs": "last"},
        "the probabilities of the ignored pixels are counted in sum(p_c): multiply p by the "
        "valid mask too, not only t.": {"mask_probs": False},
        "the ignored pixels are counted as class 0: leave them out of p and t (multiply both by "
        "the valid mask target != ignore_index).": {"ignored_as": 0},
        f"the ignored pixels are counted as class {k - 1} (clamped): leave them out of p and t "
        "(multiply both by the valid mask target != ignore_index).": {"ignored_as": k - 1},
        "the Dice is computed per image, then averaged over the images: sum each class over "
        "the whole batch (dims 0, 2, 3), then average over the present classes.": {
            "per_image": True
        },
        "the intersections and sizes of all the classes are pooled into one global Dice: "
        "compute one Dice per class, then average over the present classes.": {"pooled": True},
        "the factor 2 is missing: dice_c = 2 * sum(p_c * t_c) / (sum(p_c) + sum(t_c)), 1 for "
        "a perfect prediction.": {"factor": 1.0},
        "the denominator squares p (sum(p_c**2) + sum(t_c**2)): that is V-Net's variant "
        "(Milletari et al., 2016), a different loss with different gradients; this one divides "
        "by sum(p_c) + sum(t_c).": {"squared": True},
        "you returned the Dice coefficient (1 for a perfect prediction): the loss is 1 - the "
        "mean Dice.": {"complement": False},
    }
    return {text: _dice(logits, target, ignore_index, **kw) for text, kw in options.items()}
