"""course_utils.metrics.detection: COCO AP equals pycocotools and hand-computed values;
evaluate_detector runs a detector in eval mode and scores it."""

import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import nn
from torchvision import tv_tensors

from course_utils.metrics.detection import COCO_METRICS, detection_ap, evaluate_detector

SIZE = 128


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors: OpenMP threads only add waiting on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- helpers


def _target(boxes, labels, masks=None, size=SIZE):
    target = {
        "boxes": tv_tensors.BoundingBoxes(
            torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            format="XYXY",
            canvas_size=(size, size),
        ),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }
    if masks is not None:
        target["masks"] = tv_tensors.Mask(masks.to(torch.uint8))
    return target


def _prediction(boxes, scores, labels, masks=None):
    prediction = {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "scores": torch.tensor(scores, dtype=torch.float32),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }
    if masks is not None:
        prediction["masks"] = masks
    return prediction


def _box_masks(boxes, size=SIZE):
    """Filled rectangles (N, H, W) bool for integer boxes."""
    masks = torch.zeros(len(boxes), size, size, dtype=torch.bool)
    for index, (x1, y1, x2, y2) in enumerate(boxes):
        masks[index, int(y1) : int(y2), int(x1) : int(x2)] = True
    return masks


def _interpolated_ap(hits_by_score, num_gt):
    """COCO's 101-point interpolated AP from its definition, for one class and one IoU threshold.

    ``hits_by_score``: True/False (true/false positive) for the detections in decreasing score.
    """
    hits = np.asarray(hits_by_score, dtype=bool)
    true_positives, false_positives = np.cumsum(hits), np.cumsum(~hits)
    recall = true_positives / num_gt
    precision = true_positives / (true_positives + false_positives)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at recall >= r
    values = []
    for threshold in np.linspace(0, 1, 101):
        reached = np.nonzero(recall >= threshold)[0]
        values.append(envelope[reached[0]] if reached.size else 0.0)
    return float(np.mean(values))


# --------------------------------------------------------------------------- known answers


def test_perfect_predictions_score_one_in_every_size_range():
    boxes = [
        [[4, 4, 20, 20], [30, 30, 70, 70]],  # small (16x16), medium (40x40)
        [[0, 0, 110, 110]],  # large
        [[10, 60, 30, 90], [50, 5, 120, 50], [80, 80, 100, 126]],
    ]
    labels = [[1, 2], [3], [1, 1, 2]]
    targets = [_target(b, k, _box_masks(b)) for b, k in zip(boxes, labels)]
    predictions = [
        _prediction(b, [0.9] * len(b), k, _box_masks(b).float()[:, None])
        for b, k in zip(boxes, labels)
    ]
    for iou_type in ("bbox", "segm"):
        scores = detection_ap(predictions, targets, iou_type)
        assert set(scores) == set(COCO_METRICS)
        for name in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"):
            assert scores[name] == pytest.approx(1.0), (iou_type, name)


@pytest.mark.parametrize(
    "scores, hits, num_gt",
    [
        ([0.9, 0.8], [False, True], 1),  # a false positive ranked above the true one
        ([0.8, 0.9], [False, True], 1),  # ... and below it
        ([0.9, 0.8, 0.7], [True, False, True], 2),  # TP, FP, TP: the envelope steps at recall 0.5
        ([0.9, 0.8, 0.7], [False, False, True], 3),
    ],
)
def test_ap_matches_the_101_point_interpolation_by_hand(scores, hits, num_gt):
    gt_boxes = [[10 + 40 * k, 10, 40 + 40 * k, 40] for k in range(num_gt)]
    boxes, gt_iter = [], iter(gt_boxes)
    for hit in hits:  # a hit sits exactly on an unused ground-truth box; a miss far away from all
        boxes.append(next(gt_iter) if hit else [60, 90, 80, 110])
    order = np.argsort(scores)[::-1]
    expected = _interpolated_ap([hits[index] for index in order], num_gt)
    result = detection_ap(
        [_prediction(boxes, scores, [1] * len(boxes))], [_target(gt_boxes, [1] * num_gt)]
    )
    assert result["AP"] == pytest.approx(expected) and result["AP50"] == pytest.approx(expected)


def test_ap_averages_over_iou_thresholds():
    # Box IoU 0.72: a true positive at IoU 0.50, 0.55, 0.60, 0.65, 0.70,
    # a false positive at 0.75 .. 0.95.
    result = detection_ap(
        [_prediction([[0, 0, 100, 72]], [0.5], [1])], [_target([[0, 0, 100, 100]], [1])]
    )
    assert result["AP50"] == pytest.approx(1.0) and result["AP75"] == 0.0
    assert result["AP"] == pytest.approx(0.5) and result["AR100"] == pytest.approx(0.5)


