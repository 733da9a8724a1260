"""The course's data: the scenes generator, the datasets built on it, and the real-image sets.

``scenes`` generates 128x128 scenes with exact targets from a seed (``scene_painting`` paints
them); ``scene_store`` materialises a split as compact arrays cached under ``data/``;
``datasets`` serves them (and object crops) as torchvision ``tv_tensors``; ``coco`` writes
and reads COCO files; ``faces`` holds scikit-image's ``lfw_subset`` faces and ``astronaut``
photograph. Real photographs: ``photos`` turns any photo (path, PIL image, numpy array) into a
course image and serves scikit-image's sample photos; ``pennfudan`` downloads (only when asked)
and serves the Penn-Fudan pedestrians with instance masks; ``photo_datasets`` wraps
torchvision's Oxford-IIIT Pet trimaps and PASCAL VOC detection; ``downloads`` holds their
``DatasetUnavailable`` error and the checked download and extraction steps. Import module by
module (``from course_utils.data.datasets import SceneDataset``). May import ``core`` only.
"""
