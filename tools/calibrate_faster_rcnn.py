"""Calibrate the scenes' difficulty: train a small Faster R-CNN from scratch for a fixed time.

    .venv/bin/python tools/calibrate_faster_rcnn.py                 # 120 s on the CPU
    .venv/bin/python tools/calibrate_faster_rcnn.py --seconds 60 --set max_distractors=5

The detector is torchvision's ``FasterRCNN`` with a 4-layer conv backbone (stride 8,
no pretrained weights), anchors 12/24/48 px fitting the 10-56 px objects and
``min_size = max_size = 128`` so the transform never resizes the scenes. Training stops
after ``--seconds`` of wall time (the step count depends on how busy the machine is, so
it is printed); evaluation is COCO AP50 on ``--val`` validation scenes with pycocotools'
``COCOeval``. The aim is AP50 around 0.6-0.85: not trivial, not hopeless.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.transforms import v2

from course_utils.data import SceneDataset, detection_collate
from course_utils.scenes import THING_CLASSES, SceneConfig


def small_backbone(width: int = 32) -> nn.Module:
    """Four 3x3 conv blocks, stride 8, ``out_channels = 4 * width`` (FasterRCNN needs it)."""

    def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    layers = nn.Sequential(*block(3, width, 2), *block(width, 2 * width, 2), *block(2 * width, 4 * width, 2),
                           *block(4 * width, 4 * width, 1))
    layers.out_channels = 4 * width
    return layers


def build_model(num_classes: int = len(THING_CLASSES) + 1, size: int = 128) -> FasterRCNN:
    """A small FasterRCNN for ``size`` x ``size`` scenes (random initialisation).

    The box head is a 256-wide two-layer MLP (torchvision's default 1024 is slow on a CPU).
    """
    backbone = small_backbone()
    anchors = AnchorGenerator(sizes=((12, 24, 48),), aspect_ratios=((0.5, 1.0, 2.0),))
    roi_pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2)
    head = TwoMLPHead(backbone.out_channels * 7 * 7, 256)
    return FasterRCNN(backbone, num_classes=None, rpn_anchor_generator=anchors, box_roi_pool=roi_pool,
                      box_head=head, box_predictor=FastRCNNPredictor(256, num_classes),
                      min_size=size, max_size=size,
                      rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=200,
                      rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=100,
                      rpn_batch_size_per_image=128, box_batch_size_per_image=128,
                      box_detections_per_img=50, box_score_thresh=0.01)


def train(model: FasterRCNN, dataset: SceneDataset, seconds: float, batch_size: int, lr: float,
          clock=time.perf_counter) -> int:
    """Train until ``clock`` says ``seconds`` have passed; returns the number of steps.

    ``clock=time.perf_counter`` bounds wall time; ``time.process_time`` bounds this
    process's CPU time, which is what ``seconds`` would buy on an idle machine.
    """
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                         collate_fn=detection_collate, drop_last=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    model.train()
    start, wall_start, steps = clock(), time.perf_counter(), 0
    while True:
        for images, targets in loader:
            targets = [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]
            warmup = min(1.0, (steps + 1) / 20)
            for group in optimizer.param_groups:
                group["lr"] = lr * warmup
            losses = model(images, targets)
            loss = sum(losses.values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
            if steps % 25 == 0:
                print(f"step {steps:4d}  {clock() - start:5.0f}s ({time.perf_counter() - wall_start:.0f}s wall)  loss {loss.item():.3f}  "
                      + " ".join(f"{k[5:]}={v.item():.3f}" for k, v in losses.items()), flush=True)
            if clock() - start > seconds:
                return steps


def coco_ground_truth(dataset: SceneDataset) -> COCO:
    """The boxes of ``dataset`` as an in-memory pycocotools ``COCO`` object."""
    images, annotations = [], []
    for index in range(len(dataset)):
        scene = dataset.scene(index)
        images.append({"id": index, "height": scene.image.shape[0], "width": scene.image.shape[1]})
        for box, label, mask in zip(scene.boxes.tolist(), scene.labels.tolist(), scene.masks):
            annotations.append({"id": len(annotations) + 1, "image_id": index, "category_id": label, "iscrowd": 0,
                                "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                                "area": float(mask.sum())})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations,
                    "categories": [{"id": i + 1, "name": n} for i, n in enumerate(THING_CLASSES)]}
    coco.createIndex()
    return coco


@torch.no_grad()
def evaluate(model: FasterRCNN, dataset: SceneDataset) -> dict[str, float]:
    """COCO box AP (AP, AP50, AP75, APs, APm, APl) of ``model`` on ``dataset``."""
    model.eval()
    detections = []
    for start in range(0, len(dataset), 16):
        indices = list(range(start, min(start + 16, len(dataset))))
        outputs = model([dataset[i][0] for i in indices])
        for index, output in zip(indices, outputs):
            for box, score, label in zip(output["boxes"].tolist(), output["scores"].tolist(),
                                         output["labels"].tolist()):
                detections.append({"image_id": index, "category_id": label, "score": score,
                                   "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    ground_truth = coco_ground_truth(dataset)
    if not detections:
        return {"AP": 0.0, "AP50": 0.0}
    evaluator = COCOeval(ground_truth, ground_truth.loadRes(detections), iouType="bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    names = ("AP", "AP50", "AP75", "APs", "APm", "APl")
    return {name: float(value) for name, value in zip(names, evaluator.stats[:6])}


def parse_overrides(pairs: list[str]) -> dict:
    """``["max_distractors=5", ...]`` -> SceneConfig keyword arguments (JSON values)."""
    fields = {field.name for field in dataclasses.fields(SceneConfig)}
    overrides = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in fields:
            raise SystemExit(f"--set {pair}: unknown SceneConfig field {key!r}; fields: {sorted(fields)}")
        overrides[key] = json.loads(value)
    return overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0, help="training time budget")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="budget in wall seconds, or in CPU seconds of this process (an idle machine's time)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--train", type=int, default=1000, help="training scenes")
    parser.add_argument("--val", type=int, default=100, help="validation scenes")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], help="SceneConfig overrides, e.g. max_distractors=5")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = SceneConfig(**parse_overrides(args.set))
    flip = v2.RandomHorizontalFlip()
    train_set = SceneDataset("train", args.train, config, transforms=flip, progress=False)
    val_set = SceneDataset("val", args.val, config, progress=False)
    model = build_model(size=config.size)
    print(f"config: {config}\nthreads: {torch.get_num_threads()}  training for {args.seconds:.0f} s", flush=True)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    wall, cpu = time.perf_counter(), time.process_time()
    steps = train(model, train_set, args.seconds, args.batch_size, args.lr, clock)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    start = time.perf_counter()
    scores = evaluate(model, val_set)
    print(json.dumps({"steps": steps, "batch_size": args.batch_size, "train_wall_s": round(wall, 1),
                      "train_cpu_s": round(cpu, 1), "threads": torch.get_num_threads(),
                      "eval_seconds": round(time.perf_counter() - start, 1), "val_images": args.val,
                      **{k: round(v, 3) for k, v in scores.items()}}))


if __name__ == "__main__":
    main()
