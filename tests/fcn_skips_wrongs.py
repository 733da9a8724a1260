"""Right and deliberately wrong ``fuse_skips`` functions (notebook 08: FCN's skip fusion).

``good_*`` are right, written the way a student would; every other function makes one plausible
mistake that ``tests/test_checks_fcn_skips.py`` lists in its ``WRONG`` table. All take
``(scores, features, skips, upscore, score_skips, upscore_final)`` as ``fcn.fuse_skips`` does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def good_fuse_skips(scores, features, skips, upscore, score_skips, upscore_final):
    for name in skips:
        up = upscore[name](scores)
        skip = score_skips[name](features[name])
        h, w = skip.shape[2], skip.shape[3]
        scores = up[:, :, :h, :w] + skip
    return upscore_final(scores)


def good_fuse_skips_crop_only_when_needed(
    scores, features, skips, upscore, score_skips, upscore_final
):
    """Scores all skips first (a dict), crops only when the sizes differ, uses torch.add."""
    skip_scores = {name: score_skips[name](features[name]) for name in skips}
    x = scores
    for name in skips:
        x = upscore[name](x)
        target = skip_scores[name]
        if x.shape[-2:] != target.shape[-2:]:
            x = x[..., : target.shape[-2], : target.shape[-1]]
        x = torch.add(x, target)
    return upscore_final(x)


def _crop(x, h, w):
    return x[:, :, :h, :w]


def fuse_reversed(scores, features, skips, upscore, score_skips, upscore_final):
    for name in reversed(skips):
        skip = score_skips[name](features[name])
        scores = _crop(upscore[name](scores), *skip.shape[-2:]) + skip
    return upscore_final(scores)


def fuse_raw_features(scores, features, skips, upscore, score_skips, upscore_final):
    for name in skips:
        skip = features[name]
        scores = _crop(upscore[name](scores), *skip.shape[-2:]) + skip
    return upscore_final(scores)


def fuse_multiplied(scores, features, skips, upscore, score_skips, upscore_final):
    for name in skips:
        skip = score_skips[name](features[name])
        scores = _crop(upscore[name](scores), *skip.shape[-2:]) * skip
    return upscore_final(scores)


def fuse_upsample_after_add(scores, features, skips, upscore, score_skips, upscore_final):
    for name in skips:
        scores = upscore[name](scores + score_skips[name](features[name]))
    return upscore_final(scores)


def fuse_no_final(scores, features, skips, upscore, score_skips, upscore_final):
    for name in skips:
        skip = score_skips[name](features[name])
        scores = _crop(upscore[name](scores), *skip.shape[-2:]) + skip
    return scores


def fuse_centre_crop(scores, features, skips, upscore, score_skips, upscore_final):
    for name in skips:
        skip = score_skips[name](features[name])
        up = upscore[name](scores)
        top = (up.shape[-2] - skip.shape[-2]) // 2
        left = (up.shape[-1] - skip.shape[-1]) // 2
        scores = up[:, :, top : top + skip.shape[-2], left : left + skip.shape[-1]] + skip
    return upscore_final(scores)


def fuse_bottom_right_crop(scores, features, skips, upscore, score_skips, upscore_final):
    for name in skips:
        skip = score_skips[name](features[name])
        h, w = skip.shape[-2:]
        scores = upscore[name](scores)[:, :, -h:, -w:] + skip
    return upscore_final(scores)


def fuse_resized(scores, features, skips, upscore, score_skips, upscore_final):
    for name in skips:
        skip = score_skips[name](features[name])
        up = F.interpolate(upscore[name](scores), size=skip.shape[-2:], mode="bilinear")
        scores = up + skip
    return upscore_final(scores)


def fuse_no_crop(scores, features, skips, upscore, score_skips, upscore_final):
    for name in skips:
        scores = upscore[name](scores) + score_skips[name](features[name])
    return upscore_final(scores)


def fuse_skip_upsampled(scores, features, skips, upscore, score_skips, upscore_final):
    for name in skips:
        scores = scores + upscore[name](score_skips[name](features[name]))
    return upscore_final(scores)


def fuse_same_layer(scores, features, skips, upscore, score_skips, upscore_final):
    layer = score_skips[skips[0]] if skips else None
    for name in skips:
        skip = layer(features[name])
        scores = _crop(upscore[name](scores), *skip.shape[-2:]) + skip
    return upscore_final(scores)


def fuse_concatenated(scores, features, skips, upscore, score_skips, upscore_final):
    for name in skips:
        skip = score_skips[name](features[name])
        scores = torch.cat([_crop(upscore[name](scores), *skip.shape[-2:]), skip], dim=1)
    return upscore_final(scores)


def fuse_last_skip_only(scores, features, skips, upscore, score_skips, upscore_final):
    fused = scores
    for name in skips:
        skip = score_skips[name](features[name])
        fused = _crop(upscore[name](scores), *skip.shape[-2:]) + skip  # scores never updated
    return upscore_final(fused)


def fuse_over_features(scores, features, skips, upscore, score_skips, upscore_final):
    for name in features:  # every map the backbone returned, not the skips of this variant
        skip = score_skips[name](features[name])
        scores = _crop(upscore[name](scores), *skip.shape[-2:]) + skip
    return upscore_final(scores)


def fuse_detached_skip(scores, features, skips, upscore, score_skips, upscore_final):
    for name in skips:
        skip = score_skips[name](features[name]).detach()
        scores = _crop(upscore[name](scores), *skip.shape[-2:]) + skip
    return upscore_final(scores)


def fuse_without_grad(scores, features, skips, upscore, score_skips, upscore_final):
    with torch.no_grad():
        return good_fuse_skips(scores, features, skips, upscore, score_skips, upscore_final)
