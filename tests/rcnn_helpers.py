"""Shared by the R-CNN tests: random boxes, proposals around objects, a tiny scene, a tiny CNN."""

import torch
from torch import nn


def random_boxes(n: int, seed: int, size: float = 100.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size * 0.7
    wh = torch.rand(n, 2, generator=g) * size * 0.3 + 2
    return torch.cat([xy, xy + wh], dim=1)


def jittered(boxes: torch.Tensor, n_per_box: int, seed: int, scale: float = 0.2) -> torch.Tensor:
    """Proposals around each box, with a spread of overlaps."""
    g = torch.Generator().manual_seed(seed)
    boxes = boxes.repeat_interleave(n_per_box, 0)
    sizes = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    out = boxes + torch.randn(boxes.shape, generator=g) * sizes * scale
    x1, y1 = torch.minimum(out[:, 0], out[:, 2] - 1), torch.minimum(out[:, 1], out[:, 3] - 1)
    return torch.stack([x1, y1, out[:, 2], out[:, 3]], dim=1)


def scene(seed: int):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(3, 64, 64, generator=g)
    boxes = torch.tensor([[5.0, 5.0, 25.0, 30.0], [30.0, 32.0, 60.0, 60.0]])
    return image, {"boxes": boxes, "labels": torch.tensor([2, 3])}


class TinyCNN(nn.Module):
    """features: (B, 3, size, size) -> (B, 4 * size * size); head: -> (B, num_classes)."""

    def __init__(self, num_classes: int = 4, size: int = 8):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten())
        self.head = nn.Linear(4 * size * size, num_classes)

    def forward(self, x):
        return self.head(self.features(x))
