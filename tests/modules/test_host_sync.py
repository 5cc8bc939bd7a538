"""The hot paths never wait for the device: no host read of tensor values per level or per step.

Each sweep runs, forward and backward, under :func:`host_sync.no_host_sync`, which fails on any
``.item()``, ``.tolist()``, ``bool()``, ``nonzero``, ``torch.equal`` or ``.cpu()`` (and, with CUDA,
on any synchronising CUDA call). Batches and inputs are built beforehand, as collate builds them
in the DataLoader workers. Beam search may bring its bookkeeping to the host once per step.
"""

import random

import pytest
import torch
from host_sync import HostSyncError, no_host_sync
from seq2seq_helpers import padded_sources, small_seq2seq
from torch import nn

from nlp_lib.cells import ChildSumTreeLSTMCell, GRUCell, LayerNormLSTMCell, LSTMCell, NaryTreeLSTMCell
from nlp_lib.models import TreeClassifier
from nlp_lib.models.decoding import beam_search, greedy_ids
from nlp_lib.modules import SequenceRunner, TreeRunner
from nlp_lib.structure import TreeBatch
from nlp_lib.structure.random_trees import random_binary_tree, random_tree

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _trees(binary: bool, every_node_has_token: bool = False) -> TreeBatch:
    rng = random.Random(0)
    trees = [
        random_binary_tree(n, rng, 50) if binary else random_tree(2 * n, rng, vocab_size=50) for n in (1, 3, 9, 20)
    ]
    tokens = [[int(w[1:]) if w else (7 if every_node_has_token else -1) for w in t.words] for t in trees]
    labels = [[-1] * (len(t) - 1) + [len(t) % 3] for t in trees]
    batch = TreeBatch.from_arrays([t.parent for t in trees], tokens, labels)
    batch.reversed()  # the top-down schedule, built on the CPU before the batch moves
    return batch.to(DEVICE, non_blocking=True)


def _train_step(model: nn.Module, batch: TreeBatch) -> None:
    out = model(batch)
    loss = nn.functional.cross_entropy(out.logits, batch.labels[batch.roots]) + out.root_hidden.square().mean()
    loss.backward()


@pytest.mark.parametrize(
    "cell, fused, binary, down",
    [
        (NaryTreeLSTMCell(8, 6), True, True, False),  # the hand-written sweep
        (NaryTreeLSTMCell(8, 6), False, True, False),  # the generic sweep (autograd per level)
        (ChildSumTreeLSTMCell(8, 6), True, False, False),
        (ChildSumTreeLSTMCell(8, 6), True, False, True),  # bidirectional: a top-down pass too
    ],
    ids=["nary-fused", "nary-generic", "child-sum", "child-sum-bidirectional"],
)
@pytest.mark.parametrize("every_node_has_token", [False, True], ids=["leaf-inputs", "all-inputs"])
def test_tree_sweep_forward_backward_never_syncs(cell, fused, binary, down, every_node_has_token):
    torch.manual_seed(0)
    down_cell = ChildSumTreeLSTMCell(6, 5) if down else None
    model = TreeClassifier(vocab_size=50, num_classes=3, cell=cell, down_cell=down_cell).to(DEVICE)
    model.runner.fused = fused
    batch = _trees(binary, every_node_has_token)
    with no_host_sync():
        _train_step(model, batch)
    assert all(p.grad is not None for p in model.cell.parameters())


def test_the_guard_catches_an_item_in_the_level_loop():
    class Peeking(ChildSumTreeLSTMCell):
        def forward(self, x, children):  # noqa: ANN001, ANN201
            if x.abs().sum().item() > -1:  # a per-level host read: what the guard is for
                return super().forward(x, children)
            raise AssertionError("unreachable")

    model = TreeClassifier(vocab_size=50, num_classes=3, cell=Peeking(8, 6)).to(DEVICE)
    batch = _trees(binary=False)
    with pytest.raises(HostSyncError, match="item"), no_host_sync():
        _train_step(model, batch)


@pytest.mark.parametrize("cell", [LSTMCell, GRUCell, LayerNormLSTMCell])
@pytest.mark.parametrize("padded", [True, False])
def test_sequence_runner_forward_backward_never_syncs(cell, padded):
    torch.manual_seed(0)
    runner = SequenceRunner(
        cell=cell, input_size=4, hidden_size=5, num_layers=2, bidirectional=True, recurrent_dropout=0.2
    ).to(DEVICE)
    x = torch.randn(3, 6, 4, device=DEVICE, requires_grad=True)
    lengths = torch.tensor([6, 2, 4]) if padded else None  # collate's lengths: host memory
    with no_host_sync():
        out = runner(x, lengths)
        out.outputs.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("teacher_forcing", [1.0, 0.5], ids=["teacher-forced", "scheduled-sampling"])
def test_seq2seq_training_decoder_never_syncs(teacher_forcing):
    model = small_seq2seq(teacher_forcing=teacher_forcing, dropout=0.1).to(DEVICE).train()
    src, lengths = padded_sources([5, 3, 4])
    src = src.to(DEVICE)
    tgt_in = torch.randint(4, 15, (3, 6), device=DEVICE)
    with no_host_sync():
        logits = model(src, lengths, tgt_in).logits
        logits.square().mean().backward()
    assert logits.shape == (3, 6, 15)


def test_greedy_decoding_never_syncs():
    model = small_seq2seq().to(DEVICE)
    src, lengths = padded_sources([5, 3, 4, 1])
    src = src.to(DEVICE)
    with no_host_sync():
        ids = greedy_ids(model, src, lengths, max_length=12, min_length=2)
    assert ids.shape[0] == 4 and 2 < ids.shape[1] <= 12


def test_beam_search_reads_the_host_at_most_once_per_step():
    model = small_seq2seq().to(DEVICE)
    src, lengths = padded_sources([5, 3, 4, 1, 6])
    src = src.to(DEVICE)
    with no_host_sync(count=True) as calls:
        hyps = beam_search(model, src, lengths, beam_size=3, max_length=9, n_best=2)
    assert len(hyps) == 5 and all(len(h) == 2 for h in hyps)
    assert 1 <= len(calls) <= 9, calls  # one transfer per step, nothing per hypothesis or per sentence


def test_tree_runner_compiled_level_loop_never_syncs():
    """The compiled cell (eager backend: the dispatch, not the kernels) adds no host read per level."""
    model = TreeClassifier(vocab_size=50, num_classes=3, cell=ChildSumTreeLSTMCell(8, 6)).to(DEVICE)
    runner: TreeRunner = model.runner
    runner.compile = True
    runner.__dict__["_compiled"] = torch.compile(runner.cell, dynamic=True, backend="eager")
    batch = _trees(binary=False)
    _train_step(model, batch)  # compiles first (tracing reads shapes, not values)
    with no_host_sync():
        _train_step(model, batch)
