"""Masks on pictures: instance masks (:func:`overlay_instance_masks`) and semantic maps
(:func:`semantic_to_rgb`, :func:`show_semantic`).

* instance masks: bool/uint8 (N, H, W), or float probabilities (N, H, W) / (N, 1, H, W)
  cut at a threshold; each instance gets its own colour (``instance_color``);
* semantic maps: integer (H, W) ids ``0..C-1`` (255 = ignored), each id in its fixed
  colour ``PALETTE[id]``.

Class names come from the caller (e.g. ``THING_CLASSES`` / ``SEMANTIC_CLASSES`` from
``course_utils.data.scenes``). Without them an instance of label ``k`` is captioned
``"class k"``, and a semantic legend names the ids ``"class 0"`` .. ``"class m"`` up to the
largest id ``m`` in the map (with names it lists every named class).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.patches import Patch

from course_utils.core import validate
from course_utils.viz.colors import PALETTE, class_name, instance_color, semantic_color
from course_utils.viz.images import as_cpu_tensor, new_axes, show_image, to_display_array

__all__ = ["IGNORE_INDEX", "overlay_instance_masks", "semantic_to_rgb", "show_semantic"]

#: The id of ignored pixels in semantic maps (drawn black by :func:`semantic_to_rgb`,
#: transparent by :func:`show_semantic`).
IGNORE_INDEX = 255


def _binary_masks(masks, threshold: float) -> torch.Tensor:
    """Masks as bool (N, H, W): (N, 1, H, W) is squeezed, float probabilities are thresholded."""
    masks = as_cpu_tensor(masks, "masks")
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.ndim == 2:
        masks = masks[None]
    if masks.is_floating_point():
        masks = masks > threshold
    return validate.check_masks(masks, name="masks").bool()


def _mask_axes(ax_or_image, masks: torch.Tensor) -> Axes:
    """The axes given, or the image shown on new axes (its size must match the masks')."""
    if isinstance(ax_or_image, Axes):
        return ax_or_image
    height, width = to_display_array(ax_or_image).shape[:2]
    if tuple(masks.shape[-2:]) != (height, width):
        raise ValueError(
            f"masks must be {(height, width)} like the image, got {tuple(masks.shape[-2:])}"
        )
    return show_image(ax_or_image)


def overlay_instance_masks(
    ax_or_image,
    masks,
    labels=None,
    alpha: float = 0.5,
    class_names: Sequence[str] | None = None,
    threshold: float = 0.5,
) -> Axes:
    """Colour each instance mask in its own colour (``instance_color(i)``), with its outline.

    ``ax_or_image``: axes to draw on, or an image to show first. ``masks``: bool/uint8
    (N, H, W), or float probabilities (N, H, W) / (N, 1, H, W) cut at ``threshold``.
    ``labels`` (N,) optional: each instance is captioned at its top-left pixel with
    ``class_names[label - 1]`` (``"class k"`` without names). Returns the axes; the colours
    are one ``AxesImage`` (RGBA, alpha ``alpha`` inside the masks, transparent outside).
    """
    alpha = validate.check_number(alpha, "alpha", 0.0, 1.0)
    masks = _binary_masks(masks, threshold)
    ax = _mask_axes(ax_or_image, masks)
    if labels is not None:
        labels = validate.check_labels(as_cpu_tensor(labels, "labels").reshape(-1), masks.shape[0])
    count, height, width = masks.shape
    overlay = np.zeros((height, width, 4), dtype=np.float32)
    for index in range(count):
        mask = masks[index].numpy()
        if not mask.any():
            continue
        color = instance_color(index)
        overlay[mask] = (*color, alpha)
        ax.contour(mask.astype(np.float32), levels=[0.5], colors=[color], linewidths=1.0)
        if labels is not None:
            ys, xs = np.nonzero(mask)
            ax.text(
                xs.min(),
                ys.min(),
                class_name(int(labels[index]), class_names),
                fontsize=7,
                va="bottom",
                clip_on=True,
                bbox={"facecolor": color, "alpha": 0.75, "pad": 1, "edgecolor": "none"},
            )
    ax.imshow(overlay, interpolation="nearest")
    return ax


def semantic_to_rgb(semantic, num_classes: int | None = None) -> np.ndarray:
    """The colour picture of a semantic map: float32 array (H, W, 3), ``PALETTE[id]`` per pixel.

    ``semantic``: integer (H, W) ids ``>= 0`` (below ``num_classes`` when given) or 255.
    Ignored pixels (255) are black.
    """
    semantic = validate.check_semantic(as_cpu_tensor(semantic, "semantic"), num_classes)
    semantic = semantic.long().numpy()
    if semantic.size and int(semantic.min()) < 0:
        raise ValueError(f"semantic must hold ids >= 0, got {int(semantic.min())}")
    top = int(semantic[semantic != IGNORE_INDEX].max(initial=0))
    colors = np.array(
        [semantic_color(index) for index in range(max(top + 1, len(PALETTE)))], dtype=np.float32
    )
    rgb = colors[np.where(semantic == IGNORE_INDEX, 0, semantic)]
    rgb[semantic == IGNORE_INDEX] = 0.0
    return rgb


def _legend(ax: Axes, class_names: Sequence[str] | None, largest_id: int, ignored: bool) -> None:
    """A legend right of ``ax``: a patch per named class (or per id ``0..largest_id`` without
    names) in its palette colour, plus "ignored (255)" when some pixels are ignored."""
    if class_names is not None:
        names = [str(name) for name in class_names]
    else:
        names = [f"class {index}" for index in range(largest_id + 1)]
    handles = [
        Patch(facecolor=semantic_color(index), edgecolor="black", linewidth=0.5, label=name)
        for index, name in enumerate(names)
    ]
    if ignored:
        handles.append(
            Patch(facecolor="none", edgecolor="black", linewidth=0.5, label="ignored (255)")
        )
    ax.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False
    )


