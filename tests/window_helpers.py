"""Shared by the sliding-window tests: a scene with one white square and a hand-made classifier."""

import torch
from torch import nn

#: The white square of :func:`square_image`, (x1, y1, x2, y2) exclusive.
SQUARE = (20, 24, 36, 40)


def square_image(size=64, box=SQUARE, channels=3):
    """A black image with one white axis-aligned square (x1, y1, x2, y2 exclusive)."""
    image = torch.zeros(channels, size, size)
    x1, y1, x2, y2 = box
    image[:, y1:y2, x1:x2] = 1.0
    return image


class CentreVsBorder(nn.Module):
    """A hand-made 'classifier': class 1 when the crop's centre third is bright, its border dark."""

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
