"""The base of every DataModule here: :class:`SplitLoaders`, the train / val / test loaders of encoded splits.

Training batches come from a :class:`~nlp_lib.data.resumable.ResumableLoader` (a killed run resumes
mid-epoch); evaluation batches are built once and served the same every epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.data import DataLoader

from nlp_lib.data.resumable import ResumableLoader, trainer_ranks
from nlp_lib.errors import DataError

__all__ = ["SplitLoaders", "eval_batches"]


def eval_batches(examples: list, batch_size: int, collate: Callable) -> list:
    """Evaluation batches, built once (the same every epoch) and served by ``DataLoader(..., batch_size=None)``."""
    return [collate(examples[i : i + batch_size]) for i in range(0, len(examples), batch_size)]


class SplitLoaders:
    """The train / val / test loaders of a DataModule holding encoded examples in ``self.splits``.

    Training: :class:`ResumableLoader` (sharded by rank, its position in checkpoints), by
    ``batch_size`` or, when :meth:`budget_sampler` returns one, by a size budget. Evaluation: the
    same batches every epoch, built once (in :meth:`eval_examples` order). A DataModule using it
    sets ``splits``, ``batch_size``, ``eval_batch_size``, ``seed``, ``num_workers`` and
    ``_eval_batches`` (a dict) and defines ``prepare()`` and ``collate()``.
    """

    def budget_sampler(self, split: str, replicas: int, rank: int) -> Any:
        """A batch sampler by size budget for the training split, or None (fixed ``batch_size``)."""
        return None

    def eval_examples(self, split: str) -> list:
        """A split's examples in evaluation order (padded sequences: by length, less padding)."""
        return self.splits[split]

    def _loader(self, split: str, *, train: bool) -> Any:
        self.prepare()
        if split not in self.splits:
            raise DataError(f"no '{split}' split in this data (have: {', '.join(self.splits)})")
        if not train:
            if split not in self._eval_batches:
                self._eval_batches[split] = eval_batches(self.eval_examples(split), self.eval_batch_size, self.collate)
            return DataLoader(self._eval_batches[split], batch_size=None, shuffle=False)
        replicas, rank = trainer_ranks(self.trainer)
        budget = self.budget_sampler(split, replicas, rank)
        return ResumableLoader.for_trainer(  # its position goes into checkpoints: a killed run resumes mid-epoch
            self.splits[split],
            self.trainer,
            batch_size=None if budget is not None else self.batch_size,
            batch_sampler=budget,
            seed=self.seed,
            collate_fn=self.collate,  # runs in the DataLoader workers (tree schedules too)
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> Any:
        return self._loader("train", train=True)

    def val_dataloader(self) -> Any:
        return self._loader("val", train=False)

    def test_dataloader(self) -> Any:
        return self._loader("test", train=False)