def show_semantic(
    image,
    semantic,
    class_names: Sequence[str] | None = None,
    ax: Axes | None = None,
    legend: bool = True,
    alpha: float = 0.6,
) -> Axes:
    """Show a semantic map in the fixed :data:`PALETTE` over its image, with a legend.

    ``image``: the picture under the map, or ``None`` to show the map alone (opaque).
    ``semantic``: integer (H, W) ids (255 = ignored, left transparent), or float scores
    (C, H, W) (e.g. logits), shown as their argmax. ``class_names[i]`` names id ``i``
    (e.g. ``SEMANTIC_CLASSES``); with names, ids must lie in ``0..len(class_names)-1`` and
    the legend lists every class, so it doubles as the palette's key. Without names the
    legend lists ``"class 0"`` .. ``"class m"``, ``m`` the largest id in the map.
    Returns the axes.
    """
    alpha = validate.check_number(alpha, "alpha", 0.0, 1.0)
    semantic = as_cpu_tensor(semantic, "semantic")
    if semantic.ndim == 3 and semantic.is_floating_point():
        semantic = semantic.argmax(0)
    num_classes = None if class_names is None else len(class_names)
    canvas = None if image is None else to_display_array(image).shape[:2]
    semantic = validate.check_semantic(semantic, num_classes, canvas_size=canvas)
    if image is None:
        ax = new_axes(ax)
        ax.set_axis_off()
        alpha = 1.0
    else:
        ax = show_image(image, ax=ax)
    rgba = np.concatenate(
        [
            semantic_to_rgb(semantic, num_classes),
            np.full((*semantic.shape, 1), alpha, dtype=np.float32),
        ],
        axis=-1,
    )
    ignored = (semantic == IGNORE_INDEX).numpy()
    rgba[ignored, 3] = 0.0
    ax.imshow(rgba, interpolation="nearest")
    if legend:
        largest_id = int(semantic.numpy()[~ignored].max(initial=0))
        _legend(ax, class_names, largest_id, bool(ignored.any()))
    return ax
