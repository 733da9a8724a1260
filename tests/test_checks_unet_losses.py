"""The U-Net loss checks (notebook 11) accept correct functions and reject plausible mistakes.

Each ``Wrong`` below is a real, deliberately wrong function a student might write (in
``tests/unet_loss_wrongs.py``); the check must raise CheckFailed for it, with a message that says
what is wrong (``says``); ``tests/test_check_contract.py`` runs them all. The other tests prove
that the cases are deterministic and that the checks' messages name distinct mistakes.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import unet_loss_wrongs as w
from check_contract import Wrong, assert_cases_deterministic_with_hints

from course_utils.grading.checks import all_checks
from course_utils.grading.checks._unet_loss_cases import dice_variants, weight_map_variants
from course_utils.grading.checks.unet_losses import (
    CHECKS,
    border_weight_map_cases,
    check_border_weight_map,
    check_dice_loss,
    dice_loss_cases,
)
from course_utils.grading.runner import CheckFailed
from course_utils.segmentation import unet_losses

CORRECT = [
    (check_border_weight_map, unet_losses.border_weight_map),
    (check_border_weight_map, w.good_weight_map_scipy),
    (check_border_weight_map, w.good_weight_map_torch),
    (check_dice_loss, unet_losses.dice_loss),
    (check_dice_loss, w.good_dice),
    (check_dice_loss, w.good_dice_loop),
]

_MAP, _DICE = CHECKS

WRONG = [
    Wrong(_MAP, w.weight_everywhere, "inside the objects the weight is above 1"),
    Wrong(_MAP, w.weight_not_squared, "d1 + d2 is not squared"),
    Wrong(_MAP, w.weight_sigma_squared, "divided by sigma**2"),
    Wrong(_MAP, w.weight_two_sigma, "divided by 2 * sigma (not squared)"),
    Wrong(_MAP, w.weight_only_d1, "d2 is left out"),
    Wrong(_MAP, w.weight_d1_twice, "the nearest object counted twice"),
    Wrong(_MAP, w.weight_farthest, "the distance to the FARTHEST object"),
    Wrong(_MAP, w.weight_centres, "measured to the objects' centres"),
    Wrong(_MAP, w.weight_inside, "distance_transform_edt(mask) is the distance from"),
    Wrong(_MAP, w.weight_one_object, "with 1 object there is no gap"),
    Wrong(_MAP, w.weight_no_w0, "not multiplied by w0"),
    Wrong(_MAP, w.weight_no_one, "the exponential term alone"),
    Wrong(_MAP, w.weight_squared_distances, "squared before the sum"),
    Wrong(_MAP, w.weight_taxicab, "city-block"),
    Wrong(_MAP, w.weight_chessboard, "chessboard"),
    Wrong(_MAP, w.weight_uint8_invert, "flips all 8 bits"),
    Wrong(_MAP, w.weight_float64, "returned dtype torch.float64, expected torch.float32"),
    Wrong(_MAP, w.weight_transposed, "it looks transposed"),
    Wrong(_MAP, w.weight_numpy, "returned a numpy.ndarray"),
    Wrong(_MAP, w.weight_paper_constants, "the paper's w0 = 10 and sigma = 5"),
    Wrong(_DICE, w.dice_absent_one, "a free reward"),
    Wrong(_DICE, w.dice_absent_zero, "an absent class gets Dice 0"),
    Wrong(_DICE, w.dice_smooth_all, "over all K classes with a smoothing constant"),
    Wrong(_DICE, w.dice_smooth, "changes the value: this Dice has none"),
    Wrong(_DICE, w.dice_nan, "the loss is nan"),
    Wrong(_DICE, w.dice_argmax, "argmax has no gradient"),
    Wrong(_DICE, w.dice_sigmoid, "from a sigmoid"),
    Wrong(_DICE, w.dice_raw_logits, "raw logits"),
    Wrong(_DICE, w.dice_softmax_last, "over the last dimension"),
    Wrong(_DICE, w.dice_ignored_probs, "probabilities of the ignored pixels are counted"),
    Wrong(_DICE, w.dice_ignored_class0, "counted as class 0"),
    Wrong(_DICE, w.dice_ignored_clamped, "counted as class 2 (clamped)"),
    Wrong(_DICE, w.dice_per_image, "computed per image"),
    Wrong(_DICE, w.dice_pooled, "one global Dice"),
    Wrong(_DICE, w.dice_no_factor_2, "the factor 2 is missing"),
    Wrong(_DICE, w.dice_vnet, "V-Net's variant"),
    Wrong(_DICE, w.dice_coefficient, "returned the Dice coefficient"),
    Wrong(_DICE, w.dice_per_class, "one value per class"),
    Wrong(_DICE, w.dice_item, "A Python float has no gradient"),
    Wrong(_DICE, w.dice_float32, "returned dtype torch.float32, expected torch.float64"),
    Wrong(_DICE, w.dice_hardcoded_255, "dice_loss raised RuntimeError"),
]


def test_the_module_lists_its_checks():
    assert all_checks()["unet_losses"] == CHECKS
    assert [check.function_name for check in CHECKS] == ["border_weight_map", "dice_loss"]
    assert check_border_weight_map.reference is unet_losses.border_weight_map
    assert check_dice_loss.reference is unet_losses.dice_loss


@pytest.mark.parametrize("make_cases", [border_weight_map_cases, dice_loss_cases])
def test_cases_are_deterministic_and_have_hints(make_cases):
    cases = assert_cases_deterministic_with_hints(make_cases)
    assert len(cases) >= 8


def test_the_weight_map_cases_cover_the_edge_cases():
    cases = border_weight_map_cases()
    counts = [int(case.args[0].flatten(1).any(1).sum()) for case in cases]
    assert 0 in counts and 1 in counts and max(counts) >= 3
    assert any(case.args[0].dtype == torch.uint8 for case in cases)
    assert any(case.args[0].shape[1] != case.args[0].shape[2] for case in cases)
    assert len({(case.args[1], case.args[2]) for case in cases}) >= 4
    first = unet_losses.border_weight_map(*cases[0].args)
    assert first.max() == pytest.approx(1 + 10 * np.exp(-4 / 50), rel=1e-6)  # the 1-pixel gap


def test_the_dice_cases_cover_the_edge_cases():
    cases = [case for case in dice_loss_cases() if case.args[0].device.type == "cpu"]
    losses = [float(unet_losses.dice_loss(*case.args)) for case in cases]
    assert min(losses) < 1e-6  # the perfect prediction
    assert any(not bool((c.args[1] != c.args[2]).any()) for c in cases)  # nothing valid
    assert any(c.args[2] != 255 for c in cases)
    assert any(c.args[0].dtype == torch.float64 for c in cases)
    present = [set(c.args[1][c.args[1] != c.args[2]].tolist()) for c in cases]
    assert any(len(p) < c.args[0].shape[1] for p, c in zip(present, cases) if p)  # an absent class


def test_every_weight_map_mistake_shows_on_some_case():
    """Every mistake the comparator names changes the map of some case (else no student could
    ever be told about it)."""
    named, shown = set(), set()
    for case in border_weight_map_cases():
        want = unet_losses.border_weight_map(*case.args).double().numpy()
        for text, variant in weight_map_variants(*case.args).items():
            assert variant.shape == want.shape
            named.add(text)
            if not np.allclose(variant, want, rtol=1e-4, atol=1e-4):
                shown.add(text)
    assert len(named) == 16 and shown == named


def test_every_dice_mistake_shows_on_some_case():
    cases = [case for case in dice_loss_cases() if case.args[0].device.type == "cpu"]
    named, shown = set(), set()
    for case in cases:
        want = float(unet_losses.dice_loss(*case.args))
        for text, value in dice_variants(*case.args).items():
            key = re.sub(r"\d+ \(clamped\)", "K - 1 (clamped)", text)
            named.add(key)
            if abs(value - want) > 1e-4:
                shown.add(key)
    assert len(named) == 16 and shown == named


def test_each_wrong_function_gets_its_own_message():
    messages = {}
    for wrong in WRONG:
        with pytest.raises(CheckFailed) as info:
            wrong.check(wrong.fn, quiet=True)
        problem = str(info.value).split("problem:")[1].split("hint:")[0]
        messages.setdefault(" ".join(problem.split()), []).append(wrong.fn.__name__)
    shared = {text: names for text, names in messages.items() if len(names) > 1}
    assert not shared, shared


@pytest.mark.parametrize("check", CHECKS)
def test_the_check_says_a_stub_is_not_written_yet(check):
    def stub(*args):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError, match=f"{check.function_name} is not written yet"):
        check(stub)
