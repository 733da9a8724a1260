"""Object detection, one module per slide of the lecture.

Sliding window (``sliding_window``, ``classifiers``, ``faces``) -> box proposals
(``selective_search``, ``proposals``) -> R-CNN (``rcnn``, ``box_coding``) -> Fast R-CNN
(``fast_rcnn``). May import ``core``, ``data``, ``engine``, ``metrics`` and ``viz``; never
``segmentation`` (what both need goes down a layer).
"""
