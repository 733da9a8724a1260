"""course_utils.metrics.segmentation: confusion counts by brute force, IoU scores by hand,
evaluate_segmenter on an oracle."""

import numpy as np
import pytest
import torch
from torch import nn
from torchvision import tv_tensors

from course_utils.metrics.segmentation import (
    confusion_matrix,
    evaluate_segmenter,
    segmentation_scores,
)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors: OpenMP threads only add waiting on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- confusion and scores


def test_confusion_matrix_matches_a_brute_force_count():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 5, size=(3, 17, 13))
    target[rng.random(target.shape) < 0.1] = 255
    pred = rng.integers(0, 5, size=target.shape)
    expected = np.zeros((5, 5), dtype=np.int64)
    for t, p in zip(target.ravel(), pred.ravel()):
        if t != 255:
            expected[t, p] += 1
    result = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target), 5)
    assert result.dtype == torch.int64 and torch.equal(result, torch.from_numpy(expected))


def test_segmentation_scores_by_hand_with_an_absent_class():
    # rows = target, columns = prediction; class 2 appears nowhere, class 3 is only predicted.
    confusion = torch.tensor([[2, 1, 0, 1], [0, 3, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    scores = segmentation_scores(confusion)
    iou = scores["iou"]
    assert iou[0] == pytest.approx(2 / (4 + 2 - 2)) and iou[1] == pytest.approx(3 / (3 + 4 - 3))
    assert torch.isnan(iou[2]) and iou[3] == 0.0
    assert scores["mIoU"] == pytest.approx((2 / 4 + 3 / 4 + 0) / 3)
    assert scores["pixel_accuracy"] == pytest.approx(5 / 7)
    assert scores["mean_accuracy"] == pytest.approx((2 / 4 + 3 / 3) / 2)


def test_ignored_pixels_do_not_count():
    target = torch.tensor([[0, 1, 255], [255, 1, 0]])
    pred = torch.tensor([[0, 1, 1], [0, 0, 0]])
    confusion = confusion_matrix(pred, target, 2)
    assert confusion.tolist() == [[2, 0], [1, 1]] and int(confusion.sum()) == 4


@pytest.mark.parametrize(
    "pred, target, error",
    [
        (torch.rand(2, 2), torch.zeros(2, 2, dtype=torch.int64), TypeError),  # logits, not ids
        (torch.zeros(2, 2, dtype=torch.int64), torch.zeros(2, 3, dtype=torch.int64), ValueError),
        (torch.zeros(2, 2, dtype=torch.int64), torch.full((2, 2), 7), ValueError),  # target > C
        (torch.full((2, 2), 255), torch.zeros(2, 2, dtype=torch.int64), ValueError),  # pred > C
        (torch.zeros(2, 2, dtype=torch.bool), torch.zeros(2, 2, dtype=torch.int64), TypeError),
        ([[0, 1]], torch.zeros(1, 2, dtype=torch.int64), TypeError),  # not a tensor
    ],
)
def test_confusion_matrix_rejects_bad_inputs(pred, target, error):
    with pytest.raises(error):
        confusion_matrix(pred, target, 3)


@pytest.mark.parametrize(
    "num_classes, error", [(0, ValueError), (3.0, TypeError), (True, TypeError)]
)
def test_confusion_matrix_checks_the_number_of_classes(num_classes, error):
    ids = torch.zeros(2, 2, dtype=torch.int64)
    with pytest.raises(error, match="num_classes"):
        confusion_matrix(ids, ids, num_classes)


def test_confusion_matrix_takes_tv_tensors_any_shape_and_another_ignore_index():
    target = tv_tensors.Mask(torch.tensor([[[0, 1], [9, 2]]]))  # (1, 2, 2), 9 ignored
    pred = torch.tensor([[[0, 2], [1, 2]]], dtype=torch.uint8)
    confusion = confusion_matrix(pred, target, 3, ignore_index=9)
    assert type(confusion) is torch.Tensor
    assert confusion.tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 1]]


def test_segmentation_scores_of_nothing_counted_are_nan():
    scores = segmentation_scores(torch.zeros(3, 3, dtype=torch.int64))
    assert torch.isnan(scores["iou"]).all()
    assert all(np.isnan(scores[name]) for name in ("mIoU", "pixel_accuracy", "mean_accuracy"))


def test_segmentation_scores_rejects_non_square_and_negative_counts():
    with pytest.raises(ValueError, match="square"):
        segmentation_scores(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="square"):
        segmentation_scores([[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="non-negative"):
        segmentation_scores(torch.tensor([[1, -1], [0, 1]]))


# --------------------------------------------------------------------------- evaluate_segmenter


class OracleSegmenter(nn.Module):
    """Reads the label map hidden in channel 0 and returns one-hot logits at half resolution."""

    def __init__(self, num_classes, constant=None):
        super().__init__()
        self.num_classes, self.constant, self.calls = num_classes, constant, []
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, images):
        self.calls.append((self.training, torch.is_grad_enabled()))
        labels = torch.round(images[:, 0, ::2, ::2] * 10).long()
        if self.constant is not None:
            labels = torch.full_like(labels, self.constant)
        return {"out": nn.functional.one_hot(labels, self.num_classes).permute(0, 3, 1, 2).float()}


def _segmentation_items(num_classes=5, count=5):
    generator = torch.Generator().manual_seed(0)
    items = []
    for _ in range(count):
        # the last class never appears
        coarse = torch.randint(0, num_classes - 1, (8, 8), generator=generator)
        mask = coarse.repeat_interleave(2, 0).repeat_interleave(2, 1)
        image = torch.rand(3, 16, 16, generator=generator)
        image[0] = mask / 10
        mask[:2, :2] = 255
        items.append((tv_tensors.Image(image), tv_tensors.Mask(mask)))
    return items


def test_evaluate_segmenter_upsamples_and_scores_an_oracle():
    items = _segmentation_items()
    model = OracleSegmenter(5)
    scores = evaluate_segmenter(model, items, num_classes=5, device="cpu", batch_size=2)
    assert model.calls == [(False, False)] * 3 and model.training
    assert scores["mIoU"] == pytest.approx(1.0) and scores["pixel_accuracy"] == pytest.approx(1.0)
    assert torch.isnan(scores["iou"][4]) and int(scores["confusion"].sum()) == 5 * (256 - 4)
    masks = torch.stack([mask for _, mask in items])
    expected = torch.zeros(5, 5, dtype=torch.int64)
    for label in range(5):
        expected[label, label] = int((masks == label).sum())
    assert torch.equal(scores["confusion"], expected)
    assert scores["mean_accuracy"] == pytest.approx(1.0)


def test_evaluate_segmenter_equals_the_confusion_of_all_pixels():
    items = _segmentation_items()
    scores = evaluate_segmenter(OracleSegmenter(5, constant=0), items, num_classes=5, device="cpu")
    targets = torch.stack([mask for _, mask in items])
    expected = torch.zeros(5, 5, dtype=torch.int64)
    for label in range(5):
        expected[label, 0] = int((targets == label).sum())
    assert torch.equal(scores["confusion"], expected)
    assert scores["pixel_accuracy"] == pytest.approx(float(expected[0, 0]) / float(expected.sum()))


def test_evaluate_segmenter_takes_plain_logits_and_masks_with_a_channel():
    class PlainLogits(OracleSegmenter):
        def forward(self, images):
            return super().forward(images)["out"]

    items = [(image, mask[None]) for image, mask in _segmentation_items()]  # masks (1, H, W)
    scores = evaluate_segmenter(PlainLogits(5), items, num_classes=5, device="cpu")
    assert scores["pixel_accuracy"] == pytest.approx(1.0)


def test_evaluate_segmenter_checks_the_number_of_classes():
    with pytest.raises(ValueError, match="num_classes"):
        evaluate_segmenter(OracleSegmenter(5), _segmentation_items(), num_classes=6, device="cpu")


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"num_classes": 0}, ValueError),
        ({"num_classes": 5.0}, TypeError),
        ({"batch_size": 0}, ValueError),
        ({"batch_size": 2.5}, TypeError),
    ],
)
def test_evaluate_segmenter_checks_its_settings_before_running_the_model(kwargs, error):
    model = OracleSegmenter(5)
    settings = {"num_classes": 5, "device": "cpu", **kwargs}
    with pytest.raises(error):
        evaluate_segmenter(model, _segmentation_items(), **settings)
    assert model.calls == []
    with pytest.raises(TypeError, match="nn.Module"):
        evaluate_segmenter(lambda images: images, _segmentation_items(), 5, device="cpu")
