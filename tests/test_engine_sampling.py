"""course_utils.engine.sampling: the batch of every step, the same whatever ran before."""

import pytest
import torch
from torch.utils.data import TensorDataset

from course_utils.engine import SeededBatchSampler, epoch_permutation
from course_utils.engine.sampling import seeded_loader


def test_the_sampler_resumes_with_the_same_batches():
    full = list(SeededBatchSampler(10, 3, seed=4, stop=9))
    assert len(full) == 9 and all(len(batch) == 3 for batch in full)
    for epoch in range(3):  # 3 batches per epoch (the 10th item is dropped), no repeats in one
        items = sum(full[3 * epoch : 3 * epoch + 3], [])
        assert len(set(items)) == 9 and set(items) <= set(range(10))
        assert items == epoch_permutation(10, 4, epoch)[:9].tolist()
    assert list(SeededBatchSampler(10, 3, seed=4, start=4, stop=9)) == full[4:]
    assert [SeededBatchSampler(10, 3, seed=4, stop=9).batch(step) for step in range(9)] == full
    assert list(SeededBatchSampler(10, 3, seed=5, stop=9)) != full
    assert len(SeededBatchSampler(10, 3, start=4, stop=9)) == 5


def test_a_batch_larger_than_the_dataset_uses_the_whole_dataset():
    batches = list(SeededBatchSampler(5, 8, stop=3))
    assert all(sorted(batch) == [0, 1, 2, 3, 4] for batch in batches)


@pytest.mark.parametrize(
    "arguments, error",
    [
        ({"num_items": 0}, ValueError),
        ({"batch_size": 0}, ValueError),
        ({"batch_size": 2.0}, TypeError),
        ({"start": 5, "stop": 4}, ValueError),
        ({"start": -1}, ValueError),
        ({"seed": -1}, ValueError),
    ],
)
def test_the_sampler_rejects_bad_arguments(arguments, error):
    with pytest.raises(error):
        SeededBatchSampler(**{"num_items": 10, "batch_size": 3, "stop": 4, **arguments})


def test_epoch_permutations_differ_between_epochs_and_repeat_for_the_same_seed():
    assert torch.equal(epoch_permutation(50, 0, 3), epoch_permutation(50, 0, 3))
    assert not torch.equal(epoch_permutation(50, 0, 3), epoch_permutation(50, 0, 4))
    assert sorted(epoch_permutation(50, 1, 0).tolist()) == list(range(50))
    assert epoch_permutation(50, 1, 0).dtype == torch.int64


def test_the_loader_yields_the_samplers_batches_without_touching_the_global_generator():
    dataset = TensorDataset(torch.arange(10) * 10)
    loader = seeded_loader(dataset, 3, seed=4, start=2, stop=7, device=torch.device("cpu"))
    before = torch.get_rng_state()
    batches = [batch.tolist() for (batch,) in loader]
    assert torch.equal(torch.get_rng_state(), before)
    expected = list(SeededBatchSampler(10, 3, seed=4, start=2, stop=7))
    assert batches == [[10 * index for index in batch] for batch in expected]


def test_the_loader_uses_the_given_collate_fn():
    dataset = TensorDataset(torch.arange(6))
    loader = seeded_loader(
        dataset, 2, seed=0, start=0, stop=2, device=torch.device("cpu"), collate_fn=len
    )
    assert list(loader) == [2, 2]
