"""The real-image sets: scikit-image's ``lfw_subset`` faces and its ``astronaut`` photograph.

``skimage.data.lfw_subset()`` ships inside the scikit-image wheel: 200 grayscale 25 x 25 images,
float64 in [0, 1]. Images 0-99 are faces from Labeled Faces in the Wild, cropped from the
eyebrows to the chin; images 100-199 are non-face patches of the same size (a few hold a small,
off-centre piece of a face, e.g. 125). ``skimage.data.astronaut()`` is the 512 x 512 portrait of
astronaut Eileen Collins. Nothing is downloaded.

    images, labels = load_lfw_faces()           # (200, 1, 25, 25) float32, (200,) int64, 1 = face
    train_set, val_set = face_datasets(seed=0)  # stratified split, augmented training crops
    negatives = negative_patches(12000)         # (12000, 1, 25, 25) face-free photo patches
    image = astronaut_gray()                    # (1, 512, 512) float32 in [0, 1]

The face detector that slides a classifier over these images is
``course_utils.detection.faces``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import skimage.data
import torch
from skimage.color import rgb2gray, rgba2rgb
from torch.utils.data import Dataset
from torchvision.ops import roi_align
from torchvision.transforms import v2

from course_utils.core.validate import check_int, check_number

__all__ = [
    "ASTRONAUT_FACE_BOX",
    "FACE_CLASSES",
    "FACE_SIZE",
    "FaceCrops",
    "NEGATIVE_IMAGES",
    "astronaut_gray",
    "face_datasets",
    "face_training_set",
    "load_lfw_faces",
    "negative_patches",
]

#: Label names: 0 = not a face (background), 1 = face.
FACE_CLASSES: tuple[str, str] = ("non-face", "face")
#: Side of the lfw_subset crops in pixels.
FACE_SIZE = 25
#: Eileen Collins' face in ``astronaut()``, (x1, y1, x2, y2) pixels, drawn by hand from the
#: image: from the eyebrows (y ~ 90, under the fringe at y ~ 80) to the chin (y ~ 180), cheek to
#: cheek (x ~ 175 to ~265), the same framing as the lfw_subset faces.
ASTRONAUT_FACE_BOX: tuple[float, float, float, float] = (175.0, 80.0, 265.0, 180.0)
#: scikit-image photographs without a human face (all shipped in the wheel), a source of extra
#: non-faces. Left out: ``astronaut`` (the test image), ``camera`` (a man), ``coins``
#: (portraits on coins).
NEGATIVE_IMAGES: tuple[str, ...] = (
    "coffee",
    "chelsea",
    "rocket",
    "moon",
    "text",
    "brick",
    "grass",
    "gravel",
    "horse",
    "clock",
    "page",
    "immunohistochemistry",
    "hubble_deep_field",
)


def load_lfw_faces() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-image's ``lfw_subset``: ``(images float32 (200, 1, 25, 25) in [0, 1], labels int64
    (200,))``.

    Labels: 1 for images 0-99 (faces), 0 for images 100-199 (non-faces). Checks the shape it
    expects, so a changed scikit-image dataset fails here with a clear message rather than later.
    """
    pixels = np.asarray(skimage.data.lfw_subset())
    if pixels.shape != (200, FACE_SIZE, FACE_SIZE):
        raise RuntimeError(
            f"skimage.data.lfw_subset() changed: expected (200, 25, 25) images, got {pixels.shape}"
        )
    images = torch.from_numpy(pixels.astype(np.float32)).clamp(0, 1)[:, None]
    labels = torch.cat([torch.ones(100, dtype=torch.int64), torch.zeros(100, dtype=torch.int64)])
    return images, labels


class FaceCrops(Dataset):
    """Face / non-face crops as a dataset of ``(float (1, 25, 25), int label)`` items.

    ``images`` float (N, 1, S, S) in [0, 1], ``labels`` int (N,) (1 = face). With
    ``augment=True`` every access draws a random left-right flip and a random brightness and
    contrast change (x -> a * x + b, clipped to [0, 1]), and faces (label 1) also a small random
    rotation (+-10 degrees), shift (+-6 %) and zoom (0.9-1.1): 80 faces then look like many more.
    Randomness comes from torch's global generator, which ``course_utils.engine.fit`` seeds.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, augment: bool = False) -> None:
        if not isinstance(images, torch.Tensor):
            raise TypeError(
                f"images must be a float tensor (N, 1, S, S), got {type(images).__name__}"
            )
        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(
                f"images must be a float tensor (N, 1, S, S), got {tuple(images.shape)}"
            )
        if not isinstance(labels, torch.Tensor) or labels.shape != (images.shape[0],):
            raise ValueError(f"labels must be a tensor ({images.shape[0]},), one per image")
        self.images, self.labels, self.augment = images.float(), labels.long(), bool(augment)
        self._jitter = v2.RandomAffine(degrees=10, translate=(0.06, 0.06), scale=(0.9, 1.1))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = self.images[index]
        if self.augment:
            if torch.rand(()) < 0.5:
                image = image.flip(-1)
            contrast = 0.7 + 0.6 * torch.rand(())
            brightness = 0.2 * (torch.rand(()) - 0.5)
            mean = image.mean()
            image = ((image - mean) * contrast + mean + brightness).clamp(0, 1)
            if self.labels[index] == 1:
                image = self._jitter(image)
        return image, int(self.labels[index])


def face_datasets(
    val_per_class: int = 20, seed: int = 0, augment: bool = True
) -> tuple[FaceCrops, FaceCrops]:
    """A stratified random split of ``lfw_subset``: ``(train, val)``, ``val_per_class`` (1..99)
    of each class in val.

    The training set is augmented (``augment``), the validation set is not.
    """
    check_int(val_per_class, "val_per_class", 1, 99)
    check_int(seed, "seed", minimum=0)
    images, labels = load_lfw_faces()
    generator = torch.Generator().manual_seed(seed)
    val_index = torch.cat(
        [torch.randperm(100, generator=generator)[:val_per_class] + offset for offset in (0, 100)]
    )
    is_val = torch.zeros(len(labels), dtype=torch.bool)
    is_val[val_index] = True
    return (
        FaceCrops(images[~is_val], labels[~is_val], augment=augment),
        FaceCrops(images[is_val], labels[is_val], augment=False),
    )


def _gray_image(name: str) -> torch.Tensor:
    """scikit-image's image ``name`` as float32 (1, H, W) in [0, 1] grayscale."""
    pixels = np.asarray(getattr(skimage.data, name)())
    if pixels.dtype == bool:
        pixels = pixels.astype(np.float32)
    if pixels.ndim == 3 and pixels.shape[-1] == 4:
        pixels = rgba2rgb(pixels)
    if pixels.ndim == 3:
        pixels = rgb2gray(pixels)
    elif pixels.dtype == np.uint8:
        pixels = pixels / 255.0
    return torch.from_numpy(np.asarray(pixels, dtype=np.float32)).clamp(0, 1)[None]


