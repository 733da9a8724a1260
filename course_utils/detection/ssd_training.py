"""Training SSD's added layers on a frozen trunk, with the paper's data augmentation.

The trunk is frozen, so its map of every training image is computed once and the added layers
train on those maps: thousands of steps in seconds on a CPU. Augmentation changes the images, so
the augmented copies are drawn once, before the maps are computed (each copy one draw of the
random pipeline; more copies, more variety)::

    pipeline = ssd_augmentation()                              # transforms.v2, boxes follow
    copies = augmented_scenes(scenes, pipeline, copies=1)      # a list of (image, target)
    data = feature_scenes(trunk, list(originals) + copies)     # (trunk map, target) items
    matched = matched_scenes(data, boxes, num_classes=4)       # + each default box's label, box
    history = train_ssd_layers(layers, matched, boxes, steps=800)  # 2 loss curves

Images are float (3, H, W) in [0, 1]; targets ``{"boxes": float (G, 4) xyxy pixels, "labels":
int64 (G,) in 1..C}``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from course_utils.core.tensors import plain
from course_utils.core.validate import check_boxes, check_int, check_number
from course_utils.detection.detector_training import train_with_loss
from course_utils.detection.ssd import match_targets, ssd_loss_from_matches
from course_utils.engine import History

__all__ = [
    "FeatureScenes",
    "MatchedScenes",
    "augmented_scenes",
    "feature_collate",
    "feature_scenes",
    "keep_all_negatives",
    "matched_scenes",
    "ssd_augmentation",
    "ssd_feature_loss",
    "train_ssd_layers",
]


def ssd_augmentation(
    image_size: tuple[int, int] = (128, 128),
    zoom_out: tuple[float, float] = (1.0, 2.0),
    fill: float = 0.5,
) -> v2.Compose:
    """The paper's augmentation with ``torchvision.transforms.v2``, on an ``(image, target)`` pair
    whose boxes are ``tv_tensors.BoundingBoxes``:

    1. photometric distortion (brightness, contrast, saturation, hue; each with probability 0.5);
    2. zoom out (probability 0.5): the image placed at random on a canvas up to ``zoom_out[1]``
       times its side, filled with ``fill`` (the paper: 4 times, filled with the mean);
    3. a random crop whose IoU with some object is at least one of 0.1, 0.3, 0.5, 0.7, 0.9 (or
       no crop), keeping the objects whose centre is inside;
    4. horizontal flip (probability 0.5), resize to ``image_size``, and boxes without area or
       outside the image removed with their labels.
    """
    check_number(zoom_out[0], "zoom_out[0]", 1.0, None)
    check_number(zoom_out[1], "zoom_out[1]", zoom_out[0], None)
    check_number(fill, "fill", 0.0, 1.0)
    return v2.Compose(
        [
            v2.RandomPhotometricDistort(p=0.5),
            v2.RandomZoomOut(fill=fill, side_range=zoom_out, p=0.5),
            v2.RandomIoUCrop(trials=10),
            v2.RandomHorizontalFlip(p=0.5),
            v2.Resize(tuple(image_size), antialias=True),
            v2.ClampBoundingBoxes(),
            v2.SanitizeBoundingBoxes(min_size=1.0),
        ]
    )


def _boxes_and_labels(target: dict, size: tuple[int, int]) -> dict:
    """The ``boxes`` (as BoundingBoxes on a ``size`` canvas) and ``labels`` of a target."""
    boxes = check_boxes(plain(target["boxes"]).float(), "target['boxes']")
    return {
        "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=size),
        "labels": plain(target["labels"]).to(torch.int64),
    }


def augmented_scenes(
    scenes: Dataset, transform: Callable, copies: int = 1, seed: int = 0
) -> list[tuple[torch.Tensor, dict]]:
    """``copies`` augmented versions of every scene, drawn once with ``transform`` (e.g.
    :func:`ssd_augmentation`) under ``seed`` (the global random state is restored afterwards).

    Copies whose crop left no object are drawn again (up to 10 times, then the scene is kept as
    it is), so that every item holds at least one object.

    Returns:
        ``len(scenes) * copies`` items ``(image float (3, H, W), {"boxes": float (G, 4) xyxy,
        "labels": int64 (G,)})``, plain tensors, copy by copy.
    """
    check_int(copies, "copies")
    items = []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for _ in range(copies):
            for index in range(len(scenes)):
                image, target = scenes[index]
                image = tv_tensors.Image(plain(image))
                target = _boxes_and_labels(target, tuple(image.shape[-2:]))
                for _attempt in range(10):
                    new_image, new_target = transform(image, target)
                    if len(new_target["labels"]):
                        image, target = new_image, new_target
                        break
                items.append(
                    (
                        plain(image).float(),
                        {
                            "boxes": plain(target["boxes"]).float(),
                            "labels": plain(target["labels"]),
                        },
                    )
                )
    return items


class FeatureScenes(Dataset):
    """``(trunk map float (C, h, w), target)`` items: the frozen trunk's map of each scene with its
    ``boxes`` and ``labels``."""

    def __init__(self, features: torch.Tensor, targets: Sequence[dict]) -> None:
        if not isinstance(features, torch.Tensor) or features.ndim != 4:
            raise ValueError("features must be a (N, C, h, w) tensor")
        if len(features) != len(targets):
            raise ValueError(f"{len(features)} feature maps but {len(targets)} targets")
        self.features, self.targets = features, list(targets)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int):
        return self.features[index], self.targets[index]


@torch.no_grad()
def feature_scenes(
    trunk: nn.Module,
    scenes,
    *,
    batch_size: int = 64,
    device: torch.device | str | None = None,
) -> FeatureScenes:
    """The frozen ``trunk``'s map of every scene, computed once in eval mode (restored after).

    ``scenes``: a dataset or list of ``(image float (3, H, W), target)``, all the same size.
    The maps are computed on ``device`` (default: the trunk's) and kept on the CPU.
    """
    check_int(batch_size, "batch_size")
    if len(scenes) == 0:
        raise ValueError("scenes is empty: feature_scenes needs at least one (image, target)")
    parameter = next(trunk.parameters(), None)
    if device is None:
        device = parameter.device if parameter is not None else torch.device("cpu")
    was_training = trunk.training
    trunk.eval()
    features, targets = [], []
    try:
        for start in range(0, len(scenes), batch_size):
            items = [scenes[i] for i in range(start, min(start + batch_size, len(scenes)))]
            images = torch.stack([plain(image) for image, _ in items]).to(device)
            features.append(trunk(images).float().cpu())
            targets += [
                {"boxes": plain(t["boxes"]).float(), "labels": plain(t["labels"])} for _, t in items
            ]
    finally:
        trunk.train(was_training)
    return FeatureScenes(torch.cat(features), targets)


def feature_collate(batch):
    """``[(map, target), ...]`` -> ``(maps (N, C, h, w), list of targets)``."""
    if not isinstance(batch, (list, tuple)) or not batch:
        raise ValueError("batch must be a non-empty list of (feature map, target) pairs")
    maps, targets = zip(*batch)
    return torch.stack(maps), list(targets)


class MatchedScenes(Dataset):
    """SSD's training items ``(trunk map float (C, h, w), labels int64 (D,), matched boxes float
    (D, 4))``: the matching of each scene to the default boxes, done once (it depends on the
    ground truth only). The default collate stacks them into batches."""

    def __init__(
        self, features: torch.Tensor, labels: torch.Tensor, matched_boxes: torch.Tensor
    ) -> None:
        if not isinstance(features, torch.Tensor) or features.ndim != 4:
            raise ValueError("features must be a (N, C, h, w) tensor")
        if labels.ndim != 2 or len(labels) != len(features):
            raise ValueError(f"labels must be (N, D) with N = {len(features)}, got {labels.shape}")
        if matched_boxes.shape != (*labels.shape, 4):
            raise ValueError(
                f"matched_boxes must be (N, D, 4) = {(*labels.shape, 4)}, got {matched_boxes.shape}"
            )
        self.features, self.labels, self.matched_boxes = features, labels, matched_boxes

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int):
        return self.features[index], self.labels[index], self.matched_boxes[index]

    def positives(self) -> torch.Tensor:
        """int64 (N,): how many default boxes of each scene matched an object."""
        return (self.labels > 0).sum(dim=1)


def matched_scenes(
    scenes: FeatureScenes,
    default_boxes: torch.Tensor,
    num_classes: int,
    *,
    iou_threshold: float = 0.5,
    match_fn: Callable[..., torch.Tensor] | None = None,
) -> MatchedScenes:
    """Every scene of ``scenes`` matched to ``default_boxes`` (float (D, 4) xyxy pixels) with
    ``match_fn`` (default ``ssd_boxes.match_default_boxes``; ``ssd.match_targets``), kept with
    its trunk map. ``num_classes``: C + 1, background included."""
    if not isinstance(scenes, FeatureScenes):
        raise TypeError(
            f"scenes must be FeatureScenes (feature_scenes), got {type(scenes).__name__}"
        )
    labels, matched = match_targets(
        check_boxes(plain(default_boxes), "default_boxes"),
        scenes.targets,
        num_classes,
        iou_threshold,
        match_fn,
    )
    return MatchedScenes(scenes.features, labels, matched)


def keep_all_negatives(
    confidence_loss: torch.Tensor, labels: torch.Tensor, neg_pos_ratio: int = 3
) -> torch.Tensor:
    """The ablation of hard negative mining: every default box enters the classification loss
    (``neg_pos_ratio`` is ignored). bool (N, D), all True."""
    return torch.ones_like(plain(labels), dtype=torch.bool)


def ssd_feature_loss(
    layers: nn.Module, batch, *, default_boxes: torch.Tensor, **loss_options
) -> dict[str, torch.Tensor]:
    """``loss_fn`` for the shared loop on :class:`MatchedScenes` batches ``(maps, labels,
    matched_boxes)``: ``ssd_loss_from_matches`` of ``layers(maps)`` (in float32, also under mixed
    precision). ``loss_options``: ``neg_pos_ratio``, ``mining_fn``."""
    maps, labels, matched_boxes = batch
    class_logits, box_deltas = layers(maps)
    return ssd_loss_from_matches(
        class_logits.float(),
        box_deltas.float(),
        default_boxes.to(class_logits.device),
        labels,
        matched_boxes.float(),
        **loss_options,
    )


def train_ssd_layers(
    layers: nn.Module,
    dataset: MatchedScenes,
    default_boxes: torch.Tensor,
    *,
    steps: int,
    batch_size: int = 32,
    lr: float = 3e-3,
    weight_decay: float = 5e-4,
    **options,
) -> History:
    """Train the layers SSD adds to a frozen trunk (:class:`~course_utils.detection.ssd_network.
    SSDLayers`) on :class:`MatchedScenes` (matched to ``default_boxes``, the layers' output
    order), with the course's recipe (AdamW, one-cycle schedule).

    ``options``: the recipe's ``checkpoint``, ``seed``, ``device``, ``progress``; the others go to
    ``ssd_loss_from_matches`` (``neg_pos_ratio``, ``mining_fn``).

    Returns:
        fit's ``History``, whose records carry ``classification`` and ``box_regression``.
    """
    default_boxes = check_boxes(plain(default_boxes), "default_boxes")
    if not isinstance(dataset, (MatchedScenes, torch.utils.data.Subset)):
        raise TypeError(
            f"dataset must be MatchedScenes (matched_scenes), got {type(dataset).__name__}"
        )
    return train_with_loss(
        layers,
        dataset,
        ssd_feature_loss,
        steps=steps,
        images_per_batch=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        default_boxes=default_boxes,
        **options,
    )
