"""Tests for course_utils.detection.sliding_window, course_utils.detection.classifiers and course_utils.detection.faces (all fast, no real training)."""

import math

import pytest
import torch
from torch import nn
from torchvision.ops import box_iou

from course_utils.detection.classifiers import (
    CropClassifier,
    RandomQuarterTurn,
    Standardize,
    classifier_accuracy,
    crop_augmentation,
    predict_proba,
    train_crop_classifier,
)
from course_utils.detection.faces import (
    ASTRONAUT_FACE_BOX,
    FACE_SIZE,
    FaceCrops,
    astronaut_gray,
    detect_faces,
    face_datasets,
    face_training_set,
    hardest_negatives,
    load_lfw_faces,
    negative_patches,
    pyramid_scales,
)
from course_utils.detection.sliding_window import (
    SlidingWindowDetector,
    WindowCrops,
    background_mask,
    best_window_iou,
    classify_windows,
    count_windows,
    crop_windows,
    grid_shape,
    hard_background_crops,
    image_pyramid,
    multiscale_windows,
    pretrained_crop_classifier,
    pyramid_windows,
    recall_at_iou,
    scene_classifier_training_set,
    score_map,
    shrink_boxes,
    unfold_windows,
    window_grid,
    windows_to_detections,
)


def _square_image(size=64, box=(20, 24, 36, 40), channels=3):
    """A black image with one white axis-aligned square (x1, y1, x2, y2 exclusive)."""
    image = torch.zeros(channels, size, size)
    x1, y1, x2, y2 = box
    image[:, y1:y2, x1:x2] = 1.0
    return image


class CentreVsBorder(nn.Module):
    """A hand-made 'classifier': class 1 when the crop's centre third is bright and its border dark."""

    def __init__(self, crop_size=12, context=0.25):
        super().__init__()
        self.crop_size = crop_size
        self.inner = round(crop_size * context / (1 + 2 * context))
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, crops):
        s, i = self.crop_size, self.inner
        centre = crops[:, :, i : s - i, i : s - i].mean(dim=(1, 2, 3))
        total = crops.mean(dim=(1, 2, 3)) * s * s
        border = (total - centre * (s - 2 * i) ** 2) / (s * s - (s - 2 * i) ** 2)
        score = 20 * (centre - border - 0.5)
        return torch.stack([torch.zeros_like(score), score], dim=1) + 0 * self.dummy


# --------------------------------------------------------------------------- grids


@pytest.mark.parametrize(
    "size,window,stride,padding", [((64, 64), 16, 8, 0), ((48, 80), 20, 6, 0), ((64, 64), 30, 7, 5)]
)
def test_window_grid_geometry(size, window, stride, padding):
    boxes = window_grid(size, window, stride, padding)
    rows, cols = grid_shape(size, window, stride, padding)
    assert boxes.shape == (rows * cols, 4) and boxes.dtype == torch.float32
    assert len(boxes) == count_windows(size, window, stride, padding)
    assert torch.allclose(boxes[:, 2] - boxes[:, 0], torch.full((len(boxes),), float(window)))
    assert torch.allclose(boxes[:, 3] - boxes[:, 1], torch.full((len(boxes),), float(window)))
    grid = boxes.view(rows, cols, 4)
    assert torch.allclose(
        grid[:, 1:, 0] - grid[:, :-1, 0], torch.tensor(float(stride))
    )  # row-major, stride apart
    assert torch.allclose(grid[1:, :, 1] - grid[:-1, :, 1], torch.tensor(float(stride)))
    height, width = size
    assert boxes[:, 0].min() >= -padding - 1e-5 and boxes[:, 2].max() <= width + padding + 1e-5
    assert boxes[:, 1].min() >= -padding - 1e-5 and boxes[:, 3].max() <= height + padding + 1e-5
    # centred: the margins left at both ends are equal, and smaller than one stride
    left, right = boxes[:, 0].min() + padding, width + padding - boxes[:, 2].max()
    assert abs(float(left - right)) < 1e-4 and left < stride


def test_window_grid_counts_scale_with_stride():
    assert count_windows((128, 128), 32, 8) == 13 * 13
    assert count_windows((128, 128), 32, 4) > 3 * count_windows((128, 128), 32, 8)


