"""The cases of ``check_fuse_skips`` (private: not a topic module): FCN-32s, 16s and 8s decoders
on small random score maps, features and layers.

Each case is ``(scores, features, skips, upscore, score_skips, upscore_final)`` as
``fcn.fuse_skips`` takes them: scores float (B, K, h, w); features a dict holding ``pool3`` and
``pool4`` (also when a case does not fuse them); ``upscore`` / ``score_skips`` ``nn.ModuleDict``s
keyed by skip name; ``upscore_final`` an ``Upsample``. Weights are random (seeded), biases
non-zero: the paper's zero-initialised score layers would hide most mistakes. Learned up-sampling
gets random weights too, so that it is not the bilinear interpolation it starts as.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from course_utils.grading.runner import Case, check_devices
from course_utils.segmentation.upsampling import Upsample

__all__ = ["fuse_skips_cases"]

_SEED = 818

_STEPS = (
    "The steps: for each name in skips (coarsest first): up = upscore[name](scores); skip = "
    "score_skips[name](features[name]); keep the top-left corner of up, cropped to skip's "
    "height and width; scores = up + skip. Then return upscore_final(scores)."
)


def _random_(module: nn.Module, g: torch.Generator) -> nn.Module:
    """Seeded random weights (scaled by the fan-in) and biases, in place; returns ``module``."""
    with torch.no_grad():
        for parameter in module.parameters():
            fan_in = parameter[0].numel() if parameter.dim() > 1 else 2
            parameter.copy_(torch.randn(parameter.shape, generator=g) / fan_in**0.5)
    return module


def _case(
    name: str,
    hint: str,
    *,
    seed: int,
    classes: int,
    scores: tuple[int, int, int],
    pool4: tuple[int, int, int],
    pool3: tuple[int, int, int],
    skips: tuple[str, ...],
    factors: dict[str, int],
    final: int,
    learned: bool,
) -> Case:
    """One case: ``scores`` = (B, h, w), ``pool4`` / ``pool3`` = (C, h, w) of the feature maps,
    ``factors[name]`` = upscore[name]'s factor; random layers (learned up-sampling when asked)."""
    g = torch.Generator().manual_seed(_SEED + seed)
    batch = scores[0]
    maps = {"pool3": pool3, "pool4": pool4}
    features = {key: torch.randn(batch, *shape, generator=g) for key, shape in maps.items()}
    mode = "learned" if learned else "bilinear"
    upscore = nn.ModuleDict(
        {key: _random_(Upsample(classes, factors[key], mode), g) for key in skips}
    )
    score_skips = nn.ModuleDict(
        {key: _random_(nn.Conv2d(maps[key][0], classes, 1), g) for key in skips}
    )
    upscore_final = _random_(Upsample(classes, final, "learned" if final <= 8 else "bilinear"), g)
    coarse = torch.randn(batch, classes, *scores[1:], generator=g)
    args = (coarse, features, skips, upscore, score_skips, upscore_final)
    return Case(name, args, hint=hint + " " + _STEPS)


def _moved(case: Case, device: torch.device) -> Case:
    """``case`` with its tensors and layers on ``device`` (the runner's ``Case.to`` moves only
    tensors)."""
    scores, features, skips, *layers = case.args
    moved = [copy.deepcopy(layer).to(device) for layer in layers]
    features = {key: value.to(device) for key, value in features.items()}
    return Case(
        f"{case.name} (on {device.type})",
        (scores.to(device), features, skips, *moved),
        hint=case.hint,
    )