def test_a_detection_on_an_image_without_objects_is_a_false_positive():
    targets = [_target([[10, 10, 50, 50]], [1]), _target([], [])]
    predictions = [
        _prediction([[10, 10, 50, 50]], [0.8], [1]),
        _prediction([[5, 5, 40, 40]], [0.9], [1]),
    ]
    assert detection_ap(predictions, targets)["AP"] == pytest.approx(
        _interpolated_ap([False, True], 1)
    )


def test_wrong_class_does_not_count():
    result = detection_ap(
        [_prediction([[10, 10, 50, 50]], [0.9], [2])], [_target([[10, 10, 50, 50]], [1])]
    )
    assert result["AP"] == 0.0


def test_segm_uses_mask_overlap_not_box_overlap():
    box = [20, 20, 60, 60]
    ring = _box_masks([box])
    ring[0, 24:56, 24:56] = False  # a 4-pixel frame: mask IoU with the square is 576 / 1600
    targets = [_target([box], [1], ring)]
    predictions = [_prediction([box], [0.9], [1], _box_masks([box]).float())]
    assert detection_ap(predictions, targets, "bbox")["AP"] == pytest.approx(1.0)
    assert detection_ap(predictions, targets, "segm")["AP"] == 0.0


def test_mask_probabilities_are_thresholded_at_one_half():
    box = [20, 20, 60, 60]
    inside = _box_masks([box])
    probabilities = torch.where(inside, 0.6, 0.4)[:, None]  # (N, 1, H, W) like Mask R-CNN
    result = detection_ap(
        [_prediction([box], [0.9], [1], probabilities)], [_target([box], [1], inside)], "segm"
    )
    assert result["AP"] == pytest.approx(1.0)


def test_empty_predictions_and_empty_targets():
    targets = [_target([[10, 10, 50, 50]], [1]), _target([], [])]
    empty = [_prediction([], [], []), _prediction([], [], [])]
    result = detection_ap(empty, targets)
    assert result["AP"] == 0.0 and result["AR100"] == 0.0
    assert result["APs"] == -1.0  # no small object in the ground truth: COCO's -1
    nothing = detection_ap(empty, [_target([], []), _target([], [])])
    assert all(value == -1.0 for value in nothing.values())


# --------------------------------------------------------------------------- equal to pycocotools


def _random_case(seed, with_masks):
    rng = np.random.default_rng(seed)
    targets, predictions = [], []
    for image in range(6):
        count = 0 if image == 2 else int(rng.integers(1, 5))
        sizes = rng.integers(8, 100, size=(count, 2))
        corners = (
            rng.integers(0, SIZE - sizes + 1, size=(count, 2)) if count else np.zeros((0, 2), int)
        )
        gt = np.concatenate([corners, corners + sizes], axis=1).astype(float)
        labels = rng.integers(1, 4, size=count)
        keep = rng.random(count) < 0.8
        jitter = rng.normal(0, 3, size=(count, 4))
        found = np.clip(np.round(gt + jitter), 0, SIZE)[keep]
        found[:, 2:] = np.maximum(found[:, 2:], found[:, :2] + 2)
        extra = int(rng.integers(0, 3))
        false_corners = rng.integers(0, 80, size=(extra, 2))
        false = np.concatenate(
            [false_corners, false_corners + rng.integers(5, 48, size=(extra, 2))], axis=1
        )
        boxes = np.concatenate([found, false]).astype(float)
        pred_labels = np.concatenate([labels[keep], rng.integers(1, 4, size=extra)])
        scores = rng.random(len(boxes))
        gt_masks = _box_masks(gt.tolist()) if with_masks else None
        if gt_masks is not None and count:
            gt_masks[:, ::3, ::2] = False  # not a rectangle: areas differ from box areas
        pred_masks = (
            torch.where(_box_masks(boxes.tolist()), 0.9, 0.2)[:, None] if with_masks else None
        )
        targets.append(_target(gt.tolist(), labels.tolist(), gt_masks))
        predictions.append(
            _prediction(boxes.tolist(), scores.tolist(), pred_labels.tolist(), pred_masks)
        )
    return predictions, targets


