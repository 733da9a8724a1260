"""Right and deliberately wrong ``score_regions`` functions (notebook 03: R-CNN's per-region
forward pass).

``good_*`` are right, written the way a student would; every other function makes one plausible
mistake that ``tests/test_checks_rcnn_forward.py`` lists in its ``WRONG`` table. All take
``(images, proposals, cnn, regressor_weights, size, context)`` as ``rcnn.score_regions`` does and
return one ``(probs, deltas)`` pair per image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_utils.detection.warped_regions import warp_regions


def good_score_regions(images, proposals, cnn, regressor_weights, size, context):
    was_training = cnn.training
    cnn.eval()
    scored = []
    try:
        with torch.no_grad():
            for image, boxes in zip(images, proposals):
                crops = warp_regions(image, boxes, size, context)
                features = cnn.features(crops)
                probs = torch.softmax(cnn.head(features), dim=1)
                deltas = None
                if regressor_weights is not None:
                    w = regressor_weights
                    deltas = torch.einsum("pd,kdc->pkc", features, w[:, :-1]) + w[:, -1]
                scored.append((probs, deltas))
    finally:
        cnn.train(was_training)
    return scored


def good_score_regions_one_batch(images, proposals, cnn, regressor_weights, size, context):
    """All images' crops through the CNN at once, split back by image; deltas by matmul."""
    mode = cnn.training
    cnn.eval()
    crops = torch.cat([warp_regions(i, b, size, context) for i, b in zip(images, proposals)])
    features = cnn.features(crops)
    probs = F.softmax(cnn.head(features), dim=-1)
    counts = [len(b) for b in proposals]
    if regressor_weights is None:
        deltas = [None] * len(images)
    else:
        classes, rows, _ = regressor_weights.shape
        flat = regressor_weights[:, :-1].permute(1, 0, 2).reshape(rows - 1, classes * 4)
        all_deltas = (features @ flat).view(-1, classes, 4) + regressor_weights[:, -1]
        deltas = list(all_deltas.detach().split(counts))
    cnn.train(mode)
    return list(zip(probs.detach().split(counts), deltas))


def _student(
    images,
    proposals,
    cnn,
    weights,
    size,
    context,
    *,
    warp=None,
    pick=None,
    classify=None,
    regress=None,
    eval_mode=True,
    restore=True,
):
    """``good_score_regions`` with one step replaced (the wrong functions below say which)."""
    was_training = cnn.training
    if eval_mode:
        cnn.eval()
    scored = []
    with torch.no_grad():
        for index in range(len(images)):
            image, boxes = (
                pick(images, proposals, index) if pick else (images[index], proposals[index])
            )
            crops = (warp or warp_regions)(image, boxes, size, context)
            features = cnn.features(crops)
            logits = cnn.head(features)
            probs = classify(logits) if classify else torch.softmax(logits, dim=1)
            deltas = None
            if weights is not None:
                if regress:
                    deltas = regress(features, logits, weights)
                else:
                    deltas = torch.einsum("pd,kdc->pkc", features, weights[:, :-1]) + weights[:, -1]
            scored.append((probs, deltas))
    if restore is True:
        cnn.train(was_training)
    elif restore == "train":
        cnn.train()
    return scored


def _regress(features, weights):
    return torch.einsum("pd,kdc->pkc", features, weights[:, :-1]) + weights[:, -1]


def score_no_context(images, proposals, cnn, weights, size, context):
    return _student(
        images,
        proposals,
        cnn,
        weights,
        size,
        context,
        warp=lambda i, b, s, c: warp_regions(i, b, s, 0.0),
    )


def score_default_warp(images, proposals, cnn, weights, size, context):
    return _student(
        images, proposals, cnn, weights, size, context, warp=lambda i, b, s, c: warp_regions(i, b)
    )


def score_default_size(images, proposals, cnn, weights, size, context):
    """The regions are never resized to the crop size the CNN was trained on."""
    return _student(
        images,
        proposals,
        cnn,
        weights,
        size,
        context,
        warp=lambda i, b, s, c: warp_regions(i, b, context=c),
    )


def score_default_context(images, proposals, cnn, weights, size, context):
    return _student(
        images,
        proposals,
        cnn,
        weights,
        size,
        context,
        warp=lambda i, b, s, c: warp_regions(i, b, s),
    )


def score_xy_swapped(images, proposals, cnn, weights, size, context):
    return _student(
        images,
        proposals,
        cnn,
        weights,
        size,
        context,
        warp=lambda i, b, s, c: warp_regions(i, b[:, [1, 0, 3, 2]], s, c),
    )


def score_first_proposals(images, proposals, cnn, weights, size, context):
    return _student(
        images, proposals, cnn, weights, size, context, pick=lambda i, p, n: (i[n], p[0])
    )


