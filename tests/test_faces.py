"""Tests for the face data (course_utils.data.faces) and the face detector
(course_utils.detection.faces): all fast, no real training."""

import numpy as np
import pytest
import torch
from skimage.data import astronaut, text
from torch import nn
from torchvision.ops import box_iou
from window_helpers import CentreVsBorder

from course_utils.data.faces import (
    ASTRONAUT_FACE_BOX,
    FACE_CLASSES,
    FACE_SIZE,
    NEGATIVE_IMAGES,
    FaceCrops,
    astronaut_gray,
    face_datasets,
    face_training_set,
    load_lfw_faces,
    negative_patches,
)
from course_utils.detection.faces import detect_faces, hardest_negatives, pyramid_scales
from course_utils.detection.windows import crop_windows

# --------------------------------------------------------------------------- data


def test_face_constants():
    assert FACE_CLASSES == ("non-face", "face") and FACE_SIZE == 25
    assert "astronaut" not in NEGATIVE_IMAGES and "camera" not in NEGATIVE_IMAGES


def test_lfw_faces_first_half_are_faces():
    images, labels = load_lfw_faces()
    assert images.shape == (200, 1, FACE_SIZE, FACE_SIZE) and images.dtype == torch.float32
    assert labels[:100].eq(1).all() and labels[100:].eq(0).all()
    assert 0 <= images.min() and images.max() <= 1
    # faces resemble the average face far more than the non-faces do (correlation with the mean
    # face)
    flat = images.flatten(1)
    flat = (flat - flat.mean(1, keepdim=True)) / (flat.std(1, keepdim=True) + 1e-6)
    mean_face = flat[:100].mean(0)
    correlation = flat @ mean_face / flat.shape[1] / mean_face.std()
    assert correlation[:100].median() > 0.5 > correlation[100:].median()


def test_face_datasets_split_and_augmentation():
    train, val = face_datasets(val_per_class=10, seed=1)
    assert len(train) == 180 and len(val) == 20 and val.labels.sum() == 10
    images, _ = load_lfw_faces()
    distances = torch.cdist(train.images.flatten(1), val.images.flatten(1))
    assert distances.min() > 0  # disjoint: no validation image is in the training set
    torch.manual_seed(0)
    crop, label = train[0]
    assert crop.shape == (1, 25, 25) and 0 <= crop.min() and crop.max() <= 1 and label in (0, 1)
    assert torch.equal(val[0][0], val.images[0])
    with pytest.raises(ValueError):
        FaceCrops(images[:, 0], torch.zeros(200))
    with pytest.raises(TypeError, match="images"):
        FaceCrops(images.numpy(), torch.zeros(200))


def test_face_datasets_are_seeded_and_checked():
    train, val = face_datasets(val_per_class=20, seed=0)
    again, val_again = face_datasets(val_per_class=20, seed=0)
    other, _ = face_datasets(val_per_class=20, seed=1)
    assert torch.equal(train.images, again.images) and torch.equal(val.images, val_again.images)
    assert not torch.equal(train.images, other.images)
    assert train.augment and not val.augment
    assert int(train.labels.sum()) == 80 and int(val.labels.sum()) == 20
    with pytest.raises(ValueError, match="val_per_class"):
        face_datasets(val_per_class=100)
    with pytest.raises(TypeError, match="val_per_class"):
        face_datasets(val_per_class=2.0)


def test_augmentation_draws_from_torchs_global_generator():
    train, _ = face_datasets(val_per_class=20, seed=0)
    torch.manual_seed(3)
    first = torch.stack([train[i][0] for i in range(10)])
    torch.manual_seed(3)
    again = torch.stack([train[i][0] for i in range(10)])
    assert torch.equal(first, again) and not torch.equal(first, train.images[:10])


