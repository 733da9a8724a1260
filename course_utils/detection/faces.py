"""Faces, offline: scikit-image's ``lfw_subset`` (face / non-face crops) and its ``astronaut`` photograph.

``skimage.data.lfw_subset()`` ships inside the scikit-image wheel: 200 grayscale 25 x 25 images, float64 in
[0, 1]. Images 0-99 are faces from Labeled Faces in the Wild, cropped from the eyebrows to the chin; images
100-199 are non-face patches of the same size (a few hold a small, off-centre piece of a face, e.g. 125).
``skimage.data.astronaut()`` is the 512 x 512 portrait of astronaut Eileen Collins.

    images, labels = load_lfw_faces()                 # (200, 1, 25, 25) float32, (200,) int64, 1 = face
    train_set, val_set = face_datasets(seed=0)        # stratified split, augmented training crops
    image = astronaut_gray()                          # (1, 512, 512) float32 in [0, 1]
    detections = detect_faces(model, image, scales=pyramid_scales(25, 60, 160))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from torchvision.ops import nms
from torchvision.transforms import v2

from course_utils.core.validate import check_image
from course_utils.detection.classifiers import predict_proba
from course_utils.detection.sliding_window import pyramid_windows

__all__ = [
    "ASTRONAUT_FACE_BOX",
    "FACE_CLASSES",
    "FACE_SIZE",
    "FaceCrops",
    "astronaut_gray",
    "detect_faces",
    "face_datasets",
    "face_training_set",
    "hardest_negatives",
    "load_lfw_faces",
    "NEGATIVE_IMAGES",
    "negative_patches",
    "pyramid_scales",
]

#: Label names: 0 = not a face (background), 1 = face.
FACE_CLASSES: tuple[str, str] = ("non-face", "face")
#: Side of the lfw_subset crops in pixels.
FACE_SIZE = 25
#: Eileen Collins' face in ``astronaut()``, (x1, y1, x2, y2) pixels, drawn by hand from the image: from the
#: eyebrows (y ~ 90, under the fringe at y ~ 80) to the chin (y ~ 180), cheek to cheek (x ~ 175 to ~265),
#: the same framing as the lfw_subset faces.
ASTRONAUT_FACE_BOX: tuple[float, float, float, float] = (175.0, 80.0, 265.0, 180.0)
#: scikit-image photographs without a human face (all shipped in the wheel), a source of extra non-faces.
#: Left out: ``astronaut`` (the test image), ``camera`` (a man), ``coins`` (portraits on coins).
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
    """scikit-image's ``lfw_subset``: ``(images float32 (200, 1, 25, 25) in [0, 1], labels int64 (200,))``.

    Labels: 1 for images 0-99 (faces), 0 for images 100-199 (non-faces). Checks the shape it expects, so a
    changed scikit-image dataset fails here with a clear message rather than later.
    """
    from skimage.data import lfw_subset

    pixels = np.asarray(lfw_subset())
    if pixels.shape != (200, FACE_SIZE, FACE_SIZE):
        raise RuntimeError(
            f"skimage.data.lfw_subset() changed: expected (200, 25, 25) images, got {pixels.shape}"
        )
    images = torch.from_numpy(pixels.astype(np.float32)).clamp(0, 1)[:, None]
    labels = torch.cat([torch.ones(100, dtype=torch.int64), torch.zeros(100, dtype=torch.int64)])
    return images, labels


class FaceCrops(Dataset):
    """Face / non-face crops as a dataset of ``(float (1, 25, 25), int label)`` items.

    With ``augment=True`` every access draws a random left-right flip and a random brightness and contrast
    change (x -> a * x + b, clipped to [0, 1]), and faces (label 1) also a small random rotation (+-10
    degrees), shift (+-6 %) and zoom (0.9-1.1): 80 faces then look like many more. Randomness comes from
    torch's global generator, which ``course_utils.engine.train.fit`` seeds.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, augment: bool = False) -> None:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(
                "images must be a float tensor (N, 1, S, S), got "
                + (
                    f"{tuple(images.shape)}"
                    if isinstance(images, torch.Tensor)
                    else type(images).__name__
                )
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
    """A stratified random split of ``lfw_subset``: ``(train, val)``, ``val_per_class`` of each class in val.

    The training set is augmented (``augment``), the validation set is not.
    """
    if (
        isinstance(val_per_class, bool)
        or not isinstance(val_per_class, int)
        or not 1 <= val_per_class < 100
    ):
        raise ValueError(f"val_per_class must be an int in [1, 99], got {val_per_class!r}")
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
    import skimage.data
    from skimage.color import rgb2gray, rgba2rgb

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


