"""Check for Fast R-CNN's head (notebook 04): RoI pooling, flatten, dropout, two sibling layers.

``fast_rcnn_head(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes) -> (logits,
deltas)``: ``pool(maps, proposals)`` (R, D, s, s), each RoI flattened, ``dropout`` once, then
``cls_score`` -> logits (R, K+1) and ``bbox_pred`` -> class-specific deltas (R, K+1, 4). The
reference is the course's ``fast_rcnn.fast_rcnn_head`` (``course_utils.detection``), which
``FastRCNN`` runs by default and the student's function replaces (``FastRCNN.from_classifier(...,
head_fn=fast_rcnn_head)``).

Both run on the same layers (the case's, see ``_fast_rcnn_head_cases``), in eval and in train
mode; the case's dropout draws the same mask for both. Shapes first (each usual wrong shape
named), then values (a wrong output is matched against the usual mistakes, computed here on the
case's inputs), then the gradients of every layer's parameters and of the trunk's stand-in (the
pool's gain) for random output gradients.

Usage in a notebook::

    check_fast_rcnn_head(fast_rcnn_head)   # graded cell: raises on a wrong answer
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from course_utils.detection import fast_rcnn
from course_utils.grading.assignments import assignment_check
from course_utils.grading.checks._fast_rcnn_head_cases import fast_rcnn_head_cases
from course_utils.grading.compare import describe, not_a_tensor_problem, tensor_type_problem
from course_utils.grading.runner import Case

__all__ = ["CHECKS", "check_fast_rcnn_head", "fast_rcnn_head_cases"]

_SEED = 405

# ----------------------------------------------------------------------------------------------
# The usual mistakes, each a head computed on the case's inputs, with what to say about it
# ----------------------------------------------------------------------------------------------


def _head(
    args: tuple,
    *,
    flatten: Callable[[torch.Tensor], torch.Tensor] = lambda p: p.flatten(1),
    before: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
    drop: str = "shared",
    logits_of: Callable[..., torch.Tensor] | None = None,
    deltas_of: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's head with one part swapped: ``flatten(pooled)``, ``before(x)`` (after
    dropout), where dropout acts (``drop``: shared, none, after, cls, box), ``logits_of(x,
    cls_score, bbox_pred, K1)``, ``deltas_of(bbox_pred output, K1)``."""
    maps, proposals, pool, dropout, cls_score, bbox_pred, classes = args
    x = flatten(pool(maps, proposals))
    shared = before(dropout(x) if drop == "shared" else x)
    box_in = dropout(shared) if drop == "box" else shared
    cls_in = dropout(shared) if drop == "cls" else shared
    logits = (
        cls_score(cls_in) if logits_of is None else logits_of(cls_in, cls_score, bbox_pred, classes)
    )
    raw = bbox_pred(box_in)
    if drop == "after":
        logits, raw = dropout(logits), dropout(raw)
    deltas = raw.reshape(-1, classes, 4) if deltas_of is None else deltas_of(raw, classes)
    return logits, deltas


