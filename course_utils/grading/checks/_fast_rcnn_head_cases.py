"""The cases of ``check_fast_rcnn_head`` (private: not a topic module): small random maps,
proposals and layers, in eval and in train mode.

Each case is ``(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes)`` as
``fast_rcnn.fast_rcnn_head`` takes them:

* ``maps``: float (B, D, H, W) or a list holding that one map (``FastRCNN.forward`` passes its
  scales' maps as a list, Faster R-CNN one tensor); values mostly negative, so that a ReLU shows;
* ``proposals``: B float (P_i, 4) xyxy boxes in image pixels (stride 4), an image may have none;
* ``pool``: a :class:`CasePool`, RoI max pooling as the model's ``pool`` is, after a learnable
  per-channel gain that stands for the trunk: its gradient says whether the trunk would train;
* ``dropout``: a :class:`SeededDropout`, ``nn.Dropout`` whose mask depends only on the input's
  shape, so that the reference's and the student's calls drop the same values;
* ``cls_score`` = Linear(D s², K+1), ``bbox_pred`` = Linear(D s², 4(K+1)): random weights and
  non-zero biases (seeded).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torchvision.ops import roi_pool

from course_utils.grading.runner import Case, check_devices

__all__ = ["CasePool", "SeededDropout", "fast_rcnn_head_cases"]

_SEED = 404
_STRIDE = 4

_STEPS = (
    "The steps: pooled = pool(maps, proposals) (R, D, s, s); x = dropout(pooled.flatten(1)); "
    "return cls_score(x), bbox_pred(x).reshape(-1, num_classes, 4)."
)


class CasePool(nn.Module):
    """A check's stand-in for ``FastRCNN.pool``: ``pool(maps, proposals)`` -> float (R, D, s, s).

    ``maps`` (B, D, H, W) (or a list holding it) is multiplied by a learnable gain (D,), then
    ``torchvision.ops.roi_pool`` cuts every image's proposals (a list of B (P_i, 4) boxes in
    image pixels) to an s x s grid at stride 4, concatenated in image order.
    """

    def __init__(self, channels: int, grid: int, generator: torch.Generator) -> None:
        super().__init__()
        self.grid = grid
        self.gain = nn.Parameter(1 + 0.3 * torch.randn(channels, generator=generator))

    def forward(self, maps, proposals) -> torch.Tensor:
        features = maps[0] if isinstance(maps, (list, tuple)) else maps
        features = features * self.gain[:, None, None]
        boxes = [b.to(features.dtype) for b in proposals]
        return roi_pool(features, boxes, output_size=self.grid, spatial_scale=1 / _STRIDE)

    def __repr__(self) -> str:
        return (
            f"the model's pool: RoI max pooling to {self.grid}x{self.grid} at stride {_STRIDE} "
            "(call pool(maps, proposals))"
        )


class SeededDropout(nn.Dropout):
    """``nn.Dropout`` (values zeroed with probability p, the others scaled by 1 / (1 - p), in
    train mode only) whose mask is drawn from a fixed seed: the same for every call on the same
    shape, on any device."""

    def __init__(self, p: float, seed: int) -> None:
        super().__init__(p)
        self.seed = seed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        g = torch.Generator().manual_seed(self.seed)
        keep = torch.rand(x.numel(), generator=g) >= self.p
        keep = keep.reshape(x.shape).to(device=x.device, dtype=x.dtype)
        return x * keep / (1 - self.p)

    def _get_name(self) -> str:
        return "Dropout"

    def extra_repr(self) -> str:
        return f"p={self.p}, {'train' if self.training else 'eval'} mode"


def _boxes(count: int, image: int, g: torch.Generator) -> torch.Tensor:
    """``count`` random float (count, 4) boxes inside an image of ``image`` pixels, >= 6 px."""
    corner = torch.rand(count, 2, generator=g) * (image - 8)
    side = 6 + torch.rand(count, 2, generator=g) * (image / 2)
    return torch.cat([corner, (corner + side).clamp(max=image)], dim=1).round()


def _case(
    name: str,
    hint: str,
    *,
    seed: int,
    rois: tuple[int, ...],
    channels: int,
    size: int,
    grid: int,
    classes: int,
    p: float,
    train: bool,
    as_list: bool = False,
) -> Case:
    """One case: ``len(rois)`` images with ``rois[i]`` proposals, maps (B, channels, size, size),
    pooling to grid x grid, K + 1 = ``classes``; dropout p in train or eval mode."""
    g = torch.Generator().manual_seed(_SEED + seed)
    maps = torch.randn(len(rois), channels, size, size, generator=g) - 0.7
    proposals = [_boxes(n, size * _STRIDE, g) for n in rois]
    pool = CasePool(channels, grid, g)
    dropout = SeededDropout(p, _SEED + 50 + seed).train(train)
    features = channels * grid * grid
    cls_score, bbox_pred = nn.Linear(features, classes), nn.Linear(features, 4 * classes)
    with torch.no_grad():
        for layer in (cls_score, bbox_pred):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) / features**0.5)
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=g))
    args = ([maps] if as_list else maps, proposals, pool, dropout, cls_score, bbox_pred, classes)
    return Case(name, args, hint=hint + " " + _STEPS)


def _moved(case: Case, device: torch.device) -> Case:
    """``case`` with its tensors and layers on ``device`` (``Case.to`` moves only tensors)."""
    maps, proposals, *layers, classes = case.args
    maps = [m.to(device) for m in maps] if isinstance(maps, list) else maps.to(device)
    layers = [copy.deepcopy(layer).to(device) for layer in layers]
    proposals = [b.to(device) for b in proposals]
    return Case(
        f"{case.name} (on {device.type})", (maps, proposals, *layers, classes), hint=case.hint
    )


def fast_rcnn_head_cases() -> list[Case]:
    """The cases of ``check_fast_rcnn_head``, edge cases first, plus CUDA copies of two.

    Building them leaves torch's global RNG as it was (nn.Linear's own initialisation draws from
    it): a check cell must not change what a notebook trains after it."""
    with torch.random.fork_rng(devices=[]):
        return _cases()


def _cases() -> list[Case]:
    cases = [
        _case(
            "one image with a single RoI, K + 1 = 2 classes, eval mode",
            "Keep one row per RoI: flatten each RoI's features with flatten(1) (start_dim=1), "
            "not flatten(), which would make one long vector of all RoIs. logits (1, K+1), "
            "deltas (1, K+1, 4).",
            seed=1,
            rois=(1,),
            channels=3,
            size=8,
            grid=2,
            classes=2,
            p=0.5,
            train=False,
        ),  # fmt: skip
        _case(
            "two images (3 and 2 RoIs), K + 1 = 4 classes, maps as a list of one map, eval mode",
            "bbox_pred gives 4(K+1) numbers per RoI, class c's box in columns 4c..4c+3: "
            "reshape to (R, K+1, 4), not (R, 4, K+1). Pass maps and proposals to pool as they "
            "are.",
            seed=2,
            rois=(3, 2),
            channels=4,
            size=10,
            grid=2,
            classes=4,
            p=0.5,
            train=False,
            as_list=True,
        ),  # fmt: skip
        _case(
            "three images, the second without any RoI (3, 0 and 2 RoIs), K + 1 = 3, eval mode",
            "pool(maps, proposals) pools every image's RoIs in one call, concatenated in image "
            "order: R = 3 + 0 + 2 rows, whatever the number per image.",
            seed=3,
            rois=(3, 0, 2),
            channels=2,
            size=8,
            grid=3,
            classes=3,
            p=0.5,
            train=False,
        ),  # fmt: skip
        _case(
            "train mode, dropout p = 0.5: two images (4 and 3 RoIs), K + 1 = 3",
            "Call dropout once, on the flattened features, before the two sibling layers: both "
            "read the same dropped-out features. No ReLU and no softmax in the head: the loss "
            "takes the raw logits.",
            seed=4,
            rois=(4, 3),
            channels=3,
            size=8,
            grid=2,
            classes=3,
            p=0.5,
            train=True,
        ),  # fmt: skip
        _case(
            "train mode, dropout p = 0.3, a 3x3 grid of 5 channels, K + 1 = 4, maps as a list",
            "Flatten each RoI's (D, s, s) features in their own order (flatten(1)): the "
            "pre-trained linear layer reads them channel by channel. Every layer and the trunk "
            "must get the reference's gradient (no .detach(), no torch.no_grad()).",
            seed=5,
            rois=(2, 5),
            channels=5,
            size=12,
            grid=3,
            classes=4,
            p=0.3,
            train=True,
            as_list=True,
        ),  # fmt: skip
        _case(
            "two images without any RoI (R = 0), K + 1 = 3, train mode",
            "With no RoI at all the outputs are empty, logits (0, K+1) and deltas (0, K+1, 4): "
            "flatten(1) and reshape(-1, K+1, 4) work for R = 0 (view(0, -1) cannot know the "
            "second size).",
            seed=6,
            rois=(0, 0),
            channels=2,
            size=8,
            grid=2,
            classes=3,
            p=0.5,
            train=True,
        ),  # fmt: skip
    ]
    for device in check_devices():
        if device.type != "cpu":
            cases += [_moved(case, device) for case in (cases[1], cases[4])]
    return cases
