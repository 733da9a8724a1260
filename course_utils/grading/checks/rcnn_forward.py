"""Check for R-CNN's per-region forward pass (notebook 03): warp, CNN, softmax, box regressors.

``score_regions(images, proposals, cnn, regressor_weights, size, context) -> scored``: for each
image and its own proposals, warp every box plus context to ``size`` x ``size``
(``warped_regions.warp_regions``), run the CNN's ``features`` in eval mode, take the softmax of
its ``head`` over the classes and the class-specific deltas ``features @ W[k, :-1] + W[k, -1]``;
one ``(probs, deltas)`` pair per image. The reference is the course's ``rcnn.score_regions``,
which ``rcnn.RCNN`` runs by default and the student's function replaces
(``rcnn.RCNN(..., scoring=score_regions)``).

What is compared: the outputs only. The function runs at test time, under ``torch.no_grad()``
in the detector: R-CNN's training never back-propagates through it (the CNN is fine-tuned on
stored warped crops through its own forward, the box regressors are ridge regressions solved
in closed form), so there is no gradient to compare. What matters instead at test time is
checked too: the CNN must run in eval mode, keep its weights and running statistics, and be left
in the mode it was in. A wrong output is matched against the usual mistakes (computed here on
the case's inputs) to say which one it is.

Usage in a notebook::

    check_score_regions(score_regions)   # graded cell: raises on a wrong answer
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from course_utils.detection import rcnn
from course_utils.detection.warped_regions import warp_regions
from course_utils.grading.assignments import assignment_check
from course_utils.grading.checks._rcnn_forward_cases import cnn_change, score_regions_cases
from course_utils.grading.compare import not_a_tensor_problem, tensor_type_problem
from course_utils.grading.runner import Case

__all__ = ["CHECKS", "check_score_regions", "score_regions_cases"]

Scored = list[tuple[torch.Tensor, "torch.Tensor | None"]]


# ----------------------------------------------------------------------------------------------
# The usual mistakes, each computed on the case's inputs, with what to say about it
# ----------------------------------------------------------------------------------------------


def _regress(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return torch.einsum("nd,kdc->nkc", features, weights[:, :-1]) + weights[:, -1]


def _variant(
    args: tuple,
    *,
    warp: Callable[..., torch.Tensor] | None = None,
    pick: Callable[[list, list, int], tuple] | None = None,
    classify: Callable[[torch.Tensor], torch.Tensor] | None = None,
    regress: Callable[..., torch.Tensor] | None = None,
) -> Scored:
    """The reference's steps with one swapped: ``warp(image, boxes, size, context)``,
    ``pick(images, proposals, i)`` (image and boxes of image i), ``classify(logits)``,
    ``regress(features, logits, weights)``; on a copy of the CNN in eval mode."""
    images, proposals, cnn, weights, size, context = args
    net = copy.deepcopy(cnn).eval()
    scored = []
    with torch.no_grad():
        for index in range(len(images)):
            image, boxes = (pick or (lambda i, p, n: (i[n], p[n])))(images, proposals, index)
            crops = (warp or warp_regions)(image, boxes, size, context)
            features = net.features(crops)
            logits = net.head(features)
            probs = (classify or (lambda x: F.softmax(x, dim=1)))(logits)
            deltas = None
            if weights is not None:
                deltas = (regress or (lambda f, x, w: _regress(f, w)))(features, logits, weights)
            scored.append((probs, deltas))
    return scored


def _scrambled(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    out = torch.einsum("nd,kdc->nck", features, weights[:, :-1]) + weights[:, -1].T
    return out.reshape(len(features), -1, 4)


_MISTAKES: tuple[tuple[str, Callable[[tuple], Scored]], ...] = (
    (
        "the regions are warped without context: pass context to warp_regions, which grows "
        "each box by context times its width and height on every side before warping.",
        lambda a: _variant(a, warp=lambda i, b, s, c: warp_regions(i, b, s, 0.0)),
    ),
    (
        "the regions are warped with warp_regions' defaults (32 x 32 crops, context 0.25), "
        "not with the size and context you were given: pass both.",
        lambda a: _variant(a, warp=lambda i, b, s, c: warp_regions(i, b)),
    ),
    (
        "the crops are 32 x 32 (warp_regions' default size), not size x size: pass size, the "
        "side of the crops the CNN was fine-tuned on.",
        lambda a: _variant(a, warp=lambda i, b, s, c: warp_regions(i, b, 32, c)),
    ),
    (
        "the regions are warped with 25 % context (warp_regions' default), not with context: "
        "pass it.",
        lambda a: _variant(a, warp=lambda i, b, s, c: warp_regions(i, b, s, 0.25)),
    ),
    (
        "the boxes were read as (y1, x1, y2, x2): proposals are (x1, y1, x2, y2), x along the "
        "image's width. Pass them to warp_regions as they are.",
        lambda a: _variant(a, warp=lambda i, b, s, c: warp_regions(i, b[:, [1, 0, 3, 2]], s, c)),
    ),
    (
        "every image was scored with the proposals of image 0: pair each image with its own "
        "proposals, zip(images, proposals).",
        lambda a: _variant(a, pick=lambda i, p, n: (i[n], p[0])),
    ),
    (
        "every image's proposals were warped out of image 0: pair each image with its own "
        "proposals, zip(images, proposals).",
        lambda a: _variant(a, pick=lambda i, p, n: (i[0], p[n])),
    ),
    (
        "the class scores are the head's logits: turn them into probabilities with a softmax "
        "over the classes, softmax(logits, dim=1).",
        lambda a: _variant(a, classify=lambda x: x),
    ),
    (
        "the softmax runs over the regions (dim=0): run it over the classes (dim=1), so that "
        "each region's K+1 probabilities sum to 1.",
        lambda a: _variant(a, classify=lambda x: F.softmax(x, dim=0)),
    ),
    (
        "the probabilities come from a sigmoid: R-CNN's classes exclude each other, use a "
        "softmax over the classes (dim=1).",
        lambda a: _variant(a, classify=torch.sigmoid),
    ),
    (
        "the class scores are log-probabilities (log_softmax): return the probabilities, "
        "softmax(logits, dim=1).",
        lambda a: _variant(a, classify=lambda x: F.log_softmax(x, dim=1)),
    ),
    (
        "the box regressors read the class scores (logits): they read the CNN's features "
        "(P, D), features = cnn.features(crops), on which they were fitted.",
        lambda a: _variant(a, regress=lambda f, x, w: _regress(x, w)),
    ),
    (
        "the box regressors read the class probabilities: they read the CNN's features "
        "(P, D), features = cnn.features(crops), on which they were fitted.",
        lambda a: _variant(a, regress=lambda f, x, w: _regress(F.softmax(x, dim=1), w)),
    ),
    (
        "the regressors' bias is missing: the last row of each class's weights, W[k, -1], is "
        "added to features @ W[k, :-1].",
        lambda a: _variant(a, regress=lambda f, x, w: torch.einsum("nd,kdc->nkc", f, w[:, :-1])),
    ),
    (
        "the bias was taken from the first row of the weights: it is the LAST row, "
        "deltas[:, k] = features @ W[k, :-1] + W[k, -1].",
        lambda a: _variant(
            a, regress=lambda f, x, w: torch.einsum("nd,kdc->nkc", f, w[:, 1:]) + w[:, 0]
        ),
    ),
    (
        "the deltas were computed as (P, 4, K+1) and reshaped to (P, K+1, 4), which mixes "
        "classes and coordinates: deltas[:, k] must be the 4 deltas of class k (permute, don't "
        "reshape).",
        lambda a: _variant(a, regress=lambda f, x, w: _scrambled(f, w)),
    ),
)


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return (
        isinstance(a, torch.Tensor)
        and a.shape == b.shape
        and a.device == b.device
        and a.dtype == b.dtype
        and bool(torch.allclose(a.detach(), b.detach(), rtol=1e-4, atol=1e-5))
    )


def _same(got: Any, expected: Scored) -> bool:
    return (
        isinstance(got, (list, tuple))
        and len(got) == len(expected)
        and all(
            isinstance(pair, (list, tuple))
            and len(pair) == 2
            and _close(pair[0], e[0])
            and _close(pair[1], e[1])
            for pair, e in zip(got, expected)
        )
    )


def _which_mistake(got: Scored, expected: Scored, case: Case) -> str | None:
    """The first usual mistake whose result equals ``got`` (and differs from the reference's)."""
    for text, mistake in _MISTAKES:
        try:
            wrong = mistake(case.args)
        except (RuntimeError, ValueError, IndexError):
            continue  # this mistake crashes on this case: it is not what the student did
        if _same(got, wrong) and not _same(wrong, expected):
            return text
    return None


def _class_problem(got: torch.Tensor, expected: torch.Tensor) -> str | None:
    """Class-agnostic deltas, or each class's deltas taken from another class."""
    if got.shape != expected.shape or len(got) == 0 or not got.is_floating_point():
        return None
    got, expected = got.detach(), expected.detach()
    if torch.allclose(got, got[:, :1].expand_as(got), rtol=1e-4, atol=1e-5):
        return (
            "every class gets the same deltas: R-CNN's regressors are class-specific, "
            "deltas[:, k] = features @ W[k, :-1] + W[k, -1] for every class k, (P, K+1, 4)."
        )
    sources = []
    for k in range(got.shape[1]):
        match = [
            j
            for j in range(expected.shape[1])
            if torch.allclose(got[:, k], expected[:, j], rtol=1e-4, atol=1e-5)
        ]
        if not match:
            return None
        sources.append(k if k in match else match[0])
    wrong = [k for k, j in enumerate(sources) if j != k]
    if wrong:
        k = wrong[0]
        return (
            f"the deltas of class {k} come from the regressor of class {sources[k]}: class k "
            "uses W[k] (row 0 is the background's), deltas[:, k] = features @ W[k, :-1] + "
            "W[k, -1]."
        )
    return None


# ----------------------------------------------------------------------------------------------
# The check
# ----------------------------------------------------------------------------------------------


def _structure_problem(got: Any, expected: Scored) -> str | None:
    """A list of one (probs, deltas) pair per image, tensors (or None deltas)."""
    if not isinstance(got, (list, tuple)):
        return (
            f"returned a {type(got).__name__}: return a list with one (probs, deltas) pair per "
            "image."
        )
    if len(got) != len(expected):
        return (
            f"returned {len(got)} item(s) for {len(expected)} image(s): return one (probs, "
            "deltas) pair per image, in the images' order (a list of pairs, not a pair of "
            "lists)."
        )
    for index, (pair, (_, deltas)) in enumerate(zip(got, expected)):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            return f"item {index} is not a (probs, deltas) pair: got {type(pair).__name__}."
        problem = not_a_tensor_problem(pair[0])
        if problem:
            return f"the probs of image {index}: {problem}"
        if deltas is None and pair[1] is not None:
            return (
                "regressor_weights is None (no box regression): return None as the deltas, "
                "not a tensor."
            )
        if deltas is not None:
            problem = not_a_tensor_problem(pair[1])
            if problem:
                return f"the deltas of image {index}: {problem}"
    return None


def _compare_scored(got: Any, expected: Scored, case: Case) -> str | None:
    """Structure, the CNN's state and mode, then the values (naming the usual mistake)."""
    problem = _structure_problem(got, expected) or cnn_change(case.args[2])
    if problem:
        return problem
    if _same(got, expected):
        return None
    mistake = _which_mistake(got, expected, case)
    if mistake:
        return mistake
    for index, ((probs, deltas), (want_probs, want_deltas)) in enumerate(zip(got, expected)):
        problem = tensor_type_problem(probs, want_probs)
        if problem:
            return f"the probs of image {index}: {problem}"
        if not _close(probs, want_probs):
            difference = float((probs.detach() - want_probs).abs().max())
            return (
                f"the probabilities of image {index} differ from the reference's with the same "
                f"CNN (largest difference {difference:.4g})."
            )
        if want_deltas is None:
            continue
        problem = tensor_type_problem(deltas, want_deltas) or _class_problem(deltas, want_deltas)
        if problem:
            return f"the deltas of image {index}: {problem}"
        if not _close(deltas, want_deltas):
            difference = float((deltas.detach() - want_deltas).abs().max())
            return (
                f"the deltas of image {index} differ from the reference's with the same CNN "
                f"and weights (largest difference {difference:.4g})."
            )
    return None


@assignment_check(reference=rcnn.score_regions, cases=score_regions_cases, compare=_compare_scored)
def check_score_regions(score_regions: Callable[..., list], *, quiet: bool = False) -> None:
    """Check ``score_regions(images, proposals, cnn, regressor_weights, size, context) ->
    scored``.

    images: float (C, H, W) in [0, 1]; proposals: float (P_i, 4) xyxy pixels, one per image;
    cnn: ``features`` (N, C, S, S) -> (N, D) and ``head`` (N, D) -> (N, K+1) logits;
    regressor_weights: float (K+1, D+1, 4), the last row of each class its bias, or None; size
    (int) and context (float): the warp. scored: a list with one ``(probs float (P_i, K+1),
    deltas float (P_i, K+1, 4) or None)`` per image, on the images' device. The CNN runs in eval
    mode and is left in the mode it was in. Outputs only (the function runs at test time, under
    no_grad): they must equal the reference's with the same CNN and weights.
    """


CHECKS = (check_score_regions,)
