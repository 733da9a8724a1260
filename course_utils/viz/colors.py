"""How a class looks in every picture: its fixed colour and its caption.

Colours are fixed, so a class has the same colour in every notebook: :data:`PALETTE`
gives semantic id ``i`` the colour ``PALETTE[i]``; the stuff classes (sky, grass,
gravel, brick) get muted colours and the things (disk, triangle, star) saturated
ones, and a detection label ``k`` is drawn in its thing colour ``THING_PALETTE[k - 1]``,
the same as in the semantic maps. Ids beyond the palettes get fixed extra colours.

Colours are RGB tuples of floats in [0, 1], as matplotlib takes them.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import matplotlib.pyplot as plt

__all__ = [
    "BACKGROUND_COLOR",
    "PALETTE",
    "STUFF_PALETTE",
    "THING_PALETTE",
    "class_name",
    "instance_color",
    "label_color",
    "semantic_color",
]

Color = tuple[float, float, float]


def _rgb(red: int, green: int, blue: int) -> Color:
    return (red / 255, green / 255, blue / 255)


#: Muted colours for the stuff classes, in ``STUFF_CLASSES`` order (sky, grass, gravel, brick).
STUFF_PALETTE: tuple[Color, ...] = (
    _rgb(140, 190, 235),  # sky: pale blue
    _rgb(105, 155, 75),  # grass: olive green
    _rgb(150, 145, 135),  # gravel: warm grey
    _rgb(165, 90, 70),  # brick: brick red
)

#: Saturated colours for detection labels 1, 2, 3, ... (``THING_PALETTE[k - 1]`` is label k).
THING_PALETTE: tuple[Color, ...] = (
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
PALETTE: tuple[Color, ...] = STUFF_PALETTE + THING_PALETTE

#: Colour of detection label 0 (background), e.g. negative windows.
BACKGROUND_COLOR: Color = (0.75, 0.75, 0.75)


def _extra_color(index: int) -> Color:
    """A fixed colour for ids beyond the palette (golden-ratio hue steps)."""
    hue = (index * 0.618033988749895) % 1.0
    return colorsys.hsv_to_rgb(hue, 0.75, 0.95)


def semantic_color(class_id: int) -> Color:
    """The fixed RGB colour (floats in [0, 1]) of semantic id ``class_id`` >= 0.

    ``PALETTE[class_id]``; ids past the palette get fixed extra colours.
    """
    class_id = int(class_id)
    if class_id < 0:
        raise ValueError(f"class_id must be >= 0, got {class_id}")
    return PALETTE[class_id] if class_id < len(PALETTE) else _extra_color(class_id)


def label_color(label: int) -> Color:
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


def instance_color(index: int) -> Color:
    """The colour of the ``index``-th instance in ``overlay_instance_masks`` (tab20, cycled)."""
    colors = plt.get_cmap("tab20").colors
    return tuple(colors[int(index) % len(colors)])


def class_name(label: int, class_names: Sequence[str] | None) -> str:
    """The caption of detection label ``label``: ``class_names[label - 1]``, "background" for 0.

    Without names (``class_names=None``), or past their end, the caption is ``"class {label}"``.
    """
    label = int(label)
    if label == 0:
        return "background"
    if class_names is not None and 1 <= label <= len(class_names):
        return str(class_names[label - 1])
    return f"class {label}"
