"""Boxes on pictures: :func:`draw_boxes` on any axes, :func:`show_detections` for truth vs
prediction.

Boxes are float (N, 4) ``(x1, y1, x2, y2)`` in absolute pixels (a ``BoundingBoxes`` in
another format is converted). Labels are ints 1..K (0 = background): label ``k`` is drawn in
``label_color(k)`` and captioned ``class_names[k - 1]``. Class names come from the caller
(e.g. ``class_names=THING_CLASSES`` from ``course_utils.data.scenes``); without them a box
of label ``k`` is captioned ``"class k"`` (see :func:`~course_utils.viz.colors.class_name`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle
from torchvision.ops import box_convert

from course_utils.core import validate
from course_utils.viz.colors import THING_PALETTE, class_name, label_color
from course_utils.viz.images import as_cpu_tensor, show_image, to_display_array
from course_utils.viz.masks import overlay_instance_masks

__all__ = ["draw_boxes", "show_detections"]


def _as_xyxy(boxes) -> torch.Tensor:
    """Boxes as a float (N, 4) xyxy tensor; a ``BoundingBoxes`` in another format is converted."""
    fmt = getattr(boxes, "format", None)
    tensor = as_cpu_tensor(boxes, "boxes")
    if tensor.ndim == 1 and tensor.numel() == 0:
        tensor = tensor.reshape(0, 4)
    if tensor.ndim == 1 and tensor.numel() == 4:
        tensor = tensor[None]
    if not tensor.is_floating_point() and tensor.dtype != torch.bool:
        tensor = tensor.float()
    if fmt is not None and getattr(fmt, "name", "XYXY") != "XYXY":
        tensor = box_convert(tensor, fmt.name.lower(), "xyxy")
    return validate.check_boxes(tensor, "boxes")


def _check_labels_and_scores(labels, scores, count: int):
    """``labels`` as int (N,) and ``scores`` as (N,) CPU tensors (either may be None)."""
    if labels is not None:
        labels = validate.check_labels(as_cpu_tensor(labels, "labels").reshape(-1), count)
    if scores is not None:
        scores = as_cpu_tensor(scores, "scores").reshape(-1)
        if scores.shape[0] != count:
            raise ValueError(
                f"scores must have one entry per box: {count} boxes but {scores.shape[0]} scores"
            )
    return labels, scores


def _caption(ax: Axes, box: list[float], text: str, color, caption_at: str) -> None:
    """``text`` on a ``color`` background, above the box (top) or inside its lower edge."""
    x1, y1, _, y2 = box
    y, va = (y1, "bottom") if caption_at == "top" else (y2, "top")
    ax.text(
        x1,
        y,
        text,
        fontsize=7,
        color="black",
        va=va,
        ha="left",
        clip_on=True,
        bbox={"facecolor": color, "alpha": 0.75, "pad": 1, "edgecolor": "none"},
    )


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

    ``labels`` (N,) ints 1..K pick the colour (``label_color``) and the caption
    ``class_names[k - 1]`` (``"class k"`` without ``class_names``); ``scores`` (N,) floats
    are added to the caption as ``"disk 0.93"``. ``color`` overrides the class colours for
    every box (without labels and color: ``THING_PALETTE[0]``). ``caption_at`` is "top"
    (above the box) or "bottom" (inside its lower edge); ``captions=False`` draws none.
    Returns ``ax``; each box is one ``Rectangle`` in ``ax.patches``, each caption one text.
    """
    if not isinstance(ax, Axes):
        raise TypeError(
            f"ax must be a matplotlib Axes (e.g. from show_image), got {type(ax).__name__}"
        )
    if caption_at not in ("top", "bottom"):
        raise ValueError(f"caption_at must be 'top' or 'bottom', got {caption_at!r}")
    boxes = _as_xyxy(boxes)
    labels, scores = _check_labels_and_scores(labels, scores, boxes.shape[0])
    for index, box in enumerate(boxes.tolist()):
        label = None if labels is None else int(labels[index])
        if color is not None:
            box_color = color
        else:
            box_color = label_color(label) if label is not None else THING_PALETTE[0]
        x1, y1, x2, y2 = box
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
        parts = [] if label is None else [class_name(label, class_names)]
        if scores is not None:
            parts.append(f"{float(scores[index]):.2f}")
        if captions and parts:
            _caption(ax, box, " ".join(parts), box_color, caption_at)
    return ax


def _draw_target(ax: Axes, target: Mapping, canvas_size, class_names) -> int:
    """The target's boxes dashed, captioned inside their lower edge; returns their number."""
    validate.check_target(
        {
            key: as_cpu_tensor(value, f"target['{key}']")
            for key, value in target.items()
            if key in ("boxes", "labels", "masks")
        },
        canvas_size=canvas_size,
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
    return len(target["labels"])


def _draw_prediction(ax: Axes, prediction, score_threshold: float, class_names) -> tuple:
    """The predicted boxes with score >= threshold, solid; returns (their number, their masks)."""
    if not isinstance(prediction, Mapping) or "boxes" not in prediction:
        raise TypeError(
            "prediction must be a dict with 'boxes', 'labels' and 'scores' (a torchvision "
            f"detector's output for one image), got {type(prediction).__name__}"
        )
    boxes = _as_xyxy(prediction["boxes"])
    keep = torch.ones(boxes.shape[0], dtype=torch.bool)
    scores = None
    if prediction.get("scores") is not None:
        scores = as_cpu_tensor(prediction["scores"], "prediction['scores']").reshape(-1).float()
        if scores.shape[0] != boxes.shape[0]:
            raise ValueError(f"prediction has {boxes.shape[0]} boxes but {scores.shape[0]} scores")
        keep = scores >= score_threshold
        scores = scores[keep]
    labels = prediction.get("labels")
    if labels is not None:
        labels = as_cpu_tensor(labels, "prediction['labels']").reshape(-1)[keep]
    draw_boxes(ax, boxes[keep], labels, scores, class_names=class_names, linestyle="-")
    masks = None
    if prediction.get("masks") is not None:
        masks = as_cpu_tensor(prediction["masks"], "prediction['masks']")[keep]
    return int(keep.sum()), masks


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
    ``score >= score_threshold`` are drawn. ``class_names[k - 1]`` captions label ``k``
    (``"class k"`` without names). ``show_masks`` overlays the predicted masks (or, without
    a prediction, the target's). The default title counts the boxes drawn. Returns the axes.
    """
    score_threshold = validate.check_number(score_threshold, "score_threshold", 0.0, 1.0)
    ax = show_image(image, ax=ax)
    height, width = to_display_array(image).shape[:2]
    masks_to_show = None
    parts = []
    if target is not None:
        count = _draw_target(ax, target, (height, width), class_names)
        parts.append(f"truth (dashed): {count}")
        masks_to_show = target.get("masks")
    if prediction is not None:
        count, masks = _draw_prediction(ax, prediction, score_threshold, class_names)
        parts.append(f"predicted (solid, score ≥ {score_threshold:.2f}): {count}")
        if masks is not None:
            masks_to_show = masks
    if show_masks and masks_to_show is not None:
        overlay_instance_masks(ax, masks_to_show)
    ax.set_title(title if title is not None else "\n".join(parts), fontsize=8)
    return ax
