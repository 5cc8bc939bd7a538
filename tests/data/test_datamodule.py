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


def test_batches_pin_and_keep_their_reversed_schedule():
    """pin_memory=True (CUDA training) works on every batch type; a reversed tree schedule moves along."""
    import torch

    from nlp_lib.structure import TreeBatch
    from nlp_lib.structure.seq2seq import Seq2SeqBatch
    from nlp_lib.structure.sequence import SequenceBatch

    tree = TreeBatch.from_arrays([[2, 2, -1], [-1]], [[3, 4, -1], [5]])
    rev = tree.reversed()
    seq = Seq2SeqBatch.from_ids([[4, 5], [6]], [[7], [8, 9]], ["a", "b"])
    sent = SequenceBatch(torch.tensor([[3, 4], [5, 0]]), torch.tensor([2, 1]), torch.tensor([0, 1]))
    if not torch.cuda.is_available():  # pinning needs a CUDA runtime; the moves below do not
        moved = tree.to("cpu")
        assert moved.__dict__["_reversed"][0].order.tolist() == rev[0].order.tolist()
        assert seq.to("cpu").references == ["a", "b"] and sent.to("cpu").lengths.tolist() == [2, 1]
        return
    for batch in (tree, seq, sent):
        pinned = batch.pin_memory()
        assert type(pinned) is type(batch)
        assert all(v.is_pinned() for v in vars(pinned).values() if isinstance(v, torch.Tensor))
    assert tree.pin_memory().__dict__["_reversed"][1].is_pinned()
