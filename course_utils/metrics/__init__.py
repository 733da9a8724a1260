"""How good is a detector or a segmenter, and how fast: the numbers every notebook reports.

Notebooks use this facade (``from course_utils.metrics import detection_ap``); the code
lives in one module per kind of score:

* :mod:`~course_utils.metrics.detection`: detection and instance segmentation.
  :func:`detection_ap` builds COCO objects in memory and runs pycocotools' ``COCOeval``
  itself, so the numbers are exactly the COCO benchmark's (AP = mean over IoU
  0.50:0.05:0.95 of the 101-point interpolated precision); :func:`evaluate_detector`;
  :func:`scene_size_ap`, AP with the scenes' size bins (the course-wide detection table).
* :mod:`~course_utils.metrics.object_recall`: :func:`objects_found`, which ground-truth objects a
  detector found (recall of any subset: small objects, objects sharing a grid cell...).
* :mod:`~course_utils.metrics.segmentation`: semantic segmentation.
  :func:`confusion_matrix` and :func:`segmentation_scores` (per-class IoU, mIoU, pixel
  accuracy, mean class accuracy); :func:`evaluate_segmenter`.
* :mod:`~course_utils.metrics.separation`: touching objects of the same class in a semantic map,
  :func:`touching_pairs` and :func:`pairs_separated` (U-Net's weight map, notebook 11);
  :func:`connected_instances`, :func:`covering_instances` (semantic maps vs instances, notebook 12).
* :mod:`~course_utils.metrics.timing`: speed, :func:`time_per_image`, :func:`one_image_ms`.

Layering: ``metrics`` imports ``course_utils.core`` and ``course_utils.data`` (the
detection batches' collate function), never ``engine`` or ``viz``.
"""

from course_utils.metrics.detection import (
    COCO_METRICS,
    detection_ap,
    evaluate_detector,
    scene_size_ap,
)
from course_utils.metrics.object_recall import objects_found
from course_utils.metrics.segmentation import (
    confusion_matrix,
    evaluate_segmenter,
    segmentation_scores,
)
from course_utils.metrics.separation import (
    connected_instances,
    covering_instances,
    pairs_separated,
    touching_pairs,
)
from course_utils.metrics.timing import one_image_ms, time_per_image

__all__ = [
    "COCO_METRICS",
    "confusion_matrix",
    "connected_instances",
    "covering_instances",
    "detection_ap",
    "evaluate_detector",
    "evaluate_segmenter",
    "objects_found",
    "one_image_ms",
    "pairs_separated",
    "scene_size_ap",
    "segmentation_scores",
    "time_per_image",
    "touching_pairs",
]
