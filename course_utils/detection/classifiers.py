"""Small CNN crop classifiers: "disk? triangle? star? background?" on one square crop.

Notebook 01 trains :class:`CropClassifier` on ``course_utils.data.datasets.CropDataset`` and
slides it over whole scenes; notebook 03 (R-CNN) reuses it as its "pre-trained" network:
``model.features(crops)`` gives one feature vector per crop, ``model.head`` turns it into class
logits::

    model = CropClassifier(num_classes=4)  # background + THING_CLASSES, 3 x 32 x 32 crops
    history = train_crop_classifier(model, CropDataset("train", 400), steps=600)
    probs = predict_proba(model, crops)    # (N, 4) softmax, batched, no gradients

Architecture (``width`` = w, crop side S; every block is conv 3x3 -> BatchNorm -> ReLU ->
max-pool 2x2)::

    (B, C, S, S) -> block(C -> w) -> block(w -> 2w) -> block(2w -> 4w) -> (B, 4w, S//8, S//8)
                 -> flatten -> features (B, 4w * (S//8)**2) -> dropout -> linear
                 -> logits (B, num_classes)

The flatten + linear head (no global average pooling) keeps *where* things are inside the crop,
so a window centred on an object scores higher than a shifted one. A linear layer over a
(4w, S/8, S/8) map is also exactly a convolution with an S/8 x S/8 kernel: the
"convolutionalization" of notebook 08.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from course_utils.core.validate import check_int, check_number
from course_utils.engine import TrainConfig, classification_loss, fit

__all__ = [
    "CropClassifier",
    "RandomQuarterTurn",
    "Standardize",
    "crop_augmentation",
    "classifier_accuracy",
    "predict_proba",
    "train_crop_classifier",
]


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """conv 3x3 (same padding) -> BatchNorm -> ReLU -> max-pool 2x2: halves the side."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class Standardize(nn.Module):
    """Per-crop contrast normalisation: (B, C, S, S) -> (x - mean) / (std + eps), with the
    statistics of each crop over C, S, S."""

    def __init__(self, eps: float = 0.05) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True)
        return (x - mean) / (std + self.eps)


