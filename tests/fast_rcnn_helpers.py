"""Shared by the Fast R-CNN tests: a classifier shaped like CropClassifier, scenes, proposals."""

import torch
from torch import nn


def block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class LikeCropClassifier(nn.Module):
    """The structure of ``CropClassifier``: features (3 blocks + flatten) and head."""

    def __init__(self, num_classes: int = 4, crop_size: int = 32, width: int = 4):
        super().__init__()
        self.crop_size = crop_size
        self.features = nn.Sequential(
            block(3, width), block(width, 2 * width), block(2 * width, 4 * width), nn.Flatten()
        )
        self.head = nn.Sequential(
            nn.Dropout(0.1), nn.Linear(4 * width * (crop_size // 8) ** 2, num_classes)
        )

    def forward(self, x):
        return self.head(self.features(x))


def trained_like_classifier(seed: int = 0) -> LikeCropClassifier:
    """A classifier with non-trivial BatchNorm statistics (a few forward passes in train mode)."""
    torch.manual_seed(seed)
    model = LikeCropClassifier()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(8, 3, 32, 32))
    return model.eval()


def scene(seed: int, size: int = 64):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(3, size, size, generator=g)
    return image, {
        "boxes": torch.tensor([[4.0, 6.0, 26.0, 30.0], [30.0, 34.0, 60.0, 58.0]]),
        "labels": torch.tensor([1, 3]),
    }


def proposals_around(boxes: torch.Tensor, n: int, seed: int, size: float = 64.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = boxes.repeat_interleave(n, 0)
    sides = (base[:, 2:] - base[:, :2]).repeat(1, 2)
    out = (base + torch.randn(base.shape, generator=g) * sides * 0.3).clamp(0, size)
    x1, y1 = torch.minimum(out[:, 0], out[:, 2] - 2), torch.minimum(out[:, 1], out[:, 3] - 2)
    return torch.stack([x1, y1, out[:, 2], out[:, 3]], dim=1)


class TinyScenes(torch.utils.data.Dataset):
    """Three scenes of :func:`scene`."""

    def __len__(self):
        return 3

    def __getitem__(self, index):
        return scene(index)