_MISTAKES: tuple[tuple[str, Callable[[tuple], tuple]], ...] = (
    (
        "in train mode the outputs are those of a head without dropout: apply dropout (the "
        "layer given) to the flattened features, before the two sibling layers.",
        lambda a: _head(a, drop="none"),
    ),
    (
        "dropout is applied after the sibling layers (to the logits and the deltas): apply it "
        "once to the flattened features, before cls_score and bbox_pred.",
        lambda a: _head(a, drop="after"),
    ),
    (
        "dropout acts only before cls_score: call it once, and give the same dropped-out "
        "features to both sibling layers.",
        lambda a: _head(a, drop="cls"),
    ),
    (
        "dropout acts only before bbox_pred: call it once, and give the same dropped-out "
        "features to both sibling layers.",
        lambda a: _head(a, drop="box"),
    ),
    (
        "the logits went through a softmax: return cls_score's raw logits (the loss, "
        "cross-entropy, applies the softmax itself; detect() applies it at test time).",
        lambda a: _head(a, logits_of=lambda x, c, b, k: F.softmax(c(x), dim=1)),
    ),
    (
        "a ReLU was applied before the sibling layers: this head has none (the pre-trained "
        "classifier's linear layer read the pooled features directly).",
        lambda a: _head(a, before=F.relu),
    ),
    (
        "the pooled features were flattened in another order (permuted to (R, s, s, D) "
        "first): flatten (R, D, s, s) as it is, pooled.flatten(1), the order the pre-trained "
        "linear layer reads.",
        lambda a: _head(a, flatten=lambda p: p.permute(0, 2, 3, 1).flatten(1)),
    ),
    (
        "the logits come from bbox_pred: the two siblings are two separate layers, cls_score "
        "gives the logits and bbox_pred the deltas.",
        lambda a: _head(a, logits_of=lambda x, c, b, k: b(x)[:, :k]),
    ),
    (
        "the deltas were reshaped to (R, 4, K+1) and transposed: bbox_pred gives class c's box "
        "in columns 4c..4c+3, so reshape directly to (R, K+1, 4).",
        lambda a: _head(a, deltas_of=lambda r, k: r.reshape(-1, 4, k).transpose(1, 2)),
    ),
    (
        "the deltas were reshaped to (R, 4, K+1): reshape to (R, K+1, 4), class c's box in "
        "columns 4c..4c+3 of bbox_pred's output.",
        lambda a: _head(a, deltas_of=lambda r, k: r.reshape(-1, 4, k)),
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


def _which_mistake(got: tuple, expected: tuple, case: Case) -> str | None:
    """The first usual mistake whose outputs equal ``got`` (and differ from the reference's)."""
    for text, mistake in _MISTAKES:
        try:
            with torch.no_grad():
                wrong = mistake(case.args)
        except (RuntimeError, ValueError, IndexError):
            continue  # this mistake crashes on this case: it is not what the student did
        if all(map(_same, got, wrong)) and not all(map(_same, wrong, expected)):
            return text
    return None


# ----------------------------------------------------------------------------------------------
# Types and shapes
# ----------------------------------------------------------------------------------------------


def _deltas_shape_problem(got: torch.Tensor, rois: int, classes: int) -> str:
    shape = tuple(got.shape)
    want = (rois, classes, 4)
    if shape == (rois, 4 * classes):
        return (
            f"the deltas have shape {shape}, bbox_pred's (R, 4(K+1)) not reshaped: reshape them "
            f"to (R, K+1, 4) = {want}, one box per class."
        )
    if shape == (rois, 4, classes):
        return (
            f"the deltas have shape {shape}, (R, 4, K+1): reshape to (R, K+1, 4) = {want}; class "
            "c's box is in columns 4c..4c+3 of bbox_pred's output."
        )
    if shape in ((rois, 4), (rois, 1, 4)):
        return (
            f"the deltas have shape {shape}: one box per RoI, class-agnostic. Fast R-CNN's "
            f"regressor is class-specific: all 4(K+1) outputs of bbox_pred, as {want}."
        )
    if shape == (rois * classes, 4):
        return (
            f"the deltas have shape {shape}: the RoIs' boxes are mixed into one list; keep a "
            f"row per RoI, (R, K+1, 4) = {want}."
        )
    return f"the deltas have shape {shape}, expected (R, K+1, 4) = {want}."


def _shape_problem(got: Any, expected: tuple, case: Case) -> str | None:
    """A pair of tensors with the reference's shapes, dtype and device, else what is wrong."""
    if isinstance(got, torch.Tensor):
        return "returned one tensor: return both outputs, (logits, deltas)."
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"returned {describe(got)}, expected a tuple of two tensors (logits, deltas)."
    for what, value in zip(("logits", "deltas"), got):
        problem = not_a_tensor_problem(value)
        if problem:
            return f"{what}: {problem}"
    logits, deltas = got
    want_logits, want_deltas = expected
    rois, classes = want_logits.shape
    if logits.shape == want_deltas.shape and deltas.shape == want_logits.shape:
        return "returned (deltas, logits): return (logits, deltas), the class logits first."
    if logits.shape != want_logits.shape:
        if tuple(logits.shape) == (classes,) and rois == 1:
            return (
                f"the logits have shape {tuple(logits.shape)}, expected (R, K+1) = (1, "
                f"{classes}): the RoI dimension is gone. Flatten each RoI's features, "
                "pooled.flatten(1), not pooled.flatten()."
            )
        if logits.dim() == 2 and logits.shape[1] == classes:
            return (
                f"the logits have {len(logits)} rows, expected R = {rois}: one row per proposal "
                "of every image, in image order (call pool(maps, proposals) once, with all "
                "images)."
            )
        return (
            f"the logits have shape {tuple(logits.shape)}, expected (R, K+1) = {(rois, classes)}."
        )
    if deltas.shape != want_deltas.shape:
        return _deltas_shape_problem(deltas, rois, classes)
    for what, value, want in zip(("logits", "deltas"), got, expected):
        problem = tensor_type_problem(value, want)
        if problem:
            return f"{what}: {problem}"
    return None


# ----------------------------------------------------------------------------------------------
# Gradients
# ----------------------------------------------------------------------------------------------


def _named_parameters(case: Case) -> list[tuple[str, torch.Tensor]]:
    """Every parameter the head reaches, named as the student's code reaches it."""
    _, _, pool, _, cls_score, bbox_pred, _ = case.args
    named = [(f"cls_score.{n}", p) for n, p in cls_score.named_parameters()]
    named += [(f"bbox_pred.{n}", p) for n, p in bbox_pred.named_parameters()]
    return named + [("the trunk (the features pool reads)", pool.gain)]


def _gradient_problem(got: tuple, expected: tuple, case: Case) -> str | None:
    """The parameters' gradients of ``sum(g1 * logits) + sum(g2 * deltas)``, compared."""
    if len(expected[0]) == 0:
        return None  # no RoI: nothing to differentiate
    for what, value in zip(("logits", "deltas"), got):
        if value.grad_fn is None:
            return (
                f"the {what} have no gradient: that layer would never train. Don't compute the "
                "head under torch.no_grad(), and don't .detach() its outputs."
            )
    g = torch.Generator().manual_seed(_SEED)
    directions = [torch.randn(e.shape, generator=g).to(e.device) for e in expected]
    named = _named_parameters(case)
    parameters = [p for _, p in named]
    want = torch.autograd.grad(expected, parameters, directions, allow_unused=True)
    have = torch.autograd.grad(got, parameters, directions, allow_unused=True)
    for (name, _), w, h in zip(named, want, have):
        if h is None or (not bool(h.any()) and bool(w.any())):
            if name.startswith("the trunk"):
                return (
                    "the outputs are right but no gradient reaches the trunk: the pooled "
                    "features were cut from the graph (.detach(), .data or torch.no_grad() "
                    "around pool), so the convolutional layers would never be fine-tuned."
                )
            return f"{name} gets no gradient: it would never train. Use its output as it is."
        if not torch.allclose(h, w, rtol=1e-4, atol=1e-5):
            return (
                f"the outputs are right but the gradient of {name} differs from the "
                f"reference's (largest difference {float((h - w).abs().max()):.4g})."
            )
    return None


# ----------------------------------------------------------------------------------------------
# The check
# ----------------------------------------------------------------------------------------------


def _compare_head(got: Any, expected: tuple, case: Case) -> str | None:
    """Types and shapes, then the values (naming the usual mistake when it is one), then the
    gradients."""
    problem = _shape_problem(got, expected, case)
    if problem:
        return problem
    if all(map(_same, got, expected)):
        return _gradient_problem(tuple(got), expected, case)
    mistake = _which_mistake(tuple(got), expected, case)
    if mistake:
        return mistake
    mode = "train" if case.args[3].training else "eval"
    wrong = [
        f"{what} (largest difference {float((g.detach() - e.detach()).abs().max()):.4g})"
        for what, g, e in zip(("logits", "deltas"), got, expected)
        if not _same(g, e)
    ]
    return (
        f"in {mode} mode the {' and the '.join(wrong)} differ from the reference's with the same "
        "layers. Call the layers given (pool, dropout once, cls_score, bbox_pred), nothing else."
    )


@assignment_check(
    reference=fast_rcnn.fast_rcnn_head, cases=fast_rcnn_head_cases, compare=_compare_head
)
def check_fast_rcnn_head(fast_rcnn_head: Callable[..., tuple], *, quiet: bool = False) -> None:
    """Check ``fast_rcnn_head(maps, proposals, pool, dropout, cls_score, bbox_pred, num_classes)
    -> (logits, deltas)``.

    maps: the feature map(s), passed to ``pool`` as they are; proposals: a list of B float
    (P_i, 4) boxes; ``pool(maps, proposals)`` -> float (R, D, s, s), R = sum of P_i in image
    order; dropout, cls_score = Linear(D s², K+1) and bbox_pred = Linear(D s², 4(K+1)) are layers
    to call; num_classes = K + 1. logits: float (R, K+1), raw (no softmax); deltas: float
    (R, K+1, 4), class c's box in columns 4c..4c+3 of bbox_pred's output. Each RoI flattened
    with flatten(1), dropout once before both siblings. Outputs (eval and train mode) and the
    gradients of every layer and of the trunk must equal the reference's.
    """


CHECKS = (check_fast_rcnn_head,)
