"""The Fast R-CNN head check (notebook 04) accepts correct answers and rejects stubs and plausible
student mistakes.

Each ``Wrong`` below is a real, deliberately wrong ``fast_rcnn_head`` a student might write (in
``tests/fast_rcnn_head_wrongs.py``); the check must raise CheckFailed for it, with a message that
says what is wrong (``says``); ``tests/test_check_contract.py`` runs them all. The other tests
prove that the cases cover what the check claims (several images, an image without RoIs, R = 0,
K + 1 = 2 and 4, both modes, both forms of ``maps``), that the case's dropout is a real dropout
whose mask is the same for the reference and the student, and that every mistake the check
names really differs from the reference somewhere.
"""

from __future__ import annotations

import fast_rcnn_head_wrongs as w
import torch
from check_contract import Wrong, assert_cases_deterministic_with_hints

from course_utils.detection import fast_rcnn
from course_utils.grading.checks import all_checks
from course_utils.grading.checks._fast_rcnn_head_cases import SeededDropout
from course_utils.grading.checks.fast_rcnn_head import (
    _MISTAKES,
    CHECKS,
    _same,
    check_fast_rcnn_head,
    fast_rcnn_head_cases,
)

CORRECT = [
    (check_fast_rcnn_head, fast_rcnn.fast_rcnn_head),
    (check_fast_rcnn_head, w.good_fast_rcnn_head),
    (check_fast_rcnn_head, w.good_fast_rcnn_head_split),
]

_HEAD = check_fast_rcnn_head

WRONG = [
    Wrong(_HEAD, w.head_deltas_not_reshaped, "bbox_pred's (R, 4(K+1)) not reshaped"),
    Wrong(_HEAD, w.head_deltas_4_first, "(R, 4, K+1): reshape to (R, K+1, 4)"),
    Wrong(_HEAD, w.head_deltas_transposed, "reshaped to (R, 4, K+1) and transposed"),
    Wrong(_HEAD, w.head_no_dropout, "those of a head without dropout"),
    Wrong(_HEAD, w.head_dropout_after, "dropout is applied after the sibling layers"),
    Wrong(_HEAD, w.head_dropout_cls_only, "dropout acts only before cls_score"),
    Wrong(_HEAD, w.head_softmax, "the logits went through a softmax"),
    Wrong(_HEAD, w.head_class_agnostic, "one box per RoI, class-agnostic"),
    Wrong(_HEAD, w.head_deltas_one_list, "the RoIs' boxes are mixed into one list"),
    Wrong(_HEAD, w.head_permuted_flatten, "flattened in another order"),
    Wrong(_HEAD, w.head_shared_layer, "the logits come from bbox_pred"),
    Wrong(_HEAD, w.head_flatten_all, "the RoI dimension is gone"),
    Wrong(_HEAD, w.head_relu, "a ReLU was applied before the sibling layers"),
    Wrong(_HEAD, w.head_detached, "no gradient reaches the trunk"),
    Wrong(_HEAD, w.head_swapped, "returned (deltas, logits)"),
    Wrong(_HEAD, w.head_first_image_only, "one row per proposal of every image"),
    Wrong(_HEAD, w.head_without_grad, "the logits have no gradient"),
    Wrong(_HEAD, w.head_view_per_roi, "view(0, -1) cannot know"),
]


def test_the_module_lists_its_check():
    assert all_checks()["fast_rcnn_head"] == CHECKS == (check_fast_rcnn_head,)
    assert check_fast_rcnn_head.function_name == "fast_rcnn_head"
    assert check_fast_rcnn_head.reference is fast_rcnn.fast_rcnn_head


def test_cases_are_deterministic_and_have_hints():
    assert len(assert_cases_deterministic_with_hints(fast_rcnn_head_cases)) >= 6


def _cpu_cases():
    return [c for c in fast_rcnn_head_cases() if "(on " not in c.name]


def test_cases_cover_what_the_check_claims():
    """Several images, one RoI, an image without RoI, R = 0, K + 1 = 2 and 4, eval and train
    (p > 0), maps as a tensor and as a list, and pooled features with negative values (ReLU)."""
    cases = _cpu_cases()
    counts = [[len(p) for p in c.args[1]] for c in cases]
    assert [1] in counts and any(len(n) >= 3 and 0 in n and sum(n) for n in counts)
    assert [0, 0] in counts
    assert {c.args[6] for c in cases} >= {2, 4}
    modes = {(c.args[3].training, c.args[3].p > 0) for c in cases}
    assert modes >= {(False, True), (True, True)}
    assert {isinstance(c.args[0], list) for c in cases} == {True, False}
    for case in cases:
        pooled = case.args[2](case.args[0], case.args[1])
        if len(pooled):
            assert (pooled < 0).any() and (pooled > 0).any(), case.name


def test_the_case_dropout_is_a_dropout_with_a_fixed_mask():
    dropout = SeededDropout(0.5, seed=7)
    x = torch.ones(200, 30)
    first, second = dropout(x), dropout(x)
    assert torch.equal(first, second)  # the same mask for the reference and the student
    assert set(first.unique().tolist()) == {0.0, 2.0}  # kept values scaled by 1 / (1 - p)
    assert 0.4 < float((first == 0).float().mean()) < 0.6
    assert torch.equal(dropout(x.reshape(20, 10, 30)).reshape(200, 30), first)  # element-wise
    assert torch.equal(dropout.eval()(x), x) and repr(dropout) == "Dropout(p=0.5, eval mode)"


def test_the_reference_runs_the_models_own_head():
    """On every case, the reference equals the ops FastRCNN.classify used before the hook."""
    for case in _cpu_cases():
        maps, proposals, pool, dropout, cls_score, bbox_pred, classes = case.args
        logits, deltas = fast_rcnn.fast_rcnn_head(*case.args)
        x = dropout(pool(maps, proposals).flatten(1))
        torch.testing.assert_close(logits, cls_score(x))
        torch.testing.assert_close(deltas, bbox_pred(x).reshape(-1, classes, 4))
        assert deltas.shape == (len(x), classes, 4)


def test_every_named_mistake_differs_from_the_reference_on_some_case():
    cases = fast_rcnn_head_cases()
    for text, mistake in _MISTAKES:
        differs = False
        for case in cases:
            expected = fast_rcnn.fast_rcnn_head(*case.args)
            try:
                wrong = mistake(case.args)
            except (RuntimeError, ValueError, IndexError):
                continue
            differs |= not all(map(_same, wrong, expected))
        assert differs, text


def test_the_check_leaves_the_global_rng_as_it_was(capsys):
    """A notebook builds and trains its networks after the check cell: same random numbers."""
    torch.manual_seed(3)
    before = torch.get_rng_state()
    check_fast_rcnn_head(fast_rcnn.fast_rcnn_head)
    assert torch.equal(torch.get_rng_state(), before)
