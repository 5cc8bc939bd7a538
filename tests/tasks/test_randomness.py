"""A training batch's random numbers depend on its place in training only, never on earlier draws."""

import random

import pytest
import torch

from nlp_lib.data.resumable import ResumableLoader
from nlp_lib.tasks.randomness import BatchRandomness, stream_seed


def _draws(stream, device, *key):
    stream.begin(torch.device(device), *key)
    try:
        x = torch.ones(64, device=device)
        return torch.nn.functional.dropout(x, 0.5).cpu(), torch.rand(3, device=device).cpu(), random.random()
    finally:
        stream.end()


def _outer_state(device):
    cuda = [torch.cuda.get_rng_state(device)] if device == "cuda" else []
    return torch.get_rng_state(), *cuda, random.getstate()


def _same(a, b):
    return torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))],
)
def test_a_batch_draws_the_same_whatever_was_drawn_before_and_the_outer_state_comes_back(device):
    stream = BatchRandomness(seed=3)
    first = _draws(stream, device, 0, 1, 5)
    torch.rand(1000, device=device)  # what a DataLoader, Lightning or a callback might draw in between
    random.random()
    outer = _outer_state(device)
    again = _draws(stream, device, 0, 1, 5)
    assert _same(first, again)
    after = _outer_state(device)  # the batch leaked nothing into the global generators
    assert all(torch.equal(x, y) for x, y in zip(outer[:-1], after[:-1], strict=True)) and outer[-1] == after[-1]
    assert not _same(first, _draws(stream, device, 0, 1, 6))  # the next batch
    assert not _same(first, _draws(stream, device, 1, 1, 5))  # another rank
    assert not _same(first, _draws(BatchRandomness(seed=4), device, 0, 1, 5))  # another run seed


def test_a_batch_that_raised_gives_back_the_outer_state_at_the_next_begin():
    stream = BatchRandomness(seed=0)
    before = torch.get_rng_state()
    stream.begin(torch.device("cpu"), 0, 0, 0)
    torch.rand(5)  # ...and the step raised: no end()
    stream.begin(torch.device("cpu"), 0, 0, 1)
    stream.end()
    assert torch.equal(torch.get_rng_state(), before)


def test_stream_seeds_are_63_bit_and_differ_for_neighbouring_keys():
    seeds = {stream_seed(0, 0, 0, b) for b in range(1000)}
    assert len(seeds) == 1000 and all(0 <= s < 2**63 for s in seeds)


def test_the_training_loader_draws_nothing_from_the_global_generator():
    loader = ResumableLoader(list(range(10)), batch_size=3, seed=0, collate_fn=list, progress=lambda: (0, 0))
    before = torch.get_rng_state()
    assert sorted(sum(list(loader), [])) == list(range(10))
    assert torch.equal(torch.get_rng_state(), before)