def test_window_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="does not fit"):
        window_grid((32, 32), 40, 4)
    with pytest.raises(ValueError, match="stride"):
        window_grid((32, 32), 8, 0)
    with pytest.raises(ValueError, match="image_size"):
        window_grid((32,), 8, 4)


def test_multiscale_windows_concatenates_scales():
    boxes, scale = multiscale_windows((64, 64), (16, 32), (8, 16), context=0.25)
    assert len(boxes) == len(scale)
    for index, window in enumerate((16, 32)):
        sides = boxes[scale == index, 2] - boxes[scale == index, 0]
        assert torch.allclose(sides, torch.tensor(float(window)))
        padding = window * 0.25 / 1.5
        assert boxes[scale == index, 0].min() >= -padding - 1e-5
    with pytest.raises(ValueError):
        multiscale_windows((64, 64), (16, 32), (8,))


# --------------------------------------------------------------------------- cropping


def test_unfold_and_roi_align_crops_agree():
    torch.manual_seed(0)
    image = torch.rand(3, 40, 40)
    window, stride = 8, 4  # (40 - 8) % 4 == 0: both grids start at 0
    patches = unfold_windows(image, window, stride)
    crops = crop_windows(image, window_grid((40, 40), window, stride), window)
    assert (
        patches.shape == crops.shape == (count_windows((40, 40), window, stride), 3, window, window)
    )
    assert torch.allclose(patches, crops, atol=1e-5)
    x1, y1 = window_grid((40, 40), window, stride)[5, :2].long().tolist()
    assert torch.equal(patches[5], image[:, y1 : y1 + window, x1 : x1 + window])


def test_crop_windows_resizes_and_pads_with_zeros():
    image = torch.full((3, 32, 32), 0.7)
    boxes = torch.tensor([[0.0, 0.0, 32.0, 32.0], [4.0, 4.0, 10.0, 10.0], [-20.0, 0.0, 12.0, 32.0]])
    crops = crop_windows(image, boxes, 16)
    assert crops.shape == (3, 3, 16, 16)
    assert torch.allclose(crops[0], torch.tensor(0.7)) and torch.allclose(
        crops[1], torch.tensor(0.7)
    )
    assert crops[2, :, :, :7].max() < 1e-6 and torch.allclose(
        crops[2, :, :, 11:], torch.tensor(0.7)
    )
    assert crop_windows(image, torch.zeros((0, 4)), 16).shape == (0, 3, 16, 16)
    with pytest.raises(ValueError):
        crop_windows(image * 255, boxes, 16)


def test_classify_windows_and_score_map():
    image = _square_image()
    model = CentreVsBorder(crop_size=12)
    window, stride = 24, 4  # object 16 px with context 0.25 -> window 24
    boxes = window_grid((64, 64), window, stride)
    probs = classify_windows(model, image, boxes)
    assert probs.shape == (len(boxes), 2) and torch.allclose(probs.sum(1), torch.ones(len(boxes)))
    maps = score_map(probs, (64, 64), window, stride)
    rows, cols = grid_shape((64, 64), window, stride)
    assert maps.shape == (2, rows, cols)
    r, c = divmod(int(probs[:, 1].argmax()), cols)
    assert maps[1, r, c] == probs[:, 1].max()
    best = shrink_boxes(boxes[probs[:, 1].argmax()][None], 0.25)
    assert box_iou(best, torch.tensor([[20.0, 24.0, 36.0, 40.0]])).item() > 0.6
    with pytest.raises(ValueError):
        score_map(probs[:-1], (64, 64), window, stride)


# --------------------------------------------------------------------------- windows -> detections


def test_shrink_boxes_undoes_context():
    box = torch.tensor([[10.0, 20.0, 30.0, 40.0]])  # 20 x 20
    window = torch.tensor([[5.0, 15.0, 35.0, 45.0]])  # grown by 0.25 * 20 on each side
    assert torch.allclose(shrink_boxes(window, 0.25), box)
    assert torch.equal(shrink_boxes(window, 0.0), window)


