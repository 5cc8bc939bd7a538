"""SplitLoaders, the base of every DataModule: training through a ResumableLoader, evaluation batches built once."""

from dataclasses import dataclass

import pytest

from nlp_lib.data.datamodule import SplitLoaders, eval_batches
from nlp_lib.data.resumable import ResumableLoader
from nlp_lib.errors import DataError


@dataclass(frozen=True)
class Batch:
    items: tuple[int, ...]


class Numbers(SplitLoaders):
    """The smallest DataModule: integers as examples, no Lightning."""

    trainer = None

    def __init__(self) -> None:
        self.splits = {"train": list(range(10)), "val": [5, 3, 8, 1]}
        self.batch_size, self.eval_batch_size, self.seed, self.num_workers = 4, 3, 0, 0
        self._eval_batches: dict = {}

    def prepare(self) -> None:
        pass

    def collate(self, examples: list[int]) -> Batch:
        return Batch(tuple(int(x) for x in examples))

    def eval_examples(self, split: str) -> list:
        return sorted(self.splits[split])


def test_evaluation_batches_are_built_once_in_evaluation_order():
    dm = Numbers()
    first = list(dm.val_dataloader())
    assert [b.items for b in first] == [(1, 3, 5), (8,)]
    assert all(a is b for a, b in zip(first, dm.val_dataloader(), strict=True))


def test_training_batches_come_from_a_resumable_loader_over_every_example():
    loader = Numbers().train_dataloader()
    assert isinstance(loader, ResumableLoader) and loader.batch_size == 4
    assert sorted(x for b in loader for x in b.items) == list(range(10))


def test_a_split_the_data_lacks_is_named():
    with pytest.raises(DataError, match=r"no 'test' split in this data \(have: train, val\)"):
        Numbers().test_dataloader()


def test_eval_batches_cut_in_order():
    assert eval_batches([1, 2, 3, 4, 5], 2, tuple) == [(1, 2), (3, 4), (5,)]
