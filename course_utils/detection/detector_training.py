"""The recipe every detector of the course trains with: AdamW, one-cycle schedule, the shared loop.

Fast R-CNN (notebook 04), Faster R-CNN and torchvision's ``FasterRCNN`` (notebook 05) differ only
in their loss function; they share this call, so that "the same budget" means the same optimizer,
schedule, steps, batches and seed::

    history = train_detector(model, dataset, loss_fn, steps=300, images_per_batch=4)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch.utils.data import Dataset

from course_utils.core.validate import check_int, check_number
from course_utils.engine import History, TrainConfig, fit

__all__ = ["RECIPE_OPTIONS", "train_detector", "train_with_loss"]

#: The keywords of :func:`train_detector` that a detector's ``train_*`` function passes on; its
#: other keywords go to its loss function.
RECIPE_OPTIONS = (
    "images_per_batch",
    "lr",
    "weight_decay",
    "checkpoint",
    "seed",
    "device",
    "progress",
)


def train_detector(
    model: torch.nn.Module,
    dataset: Dataset,
    loss_fn: Callable,
    *,
    steps: int,
    images_per_batch: int = 4,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    checkpoint: str | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    collate_fn: Callable | None = None,
) -> History:
    """Train ``model`` with ``course_utils.engine.fit``: AdamW (``lr``, ``weight_decay``) and a
    one-cycle schedule (10 % warm-up) over ``steps`` steps of ``images_per_batch`` images.

    ``loss_fn(model, batch)`` returns a dict of losses (logged one by one); ``collate_fn`` makes
    the batch (lists of images and targets for detection). ``checkpoint``, ``seed``, ``device``
    and ``progress`` are ``TrainConfig``'s.

    Returns:
        fit's ``History``.
    """
    check_int(steps, "steps")
    check_number(lr, "lr", 0, None, open_minimum=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=steps, pct_start=0.1
    )
    config = TrainConfig(
        steps=steps,
        batch_size=images_per_batch,
        seed=seed,
        checkpoint=checkpoint,
        device=device,
        progress=progress,
    )
    return fit(
        model, dataset, loss_fn, optimizer, config, scheduler=scheduler, collate_fn=collate_fn
    )


def train_with_loss(
    model: torch.nn.Module,
    dataset: Dataset,
    loss: Callable,
    *,
    steps: int,
    collate_fn: Callable | None = None,
    **options,
) -> History:
    """:func:`train_detector` with ``loss(model, batch, **loss_options)`` as the loss function.

    ``options`` named in :data:`RECIPE_OPTIONS` (``images_per_batch``, ``lr``, ``weight_decay``,
    ``checkpoint``, ``seed``, ``device``, ``progress``) go to :func:`train_detector`, the others
    to ``loss`` (e.g. Fast R-CNN's ``rois_per_image``, the student's ``box_loss``). Every detector's
    ``train_*`` function is this call with its own loss and collate function.
    """
    recipe = {name: value for name, value in options.items() if name in RECIPE_OPTIONS}
    loss_options = {name: value for name, value in options.items() if name not in RECIPE_OPTIONS}
    return train_detector(
        model,
        dataset,
        partial(loss, **loss_options),
        steps=steps,
        collate_fn=collate_fn,
        **recipe,
    )
