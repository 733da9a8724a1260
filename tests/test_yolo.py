"""course_utils.detection.yolo: YOLO v1's target grid, loss, decoding and model."""

import itertools

import pytest
import torch
from torch import nn

from course_utils.detection.yolo import (
    LOSS_TERMS,
    YOLOHead,
    YOLOv1,
    cell_boxes,
    decode_predictions,
    encode_targets,
    responsible_predictor,
    yolo_backbone,
    yolo_loss,
)

# --------------------------------------------------------------------------- encode_targets


def test_encode_targets_writes_offsets_sizes_and_one_hot_in_the_centres_cell():
    boxes = torch.tensor([[10.0, 20.0, 50.0, 60.0], [60.0, 0.0, 100.0, 30.0]])
    target = encode_targets(boxes, torch.tensor([2, 3]), (100, 100), grid_size=4, num_classes=3)
    assert target.shape == (4, 4, 8) and target.dtype == torch.float32
    # centre (30, 40): 1.2 and 1.6 cells -> row 1, column 1, offsets (0.2, 0.6)
    torch.testing.assert_close(target[1, 1], torch.tensor([0.2, 0.6, 0.4, 0.4, 1, 0, 1, 0]))
    # centre (80, 15): 3.2 and 0.6 cells -> row 0, column 3
    torch.testing.assert_close(target[0, 3], torch.tensor([0.2, 0.6, 0.4, 0.3, 1, 0, 0, 1]))
    target[1, 1] = target[0, 3] = 0
    assert not target.any()
    default = encode_targets(boxes[:1] + 18, torch.tensor([1]), (96, 96))  # 7x7, 3 classes
    assert default.shape == (7, 7, 8) and int(default[..., 4].sum()) == 1
    # centre (48, 58) -> 3.5 and 4 + 11/48 cells
    torch.testing.assert_close(
        default[4, 3], torch.tensor([0.5, 11 / 48, 5 / 12, 5 / 12, 1, 1, 0, 0])
    )


def test_encode_targets_rows_follow_height_and_columns_width():
    # H = 60, W = 120, S = 3: centre (90, 20) -> column 2.25 (from W), row 1.0 (from H)
    boxes = torch.tensor([[80.0, 10.0, 100.0, 30.0]])
    target = encode_targets(boxes, torch.tensor([1]), (60, 120), grid_size=3, num_classes=1)
    assert target[..., 4].nonzero().tolist() == [[1, 2]]
    torch.testing.assert_close(target[1, 2], torch.tensor([0.25, 0.0, 1 / 6, 1 / 3, 1, 1]))


def test_encode_targets_keeps_a_centre_on_the_right_or_bottom_edge_in_the_last_cell():
    boxes = torch.tensor([[118.0, 118.0, 138.0, 138.0], [54.0, 0.0, 74.0, 10.0]])
    target = encode_targets(boxes, torch.tensor([1, 2]), (128, 128), grid_size=4, num_classes=2)
    torch.testing.assert_close(target[3, 3, :5], torch.tensor([1.0, 1.0, 20 / 128, 20 / 128, 1]))
    # a centre on an inner cell boundary (x = 64 = 2 cells) starts the next cell, offset 0
    torch.testing.assert_close(target[0, 2, :2], torch.tensor([0.0, 5 / 32]))


def test_encode_targets_keeps_the_first_box_of_a_shared_cell():
    boxes = torch.tensor([[0.0, 0.0, 20.0, 20.0], [2.0, 2.0, 12.0, 30.0]])  # both in cell (0, 0)
    target = encode_targets(boxes, torch.tensor([2, 1]), (100, 100), grid_size=2, num_classes=2)
    torch.testing.assert_close(target[0, 0], torch.tensor([0.2, 0.2, 0.2, 0.2, 1, 0, 1]))
    assert int(target[..., 4].sum()) == 1


def test_encode_targets_of_no_boxes_is_all_zeros():
    empty = encode_targets(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), (64, 32), 5, 2)
    assert empty.shape == (5, 5, 7) and not empty.any()


