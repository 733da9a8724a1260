"""Training notebook 11's U-Nets: random crops of the scenes, per-pixel weights, the shared loop.

A U-Net is fully convolutional, so it trains on crops and predicts on whole scenes. The crops are
drawn once, with a seed, so that every variant of the notebook sees exactly the same pixels in the
same order; each crop keeps its per-pixel weight (the paper's w(x): class balance, plus the border
term between touching objects when asked for)::

    images, maps, masks = scene_arrays(SceneDataset("train", 400, task="segmentation"))
    weights = pixel_weights(maps, class_weights)                       # w_c(x) only
    data = random_crops([images, maps, weights], crop=64, count=2080)  # TensorDataset
    history = train_unet(model, data, steps=130, dice_fn=dice_loss)    # CE (+ Dice)

Images float (N, 3, H, W) in [0, 1]; maps int64 (N, H, W) class ids; weights float32 (N, H, W).

A dataset too large to hold in memory (the pets of the "On real photos" section) trains item by
item instead: ``WeightedMaps(pets, class_weights)`` serves ``(image, map, w_c(map))``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset, TensorDataset

from course_utils.core.tensors import plain
from course_utils.core.validate import check_int, check_number
from course_utils.engine import History, TrainConfig, fit

__all__ = [
    "WeightedMaps",
    "pixel_weights",
    "random_crops",
    "scene_arrays",
    "separate_touching",
    "train_unet",
    "unet_loss",
]


def scene_arrays(scenes: Dataset) -> tuple[torch.Tensor, torch.Tensor, list]:
    """A detection ``SceneDataset``'s items as tensors: images float (N, 3, H, W), semantic maps
    int64 (N, H, W), and each scene's ``(instance masks (G, H, W) bool, labels (G,))``."""
    if len(scenes) == 0:
        raise ValueError("scenes is empty")
    images, maps, instances = [], [], []
    for index in range(len(scenes)):
        image, target = scenes[index]
        if not isinstance(target, dict) or "semantic" not in target or "masks" not in target:
            raise TypeError(
                "scenes must be a detection SceneDataset: targets with 'semantic' and 'masks' "
                f"(got {type(target).__name__})"
            )
        images.append(plain(image).float())
        maps.append(plain(target["semantic"]).long())
        instances.append((plain(target["masks"]).bool(), plain(target["labels"]).long()))
    return torch.stack(images), torch.stack(maps), instances


def _carve(semantic: np.ndarray, masks: np.ndarray, labels: np.ndarray, stuff_ids) -> int:
    """Carve the pixels where same-class instances touch, in place; returns how many."""
    eight = ndimage.generate_binary_structure(2, 2)
    border = np.zeros(semantic.shape, dtype=bool)
    for i in range(len(masks)):
        grown = ndimage.binary_dilation(masks[i], eight)
        for j in range(len(masks)):
            if i != j and labels[i] == labels[j]:
                border |= grown & masks[j]
    if not border.any():
        return 0
    stuff = np.isin(semantic, stuff_ids)
    if not stuff.any():
        return 0
    _, (rows, cols) = ndimage.distance_transform_edt(~stuff, return_indices=True)
    semantic[border] = semantic[rows[border], cols[border]]
    masks[:, border] = False
    return int(border.sum())


def separate_touching(
    maps: torch.Tensor, instances: Sequence, stuff_ids: Sequence[int]
) -> tuple[torch.Tensor, list, int]:
    """Labels with a line of background between touching objects of the same class, as the
    paper's annotations have between touching cells.

    Every pixel of an object that touches (8-connected) another object of the same class takes
    the class of the nearest background ("stuff") pixel, and leaves its instance mask: the two
    objects end up at least two pixels apart.

    Args:
        maps: int64 (N, H, W) semantic maps. instances: N pairs ``(masks bool (G, H, W), labels
            (G,))`` (:func:`scene_arrays`'s). stuff_ids: the class ids of the background classes.

    Returns:
        ``(maps, instances, carved)``: new maps and masks (the inputs are not changed) and the
        number of pixels carved.
    """
    maps = plain(maps)
    if maps.ndim != 3 or maps.is_floating_point() or len(instances) != len(maps):
        raise ValueError("maps must be int64 (N, H, W) with one (masks, labels) pair per map")
    new_maps, new_instances, carved = maps.clone().numpy(), [], 0
    for semantic, (masks, labels) in zip(new_maps, instances):
        masks = plain(masks).bool().numpy().copy()
        carved += _carve(semantic, masks, plain(labels).numpy(), list(stuff_ids))
        new_instances.append((torch.from_numpy(masks), plain(labels)))
    return torch.from_numpy(new_maps), new_instances, carved