def _pycocotools_directly(predictions, targets, iou_type, folder):
    """Build COCO json by hand, load it from a file, evaluate: the way the COCO benchmark does."""
    images, annotations, results = [], [], []
    for image_id, (prediction, target) in enumerate(zip(predictions, targets), start=100):
        images.append(
            {"id": image_id, "width": SIZE, "height": SIZE, "file_name": f"{image_id}.png"}
        )
        masks = target.get("masks")
        for k, (box, label) in enumerate(zip(target["boxes"].tolist(), target["labels"].tolist())):
            x1, y1, x2, y2 = box
            annotation = {
                "id": 1000 + len(annotations),
                "image_id": image_id,
                "category_id": label,
                "iscrowd": 0,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": (x2 - x1) * (y2 - y1),
            }
            if masks is not None:
                rle = mask_utils.encode(np.asfortranarray(masks[k].numpy().astype(np.uint8)))
                annotation["area"] = float(mask_utils.area(rle))
                annotation["segmentation"] = {
                    "size": rle["size"],
                    "counts": rle["counts"].decode("ascii"),
                }
            annotations.append(annotation)
        for k, (box, score, label) in enumerate(
            zip(
                prediction["boxes"].tolist(),
                prediction["scores"].tolist(),
                prediction["labels"].tolist(),
            )
        ):
            result = {"image_id": image_id, "category_id": label, "score": score}
            if iou_type == "bbox":
                x1, y1, x2, y2 = box
                result["bbox"] = [x1, y1, x2 - x1, y2 - y1]
            else:
                binary = (prediction["masks"][k, 0] > 0.5).numpy().astype(np.uint8)
                rle = mask_utils.encode(np.asfortranarray(binary))
                result["segmentation"] = {
                    "size": rle["size"],
                    "counts": rle["counts"].decode("ascii"),
                }
            results.append(result)
    path = folder / "instances.json"
    path.write_text(
        json.dumps(
            {
                "images": images,
                "annotations": annotations,
                "categories": [{"id": k, "name": f"class {k}"} for k in (1, 2, 3)],
            }
        )
    )
    ground_truth = COCO(str(path))
    evaluation = COCOeval(ground_truth, ground_truth.loadRes(results), iou_type)
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return evaluation.stats


@pytest.mark.parametrize(
    "iou_type, with_masks, seed", [("bbox", False, 0), ("bbox", True, 1), ("segm", True, 2)]
)
def test_equal_to_pycocotools_run_directly(tmp_path, iou_type, with_masks, seed):
    predictions, targets = _random_case(seed, with_masks)
    expected = _pycocotools_directly(predictions, targets, iou_type, tmp_path)
    result = detection_ap(predictions, targets, iou_type)
    assert [result[name] for name in COCO_METRICS] == pytest.approx(list(expected), abs=1e-12)
    assert 0.2 < result["AP50"] < 1.0  # a case with both hits and misses


def test_detection_ap_prints_nothing(capsys):
    detection_ap([_prediction([[0, 0, 10, 10]], [0.5], [1])], [_target([[0, 0, 10, 10]], [1])])
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------- input checks


def _one(**prediction_changes):
    prediction = {**_prediction([[10, 10, 50, 50]], [0.9], [1]), **prediction_changes}
    return [prediction], [_target([[10, 10, 50, 50]], [1])]


@pytest.mark.parametrize(
    "predictions, targets, iou_type, error",
    [
        (*_one(), "mask", ValueError),
        ([], [_target([], [])], "bbox", ValueError),  # lengths differ
        (*_one(boxes=torch.tensor([[0.1, 0.1, 0.4, 0.4]])), "bbox", ValueError),  # normalized
        (*_one(boxes=torch.tensor([[10.0, 10, 40, 5]])), "bbox", ValueError),  # xywh-like
        (*_one(scores=torch.tensor([1])), "bbox", ValueError),  # int scores
        (*_one(scores=torch.tensor([0.5, 0.6])), "bbox", ValueError),  # one per box
        (
            [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}],
            [_target([], [])],
            "bbox",
            ValueError,
        ),  # no scores
        (*_one(), "segm", ValueError),  # no masks
        (
            [_prediction([], [], [])],
            [{"labels": torch.zeros(0, dtype=torch.int64)}],
            "bbox",
            ValueError,
        ),
        (_prediction([], [], []), [_target([], [])], "bbox", TypeError),  # not a list
        (*_one(boxes=[[10.0, 10, 50, 50]]), "bbox", TypeError),  # boxes not a tensor
        (*_one(labels=torch.tensor([1.0])), "bbox", TypeError),  # float labels
    ],
)
def test_detection_ap_rejects_bad_inputs(predictions, targets, iou_type, error):
    with pytest.raises(error):
        detection_ap(predictions, targets, iou_type)


def test_the_bad_inputs_differ_from_a_valid_case_only_by_their_change():
    assert detection_ap(*_one())["AP"] == pytest.approx(1.0)


def test_detection_ap_takes_tensors_that_need_gradients():
    prediction = _prediction([[10, 10, 50, 50]], [0.9], [1])
    prediction["boxes"].requires_grad_(True)
    prediction["scores"].requires_grad_(True)
    result = detection_ap([prediction], [_target([[10, 10, 50, 50]], [1])])
    assert result["AP"] == pytest.approx(1.0)


# --------------------------------------------------------------------------- evaluate_detector