def score_first_image(images, proposals, cnn, weights, size, context):
    return _student(
        images, proposals, cnn, weights, size, context, pick=lambda i, p, n: (i[0], p[n])
    )


def score_logits(images, proposals, cnn, weights, size, context):
    return _student(images, proposals, cnn, weights, size, context, classify=lambda x: x)


def score_softmax_over_regions(images, proposals, cnn, weights, size, context):
    return _student(
        images, proposals, cnn, weights, size, context, classify=lambda x: torch.softmax(x, dim=0)
    )


def score_sigmoid(images, proposals, cnn, weights, size, context):
    return _student(images, proposals, cnn, weights, size, context, classify=torch.sigmoid)


def score_log_softmax(images, proposals, cnn, weights, size, context):
    return _student(
        images, proposals, cnn, weights, size, context, classify=lambda x: F.log_softmax(x, dim=1)
    )


def score_regress_logits(images, proposals, cnn, weights, size, context):
    """Features of the wrong layer: the head's output instead of cnn.features."""
    return _student(
        images, proposals, cnn, weights, size, context, regress=lambda f, x, w: _regress(x, w)
    )


def score_regress_probs(images, proposals, cnn, weights, size, context):
    return _student(
        images,
        proposals,
        cnn,
        weights,
        size,
        context,
        regress=lambda f, x, w: _regress(torch.softmax(x, dim=1), w),
    )


def score_no_bias(images, proposals, cnn, weights, size, context):
    return _student(
        images,
        proposals,
        cnn,
        weights,
        size,
        context,
        regress=lambda f, x, w: torch.einsum("pd,kdc->pkc", f, w[:, :-1]),
    )


def score_bias_first_row(images, proposals, cnn, weights, size, context):
    return _student(
        images,
        proposals,
        cnn,
        weights,
        size,
        context,
        regress=lambda f, x, w: torch.einsum("pd,kdc->pkc", f, w[:, 1:]) + w[:, 0],
    )


def score_deltas_reshaped(images, proposals, cnn, weights, size, context):
    def regress(features, logits, w):
        out = torch.einsum("pd,kdc->pck", features, w[:, :-1]) + w[:, -1].T
        return out.reshape(len(features), w.shape[0], 4)

    return _student(images, proposals, cnn, weights, size, context, regress=regress)


def score_class_agnostic(images, proposals, cnn, weights, size, context):
    """One regressor for every class: the deltas of the most probable class, repeated."""

    def regress(features, logits, w):
        deltas = _regress(features, w)
        best = logits.argmax(dim=1)
        return deltas[torch.arange(len(deltas)), best][:, None].expand_as(deltas).clone()

    return _student(images, proposals, cnn, weights, size, context, regress=regress)


def score_wrong_class(images, proposals, cnn, weights, size, context):
    """Class k gets the regressor of class k - 1 (as if row 0 were class 1)."""
    return _student(
        images,
        proposals,
        cnn,
        weights,
        size,
        context,
        regress=lambda f, x, w: _regress(f, w).roll(1, dims=1),
    )


def score_in_training_mode(images, proposals, cnn, weights, size, context):
    """The CNN runs in whatever mode it is in: training mode after fine-tuning."""
    return _student(images, proposals, cnn, weights, size, context, eval_mode=False)


def score_left_in_eval_mode(images, proposals, cnn, weights, size, context):
    return _student(images, proposals, cnn, weights, size, context, restore=False)


def score_forces_training_mode(images, proposals, cnn, weights, size, context):
    return _student(images, proposals, cnn, weights, size, context, restore="train")


def score_zero_deltas_without_weights(images, proposals, cnn, weights, size, context):
    """Without regressors, deltas of 0 (the proposals unchanged) instead of None."""
    scored = good_score_regions(images, proposals, cnn, weights, size, context)
    return [(p, torch.zeros(*p.shape, 4) if d is None else d) for p, d in scored]


def score_first_image_only(images, proposals, cnn, weights, size, context):
    return good_score_regions(images[:1], proposals[:1], cnn, weights, size, context)


def score_pair_of_lists(images, proposals, cnn, weights, size, context):
    scored = good_score_regions(images, proposals, cnn, weights, size, context)
    return [probs for probs, _ in scored], [deltas for _, deltas in scored]


def score_squeezed(images, proposals, cnn, weights, size, context):
    scored = good_score_regions(images, proposals, cnn, weights, size, context)
    return [(p.squeeze(0), None if d is None else d.squeeze(0)) for p, d in scored]


def score_on_cpu(images, proposals, cnn, weights, size, context):
    scored = good_score_regions(images, proposals, cnn, weights, size, context)
    return [(p.cpu(), None if d is None else d.cpu()) for p, d in scored]