def test_windows_to_detections_thresholds_and_suppresses_per_class():
    boxes = torch.tensor(
        [[0.0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60], [80, 80, 90, 90]]
    )
    probs = torch.tensor(
        [[0.1, 0.9, 0.0], [0.2, 0.8, 0.0], [0.3, 0.0, 0.7], [0.6, 0.4, 0.0], [0.99, 0.01, 0.0]]
    )
    out = windows_to_detections(boxes, probs, score_threshold=0.3, iou_threshold=0.5)
    assert out["labels"].tolist() == [
        1,
        2,
        1,
    ]  # window 1 suppressed by window 0 (same class), 4 below threshold
    assert torch.allclose(out["scores"], torch.tensor([0.9, 0.7, 0.4]))
    assert torch.equal(out["boxes"][0], boxes[0])
    assert out["labels"].dtype == torch.int64 and out["boxes"].dtype == torch.float32
    loose = windows_to_detections(boxes, probs, score_threshold=0.3, iou_threshold=0.9)
    assert len(loose["boxes"]) == 4  # IoU(0, 1) = 0.68 < 0.9: both kept
    assert len(windows_to_detections(boxes, probs, score_threshold=0.95)["boxes"]) == 0
    clipped = windows_to_detections(
        torch.tensor([[-6.0, -6, 18, 18]]),
        torch.tensor([[0.0, 1.0]]),
        context=0.25,
        image_size=(10, 10),
    )
    assert torch.allclose(clipped["boxes"], torch.tensor([[0.0, 0.0, 10.0, 10.0]]))
    with pytest.raises(ValueError):
        windows_to_detections(boxes, probs[:, :1])


def test_sliding_window_detector_finds_a_square():
    image = _square_image()
    detector = SlidingWindowDetector(
        CentreVsBorder(crop_size=12),
        windows=(16, 24, 36),
        strides=(4, 4, 6),
        context=0.25,
        score_threshold=0.5,
    )
    outputs = detector([image, torch.zeros(3, 64, 64)])
    assert len(outputs) == 2 and len(outputs[1]["boxes"]) == 0
    top = outputs[0]["boxes"][:1]
    assert box_iou(top, torch.tensor([[20.0, 24.0, 36.0, 40.0]])).item() > 0.6
    assert detector.num_windows((64, 64)) == sum(
        count_windows((64, 64), w, s, w * 0.25 / 1.5) for w, s in ((16, 4), (24, 4), (36, 6))
    )
    with pytest.raises(TypeError):
        detector(image)


# --------------------------------------------------------------------------- pyramid


def test_image_pyramid_and_pyramid_windows():
    torch.manual_seed(0)
    image = torch.rand(1, 60, 80)
    levels = image_pyramid(image, [1.0, 0.5])
    assert [tuple(level.shape) for level in levels] == [(1, 60, 80), (1, 30, 40)]
    assert torch.allclose(levels[0], image, atol=1e-5)
    patches, boxes, level = pyramid_windows(image, 10, 5, [1.0, 0.5, 0.1])  # 0.1 -> 6 x 8: skipped
    assert patches.shape[1:] == (1, 10, 10) and len(patches) == len(boxes) == len(level)
    assert set(level.tolist()) == {0, 1}
    assert len(patches) == count_windows((60, 80), 10, 5) + count_windows((30, 40), 10, 5)
    half = boxes[level == 1]
    assert torch.allclose(
        half[:, 2] - half[:, 0], torch.tensor(20.0)
    )  # a 10 px window at scale 0.5 = 20 px
    assert boxes[:, 2].max() <= 80 + 1e-4 and boxes[:, 3].max() <= 60 + 1e-4
    first = torch.nonzero(level == 1).flatten()[3]
    x1, y1 = (boxes[first, :2] * 0.5).round().long().tolist()
    assert torch.allclose(patches[first], levels[1][:, y1 : y1 + 10, x1 : x1 + 10])
    with pytest.raises(ValueError, match="smaller"):
        pyramid_windows(image, 10, 5, [0.1])


# --------------------------------------------------------------------------- coverage and recall


