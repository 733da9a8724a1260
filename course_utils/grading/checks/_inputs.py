"""Random inputs shared by several topic modules' check cases (private: not a topic module)."""

from __future__ import annotations

import torch


def random_boxes(
    n: int, g: torch.Generator, *, min_side: float, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``n`` boxes (n, 4) xyxy with fractional corners in a 150-pixel image.

    Top-left corners are uniform in [0, 100)^2, sides uniform in [min_side, 50); drawn in float64
    from ``g`` (two draws of (n, 2)), then cast to ``dtype``.
    """
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 100
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * (50 - min_side) + min_side
    return torch.cat([xy, xy + wh], dim=1).to(dtype)