def fuse_skips_cases() -> list[Case]:
    """The cases of ``check_fuse_skips``, coarse to fine, plus CUDA copies of two of them."""
    cases = [
        _case(
            "FCN-32s: no skip (skips = ()), only the final 32x up-sampling of a 2 x 2 map",
            "With no skip the loop does nothing: the result is upscore_final(scores). Loop over "
            "skips, not over the feature maps (features holds pool3 and pool4 here too).",
            seed=1,
            classes=3,
            scores=(2, 2, 2),
            pool4=(3, 4, 4),
            pool3=(3, 8, 8),
            skips=(),
            factors={},
            final=32,
            learned=False,
        ),  # fmt: skip
        _case(
            "FCN-16s on a 32 x 32 image: 1 x 1 coarse scores, pool4 2 x 2 with 3 channels (= K), "
            "learned 2x up-sampling",
            "The coarse scores are up-sampled (upscore['pool4']) BEFORE the addition, and the "
            "skip's features go through the 1x1 layer score_skips['pool4'] first.",
            seed=2,
            classes=3,
            scores=(2, 1, 1),
            pool4=(3, 2, 2),
            pool3=(3, 4, 4),
            skips=("pool4",),
            factors={"pool4": 2},
            final=16,
            learned=True,
        ),  # fmt: skip
        _case(
            "FCN-8s with a dilated pool5 on a 16 x 16 image: upscore['pool4'] is the identity "
            "(factor 1), pool3 2 x 2, channels = K, learned up-sampling",
            "Fuse pool4 first, then pool3, each with its own layers: upscore[name] and "
            "score_skips[name] of the skip being fused.",
            seed=3,
            classes=3,
            scores=(2, 1, 1),
            pool4=(3, 1, 1),
            pool3=(3, 2, 2),
            skips=("pool4", "pool3"),
            factors={"pool4": 1, "pool3": 2},
            final=8,
            learned=True,
        ),  # fmt: skip
        _case(
            "FCN-8s on a 64 x 96 image: scores 2 x 3, pool4 (5 channels) 4 x 6, pool3 "
            "(4 channels) 8 x 12, bilinear",
            "score_skips[name] maps the skip's C channels to the K classes, so that the two "
            "score maps can be added.",
            seed=4,
            classes=3,
            scores=(2, 2, 3),
            pool4=(5, 4, 6),
            pool3=(4, 8, 12),
            skips=("pool4", "pool3"),
            factors={"pool4": 2, "pool3": 2},
            final=8,
            learned=False,
        ),  # fmt: skip
        _case(
            "FCN-8s, odd sizes (ceil-mode pooling): the up-sampled scores are 1 row and 1 column "
            "larger than pool4 (5 x 7) and pool3 (9 x 13)",
            "Crop the up-sampled scores to the skip's size, keeping their top-left corner: "
            "up[:, :, :h, :w] with (h, w) = skip.shape[-2:]. Crop, don't resize.",
            seed=5,
            classes=3,
            scores=(2, 3, 4),
            pool4=(4, 5, 7),
            pool3=(3, 9, 13),
            skips=("pool4", "pool3"),
            factors={"pool4": 2, "pool3": 2},
            final=8,
            learned=True,
        ),  # fmt: skip
        _case(
            "one skip two stages down (pool3 from the stride-32 scores, 4x up-sampling): 3 "
            "extra rows and 2 extra columns to crop",
            "The crop keeps the top-left corner (offset 0), not the centre nor the bottom-right: "
            "both maps start at the image's top-left pixel.",
            seed=6,
            classes=3,
            scores=(2, 3, 3),
            pool4=(3, 5, 5),
            pool3=(4, 9, 10),
            skips=("pool3",),
            factors={"pool3": 4},
            final=8,
            learned=True,
        ),  # fmt: skip
        _case(
            "FCN-8s, K = 4 classes, a batch of 1, learned up-sampling everywhere",
            "Every layer must get the reference's gradient: no torch.no_grad() and no .detach() "
            "in the fusion.",
            seed=7,
            classes=4,
            scores=(1, 2, 2),
            pool4=(6, 4, 4),
            pool3=(5, 8, 8),
            skips=("pool4", "pool3"),
            factors={"pool4": 2, "pool3": 2},
            final=8,
            learned=True,
        ),  # fmt: skip
    ]
    for device in check_devices():
        if device.type != "cpu":
            cases += [_moved(case, device) for case in (cases[3], cases[4])]
    return cases
