import random
from collections import Counter

import pytest

from nlp_lib.data.sampling import BalancedBatchSampler, BucketBatchSampler, budget_batches, step_balance


def _sizes(n=3000, seed=0):
    rng = random.Random(seed)
    return [max(3, min(120, round(rng.gammavariate(4.2, 37 / 4.2)))) for _ in range(n)]  # SST-like node counts


@pytest.mark.parametrize("replicas", [1, 3, 8])
def test_every_example_once_every_rank_the_same_number_of_batches(replicas):
    sizes = _sizes()
    samplers = [BalancedBatchSampler(sizes, 2000, num_replicas=replicas, rank=r, seed=5) for r in range(replicas)]
    for epoch in (0, 1):
        per_rank = []
        for s in samplers:
            s.set_epoch(epoch)
            per_rank.append(list(s))
        assert len({len(b) for b in per_rank}) == 1  # no rank waits at the end of the epoch
        seen = Counter(i for batches in per_rank for b in batches for i in b)
        assert set(seen) == set(range(len(sizes))) and set(seen.values()) == {1}
        assert all(sum(sizes[i] for i in b) <= 2000 for batches in per_rank for b in batches)


def test_plan_depends_on_seed_and_epoch_only():
    sizes = _sizes(500)
    a = BalancedBatchSampler(sizes, 700, num_replicas=2, rank=0, seed=1)
    b = BalancedBatchSampler(sizes, 700, num_replicas=2, rank=0, seed=1)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)


def test_ranks_carry_nearly_equal_work_each_step():
    sizes = _sizes()
    plan = BalancedBatchSampler(sizes, 2000, num_replicas=8, seed=0).plan()
    mean, worst = step_balance([[sum(sizes[i] for i in b) for b in step] for step in plan])
    assert mean < 1.05, (mean, worst)


def test_budget_batches_never_exceed_the_budget_unless_one_example_does():
    assert budget_batches([5, 5, 5, 12, 1], [0, 1, 2, 3, 4], 10) == [[0, 1], [2], [3], [4]]


def test_skip_resumes_inside_an_epoch():
    sizes = _sizes(400)
    s = BalancedBatchSampler(sizes, 500, num_replicas=2, rank=1, seed=3)
    full = list(s)
    s.skip = 4
    assert list(s) == full[4:]
    assert list(s) == full  # the skip applies once


def test_bad_arguments():
    with pytest.raises(ValueError, match="budget"):
        BalancedBatchSampler([1, 2], 0)
    with pytest.raises(ValueError, match="rank"):
        BalancedBatchSampler([1, 2], 5, num_replicas=2, rank=2)


def test_sst_over_8_ranks_within_5_percent(sst_trees):
    from nlp_lib.data.ptb import read_ptb_trees

    sizes = [len(t) for t in read_ptb_trees(sst_trees / "train.txt").trees]
    samplers = [BalancedBatchSampler(sizes, 2000, num_replicas=8, rank=r, seed=0) for r in range(8)]
    per_rank = [list(s) for s in samplers]
    assert len({len(b) for b in per_rank}) == 1
    steps = [[sum(sizes[i] for i in b) for b in step] for step in zip(*per_rank, strict=True)]
    mean, worst = step_balance(steps)
    assert mean <= 1.05 and worst <= 1.05, (mean, worst)


@pytest.mark.parametrize("replicas", [1, 2, 3, 8])
def test_bucket_batches_every_example_once_equal_counts_similar_lengths(replicas):
    from nlp_lib.data.sampling import BucketBatchSampler

    rng = random.Random(3)
    sizes = [rng.randint(1, 60) for _ in range(500)] + [400]  # one longer than the budget
    plans = []
    for rank in range(replicas):
        s = BucketBatchSampler(sizes, 600, num_replicas=replicas, rank=rank, seed=5)
        s.set_epoch(2)
        plans.append(list(s))
    assert len({len(p) for p in plans}) == 1
    seen = sorted(i for p in plans for b in p for i in b)
    assert seen == list(range(len(sizes)))
    batches = [b for p in plans for b in p]
    for b in batches:
        assert len(b) * max(sizes[i] for i in b) <= 600 or len(b) <= 2  # over budget: a lone (or split) example
    padded = sum(len(b) * max(sizes[i] for i in b) for b in batches)
    # similar lengths together: little padding (random batches of 20 would pad to ~2x the tokens)
    assert padded < 1.25 * sum(sizes)
    again = BucketBatchSampler(sizes, 600, num_replicas=replicas, rank=0, seed=5)
    again.set_epoch(2)
    assert list(again) == plans[0]


