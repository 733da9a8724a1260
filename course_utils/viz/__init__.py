"""Pictures for the notebooks, with matplotlib only (``cv2.imshow`` is disabled on Colab).

Notebooks use this facade: ``from course_utils import viz; viz.show_detections(...)``.
The code lives in one module per concern:

* :mod:`~course_utils.viz.colors`: the fixed palettes, a class's colour and caption;
* :mod:`~course_utils.viz.images`: ``to_display_array``, ``show_image``, ``image_grid``;
* :mod:`~course_utils.viz.detection`: ``draw_boxes``, ``show_detections``;
* :mod:`~course_utils.viz.masks`: instance masks and semantic maps;
* :mod:`~course_utils.viz.history`: training curves (``smooth``, ``plot_history``);
* :mod:`~course_utils.viz.source`: ``show_source``, a class's or function's code in the notebook.

Every function draws on an ``ax`` it is given, or on a new figure, and returns the
axes (or ``fig, axes``) so that a notebook can add to the picture and a test can
inspect what was drawn. End a notebook line with ``;`` to hide the returned object's
text. Inputs follow the course's conventions:

* images: float tensors (C, H, W) in [0, 1] (``tv_tensors.Image`` included), or uint8
  arrays (H, W, 3) as ``skimage``/``PIL`` give them;
* boxes: float (N, 4) ``(x1, y1, x2, y2)`` in absolute pixels;
* detection labels: 1..K, 0 = background; ``class_names[k - 1]`` names label ``k``;
* semantic maps: integer (H, W) ids ``0..C-1`` (255 = ignored); ``class_names[i]`` names
  id ``i``.

Class names are always the caller's: pass ``class_names=THING_CLASSES`` (detections,
instance masks) or ``SEMANTIC_CLASSES`` (semantic maps) from ``course_utils.data.scenes``.
Without names a label ``k`` is captioned ``"class k"`` and a semantic legend lists
``"class 0"`` .. ``"class m"`` (``m`` the largest id in the map).

Layering: ``viz`` imports only ``course_utils.core``: never ``engine`` or ``metrics`` (same
layer), and never ``data`` (an import-linter contract of its own: class names are passed in).
"""

from course_utils.viz.colors import (
    BACKGROUND_COLOR,
    PALETTE,
    STUFF_PALETTE,
    THING_PALETTE,
    class_name,
    instance_color,
    label_color,
    semantic_color,
)
from course_utils.viz.detection import draw_boxes, show_detections
from course_utils.viz.history import plot_history, smooth
from course_utils.viz.images import image_grid, show_image, to_display_array
from course_utils.viz.masks import (
    IGNORE_INDEX,
    overlay_instance_masks,
    semantic_to_rgb,
    show_semantic,
)
from course_utils.viz.source import show_source

__all__ = [
    "BACKGROUND_COLOR",
    "IGNORE_INDEX",
    "PALETTE",
    "STUFF_PALETTE",
    "THING_PALETTE",
    "class_name",
    "draw_boxes",
    "image_grid",
    "instance_color",
    "label_color",
    "overlay_instance_masks",
    "plot_history",
    "semantic_color",
    "semantic_to_rgb",
    "show_detections",
    "show_image",
    "show_source",
    "show_semantic",
    "smooth",
    "to_display_array",
]