@pytest.mark.parametrize(
    "boxes, labels, error, message",
    [
        ([[0.0, 0.0, 9.0, 9.0]], [0], ValueError, r"labels must lie in 1\.\.3"),
        ([[0.0, 0.0, 9.0, 9.0]], [4], ValueError, r"labels must lie in 1\.\.3"),
        ([[0.0, 0.0, 9.0, 9.0]], [1, 2], ValueError, "one entry per box"),
        ([[9.0, 0.0, 0.0, 9.0]], [1], ValueError, "x2 < x1"),
        ([[0.0, 0.0, 9.0]], [1], ValueError, r"shape \(N, 4\)"),
        ([[0, 0, 9, 9]], [1], TypeError, "float tensor"),
        ([[0.0, 0.0, 9.0, 9.0]], [1.0], TypeError, "integer tensor"),
    ],
)
def test_encode_targets_rejects_bad_boxes_and_labels(boxes, labels, error, message):
    with pytest.raises(error, match=message):
        encode_targets(torch.tensor(boxes), torch.tensor(labels), (64, 64), num_classes=3)


# --------------------------------------------------------------------------- cell_boxes


@pytest.mark.parametrize("image_size, grid_size", [((100, 100), 4), ((60, 150), 7), ((90, 40), 3)])
def test_cell_boxes_decode_encoded_targets_back_to_the_boxes(image_size, grid_size):
    height, width = image_size
    torch.manual_seed(grid_size)
    cells = torch.randperm(grid_size * grid_size)[:5]  # distinct cells: no box is lost
    rows, columns = cells // grid_size, cells % grid_size
    offsets, sizes = torch.rand(5, 2), torch.rand(5, 2) * 0.5 + 0.05  # sizes relative to image
    scale = torch.tensor([width, height])
    centres, half = (
        (torch.stack([columns, rows], 1) + offsets) / grid_size * scale,
        sizes * scale / 2,
    )
    boxes = torch.cat([centres - half, centres + half], dim=1)
    target = encode_targets(boxes, torch.ones(5, dtype=torch.int64), image_size, grid_size, 1)
    assert target[..., 4].sum() == 5 and target[rows, columns, 4].all()
    decoded = cell_boxes(target[..., :4]) * torch.tensor([width, height, width, height])
    assert decoded.shape == (grid_size, grid_size, 4)
    torch.testing.assert_close(decoded[rows, columns], boxes, atol=1e-3, rtol=0)
    torch.testing.assert_close(target[rows, columns, :2], offsets, atol=1e-5, rtol=0)


def test_cell_boxes_adds_the_column_to_x_and_the_row_to_y():
    xywh = torch.zeros(1, 2, 2, 4)
    xywh[0, 0, 1] = torch.tensor([0.5, 0.5, 0.2, 0.4])  # row 0, column 1: centre (0.75, 0.25)
    xyxy = cell_boxes(xywh)
    assert xyxy.shape == (1, 2, 2, 4)
    torch.testing.assert_close(xyxy[0, 0, 1], torch.tensor([0.65, 0.05, 0.85, 0.45]))
    torch.testing.assert_close(xyxy[0, 1, 0], torch.tensor([0.0, 0.5, 0.0, 0.5]))


# --------------------------------------------------------------------------- the loss

IOU_0 = 36 / 49  # IoU of the 2x2 example's predictor 0 with its object (see two_by_two)


def two_by_two() -> tuple[torch.Tensor, torch.Tensor]:
    """S = 2, B = 2, C = 2 in a 100x100 image, one object (class 1) of 36x36 pixels centred at
    (30, 40): cell (0, 0), offsets (0.6, 0.8). Predictor 0 is shifted left by 0.1 cell and is
    0.49 wide (IoU 36/49); predictor 1 has the right centre but is 0.09 wide (IoU 0.0625)."""
    box = torch.tensor([[12.0, 22.0, 48.0, 58.0]])
    targets = encode_targets(box, torch.tensor([1]), (100, 100), grid_size=2, num_classes=2)
    output = torch.zeros(1, 2, 2, 12)
    output[0, :, :, :10] = 0.3  # coordinates elsewhere: no term may use them
    output[0, :, :, 10:] = 0.5  # class scores of empty cells: idem
    output[0, 0, 0] = torch.tensor([0.5, 0.8, 0.7, 0.6, 0.9, 0.6, 0.8, 0.3, 0.3, 0.4, 0.7, 0.2])
    output[0, 0, 1, 4::5] = torch.tensor([0.2, 0.0])
    output[0, 1, 0, 4::5] = torch.tensor([0.0, 0.0])
    output[0, 1, 1, 4::5] = torch.tensor([0.1, 0.3])
    return output, targets[None]