def test_bucket_batches_with_only_oversized_examples_still_deal_evenly():
    from nlp_lib.data.sampling import BucketBatchSampler

    plans = [list(BucketBatchSampler([50] * 5, 10, num_replicas=2, rank=r)) for r in range(2)]
    assert len(plans[0]) == len(plans[1]) and sorted(i for p in plans for b in p for i in b) == list(range(5))


def test_bucket_batches_cost_each_side_of_a_pair_separately():
    from nlp_lib.data.sampling import BucketBatchSampler

    pairs = [(10, 1), (1, 10)] * 20  # together a batch would pad to 10 + 10 per pair
    batches = list(BucketBatchSampler(pairs, 22, seed=1))
    for b in batches:
        assert len(b) * (max(pairs[i][0] for i in b) + max(pairs[i][1] for i in b)) <= 22 or len(b) == 1
    assert sorted(i for b in batches for i in b) == list(range(40))


def test_seq2seq_loader_with_a_token_budget_covers_every_pair_once(tmp_path):
    from nlp_lib.data.builders import scan_data

    dm = scan_data(token_budget=600, cache=False)
    dm.prepare()
    batches = list(dm.train_dataloader())
    assert sum(b.src.shape[0] for b in batches) == len(dm.splits["train"])
    assert all(b.src.numel() + b.tgt_in.numel() <= 600 + 2 * b.src.shape[0] for b in batches)  # + BOS/EOS


def test_bucket_batches_on_many_ranks_with_few_examples_terminate():
    # five batches on four ranks: splitting the only pair made six, pairing made five again (a loop)
    sampler = BucketBatchSampler([1, 1, 40, 40, 40, 40], 50, num_replicas=4, rank=0)
    steps = sampler.plan()
    assert len(steps) == 1 and sorted(i for b in steps[0] for i in b) == list(range(6))


def test_samplers_take_length_arrays_and_plan_each_epoch_once():
    import numpy as np

    sizes = np.array([[3, 4], [1, 2], [7, 1], [2, 2]] * 50)
    sampler = BucketBatchSampler(sizes, 40, seed=3)  # a [n, sides] array, as read from Arrow offsets
    assert sampler.plan() == BucketBatchSampler([tuple(s) for s in sizes.tolist()], 40, seed=3).plan()
    assert len(sampler) == len(sampler.plan()) and sampler._steps() is sampler._steps()  # planned once
    sampler.set_epoch(1)
    assert sampler.plan() != BucketBatchSampler(sizes, 40, seed=3).plan()


@pytest.mark.parametrize(("n", "batch", "replicas"), [(1000, 64, 1), (1000, 64, 3), (10, 4, 4), (7, 1, 2)])
def test_height_batches_every_tree_once_similar_heights_equal_counts(n, batch, replicas):
    from nlp_lib.data.sampling import HeightBatchSampler

    rng = random.Random(n)
    heights = [max(1, int(rng.paretovariate(1.2) * 8)) for _ in range(n)]  # a long tail, as ListOps
    plans = [HeightBatchSampler(heights, batch, num_replicas=replicas, rank=r, seed=3) for r in range(replicas)]
    batches = [list(p) for p in plans]
    seen = Counter(i for rank in batches for b in rank for i in b)
    assert len({len(b) for b in batches}) == 1  # the same number of steps on every rank
    steps = -(-n // batch)  # batches in all, rounded up
    steps = -(-steps // replicas)  # per rank, rounded up
    capped = steps * replicas > n - n % replicas  # too few trees for full batches
    assert all(0 < len(b) <= batch + capped for rank in batches for b in rank)
    assert sorted(seen) == list(range(n)) and set(seen.values()) == {1}  # every tree exactly once
    # sorted runs: a batch spans no more heights than the sorted order forces
    order = sorted(range(n), key=heights.__getitem__)
    spread = sum(max(heights[i] for i in b) - min(heights[i] for i in b) for rank in batches for b in rank)
    assert spread <= heights[order[-1]] - heights[order[0]] + sum(len(r) for r in batches)
    assert list(HeightBatchSampler(heights, batch, num_replicas=replicas, seed=3)) == batches[0]  # seeded
    again = plans[0]
    again.set_epoch(1)
    assert list(again) != batches[0] or len(batches[0]) == 1


def test_height_batches_hold_a_tall_tree_among_tall_ones_and_cut_level_steps():
    from nlp_lib.data.sampling import HeightBatchSampler

    heights = [5] * 630 + [400] * 10  # ten deep trees among shallow ones
    random_steps = [max(heights[i] for i in b) for b in BalancedBatchSampler([1] * 640, 64, seed=0)]
    height_steps = [max(heights[i] for i in b) for b in HeightBatchSampler(heights, 64, seed=0)]
    assert sum(height_steps) == 400 + 9 * 5 and len(height_steps) == 10
    assert sum(random_steps) > 3 * sum(height_steps)
