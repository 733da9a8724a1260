"""The course's data: the scenes generator and the datasets built on it.

``scenes`` generates 128x128 scenes with exact targets from a seed; ``datasets`` serves them
(and object crops) as torchvision ``tv_tensors`` with a cache under ``data/``, and reads and
writes COCO files. May import ``core`` only.
"""
