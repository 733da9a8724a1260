"""Check for FCN's skip fusion (notebook 08): the decoder that makes FCN-16s and FCN-8s.

``fuse_skips(scores, features, skips, upscore, score_skips, upscore_final) -> logits``: for each
skip, coarsest first, up-sample the scores (``upscore[name]``), score the skip's features with
its 1x1 layer (``score_skips[name]``), crop the up-sampled scores to the skip's size (top-left
corner) and add; then ``upscore_final``. The reference is the course's ``fcn.fuse_skips``
(``course_utils.segmentation``), which ``fcn.FCN`` runs by default and the student's function
replaces (``fcn.fcn(..., fusion=fuse_skips)``).

Outputs are compared first; a wrong output is matched against the usual mistakes (computed here
on the case's inputs) to say which one it is. Then the gradients of every layer's parameters
(for a random output gradient) must equal the reference's.

Usage in a notebook::

    check_fuse_skips(fuse_skips)   # graded cell: raises on a wrong answer
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from course_utils.grading.assignments import assignment_check
from course_utils.grading.checks._fcn_skips_cases import fuse_skips_cases
from course_utils.grading.compare import not_a_tensor_problem, tensor_type_problem
from course_utils.grading.runner import Case
from course_utils.segmentation import fcn

__all__ = ["CHECKS", "check_fuse_skips", "fuse_skips_cases"]

_SEED = 819


# ----------------------------------------------------------------------------------------------
# The usual mistakes, each a fusion computed on the case's inputs, with what to say about it
# ----------------------------------------------------------------------------------------------


def _crop(up: torch.Tensor, like: torch.Tensor, where: str = "top-left") -> torch.Tensor:
    """``up`` cut to ``like``'s height and width: keeping its top-left, centre or bottom-right."""
    height, width = like.shape[-2:]
    extra_h, extra_w = max(up.shape[-2] - height, 0), max(up.shape[-1] - width, 0)
    top, left = {
        "top-left": (0, 0),
        "centre": (extra_h // 2, extra_w // 2),
        "bottom-right": (extra_h, extra_w),
    }[where]
    return up[..., top : top + height, left : left + width]


def _fusion(
    args: tuple,
    *,
    order: Callable[[tuple], tuple] = lambda skips: skips,
    score: Callable[..., torch.Tensor] | None = None,
    step: Callable[..., torch.Tensor] | None = None,
    final: bool = True,
) -> torch.Tensor:
    """The reference's loop with one part swapped: ``order(skips)``, ``score(name, layers,
    features)`` (the skip's K-channel map), ``step(scores, skip, up_layer)`` (one fusion)."""
    scores, features, skips, upscore, score_skips, upscore_final = args
    for name in order(tuple(skips)):
        skip = (
            score_skips[name](features[name])
            if score is None
            else score(name, score_skips, features, skips)
        )
        if step is None:
            scores = _crop(upscore[name](scores), skip) + skip
        else:
            scores = step(scores, skip, upscore[name])
    return upscore_final(scores) if final else scores


def _resized(up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    size = tuple(skip.shape[-2:])
    return F.interpolate(up, size=size, mode="bilinear", align_corners=False)


_MISTAKES: tuple[tuple[str, Callable[[tuple], torch.Tensor]], ...] = (
    (
        "the final up-sampling is missing: return upscore_final(scores), the fused scores "
        "up-sampled to the image's size.",
        lambda a: _fusion(a, final=False),
    ),
    (
        "the skips are fused in the wrong order (pool3 before pool4): go from coarse to fine, "
        "in the order of skips, each up-sampling step reading the previous sum.",
        lambda a: _fusion(a, order=lambda skips: skips[::-1]),
    ),
    (
        "only the last skip is fused (its up-sampling is applied to the coarse scores): "
        "assign the sum back to scores inside the loop, so that each skip adds to the previous "
        "sum.",
        lambda a: _fusion(a, order=lambda skips: skips[-1:]),
    ),
    (
        "the skip's raw features are added: score them first with the 1x1 layer "
        "score_skips[name](features[name]), which maps C channels to the K classes.",
        lambda a: _fusion(a, score=lambda n, layers, f, s: f[n]),
    ),
    (
        "the same 1x1 layer scores every skip: each skip has its own, score_skips[name] "
        "(score_pool4 for pool4, score_pool3 for pool3).",
        lambda a: _fusion(a, score=lambda n, layers, f, s: layers[s[0]](f[n])),
    ),
    (
        "the two score maps are multiplied: FCN adds them (up + skip).",
        lambda a: _fusion(a, step=lambda x, skip, up: _crop(up(x), skip) * skip),
    ),
    (
        "the scores are up-sampled after the addition: up-sample the coarse scores first "
        "(upscore[name](scores)), then add the skip's scores at the skip's resolution.",
        lambda a: _fusion(a, step=lambda x, skip, up: up(x + skip)),
    ),
    (
        "the skip's scores are up-sampled instead of the coarse scores: upscore[name] brings "
        "the coarse scores to the skip's (finer) resolution.",
        lambda a: _fusion(a, step=lambda x, skip, up: x + up(skip)),
    ),
    (
        "the two score maps are concatenated (2K channels): FCN adds them, keeping K channels.",
        lambda a: _fusion(a, step=lambda x, skip, up: torch.cat([_crop(up(x), skip), skip], 1)),
    ),
    (
        "the crop keeps the centre of the up-sampled scores: keep their top-left corner, "
        "up[:, :, :h, :w] (both maps start at the image's top-left pixel).",
        lambda a: _fusion(a, step=lambda x, skip, up: _crop(up(x), skip, "centre") + skip),
    ),
    (
        "the crop keeps the bottom-right corner of the up-sampled scores: keep their top-left "
        "corner, up[:, :, :h, :w].",
        lambda a: _fusion(a, step=lambda x, skip, up: _crop(up(x), skip, "bottom-right") + skip),
    ),
    (
        "the up-sampled scores are resized (interpolated) to the skip's size: crop them "
        "instead, keeping the top-left h x w pixels, as the paper's crop layer does.",
        lambda a: _fusion(a, step=lambda x, skip, up: _resized(up(x), skip) + skip),
    ),
)


def _same(a: Any, b: torch.Tensor) -> bool:
    return (
        isinstance(a, torch.Tensor)
        and a.shape == b.shape
        and a.device == b.device
        and a.dtype == b.dtype
        and bool(torch.allclose(a.detach(), b.detach(), rtol=1e-4, atol=1e-5))
    )


def _which_mistake(got: torch.Tensor, expected: torch.Tensor, case: Case) -> str | None:
    """The first usual mistake whose result equals ``got`` (and differs from the reference's)."""
    for text, mistake in _MISTAKES:
        try:
            with torch.no_grad():
                wrong = mistake(case.args)
        except (RuntimeError, ValueError, KeyError, IndexError):
            continue  # this mistake crashes on this case: it is not what the student did
        if _same(got, wrong) and not _same(wrong, expected):
            return text
    return None


# ----------------------------------------------------------------------------------------------
# Gradients
# ----------------------------------------------------------------------------------------------


def _named_parameters(case: Case) -> list[tuple[str, torch.Tensor]]:
    """Every parameter of the case's layers, named as the student's code reaches it."""
    _, _, _, upscore, score_skips, upscore_final = case.args
    named = [
        (f"upscore['{k}'].{n}", p) for k, m in upscore.items() for n, p in m.named_parameters()
    ]
    named += [
        (f"score_skips['{k}'].{n}", p)
        for k, m in score_skips.items()
        for n, p in m.named_parameters()
    ]
    return named + [(f"upscore_final.{n}", p) for n, p in upscore_final.named_parameters()]


def _gradient_problem(got: torch.Tensor, expected: torch.Tensor, case: Case) -> str | None:
    """The parameters' gradients of ``sum(g * output)`` for a random ``g``, compared."""
    named = _named_parameters(case)
    if not named:
        return None  # bilinear FCN-32s: nothing to train in the fusion
    if got.grad_fn is None:
        return (
            "the output has no gradient: no layer of the fusion would train. Don't compute it "
            "under torch.no_grad(), and don't .detach() it."
        )
    g = torch.Generator().manual_seed(_SEED)
    direction = torch.randn(expected.shape, generator=g).to(expected.device)
    parameters = [p for _, p in named]
    want = torch.autograd.grad(expected, parameters, direction, allow_unused=True)
    have = torch.autograd.grad(got, parameters, direction, allow_unused=True)
    for (name, _), w, h in zip(named, want, have):
        if w is None:
            continue
        if h is None or (not bool(h.any()) and bool(w.any())):
            return (
                f"{name} gets no gradient: it would never train. Use the layer's output as it "
                "is (no .detach(), no .data, no torch.no_grad())."
            )
        if not torch.allclose(h, w, rtol=1e-4, atol=1e-5):
            return (
                f"the outputs are right but the gradient of {name} differs from the "
                f"reference's (largest difference {float((h - w).abs().max()):.4g})."
            )
    return None


# ----------------------------------------------------------------------------------------------
# The check
# ----------------------------------------------------------------------------------------------


def _compare_fusion(got: Any, expected: torch.Tensor, case: Case) -> str | None:
    """Type, then the output (naming the usual mistake when it is one), then the gradients."""
    problem = not_a_tensor_problem(got)
    if problem:
        return problem
    if not _same(got, expected):
        mistake = _which_mistake(got, expected, case)
        if mistake:
            return mistake
        problem = tensor_type_problem(got, expected)
        if problem:
            return problem
        return (
            "the logits differ from the reference's with the same layers (largest difference "
            f"{float((got.detach() - expected.detach()).abs().max()):.4g})."
        )
    return _gradient_problem(got, expected, case)


@assignment_check(reference=fcn.fuse_skips, cases=fuse_skips_cases, compare=_compare_fusion)
def check_fuse_skips(fuse_skips: Callable[..., torch.Tensor], *, quiet: bool = False) -> None:
    """Check ``fuse_skips(scores, features, skips, upscore, score_skips, upscore_final) ->
    logits``.

    scores float (B, K, h, w), the stride-32 class scores; features a dict of float (B, C, h', w')
    maps; skips the names to fuse, coarsest first (() for FCN-32s, ("pool4",) for 16s, ("pool4",
    "pool3") for 8s); upscore[name], score_skips[name] (1x1 conv C -> K) and upscore_final are
    layers to call. For each skip: up = upscore[name](scores), skip = score_skips[name](
    features[name]), up cropped to skip's (h, w) keeping its top-left corner, scores = up + skip;
    then logits = upscore_final(scores). Outputs and the layers' gradients must equal the
    reference's.
    """


CHECKS = (check_fuse_skips,)
