"""Right and deliberately wrong ``fast_rcnn_head`` functions (notebook 04: Fast R-CNN's head).

``good_*`` are right, written the way a student would; every other function makes one plausible
mistake that ``tests/test_checks_fast_rcnn_head.py`` lists in its ``WRONG`` table. All take
``(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes)`` as
``fast_rcnn.fast_rcnn_head`` does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def good_fast_rcnn_head(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes):
    pooled = pool(maps, proposals)
    features = torch.flatten(pooled, start_dim=1)
    features = dropout(features)
    logits = cls_score(features)
    deltas = bbox_pred(features).view(len(features), num_classes, 4)
    return logits, deltas


def good_fast_rcnn_head_split(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes):
    """Dropout on the pooled grid before flattening (element-wise: the same), and the deltas as
    the 4-column blocks of bbox_pred stacked per class."""
    x = dropout(pool(maps, proposals)).flatten(start_dim=1)
    blocks = torch.split(bbox_pred(x), 4, dim=1)  # K+1 blocks of (R, 4)
    return cls_score(x), torch.stack(blocks, dim=1)


def _features(maps, proposals, pool, dropout):
    return dropout(pool(maps, proposals).flatten(1))


def head_deltas_not_reshaped(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes):
    x = _features(maps, proposals, pool, dropout)
    return cls_score(x), bbox_pred(x)


def head_deltas_4_first(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes):
    x = _features(maps, proposals, pool, dropout)
    return cls_score(x), bbox_pred(x).reshape(len(x), 4, num_classes)


def head_deltas_transposed(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes):
    x = _features(maps, proposals, pool, dropout)
    return cls_score(x), bbox_pred(x).reshape(len(x), 4, num_classes).permute(0, 2, 1)


def head_no_dropout(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes):
    x = pool(maps, proposals).flatten(1)
    return cls_score(x), bbox_pred(x).reshape(-1, num_classes, 4)


def head_dropout_after(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes):
    x = pool(maps, proposals).flatten(1)
    return dropout(cls_score(x)), dropout(bbox_pred(x)).reshape(-1, num_classes, 4)


def head_dropout_cls_only(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes):
    x = pool(maps, proposals).flatten(1)
    return cls_score(dropout(x)), bbox_pred(x).reshape(-1, num_classes, 4)


def head_softmax(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes):
    x = _features(maps, proposals, pool, dropout)
    return F.softmax(cls_score(x), dim=1), bbox_pred(x).reshape(-1, num_classes, 4)


def head_class_agnostic(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes):
    x = _features(maps, proposals, pool, dropout)
    return cls_score(x), bbox_pred(x)[:, :4]


def head_deltas_one_list(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes):
    x = _features(maps, proposals, pool, dropout)
    return cls_score(x), bbox_pred(x).reshape(-1, 4)


def head_permuted_flatten(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes):
    x = dropout(pool(maps, proposals).permute(0, 2, 3, 1).flatten(1))
    return cls_score(x), bbox_pred(x).reshape(-1, num_classes, 4)


def head_shared_layer(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes):
    x = _features(maps, proposals, pool, dropout)
    out = bbox_pred(x)
    return out[:, :num_classes], out.reshape(-1, num_classes, 4)


def head_flatten_all(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes):
    x = dropout(pool(maps, proposals).flatten())
    return cls_score(x), bbox_pred(x).reshape(-1, num_classes, 4)


def head_relu(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes):
    x = F.relu(_features(maps, proposals, pool, dropout))
    return cls_score(x), bbox_pred(x).reshape(-1, num_classes, 4)


def head_detached(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes):
    x = dropout(pool(maps, proposals).detach().flatten(1))
    return cls_score(x), bbox_pred(x).reshape(-1, num_classes, 4)


def head_swapped(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes):
    x = _features(maps, proposals, pool, dropout)
    return bbox_pred(x).reshape(-1, num_classes, 4), cls_score(x)


def head_first_image_only(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes):
    x = _features(maps, proposals[:1], pool, dropout)
    return cls_score(x), bbox_pred(x).reshape(-1, num_classes, 4)


@torch.no_grad()
def head_without_grad(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes):
    x = _features(maps, proposals, pool, dropout)
    return cls_score(x), bbox_pred(x).reshape(-1, num_classes, 4)


def head_view_per_roi(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes):
    """view(R, -1): right for R > 0, but cannot be computed when there is no RoI at all."""
    pooled = pool(maps, proposals)
    x = dropout(pooled.view(pooled.shape[0], -1))
    return cls_score(x), bbox_pred(x).view(-1, num_classes, 4)