def _crop_squares(image: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Cut ``boxes`` float (N, 4) xyxy out of ``image`` (1, H, W), each resized to 25 x 25:
    float (N, 1, 25, 25). ``roi_align`` (``aligned=True``, adaptive sampling), as
    ``detection.windows.crop_windows`` does, so that a patch looks like a pyramid window."""
    return roi_align(
        image[None],
        [boxes.to(image)],
        output_size=FACE_SIZE,
        spatial_scale=1.0,
        sampling_ratio=-1,
        aligned=True,
    )


def negative_patches(
    count: int,
    seed: int = 0,
    names: Sequence[str] = NEGATIVE_IMAGES,
    smallest: float = 25.0,
    largest: float = 200.0,
) -> torch.Tensor:
    """``count`` random square patches of face-free photographs, resized to 25 x 25: float32
    (count, 1, 25, 25) in [0, 1].

    Each patch comes from an image of ``names`` (drawn in turn), at a random position, with a
    side drawn log-uniformly between ``smallest`` and ``largest`` pixels (capped by the image),
    the way a pyramid would see it. These are the "many more negatives than positives" every
    sliding-window face detector is trained with (Viola & Jones 2001 used ~10,000 non-face
    images).
    """
    check_int(count, "count")
    check_int(seed, "seed", minimum=0)
    if not names:
        raise ValueError("names must list at least one scikit-image image")
    check_number(smallest, "smallest", minimum=1)
    check_number(largest, "largest", minimum=smallest)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 25]))
    per_image = np.bincount(np.arange(count) % len(names), minlength=len(names))
    patches = []
    for name, number in zip(names, per_image):
        if number == 0:
            continue
        image = _gray_image(name)
        height, width = image.shape[-2:]
        high = min(largest, height, width)
        low = min(smallest, high)
        sides = np.exp(rng.uniform(np.log(low), np.log(high), number))
        x1 = rng.uniform(0, 1, number) * (width - sides)
        y1 = rng.uniform(0, 1, number) * (height - sides)
        boxes = torch.from_numpy(
            np.stack([x1, y1, x1 + sides, y1 + sides], axis=1).astype(np.float32)
        )
        patches.append(_crop_squares(image, boxes))
    return torch.cat(patches).clamp(0, 1)


def face_training_set(crops: FaceCrops, negatives: torch.Tensor, augment: bool = True) -> FaceCrops:
    """``crops`` (faces and lfw non-faces) plus extra non-face ``negatives`` float
    (M, 1, 25, 25), label 0.

    The few faces are repeated so that about a third of the items are faces whatever M is (a
    batch then always holds faces); the repeats look different thanks to the augmentation.
    """
    expected = tuple(crops.images.shape[1:])
    if not isinstance(negatives, torch.Tensor):
        raise TypeError(f"negatives must be a tensor (M, {', '.join(map(str, expected))})")
    if negatives.ndim != 4 or tuple(negatives.shape[1:]) != expected:
        raise ValueError(
            f"negatives must be (M, {', '.join(map(str, expected))}), got {tuple(negatives.shape)}"
        )
    repeats = max(1, len(negatives) // (2 * len(crops)))
    images = torch.cat([crops.images] * repeats + [negatives.float()])
    labels = torch.cat([crops.labels] * repeats + [torch.zeros(len(negatives), dtype=torch.int64)])
    return FaceCrops(images, labels, augment=augment)


def astronaut_gray() -> torch.Tensor:
    """scikit-image's ``astronaut`` in grayscale: float32 (1, 512, 512) in [0, 1] (ITU-R 601
    luma)."""
    return torch.from_numpy(rgb2gray(skimage.data.astronaut()).astype(np.float32)).clamp(0, 1)[None]
