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

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = ["BalancedBatchSampler", "BucketBatchSampler", "HeightBatchSampler", "budget_batches", "step_balance"]


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


def _index_type(n: int) -> type:
    return np.int32 if n < 1 << 31 else np.int64


def _rank_of(order: np.ndarray) -> np.ndarray:
    """Each example's position in ``order`` (the inverse permutation)."""
    rank = np.empty(len(order), dtype=_index_type(len(order)))
    rank[order] = np.arange(len(order), dtype=rank.dtype)
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
        self.sizes = np.asarray(sizes, dtype=np.int32).reshape(len(sizes))  # a length column will do
        self.budget = budget
        self.num_replicas = num_replicas
        self.rank = rank
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.skip = 0  # batches of this rank to skip at the next iteration (a resumed epoch)
        self._planned: tuple[int, list[list[np.ndarray]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _generator_order(self) -> tuple[torch.Generator, np.ndarray]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        n = len(self.sizes)
        order = torch.randperm(n, generator=g).numpy() if self.shuffle else np.arange(n)
        return g, order.astype(_index_type(n), copy=False)  # int32 below 2**31: half the pages

    def _shuffled_steps(self, batches: list[np.ndarray], g: torch.Generator) -> list[list[np.ndarray]]:
        steps = _chunks(batches, self.num_replicas)
        if not self.shuffle:
            return steps
        perm = torch.randperm(len(steps), generator=g).tolist()
        return [steps[i] for i in perm]

    def _steps(self) -> list[list[np.ndarray]]:
        """This epoch's steps as index arrays, planned once per epoch (``len`` and ``iter`` share it)."""
        if self._planned is None or self._planned[0] != self.epoch:
            self._planned = (self.epoch, self._plan_arrays())
        return self._planned[1]

    def _plan_arrays(self) -> list[list[np.ndarray]]:
        n, r = len(self.sizes), self.num_replicas
        g, order = self._generator_order()
        total = int(self.sizes.sum())
        count = max(math.ceil(total / (self.budget * _FILL)), 1)
        count = min(math.ceil(count / r) * r, n - n % r if n >= r else r)
        # largest first (stable on the shuffled order), each into the lightest batch so far
        by_size = order[np.argsort(-self.sizes[order], kind="stable")].tolist()
        sizes = self.sizes.tolist()
        heap = [(0, k) for k in range(count)]
        members: list[list[int]] = [[] for _ in range(count)]
        for i in by_size:
            load, k = heapq.heappop(heap)
            members[k].append(i)
            heapq.heappush(heap, (load + sizes[i], k))
        rank = _rank_of(order)
        batches = []
        for b in members:  # examples of a batch in shuffled order
            arr = np.asarray(b, dtype=np.int64)
            batches.append(arr[np.argsort(rank[arr], kind="stable")])
        load = [int(self.sizes[b].sum()) for b in batches]
        batches = [batches[k] for k in sorted(range(count), key=load.__getitem__)]  # stable, by size
        return self._shuffled_steps(batches, g)

    def plan(self) -> list[list[list[int]]]:
        """This epoch's steps: per step, one batch (a list of example indices) per rank."""
        return [[b.tolist() for b in step] for step in self._steps()]

    def __iter__(self) -> Iterator[list[int]]:
        steps = self._steps()
        skip, self.skip = self.skip, 0
        for step in steps[skip:]:
            yield step[self.rank].tolist()

    def __len__(self) -> int:
        return len(self._steps())


class BucketBatchSampler(BalancedBatchSampler):
    """Batches of similar lengths for padded sequences, capped by a padded-token budget.

    A padded batch costs ``len(batch) * longest`` tokens, so mixing lengths (as
    :class:`BalancedBatchSampler` does for unpadded trees) would waste most of it on padding.
    Here the examples are sorted by length (ties in the epoch's shuffled order), cut into
    consecutive batches of at most ``budget`` padded tokens (an example longer than the budget
    alone), the largest batches split in two until every rank gets the same number (or, with
    fewer examples than that needs, the two shortest paired until it does), neighbouring
    batches (similar costs) dealt out one per rank per step, and the steps shuffled. Every example
    is used exactly once per epoch; the plan depends on ``(seed, epoch)`` only.

    Args: as :class:`BalancedBatchSampler`; ``sizes``: tokens per example, or per example a tuple
    of lengths padded separately (a seq2seq pair's source and target: a batch then costs
    ``len(batch) * (longest source + longest target)``); ``budget``: padded tokens per batch.
    """

    def __init__(self, sizes: Sequence[int | Sequence[int]] | np.ndarray, budget: int, **kwargs: Any) -> None:
        parts = np.asarray(sizes, dtype=np.int32)  # a [n] or [n, sides] array of lengths will do
        self.parts = parts.reshape(len(parts), -1)
        super().__init__(self.parts.sum(axis=1), budget, **kwargs)

    def _plan_arrays(self) -> list[list[np.ndarray]]:
        n, r = len(self.sizes), self.num_replicas
        g, order = self._generator_order()
        by_length = np.lexsort((_rank_of(order), self.sizes)).astype(_index_type(n))  # ties in shuffled order
        batches: list[np.ndarray] = []
        start, window = 0, 64
        while start < n:  # consecutive batches: each grows while its padded cost fits the budget
            while True:
                end = min(n, start + window)
                longest = np.maximum(self.parts[by_length[start:end]], 1)  # an empty side still pads to 1
                padded = np.maximum.accumulate(longest, axis=0).sum(axis=1)
                over = np.flatnonzero(padded * np.arange(1, end - start + 1) > self.budget)
                if over.size or end == n:
                    break
                window *= 2
            k = max(int(over[0]), 1) if over.size else end - start
            batches.append(by_length[start : start + k])
            start += k
            window = max(2 * k, 16)
        # the same number of batches on every rank: split the fullest up to the next multiple of
        # the ranks, or, with too few examples for that, pair the two shortest down to the previous one
        grow = n >= -(-len(batches) // r) * r
        while len(batches) % r:
            if not grow:
                batches[0:2] = [np.concatenate([batches[0], batches[1]])]
                continue
            k = max(range(len(batches)), key=lambda j: (len(batches[j]), -j))
            half = len(batches[k]) // 2
            batches[k : k + 1] = [batches[k][:half], batches[k][half:]]
        return self._shuffled_steps(batches, g)


class HeightBatchSampler(BalancedBatchSampler):
    """Batches of ``batch_size`` trees of similar heights, for the level schedule on deep trees.

    The level schedule runs one step per level of a batch's tallest tree, so one deep tree among
    shallow ones makes every step after theirs run for it alone (a ListOps expression of 900
    tokens has ~900 levels; the median one ~20). Here the trees are sorted by height (ties in the
    epoch's shuffled order) and cut into consecutive batches of at most ``batch_size`` (of sizes
    that differ by at most one; the same number on every rank, so with fewer trees than ranks
    times batches a batch may hold one more), neighbouring batches dealt out
    one per rank per step (ranks wait for each other's levels alike), and the steps shuffled.
    Every tree is used exactly once per epoch; the plan depends on ``(seed, epoch)`` only.

    Args: as :class:`BalancedBatchSampler`; ``sizes``: each tree's height in levels (a length
    column will do); ``budget``: trees per batch.
    """

    def _plan_arrays(self) -> list[list[np.ndarray]]:
        n, r = len(self.sizes), self.num_replicas
        g, order = self._generator_order()
        by_height = np.lexsort((_rank_of(order), self.sizes))  # by height, ties in shuffled order
        count = math.ceil(math.ceil(n / self.budget) / r) * r
        count = min(count, n - n % r)  # no empty batch (n >= r is checked)
        return self._shuffled_steps(np.array_split(by_height, count), g)
