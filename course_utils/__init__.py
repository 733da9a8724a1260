"""Shared helpers for the detection and segmentation course, in layers.

Each subpackage imports only from its own layer or the layers below it (import-linter checks
this in ``make test``)::

    instructor                  release and report: never imported by a student's kernel
    grading                     the assignment checks and the runner behind them
    detection | segmentation    one module per slide; the two never import each other
    engine | metrics | viz      the training loop, the scores, the pictures
    data                        the scenes generator and the datasets built on it
    core                        device, paths, input validation, tensors, results

Notebooks import the module they need, e.g. ``from course_utils.detection import rcnn``.
"""