def pixel_weights(
    maps: torch.Tensor,
    class_weights: torch.Tensor,
    instances: Sequence | None = None,
    border_fn: Callable[..., torch.Tensor] | None = None,
    w0: float = 10.0,
    sigma: float = 5.0,
) -> torch.Tensor:
    """The paper's weight map w(x) for every scene: float32 (N, H, W).

    ``w_c(x) = class_weights[maps[x]]``; with ``instances`` (``scene_arrays``'s) and ``border_fn``
    (``border_weight_map(instance_masks, w0, sigma)``, which returns its term plus 1), the border
    term ``border_fn(...) - 1`` is added: ``w0 exp(-(d1 + d2)^2 / 2 sigma^2)`` between objects.
    """
    maps = plain(maps)
    if maps.ndim != 3 or maps.is_floating_point() or maps.dtype == torch.bool:
        raise ValueError(f"maps must be int64 (N, H, W) class ids, got {tuple(maps.shape)}")
    maps = maps.long()
    class_weights = plain(class_weights).float()
    if class_weights.ndim != 1 or int(maps.min()) < 0 or int(maps.max()) >= len(class_weights):
        raise ValueError(
            f"class_weights must be (K,) with K > every class id in maps (max {int(maps.max())})"
        )
    weights = class_weights[maps]
    if instances is None and border_fn is None:
        return weights
    if instances is None or border_fn is None or len(instances) != len(maps):
        raise ValueError("the border term needs both instances (one per map) and border_fn")
    check_number(w0, "w0", 0.0, None)
    check_number(sigma, "sigma", 0.0, None, open_minimum=True)
    borders = [plain(border_fn(masks, w0=w0, sigma=sigma)).float() - 1.0 for masks, _ in instances]
    return weights + torch.stack(borders)


class WeightedMaps(Dataset):
    """``(image, map, weights)`` items from a segmentation dataset of ``(image, map)`` items.

    ``dataset``: items ``(float (3, H, W), int64 (H, W))`` class ids (255 = ignored);
    ``class_weights``: float (K,), e.g. ``unet_losses.class_balance_weights``. ``weights`` is
    float32 (H, W), ``class_weights[map]`` (0 on ignored pixels, which the loss skips anyway):
    the class-balancing term w_c(x) of the paper's weight map, computed when an item is read.
    """

    def __init__(self, dataset: Dataset, class_weights: torch.Tensor) -> None:
        class_weights = plain(class_weights)
        if class_weights.ndim != 1 or not class_weights.is_floating_point():
            raise ValueError(
                f"class_weights must be a float (K,) tensor, got {class_weights.dtype} "
                f"{tuple(class_weights.shape)}"
            )
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(f"dataset must be a map-style dataset, got {type(dataset).__name__}")
        self.dataset, self.class_weights = dataset, class_weights.float().cpu()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        image, semantic = self.dataset[index]
        semantic = plain(semantic).long()
        valid = semantic != 255
        ids = semantic.masked_fill(~valid, 0)
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= len(self.class_weights)):
            raise ValueError(
                f"item {index}'s map must hold ids in [0, {len(self.class_weights)}) or 255, "
                f"got the range [{int(ids.min())}, {int(ids.max())}]"
            )
        weights = torch.where(valid, self.class_weights[ids], 0.0)
        return image, semantic, weights