class CropClassifier(nn.Module):
    """A 3-block CNN classifying square crops into ``num_classes`` classes (0 = background).

    Args:
        num_classes: number of outputs, background included (4 for the scenes: background +
            3 things).
        in_channels: 3 for RGB crops, 1 for grayscale (the faces).
        crop_size: side S of the square crops it is trained on (>= 8). Other sizes are rejected
            in forward, because the flatten + linear head is tied to the (S//8, S//8) feature
            map.
        width: channels of the first block (the blocks have w, 2w, 4w).
        dropout: dropout probability before the linear head.
        standardize: subtract each crop's mean and divide by its standard deviation first (the
            contrast normalisation of classic face detectors): the crops' brightness then no
            longer matters, their contrast hardly (``eps`` keeps flat crops finite).

    Attributes:
        features: ``nn.Sequential`` (B, C, S, S) -> (B, feature_dim) float, the reusable part.
        head: ``nn.Sequential`` (B, feature_dim) -> (B, num_classes) logits.
        feature_dim: ``4 * width * (crop_size // 8) ** 2``.
    """

    def __init__(
        self,
        num_classes: int = 4,
        in_channels: int = 3,
        crop_size: int = 32,
        width: int = 16,
        dropout: float = 0.1,
        standardize: bool = False,
    ) -> None:
        super().__init__()
        check_int(num_classes, "num_classes", minimum=2)
        check_int(in_channels, "in_channels")
        check_int(crop_size, "crop_size", minimum=8)
        check_int(width, "width")
        check_number(dropout, "dropout", 0, 1, open_maximum=True)
        self.num_classes, self.in_channels, self.crop_size, self.width = (
            num_classes,
            in_channels,
            crop_size,
            width,
        )
        self.standardize = bool(standardize)
        side = crop_size // 8
        self.feature_dim = 4 * width * side * side
        self.features = nn.Sequential(
            *([Standardize()] if standardize else []),
            _conv_block(in_channels, width),
            _conv_block(width, 2 * width),
            _conv_block(2 * width, 4 * width),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.feature_dim, num_classes))

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) for crops (B, in_channels, crop_size, crop_size) float in
        [0, 1]."""
        self._check_crops(crops)
        return self.head(self.features(crops))

    def _check_crops(self, crops) -> None:
        if not isinstance(crops, torch.Tensor):
            raise TypeError(
                f"crops must be a torch.Tensor (B, C, S, S), got {type(crops).__name__}"
            )
        expected = (self.in_channels, self.crop_size, self.crop_size)
        if crops.ndim != 4 or tuple(crops.shape[1:]) != expected:
            raise ValueError(
                f"crops must have shape (B, {expected[0]}, {expected[1]}, {expected[2]}), "
                f"got {tuple(crops.shape)}; resize windows to crop_size={self.crop_size} first"
            )
        if not crops.is_floating_point():
            raise TypeError(f"crops must be float in [0, 1], got dtype {crops.dtype}")

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, in_channels={self.in_channels}, "
            f"crop_size={self.crop_size}, "
            f"width={self.width}, feature_dim={self.feature_dim}, standardize={self.standardize}"
        )


class RandomQuarterTurn(nn.Module):
    """Rotate a (..., H, W) crop by a random multiple of 90 degrees (exact: no interpolation)."""

    def forward(self, crop: torch.Tensor) -> torch.Tensor:
        turns = int(torch.randint(4, ()))
        return torch.rot90(crop, turns, dims=(-2, -1)) if turns else crop


def crop_augmentation() -> nn.Module:
    """Random flips and quarter turns: the 8 symmetries of a square, all exact.

    The scenes' objects have random rotations, so a rotated or mirrored crop is as likely as the
    original and keeps its label. Pass it as ``CropDataset(..., transforms=crop_augmentation())``.
    """
    return v2.Compose([v2.RandomHorizontalFlip(), RandomQuarterTurn()])


@torch.no_grad()
def predict_proba(model: nn.Module, crops: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Class probabilities (N, num_classes) float32 on ``crops``' device for crops (N, C, S, S).

    Runs ``model`` in eval mode (restoring its mode afterwards) on batches of ``batch_size``
    crops, moving them to the model's device; N = 0 gives an empty (0, num_classes) tensor.
    """
    check_int(batch_size, "batch_size")
    if not isinstance(crops, torch.Tensor) or crops.ndim != 4:
        raise ValueError(
            "crops must be a tensor (N, C, S, S), got "
            + (
                f"shape {tuple(crops.shape)}"
                if isinstance(crops, torch.Tensor)
                else type(crops).__name__
            )
        )
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        if crops.shape[0] == 0:
            num_classes = model(torch.zeros((1, *crops.shape[1:]), device=device)).shape[1]
            return torch.zeros((0, num_classes), device=crops.device)
        chunks = [
            F.softmax(model(crops[i : i + batch_size].to(device)).float(), dim=1)
            for i in range(0, crops.shape[0], batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(chunks).to(crops.device)


@torch.no_grad()
def classifier_accuracy(model: nn.Module, dataset, batch_size: int = 512) -> dict:
    """Accuracy of ``model`` on a dataset of ``(crop (C, S, S), int label)`` items.

    Returns ``{"accuracy": float, "per_class": (K,) float tensor (nan for an absent class),
    "confusion": (K, K) int64 tensor, rows = true label, columns = prediction}``.
    """
    if len(dataset) == 0:
        raise ValueError("dataset is empty")
    crops = torch.stack([dataset[i][0] for i in range(len(dataset))])
    labels = torch.as_tensor([int(dataset[i][1]) for i in range(len(dataset))], dtype=torch.int64)
    predicted = predict_proba(model, crops, batch_size).argmax(dim=1).cpu()
    num_classes = int(max(int(labels.max()), int(predicted.max()))) + 1
    num_classes = max(num_classes, getattr(model, "num_classes", num_classes))
    confusion = torch.bincount(labels * num_classes + predicted, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )
    per_class = confusion.diag().float() / confusion.sum(dim=1).float()
    return {
        "accuracy": float((predicted == labels).float().mean()),
        "per_class": per_class,
        "confusion": confusion,
    }


def train_crop_classifier(
    model: nn.Module,
    dataset,
    *,
    steps: int = 600,
    batch_size: int = 64,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    checkpoint: str | None = "01_classifier",
    device: torch.device | str | None = None,
    seed: int = 0,
    val_fn: Callable | None = None,
    val_every: int | None = None,
    progress: bool = True,
):
    """Train ``model`` with cross-entropy, AdamW and a one-cycle schedule through
    ``course_utils.engine.fit``.

    ``dataset`` items are ``(crop float (C, S, S) in [0, 1], int label)``. The recipe of
    notebook 01 (the default ``checkpoint`` is its ``checkpoint_dir()/01_classifier.pt``, which
    ``scene_classifier.pretrained_crop_classifier`` loads again); notebooks 03 and 04 use it to
    pre-train their own networks under checkpoints of their own.
    ``val_fn(model) -> {metric: float}`` runs every ``val_every`` steps and at the end.

    Returns:
        fit's ``History`` (``viz.plot_history(history)`` draws the loss curves).
    """
    check_int(steps, "steps")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=steps, pct_start=0.2
    )
    config = TrainConfig(
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        val_every=val_every,
        checkpoint=checkpoint,
        device=device,
        progress=progress,
    )
    return fit(
        model, dataset, classification_loss, optimizer, config, scheduler=scheduler, val_fn=val_fn
    )
