"""Object detection, one module (or two: model and training) per slide of the lecture.

* Sliding window: ``windows`` (grids, pyramids, crops), ``classifiers`` (the crop classifier),
  ``sliding_window`` (the detector), ``scene_classifier`` (notebook 01's training recipe),
  ``faces`` (the face detector on the astronaut photograph).
* Box proposals, Selective Search: ``graph_segmentation`` (initial regions),
  ``region_descriptors`` and ``region_similarity`` (what is compared), ``hierarchical_grouping``
  (the merges), ``selective_search`` (the entry point), ``region_dicts`` (one region as the
  assignments see it), ``opencv_selective_search`` (OpenCV's, for comparison), ``proposals``
  (recall, MABO, baselines and the proposal cache).
* R-CNN: ``proposal_labels`` (IoU labels, mini-batches), ``box_coding`` (box deltas),
  ``warped_regions`` (warped crops), ``box_regression`` (ridge regressors), ``rcnn`` (the
  detector), ``rcnn_training``.
* Fast R-CNN: ``fast_rcnn`` (the model, RoI pooling head), ``fast_rcnn_training``.
* Faster R-CNN: ``anchors``, ``rpn`` (the region proposal network), ``faster_rcnn`` (the model),
  ``faster_rcnn_training``, ``torchvision_baseline`` (torchvision's, from the same parts),
  ``detector_training`` (the recipe every detector trains with).
* YOLO: ``yolo`` (targets, loss, head, decoding), ``yolo_network`` (trunk, added layers, shared
  head), ``yolo_training``.
* SSD: ``ssd_boxes`` (default boxes, matching, hard negative mining), ``ssd`` (heads, loss,
  decoding), ``ssd_network`` (added layers, the detector), ``ssd_training`` (augmentation, trunk
  maps computed once, training), ``torchvision_ssd`` (torchvision's, on the same maps).
* Mask R-CNN: ``mask_rcnn`` (mask targets, mask loss, mask head, pasting), ``mask_rcnn_model``
  (the mask branch on Faster R-CNN, its training).

May import ``core``, ``data``, ``engine``, ``metrics`` and ``viz``; never ``segmentation`` (what
both need goes down a layer). Import module by module: ``from course_utils.detection import rcnn``.
"""
