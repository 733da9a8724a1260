"""The receptive-field checks accept correct functions and reject stubs and plausible student
mistakes.

Each ``Wrong`` below is a real, deliberately wrong implementation a student might write; the check
must raise CheckFailed for it, with a message that says what is wrong (``says``);
``tests/test_check_contract.py`` runs them all.
"""

from __future__ import annotations

from check_contract import Wrong, assert_cases_deterministic_with_hints

from course_utils.grading.checks import all_checks
from course_utils.grading.checks.receptive_field import (
    CHECKS,
    check_receptive_field,
    measured_receptive_field,
    receptive_field_cases,
)
from course_utils.segmentation import receptive_field as rf_module


def good_receptive_field(layers):
    rf, jump = 1, 1
    for k, s, d in layers:
        rf += d * (k - 1) * jump
        jump *= s
    return rf


def good_receptive_field_backwards(layers):
    """Correct the other way round: from the output back to the input."""
    rf = 1
    for k, s, d in reversed(layers):
        rf = (rf - 1) * s + d * (k - 1) + 1
    return rf


def rf_ignores_stride_accumulation(layers):
    return 1 + sum(d * (k - 1) for k, s, d in layers)


def rf_ignores_dilation(layers):
    rf, jump = 1, 1
    for k, s, _dilation in layers:
        rf += (k - 1) * jump
        jump *= s
    return rf


def rf_starts_at_zero(layers):
    rf, jump = 0, 1
    for k, s, d in layers:
        rf += d * (k - 1) * jump
        jump *= s
    return rf


def rf_adds_k_not_k_minus_one(layers):
    rf, jump = 1, 1
    for k, s, d in layers:
        rf += d * k * jump
        jump *= s
    return rf


def rf_updates_jump_first(layers):
    rf, jump = 1, 1
    for k, s, d in layers:
        jump *= s
        rf += d * (k - 1) * jump
    return rf


def rf_jump_includes_dilation(layers):
    rf, jump = 1, 1
    for k, s, d in layers:
        rf += d * (k - 1) * jump
        jump *= s * d
    return rf


def rf_sum_of_spans(layers):
    return sum(d * (k - 1) + 1 for k, s, d in layers) if layers else 1


def rf_last_stride_only(layers):
    rf, jump = 1, 1
    for k, s, d in layers:
        rf += d * (k - 1) * jump
        jump = s
    return rf


def rf_span_times_stride(layers):
    rf = 1
    for k, s, d in layers:
        rf = rf * s + d * (k - 1)
    return rf


def rf_as_float(layers):
    rf, jump = 1.0, 1.0
    for k, s, d in layers:
        rf += d * (k - 1) * jump
        jump *= s
    return rf


def rf_crashes_on_empty(layers):
    k, s, d = layers[0]
    rf, jump = d * (k - 1) + 1, s
    for k, s, d in layers[1:]:
        rf += d * (k - 1) * jump
        jump *= s
    return rf


CORRECT = [
    (check_receptive_field, good_receptive_field),
    (check_receptive_field, good_receptive_field_backwards),
    (check_receptive_field, rf_module.receptive_field),
]


WRONG = [
    Wrong(check_receptive_field, rf_ignores_stride_accumulation, "too small"),
    Wrong(check_receptive_field, rf_ignores_dilation, "too small"),
    Wrong(check_receptive_field, rf_starts_at_zero, "too small by 1"),
    Wrong(check_receptive_field, rf_adds_k_not_k_minus_one, "too large"),
    Wrong(check_receptive_field, rf_updates_jump_first, "too large"),
    Wrong(check_receptive_field, rf_jump_includes_dilation, "too large"),
    Wrong(check_receptive_field, rf_sum_of_spans, "too large"),
    Wrong(check_receptive_field, rf_last_stride_only, "too small"),
    Wrong(check_receptive_field, rf_span_times_stride, "expected"),
    Wrong(check_receptive_field, rf_as_float, "float"),
    Wrong(check_receptive_field, rf_crashes_on_empty, "raised IndexError"),
]


def test_the_module_lists_its_checks():
    assert all_checks()["receptive_field"] == CHECKS == (check_receptive_field,)
    assert check_receptive_field.reference is measured_receptive_field


def test_cases_are_deterministic_and_have_hints():
    cases = assert_cases_deterministic_with_hints(receptive_field_cases)
    assert any(c.args[0] == [] for c in cases)


def test_receptive_field_reference_is_a_measurement_that_agrees_with_the_formula():
    for case in receptive_field_cases():
        assert measured_receptive_field(case.args[0]) == rf_module.receptive_field(case.args[0])
