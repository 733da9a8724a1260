"""The cases of ``check_score_regions`` (private: not a topic module): small random images,
proposals, CNNs and box regressors, as ``rcnn.score_regions`` takes them.

Each case is ``(images, proposals, cnn, regressor_weights, size, context)``: images float
(C, H, W) in [0, 1] (not square, so that x/y mix-ups show), proposals float (P_i, 4) xyxy with
fractional coordinates, a CNN with ``features`` and ``head``, weights float (K+1, D+1, 4) or
None, a crop side ``size`` and a ``context`` that are not ``warp_regions``' defaults (so that
forgetting them shows). The CNNs have BatchNorm with random running statistics and dropout, and
most start in training mode, as a network does right after fine-tuning: running them in
training mode changes both the outputs and the network. :func:`cnn_change` says how a CNN
differs from how its case built it (the check runs it after the student's function).
"""

from __future__ import annotations

import copy
import weakref

import torch
from torch import nn

from course_utils.detection.classifiers import CropClassifier
from course_utils.grading.runner import Case, check_devices

__all__ = ["cnn_change", "score_regions_cases"]

_SEED = 303

_STEPS = (
    "The steps, for each image with its own proposals: crops = warp_regions(image, boxes, "
    "size, context); features = cnn.features(crops) with the CNN in eval mode; probs = softmax "
    "of cnn.head(features) over the classes (dim=1); deltas[:, k] = features @ W[k, :-1] + "
    "W[k, -1] for every class k (None when regressor_weights is None). Put the CNN back in the "
    "mode you found it in."
)

# How each case's CNN was built: its modules' training flags and a copy of its state.
_BUILT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _RegionCNN(nn.Module):
    """conv 3x3 -> BatchNorm -> ReLU -> max-pool 2 -> conv 3x3 -> adaptive average pool (g, g)
    -> flatten: ``features`` (N, C, S, S) -> (N, channels * g * g), for any crop side S;
    ``head``: dropout -> linear -> (N, classes) logits."""

    def __init__(self, width: int, channels: int, grid: int, classes: int, dropout: float):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, channels, 3, padding=1),
            nn.AdaptiveAvgPool2d(grid),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels * grid * grid, classes))

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(crops))


def _remember(cnn: nn.Module) -> nn.Module:
    """Record ``cnn``'s modes and state as its case built it; returns ``cnn``."""
    modes = {name: module.training for name, module in cnn.named_modules()}
    state = {key: value.detach().clone() for key, value in cnn.state_dict().items()}
    _BUILT[cnn] = (modes, state)
    return cnn


def cnn_change(cnn: nn.Module) -> str | None:
    """What changed in a case's CNN since its case built it (None: nothing, or not a case's)."""
    if cnn not in _BUILT:
        return None
    modes, state = _BUILT[cnn]
    for key, value in cnn.state_dict().items():
        if not torch.equal(value, state[key]):
            if "running" in key or "num_batches" in key:
                return (
                    "the CNN ran in training mode: its BatchNorm layers used the batch's "
                    f"statistics and updated their running ones ({key} changed), and dropout "
                    "dropped features at random. Call cnn.eval() before running it (and put "
                    "the mode back afterwards)."
                )
            return f"the CNN's {key} changed during your call: only read the network's weights."
    was, now = modes[""], cnn.training
    changed = [name for name, module in cnn.named_modules() if module.training != modes[name]]
    if changed and was:
        return (
            "the CNN was left in eval mode: it was in training mode before your call. Remember "
            "was_training = cnn.training first and call cnn.train(was_training) at the end."
        )
    if changed:
        return (
            f"the CNN was put in {'training' if now else 'a different'} mode: it was in eval "
            "mode before your call. Restore the mode you found, cnn.train(was_training), "
            "rather than calling cnn.train()."
        )
    return None


def _random_(module: nn.Module, g: torch.Generator) -> nn.Module:
    """Seeded random weights (scaled by the fan-in), biases and BatchNorm statistics."""
    with torch.no_grad():
        for parameter in module.parameters():
            fan_in = parameter[0].numel() if parameter.dim() > 1 else 4
            parameter.copy_(torch.randn(parameter.shape, generator=g) / fan_in**0.5)
        for layer in module.modules():
            if isinstance(layer, nn.BatchNorm2d):
                layer.weight.add_(1.0)
                layer.running_mean.copy_(torch.randn(layer.num_features, generator=g) * 0.2)
                layer.running_var.copy_(torch.rand(layer.num_features, generator=g) + 0.5)
    return module


