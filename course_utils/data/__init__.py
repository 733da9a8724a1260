"""The course's data: the scenes generator, the datasets built on it, and the real-image sets.

``scenes`` generates 128x128 scenes with exact targets from a seed (``scene_painting`` paints
them); ``scene_store`` materialises a split as compact arrays cached under ``data/``;
``datasets`` serves them (and object crops) as torchvision ``tv_tensors``; ``coco`` writes
and reads COCO files; ``faces`` holds scikit-image's ``lfw_subset`` faces and ``astronaut``
photograph. Import module by module (``from course_utils.data.datasets import SceneDataset``).
May import ``core`` only.
"""
