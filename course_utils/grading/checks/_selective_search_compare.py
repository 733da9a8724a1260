"""Comparators of the Selective Search checks (private: not a topic module).

Each ``compare_*(got, expected, case) -> None | str`` returns None when the student's answer
matches the reference's ``expected``, else what is wrong, in the student's terms (a histogram
that does not sum to 1, interleaved bins, which similarity is wrong and its formula, which key of
a merged region is wrong and the rule for it). Tensors are compared in float64 with
``atol=1e-6, rtol=1e-5``.
"""

from __future__ import annotations

from typing import Any

import torch

from course_utils.detection.region_descriptors import COLOR_BINS
from course_utils.detection.region_dicts import REGION_KEYS
from course_utils.grading.compare import describe, not_a_tensor_problem
from course_utils.grading.runner import Case

_SIMILARITY_NAMES = ("colour", "texture", "size", "fill")
_SIMILARITY_FORMULAS = (
    "sum_k min(color_a[k], color_b[k]), the histogram intersection of the colour histograms",
    "sum_k min(texture_a[k], texture_b[k]), the histogram intersection of the texture histograms",
    "1 - (size_a + size_b) / (H * W), with the regions' pixel counts",
    "1 - (area(BB) - size_a - size_b) / (H * W), BB = the tight box around both regions' boxes",
)
_WEIGHTED_AVERAGE = (
    "The merged histogram is the size-weighted average "
    "(size_a * h_a + size_b * h_b) / (size_a + size_b)."
)
_MERGE_RULES = {
    "size": "The merged size is size_a + size_b (pixels).",
    "box": "The merged box is (min x1, min y1, max x2, max y2) of the two boxes: it contains both.",
    "color": _WEIGHTED_AVERAGE,
    "texture": _WEIGHTED_AVERAGE,
}


def _close(
    got: torch.Tensor, expected: torch.Tensor, atol: float = 1e-6, rtol: float = 1e-5
) -> bool:
    """Whether two tensors (any device and float dtype) agree in float64."""
    return bool(
        torch.allclose(
            got.detach().cpu().double(), expected.detach().cpu().double(), atol=atol, rtol=rtol
        )
    )


# --------------------------------------------------------------------------- colour histogram


def _histogram_type_problem(got: torch.Tensor, expected: torch.Tensor, case: Case) -> str | None:
    """What is wrong with the shape or dtype of a histogram, or None."""
    if got.shape != expected.shape:
        channels = case.args[0].shape[1]
        return (
            f"returned shape {tuple(got.shape)}, expected {tuple(expected.shape)}: "
            f"{channels} channel(s) x {COLOR_BINS} bins, the channels' histograms one after the "
            "other in a single vector."
        )
    if not got.is_floating_point():
        return f"returned dtype {got.dtype}: a histogram of fractions must be a float tensor."
    if got.dtype != expected.dtype:
        return (
            f"returned dtype {got.dtype}, expected {expected.dtype} (the pixels' dtype): let the "
            "input decide the dtype (no .float(), .double() or new tensors with a default dtype)."
        )
    return None


def compare_histogram(got: Any, expected: torch.Tensor, case: Case) -> str | None:
    """A colour histogram (C * 25,): type, then sum, then bin order, then the first wrong value."""
    problem = not_a_tensor_problem(got) or _histogram_type_problem(got, expected, case)
    if problem:
        return problem
    if _close(got, expected):
        return None
    total = float(got.sum())
    if abs(total - 1.0) > 1e-4:
        return (
            f"the histogram sums to {total:.4g}, expected 1: divide the whole vector by its sum "
            "(L1 norm), so that the intersection of two histograms lies in [0, 1]."
        )
    channels = case.args[0].shape[1]
    interleaved = expected.reshape(channels, COLOR_BINS).T.reshape(-1)
    if channels > 1 and _close(got, interleaved):
        return (
            "the bins are interleaved (bin-major, index = bin * C + channel): put channel c's "
            "25 bins at c * 25 ... c * 25 + 24 (channel-major), one channel's histogram after "
            "the other."
        )
    wrong = torch.nonzero(
        ~torch.isclose(got.cpu().double(), expected.cpu().double(), atol=1e-6)
    ).flatten()
    first = int(wrong[0])
    return (
        f"values differ at index {first} (channel {first // COLOR_BINS}, bin "
        f"{first % COLOR_BINS}): expected {float(expected[first]):.6g}, got "
        f"{float(got[first]):.6g} ({len(wrong)} of {expected.numel()} values wrong)."
    )