def negative_patches(
    count: int,
    seed: int = 0,
    names: Sequence[str] = NEGATIVE_IMAGES,
    smallest: float = 25.0,
    largest: float = 200.0,
) -> torch.Tensor:
    """``count`` random square patches of face-free photographs, resized to 25 x 25: float32 (count, 1, 25, 25).

    Each patch comes from an image of ``names`` (drawn in turn), at a random position, with a side drawn
    log-uniformly between ``smallest`` and ``largest`` pixels (capped by the image), the way a pyramid
    would see it. These are the "many more negatives than positives" every sliding-window face detector
    is trained with (Viola & Jones 2001 used ~10,000 non-face images).
    """
    from course_utils.detection.sliding_window import crop_windows

    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive int, got {count!r}")
    if not names:
        raise ValueError("names must list at least one scikit-image image")
    if not 1 <= smallest <= largest:
        raise ValueError(f"need 1 <= smallest <= largest, got {smallest} and {largest}")
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
        patches.append(crop_windows(image, boxes, FACE_SIZE))
    return torch.cat(patches).clamp(0, 1)


def face_training_set(crops: FaceCrops, negatives: torch.Tensor, augment: bool = True) -> FaceCrops:
    """``crops`` (faces and lfw non-faces) plus extra non-face ``negatives`` (M, 1, 25, 25), label 0.

    The few faces are repeated so that about a third of the items are faces whatever M is (a batch then
    always holds faces); the repeats look different thanks to the augmentation.
    """
    if (
        not isinstance(negatives, torch.Tensor)
        or negatives.ndim != 4
        or negatives.shape[1:] != crops.images.shape[1:]
    ):
        raise ValueError(
            f"negatives must be (M, {', '.join(map(str, crops.images.shape[1:]))}), got "
            + (
                f"{tuple(negatives.shape)}"
                if isinstance(negatives, torch.Tensor)
                else type(negatives).__name__
            )
        )
    repeats = max(1, len(negatives) // (2 * len(crops)))
    images = torch.cat([crops.images] * repeats + [negatives.float()])
    labels = torch.cat([crops.labels] * repeats + [torch.zeros(len(negatives), dtype=torch.int64)])
    return FaceCrops(images, labels, augment=augment)


def hardest_negatives(model: nn.Module, negatives: torch.Tensor, count: int) -> torch.Tensor:
    """The ``count`` non-face patches (N, 1, 25, 25) the model finds most face-like: hard negative mining.

    Returns float (count, 1, 25, 25), highest P(face) first.
    """
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= len(negatives):
        raise ValueError(f"count must be an int in [1, {len(negatives)}], got {count!r}")
    scores = predict_proba(model, negatives)[:, 1]
    return negatives[scores.argsort(descending=True)[:count]]


def astronaut_gray() -> torch.Tensor:
    """scikit-image's ``astronaut`` in grayscale: float32 (1, 512, 512) in [0, 1] (ITU-R 601 luma)."""
    from skimage.color import rgb2gray
    from skimage.data import astronaut

    return torch.from_numpy(rgb2gray(astronaut()).astype(np.float32)).clamp(0, 1)[None]


def pyramid_scales(
    window: int, smallest: float, largest: float, step: float = 2**0.25
) -> list[float]:
    """Image-pyramid factors so that a ``window`` px window covers objects from ``smallest`` to ``largest``
    px, neighbouring levels ``step`` apart: ``[window / smallest, window / (smallest * step), ...]``."""
    if not 0 < smallest <= largest or step <= 1:
        raise ValueError(
            f"need 0 < smallest <= largest and step > 1, got {smallest}, {largest}, {step}"
        )
    sizes, size = [], float(smallest)
    while size <= largest * (1 + 1e-9):
        sizes.append(size)
        size *= step
    return [window / size for size in sizes]


@torch.no_grad()
def detect_faces(
    model: nn.Module,
    image: torch.Tensor,
    scales: Sequence[float],
    *,
    stride: int = 2,
    score_threshold: float = 0.5,
    iou_threshold: float = 0.3,
    batch_size: int = 2048,
) -> dict[str, torch.Tensor]:
    """Slide a face classifier over an image pyramid; keep windows with P(face) > threshold, then NMS.

    Args:
        model: (B, 1, 25, 25) -> (B, 2) logits, column 1 = face.
        image: float (1, H, W) in [0, 1] (grayscale).
        scales: pyramid factors (see :func:`pyramid_scales`); a window covers ``25 / scale`` pixels.
        stride: step of the 25 x 25 window inside each pyramid level, in that level's pixels.

    Returns:
        ``{"boxes": (D, 4) float32 xyxy in the image's pixels, "scores": (D,), "labels": (D,) ones,
        "num_windows": int (windows classified), "num_above": int (windows above the threshold, before
        NMS)}``, sorted by decreasing score.
    """
    check_image(image)
    if image.shape[0] != 1:
        raise ValueError(f"image must be grayscale (1, H, W), got {tuple(image.shape)}")
    patches, boxes, _ = pyramid_windows(image, FACE_SIZE, stride, scales)
    scores = predict_proba(model, patches, batch_size=batch_size)[:, 1].cpu()
    keep = torch.nonzero(scores > score_threshold).flatten()
    keep = keep[nms(boxes[keep], scores[keep], iou_threshold)]
    return {
        "boxes": boxes[keep],
        "scores": scores[keep],
        "labels": torch.ones(len(keep), dtype=torch.int64),
        "num_windows": len(boxes),
        "num_above": int((scores > score_threshold).sum()),
    }