def test_yolo_loss_terms_of_the_2x2_example_by_hand():
    output, targets = two_by_two()
    losses = yolo_loss(output, targets)
    assert tuple(losses) == LOSS_TERMS
    expected = {
        "coord_xy": 5 * 0.1**2,  # x 0.5 vs 0.6
        "coord_wh": 5 * 0.1**2,  # √w 0.7 vs 0.6
        "obj": (0.9 - IOU_0) ** 2,
        "noobj": 0.5 * (0.4**2 + 0.2**2 + 0.1**2 + 0.3**2),  # predictor 1 of cell (0, 0) too
        "class": 0.3**2 + 0.2**2,  # only cell (0, 0)
    }
    for name, value in expected.items():
        assert losses[name].ndim == 0
        torch.testing.assert_close(losses[name], torch.tensor(value), msg=name)


def test_yolo_loss_of_a_perfect_prediction_is_zero():
    boxes = torch.tensor([[10.0, 10.0, 40.0, 70.0], [70.0, 50.0, 90.0, 60.0]])
    targets = encode_targets(boxes, torch.tensor([2, 1]), (90, 90), grid_size=3, num_classes=2)
    output = torch.zeros(3, 3, 12)
    x, y, w, h = targets[..., :4].unbind(-1)
    output[..., 5:10] = torch.stack([x, y, w.sqrt(), h.sqrt(), targets[..., 4]], dim=-1)
    output[..., 0:4] = torch.tensor([0.5, 0.5, 0.1, 0.1])  # predictor 0: worse, confidence 0
    output[..., 10:] = targets[..., 5:]
    losses = yolo_loss(output[None], targets[None])
    for name in LOSS_TERMS:
        torch.testing.assert_close(losses[name], torch.tensor(0.0), atol=1e-6, rtol=0, msg=name)


def test_yolo_loss_lambdas_scale_only_their_terms():
    output, targets = two_by_two()
    default = yolo_loss(output, targets)
    scaled = yolo_loss(output, targets, lambda_coord=1.0, lambda_noobj=2.0)
    factors = {"coord_xy": 1 / 5, "coord_wh": 1 / 5, "obj": 1, "noobj": 4, "class": 1}
    for name, factor in factors.items():
        torch.testing.assert_close(scaled[name], default[name] * factor, msg=name)


def test_yolo_loss_is_divided_by_the_batch_size():
    output, targets = two_by_two()
    one = yolo_loss(output, targets)
    twice = yolo_loss(output.repeat(2, 1, 1, 1), targets.repeat(2, 1, 1, 1))
    torch.manual_seed(0)
    other = torch.rand(1, 2, 2, 12)
    mixed = yolo_loss(torch.cat([output, other]), torch.cat([targets, targets]))
    alone = yolo_loss(other, targets)
    for name in LOSS_TERMS:
        torch.testing.assert_close(twice[name], one[name], msg=name)
        torch.testing.assert_close(mixed[name], (one[name] + alone[name]) / 2, msg=name)


def test_yolo_loss_is_finite_for_negative_square_roots():
    output, targets = two_by_two()
    output[0, 0, 0, 2:4] = torch.tensor([-0.5, -0.6])  # squared: the same box height
    output.requires_grad_()
    losses = yolo_loss(output, targets)
    torch.testing.assert_close(losses["coord_wh"], torch.tensor(5 * (1.1**2 + 1.2**2)))
    sum(losses.values()).backward()
    assert all(torch.isfinite(value) for value in losses.values())
    assert torch.isfinite(output.grad).all() and output.grad[0, 0, 0, 2:4].abs().min() > 0


