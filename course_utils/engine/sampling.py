"""Resumable batches: which dataset items each optimizer step sees, whatever ran before.

Epoch ``e`` visits the items in the order :func:`epoch_permutation` draws from a generator
seeded by ``(seed, e)``, and optimizer step ``s`` takes one fixed slice of one epoch. So a
run resumed at step ``k`` sees exactly the batches an uninterrupted run sees from step ``k``
on, without replaying the earlier steps. :func:`seeded_loader` wraps the sampler in the
``DataLoader`` that ``fit`` iterates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, default_collate

from course_utils.core.device import loader_kwargs
from course_utils.core.validate import check_int

__all__ = ["SeededBatchSampler", "epoch_permutation", "seeded_loader"]


def _mixed_seed(seed: int, counter: int) -> int:
    """One 64-bit seed from two ints, well mixed by NumPy's ``SeedSequence``."""
    return int(np.random.SeedSequence([seed, counter]).generate_state(1, dtype=np.uint64)[0])


def epoch_permutation(num_items: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of the items in ``epoch``: a (num_items,) int64 ``randperm`` of 0..num_items-1
    from a generator seeded by ``(seed, epoch)``."""
    generator = torch.Generator().manual_seed(_mixed_seed(seed, epoch))
    return torch.randperm(num_items, generator=generator)


class SeededBatchSampler(Sampler[list[int]]):
    """The index batches of optimizer steps ``start .. stop - 1``, the same for any ``start``.

    Step ``s`` takes batch ``s % batches_per_epoch`` of epoch ``s // batches_per_epoch``
    where ``batches_per_epoch = num_items // batch_size`` (the incomplete last batch of an
    epoch is dropped; a batch size larger than the dataset is reduced to the dataset size).
    Because nothing depends on what ran before, a run resumed at step ``k`` sees exactly
    the batches an uninterrupted run sees from step ``k`` on.
    """

    def __init__(
        self, num_items: int, batch_size: int, *, seed: int = 0, start: int = 0, stop: int
    ):
        if check_int(num_items, "num_items", minimum=0) < 1:
            raise ValueError(f"the dataset is empty (num_items={num_items})")
        check_int(batch_size, "batch_size")
        check_int(seed, "seed", minimum=0)
        check_int(start, "start", minimum=0)
        check_int(stop, "stop", minimum=0)
        if not start <= stop:
            raise ValueError(f"need 0 <= start <= stop, got start={start}, stop={stop}")
        self.num_items, self.seed, self.start, self.stop = num_items, seed, start, stop
        self.batch_size = min(batch_size, num_items)
        self.batches_per_epoch = num_items // self.batch_size

    def batch(self, step: int) -> list[int]:
        """The dataset indices used by optimizer step ``step`` (0-based)."""
        epoch, position = divmod(step, self.batches_per_epoch)
        order = epoch_permutation(self.num_items, self.seed, epoch)
        return order[position * self.batch_size : (position + 1) * self.batch_size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        epoch, order = None, None
        for step in range(self.start, self.stop):
            step_epoch, position = divmod(step, self.batches_per_epoch)
            if step_epoch != epoch:
                epoch, order = step_epoch, epoch_permutation(self.num_items, self.seed, step_epoch)
            yield order[position * self.batch_size : (position + 1) * self.batch_size].tolist()

    def __len__(self) -> int:
        return self.stop - self.start


def seeded_loader(
    dataset,
    batch_size: int,
    *,
    seed: int,
    start: int,
    stop: int,
    device: torch.device,
    collate_fn: Callable | None = None,
) -> DataLoader:
    """A ``DataLoader`` yielding the batches of steps ``start .. stop - 1`` (one per step).

    Batches come from :class:`SeededBatchSampler`, are collated by ``collate_fn`` (default
    ``default_collate``) and loaded with the workers ``loader_kwargs(device)`` picks.
    """
    sampler = SeededBatchSampler(len(dataset), batch_size, seed=seed, start=start, stop=stop)
    # A private generator: creating the loader's iterator must not draw from the global
    # torch generator, whose state the checkpoint restores.
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_fn or default_collate,
        generator=torch.Generator().manual_seed(_mixed_seed(seed, start)),
        **loader_kwargs(device),
    )
