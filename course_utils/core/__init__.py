"""The bottom layer: what every other part of the course stands on.

``device`` (which device, seeds, DataLoader workers, the notebooks' set-up line), ``paths``
(where data, checkpoints and results live), ``validate`` (the one set of input checks with
messages that name the expected shape, dtype or box format), ``tensors`` (moving batches,
plain tensors, segmentation logits), ``results`` (the numbers a notebook records),
``colab`` (the notebooks' set-up cell) and ``kernel_env`` (the environment every kernel starts
with). Imports nothing from ``course_utils`` outside ``core``.
"""