def expected_slots(targets: torch.Tensor, index: torch.Tensor, boxes: int = 2) -> dict:
    """For each loss term, the bool mask (N, S, S, B*5 + C) of the output slots it uses."""
    shape = (*targets.shape[:3], 5 * boxes + targets.shape[-1] - 5)
    masks = {name: torch.zeros(shape, dtype=torch.bool) for name in LOSS_TERMS}
    for n, i, j in itertools.product(*(range(s) for s in shape[:3])):
        has_object = bool(targets[n, i, j, 4] == 1)
        for b in range(boxes):
            if has_object and int(index[n, i, j]) == b:
                masks["coord_xy"][n, i, j, 5 * b : 5 * b + 2] = True
                masks["coord_wh"][n, i, j, 5 * b + 2 : 5 * b + 4] = True
                masks["obj"][n, i, j, 5 * b + 4] = True
            else:
                masks["noobj"][n, i, j, 5 * b + 4] = True
        masks["class"][n, i, j, 5 * boxes :] = has_object
    return masks


def test_yolo_loss_gradients_reach_exactly_the_slots_each_term_uses():
    torch.manual_seed(1)
    boxes = torch.tensor([[0.0, 0.0, 50.0, 40.0], [60.0, 55.0, 90.0, 90.0]])
    targets = encode_targets(boxes, torch.tensor([1, 2]), (90, 90), grid_size=3, num_classes=2)
    targets = torch.stack([targets, targets.flip(0)])
    output = torch.rand(2, 3, 3, 12)
    index, _ = responsible_predictor(output, targets)
    assert index[targets[..., 4] == 1].unique().numel() == 2  # both predictors get a turn
    masks = expected_slots(targets, index)
    for name in LOSS_TERMS:
        leaf = output.clone().requires_grad_()
        yolo_loss(leaf, targets)[name].backward()
        assert torch.equal(leaf.grad != 0, masks[name]), name
    leaf = output.clone().requires_grad_()
    sum(yolo_loss(leaf, targets).values()).backward()
    used = torch.stack(list(masks.values())).any(0)
    assert torch.equal(leaf.grad != 0, used)
    assert not used[..., 0:4].all()  # the non-responsible predictors' coordinates are unused


def test_responsible_predictor_takes_the_higher_iou_without_gradient():
    output, targets = two_by_two()
    output.requires_grad_()
    index, iou = responsible_predictor(output, targets)
    assert index.shape == iou.shape == (1, 2, 2) and index.dtype == torch.int64
    assert int(index[0, 0, 0]) == 0
    torch.testing.assert_close(iou[0, 0, 0], torch.tensor(IOU_0))
    assert not index.requires_grad and not iou.requires_grad
    swapped = torch.cat([output[..., 5:10], output[..., 0:5], output[..., 10:]], dim=-1)
    index, iou = responsible_predictor(swapped.detach(), targets)
    assert int(index[0, 0, 0]) == 1
    torch.testing.assert_close(iou[0, 0, 0], torch.tensor(IOU_0))
    tied = output.detach().clone()
    tied[0, 0, 0, 5:9] = tied[0, 0, 0, 0:4]  # the same box twice
    tied[0, 1, 1, :10] = 0.0  # empty cell: both IoUs are 0
    assert responsible_predictor(tied, targets)[0].tolist() == [[[0, 0], [0, 0]]]  # ties: 0


@pytest.mark.parametrize(
    "output_shape, target_shape, message",
    [
        ((2, 2, 12), (2, 2, 7), "must share"),
        ((1, 3, 3, 12), (1, 2, 2, 7), "must share"),
        ((2, 2, 2, 12), (1, 2, 2, 7), "must share"),
        ((1, 2, 2, 11), (1, 2, 2, 7), "11 numbers per cell, expected B\\*5 \\+ C = 12"),
    ],
)
def test_yolo_loss_rejects_mismatched_shapes(output_shape, target_shape, message):
    with pytest.raises(ValueError, match=message):
        yolo_loss(torch.zeros(output_shape), torch.zeros(target_shape))


# --------------------------------------------------------------------------- decoding


def one_cell_output(cell, values, grid_size: int = 2) -> torch.Tensor:
    """An S x S x 12 output (B = 2, C = 2), zero except ``values`` in ``cell``."""
    output = torch.zeros(grid_size, grid_size, 12)
    output[cell] = torch.tensor(values)
    return output


