"""Pictures for the notebooks, with matplotlib only (``cv2.imshow`` is disabled on Colab).

Every function draws on an ``ax`` it is given, or on a new figure, and returns the
axes (or ``fig, axes``) so that a notebook can add to the picture and a test can
inspect what was drawn. End a notebook line with ``;`` to hide the returned object's
text. Inputs follow the course's conventions:

* images: float tensors (C, H, W) in [0, 1] (``tv_tensors.Image`` included), or uint8
  arrays (H, W, 3) as ``skimage``/``PIL`` give them;
* boxes: float (N, 4) ``(x1, y1, x2, y2)`` in absolute pixels;
* detection labels: 1..K, 0 = background; ``class_names[k - 1]`` names label ``k``
  (default: ``course_utils.data.scenes.THING_CLASSES``);
* semantic maps: integer (H, W) ids ``0..C-1`` (255 = ignored); ``class_names[i]`` names
  id ``i`` (default: ``course_utils.data.scenes.SEMANTIC_CLASSES``).

Colours are fixed, so a class has the same colour in every notebook: :data:`PALETTE`
gives semantic id ``i`` the colour ``PALETTE[i]``; the stuff classes (sky, grass,
gravel, brick) get muted colours and the things (disk, triangle, star) saturated
ones, and a detection label ``k`` is drawn in its thing colour ``THING_PALETTE[k - 1]``,
the same as in the semantic maps.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.patches import Patch, Rectangle

from course_utils.core import validate


def _rgb(red: int, green: int, blue: int) -> tuple[float, float, float]:
    return (red / 255, green / 255, blue / 255)


#: Muted colours for the stuff classes, in ``STUFF_CLASSES`` order (sky, grass, gravel, brick).
STUFF_PALETTE: tuple[tuple[float, float, float], ...] = (
    _rgb(140, 190, 235),  # sky: pale blue
    _rgb(105, 155, 75),  # grass: olive green
    _rgb(150, 145, 135),  # gravel: warm grey
    _rgb(165, 90, 70),  # brick: brick red
)

#: Saturated colours for detection labels 1, 2, 3, ... (``THING_PALETTE[k - 1]`` is label k).
THING_PALETTE: tuple[tuple[float, float, float], ...] = (
    _rgb(255, 127, 0),  # disk: orange
    _rgb(230, 30, 230),  # triangle: magenta
    _rgb(255, 230, 0),  # star: yellow
    _rgb(0, 225, 225),  # cyan
    _rgb(225, 20, 40),  # red
    _rgb(40, 80, 255),  # blue
    _rgb(120, 255, 60),  # lime
    _rgb(130, 40, 200),  # purple
    _rgb(255, 130, 190),  # pink
    _rgb(0, 130, 120),  # teal
)

#: Semantic id -> colour: the stuff colours, then the thing colours (``SEMANTIC_CLASSES`` order).
PALETTE: tuple[tuple[float, float, float], ...] = STUFF_PALETTE + THING_PALETTE

#: Colour of detection label 0 (background), e.g. negative windows.
BACKGROUND_COLOR: tuple[float, float, float] = (0.75, 0.75, 0.75)

IGNORE_INDEX = 255

_BOOKKEEPING_KEYS = frozenset(
    {
        "step",
        "loss",
        "lr",
        "learning_rate",
        "epoch",
        "time",
        "elapsed",
        "elapsed_s",
        "seconds",
        "wall_s",
        "batch_size",
        "images_per_s",
        "samples",
        "grad_norm",
    }
)


# --------------------------------------------------------------------------- conversions


def _as_tensor(value, name: str) -> torch.Tensor:
    """A plain CPU tensor (detached, tv_tensor wrapper removed) from a tensor, array or list."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().as_subclass(torch.Tensor)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, (list, tuple)):
        return torch.as_tensor(value)
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")


def _default_names(attribute: str) -> Sequence[str] | None:
    """Class names from ``course_utils.data.scenes`` (imported only when needed)."""
    try:
        from course_utils.data import scenes
    except ImportError:
        return None
    return getattr(scenes, attribute, None)


