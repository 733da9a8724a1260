"""Checks for the receptive-field assignment (notebook 10).

``receptive_field(layers) -> int`` with ``layers`` a list of ``(kernel_size, stride, dilation)``,
compared with the receptive field *measured* from gradients
(``course_utils.segmentation.receptive_field.measure_receptive_field`` on a stack of convolutions).

Usage in a notebook::

    check_receptive_field(receptive_field)   # graded cell: raises on a wrong answer
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from course_utils.grading.assignments import assignment_check
from course_utils.grading.checks._common import compare_int
from course_utils.grading.runner import Case
from course_utils.segmentation import receptive_field as rf

__all__ = ["CHECKS", "check_receptive_field", "measured_receptive_field", "receptive_field_cases"]

_SEED = 909


def measured_receptive_field(layers: list) -> int:
    """The receptive field of a stack of convolutions, measured from the gradient's support."""
    model = rf.conv_stack(list(layers), channels=1, relu=False)
    size = 2 * rf.receptive_field(list(layers)) + 8
    height, width = rf.measure_receptive_field(model, size)
    if height != width:
        raise RuntimeError(f"non-square receptive field {height}x{width} measured for {layers}")
    return height


def receptive_field_cases() -> list[Case]:
    """Named stacks (plain, dilated, strided, mixed), then seeded random stacks."""
    jump = (
        "Every stride multiplies the spacing ('jump') between neighbouring positions of all later "
        "layers: "
        "rf += d * (k - 1) * jump, then jump *= s."
    )
    cases = [
        Case("no layers: a pixel sees itself", ([],), hint="Start from rf = 1 (one pixel), not 0."),
        Case(
            "one 3x3 convolution",
            ([(3, 1, 1)],),
            hint="One k x k convolution sees k pixels: rf = 1 + (k - 1).",
        ),
        Case(
            "one 1x1 convolution",
            ([(1, 1, 1)],),
            hint="A 1x1 convolution adds nothing: rf += (k - 1).",
        ),
        Case(
            "three plain 3x3 convolutions",
            ([(3, 1, 1)] * 3,),
            hint="Each stride-1 3x3 layer adds 2 pixels: 1 + 2 + 2 + 2.",
        ),
        Case(
            "one 3x3 convolution with dilation 4",
            ([(3, 1, 4)],),
            hint="A dilated kernel spans d * (k - 1) + 1 pixels.",
        ),
        Case(
            "3x3 with dilations 1, 2, 4 (Yu & Koltun)",
            ([(3, 1, 1), (3, 1, 2), (3, 1, 4)],),
            hint="Each layer adds d * (k - 1): 1 + 2 + 4 + 8 = 15.",
        ),
        Case("a strided layer first: 3x3 stride 2, then 3x3", ([(3, 2, 1), (3, 1, 1)],), hint=jump),
        Case(
            "a stride as the last layer adds its kernel but no jump",
            ([(3, 1, 1), (3, 2, 1)],),
            hint=jump,
        ),
        Case("three 3x3 stride-2 convolutions", ([(3, 2, 1)] * 3,), hint=jump),
        Case("2x2 pooling-like layer then a dilated 3x3", ([(2, 2, 1), (3, 1, 2)],), hint=jump),
        Case(
            "a stride and a dilation together",
            ([(3, 2, 2), (3, 1, 1)],),
            hint="The dilation spreads this layer's taps; the stride only affects the layers after "
            "it.",
        ),
    ]
    g = np.random.default_rng(_SEED + 3)
    for number in range(4):
        layers = [
            (int(g.choice((1, 2, 3, 5))), int(g.choice((1, 1, 2))), int(g.choice((1, 2, 3))))
            for _ in range(int(g.integers(2, 5)))
        ]
        cases.append(Case(f"random stack {number + 1}: {layers}", (layers,), hint=jump))
    return cases


@assignment_check(
    reference=measured_receptive_field, cases=receptive_field_cases, compare=compare_int
)
def check_receptive_field(receptive_field: Callable[[list], int], *, quiet: bool = False) -> None:
    """Check ``receptive_field(layers) -> int``: the reference measures it from gradients.

    layers: a list of ``(kernel_size, stride, dilation)`` triples (ints), first layer first; the
    result is the side, in input pixels, of the square one output position sees (1 for an empty
    list).
    """


CHECKS = (check_receptive_field,)
