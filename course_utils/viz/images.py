"""Showing images: one picture (:func:`show_image`) or a grid of them (:func:`image_grid`).

Accepted images (see :func:`to_display_array`): float tensors (C, H, W) in [0, 1]
(``tv_tensors.Image`` included), uint8 tensors (C, H, W), uint8 arrays (H, W, 3) as
``skimage``/``PIL`` give them, float arrays (H, W, 3) in [0, 1], PIL images.

Also the two helpers the other ``viz`` modules share: :func:`as_cpu_tensor` and
:func:`new_axes`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes

from course_utils.core import validate
from course_utils.core.tensors import plain

__all__ = ["image_grid", "show_image", "to_display_array"]


def as_cpu_tensor(value, name: str) -> torch.Tensor:
    """A plain CPU tensor (detached, tv_tensor wrapper removed) from a tensor, array or list.

    Raises ``TypeError`` naming ``name`` for anything else.
    """
    if isinstance(value, torch.Tensor):
        return plain(value.detach().cpu())
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, (list, tuple)):
        return torch.as_tensor(value)
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")


def new_axes(ax: Axes | None, size: float = 4.0) -> Axes:
    """``ax`` itself, or the axes of a new ``size`` x ``size`` inch figure when ``ax`` is None."""
    if ax is None:
        _, ax = plt.subplots(figsize=(size, size))
    elif not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    return ax


def _tensor_display_array(image: torch.Tensor) -> np.ndarray:
    """A tensor (C, H, W) or (H, W), float in [0, 1] or uint8, as float (H, W, C) / (H, W)."""
    image = plain(image.detach().cpu())
    if image.ndim == 4:
        raise ValueError(
            f"image must be a single image (C, H, W), got a batch of shape {tuple(image.shape)}:"
            " pick one with images[0]"
        )
    if image.ndim == 2:
        image = image[None]
    if image.dtype == torch.uint8:
        image = image.float() / 255
    validate.check_image(image, "image")
    array = image.permute(1, 2, 0).numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def _numpy_display_array(image: np.ndarray) -> np.ndarray:
    """An array (H, W, 3|4|1) or (H, W), uint8 or float in [0, 1], as float32 in [0, 1]."""
    if image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 3)):
        hint = (
            " (looks like CHW: use image.transpose(1, 2, 0))"
            if image.ndim == 3 and image.shape[0] in (1, 3)
            else ""
        )
        raise ValueError(f"image array must be (H, W, 3) or (H, W), got shape {image.shape}{hint}")
    if image.dtype == np.uint8:
        array = image.astype(np.float32) / 255
    elif np.issubdtype(image.dtype, np.floating):
        low, high = (float(image.min()), float(image.max())) if image.size else (0.0, 0.0)
        if low < -1e-3 or high > 1 + 1e-3:
            raise ValueError(
                f"a float image array must lie in [0, 1], got range [{low:.3g}, {high:.3g}]"
                + (
                    " (values look like 0-255: use a uint8 array or divide by 255)"
                    if high > 1.5
                    else ""
                )
            )
        array = image.astype(np.float32)
    else:
        raise TypeError(
            f"image array must be uint8 (0-255) or float in [0, 1], got dtype {image.dtype}"
        )
    return array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array


def to_display_array(image) -> np.ndarray:
    """The image as matplotlib shows it: float array (H, W, 3) or (H, W) in [0, 1].

    Accepts a float tensor (C, H, W) in [0, 1] with C = 1 or 3 (``tv_tensors.Image``
    included), a uint8 tensor (C, H, W), a uint8 array (H, W, 3) / (H, W), a float array
    (H, W, 3) / (H, W) in [0, 1], or a PIL image.
    """
    if type(image).__module__.startswith("PIL"):
        image = np.asarray(image)
    if isinstance(image, torch.Tensor):
        return _tensor_display_array(image)
    if isinstance(image, np.ndarray):
        return _numpy_display_array(image)
    raise TypeError(
        "image must be a float tensor (C, H, W) in [0, 1], a tv_tensors.Image or a uint8 array "
        f"(H, W, 3), got {type(image).__name__}"
    )


def show_image(image, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Show one image (see :func:`to_display_array` for what is accepted) without axis ticks.

    Returns the axes, so boxes or masks can be drawn on top.
    """
    array = to_display_array(image)
    ax = new_axes(ax)
    ax.imshow(
        array, cmap="gray" if array.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest"
    )
    ax.set_axis_off()
    if title is not None:
        ax.set_title(str(title), fontsize=9)
    return ax


def _check_grid_arguments(images, ncols: int, titles: Sequence[str] | None) -> list:
    """``images`` as a list (a (B, C, H, W) batch is split), after checking the arguments."""
    validate.check_int(ncols, "ncols")
    if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim == 4:
        images = list(images)
    if not isinstance(images, Sequence) or isinstance(images, str):
        raise TypeError(
            f"images must be a list of images or a (B, C, H, W) tensor, got {type(images).__name__}"
        )
    if len(images) == 0:
        raise ValueError("images is empty: nothing to show")
    if titles is not None and len(titles) != len(images):
        raise ValueError(
            f"titles must have one entry per image: {len(images)} images but {len(titles)} titles"
        )
    return list(images)


def image_grid(
    images,
    ncols: int = 4,
    titles: Sequence[str] | None = None,
    figsize: tuple[float, float] | None = None,
):
    """Show images in a grid; returns ``fig, axes`` with ``axes`` a flat array (one per cell).

    ``images``: a sequence of images, or a batch tensor (B, C, H, W). An entry ``None``
    leaves its cell empty for the caller to draw on (``axes[i]``). Cells after the last
    image are hidden. ``ncols`` (int >= 1) is the most columns; never more than images.
    """
    images = _check_grid_arguments(images, ncols, titles)
    columns = min(ncols, len(images))
    rows = math.ceil(len(images) / columns)
    if figsize is None:
        figsize = (2.6 * columns, 2.6 * rows + (0.3 * rows if titles is not None else 0))
    fig, axes = plt.subplots(rows, columns, figsize=figsize, squeeze=False)
    axes = axes.ravel()
    for index, ax in enumerate(axes):
        if index >= len(images):
            ax.set_visible(False)
            continue
        title = None if titles is None else titles[index]
        if images[index] is None:
            ax.set_axis_off()
            if title is not None:
                ax.set_title(str(title), fontsize=9)
        else:
            show_image(images[index], ax=ax, title=title)
    fig.tight_layout()
    return fig, axes