def to_display_array(image) -> np.ndarray:
    """The image as matplotlib shows it: float array (H, W, 3) or (H, W) in [0, 1].

    Accepts a float tensor (C, H, W) in [0, 1] with C = 1 or 3 (``tv_tensors.Image``
    included), a uint8 tensor (C, H, W), a uint8 array (H, W, 3) / (H, W), a float array
    (H, W, 3) / (H, W) in [0, 1], or a PIL image.
    """
    if type(image).__module__.startswith("PIL"):
        image = np.asarray(image)
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().as_subclass(torch.Tensor)
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
    if isinstance(image, np.ndarray):
        if image.ndim == 3 and image.shape[-1] == 4:
            image = image[..., :3]
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 3)):
            hint = (
                " (looks like CHW: use image.transpose(1, 2, 0))"
                if image.ndim == 3 and image.shape[0] in (1, 3)
                else ""
            )
            raise ValueError(
                f"image array must be (H, W, 3) or (H, W), got shape {image.shape}{hint}"
            )
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
    raise TypeError(
        "image must be a float tensor (C, H, W) in [0, 1], a tv_tensors.Image or a uint8 array "
        f"(H, W, 3), got {type(image).__name__}"
    )


def _new_axes(ax: Axes | None, size: float = 4.0) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=(size, size))
    elif not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    return ax


# --------------------------------------------------------------------------- colours


def _extra_color(index: int) -> tuple[float, float, float]:
    """A fixed colour for ids beyond the palette (golden-ratio hue steps)."""
    hue = (index * 0.618033988749895) % 1.0
    return colorsys.hsv_to_rgb(hue, 0.75, 0.95)


def semantic_color(class_id: int) -> tuple[float, float, float]:
    """The fixed RGB colour (floats in [0, 1]) of semantic id ``class_id``: ``PALETTE[class_id]``."""
    class_id = int(class_id)
    if class_id < 0:
        raise ValueError(f"class_id must be >= 0, got {class_id}")
    return PALETTE[class_id] if class_id < len(PALETTE) else _extra_color(class_id)


def label_color(label: int) -> tuple[float, float, float]:
    """The fixed RGB colour of detection label ``label`` (1..K; 0 = background is light grey).

    Label ``k`` gets ``THING_PALETTE[k - 1]``, the colour of the same thing in semantic maps.
    """
    label = int(label)
    if label < 0:
        raise ValueError(f"label must be >= 0 (0 = background), got {label}")
    if label == 0:
        return BACKGROUND_COLOR
    return (
        THING_PALETTE[label - 1]
        if label <= len(THING_PALETTE)
        else _extra_color(label + len(STUFF_PALETTE))
    )


def instance_color(index: int) -> tuple[float, float, float]:
    """The colour of the ``index``-th instance in :func:`overlay_instance_masks` (tab20, cycled)."""
    colors = plt.get_cmap("tab20").colors
    return tuple(colors[int(index) % len(colors)])


# --------------------------------------------------------------------------- images


