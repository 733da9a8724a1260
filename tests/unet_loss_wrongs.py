"""Right and deliberately wrong ``border_weight_map`` and ``dice_loss`` functions (notebook 11).

``good_*`` are right, written the way a student might (scipy, or torch alone); the others make
the plausible mistakes that ``tests/test_checks_unet_losses.py`` lists in its ``WRONG`` table.
Most wrong functions are ``_weights`` / ``_dice`` below with one option changed.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

# ---------------------------------------------------------------------------- border_weight_map


def good_weight_map_scipy(instance_masks, w0, sigma):
    masks = instance_masks.bool().cpu().numpy()
    height, width = masks.shape[1:]
    w = np.ones((height, width))
    if len(masks) >= 2:
        d = np.sort(np.stack([ndimage.distance_transform_edt(~m) for m in masks]), axis=0)
        background = ~masks.any(axis=0)
        w += background * w0 * np.exp(-((d[0] + d[1]) ** 2) / (2 * sigma**2))
    return torch.from_numpy(w).float()


def good_weight_map_torch(instance_masks, w0, sigma):
    """torch only: each pixel's distance to every object's pixels with torch.cdist."""
    masks = instance_masks.bool()
    _, height, width = masks.shape
    w = torch.ones(height, width)
    if masks.shape[0] < 2:
        return w
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    pixels = torch.stack([y.flatten(), x.flatten()], dim=1).float()
    distances = torch.stack(
        [torch.cdist(pixels, m.nonzero().float()).min(1).values.view(height, width) for m in masks]
    )
    d1, d2 = distances.topk(2, dim=0, largest=False).values
    term = w0 * torch.exp(-((d1 + d2) ** 2) / (2 * sigma**2))
    return torch.where(masks.any(0), w, w + term)


def _weights(
    masks,
    w0,
    sigma,
    *,
    metric="edt",
    exponent=2.0,
    denominator=None,
    second=1,
    everywhere=False,
    min_objects=2,
    base=1.0,
    invert=None,
    squared=False,
):
    """A scipy weight map with one of the usual mistakes (its defaults are right)."""
    array = masks.cpu().numpy() if invert == "uint8" else masks.bool().cpu().numpy()
    height, width = array.shape[1:]
    if len(array) < min_objects or len(array) == 0:
        return torch.ones(height, width)
    if metric == "edt":
        per_object = [ndimage.distance_transform_edt(~m) for m in array]
    elif metric == "inside":
        per_object = [ndimage.distance_transform_edt(m) for m in array]
    elif metric == "centre":
        y, x = np.mgrid[:height, :width]
        per_object = [np.hypot(y - m.nonzero()[0].mean(), x - m.nonzero()[1].mean()) for m in array]
    else:
        per_object = [ndimage.distance_transform_cdt(~m, metric=metric) for m in array]
    d = np.sort(np.stack(per_object).astype(float), axis=0)
    d = d**2 if squared else d
    d1, d2 = d[0], (d[second] if len(d) > 1 else d[0])
    sum_ = d1 + d2 if second is not None else d1
    denominator = 2 * sigma**2 if denominator is None else denominator
    term = w0 * np.exp(-(sum_**exponent) / denominator)
    background = np.ones_like(term, bool) if everywhere else ~array.astype(bool).any(axis=0)
    return torch.from_numpy(base + term * background).float()


def weight_everywhere(m, w0, sigma):
    return _weights(m, w0, sigma, everywhere=True)


def weight_not_squared(m, w0, sigma):
    return _weights(m, w0, sigma, exponent=1.0)


def weight_sigma_squared(m, w0, sigma):
    return _weights(m, w0, sigma, denominator=sigma**2)


def weight_two_sigma(m, w0, sigma):
    return _weights(m, w0, sigma, denominator=2 * sigma)


def weight_only_d1(m, w0, sigma):
    return _weights(m, w0, sigma, second=None)


def weight_d1_twice(m, w0, sigma):
    return _weights(m, w0, sigma, second=0)


def weight_farthest(m, w0, sigma):
    return _weights(m, w0, sigma, second=-1)


def weight_centres(m, w0, sigma):
    return _weights(m, w0, sigma, metric="centre")


def weight_inside(m, w0, sigma):
    return _weights(m, w0, sigma, metric="inside")


def weight_one_object(m, w0, sigma):
    """Forgot that one object has no second nearest: uses d1 twice then."""
    return _weights(m, w0, sigma, min_objects=1)


def weight_no_w0(m, w0, sigma):
    return _weights(m, 1.0, sigma)


def weight_no_one(m, w0, sigma):
    return _weights(m, w0, sigma, base=0.0)


def weight_squared_distances(m, w0, sigma):
    return _weights(m, w0, sigma, squared=True)


def weight_taxicab(m, w0, sigma):
    return _weights(m, w0, sigma, metric="taxicab")


def weight_chessboard(m, w0, sigma):
    return _weights(m, w0, sigma, metric="chessboard")


def weight_uint8_invert(m, w0, sigma):
    return _weights(m, w0, sigma, invert="uint8")


def weight_float64(m, w0, sigma):
    return _weights(m, w0, sigma).double()


def weight_transposed(m, w0, sigma):
    return _weights(m, w0, sigma).T


def weight_numpy(m, w0, sigma):
    return _weights(m, w0, sigma).numpy()


def weight_paper_constants(m, w0, sigma):
    return _weights(m, 10.0, 5.0)


# ---------------------------------------------------------------------------- dice_loss


def good_dice(logits, target, ignore_index=255):
    valid = target != ignore_index
    if not valid.any():
        return logits.sum() * 0
    probs = logits.softmax(dim=1) * valid[:, None]
    one_hot = F.one_hot(target * valid, logits.shape[1]).permute(0, 3, 1, 2) * valid[:, None]
    intersection = (probs * one_hot).sum(dim=(0, 2, 3))
    total = probs.sum(dim=(0, 2, 3)) + one_hot.sum(dim=(0, 2, 3))
    present = one_hot.sum(dim=(0, 2, 3)) > 0
    return 1 - (2 * intersection / total.clamp(min=1e-6))[present].mean()


def good_dice_loop(logits, target, ignore_index=255):
    """A loop over the classes, a tiny eps in the denominator (it changes nothing visible)."""
    valid = target != ignore_index
    probs = torch.softmax(logits, 1)
    scores = []
    for c in range(logits.shape[1]):
        p = probs[:, c][valid]
        t = (target[valid] == c).to(logits.dtype)
        if t.sum() > 0:
            scores.append(2 * (p * t).sum() / (p.sum() + t.sum() + 1e-7))
    if not scores:
        return (logits * 0).sum()
    return 1 - torch.stack(scores).mean()


def _dice(
    logits,
    target,
    ignore_index=255,
    *,
    activation="softmax",
    absent="skip",
    smooth=0.0,
    mask_probs=True,
    ignored_as=None,
    dims=(0, 2, 3),
    factor=2.0,
    power=1,
    guard=True,
    complement=True,
    reduce=True,
):
    """A soft Dice with one of the usual mistakes (its defaults are right)."""
    valid = target != ignore_index
    if guard and not valid.any():
        return logits.sum() * 0
    k = logits.shape[1]
    if activation == "argmax":
        probs = F.one_hot(logits.argmax(1), k).permute(0, 3, 1, 2).to(logits.dtype)
    elif activation == "sigmoid":
        probs = logits.sigmoid()
    elif activation == "raw":
        probs = logits
    else:
        probs = logits.softmax(dim=1 if activation == "softmax" else -1)
    labels = target.where(valid, 0) if ignored_as is None else target.where(valid, ignored_as)
    keep = valid[:, None] if ignored_as is None else torch.ones_like(valid[:, None])
    one_hot = F.one_hot(labels, k).permute(0, 3, 1, 2).to(logits.dtype) * keep
    probs = probs * keep if mask_probs else probs
    intersection = (probs * one_hot).sum(dims)
    total = (probs**power).sum(dims) + one_hot.sum(dims)
    dice = (factor * intersection + smooth) / (total + smooth)
    present = one_hot.sum(dims) > 0
    if absent == "one":
        dice = torch.where(present, dice, torch.ones_like(dice))
    if not reduce:
        return 1 - dice
    if absent == "skip":
        mean = (dice * present).sum(-1) / present.sum(-1)
    else:
        mean = dice.mean(-1)
    return 1 - mean.mean() if complement else mean.mean()


def dice_absent_one(logits, target, ignore_index=255):
    return _dice(logits, target, ignore_index, absent="one")


def dice_absent_zero(logits, target, ignore_index=255):
    return _dice(logits, target, ignore_index, absent="all")


def dice_smooth_all(logits, target, ignore_index=255):
    return _dice(logits, target, ignore_index, absent="all", smooth=1.0)


def dice_smooth(logits, target, ignore_index=255):
    return _dice(logits, target, ignore_index, smooth=1.0)


def dice_nan(logits, target, ignore_index=255):
    return _dice(logits, target, ignore_index, guard=False)


def dice_argmax(logits, target, ignore_index=255):
    return _dice(logits, target, ignore_index, activation="argmax")


def dice_sigmoid(logits, target, ignore_index=255):
    return _dice(logits, target, ignore_index, activation="sigmoid")


def dice_raw_logits(logits, target, ignore_index=255):
    return _dice(logits, target, ignore_index, activation="raw")


def dice_softmax_last(logits, target, ignore_index=255):
    return _dice(logits, target, ignore_index, activation="last")


def dice_ignored_probs(logits, target, ignore_index=255):
    return _dice(logits, target, ignore_index, mask_probs=False)


def dice_ignored_class0(logits, target, ignore_index=255):
    return _dice(logits, target, ignore_index, ignored_as=0)


def dice_ignored_clamped(logits, target, ignore_index=255):
    return _dice(logits, target, ignore_index, ignored_as=logits.shape[1] - 1)


def dice_per_image(logits, target, ignore_index=255):
    return _dice(logits, target, ignore_index, dims=(2, 3))


def dice_pooled(logits, target, ignore_index=255):
    valid = target != ignore_index
    probs = logits.softmax(1) * valid[:, None]
    one_hot = F.one_hot(target.where(valid, 0), logits.shape[1]).permute(0, 3, 1, 2)
    one_hot = one_hot * valid[:, None]
    return 1 - 2 * (probs * one_hot).sum() / (probs.sum() + one_hot.sum())


def dice_no_factor_2(logits, target, ignore_index=255):
    return _dice(logits, target, ignore_index, factor=1.0)


def dice_vnet(logits, target, ignore_index=255):
    return _dice(logits, target, ignore_index, power=2)


def dice_coefficient(logits, target, ignore_index=255):
    return _dice(logits, target, ignore_index, complement=False)


def dice_per_class(logits, target, ignore_index=255):
    return _dice(logits, target, ignore_index, reduce=False)


def dice_item(logits, target, ignore_index=255):
    return _dice(logits, target, ignore_index).item()


def dice_float32(logits, target, ignore_index=255):
    return _dice(logits.float(), target, ignore_index)


def dice_hardcoded_255(logits, target, ignore_index=255):
    return _dice(logits, target, 255)
