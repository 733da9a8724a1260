"""course_utils.detection.classifiers: the crop classifier, its augmentation, training, scores."""

import pytest
import torch

from course_utils.detection.classifiers import (
    CropClassifier,
    RandomQuarterTurn,
    Standardize,
    classifier_accuracy,
    crop_augmentation,
    predict_proba,
    train_crop_classifier,
)


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
    with pytest.raises(TypeError, match="width"):
        CropClassifier(width=2.0)
    with pytest.raises(ValueError, match="dropout"):
        CropClassifier(dropout=1.0)
    with pytest.raises(ValueError, match="crop_size"):
        CropClassifier(crop_size=4)


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


def test_train_crop_classifier_validates_and_is_seeded():
    def accuracy(model):
        return {"accuracy": classifier_accuracy(model, _Toy(16))["accuracy"]}

    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(CropClassifier(num_classes=2, crop_size=8, width=4))
        history = train_crop_classifier(
            models[-1],
            _Toy(),
            steps=6,
            batch_size=8,
            checkpoint=None,
            progress=False,
            val_fn=accuracy,
            val_every=3,
        )
        assert [record["step"] for record in history.val] == [3, 6]
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.equal(a, b)  # same seed, same batches: the same weights
    with pytest.raises(TypeError, match="steps"):
        train_crop_classifier(models[0], _Toy(), steps=2.5, checkpoint=None)


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
