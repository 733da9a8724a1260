"""course_utils.detection.windows: grids, counts, crops, the object box in a window, pyramids."""

import pytest
import torch

from course_utils.detection.windows import (
    best_window_iou,
    count_windows,
    crop_windows,
    grid_shape,
    image_pyramid,
    multiscale_windows,
    pyramid_windows,
    shrink_boxes,
    unfold_windows,
    window_grid,
)

# --------------------------------------------------------------------------- grids


@pytest.mark.parametrize(
    "size,window,stride,padding", [((64, 64), 16, 8, 0), ((48, 80), 20, 6, 0), ((64, 64), 30, 7, 5)]
)
def test_window_grid_geometry(size, window, stride, padding):
    boxes = window_grid(size, window, stride, padding)
    rows, cols = grid_shape(size, window, stride, padding)
    assert boxes.shape == (rows * cols, 4) and boxes.dtype == torch.float32
    assert len(boxes) == count_windows(size, window, stride, padding)
    assert torch.allclose(boxes[:, 2] - boxes[:, 0], torch.full((len(boxes),), float(window)))
    assert torch.allclose(boxes[:, 3] - boxes[:, 1], torch.full((len(boxes),), float(window)))
    grid = boxes.view(rows, cols, 4)
    assert torch.allclose(
        grid[:, 1:, 0] - grid[:, :-1, 0], torch.tensor(float(stride))
    )  # row-major, stride apart
    assert torch.allclose(grid[1:, :, 1] - grid[:-1, :, 1], torch.tensor(float(stride)))
    height, width = size
    assert boxes[:, 0].min() >= -padding - 1e-5 and boxes[:, 2].max() <= width + padding + 1e-5
    assert boxes[:, 1].min() >= -padding - 1e-5 and boxes[:, 3].max() <= height + padding + 1e-5
    # centred: the margins left at both ends are equal, and smaller than one stride
    left, right = boxes[:, 0].min() + padding, width + padding - boxes[:, 2].max()
    assert abs(float(left - right)) < 1e-4 and left < stride


def test_window_grid_counts_scale_with_stride():
    assert count_windows((128, 128), 32, 8) == 13 * 13
    assert count_windows((128, 128), 32, 4) > 3 * count_windows((128, 128), 32, 8)


def test_window_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="does not fit"):
        window_grid((32, 32), 40, 4)
    with pytest.raises(ValueError, match="stride"):
        window_grid((32, 32), 8, 0)
    with pytest.raises(ValueError, match="image_size"):
        window_grid((32,), 8, 4)


def test_window_grid_values_by_hand():
    grid = window_grid((20, 20), 10, 5)  # starts 0, 5, 10 on both axes, row by row
    assert grid[:4].tolist() == [
        [0.0, 0.0, 10.0, 10.0],
        [5.0, 0.0, 15.0, 10.0],
        [10.0, 0.0, 20.0, 10.0],
        [0.0, 5.0, 10.0, 15.0],
    ]
    assert grid[-1].tolist() == [10.0, 10.0, 20.0, 20.0] and grid_shape((20, 20), 10, 5) == (3, 3)
    centred = window_grid((21, 20), 10, 5)  # one pixel left over in y: half a pixel at each end
    assert centred[:, 1].unique().tolist() == [0.5, 5.5, 10.5]
    padded = window_grid((20, 20), 10, 5, padding=5)  # starts -5, 0, ..., 15
    assert padded[:, 0].unique().tolist() == [-5.0, 0.0, 5.0, 10.0, 15.0]


def test_window_arguments_wrong_type_raise_type_error():
    with pytest.raises(TypeError, match="window"):
        window_grid((32, 32), "8", 4)
    with pytest.raises(TypeError, match="image_size"):
        window_grid((32.0, 32), 8, 4)
    with pytest.raises(ValueError, match="padding"):
        window_grid((32, 32), 8, 4, padding=-1)
    with pytest.raises(TypeError, match="output_size"):
        crop_windows(torch.zeros(3, 8, 8), torch.zeros(0, 4), 4.0)
    with pytest.raises(ValueError, match="context"):
        multiscale_windows((64, 64), (16,), (8,), context=3.0)


def test_multiscale_windows_concatenates_scales():
    boxes, scale = multiscale_windows((64, 64), (16, 32), (8, 16), context=0.25)
    assert len(boxes) == len(scale)
    for index, window in enumerate((16, 32)):
        sides = boxes[scale == index, 2] - boxes[scale == index, 0]
        assert torch.allclose(sides, torch.tensor(float(window)))
        padding = window * 0.25 / 1.5
        assert boxes[scale == index, 0].min() >= -padding - 1e-5
    assert scale.tolist() == [0] * count_windows((64, 64), 16, 8, 16 * 0.25 / 1.5) + [
        1
    ] * count_windows((64, 64), 32, 16, 32 * 0.25 / 1.5)
    with pytest.raises(ValueError):
        multiscale_windows((64, 64), (16, 32), (8,))


