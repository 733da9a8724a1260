"""Calibrate the scenes' difficulty: train a small Faster R-CNN from scratch for a fixed time.

    .venv/bin/python tools/calibrate_faster_rcnn.py                       # 120 s wall clock
    .venv/bin/python tools/calibrate_faster_rcnn.py --clock cpu --threads 1   # 120 CPU seconds
    .venv/bin/python tools/calibrate_faster_rcnn.py --set max_distractors=3 min_object_size=10

The detector is torchvision's ``FasterRCNN`` with a 4-layer conv backbone (stride 8,
no pretrained weights), anchors 12/24/48 px fitting the 14-56 px objects and
``min_size = max_size = 128`` so the transform never resizes the scenes. RoIAlign uses
``sampling_ratio=1`` and 64 RoIs per image: on a CPU, RoIAlign's backward pass is most
of a step otherwise. Training stops after ``--seconds`` (wall time, or with
``--clock cpu`` this process's CPU time, i.e. what the budget buys on an idle machine;
the step count is printed). Evaluation: COCO AP50 on ``--val`` validation scenes
(``course_utils.metrics.evaluate_detector``: pycocotools' ``COCOeval``), plus the
class-agnostic AP50. The aim is AP50 around 0.6-0.85: not trivial, not hopeless.

Measured for the default ``SceneConfig`` (``--clock cpu --threads 1``, batch 8, 1000
training scenes, 100 val scenes): 120 CPU-s = 400 steps -> AP50 0.55 (any class 0.73);
240 CPU-s = 814 steps -> AP50 0.84 (AP 0.58). On the idle 2-core machine, the default run
(120 s wall clock, 2 threads) = 509 steps -> AP50 0.647 (AP 0.412, any class 0.788); on the
same machine shared with other jobs, 120 s of wall clock bought only 54 steps (AP50 0.01).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.transforms import v2

from course_utils.data.datasets import SceneDataset, detection_collate
from course_utils.data.scenes import THING_CLASSES, SceneConfig
from course_utils.metrics import detection_ap, evaluate_detector


def small_backbone(width: int = 32, stride: int = 8) -> nn.Module:
    """Four 3x3 conv blocks, total ``stride`` 8 or 4, ``out_channels = 4 * width``.

    (FasterRCNN reads ``out_channels`` from the backbone.)
    """

    def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]

    if stride not in (4, 8):
        raise ValueError(f"stride must be 4 or 8, got {stride}")
    layers = nn.Sequential(
        *block(3, width, 2),
        *block(width, 2 * width, 2),
        *block(2 * width, 4 * width, stride // 4),
        *block(4 * width, 4 * width, 1),
    )
    layers.out_channels = 4 * width
    return layers


def build_model(
    num_classes: int = len(THING_CLASSES) + 1, size: int = 128, stride: int = 8
) -> FasterRCNN:
    """A small FasterRCNN for ``size`` x ``size`` scenes (random initialisation).

    The box head is a 256-wide two-layer MLP (torchvision's default 1024 is slow on a CPU).
    """
    backbone = small_backbone(stride=stride)
    anchors = AnchorGenerator(sizes=((12, 24, 48),), aspect_ratios=((0.5, 1.0, 2.0),))
    roi_pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=1)
    head = TwoMLPHead(backbone.out_channels * 7 * 7, 256)
    return FasterRCNN(
        backbone,
        num_classes=None,
        rpn_anchor_generator=anchors,
        box_roi_pool=roi_pool,
        box_head=head,
        box_predictor=FastRCNNPredictor(256, num_classes),
        min_size=size,
        max_size=size,
        rpn_pre_nms_top_n_train=600,
        rpn_post_nms_top_n_train=200,
        rpn_pre_nms_top_n_test=300,
        rpn_post_nms_top_n_test=100,
        rpn_batch_size_per_image=128,
        box_batch_size_per_image=64,
        box_detections_per_img=50,
        box_score_thresh=0.01,
    )


def train(
    model: FasterRCNN,
    dataset: SceneDataset,
    seconds: float,
    batch_size: int,
    lr: float,
    clock=time.perf_counter,
) -> int:
    """Train until ``clock`` says ``seconds`` have passed; returns the number of steps.

    ``clock=time.perf_counter`` bounds wall time; ``time.process_time`` bounds this
    process's CPU time, which is what ``seconds`` would buy on an idle machine. AdamW with
    a 20-step warm-up and a cosine decay to 0 over the time budget.
    """
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, collate_fn=detection_collate, drop_last=True
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    model.train()
    start, wall_start, steps = clock(), time.perf_counter(), 0
    while True:
        for images, targets in loader:
            targets = [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]
            progress = min(1.0, (clock() - start) / seconds)
            factor = min(1.0, (steps + 1) / 20) * 0.5 * (1 + math.cos(math.pi * progress))
            for group in optimizer.param_groups:
                group["lr"] = lr * factor
            losses = model(images, targets)
            loss = sum(losses.values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
            if steps % 25 == 0:
                print(
                    f"step {steps:4d}  {clock() - start:5.0f}s "
                    f"({time.perf_counter() - wall_start:.0f}s wall)  "
                    f"loss {loss.item():.3f}  "
                    + " ".join(f"{k[5:]}={v.item():.3f}" for k, v in losses.items()),
                    flush=True,
                )
            if clock() - start > seconds:
                return steps


def evaluate(model: FasterRCNN, dataset: SceneDataset) -> dict[str, float]:
    """COCO box AP (AP, AP50, AP75, APs, APm, APl) of ``model`` on ``dataset`` on the CPU,
    plus ``AP50_any_class``: AP50 with every label set to 1 (localisation errors only)."""
    scores, predictions = evaluate_detector(model, dataset, device="cpu", batch_size=16)
    targets = [dataset[i][1] for i in range(len(dataset))]
    agnostic = detection_ap(
        [dict(p, labels=torch.ones_like(p["labels"])) for p in predictions],
        [dict(t, labels=torch.ones_like(t["labels"])) for t in targets],
    )
    return {
        **{name: scores[name] for name in ("AP", "AP50", "AP75", "APs", "APm", "APl")},
        "AP50_any_class": agnostic["AP50"],
    }


def parse_overrides(pairs: list[str]) -> dict:
    """``["max_distractors=5", ...]`` -> SceneConfig keyword arguments (JSON values)."""
    fields = {field.name for field in dataclasses.fields(SceneConfig)}
    overrides = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in fields:
            raise SystemExit(
                f"--set {pair}: unknown SceneConfig field {key!r}; fields: {sorted(fields)}"
            )
        overrides[key] = json.loads(value)
    return overrides


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=120.0, help="training time budget")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="budget in wall seconds, or in CPU seconds of this process (an idle machine's time)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--train", type=int, default=1000, help="training scenes")
    parser.add_argument("--val", type=int, default=100, help="validation scenes")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--save", default="", help="save the trained model's state_dict to this path"
    )
    parser.add_argument("--stride", type=int, default=8, choices=(4, 8), help="backbone stride")
    parser.add_argument(
        "--set", nargs="*", default=[], help="SceneConfig overrides, e.g. max_distractors=5"
    )
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = SceneConfig(**parse_overrides(args.set))
    flip = v2.RandomHorizontalFlip()
    train_set = SceneDataset("train", args.train, config, transforms=flip, progress=False)
    val_set = SceneDataset("val", args.val, config, progress=False)
    model = build_model(size=config.size, stride=args.stride)
    print(
        f"config: {config}\nthreads: {torch.get_num_threads()}  training for {args.seconds:.0f} s",
        flush=True,
    )
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    wall, cpu = time.perf_counter(), time.process_time()
    steps = train(model, train_set, args.seconds, args.batch_size, args.lr, clock)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if args.save:
        torch.save(model.state_dict(), args.save)
    start = time.perf_counter()
    scores = evaluate(model, val_set)
    print(
        json.dumps(
            {
                "steps": steps,
                "batch_size": args.batch_size,
                "train_wall_s": round(wall, 1),
                "train_cpu_s": round(cpu, 1),
                "threads": torch.get_num_threads(),
                "eval_seconds": round(time.perf_counter() - start, 1),
                "val_images": args.val,
                **{k: round(v, 3) for k, v in scores.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
