"""The Selective Search checks accept correct functions and reject stubs and plausible mistakes.

Each ``Wrong`` below is a real, deliberately wrong implementation a student might write; the
check must raise CheckFailed for it, with a message that says what is wrong (``says``);
``tests/test_check_contract.py`` runs them all.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from check_contract import Wrong

from course_utils.detection.region_descriptors import color_histogram
from course_utils.detection.region_dicts import (
    merge_region_dicts,
    region_color_histogram,
    region_similarities,
)
from course_utils.grading.checks import all_checks
from course_utils.grading.checks.selective_search import (
    CHECKS,
    check_color_histogram,
    check_merge_regions,
    check_similarities,
    color_histogram_cases,
    merge_regions_cases,
    similarities_cases,
)

BINS = 25

# ------------------------------------------------------------------------------------------------
# Correct implementations, written the way a student would
# ------------------------------------------------------------------------------------------------


def good_color_histogram(pixels):
    bins = (pixels * BINS).long().clamp(max=BINS - 1)
    offsets = torch.arange(pixels.shape[1]) * BINS
    counts = torch.bincount((bins + offsets).flatten(), minlength=pixels.shape[1] * BINS)
    return (counts / counts.sum()).to(pixels.dtype)


def good_color_histogram_loop(pixels):
    parts = []
    for channel in range(pixels.shape[1]):
        parts.append(torch.histc(pixels[:, channel], bins=BINS, min=0.0, max=1.0))
    histogram = torch.cat(parts)
    return histogram / histogram.sum()


def good_similarities(region_a, region_b, image_shape):
    image_size = image_shape[0] * image_shape[1]
    colour = torch.minimum(region_a["color"], region_b["color"]).sum()
    texture = torch.minimum(region_a["texture"], region_b["texture"]).sum()
    size = 1 - (region_a["size"] + region_b["size"]) / image_size
    box_a, box_b = region_a["box"], region_b["box"]
    width = torch.max(box_a[2], box_b[2]) - torch.min(box_a[0], box_b[0])
    height = torch.max(box_a[3], box_b[3]) - torch.min(box_a[1], box_b[1])
    fill = 1 - (width * height - region_a["size"] - region_b["size"]) / image_size
    return torch.stack([colour, texture, size, fill])


def good_similarities_floats(region_a, region_b, image_shape):
    """Correct, but computed with Python floats and returned as a float32 tensor."""
    values = good_similarities(region_a, region_b, image_shape).tolist()
    return torch.tensor(values)


def good_merge(region_a, region_b, new_id):
    size_a, size_b = region_a["size"], region_b["size"]
    total = size_a + size_b
    box = torch.cat(
        [
            torch.minimum(region_a["box"][:2], region_b["box"][:2]),
            torch.maximum(region_a["box"][2:], region_b["box"][2:]),
        ]
    )
    return {
        "id": new_id,
        "size": total,
        "box": box,
        "color": (size_a * region_a["color"] + size_b * region_b["color"]) / total,
        "texture": (size_a * region_a["texture"] + size_b * region_b["texture"]) / total,
        "neighbours": (region_a["neighbours"] | region_b["neighbours"])
        - {region_a["id"], region_b["id"]},
    }


def good_merge_with_set(region_a, region_b, new_id):
    merged = good_merge(region_a, region_b, new_id)
    merged["neighbours"] = set(merged["neighbours"])
    fraction = region_a["size"] / (region_a["size"] + region_b["size"])
    merged["color"] = fraction * region_a["color"] + (1 - fraction) * region_b["color"]
    return merged


# ------------------------------------------------------------------------------------------------
# Wrong colour histograms
# ------------------------------------------------------------------------------------------------


def histogram_counts(pixels):  # not normalised
    bins = (pixels * BINS).long().clamp(max=BINS - 1)
    counts = torch.bincount(
        (bins + torch.arange(pixels.shape[1]) * BINS).flatten(), minlength=pixels.shape[1] * BINS
    )
    return counts.to(pixels.dtype)


def histogram_per_channel(pixels):  # each channel sums to 1, the vector to 3
    return histogram_counts(pixels) / pixels.shape[0]


def histogram_no_clamp(pixels):  # 1.0 lands in bin 25 = the next channel's bin 0
    bins = (pixels * BINS).long()
    counts = torch.bincount(
        (bins + torch.arange(pixels.shape[1]) * BINS).flatten(), minlength=pixels.shape[1] * BINS
    )
    counts = counts[: pixels.shape[1] * BINS]
    return (counts / pixels.numel()).to(pixels.dtype)


def histogram_round(pixels):
    bins = (pixels * BINS).round().long().clamp(max=BINS - 1)
    counts = torch.bincount(
        (bins + torch.arange(pixels.shape[1]) * BINS).flatten(), minlength=pixels.shape[1] * BINS
    )
    return (counts / counts.sum()).to(pixels.dtype)


def histogram_data_range(pixels):  # torch.histc's default min = max = 0 uses the data's range
    parts = [torch.histc(pixels[:, c], bins=BINS) for c in range(pixels.shape[1])]
    histogram = torch.cat(parts)
    return histogram / histogram.sum()


def histogram_no_offsets(pixels):  # all channels share 25 bins
    bins = (pixels * BINS).long().clamp(max=BINS - 1)
    counts = torch.bincount(bins.flatten(), minlength=BINS)
    return (counts / counts.sum()).to(pixels.dtype)


def histogram_interleaved(pixels):  # bin-major order: index = bin * C + channel
    bins = (pixels * BINS).long().clamp(max=BINS - 1)
    index = bins * pixels.shape[1] + torch.arange(pixels.shape[1])
    counts = torch.bincount(index.flatten(), minlength=pixels.shape[1] * BINS)
    return (counts / counts.sum()).to(pixels.dtype)


def histogram_three_channels(pixels):  # hard-coded 3 channels
    bins = (pixels * BINS).long().clamp(max=BINS - 1)
    counts = torch.bincount(
        (bins + torch.arange(3)[: pixels.shape[1]] * BINS).flatten(), minlength=3 * BINS
    )
    return (counts / counts.sum()).to(pixels.dtype)


def histogram_float32(pixels):  # ignores the input dtype
    return good_color_histogram(pixels).float()


def histogram_24_bins(pixels):  # 25 edges from linspace -> 24 bins
    edges = torch.linspace(0, 1, BINS, dtype=pixels.dtype)
    bins = (torch.bucketize(pixels, edges, right=True) - 1).clamp(0, BINS - 2)
    counts = torch.bincount(
        (bins + torch.arange(pixels.shape[1]) * (BINS - 1)).flatten(),
        minlength=pixels.shape[1] * (BINS - 1),
    )
    return (counts / counts.sum()).to(pixels.dtype)


def histogram_numpy(pixels):
    return color_histogram(pixels.numpy())


# ------------------------------------------------------------------------------------------------
# Wrong similarities
# ------------------------------------------------------------------------------------------------


def _with(index, value_fn):
    def wrong(region_a, region_b, image_shape):
        values = good_similarities(region_a, region_b, image_shape).clone()
        values[index] = value_fn(region_a, region_b, image_shape)
        return values

    return wrong


def _union_area(a, b):
    width = torch.max(a["box"][2], b["box"][2]) - torch.min(a["box"][0], b["box"][0])
    height = torch.max(a["box"][3], b["box"][3]) - torch.min(a["box"][1], b["box"][1])
    return width * height


def _box_area(box):
    return (box[2] - box[0]) * (box[3] - box[1])


similarity_max = _with(0, lambda a, b, s: torch.maximum(a["color"], b["color"]).sum())
similarity_product = _with(0, lambda a, b, s: (a["color"] * b["color"]).sum())
similarity_mean = _with(1, lambda a, b, s: torch.minimum(a["texture"], b["texture"]).mean())
similarity_texture_from_colour = _with(
    1, lambda a, b, s: torch.minimum(a["color"], b["color"]).sum()
)
size_without_one_minus = _with(2, lambda a, b, s: (a["size"] + b["size"]) / (s[0] * s[1]))
size_height_squared = _with(2, lambda a, b, s: 1 - (a["size"] + b["size"]) / (s[0] * s[0]))
size_from_boxes = _with(
    2, lambda a, b, s: 1 - (_box_area(a["box"]) + _box_area(b["box"])) / (s[0] * s[1])
)
fill_intersection_box = _with(
    3,
    lambda a, b, s: (
        1
        - (
            (torch.min(a["box"][2], b["box"][2]) - torch.max(a["box"][0], b["box"][0])).clamp(min=0)
            * (torch.min(a["box"][3], b["box"][3]) - torch.max(a["box"][1], b["box"][1])).clamp(
                min=0
            )
            - a["size"]
            - b["size"]
        )
        / (s[0] * s[1])
    ),
)
fill_sum_of_boxes = _with(
    3,
    lambda a, b, s: (
        1 - (_box_area(a["box"]) + _box_area(b["box"]) - a["size"] - b["size"]) / (s[0] * s[1])
    ),
)
fill_plus_one = _with(
    3,
    lambda a, b, s: (
        1
        - (
            (torch.max(a["box"][2], b["box"][2]) - torch.min(a["box"][0], b["box"][0]) + 1)
            * (torch.max(a["box"][3], b["box"][3]) - torch.min(a["box"][1], b["box"][1]) + 1)
            - a["size"]
            - b["size"]
        )
        / (s[0] * s[1])
    ),
)
fill_without_sizes = _with(3, lambda a, b, s: 1 - _union_area(a, b) / (s[0] * s[1]))
fill_over_box = _with(
    3, lambda a, b, s: 1 - (_union_area(a, b) - a["size"] - b["size"]) / _union_area(a, b)
)


def similarities_swapped(region_a, region_b, image_shape):
    return good_similarities(region_a, region_b, image_shape)[[0, 1, 3, 2]]


def similarities_sum(region_a, region_b, image_shape):
    return good_similarities(region_a, region_b, image_shape).sum()


def similarities_list(region_a, region_b, image_shape):
    return good_similarities(region_a, region_b, image_shape).tolist()


# ------------------------------------------------------------------------------------------------
# Wrong merges
# ------------------------------------------------------------------------------------------------


def _merge_with(**changes):
    def wrong(region_a, region_b, new_id):
        merged = good_merge(region_a, region_b, new_id)
        for key, fn in changes.items():
            merged[key] = fn(region_a, region_b, new_id)
        return merged

    return wrong


merge_plain_average = _merge_with(
    color=lambda a, b, t: (a["color"] + b["color"]) / 2,
    texture=lambda a, b, t: (a["texture"] + b["texture"]) / 2,
)
merge_swapped_weights = _merge_with(
    color=lambda a, b, t: (
        (b["size"] * a["color"] + a["size"] * b["color"]) / (a["size"] + b["size"])
    )
)
merge_summed = _merge_with(texture=lambda a, b, t: a["texture"] + b["texture"])
merge_box_weights = _merge_with(
    color=lambda a, b, t: (
        (_box_area(a["box"]) * a["color"] + _box_area(b["box"]) * b["color"])
        / (_box_area(a["box"]) + _box_area(b["box"]))
    )
)
merge_size_max = _merge_with(size=lambda a, b, t: torch.maximum(a["size"], b["size"]))
merge_box_intersection = _merge_with(
    box=lambda a, b, t: torch.cat(
        [torch.maximum(a["box"][:2], b["box"][:2]), torch.minimum(a["box"][2:], b["box"][2:])]
    )
)
merge_box_of_a = _merge_with(box=lambda a, b, t: a["box"].clone())
merge_neighbours_of_a = _merge_with(neighbours=lambda a, b, t: a["neighbours"] - {b["id"]})
merge_neighbours_keep_ids = _merge_with(
    neighbours=lambda a, b, t: a["neighbours"] | b["neighbours"]
)
merge_neighbours_intersection = _merge_with(
    neighbours=lambda a, b, t: a["neighbours"] & b["neighbours"]
)
merge_old_id = _merge_with(id=lambda a, b, t: a["id"])
merge_neighbours_list = _merge_with(
    neighbours=lambda a, b, t: sorted((a["neighbours"] | b["neighbours"]) - {a["id"], b["id"]})
)


def merge_in_place(region_a, region_b, new_id):
    merged = good_merge(region_a, region_b, new_id)
    region_a["color"].mul_(0)  # "no longer needed"
    return merged


def merge_missing_texture(region_a, region_b, new_id):
    merged = good_merge(region_a, region_b, new_id)
    del merged["texture"]
    return merged


def merge_returns_tuple(region_a, region_b, new_id):
    merged = good_merge(region_a, region_b, new_id)
    return merged["size"], merged["box"], merged["color"], merged["texture"]


# ------------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------------


WRONG = [
    Wrong(check_color_histogram, histogram_counts, "sums to"),
    Wrong(check_color_histogram, histogram_per_channel, "sums to 3"),
    Wrong(check_color_histogram, histogram_no_clamp, "last bin"),
    Wrong(check_color_histogram, histogram_round, "floor"),
    Wrong(check_color_histogram, histogram_data_range, "pixels' range"),
    Wrong(check_color_histogram, histogram_no_offsets, "shape (25,)"),
    Wrong(check_color_histogram, histogram_interleaved, "interleaved"),
    Wrong(check_color_histogram, histogram_three_channels, "1 channel(s)"),
    Wrong(check_color_histogram, histogram_float32, "float64"),
    Wrong(check_color_histogram, histogram_24_bins, "shape (24,)"),
    Wrong(check_color_histogram, histogram_numpy, "numpy"),
    Wrong(check_similarities, similarity_max, "colour similarity"),
    Wrong(check_similarities, similarity_product, "min(color_a[k], color_b[k])"),
    Wrong(check_similarities, similarity_mean, "texture similarity"),
    Wrong(check_similarities, similarity_texture_from_colour, "texture"),
    Wrong(check_similarities, size_without_one_minus, "size similarity"),
    Wrong(check_similarities, size_height_squared, "H * W"),
    Wrong(check_similarities, size_from_boxes, "size similarity"),
    Wrong(check_similarities, fill_intersection_box, "fill similarity"),
    Wrong(check_similarities, fill_sum_of_boxes, "tight box around both"),
    Wrong(check_similarities, fill_plus_one, "fill similarity"),
    Wrong(check_similarities, fill_without_sizes, "fill similarity"),
    Wrong(check_similarities, fill_over_box, "fill similarity"),
    Wrong(check_similarities, similarities_swapped, "size similarity"),
    Wrong(check_similarities, similarities_sum, "not their sum"),
    Wrong(check_similarities, similarities_list, "expected a torch.Tensor"),
    Wrong(check_merge_regions, merge_plain_average, "size-weighted average"),
    Wrong(check_merge_regions, merge_swapped_weights, "region['color']"),
    Wrong(check_merge_regions, merge_summed, "still sums to 1"),
    Wrong(check_merge_regions, merge_box_weights, "region['color']"),
    Wrong(check_merge_regions, merge_size_max, "region['size']"),
    Wrong(check_merge_regions, merge_box_intersection, "it contains both"),
    Wrong(check_merge_regions, merge_box_of_a, "region['box']"),
    Wrong(check_merge_regions, merge_neighbours_of_a, "it misses"),
    Wrong(check_merge_regions, merge_neighbours_keep_ids, "should not contain"),
    Wrong(check_merge_regions, merge_neighbours_intersection, "it misses"),
    Wrong(check_merge_regions, merge_old_id, "new_id"),
    Wrong(check_merge_regions, merge_neighbours_list, "expected a set"),
    Wrong(check_merge_regions, merge_in_place, "modified its input"),
    Wrong(check_merge_regions, merge_missing_texture, "misses the keys ['texture']"),
    Wrong(check_merge_regions, merge_returns_tuple, "expected a dict"),
]

CORRECT = [
    (check_color_histogram, good_color_histogram),
    (check_color_histogram, good_color_histogram_loop),
    (check_color_histogram, region_color_histogram),
    (check_similarities, good_similarities),
    (check_similarities, good_similarities_floats),
    (check_similarities, region_similarities),
    (check_merge_regions, good_merge),
    (check_merge_regions, good_merge_with_set),
    (check_merge_regions, merge_region_dicts),
]


def test_the_module_lists_its_checks():
    assert all_checks()["selective_search"] == CHECKS
    assert [c.function_name for c in CHECKS] == ["color_histogram", "similarities", "merge_regions"]


@pytest.mark.parametrize(
    "make_cases", [color_histogram_cases, similarities_cases, merge_regions_cases]
)
def test_cases_are_deterministic(make_cases):
    first, second = make_cases(), make_cases()
    assert [c.name for c in first] == [c.name for c in second]
    for a, b in zip(first, second):
        for x, y in zip(a.args, b.args):
            if isinstance(x, torch.Tensor):
                assert torch.equal(x, y)
            elif isinstance(x, dict):
                assert all(
                    torch.equal(x[k], y[k]) if isinstance(x[k], torch.Tensor) else x[k] == y[k]
                    for k in x
                )


def test_the_closed_forms_in_the_case_names_hold():
    cases = similarities_cases()
    values = [region_similarities(*case.args) for case in cases[:4]]
    np.testing.assert_allclose(values[0][[0, 2, 3]].numpy(), [1 / 3, 0.98, 1.0])
    np.testing.assert_allclose(values[1][[0, 2, 3]].numpy(), [1.0, 0.98, 0.98])
    np.testing.assert_allclose(values[2][[2, 3]].numpy(), [0.84, 1.0])
    a, b, shape = cases[3].args
    assert values[3][2] == pytest.approx(1 - float(a["size"] + b["size"]) / (64 * 128))
    histogram_cases = color_histogram_cases()
    red = region_color_histogram(histogram_cases[1].args[0])
    assert (
        red[24] == pytest.approx(1 / 3)
        and red[25] == pytest.approx(1 / 3)
        and red[50] == pytest.approx(1 / 3)
    )
    merged = merge_region_dicts(*merge_regions_cases()[2].args)
    assert merged["box"].tolist() == [5.0, 5.0, 45.0, 50.0]
    assert merge_region_dicts(*merge_regions_cases()[0].args)["neighbours"] == {1, 2, 3}