class OracleDetector(nn.Module):
    """Returns each image's ground truth (score 0.9) plus a low-scoring false positive."""

    def __init__(self, items):
        super().__init__()
        self.items, self.calls = items, []
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, images):
        self.calls.append((self.training, torch.is_grad_enabled(), len(images)))
        outputs = []
        for image in images:
            target = self.items[round(float(image[0, 0, 0]) * 100)][1]
            count = len(target["labels"])
            outputs.append(
                {
                    "boxes": torch.cat(
                        [
                            target["boxes"].as_subclass(torch.Tensor),
                            torch.tensor([[90.0, 90, 120, 120]]),
                        ]
                    ),
                    "scores": torch.cat([torch.full((count,), 0.9), torch.tensor([0.2])]),
                    "labels": torch.cat([target["labels"], torch.tensor([1])]),
                    "masks": torch.cat(
                        [target["masks"].float(), _box_masks([[90, 90, 120, 120]]).float()]
                    )[:, None],
                }
            )
        return outputs


def _detection_items(count=5):
    items = []
    for index in range(count):
        image = torch.rand(3, SIZE, SIZE)
        image[0, 0, 0] = index / 100
        boxes = [[10 + 5 * index, 10, 60 + 5 * index, 50], [20, 60, 50, 80]]
        items.append(
            (tv_tensors.Image(image), _target(boxes, [1 + index % 3, 2], _box_masks(boxes)))
        )
    return items


def test_evaluate_detector_runs_in_eval_mode_without_gradients_and_scores_the_oracle():
    items = _detection_items()
    model = OracleDetector(items)
    metrics, predictions = evaluate_detector(
        model, items, device="cpu", batch_size=2, score_threshold=0.5
    )
    assert [call[:2] for call in model.calls] == [(False, False)] * 3
    assert [call[2] for call in model.calls] == [2, 2, 1]  # batches of 2, in dataset order
    assert model.training  # mode restored
    assert metrics["AP"] == pytest.approx(1.0) and len(predictions) == 5
    for prediction, (_, target) in zip(predictions, items):
        assert torch.equal(prediction["boxes"], target["boxes"].as_subclass(torch.Tensor))
        assert torch.equal(prediction["labels"], target["labels"])
        assert prediction["scores"].tolist() == pytest.approx([0.9, 0.9])
        assert prediction["masks"].dtype == torch.bool
        assert torch.equal(prediction["masks"], target["masks"].bool())
        assert (
            type(prediction["boxes"]) is torch.Tensor and prediction["boxes"].device.type == "cpu"
        )
    all_metrics, all_predictions = evaluate_detector(model, items, device="cpu", iou_type="segm")
    assert all(len(p["scores"]) == 3 for p in all_predictions)
    # the false positives are ranked below every hit: they cost nothing
    assert all_metrics["AP"] == pytest.approx(1.0)
    assert all_metrics == detection_ap(all_predictions, [t for _, t in items], "segm")


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"iou_type": "mask"}, ValueError),
        ({"batch_size": 0}, ValueError),
        ({"batch_size": "8"}, TypeError),
        ({"score_threshold": "0.5"}, TypeError),
    ],
)
def test_evaluate_detector_checks_its_settings_before_running_the_model(kwargs, error):
    items = _detection_items(2)
    model = OracleDetector(items)
    with pytest.raises(error):
        evaluate_detector(model, items, device="cpu", **kwargs)
    assert model.calls == []
    with pytest.raises(TypeError, match="nn.Module"):
        evaluate_detector(lambda images: images, items, device="cpu")


def test_objects_found_needs_the_class_the_iou_and_the_score():
    from course_utils.metrics import objects_found

    truth = {
        "boxes": torch.tensor(
            [[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0], [40, 40, 50, 50.0]]
        ),
        "labels": torch.tensor([1, 2, 1]),
    }
    prediction = {
        "boxes": torch.tensor(
            [[0.0, 0.0, 10.0, 9.0], [20.0, 20.0, 30.0, 30.0], [40, 40, 45, 45.0]]
        ),
        "scores": torch.tensor([0.9, 0.2, 0.9]),
        "labels": torch.tensor([1, 1, 1]),  # the second has the wrong class, the third IoU 0.25
    }
    assert objects_found([prediction], [truth]).tolist() == [True, False, False]
    assert objects_found([prediction], [truth], score_threshold=0.95).tolist() == [False] * 3
    assert objects_found([prediction], [truth], iou_threshold=0.2).tolist() == [True, False, True]
    empty = {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0).long()}
    assert objects_found([empty, prediction], [truth, truth]).tolist() == [False] * 3 + [
        True,
        False,
        False,
    ]
    with pytest.raises(ValueError, match="one prediction per target"):
        objects_found([prediction], [truth, truth])
