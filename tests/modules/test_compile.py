"""torch.compile'd cells compile a handful of graphs, then no more: new level sizes, batch sizes and
sequence lengths reuse them (counted with dynamo's CompileCounter backend; eager kernels, so fast)."""

import functools
import random

import pytest
import torch
from torch._dynamo.testing import CompileCounter

from nlp_lib.cells import ChildSumTreeLSTMCell, LSTMCell, NaryTreeLSTMCell
from nlp_lib.models import TreeClassifier
from nlp_lib.modules import SequenceRunner, seq_runner
from nlp_lib.structure import TreeBatch
from nlp_lib.structure.random_trees import random_binary_tree, random_tree


@pytest.fixture
def counter(monkeypatch):
    """Every torch.compile in the library goes through a counting backend; a fresh dynamo state."""
    torch._dynamo.reset()
    count = CompileCounter()
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=count))
    monkeypatch.setattr(seq_runner, "_COMPILED", [])
    # above the default (8), so a recompile per size shows up here instead of a silent eager fallback
    with torch._dynamo.config.patch(recompile_limit=64):
        yield count
    torch._dynamo.reset()


def _batch(rng, sizes, binary):
    trees = [random_binary_tree(n, rng, 50) if binary else random_tree(2 * n, rng, vocab_size=50) for n in sizes]
    tokens = [[int(w[1:]) if w else -1 for w in t.words] for t in trees]
    return TreeBatch.from_arrays([t.parent for t in trees], tokens, [[-1] * (len(t) - 1) + [1] for t in trees])


@pytest.mark.parametrize("cell", [NaryTreeLSTMCell(8, 6), ChildSumTreeLSTMCell(8, 6)], ids=["nary", "child-sum"])
def test_compiled_tree_cell_does_not_recompile_for_new_level_sizes(counter, cell):
    rng = random.Random(0)
    model = TreeClassifier(vocab_size=50, num_classes=3, cell=cell, compile=True)
    binary = isinstance(cell, NaryTreeLSTMCell)

    def step(sizes):
        out = model(_batch(rng, sizes, binary))
        out.logits.sum().backward()

    for sizes in ([1, 5, 12], [3, 30]):  # warm-up: leaves, inner levels, levels of one node
        step(sizes)
    warm = counter.frame_count
    assert 0 < warm <= 6, f"{warm} graphs to warm up"
    seen = set()
    for sizes in ([2, 7], [40, 41, 9, 3], [17], [60, 1, 25, 8, 13]):
        batch = _batch(rng, sizes, binary)
        seen |= {lv.num_nodes for lv in batch.levels()}
        step(sizes)
    assert len(seen) > 10  # many level sizes the warm-up never saw
    assert counter.frame_count == warm, f"{counter.frame_count - warm} recompiles after warm-up"


def test_compiled_sequence_step_does_not_recompile_for_new_batch_sizes_or_lengths(counter):
    runner = SequenceRunner(cell=LSTMCell, input_size=4, hidden_size=5, num_layers=2, bidirectional=True, compile=True)

    def step(b, t, padded):
        x = torch.randn(b, t, 4, requires_grad=True)
        lengths = torch.randint(1, t + 1, (b,)) if padded else None
        runner(x, lengths).outputs.sum().backward()

    for b, t, padded in [(3, 5, False), (4, 6, True), (6, 3, True), (5, 4, False)]:  # warm-up
        step(b, t, padded)
    warm = counter.frame_count
    assert 0 < warm <= 6, f"{warm} graphs to warm up"
    for b, t, padded in [(7, 9, True), (2, 4, False), (11, 2, True), (9, 7, False)]:
        step(b, t, padded)
    assert counter.frame_count == warm, f"{counter.frame_count - warm} recompiles after warm-up"
