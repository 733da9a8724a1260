"""What the ``tests/test_viz_*.py`` files share: a test image and readers of what was drawn."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402


def image(height: int = 24, width: int = 32, seed: int = 0) -> torch.Tensor:
    """A random float image (3, height, width) in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(3, height, width, generator=generator)


def rectangles(ax) -> list[Rectangle]:
    """The boxes drawn on ``ax``, in drawing order."""
    return [patch for patch in ax.patches if isinstance(patch, Rectangle)]


def box_of(rectangle: Rectangle) -> list[float]:
    """A drawn rectangle as ``[x1, y1, x2, y2]``."""
    x, y = rectangle.get_xy()
    return [x, y, x + rectangle.get_width(), y + rectangle.get_height()]


def texts(ax) -> list[str]:
    """The captions drawn on ``ax``, in drawing order."""
    return [text.get_text() for text in ax.texts]


def rgb(color) -> tuple[float, ...]:
    """Any matplotlib colour as an RGB tuple rounded to 4 decimals (for comparisons)."""
    return tuple(round(value, 4) for value in to_rgba(color)[:3])


def legend_entries(ax) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


def legend_colors(ax) -> list[tuple[float, ...]]:
    return [rgb(handle.get_facecolor()) for handle in ax.get_legend().legend_handles]
