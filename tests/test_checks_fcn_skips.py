"""The FCN skip-fusion check (notebook 08) accepts correct answers and rejects stubs and plausible
student mistakes.

Each ``Wrong`` below is a real, deliberately wrong ``fuse_skips`` a student might write (in
``tests/fcn_skips_wrongs.py``); the check must raise CheckFailed for it, with a message that says
what is wrong (``says``); ``tests/test_check_contract.py`` runs them all. The other tests prove
that the reference does what its docstring says, that the cases cover FCN-32s, 16s and 8s and the
crop, and that every mistake the check names really differs from the reference somewhere.
"""

from __future__ import annotations

import fcn_skips_wrongs as w
import pytest
import torch
import torch.nn.functional as F
from check_contract import Wrong, assert_cases_deterministic_with_hints
from torch import nn

from course_utils.grading.checks import all_checks
from course_utils.grading.checks.fcn_skips import (
    _MISTAKES,
    CHECKS,
    _same,
    check_fuse_skips,
    fuse_skips_cases,
)
from course_utils.segmentation import fcn
from course_utils.segmentation.upsampling import Upsample

CORRECT = [
    (check_fuse_skips, fcn.fuse_skips),
    (check_fuse_skips, w.good_fuse_skips),
    (check_fuse_skips, w.good_fuse_skips_crop_only_when_needed),
]

_FUSE = check_fuse_skips

WRONG = [
    Wrong(_FUSE, w.fuse_reversed, "wrong order (pool3 before pool4)"),
    Wrong(_FUSE, w.fuse_raw_features, "the skip's raw features are added"),
    Wrong(_FUSE, w.fuse_multiplied, "the two score maps are multiplied"),
    Wrong(_FUSE, w.fuse_upsample_after_add, "up-sampled after the addition"),
    Wrong(_FUSE, w.fuse_no_final, "the final up-sampling is missing"),
    Wrong(_FUSE, w.fuse_centre_crop, "the crop keeps the centre"),
    Wrong(_FUSE, w.fuse_bottom_right_crop, "the crop keeps the bottom-right corner"),
    Wrong(_FUSE, w.fuse_resized, "resized (interpolated) to the skip's size"),
    Wrong(_FUSE, w.fuse_no_crop, "Crop the up-sampled scores to the skip's size"),
    Wrong(_FUSE, w.fuse_skip_upsampled, "the skip's scores are up-sampled instead"),
    Wrong(_FUSE, w.fuse_same_layer, "the same 1x1 layer scores every skip"),
    Wrong(_FUSE, w.fuse_concatenated, "concatenated (2K channels)"),
    Wrong(_FUSE, w.fuse_last_skip_only, "only the last skip is fused"),
    Wrong(_FUSE, w.fuse_over_features, "not over the feature maps"),
    Wrong(_FUSE, w.fuse_detached_skip, "score_skips['pool4'].weight gets no gradient"),
    Wrong(_FUSE, w.fuse_without_grad, "the output has no gradient"),
]


def test_the_module_lists_its_check():
    assert all_checks()["fcn_skips"] == CHECKS == (check_fuse_skips,)
    assert check_fuse_skips.function_name == "fuse_skips"
    assert check_fuse_skips.reference is fcn.fuse_skips


def test_cases_are_deterministic_and_have_hints():
    assert len(assert_cases_deterministic_with_hints(fuse_skips_cases)) >= 7


def test_cases_cover_every_variant_and_the_crop():
    """0, 1 and 2 skips; a crop of 1 pixel (ceil-mode sizes) and of more (centre != top-left);
    both bilinear and learned up-sampling; a skip with C != K channels."""
    cases = [c for c in fuse_skips_cases() if c.args[0].device.type == "cpu"]
    assert {len(c.args[2]) for c in cases} == {0, 1, 2}
    extra = []
    for case in cases:
        scores, features, skips, upscore, score_skips, _ = case.args
        for name in skips:
            up = upscore[name](scores)
            skip = score_skips[name](features[name])
            extra.append(up.shape[-1] - skip.shape[-1])
            assert up.shape[-2] >= skip.shape[-2]
            scores = up[..., : skip.shape[-2], : skip.shape[-1]] + skip
        assert all(score_skips[n].in_channels == features[n].shape[1] for n in skips)
    assert {0, 1, 2} <= set(extra)
    modes = {m.mode for c in cases for m in [*c.args[3].values(), c.args[5]]}
    assert modes == {"bilinear", "learned"}
    channels = {c.args[1][n].shape[1] for c in cases for n in c.args[2]}
    assert channels - {3, 4} and 3 in channels


def test_every_named_mistake_differs_from_the_reference_on_some_case():
    cases = fuse_skips_cases()
    for text, mistake in _MISTAKES:
        differs = False
        for case in cases:
            expected = fcn.fuse_skips(*case.args)
            try:
                wrong = mistake(case.args)
            except (RuntimeError, ValueError, KeyError, IndexError):
                continue
            differs |= not _same(wrong, expected)
        assert differs, text


# ---------------------------------------------------------------- the reference, by hand


def _layers(k: int, channels: dict[str, int], factors: dict[str, int], final: int):
    upscore = nn.ModuleDict({n: Upsample(k, f) for n, f in factors.items()})
    score_skips = nn.ModuleDict({n: nn.Conv2d(c, k, 1) for n, c in channels.items()})
    return upscore, score_skips, Upsample(k, final)


def _up(t: torch.Tensor, factor: int) -> torch.Tensor:
    return F.interpolate(t, scale_factor=factor, mode="bilinear", align_corners=False)


def test_fuse_skips_follows_its_docstring_with_a_crop():
    """FCN-8s on ceil-mode sizes: scores 3 x 4 -> 6 x 8, cropped to pool4's 5 x 7 (top-left),
    -> 10 x 14, cropped to pool3's 9 x 13, then x8."""
    torch.manual_seed(0)
    upscore, score_skips, final = _layers(2, {"pool4": 5, "pool3": 4}, {"pool4": 2, "pool3": 2}, 8)
    scores = torch.randn(1, 2, 3, 4)
    features = {"pool4": torch.randn(1, 5, 5, 7), "pool3": torch.randn(1, 4, 9, 13)}
    out = fcn.fuse_skips(scores, features, ("pool4", "pool3"), upscore, score_skips, final)
    with torch.no_grad():
        x = _up(scores, 2)[..., :5, :7] + score_skips["pool4"](features["pool4"])
        x = _up(x, 2)[..., :9, :13] + score_skips["pool3"](features["pool3"])
        torch.testing.assert_close(out.detach(), _up(x, 8))
    assert out.shape == (1, 2, 72, 104)
    only_final = fcn.fuse_skips(scores, features, (), upscore, score_skips, final)
    torch.testing.assert_close(only_final, _up(scores, 8))


def test_fuse_skips_refuses_scores_smaller_than_the_skip():
    upscore, score_skips, final = _layers(2, {"pool4": 3}, {"pool4": 2}, 16)
    features = {"pool4": torch.randn(1, 3, 5, 5)}
    with pytest.raises(ValueError, match="smaller than pool4's"):
        fcn.fuse_skips(torch.randn(1, 2, 2, 2), features, ("pool4",), upscore, score_skips, final)
    with pytest.raises(ValueError, match=r"\(B, K, h, w\)"):
        fcn.fuse_skips(torch.randn(2, 2, 2), features, (), upscore, score_skips, final)
