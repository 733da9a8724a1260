"""course_utils.detection.yolo_training: the YOLO loss for the shared loop, and training."""

import math

import torch
from fast_rcnn_helpers import TinyScenes, scene

from course_utils.data.datasets import detection_collate
from course_utils.detection.yolo import (
    LOSS_TERMS,
    YOLOHead,
    YOLOv1,
    encode_targets,
    yolo_backbone,
    yolo_loss,
)
from course_utils.detection.yolo_training import train_yolo, yolo_training_loss


def tiny_yolo(grid_size: int = 7, seed: int = 0, features: int = 16 * 8 * 8) -> YOLOv1:
    """64x64 images (backbone 16 x 8 x 8) -> (N, S, S, 13): B = 2, C = 3, no dropout."""
    torch.manual_seed(seed)
    head = YOLOHead(features, grid_size, 2, 3, hidden=16, dropout=0.0)
    return YOLOv1(yolo_backbone(width=4, blocks=3), head)


def test_training_loss_is_yolo_loss_of_the_encoded_targets():
    model = tiny_yolo(grid_size=4).eval()
    images, targets = detection_collate([scene(0), scene(1)])
    losses = yolo_training_loss(
        model, (images, targets), grid_size=4, lambda_coord=1.0, lambda_noobj=2.0
    )
    grid = torch.stack([encode_targets(t["boxes"], t["labels"], (64, 64), 4, 3) for t in targets])
    expected = yolo_loss(model(torch.stack(images)), grid, 2, 1.0, 2.0)
    assert tuple(losses) == LOSS_TERMS
    for name in LOSS_TERMS:
        torch.testing.assert_close(losses[name], expected[name], msg=name)
    assert losses["coord_xy"] > 0 and losses["class"] > 0  # the two objects were encoded


def test_training_loss_uses_the_given_encoder_and_loss_with_the_image_size():
    model = tiny_yolo(features=16 * 6 * 8).eval()
    images = [torch.rand(3, 48, 64), torch.rand(3, 48, 64)]  # H = 48, W = 64
    boxes = torch.tensor([[4.0, 6.0, 26.0, 30.0], [30.0, 20.0, 60.0, 44.0]])
    targets = [{"boxes": boxes, "labels": torch.tensor([1, 3])}]
    targets.append({"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)})
    encoded, seen = [], {}

    def encode_fn(boxes, labels, image_size, grid_size, num_classes):
        encoded.append((len(boxes), image_size, grid_size, num_classes))
        return encode_targets(boxes, labels, image_size, grid_size, num_classes)

    def loss_fn(output, grid, boxes_per_cell, lambda_coord, lambda_noobj):
        seen.update(output=output.shape, grid=grid, args=(boxes_per_cell, lambda_coord))
        return {"total": output.sum()}

    losses = yolo_training_loss(
        model, (images, targets), encode_fn=encode_fn, loss_fn=loss_fn, lambda_coord=3.0
    )
    assert set(losses) == {"total"}
    assert encoded == [(2, (48, 64), 7, 3), (0, (48, 64), 7, 3)]
    assert seen["output"] == (2, 7, 7, 13) and seen["args"] == (2, 3.0)
    assert seen["grid"].shape == (2, 7, 7, 8) and int(seen["grid"][..., 4].sum()) == 2


def test_train_yolo_runs_a_few_steps_and_logs_the_five_terms(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CHECKPOINT_DIR", str(tmp_path))
    model = tiny_yolo(grid_size=4, seed=3)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    history = train_yolo(
        model, TinyScenes(), steps=3, batch_size=2, progress=False, device="cpu", grid_size=4
    )
    assert len(history.records) == 3 and history.finished
    for record in history.records:
        assert set(record["components"]) == set(LOSS_TERMS)
        assert math.isclose(record["loss"], sum(record["components"].values()), rel_tol=1e-5)
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert {"backbone.0.weight", "head.fc1.weight", "head.fc2.weight"} <= changed


def test_grid_dataset_holds_the_trunk_features_and_encoded_targets():
    from course_utils.detection.yolo_training import grid_dataset

    trunk = yolo_backbone(width=4, blocks=3).eval()
    scenes = TinyScenes()
    calls = []

    def encode_fn(boxes, labels, image_size, grid_size, num_classes):
        calls.append((image_size, grid_size, num_classes))
        return encode_targets(boxes, labels, image_size, grid_size, num_classes)

    data = grid_dataset(trunk, scenes, grid_size=4, encode_fn=encode_fn, batch_size=2)
    features, grids = data.tensors
    assert features.shape == (3, 16, 8, 8) and grids.shape == (3, 4, 4, 8)
    assert calls == [((64, 64), 4, 3)] * 3
    with torch.no_grad():
        torch.testing.assert_close(features[2], trunk(scene(2)[0][None])[0])
    image, target = scene(1)
    torch.testing.assert_close(
        grids[1], encode_targets(target["boxes"], target["labels"], (64, 64), 4)
    )


def test_grid_dataset_restores_train_mode_and_rejects_no_scenes():
    import pytest

    from course_utils.detection.yolo_training import grid_dataset

    trunk = yolo_backbone(width=4, blocks=3).train()
    grid_dataset(trunk, TinyScenes())
    assert trunk.training
    with pytest.raises(ValueError, match="at least one"):
        grid_dataset(trunk, [])


def test_train_yolo_layers_learns_on_cached_features_with_the_given_loss():
    from course_utils.detection.yolo_training import grid_dataset, train_yolo_layers

    torch.manual_seed(0)
    data = grid_dataset(yolo_backbone(width=4, blocks=3).eval(), TinyScenes(), grid_size=4)
    layers = YOLOHead(16 * 8 * 8, 4, 2, 3, hidden=32, dropout=0.0)
    calls = []

    def loss_fn(output, grids, boxes_per_cell, lambda_coord, lambda_noobj):
        calls.append((boxes_per_cell, lambda_coord, lambda_noobj))
        return yolo_loss(output, grids, boxes_per_cell, lambda_coord, lambda_noobj)

    history = train_yolo_layers(
        layers,
        data,
        steps=60,
        batch_size=3,
        lr=3e-3,
        progress=False,
        loss_fn=loss_fn,
        lambda_noobj=1.0,
    )
    first, last = history.records[0], history.records[-1]
    assert set(first["components"]) == set(LOSS_TERMS) and len(history.records) == 60
    assert calls[0] == (2, 5.0, 1.0)
    assert math.isfinite(last["loss"]) and last["loss"] < 0.2 * first["loss"]