# --------------------------------------------------------------------------- cropping


def test_unfold_and_roi_align_crops_agree():
    torch.manual_seed(0)
    image = torch.rand(3, 40, 40)
    window, stride = 8, 4  # (40 - 8) % 4 == 0: both grids start at 0
    patches = unfold_windows(image, window, stride)
    crops = crop_windows(image, window_grid((40, 40), window, stride), window)
    assert (
        patches.shape == crops.shape == (count_windows((40, 40), window, stride), 3, window, window)
    )
    assert torch.allclose(patches, crops, atol=1e-5)
    x1, y1 = window_grid((40, 40), window, stride)[5, :2].long().tolist()
    assert torch.equal(patches[5], image[:, y1 : y1 + window, x1 : x1 + window])


def test_unfold_windows_rejects_a_window_larger_than_the_image():
    with pytest.raises(ValueError, match="larger"):
        unfold_windows(torch.zeros(3, 8, 8), 9, 1)


def test_crop_windows_resizes_and_pads_with_zeros():
    image = torch.full((3, 32, 32), 0.7)
    boxes = torch.tensor([[0.0, 0.0, 32.0, 32.0], [4.0, 4.0, 10.0, 10.0], [-20.0, 0.0, 12.0, 32.0]])
    crops = crop_windows(image, boxes, 16)
    assert crops.shape == (3, 3, 16, 16)
    assert torch.allclose(crops[0], torch.tensor(0.7)) and torch.allclose(
        crops[1], torch.tensor(0.7)
    )
    assert crops[2, :, :, :7].max() < 1e-6 and torch.allclose(
        crops[2, :, :, 11:], torch.tensor(0.7)
    )
    assert crop_windows(image, torch.zeros((0, 4)), 16).shape == (0, 3, 16, 16)
    with pytest.raises(ValueError):
        crop_windows(image * 255, boxes, 16)


# --------------------------------------------------------------------------- windows and objects


def test_shrink_boxes_undoes_context():
    box = torch.tensor([[10.0, 20.0, 30.0, 40.0]])  # 20 x 20
    window = torch.tensor([[5.0, 15.0, 35.0, 45.0]])  # grown by 0.25 * 20 on each side
    assert torch.allclose(shrink_boxes(window, 0.25), box)
    assert torch.equal(shrink_boxes(window, 0.0), window)


def test_best_window_iou():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    windows = torch.tensor([[0.0, 0.0, 10.0, 10.0], [25.0, 20.0, 35.0, 30.0]])
    best = best_window_iou(gt, windows)
    assert torch.allclose(best, torch.tensor([1.0, 50 / 150]))
    assert best_window_iou(gt, torch.zeros((0, 4))).tolist() == [0.0, 0.0]
    assert best_window_iou(torch.zeros((0, 4)), windows).shape == (0,)


# --------------------------------------------------------------------------- pyramid


def test_image_pyramid_and_pyramid_windows():
    torch.manual_seed(0)
    image = torch.rand(1, 60, 80)
    levels = image_pyramid(image, [1.0, 0.5])
    assert [tuple(level.shape) for level in levels] == [(1, 60, 80), (1, 30, 40)]
    assert torch.allclose(levels[0], image, atol=1e-5)
    patches, boxes, level = pyramid_windows(image, 10, 5, [1.0, 0.5, 0.1])  # 0.1 -> 6 x 8: skipped
    assert patches.shape[1:] == (1, 10, 10) and len(patches) == len(boxes) == len(level)
    assert set(level.tolist()) == {0, 1}
    assert len(patches) == count_windows((60, 80), 10, 5) + count_windows((30, 40), 10, 5)
    half = boxes[level == 1]
    assert torch.allclose(
        half[:, 2] - half[:, 0], torch.tensor(20.0)
    )  # a 10 px window at scale 0.5 = 20 px
    assert boxes[:, 2].max() <= 80 + 1e-4 and boxes[:, 3].max() <= 60 + 1e-4
    first = torch.nonzero(level == 1).flatten()[3]
    x1, y1 = (boxes[first, :2] * 0.5).round().long().tolist()
    assert torch.allclose(patches[first], levels[1][:, y1 : y1 + 10, x1 : x1 + 10])
    with pytest.raises(ValueError, match="smaller"):
        pyramid_windows(image, 10, 5, [0.1])
