"""Speed: :func:`time_per_image`, the median milliseconds per image of a batched call, and
:func:`one_image_ms`, one image at a time on one thread (the course-wide tables' protocol)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from time import perf_counter

import torch

from course_utils.core.device import one_thread, pick_device, synchronize
from course_utils.core.tensors import to_device
from course_utils.core.validate import check_int

__all__ = ["one_image_ms", "time_per_image"]


def _first_device(images) -> torch.device:
    """The device of the batch, or of its first tensor; ``pick_device()`` if it has none."""
    if isinstance(images, torch.Tensor):
        return images.device
    for image in images:
        if isinstance(image, torch.Tensor):
            return image.device
    return pick_device()


def time_per_image(
    fn: Callable,
    images,
    warmup: int = 2,
    repeats: int = 5,
    device: torch.device | str | None = None,
) -> dict:
    """Milliseconds per image of ``fn(images)``, the median over ``repeats`` timed calls.

    ``fn`` is called on the whole batch at once (``images``: a (B, C, H, W) tensor or a list
    of B CHW tensors, as torchvision's detectors take), ``warmup`` times untimed and then
    ``repeats`` times, each timed between two ``course_utils.core.device.synchronize`` calls so
    queued GPU work counts. Runs under ``torch.no_grad()``; put the model in eval mode first.
    ``images`` are moved to ``device`` when one is given.

    Returns:
        ``{"ms_per_image": median seconds / B * 1000, "images_per_s": B / median seconds}``.
    """
    if not callable(fn):
        raise TypeError(
            f"fn must be callable (a model or a function of the images), got {type(fn).__name__}"
        )
    if isinstance(images, torch.Tensor):
        if images.ndim != 4 or images.shape[0] == 0:
            raise ValueError(
                f"images must be a (B, C, H, W) batch with B >= 1, got shape {tuple(images.shape)}"
            )
    elif not isinstance(images, (list, tuple)) or not images:
        raise TypeError("images must be a (B, C, H, W) tensor or a non-empty list of CHW tensors")
    check_int(warmup, "warmup", minimum=0)
    check_int(repeats, "repeats")
    if device is not None:
        device = torch.device(device)
        images = to_device(images, device)
    else:
        device = _first_device(images)
    count = len(images)
    seconds = []
    with torch.no_grad():
        for _ in range(warmup):
            fn(images)
        for _ in range(repeats):
            synchronize(device)
            started = perf_counter()
            fn(images)
            synchronize(device)
            seconds.append(perf_counter() - started)
    median = max(statistics.median(seconds), 1e-9)
    return {"ms_per_image": 1000.0 * median / count, "images_per_s": count / median}


def one_image_ms(fn: Callable, images, passes: int = 3) -> float:
    """Milliseconds per image of ``fn(image)`` called on one image at a time: the fastest of
    ``passes`` passes over ``images`` (after one untimed call).

    ``images``: a (B, C, H, W) tensor or a list of CHW tensors; ``fn`` takes one CHW image
    (wrap a model: ``lambda image: model(image[None])``, a detector:
    ``lambda image: detector([image])``). Runs under ``torch.no_grad()`` and, on the CPU, on one
    thread (``core.device.one_thread``): a steady figure that measures the method's work, the
    protocol of the course-wide tables. Put the model in eval mode first.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable on one CHW image, got {type(fn).__name__}")
    if isinstance(images, torch.Tensor):
        if images.ndim != 4 or images.shape[0] == 0:
            raise ValueError(
                f"images must be a (B, C, H, W) batch with B >= 1, got shape {tuple(images.shape)}"
            )
        images = list(images)
    elif not isinstance(images, (list, tuple)) or not images:
        raise TypeError("images must be a (B, C, H, W) tensor or a non-empty list of CHW tensors")
    check_int(passes, "passes")
    device = _first_device(images)
    best = float("inf")
    with torch.no_grad(), one_thread():
        fn(images[0])
        for _ in range(passes):
            synchronize(device)
            started = perf_counter()
            for image in images:
                fn(image)
            synchronize(device)
            best = min(best, perf_counter() - started)
    return 1000.0 * best / len(images)