def test_decode_predictions_scores_each_class_in_pixels():
    # cell (1, 0) of a 2x2 grid over H = 100, W = 200: centre (50, 75), 0.25 x 0.36 of the image
    output = one_cell_output((1, 0), [0.5, 0.5, 0.5, 0.6, 0.8] + [0.0] * 5 + [0.25, 0.75])
    found = decode_predictions(output, (100, 200))
    torch.testing.assert_close(found["boxes"], torch.tensor([[25.0, 57.0, 75.0, 93.0]] * 2))
    torch.testing.assert_close(found["scores"], torch.tensor([0.6, 0.2]))  # confidence x class
    assert found["labels"].tolist() == [2, 1] and found["labels"].dtype == torch.int64
    kept = decode_predictions(output, (100, 200), score_threshold=0.5)
    assert kept["labels"].tolist() == [2]


def test_decode_predictions_suppresses_overlaps_within_a_class_only():
    box_pair = [0.5, 0.5, 0.5, 0.5, 0.9, 0.55, 0.5, 0.5, 0.5, 0.5]  # IoU 0.82
    one_class = decode_predictions(one_cell_output((0, 1), box_pair + [1.0, 0.0]), (100, 100))
    assert one_class["labels"].tolist() == [1]
    torch.testing.assert_close(one_class["scores"], torch.tensor([0.9]))
    torch.testing.assert_close(one_class["boxes"], torch.tensor([[62.5, 12.5, 87.5, 37.5]]))
    both = decode_predictions(one_cell_output((0, 1), box_pair + [0.5, 0.5]), (100, 100))
    assert sorted(both["labels"].tolist()) == [1, 2]
    torch.testing.assert_close(both["scores"], torch.tensor([0.45, 0.45]))
    loose = decode_predictions(
        one_cell_output((0, 1), box_pair + [0.5, 0.5]), (100, 100), nms_threshold=0.9
    )
    torch.testing.assert_close(loose["scores"], torch.tensor([0.45, 0.45, 0.25, 0.25]))


def test_decode_predictions_clips_boxes_to_the_image():
    output = one_cell_output((0, 0), [0.0, 0.0, 0.5, 0.5, 1.0] + [0.0] * 5 + [1.0, 0.0])
    output[1, 1] = torch.tensor([0.0] * 5 + [1.0, 1.0, 0.5, 0.5, 0.7] + [1.0, 0.0])  # predictor 1
    found = decode_predictions(output, (100, 200))
    expected = torch.tensor([[0.0, 0.0, 25.0, 12.5], [175.0, 87.5, 200.0, 100.0]])
    torch.testing.assert_close(found["boxes"], expected)
    torch.testing.assert_close(found["scores"], torch.tensor([1.0, 0.7]))


def test_decode_predictions_of_a_perfect_output_gives_the_ground_truth():
    boxes = torch.tensor([[10.0, 5.0, 40.0, 50.0], [90.0, 30.0, 150.0, 58.0]])
    targets = encode_targets(boxes, torch.tensor([3, 1]), (60, 160), grid_size=4, num_classes=3)
    output = torch.zeros(4, 4, 13)
    x, y, w, h, confidence = targets[..., :5].unbind(-1)
    output[..., :5] = torch.stack([x, y, w.sqrt(), h.sqrt(), confidence], dim=-1)
    output[..., 10:] = targets[..., 5:]
    found = decode_predictions(output, (60, 160))
    order = found["labels"].argsort(descending=True)
    torch.testing.assert_close(found["boxes"][order], boxes, atol=1e-4, rtol=0)
    assert found["labels"][order].tolist() == [3, 1]


def test_decode_predictions_with_nothing_above_the_threshold_is_empty():
    found = decode_predictions(torch.zeros(3, 3, 12), (64, 64))
    shapes = {key: (tuple(value.shape), value.dtype) for key, value in found.items()}
    expected = {"boxes": ((0, 4), torch.float32), "scores": ((0,), torch.float32)}
    assert shapes == {**expected, "labels": ((0,), torch.int64)}


@pytest.mark.parametrize(
    "shape, kwargs, message",
    [
        ((1, 2, 2, 12), {}, "one image's"),
        ((2, 3, 12), {}, "one image's"),
        ((2, 2, 12), {"score_threshold": 1.5}, "score_threshold"),
        ((2, 2, 12), {"nms_threshold": -0.1}, "nms_threshold"),
    ],
)
def test_decode_predictions_rejects_bad_arguments(shape, kwargs, message):
    with pytest.raises(ValueError, match=message):
        decode_predictions(torch.zeros(shape), (64, 64), **kwargs)


