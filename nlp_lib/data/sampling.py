"""Batches by a node (or token) budget, balanced across distributed ranks.

Fixed-size batches of trees carry very different amounts of work (SST sentences have 3 to 100+
nodes), so with data parallelism the rank that drew the largest batch sets the pace of every step.
:class:`BalancedBatchSampler` instead

1. shuffles the examples (seeded by ``seed`` and the epoch: every rank computes the same plan),
2. chooses the number of batches: enough for batches of at most ``budget`` nodes on average, rounded
   up to a multiple of ``num_replicas`` (every rank gets the same number of batches, none waits at
   the end of an epoch; no example is dropped or repeated),
3. fills the batches by "longest processing time first": largest examples first, each into the
   currently lightest batch (ties broken by the shuffle), so all batches end up within about one
   small example of each other,
4. deals the batches, sorted by size, out in groups of ``num_replicas`` neighbours (one step: a
   batch per rank) and shuffles the steps.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Sampler

__all__ = ["BalancedBatchSampler", "BucketBatchSampler", "budget_batches", "step_balance"]


def budget_batches(sizes: Sequence[int], order: Sequence[int], budget: int) -> list[list[int]]:
    """Pack examples, in ``order``, into batches of at most ``budget`` total size.

    An example larger than the budget gets a batch of its own.
    """
    batches: list[list[int]] = []
    cur: list[int] = []
    total = 0
    for i in order:
        s = sizes[i]
        if cur and total + s > budget:
            batches.append(cur)
            cur, total = [], 0
        cur.append(i)
        total += s
    if cur:
        batches.append(cur)
    return batches


_FILL = 0.97  # aim batches a little under the budget, so that the balanced ones stay within it


def _chunks(items: list, r: int) -> list:
    return [items[i : i + r] for i in range(0, len(items), r)]


def _rank_of(order: list[int]) -> list[int]:
    rank = [0] * len(order)
    for pos, i in enumerate(order):
        rank[i] = pos
    return rank


def step_balance(steps: Sequence[Sequence[int]]) -> tuple[float, float]:
    """``(mean, worst)`` over steps of the largest rank's size divided by the mean rank's size."""
    ratios = [max(s) / (sum(s) / len(s)) for s in steps if sum(s) > 0]
    return (sum(ratios) / len(ratios), max(ratios)) if ratios else (1.0, 1.0)


class BalancedBatchSampler(Sampler[list[int]]):
    """Budgeted, rank-balanced batches of example indices (see the module docstring).

    Batches hold about ``budget`` nodes: their mean is under ``0.97 * budget`` and they differ from
    each other by about one small example, so one can exceed the budget only by that much.

    Args:
        sizes: Work per example (nodes of a tree, tokens of a sequence).
        budget: Target total size of a batch.
        num_replicas: Number of ranks (1 without distribution).
        rank: This rank.
        seed: Seed of the plan; each epoch's plan depends on ``(seed, epoch)`` only.
        shuffle: Shuffle the examples and the steps (off: the examples' order, for evaluation).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        budget: int,
        *,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        if budget < 1:
            raise ValueError(f"the batch budget must be at least 1, got {budget}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        if len(sizes) < num_replicas:
            raise ValueError(f"{len(sizes)} examples cannot feed {num_replicas} ranks")
        self.sizes = list(sizes)
        self.budget = budget
        self.num_replicas = num_replicas
        self.rank = rank
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.skip = 0  # batches of this rank to skip at the next iteration (a resumed epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def plan(self) -> list[list[list[int]]]:
        """This epoch's steps: per step, one batch (a list of example indices) per rank."""
        n, r = len(self.sizes), self.num_replicas
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(n, generator=g).tolist() if self.shuffle else list(range(n))
        total = sum(self.sizes)
        count = max(math.ceil(total / (self.budget * _FILL)), 1)
        count = min(math.ceil(count / r) * r, n - n % r if n >= r else r)
        # largest first (stable on the shuffled order), each into the lightest batch so far
        by_size = sorted(order, key=lambda i: -self.sizes[i])
        heap = [(0, k) for k in range(count)]
        batches: list[list[int]] = [[] for _ in range(count)]
        for i in by_size:
            load, k = heapq.heappop(heap)
            batches[k].append(i)
            heapq.heappush(heap, (load + self.sizes[i], k))
        rank = _rank_of(order)
        for b in batches:  # examples of a batch in shuffled order
            b.sort(key=rank.__getitem__)
        batches.sort(key=self._size)
        steps = _chunks(batches, r)
        if not self.shuffle:
            return steps
        perm = torch.randperm(len(steps), generator=g).tolist()
        return [steps[i] for i in perm]

    def _size(self, batch: list[int]) -> int:
        return sum(self.sizes[i] for i in batch)

    def __iter__(self) -> Iterator[list[int]]:
        steps = self.plan()
        skip, self.skip = self.skip, 0
        for step in steps[skip:]:
            yield step[self.rank]

    def __len__(self) -> int:
        return len(self.plan())


class BucketBatchSampler(BalancedBatchSampler):
    """Batches of similar lengths for padded sequences, capped by a padded-token budget.

    A padded batch costs ``len(batch) * longest`` tokens, so mixing lengths (as
    :class:`BalancedBatchSampler` does for unpadded trees) would waste most of it on padding.
    Here the examples are sorted by length (ties in the epoch's shuffled order), cut into
    consecutive batches of at most ``budget`` padded tokens (an example longer than the budget
    alone), the largest batches split in two until every rank gets the same number, neighbouring
    batches (similar costs) dealt out one per rank per step, and the steps shuffled. Every example
    is used exactly once per epoch; the plan depends on ``(seed, epoch)`` only.

    Args: as :class:`BalancedBatchSampler`; ``sizes``: tokens per example, or per example a tuple
    of lengths padded separately (a seq2seq pair's source and target: a batch then costs
    ``len(batch) * (longest source + longest target)``); ``budget``: padded tokens per batch.
    """

    def __init__(self, sizes: Sequence[int | Sequence[int]], budget: int, **kwargs: Any) -> None:
        self.parts = [tuple(s) if isinstance(s, Sequence) else (s,) for s in sizes]
        super().__init__([sum(p) for p in self.parts], budget, **kwargs)

    def plan(self) -> list[list[list[int]]]:
        n, r = len(self.sizes), self.num_replicas
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(n, generator=g).tolist() if self.shuffle else list(range(n))
        rank = _rank_of(order)
        by_length = sorted(range(n), key=lambda i: (self.sizes[i], rank[i]))
        batches: list[list[int]] = []
        cur: list[int] = []
        longest = [0] * len(self.parts[0]) if self.parts else []
        for i in by_length:
            grown = [max(a, max(b, 1)) for a, b in zip(longest, self.parts[i], strict=True)]
            if cur and sum(grown) * (len(cur) + 1) > self.budget:
                batches.append(cur)
                cur, grown = [], [max(b, 1) for b in self.parts[i]]
            cur.append(i)
            longest = grown
        if cur:
            batches.append(cur)
        while len(batches) % r:  # the same number of batches on every rank: split the fullest
            k = max(range(len(batches)), key=lambda j: (len(batches[j]), -j))
            if len(batches[k]) < 2:  # only single examples (each over the budget): pair the two shortest
                batches[0:2] = [batches[0] + batches[1]]
                continue
            half = len(batches[k]) // 2
            batches[k : k + 1] = [batches[k][:half], batches[k][half:]]
        steps = _chunks(batches, r)
        if not self.shuffle:
            return steps
        perm = torch.randperm(len(steps), generator=g).tolist()
        return [steps[i] for i in perm]
