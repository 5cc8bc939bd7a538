"""A training DataLoader that resumes mid-epoch: a killed run continues with the very next batch.

The order of an epoch's examples depends only on ``(seed, epoch)``. The loader's state (the epoch
and how many of its batches the training loop has processed) is saved in every checkpoint
(Lightning stores the ``state_dict`` of loaders that have one), and restoring it makes the next
iteration skip exactly the batches already trained on. The loader draws nothing from torch's global
generator: its worker seed comes from a generator of its own, seeded by ``seed`` (a plain
``DataLoader`` takes one from the global generator each time an iterator starts, which a resumed
run does at another point than the uninterrupted one). With each training batch's random numbers
drawn from a stream keyed by its place in training (:mod:`nlp_lib.tasks.randomness`), a resumed
run ends with the same weights as an uninterrupted one, bit for bit, dropout included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from nlp_lib.data.sampling import BalancedBatchSampler

__all__ = ["EpochSampler", "ResumableLoader", "trainer_progress", "trainer_ranks"]


def trainer_ranks(trainer: Any) -> tuple[int, int]:
    """``(world size, this rank)`` of a trainer, ``(1, 0)`` without one."""
    return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)


def trainer_pins_memory(trainer: Any) -> bool:
    """Whether a trainer's batches go to a CUDA device: its loaders then pin them (``pin_memory=True``),
    so the move (``batch.to(device, non_blocking=True)``, as Lightning does it) overlaps compute."""
    if trainer is None:
        return False
    try:
        return trainer.strategy.root_device.type == "cuda"
    except (AttributeError, RuntimeError):  # a strategy not set up yet
        return False


def trainer_progress(trainer: Any) -> tuple[int, int]:
    """A trainer's epoch and the batches it has processed in it (what a loader's state records).

    Saved at the end of an epoch, it points at the start of the next one.
    """
    if trainer is None:
        return 0, 0
    done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
    if done >= trainer.num_training_batches:
        return trainer.current_epoch + 1, 0
    return trainer.current_epoch, done


class EpochSampler(Sampler[int]):
    """Shuffles ``range(n)`` with a generator seeded by ``seed + epoch``; can skip a prefix once.

    With ``num_replicas > 1`` each rank takes every ``num_replicas``-th example of the (padded)
    shuffle, as ``DistributedSampler`` does: equal shares, the same plan on every rank.
    """

    def __init__(self, n: int, seed: int, num_replicas: int = 1, rank: int = 0) -> None:
        self.n = n
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.skip = 0  # indices to skip at the start of the next iteration (a resumed epoch)

    def set_epoch(self, epoch: int) -> None:  # Lightning calls it before every epoch
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.n // self.num_replicas)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        if self.num_replicas > 1:
            pad = len(self) * self.num_replicas - self.n  # pad to equal shares (cyclically: pad may exceed n)
            order += (order * -(-pad // max(self.n, 1)))[:pad]
            order = order[self.rank :: self.num_replicas]
        skip, self.skip = self.skip, 0
        return iter(order[skip:])


class ResumableLoader(DataLoader):
    """A shuffled training ``DataLoader`` whose position survives a checkpoint (see the module docstring).

    Args:
        dataset: The examples.
        batch_size: Examples per batch.
        seed: Seed of the epoch orders.
        collate_fn: Builds a batch (runs in the workers).
        progress: Returns ``(epoch, batches processed in it)`` when a checkpoint is written (the
            trainer's own counters).
        num_workers: DataLoader workers.
        batch_sampler: Batches by a node budget instead of ``batch_size`` (it shards by rank itself).
        num_replicas: Data-parallel ranks sharing the epoch (``batch_size`` batching).
        rank: This rank.
        pin_memory: Pin batches in page-locked memory (CUDA training: faster, non-blocking copies).
    """

    @classmethod
    def for_trainer(
        cls,
        dataset: Sized,
        trainer: Any,
        *,
        batch_size: int | None,
        seed: int,
        collate_fn: Callable,
        num_workers: int = 0,
        batch_sampler: BalancedBatchSampler | None = None,
    ) -> ResumableLoader:
        """The training loader of a DataModule: ranks and progress read from its ``trainer``."""
        replicas, rank = trainer_ranks(trainer)
        return cls(
            dataset,
            batch_size=batch_size,
            seed=seed,
            collate_fn=collate_fn,
            progress=lambda: trainer_progress(trainer),
            num_workers=num_workers,
            batch_sampler=batch_sampler,
            num_replicas=replicas,
            rank=rank,
            pin_memory=trainer_pins_memory(trainer),
        )

    def __init__(
        self,
        dataset: Sized,
        *,
        batch_size: int | None,
        seed: int,
        collate_fn: Callable,
        progress: Callable[[], tuple[int, int]],
        num_workers: int = 0,
        batch_sampler: BalancedBatchSampler | None = None,
        num_replicas: int = 1,
        rank: int = 0,
        pin_memory: bool = False,
    ) -> None:
        self.epoch_sampler = None
        self.budget_sampler = batch_sampler
        if batch_sampler is None:
            self.epoch_sampler = EpochSampler(len(dataset), seed, num_replicas, rank)
            kwargs: dict[str, Any] = {"batch_size": batch_size, "sampler": self.epoch_sampler}
        else:  # batches by a node budget, balanced across ranks
            kwargs = {"batch_sampler": batch_sampler}
        super().__init__(
            dataset,
            collate_fn=collate_fn,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
            pin_memory=pin_memory,
            generator=torch.Generator().manual_seed(seed),  # the workers' seed: never the global generator's
            **kwargs,
        )
        self._progress = progress

    def _plan_key(self) -> Any:
        b = self.budget_sampler
        return self.batch_size if b is None else {"budget": b.budget, "replicas": b.num_replicas}

    def state_dict(self) -> dict[str, Any]:
        epoch, batches = self._progress()
        return {"epoch": int(epoch), "batches": int(batches), "batch_size": self._plan_key()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("batch_size") != self._plan_key():
            raise ValueError(
                f"the checkpoint was written with batches of {state.get('batch_size')}, this run makes "
                f"{self._plan_key()}: resume with the same data.batch_size / data.node_budget"
            )
        sampler = self.epoch_sampler if self.epoch_sampler is not None else self.budget_sampler
        sampler.set_epoch(int(state["epoch"]))
        if self.epoch_sampler is not None:
            sampler.skip = int(state["batches"]) * self.batch_size  # examples
        else:
            sampler.skip = int(state["batches"])  # batches