def test_best_window_iou_and_recall():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    windows = torch.tensor([[0.0, 0.0, 10.0, 10.0], [25.0, 20.0, 35.0, 30.0]])
    best = best_window_iou(gt, windows)
    assert torch.allclose(best, torch.tensor([1.0, 50 / 150]))
    assert best_window_iou(gt, torch.zeros((0, 4))).tolist() == [0.0, 0.0]
    assert best_window_iou(torch.zeros((0, 4)), windows).shape == (0,)
    targets = [{"boxes": gt, "labels": torch.tensor([1, 2])}]
    predictions = [
        {
            "boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]),
            "labels": torch.tensor([1, 1]),
            "scores": torch.tensor([0.9, 0.8]),
        }
    ]
    assert recall_at_iou(predictions, targets) == 0.5  # the second box has the wrong label
    predictions[0]["labels"] = torch.tensor([1, 2])
    assert recall_at_iou(predictions, targets) == 1.0
    assert recall_at_iou(predictions, targets, score_threshold=0.85) == 0.5
    assert math.isnan(
        recall_at_iou([predictions[0]], [{"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0)}])
    )
    with pytest.raises(ValueError):
        recall_at_iou(predictions, targets * 2)


def test_background_mask_and_hard_background_crops():
    gt = torch.tensor([[20.0, 24.0, 36.0, 40.0]])
    windows = torch.tensor(
        [[16.0, 20.0, 40.0, 44.0], [0.0, 0.0, 24.0, 24.0], [40.0, 40.0, 64.0, 64.0]]
    )
    assert background_mask(gt, windows, context=0.25).tolist() == [False, True, True]
    assert background_mask(torch.zeros((0, 4)), windows).all()
    image = _square_image()
    scenes = [(image, {"boxes": gt, "labels": torch.tensor([1])})] * 2
    crops = hard_background_crops(scenes, (24, 36), (4, 6), context=0.25, per_image=5, crop_size=12)
    assert (
        len(crops) == 10
        and crops.labels.eq(0).all()
        and crops.image_indices.tolist() == [0] * 5 + [1] * 5
    )
    assert (best_window_iou(gt, shrink_boxes(crops.windows, 0.25)) < 0.3).all()
    assert (box_iou(crops.windows, gt)[:, 0] > 0).all()  # touching windows come first
    crop, label = crops[0]
    assert crop.shape == (3, 12, 12) and crop.dtype == torch.float32 and label == 0
    assert torch.allclose(crop, crop_windows(image, crops.windows[:1], 12)[0], atol=1 / 255)


def test_window_crops_round_trip():
    crops = torch.rand(4, 3, 8, 8)
    data = WindowCrops(crops, torch.tensor([0, 1, 2, 3]), transforms=lambda x: x.flip(-1))
    crop, label = data[2]
    assert label == 2 and torch.allclose(crop, crops[2].flip(-1), atol=1 / 255)
    with pytest.raises(ValueError):
        WindowCrops(crops, torch.tensor([0, 1]))


# --------------------------------------------------------------------------- classifiers


def test_crop_classifier_shapes_and_split():
    model = CropClassifier(num_classes=4, crop_size=32, width=8).eval()
    crops = torch.rand(5, 3, 32, 32)
    features = model.features(crops)
    assert features.shape == (5, model.feature_dim) == (5, 4 * 8 * 4 * 4)
    assert torch.allclose(model.head(features), model(crops))
    assert CropClassifier(num_classes=2, in_channels=1, crop_size=25, width=4)(
        torch.rand(2, 1, 25, 25)
    ).shape == (2, 2)
    with pytest.raises(ValueError, match="crop_size=32"):
        model(torch.rand(2, 3, 24, 24))
    with pytest.raises(TypeError):
        model(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError):
        CropClassifier(num_classes=1)


def test_standardize_ignores_brightness_and_contrast():
    torch.manual_seed(0)
    model = CropClassifier(
        num_classes=2, in_channels=1, crop_size=16, width=4, standardize=True
    ).eval()
    crops = torch.rand(3, 1, 16, 16) * 0.5
    assert torch.allclose(model(crops), model(crops + 0.3), atol=1e-5)  # brightness: exactly
    assert not torch.allclose(model(crops), model(torch.rand(3, 1, 16, 16)), atol=1e-5)
    assert isinstance(model.features[0], Standardize)


def test_predict_proba_batches_and_restores_mode():
    torch.manual_seed(0)
    model = CropClassifier(num_classes=3, crop_size=8, width=4).train()
    crops = torch.rand(10, 3, 8, 8)
    probs = predict_proba(model, crops, batch_size=3)
    assert probs.shape == (10, 3) and torch.allclose(probs.sum(1), torch.ones(10))
    assert model.training
    model.eval()
    assert torch.allclose(probs, torch.softmax(model(crops), 1), atol=1e-6)
    assert predict_proba(model, torch.zeros(0, 3, 8, 8)).shape == (0, 3)


class _Toy(torch.utils.data.Dataset):
    """Bright crops are class 1, dark crops class 0."""

    def __init__(self, n=64):
        g = torch.Generator().manual_seed(0)
        self.labels = torch.arange(n) % 2
        self.crops = (
            torch.rand(n, 3, 8, 8, generator=g) * 0.5 + 0.5 * self.labels[:, None, None, None]
        )

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.crops[i], int(self.labels[i])


def test_train_crop_classifier_learns_a_toy_task_and_accuracy_counts():
    model = CropClassifier(num_classes=2, crop_size=8, width=4)
    history = train_crop_classifier(
        model, _Toy(), steps=40, batch_size=16, lr=1e-2, checkpoint=None, progress=False
    )
    assert len(history.records) == 40
    result = classifier_accuracy(model, _Toy())
    assert result["accuracy"] > 0.9
    assert result["confusion"].sum() == 64 and result["confusion"].shape == (2, 2)
    assert abs(result["accuracy"] - float(result["confusion"].diag().sum()) / 64) < 1e-6


# --------------------------------------------------------------------------- faces


def test_lfw_faces_first_half_are_faces():
    images, labels = load_lfw_faces()
    assert images.shape == (200, 1, FACE_SIZE, FACE_SIZE) and images.dtype == torch.float32
    assert labels[:100].eq(1).all() and labels[100:].eq(0).all()
    assert 0 <= images.min() and images.max() <= 1
    # faces resemble the average face far more than the non-faces do (correlation with the mean face)
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


def test_negative_patches_and_astronaut():
    patches = negative_patches(30, seed=3, names=("coffee", "brick"))
    assert patches.shape == (30, 1, 25, 25) and 0 <= patches.min() and patches.max() <= 1
    assert torch.equal(patches, negative_patches(30, seed=3, names=("coffee", "brick")))
    assert not torch.equal(patches, negative_patches(30, seed=4, names=("coffee", "brick")))
    image = astronaut_gray()
    assert image.shape == (1, 512, 512)
    from skimage.data import astronaut

    rgb = torch.from_numpy(astronaut()).float()
    x1, y1, x2, y2 = (int(v) for v in ASTRONAUT_FACE_BOX)
    skin = rgb[y1 + 20 : y2 - 20, x1 + 20 : x2 - 20].reshape(-1, 3).mean(0)
    assert skin[0] > skin[1] > skin[2]  # the hand-drawn face box holds skin (red > green > blue)


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


def test_crop_augmentation_keeps_the_square_symmetries():
    torch.manual_seed(0)
    crop = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(2, 4, 4)
    symmetries = {
        tuple(torch.rot90(c, k, (1, 2)).flatten().tolist())
        for c in (crop, crop.flip(-1))
        for k in range(4)
    }
    augment = crop_augmentation()
    seen = {tuple(augment(crop).flatten().tolist()) for _ in range(200)}
    assert seen <= symmetries and len(seen) == 8
    assert RandomQuarterTurn()(crop).shape == crop.shape


def test_scene_classifier_training_set_and_pretrained_classifier():
    train_set, crops, hard = scene_classifier_training_set(12, hard_per_image=2)
    assert len(train_set) == len(crops) + len(hard) and len(hard) == 24
    crop, label = train_set[len(crops)]
    assert crop.shape == (3, 32, 32) and label == 0
    model, history = pretrained_crop_classifier(
        num_scenes=12, steps=2, checkpoint=None, progress=False
    )
    assert not model.training and len(history.records) == 2
    assert model.crop_size == 32 and model.num_classes == 4