# --------------------------------------------------------------------------- the four similarities


def compare_similarities(got: Any, expected: torch.Tensor, case: Case) -> str | None:
    """The four similarities (4,): type, then each similarity in turn with its formula."""
    problem = not_a_tensor_problem(got)
    if problem:
        return problem
    if got.shape != expected.shape:
        return (
            f"returned shape {tuple(got.shape)}, expected (4,): the four similarities (colour, "
            "texture, size, fill) in this order, not their sum."
        )
    if not got.is_floating_point():
        return f"returned dtype {got.dtype}: similarities are fractions, return a float tensor."
    for index, name in enumerate(_SIMILARITY_NAMES):
        if not _close(got[index], expected[index]):
            return (
                f"the {name} similarity (entry {index}) is wrong: expected "
                f"{float(expected[index]):.6g}, got {float(got[index]):.6g}. "
                f"It is {_SIMILARITY_FORMULAS[index]}."
            )
    return None


# --------------------------------------------------------------------------- the merge step


def _tensor_entry_problem(key: str, value: Any, expected: torch.Tensor) -> str | None:
    """What is wrong with ``region[key]`` (size, box or a histogram) of a merged region, or None."""
    problem = not_a_tensor_problem(value)
    if problem:
        return f"region['{key}']: {problem}"
    if tuple(value.shape) != tuple(expected.shape):
        return f"region['{key}'] has shape {tuple(value.shape)}, expected {tuple(expected.shape)}."
    if _close(value, expected):
        return None
    unnormalised = key in ("color", "texture") and abs(float(value.sum()) - 1) > 1e-4
    return (
        f"region['{key}'] is wrong: expected {describe(expected)}, got {describe(value)}. "
        + _MERGE_RULES[key]
        + (
            f" It sums to {float(value.sum()):.4g}; a merged histogram still sums to 1."
            if unnormalised
            else ""
        )
    )


def _neighbours_problem(got: Any, expected: frozenset) -> str | None:
    """What is wrong with a merged region's ``neighbours``, or None."""
    if not isinstance(got, (set, frozenset)):
        return (
            f"region['neighbours'] is a {type(got).__name__}, expected a set (or frozenset) of ids."
        )
    neighbours = {int(n) for n in got}
    if neighbours == set(expected):
        return None
    extra, lost = sorted(neighbours - expected), sorted(expected - neighbours)
    return (
        f"region['neighbours'] is {sorted(neighbours)}, expected {sorted(expected)}"
        + (f"; it should not contain {extra}" if extra else "")
        + (f"; it misses {lost}" if lost else "")
        + "."
    )


def compare_merged(got: Any, expected: dict, case: Case) -> str | None:
    """A merged region dict: type and keys, id, size, box, histograms, then neighbours."""
    if not isinstance(got, dict):
        return f"returned a {type(got).__name__}, expected a dict with keys {list(REGION_KEYS)}."
    missing = [key for key in REGION_KEYS if key not in got]
    if missing:
        return f"the returned dict misses the keys {missing}: a region has {list(REGION_KEYS)}."
    if got["id"] != expected["id"]:
        return f"the merged region's id is {got['id']!r}, expected new_id = {expected['id']}."
    for key in ("size", "box", "color", "texture"):
        problem = _tensor_entry_problem(key, got[key], expected[key])
        if problem:
            return problem
    return _neighbours_problem(got["neighbours"], expected["neighbours"])