def random_crops(
    tensors: Sequence[torch.Tensor], crop: int, count: int, seed: int = 0, flip: bool = True
) -> TensorDataset:
    """``count`` random ``crop`` x ``crop`` windows, the same windows of every tensor.

    ``tensors``: each (N, ..., H, W) with the same N, H, W (images, maps, weights...). Each
    window picks a scene and a position uniformly, and is mirrored left-right half of the time
    when ``flip`` (``seed`` fixes all of it; the global random state is not touched).

    Returns:
        ``TensorDataset`` of (..., crop, crop) items, one per window, in the tensors' order.
    """
    tensors = [plain(t) for t in tensors]
    if not tensors:
        raise ValueError("tensors must hold at least one (N, ..., H, W) tensor")
    count, crop = check_int(count, "count"), check_int(crop, "crop")
    size = tensors[0].shape[0], *tensors[0].shape[-2:]
    for k, tensor in enumerate(tensors):
        if tensor.ndim < 3:
            raise ValueError(f"tensors[{k}] must be (N, ..., H, W), got {tuple(tensor.shape)}")
        if (tensor.shape[0], *tensor.shape[-2:]) != size:
            raise ValueError(
                f"tensors[{k}] must be (N, ..., H, W) with (N, H, W) = {size}, got "
                f"{tuple(tensor.shape)}"
            )
    if crop > min(size[1:]):
        raise ValueError(f"crop {crop} is larger than the scenes ({size[1]}x{size[2]})")
    generator = torch.Generator().manual_seed(seed)
    scene = torch.randint(0, size[0], (count,), generator=generator)
    top = torch.randint(0, size[1] - crop + 1, (count,), generator=generator)
    left = torch.randint(0, size[2] - crop + 1, (count,), generator=generator)
    mirrored = (
        torch.rand(count, generator=generator) < 0.5
        if flip
        else torch.zeros(count, dtype=torch.bool)
    )
    crops = []
    for tensor in tensors:
        windows = torch.stack(
            [tensor[n, ..., y : y + crop, x : x + crop] for n, y, x in zip(scene, top, left)]
        )
        windows[mirrored] = windows[mirrored].flip(-1)
        crops.append(windows)
    return TensorDataset(*crops)


def unet_loss(
    model: torch.nn.Module,
    batch,
    *,
    dice_fn: Callable[..., torch.Tensor] | None = None,
    ignore_index: int = 255,
) -> dict[str, torch.Tensor]:
    """``loss_fn`` for the shared loop on ``(images, maps, weights)`` batches.

    ``cross_entropy``: the pixel-wise cross-entropy weighted by ``weights`` (the paper's energy),
    the mean over the pixels that are not ``ignore_index``; with ``dice_fn(logits, maps,
    ignore_index)``, a second term ``dice``. Computed in float32.
    """
    images, maps, weights = batch
    logits = model(images).float()
    maps = plain(maps).long()
    valid = maps != ignore_index
    losses = torch.nn.functional.cross_entropy(
        logits, maps.masked_fill(~valid, 0), reduction="none"
    )
    terms = {"cross_entropy": (weights.float() * losses)[valid].sum() / valid.sum().clamp(min=1)}
    if dice_fn is not None:
        terms["dice"] = dice_fn(logits, maps, ignore_index)
    return terms


def train_unet(
    model: torch.nn.Module,
    dataset: Dataset,
    *,
    steps: int,
    batch_size: int = 16,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    checkpoint: str | None = None,
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: bool = True,
    while_training: contextlib.AbstractContextManager | None = None,
    **loss_options,
) -> History:
    """Train ``model`` on ``random_crops`` batches with the course's recipe (AdamW, one-cycle
    learning rate, 15 % warm-up) and :func:`unet_loss` (``loss_options``: ``dice_fn``...).

    ``while_training``: a context manager active during training only, e.g. ``unet.skips_off``
    (the network trained without its skips).
    """
    check_int(steps, "steps")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=steps, pct_start=0.15
    )
    config = TrainConfig(
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        checkpoint=checkpoint,
        device=device,
        progress=progress,
    )

    def loss_fn(net, batch):
        return unet_loss(net, batch, **loss_options)

    with while_training if while_training is not None else contextlib.nullcontext():
        return fit(model, dataset, loss_fn, optimizer, config, scheduler=scheduler)