def _boxes(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


def _case(
    name: str,
    hint: str,
    *,
    seed: int,
    sizes: list[tuple[int, int]],
    boxes: list[list[list[float]]],
    cnn: nn.Module,
    training: bool,
    size: int,
    context: float,
    regression: str = "random",
) -> Case:
    """Images of ``sizes`` (H, W) with ``boxes``; ``cnn`` randomised and in ``training`` mode;
    weights random, random with a zero background row, or None (``regression``)."""
    g = torch.Generator().manual_seed(_SEED + seed)
    images = [torch.rand(3, h, w, generator=g) for h, w in sizes]
    cnn = _random_(cnn, g).eval()
    weights = None
    if regression != "none":
        with torch.no_grad():
            dim = cnn.features(torch.zeros(1, 3, size, size)).shape[1]
            classes = cnn.head(torch.zeros(1, dim)).shape[1]
        weights = torch.randn(classes, dim + 1, 4, generator=g) * 0.3
        if regression == "zero background":
            weights[0] = 0.0
    cnn.train(training)
    args = ([*images], [_boxes(b) for b in boxes], _remember(cnn), weights, size, context)
    return Case(name, args, hint=hint + " " + _STEPS)


def _moved(case: Case, device: torch.device) -> Case:
    """``case`` with its tensors and CNN on ``device``."""
    images, proposals, cnn, weights, size, context = case.args
    cnn = _remember(copy.deepcopy(cnn).to(device))
    moved = (
        [image.to(device) for image in images],
        [boxes.to(device) for boxes in proposals],
        cnn,
        None if weights is None else weights.to(device),
        size,
        context,
    )
    return Case(f"{case.name} (on {device.type})", moved, hint=case.hint)


def score_regions_cases() -> list[Case]:
    """The cases of ``check_score_regions``, plus CUDA copies of two of them."""
    cases = [
        _case(
            "one 20 x 28 image, 3 proposals, 12 x 12 crops with context 0.3; a CNN (in training "
            "mode) with D = 4 features and K+1 = 4 classes",
            "Warp with the size and context you are given (not warp_regions' defaults), read "
            "the boxes as (x1, y1, x2, y2), and feed the regressors the features (P, D), not "
            "the class scores.",
            seed=1,
            sizes=[(20, 28)],
            boxes=[[[2.5, 3.0, 14.0, 11.5], [10.0, 1.5, 26.5, 9.0], [4.0, 8.5, 9.5, 18.0]]],
            cnn=_RegionCNN(3, 4, 1, 4, 0.5),
            training=True,
            size=12,
            context=0.3,
        ),
        _case(
            "three images (16 x 16, 12 x 20, 20 x 12) with 4, 1 and 3 proposals; the CNN is in "
            "eval mode",
            "Score each image with its OWN proposals (zip(images, proposals)) and return one "
            "(probs, deltas) pair per image, in order. Leave the CNN in the mode it was in.",
            seed=2,
            sizes=[(16, 16), (12, 20), (20, 12)],
            boxes=[
                [
                    [1.0, 2.0, 9.5, 7.0],
                    [6.0, 6.5, 15.0, 15.5],
                    [0.5, 9.0, 4.5, 14.0],
                    [3.0, 3.0, 12.0, 12.0],
                ],
                [[4.5, 1.0, 17.0, 10.5]],
                [[1.5, 2.0, 10.0, 8.0], [2.0, 11.0, 7.5, 19.5], [0.0, 0.5, 11.5, 18.0]],
            ],
            cnn=_RegionCNN(3, 3, 2, 3, 0.3),
            training=False,
            size=10,
            context=0.2,
        ),
        _case(
            "two images, the first without proposals (P = 0)",
            "An image without proposals gives probs (0, K+1) and deltas (0, K+1, 4): "
            "warp_regions returns (0, C, S, S) crops and the CNN takes an empty batch. Don't "
            "skip the image.",
            seed=3,
            sizes=[(14, 18), (16, 12)],
            boxes=[[], [[1.0, 1.0, 8.0, 10.5], [3.5, 4.0, 11.0, 15.0]]],
            cnn=_RegionCNN(2, 3, 2, 3, 0.5),
            training=True,
            size=8,
            context=0.35,
        ),
        _case(
            "a single proposal (P = 1)",
            "One proposal still gives probs (1, K+1) and deltas (1, K+1, 4): don't squeeze.",
            seed=4,
            sizes=[(18, 22)],
            boxes=[[[3.5, 2.0, 15.0, 13.5]]],
            cnn=_RegionCNN(3, 4, 2, 4, 0.5),
            training=True,
            size=9,
            context=0.3,
        ),
        _case(
            "boxes touching the image's border (their context lies outside it)",
            "warp_regions adds the context and fills what falls outside the image with zeros: "
            "pass the boxes as they are.",
            seed=5,
            sizes=[(16, 24)],
            boxes=[
                [
                    [0.0, 0.0, 9.0, 7.5],
                    [15.5, 6.0, 24.0, 16.0],
                    [0.0, 9.0, 24.0, 16.0],
                    [5.0, 0.0, 11.0, 16.0],
                ]
            ],
            cnn=_RegionCNN(3, 3, 2, 4, 0.5),
            training=True,
            size=10,
            context=0.4,
        ),
        _case(
            "no box regression (regressor_weights is None)",
            "Without regressors the detector keeps the proposals: return None as the deltas of "
            "every image.",
            seed=6,
            sizes=[(14, 20)],
            boxes=[[[1.0, 2.0, 11.0, 12.0], [8.5, 0.5, 19.0, 9.0]]],
            cnn=_RegionCNN(2, 3, 1, 3, 0.5),
            training=True,
            size=8,
            context=0.3,
            regression="none",
        ),
        _case(
            "the course's CropClassifier (8 x 8 crops, K+1 = 3, dropout 0.5) in training mode, "
            "two images, background regressor all zero",
            "In eval mode BatchNorm uses its running statistics and dropout keeps every feature: "
            "cnn.eval() first, cnn.train(was_training) at the end.",
            seed=7,
            sizes=[(16, 20), (20, 16)],
            boxes=[
                [[2.0, 1.5, 12.0, 9.0], [9.0, 5.0, 19.5, 15.0]],
                [[1.0, 3.0, 8.5, 17.0], [4.0, 0.5, 15.0, 10.0], [6.5, 8.0, 13.0, 19.0]],
            ],
            cnn=CropClassifier(3, crop_size=8, width=2, dropout=0.5),
            training=True,
            size=8,
            context=0.3,
            regression="zero background",
        ),
    ]
    for device in check_devices():
        if device.type != "cpu":
            cases += [_moved(case, device) for case in (cases[1], cases[6])]
    return cases