def show_image(image, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Show one image (see :func:`to_display_array` for what is accepted) without axis ticks.

    Returns the axes, so boxes or masks can be drawn on top.
    """
    array = to_display_array(image)
    ax = _new_axes(ax)
    ax.imshow(
        array, cmap="gray" if array.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest"
    )
    ax.set_axis_off()
    if title is not None:
        ax.set_title(str(title), fontsize=9)
    return ax


def image_grid(
    images,
    ncols: int = 4,
    titles: Sequence[str] | None = None,
    figsize: tuple[float, float] | None = None,
):
    """Show images in a grid; returns ``fig, axes`` with ``axes`` a flat array (one per cell).

    ``images``: a sequence of images, or a batch tensor (B, C, H, W). An entry ``None``
    leaves its cell empty for the caller to draw on (``axes[i]``). Cells after the last
    image are hidden.
    """
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive int, got {ncols!r}")
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


# --------------------------------------------------------------------------- boxes


def _as_xyxy(boxes) -> torch.Tensor:
    """Boxes as a float (N, 4) xyxy tensor; a ``BoundingBoxes`` in another format is converted."""
    fmt = getattr(boxes, "format", None)
    tensor = _as_tensor(boxes, "boxes")
    if tensor.ndim == 1 and tensor.numel() == 0:
        tensor = tensor.reshape(0, 4)
    if tensor.ndim == 1 and tensor.numel() == 4:
        tensor = tensor[None]
    if not tensor.is_floating_point() and tensor.dtype != torch.bool:
        tensor = tensor.float()
    if fmt is not None and getattr(fmt, "name", "XYXY") != "XYXY":
        from torchvision.ops import box_convert

        tensor = box_convert(tensor, fmt.name.lower(), "xyxy")
    return validate.check_boxes(tensor, "boxes")


def class_name(label: int, class_names: Sequence[str] | None) -> str:
    """The caption of detection label ``label``: ``class_names[label - 1]``, "background" for 0."""
    label = int(label)
    if label == 0:
        return "background"
    if class_names is not None and 1 <= label <= len(class_names):
        return str(class_names[label - 1])
    return f"class {label}"


def draw_boxes(
    ax: Axes,
    boxes,
    labels=None,
    scores=None,
    class_names: Sequence[str] | None = None,
    color=None,
    linestyle: str = "-",
    linewidth: float = 2.0,
    captions: bool = True,
    caption_at: str = "top",
) -> Axes:
    """Draw boxes (N, 4) ``(x1, y1, x2, y2)`` pixels on ``ax``, one colour per class.

    ``labels`` (N,) ints 1..K pick the colour (:func:`label_color`) and the caption
    ``class_names[k - 1]`` (default ``THING_CLASSES``); ``scores`` (N,) floats are added to
    the caption as ``"disk 0.93"``. ``color`` overrides the class colours for every box.
    ``caption_at`` is "top" (above the box) or "bottom" (inside its lower edge).
    Returns ``ax``; each box is one ``Rectangle`` in ``ax.patches``, each caption one text.
    """
    if not isinstance(ax, Axes):
        raise TypeError(
            f"ax must be a matplotlib Axes (e.g. from show_image), got {type(ax).__name__}"
        )
    if caption_at not in ("top", "bottom"):
        raise ValueError(f"caption_at must be 'top' or 'bottom', got {caption_at!r}")
    boxes = _as_xyxy(boxes)
    count = boxes.shape[0]
    if labels is not None:
        labels = validate.check_labels(_as_tensor(labels, "labels").reshape(-1), count)
    if scores is not None:
        scores = _as_tensor(scores, "scores").reshape(-1)
        if scores.shape[0] != count:
            raise ValueError(
                f"scores must have one entry per box: {count} boxes but {scores.shape[0]} scores"
            )
    if labels is not None and class_names is None:
        class_names = _default_names("THING_CLASSES")
    for index in range(count):
        x1, y1, x2, y2 = boxes[index].tolist()
        label = None if labels is None else int(labels[index])
        box_color = (
            color
            if color is not None
            else (label_color(label) if label is not None else THING_PALETTE[0])
        )
        ax.add_patch(
            Rectangle(
                (x1, y1),
                x2 - x1,
                y2 - y1,
                fill=False,
                edgecolor=box_color,
                linewidth=linewidth,
                linestyle=linestyle,
            )
        )
        parts = []
        if label is not None:
            parts.append(class_name(label, class_names))
        if scores is not None:
            parts.append(f"{float(scores[index]):.2f}")
        if captions and parts:
            y, va = (y1, "bottom") if caption_at == "top" else (y2, "top")
            ax.text(
                x1,
                y,
                " ".join(parts),
                fontsize=7,
                color="black",
                va=va,
                ha="left",
                clip_on=True,
                bbox={"facecolor": box_color, "alpha": 0.75, "pad": 1, "edgecolor": "none"},
            )
    return ax


def show_detections(
    image,
    target: Mapping | None = None,
    prediction: Mapping | None = None,
    score_threshold: float = 0.5,
    class_names: Sequence[str] | None = None,
    ax: Axes | None = None,
    show_masks: bool = False,
    title: str | None = None,
) -> Axes:
    """Show an image with ground truth boxes (dashed) and predicted boxes (solid).

    ``target``: dict with ``boxes`` (N, 4) xyxy pixels and ``labels`` (N,), as the datasets
    return. ``prediction``: dict as torchvision detectors return (``boxes``, ``labels``,
    ``scores``; optional ``masks`` (M, 1, H, W) probabilities); only predictions with
    ``score >= score_threshold`` are drawn. ``show_masks`` overlays the predicted masks
    (or, without a prediction, the target's). Returns the axes.
    """
    if not 0.0 <= float(score_threshold) <= 1.0:
        raise ValueError(f"score_threshold must lie in [0, 1], got {score_threshold}")
    ax = show_image(image, ax=ax)
    height, width = to_display_array(image).shape[:2]
    masks_to_show = None
    parts = []
    if target is not None:
        validate.check_target(
            {
                key: _as_tensor(value, f"target['{key}']")
                for key, value in target.items()
                if key in ("boxes", "labels", "masks")
            },
            canvas_size=(height, width),
        )
        draw_boxes(
            ax,
            target["boxes"],
            target["labels"],
            class_names=class_names,
            linestyle="--",
            linewidth=1.5,
            caption_at="bottom",
        )
        parts.append(f"truth (dashed): {len(target['labels'])}")
        masks_to_show = target.get("masks")
    if prediction is not None:
        if not isinstance(prediction, Mapping) or "boxes" not in prediction:
            raise TypeError(
                "prediction must be a dict with 'boxes', 'labels' and 'scores' (a torchvision "
                f"detector's output for one image), got {type(prediction).__name__}"
            )
        boxes = _as_xyxy(prediction["boxes"])
        keep = torch.ones(boxes.shape[0], dtype=torch.bool)
        scores = None
        if prediction.get("scores") is not None:
            scores = _as_tensor(prediction["scores"], "prediction['scores']").reshape(-1).float()
            if scores.shape[0] != boxes.shape[0]:
                raise ValueError(
                    f"prediction has {boxes.shape[0]} boxes but {scores.shape[0]} scores"
                )
            keep = scores >= score_threshold
            scores = scores[keep]
        labels = prediction.get("labels")
        labels = (
            None if labels is None else _as_tensor(labels, "prediction['labels']").reshape(-1)[keep]
        )
        draw_boxes(ax, boxes[keep], labels, scores, class_names=class_names, linestyle="-")
        parts.append(f"predicted (solid, score ≥ {score_threshold:.2f}): {int(keep.sum())}")
        if prediction.get("masks") is not None:
            masks_to_show = _as_tensor(prediction["masks"], "prediction['masks']")[keep]
    if show_masks and masks_to_show is not None:
        overlay_instance_masks(ax, masks_to_show)
    ax.set_title(title if title is not None else "\n".join(parts), fontsize=8)
    return ax


# --------------------------------------------------------------------------- masks


def _binary_masks(masks, threshold: float) -> torch.Tensor:
    """Masks as bool (N, H, W): (N, 1, H, W) is squeezed, float probabilities are thresholded."""
    masks = _as_tensor(masks, "masks")
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.ndim == 2:
        masks = masks[None]
    if masks.is_floating_point():
        masks = masks > threshold
    return validate.check_masks(masks, name="masks").bool()


def overlay_instance_masks(
    ax_or_image,
    masks,
    labels=None,
    alpha: float = 0.5,
    class_names: Sequence[str] | None = None,
    threshold: float = 0.5,
) -> Axes:
    """Colour each instance mask in its own colour (:func:`instance_color`), with its outline.

    ``ax_or_image``: axes to draw on, or an image to show first. ``masks``: bool/uint8
    (N, H, W), or float probabilities (N, H, W) / (N, 1, H, W) cut at ``threshold``.
    ``labels`` (N,) optional: each instance is captioned with its class name. Returns the
    axes; the colours are one ``AxesImage`` (RGBA, transparent outside the masks).
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    masks = _binary_masks(masks, threshold)
    if isinstance(ax_or_image, Axes):
        ax = ax_or_image
    else:
        height, width = to_display_array(ax_or_image).shape[:2]
        if tuple(masks.shape[-2:]) != (height, width):
            raise ValueError(
                f"masks must be {(height, width)} like the image, got {tuple(masks.shape[-2:])}"
            )
        ax = show_image(ax_or_image)
    if labels is not None:
        labels = validate.check_labels(_as_tensor(labels, "labels").reshape(-1), masks.shape[0])
        if class_names is None:
            class_names = _default_names("THING_CLASSES")
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
    """The colour picture of a semantic map: float array (H, W, 3), ``PALETTE[id]`` per pixel.

    Ignored pixels (255) are black.
    """
    semantic = validate.check_semantic(_as_tensor(semantic, "semantic"), num_classes).long().numpy()
    top = int(semantic[semantic != IGNORE_INDEX].max(initial=0))
    colors = np.array(
        [semantic_color(index) for index in range(max(top + 1, len(PALETTE)))], dtype=np.float32
    )
    rgb = colors[np.where(semantic == IGNORE_INDEX, 0, semantic)]
    rgb[semantic == IGNORE_INDEX] = 0.0
    return rgb


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
    ``semantic``: integer (H, W) ids ``0..len(class_names)-1`` (255 = ignored, left
    transparent), or float scores (C, H, W) (e.g. logits), shown as their argmax.
    ``class_names`` defaults to ``SEMANTIC_CLASSES``. The legend lists every class, so it
    doubles as the palette's key. Returns the axes.
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    semantic = _as_tensor(semantic, "semantic")
    if semantic.ndim == 3 and semantic.is_floating_point():
        semantic = semantic.argmax(0)
    if class_names is None:
        class_names = _default_names("SEMANTIC_CLASSES")
    num_classes = None if class_names is None else len(class_names)
    canvas = None
    if image is not None:
        canvas = to_display_array(image).shape[:2]
    semantic = validate.check_semantic(semantic, num_classes, canvas_size=canvas)
    if image is None:
        ax = _new_axes(ax)
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
        count = (
            num_classes
            if num_classes is not None
            else int(semantic.numpy()[~ignored].max(initial=0)) + 1
        )
        handles = [
            Patch(
                facecolor=semantic_color(index),
                edgecolor="black",
                linewidth=0.5,
                label=str(class_names[index]) if class_names is not None else f"class {index}",
            )
            for index in range(count)
        ]
        if ignored.any():
            handles.append(
                Patch(facecolor="none", edgecolor="black", linewidth=0.5, label="ignored (255)")
            )
        ax.legend(
            handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False
        )
    return ax


# --------------------------------------------------------------------------- training curves


def smooth(values, weight: float = 0.9) -> np.ndarray:
    """Exponential moving average with bias correction (as TensorBoard's smoothing).

    ``values`` (T,) -> (T,); ``weight`` in [0, 1): 0 returns the values unchanged.
    """
    if not 0.0 <= float(weight) < 1.0:
        raise ValueError(f"weight must lie in [0, 1), got {weight}")
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    out = np.empty_like(values)
    average = 0.0
    for index, value in enumerate(values):
        average = weight * average + (1 - weight) * value
        out[index] = average / (1 - weight ** (index + 1))
    return out


def _flatten_record(record: Mapping) -> dict:
    """One flat dict per step: nested ``components`` (loss parts) are merged as they are and
    nested ``val`` metrics with a ``val_`` prefix (the layout of ``course_utils.engine.train.History``)."""
    flat = {key: value for key, value in record.items() if key not in ("components", "val")}
    components = record.get("components")
    if isinstance(components, Mapping):
        flat.update(components)
    val = record.get("val")
    if isinstance(val, Mapping):
        flat.update(
            {
                key if str(key).startswith("val") else f"val_{key}": value
                for key, value in val.items()
            }
        )
    return flat


def _history_records(history) -> list[dict]:
    records = getattr(history, "records", history)
    if not isinstance(records, Sequence) or isinstance(records, str):
        raise TypeError(
            "history must be a History (with .records) or a list of dicts like "
            f"{{'step': 10, 'loss': 0.5}}, got {type(history).__name__}"
        )
    for index, record in enumerate(records):
        if not isinstance(record, Mapping) or "step" not in record:
            raise ValueError(
                f"history record {index} must be a dict with a 'step' key, got {record!r}"
            )
    return [_flatten_record(record) for record in records]


def _is_number(value) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _series(records: Sequence[Mapping], key: str) -> tuple[np.ndarray, np.ndarray]:
    points = [(float(r["step"]), float(r[key])) for r in records if _is_number(r.get(key))]
    array = np.array(points, dtype=np.float64).reshape(-1, 2)
    return array[:, 0], array[:, 1]


def _numeric_keys(records: Sequence[Mapping]) -> list[str]:
    """Every key with a number somewhere, in order of first appearance, bookkeeping excluded."""
    keys: list[str] = []
    for record in records:
        keys.extend(
            key
            for key, value in record.items()
            if key not in _BOOKKEEPING_KEYS and key not in keys and _is_number(value)
        )
    return keys


def _is_validation_metric(key: str) -> bool:
    return key.startswith("val") and "loss" not in key


def plot_history(
    history,
    smoothing: float = 0.9,
    metrics: Sequence[str] | None = None,
    components: bool = True,
    ax: Axes | None = None,
    log_loss: bool = False,
):
    """Plot a training run: the loss per step (raw, faint) with its smoothed curve, and the
    validation metrics on a second y axis.

    ``history``: a ``course_utils.engine.train.History`` (its ``.records``; nested ``components``
    and ``val`` dicts are understood) or a list of dicts, each with ``step`` and any of
    ``loss``, loss components and ``val_*`` metrics (e.g. ``{"step": 100, "val_mAP": 0.4}``).
    ``metrics``: the keys for the second axis (default: the keys starting with "val",
    except validation losses, which share the loss axis). ``components``: also draw the
    other numeric keys (loss parts such as ``loss_box_reg``; bookkeeping like ``lr`` is
    skipped), smoothed, on the loss axis.
    Returns ``fig, (loss_ax, metric_ax)``; ``metric_ax`` is None without metrics.
    """
    if not 0.0 <= float(smoothing) < 1.0:
        raise ValueError(f"smoothing must lie in [0, 1), got {smoothing}")
    records = _history_records(history)
    steps, losses = _series(records, "loss")
    numeric = _numeric_keys(records)
    if metrics is None:
        metric_keys = [key for key in numeric if _is_validation_metric(key)]
    else:
        metric_keys = list(metrics)
        missing = [key for key in metric_keys if key not in numeric]
        if missing:
            raise ValueError(
                f"metrics {missing} have no numbers in the history's records (numeric keys: {numeric})"
            )
    loss_keys = [
        key
        for key in numeric
        if key not in metric_keys
        and not _is_validation_metric(key)
        and (components or key.startswith("val"))
    ]
    if steps.size == 0 and not metric_keys and not loss_keys:
        raise ValueError("history has no 'loss' and no metric values to plot")
    created = ax is None
    if created:
        fig, ax = plt.subplots(figsize=(6, 3.5))
    else:
        fig = ax.figure
    color_cycle = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4)
    loss_color = next(color_cycle)
    if steps.size:
        ax.plot(steps, losses, color=loss_color, alpha=0.3, linewidth=1, label="loss")
        if smoothing > 0:
            ax.plot(
                steps,
                smooth(losses, smoothing),
                color=loss_color,
                linewidth=2,
                label=f"loss (smoothed {smoothing})",
            )
    for key in loss_keys:
        key_steps, values = _series(records, key)
        dense = key_steps.size > 0.5 * max(steps.size, 1)
        ax.plot(
            key_steps,
            smooth(values, smoothing) if dense and smoothing > 0 else values,
            marker=None if dense else "o",
            markersize=3,
            linewidth=1.2,
            color=next(color_cycle),
            label=key,
        )
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if log_loss:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    metric_ax = None
    handles, names = ax.get_legend_handles_labels()
    if metric_keys:
        metric_ax = ax.twinx()
        for key in metric_keys:
            key_steps, values = _series(records, key)
            metric_ax.plot(
                key_steps,
                values,
                marker="o",
                markersize=3,
                linewidth=1.5,
                color=next(color_cycle),
                label=key,
            )
        metric_ax.set_ylabel("validation")
        more_handles, more_names = metric_ax.get_legend_handles_labels()
        handles, names = handles + more_handles, names + more_names
    ax.legend(handles, names, fontsize=7, loc="best")
    if created:
        fig.tight_layout()
    return fig, (ax, metric_ax)
