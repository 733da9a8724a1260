"""Unit tests for course_utils.segmentation.receptive_field."""

import random

import pytest
import torch
from torch import nn

from course_utils.segmentation import receptive_field as rf


def test_closed_forms_for_plain_dilated_and_strided_stacks():
    for depth in range(1, 6):
        assert rf.receptive_field(rf.dilated_layers([1] * depth)) == 2 * depth + 1
        assert (
            rf.receptive_field(rf.dilated_layers([2**i for i in range(depth)]))
            == 2 ** (depth + 1) - 1
        )
        assert rf.receptive_field([(3, 2, 1)] * depth) == 2 ** (depth + 1) - 1
    assert rf.receptive_field([]) == 1
    table = rf.receptive_field_table([(3, 2, 1), (3, 1, 2), (1, 1, 1)])
    assert [row["rf"] for row in table] == [3, 11, 11]
    assert [row["jump"] for row in table] == [2, 2, 2]


def test_measured_receptive_field_equals_the_formula_on_random_stacks():
    generator = random.Random(0)
    for _ in range(6):
        layers = [
            (
                generator.choice((1, 2, 3, 5)),
                generator.choice((1, 1, 2)),
                generator.choice((1, 2, 3)),
            )
            for _ in range(generator.randint(1, 4))
        ]
        model = rf.conv_stack(layers, channels=2)
        expected = rf.receptive_field(layers)
        assert rf.measure_receptive_field(model, 2 * expected + 16) == (expected, expected)
        assert rf.layers_of(model) == layers


def test_measurement_refuses_a_too_small_input():
    with pytest.raises(ValueError, match="larger input_size"):
        rf.measure_receptive_field(rf.conv_stack(rf.dilated_layers([1, 2, 4])), 9)


def test_gridding_holes_with_equal_dilations_not_with_growing_ones():
    equal = rf.gradient_map(rf.conv_stack(rf.dilated_layers([2, 2, 2])), 31)
    growing = rf.gradient_map(rf.conv_stack(rf.dilated_layers([1, 2, 4])), 31)
    assert rf.coverage(equal) == pytest.approx(49 / 169)
    assert rf.coverage(growing) == 1.0
    assert equal.sum() == pytest.approx(1.0) and growing.sum() == pytest.approx(1.0)
    # the model's own weights: same support, different values
    model = rf.conv_stack(rf.dilated_layers([1, 2]), relu=False)
    own = rf.gradient_map(model, 21, weights="model")
    assert (own > 0).sum() == (rf.gradient_map(model, 21) > 0).sum() == 49


def test_same_parameters_whatever_the_dilation():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    dilated = rf.conv_stack(rf.dilated_layers([1, 2, 4, 8]))
    assert count(dilated) == count(rf.conv_stack(rf.dilated_layers([1] * 4)))
    # 9 * channels * (in + channels (L - 1)) weights + channels * L biases (docstring's formula)
    assert count(dilated) == 9 * 4 * (1 + 4 * 3) + 4 * 4
    # and the size is kept: padding d (k - 1) // 2
    assert dilated(torch.zeros(1, 1, 20, 20)).shape == (1, 4, 20, 20)


def test_layers_of_reads_pools_and_rejects_rectangles():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, dilation=2), nn.MaxPool2d(2), nn.AvgPool2d(3, 1))
    assert rf.layers_of(model) == [(3, 1, 2), (2, 2, 1), (3, 1, 1)]
    with pytest.raises(ValueError, match="square"):
        rf.layers_of(nn.Conv2d(1, 1, (3, 1)))


def test_bad_layer_lists_are_rejected():
    with pytest.raises(TypeError, match="triple"):
        rf.receptive_field([(3, 1)])
    with pytest.raises(ValueError, match=">= 1"):
        rf.receptive_field([(3, 0, 1)])
    with pytest.raises(TypeError):
        rf.receptive_field("3,1,1")
    with pytest.raises(ValueError, match="weights"):
        rf.gradient_map(nn.Conv2d(1, 1, 3), 8, weights="ones")


def test_context_module_starts_as_identity_and_learns():
    torch.manual_seed(0)
    module = rf.ContextModule(3, (1, 1, 2, 4, 1))
    x = torch.randn(2, 3, 12, 12)
    torch.testing.assert_close(module(x), x)
    assert module.receptive_field() == 1 + 2 * (1 + 1 + 2 + 4 + 1)
    assert rf.measure_receptive_field(module, 41, in_channels=3) == (19, 19)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        (module(x) - x.roll(1, dims=-1)).pow(2).mean().backward()
        optimizer.step()
    assert not torch.allclose(module(x), x)
    plain = rf.ContextModule(3, (1, 2), identity_init=False)
    assert not torch.allclose(plain.body[0].weight[:, :, 0, 0], torch.zeros(3, 3))
    assert plain.dilations == (1, 2) and plain.out.weight.shape == (3, 3, 1, 1)
    with pytest.raises(ValueError, match="channels"):
        rf.ContextModule(0)
    with pytest.raises(TypeError, match="channels"):
        rf.ContextModule(2.0)


def test_max_pools_are_measured_with_their_whole_window():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.Conv2d(2, 2, 3, dilation=2))
    expected = rf.receptive_field(rf.layers_of(model))
    assert expected == 1 + 2 + 1 + 2 * 2 * 2
    assert rf.measure_receptive_field(model, 40) == (expected, expected)
    assert isinstance(model[1], nn.MaxPool2d)  # the model itself is left alone
