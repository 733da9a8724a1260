"""Checks for the U-Net loss assignments (notebook 11): the border weight map and the Dice loss.

* ``border_weight_map(instance_masks, w0, sigma) -> w``: float32 ``(H, W)``, the paper's
  equation 2 with ``w_c = 1``: ``1 + w0 * exp(-(d1 + d2)**2 / (2 sigma**2))`` on the background
  pixels when there are two objects or more, 1 elsewhere (CPU only: scipy's distance transform);
* ``dice_loss(logits, target, ignore_index) -> loss``: a 0-dim tensor, 1 - the mean soft Dice
  of the classes present in the target, sums over the whole batch (every available device).

The references are the course's ``course_utils.segmentation.unet_losses`` functions. Each
comparator recognises the usual mistakes from the case's inputs (``_unet_loss_cases``) and names
them. The runner calls the student's function on detached copies of the inputs, so the loss's
gradient is not compared directly: the values on several random logits pin the soft formula
down, and the hard (argmax) Dice, which has no gradient, is recognised by its value.

Usage in a notebook::

    check_border_weight_map(border_weight_map)   # graded cell: raises on a wrong answer
    check_dice_loss(dice_loss)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from course_utils.grading.assignments import assignment_check
from course_utils.grading.checks._unet_loss_cases import (
    border_weight_map_cases,
    dice_loss_cases,
    dice_variants,
    weight_map_variants,
)
from course_utils.grading.compare import not_a_tensor_problem, tensor_type_problem
from course_utils.grading.runner import Case
from course_utils.segmentation import unet_losses

__all__ = [
    "CHECKS",
    "border_weight_map_cases",
    "check_border_weight_map",
    "check_dice_loss",
    "dice_loss_cases",
]

_ATOL, _RTOL = 1e-4, 1e-4  # weights up to 1 + w0 in float32; distances from float64 or float32


# ----------------------------------------------------------------------------------------------
# border_weight_map
# ----------------------------------------------------------------------------------------------


def _map_type_problem(got: Any, expected: torch.Tensor) -> str | None:
    """A float32 tensor of the masks' (H, W) shape, on their device."""
    problem = not_a_tensor_problem(got)
    if problem:
        return problem
    if got.shape != expected.shape:
        text = f"returned shape {tuple(got.shape)}, expected {tuple(expected.shape)} = (H, W)"
        if got.shape == expected.shape[::-1]:
            return text + ": it looks transposed; keep the masks' (H, W) order (rows are y)."
        return text + ", one weight per pixel: the masks' last two dimensions."
    if got.dtype != expected.dtype:
        return (
            f"returned dtype {got.dtype}, expected torch.float32: numpy and scipy compute in "
            "float64; convert the result with torch.from_numpy(w).float()."
        )
    return tensor_type_problem(got, expected)


def _pixel_text(case: Case, expected: torch.Tensor, got: torch.Tensor, close) -> str:
    """The first wrong pixel: where, expected, got, and whether it is on an object."""
    y, x = (int(i) for i in np.argwhere(~close)[0])
    masks = case.args[0].bool()
    where = "on an object" if bool(masks[:, y, x].any()) else "a background pixel"
    return (
        f"at pixel (y={y}, x={x}), {where}, expected {float(expected[y, x]):.6g}, got "
        f"{float(got[y, x]):.6g} ({int((~close).sum())} of {close.size} pixels wrong)"
    )


def compare_weight_map(got: Any, expected: torch.Tensor, case: Case) -> str | None:
    """Type, shape and dtype, then the values; a wrong map is matched against the usual
    mistakes."""
    problem = _map_type_problem(got, expected)
    if problem:
        return problem
    values = got.detach().cpu().double().numpy()
    want = expected.double().numpy()
    if not np.isfinite(values).all():
        return "the map has nan or infinite values: w is finite everywhere (w = 1 + w0 * exp(...))."
    close = np.isclose(values, want, rtol=_RTOL, atol=_ATOL)
    if close.all():
        return None
    masks, w0, sigma = case.args
    objects = int(masks.flatten(1).any(1).sum())
    if objects < 2:
        return (
            f"with {objects} object{'s' if objects != 1 else ''} there is no gap between two "
            "objects: the exponential term is 0 and w = 1 everywhere; "
            + _pixel_text(case, expected, got, close)
            + "."
        )
    for text, variant in weight_map_variants(masks, w0, sigma).items():
        if np.allclose(values, variant, rtol=_RTOL, atol=_ATOL):
            return text
    return _pixel_text(case, expected, got, close) + "."