# --------------------------------------------------------------------------- the model


def test_yolo_backbone_and_head_shapes():
    backbone = yolo_backbone()
    assert backbone(torch.rand(2, 3, 128, 128)).shape == (2, 256, 4, 4)
    convs = [m for m in backbone if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 64, 128, 256]
    slopes = [m.negative_slope for m in backbone if isinstance(m, nn.LeakyReLU)]
    assert slopes == [0.1] * 5
    assert yolo_backbone(width=4, blocks=3)(torch.rand(1, 3, 32, 48)).shape == (1, 16, 4, 6)
    assert YOLOHead(256 * 4 * 4, hidden=32)(torch.rand(2, 256, 4, 4)).shape == (2, 7, 7, 13)
    model = YOLOv1(yolo_backbone(), YOLOHead(256 * 4 * 4, 4, 3, 2, hidden=32))
    assert model.boxes_per_cell == 3  # read from the head
    assert model(torch.rand(2, 3, 128, 128)).shape == (2, 4, 4, 17)


def test_yolo_head_uses_leaky_relu_and_dropout_in_train_mode_only():
    # a 2x2 head (B = 1, C = 1: 24 outputs) whose hidden layer is its fc1 bias, fc2 the identity
    head = YOLOHead(4, grid_size=2, boxes_per_cell=1, num_classes=1, hidden=24, dropout=0.5)
    with torch.no_grad():
        head.fc1.weight.zero_(), head.fc2.bias.zero_()
        head.fc1.bias.copy_(torch.tensor([-1.0, 2.0] * 12))
        head.fc2.weight.copy_(torch.eye(24))
    head.eval()
    expected = torch.tensor([-0.1, 2.0] * 12).view(1, 2, 2, 6)
    torch.testing.assert_close(head(torch.rand(1, 4)), expected)
    head.train()
    torch.manual_seed(0)
    dropped = head(torch.rand(1, 4))
    zero = dropped == 0
    assert zero.any() and not zero.all()
    torch.testing.assert_close(dropped[~zero], 2 * expected[~zero])  # kept units scaled by 1/(1-p)


def small_model() -> YOLOv1:
    """32x32 images -> (N, 2, 2, 12): backbone 16 x 4 x 4, B = 2, C = 2."""
    torch.manual_seed(0)
    head = YOLOHead(16 * 4 * 4, grid_size=2, boxes_per_cell=2, num_classes=2, hidden=16)
    return YOLOv1(yolo_backbone(width=4, blocks=3), head)


def test_detect_decodes_the_eval_output_and_restores_train_mode():
    model = small_model().train()
    images = torch.rand(2, 3, 32, 32)
    running_mean = model.backbone[1].running_mean.clone()
    found = model.detect(images, score_threshold=0.0)
    assert model.training and torch.equal(model.backbone[1].running_mean, running_mean)
    outputs = model.eval()(images)
    assert len(found) == 2 and sum(len(f["boxes"]) for f in found) > 0
    for detections, output in zip(found, outputs, strict=True):
        expected = decode_predictions(output, (32, 32), 2, score_threshold=0.0)
        assert detections.keys() == expected.keys()
        for key in expected:
            torch.testing.assert_close(detections[key], expected[key])
            assert not detections[key].requires_grad
    as_list = model.detect(list(images), score_threshold=0.0)
    assert not model.training  # an eval model stays in eval mode
    for a, b in zip(as_list, found, strict=True):
        torch.testing.assert_close(a["scores"], b["scores"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_detect_returns_tensors_on_the_images_device():
    model = small_model().eval()
    images = torch.rand(2, 3, 32, 32)
    expected = model.detect(images, score_threshold=0.0)
    found = model.cuda().detect(images, score_threshold=0.0)
    for a, b in zip(found, expected, strict=True):
        assert all(value.device.type == "cpu" for value in a.values())
        torch.testing.assert_close(a["scores"], b["scores"], atol=1e-4, rtol=1e-4)