def test_negative_patches_and_astronaut():
    patches = negative_patches(30, seed=3, names=("coffee", "brick"))
    assert patches.shape == (30, 1, 25, 25) and 0 <= patches.min() and patches.max() <= 1
    assert torch.equal(patches, negative_patches(30, seed=3, names=("coffee", "brick")))
    assert not torch.equal(patches, negative_patches(30, seed=4, names=("coffee", "brick")))
    image = astronaut_gray()
    assert image.shape == (1, 512, 512)

    rgb = torch.from_numpy(astronaut()).float()
    x1, y1, x2, y2 = (int(v) for v in ASTRONAUT_FACE_BOX)
    skin = rgb[y1 + 20 : y2 - 20, x1 + 20 : x2 - 20].reshape(-1, 3).mean(0)
    assert skin[0] > skin[1] > skin[2]  # the hand-drawn face box holds skin (red > green > blue)


def test_negative_patches_are_pyramid_window_crops_of_the_named_images():
    """Same draws as the function (sides log-uniform, then x1, then y1), same crop as the
    sliding window's ``crop_windows``."""
    patches = negative_patches(3, seed=5, names=("text",), smallest=30, largest=120)
    pixels = torch.from_numpy(text().astype(np.float32) / 255.0)[None]  # uint8 grayscale
    height, width = pixels.shape[-2:]
    rng = np.random.default_rng(np.random.SeedSequence([5, 25]))
    sides = np.exp(rng.uniform(np.log(30), np.log(120), 3))
    x1 = rng.uniform(0, 1, 3) * (width - sides)
    y1 = rng.uniform(0, 1, 3) * (height - sides)
    boxes = torch.from_numpy(np.stack([x1, y1, x1 + sides, y1 + sides], 1).astype(np.float32))
    torch.testing.assert_close(patches, crop_windows(pixels, boxes, FACE_SIZE).clamp(0, 1))
    with pytest.raises(ValueError, match="names"):
        negative_patches(4, names=())
    with pytest.raises(ValueError, match="count"):
        negative_patches(0)
    with pytest.raises(ValueError, match="largest"):
        negative_patches(4, smallest=50, largest=30)


# --------------------------------------------------------------------------- detection


def test_pyramid_scales_cover_the_range():
    scales = pyramid_scales(25, 50, 200, step=2.0)
    assert scales == [0.5, 0.25, 0.125]
    with pytest.raises(ValueError):
        pyramid_scales(25, 100, 50)


def test_detect_faces_with_a_hand_made_model():
    image = torch.zeros(1, 100, 100)
    image[:, 30:60, 40:70] = 1.0
    model = CentreVsBorder(crop_size=FACE_SIZE, context=0.2)
    out = detect_faces(model, image, [25 / 40, 25 / 50], stride=2, score_threshold=0.5)
    assert out["num_windows"] > out["num_above"] >= len(out["boxes"]) > 0
    assert (out["scores"][:-1] >= out["scores"][1:]).all()
    assert box_iou(out["boxes"][:1], torch.tensor([[40.0, 30.0, 70.0, 60.0]])).item() > 0.4
    with pytest.raises(ValueError):
        detect_faces(model, torch.zeros(3, 100, 100), [0.5])


def test_face_training_set_and_hardest_negatives():
    train, _ = face_datasets(val_per_class=20, seed=0)
    negatives = torch.rand(640, 1, 25, 25)
    data = face_training_set(train, negatives)
    assert len(data) == 2 * len(train) + 640 and int(data.labels.sum()) == 2 * 80
    assert data.labels[-640:].eq(0).all()
    assert torch.equal(data.images[-640:], negatives) and torch.equal(
        data.images[: len(train)], train.images
    )
    with pytest.raises(ValueError):
        face_training_set(train, torch.rand(10, 25, 25))

    class Brightness(nn.Module):  # "face" score grows with the mean brightness
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

        def forward(self, x):
            m = x.mean(dim=(1, 2, 3)) * 10 * self.w
            return torch.stack([-m, m], dim=1)

    patches = torch.linspace(0, 1, 50)[:, None, None, None].expand(50, 1, 25, 25).contiguous()
    hard = hardest_negatives(Brightness(), patches, 5)
    assert torch.equal(hard, patches[[49, 48, 47, 46, 45]])
    with pytest.raises(ValueError):
        hardest_negatives(Brightness(), patches, 0)