@assignment_check(
    reference=unet_losses.border_weight_map,
    cases=border_weight_map_cases,
    compare=compare_weight_map,
)
def check_border_weight_map(
    border_weight_map: Callable[..., torch.Tensor], *, quiet: bool = False
) -> None:
    """Check ``border_weight_map(instance_masks, w0, sigma) -> w``.

    instance_masks bool or uint8 (G, H, W) (G = 0 allowed); w0, sigma floats. w: float32 (H, W)
    on the masks' device, U-Net's equation 2 with w_c = 1: w = 1 + w0 * exp(-(d1 + d2)**2 / (2 *
    sigma**2)) on the pixels of no instance, d1 / d2 the Euclidean distances to the nearest
    pixel of the nearest / second nearest instance (distance_transform_edt of each mask's
    complement); w = 1 on the instances, and everywhere when there are fewer than 2 instances.
    Run on the CPU.
    """


# ----------------------------------------------------------------------------------------------
# dice_loss
# ----------------------------------------------------------------------------------------------


def _loss_type_problem(got: Any, expected: torch.Tensor, case: Case) -> str | None:
    """A 0-dim tensor of the logits' dtype, on their device."""
    problem = not_a_tensor_problem(got)
    if problem:
        if isinstance(got, float):
            problem += " A Python float has no gradient: keep the loss a tensor (no .item())."
        return problem
    if got.dim() != 0:
        classes = case.args[0].shape[1]
        per_class = f" (one value per class? there are {classes})" if got.dim() == 1 else ""
        return (
            f"returned shape {tuple(got.shape)}{per_class}, expected a 0-dim tensor (shape ()): "
            "the loss is one number, 1 - the mean Dice of the classes present in the target."
        )
    return tensor_type_problem(got, expected)


def compare_dice(got: Any, expected: torch.Tensor, case: Case) -> str | None:
    """A 0-dim tensor close to the reference's loss; a wrong value is matched against the usual
    mistakes."""
    problem = _loss_type_problem(got, expected, case)
    if problem:
        return problem
    value, want = float(got), float(expected)
    if value != value:
        return (
            "the loss is nan: a 0 / 0. Leave out the classes absent from the target, and when "
            "no pixel is valid (all ignore_index) return logits.sum() * 0."
        )
    if abs(value - want) <= 1e-5 + 1e-4 * abs(want):
        return None
    for text, variant in dice_variants(*case.args).items():
        if abs(value - variant) <= 1e-5 + 1e-4 * abs(variant):
            return text
    return f"expected {want:.6g}, got {value:.6g} (off by {value - want:+.4g})."


@assignment_check(reference=unet_losses.dice_loss, cases=dice_loss_cases, compare=compare_dice)
def check_dice_loss(dice_loss: Callable[..., torch.Tensor], *, quiet: bool = False) -> None:
    """Check ``dice_loss(logits, target, ignore_index) -> loss``.

    logits float (N, K, H, W); target int64 (N, H, W), class ids in [0, K) or ignore_index. loss:
    a 0-dim tensor of the logits' dtype and device, 1 - the mean over the classes present in the
    target (sum(t_c) > 0) of dice_c = 2 * sum(p_c * t_c) / (sum(p_c) + sum(t_c)), p =
    softmax(logits, dim=1), t the target's one-hot, both 0 on ignored pixels, sums over the whole
    batch (N, H, W); no smoothing constant; no valid pixel: logits.sum() * 0.
    """


CHECKS = (check_border_weight_map, check_dice_loss)
