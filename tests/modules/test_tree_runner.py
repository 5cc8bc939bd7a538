"""Batched (level) execution must equal one-tree-at-a-time, node-by-node execution."""

import random

import pytest
import torch
from torch import nn

from nlp_lib.cells import (
    ChildSumTreeGRUCell,
    ChildSumTreeLSTMCell,
    NaryTreeLSTMCell,
    RecursiveNNCell,
)
from nlp_lib.errors import StructureError
from nlp_lib.models import TreeClassifier
from nlp_lib.modules import TreeRunner, check_cell
from nlp_lib.structure import Dag, TreeBatch
from nlp_lib.structure.random_trees import random_binary_tree, random_dag, random_tree

VOCAB = 100


def _encode(trees):
    return [[int(w[1:]) if w else -1 for w in t.words] for t in trees]


def _batch(trees):
    labels = [[-1] * (len(t) - 1) + [len(t) % 5] for t in trees]
    if isinstance(trees[0], Dag):
        return TreeBatch.from_dags(trees, _encode(trees), labels)
    return TreeBatch.from_arrays([t.parent for t in trees], _encode(trees), labels)


def _loss_and_grads(model, batch):
    model.zero_grad()
    out = model(batch)
    loss = nn.functional.cross_entropy(out.logits, batch.labels[batch.roots], reduction="sum")
    loss = loss + out.root_hidden.pow(2).sum()  # a gradient through every root state
    loss.backward()
    grads = {n: p.grad.clone() if p.grad is not None else torch.zeros_like(p) for n, p in model.named_parameters()}
    return out.root_hidden.detach(), grads


def _compare(cell, trees, dtype, atol, down_cell=None):
    torch.manual_seed(0)
    model = TreeClassifier(vocab_size=VOCAB, num_classes=5, cell=cell, down_cell=down_cell).to(dtype)
    roots, grads = _loss_and_grads(model, _batch(trees))  # level-scheduled, whole batch
    model.mode = "recursive"
    one_roots, one_grads = [], None
    for t in trees:  # one tree at a time, one node at a time
        r, g = _loss_and_grads(model, _batch([t]))
        one_roots.append(r)
        one_grads = g if one_grads is None else {k: one_grads[k] + g[k] for k in g}
    assert torch.allclose(roots, torch.cat(one_roots), atol=atol, rtol=0)
    for k in grads:
        assert torch.allclose(grads[k], one_grads[k], atol=atol, rtol=1e-5), k


@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_binary_tree_lstm_batched_equals_one_at_a_time(dtype, atol):
    rng = random.Random(0)
    sizes = [1, 2, 3, 200, 137, 64] + [rng.randint(1, 200) for _ in range(10)]
    trees = [random_binary_tree(n, rng, VOCAB) for n in sizes]
    _compare(NaryTreeLSTMCell(16, 12, arity=2), trees, dtype, atol)


@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_child_sum_tree_lstm_batched_equals_one_at_a_time(dtype, atol):
    rng = random.Random(1)
    trees = [random_tree(rng.randint(1, 120), rng, vocab_size=VOCAB) for _ in range(12)]
    trees += [random_binary_tree(150, rng, VOCAB)]
    _compare(ChildSumTreeLSTMCell(16, 12), trees, dtype, atol)


@pytest.mark.parametrize(
    "make_cell",
    [
        lambda: ChildSumTreeGRUCell(8, 6),
        lambda: RecursiveNNCell(8, 6, arity=3),
        lambda: ChildSumTreeLSTMCell(8, 6),
        lambda: NaryTreeLSTMCell(8, 6, arity=3),
    ],
    ids=["tree_gru", "recursive_nn", "child_sum_lstm", "nary3_lstm"],
)
def test_every_built_in_cell_batched_equals_one_at_a_time(make_cell):
    rng = random.Random(7)
    trees = [random_tree(rng.randint(1, 80), rng, max_children=3, vocab_size=VOCAB) for _ in range(10)]
    _compare(make_cell(), trees, torch.float64, 1e-10)
    _compare(make_cell(), trees, torch.float32, 1e-5)


def test_nary_cell_with_missing_children_equals_recursive():
    rng = random.Random(2)
    trees = [random_tree(rng.randint(1, 60), rng, max_children=3, vocab_size=VOCAB) for _ in range(10)]
    _compare(NaryTreeLSTMCell(8, 6, arity=3), trees, torch.float64, 1e-10)


def test_nary_cell_rejects_too_many_children():
    rng = random.Random(3)
    tree = random_tree(30, rng, vocab_size=VOCAB)
    assert max(len(c) for c in tree.children()) > 2
    model = TreeClassifier(vocab_size=VOCAB, num_classes=5, cell=NaryTreeLSTMCell(8, 6, arity=2))
    with pytest.raises(StructureError, match="arity=2"):
        model(_batch([tree]))


def test_no_grad_path_equals_grad_path():
    rng = random.Random(4)
    trees = [random_binary_tree(rng.randint(1, 50), rng, VOCAB) for _ in range(8)]
    model = TreeClassifier(vocab_size=VOCAB, num_classes=5, cell=NaryTreeLSTMCell(8, 6)).eval()
    batch = _batch(trees)
    with torch.no_grad():
        a = model(batch).logits
    b = model(batch).logits.detach()
    assert torch.allclose(a, b, atol=1e-6)


def test_frozen_cell_still_trains_embeddings():
    rng = random.Random(5)
    trees = [random_binary_tree(rng.randint(1, 30), rng, VOCAB) for _ in range(4)]
    model = TreeClassifier(vocab_size=VOCAB, num_classes=5, cell=NaryTreeLSTMCell(8, 6))
    for p in model.cell.parameters():
        p.requires_grad_(False)
    model(_batch(trees)).logits.sum().backward()
    assert model.embedding.weight.grad is not None and model.embedding.weight.grad.abs().sum() > 0


def test_scattered_inputs_equal_recursive():
    """Some leaves without a token and some inner nodes with one: inputs are not a level-order prefix."""
    rng = random.Random(6)
    trees = []
    for _ in range(10):
        t = random_tree(rng.randint(2, 40), rng, vocab_size=VOCAB)
        words = [w if rng.random() < 0.6 else "" for w in t.words]
        trees.append(type(t)(parent=t.parent, words=words))
    batch = _batch(trees)
    assert not batch.inputs_are_prefix
    _compare(ChildSumTreeLSTMCell(8, 6), trees, torch.float64, 1e-10)


@pytest.mark.parametrize(
    "make_cell",
    [
        lambda: ChildSumTreeLSTMCell(8, 6),
        lambda: ChildSumTreeGRUCell(8, 6),
        lambda: NaryTreeLSTMCell(8, 6, arity=4),
        lambda: RecursiveNNCell(8, 6, arity=4),
    ],
    ids=["child_sum_lstm", "tree_gru", "nary4_lstm", "recursive_nn"],
)
def test_dags_batched_equal_one_at_a_time(make_cell):
    rng = random.Random(8)
    dags = [random_dag(rng.randint(1, 60), rng, max_inputs=4, vocab_size=VOCAB) for _ in range(8)]
    assert any(len(set(d.child)) < len(d.child) for d in dags)  # some node feeds several parents
    _compare(make_cell(), dags, torch.float64, 1e-10)
    _compare(make_cell(), dags, torch.float32, 1e-5)


@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_bidirectional_batched_equals_one_at_a_time(dtype, atol):
    rng = random.Random(9)
    trees = [random_binary_tree(rng.randint(1, 80), rng, VOCAB) for _ in range(8)]
    _compare(NaryTreeLSTMCell(8, 6), trees, dtype, atol, down_cell=ChildSumTreeLSTMCell(6, 5))
    dags = [random_dag(rng.randint(1, 40), rng, vocab_size=VOCAB) for _ in range(6)]
    _compare(ChildSumTreeGRUCell(8, 6), dags, dtype, atol, down_cell=ChildSumTreeGRUCell(6, 5))


def test_top_down_pass_reads_the_parent():
    """A top-down 'depth counter' cell: each node's state is its parent's plus one."""

    class Depth(nn.Module):
        input_size = hidden_size = 1

        def forward(self, x, children):
            if not children:
                return (torch.zeros_like(x),)
            return (children.max(children[0]) + 1,)

    rng = random.Random(10)
    trees = [random_tree(rng.randint(1, 30), rng, vocab_size=VOCAB) for _ in range(4)]
    batch = _batch(trees)
    runner = TreeRunner(Depth(), direction="down")
    (depth,) = runner(batch, torch.zeros(batch.num_nodes, 1))
    expected = []
    for t in trees:
        d = [0] * len(t)
        for i in range(len(t) - 2, -1, -1):
            d[i] = d[t.parent[i]] + 1
        expected += d
    assert depth.view(-1)[_inverse(batch.order)].tolist() == expected


def _inverse(order):
    inv = torch.empty_like(order)
    inv[order] = torch.arange(order.numel())
    return inv


def test_check_cell_passes_built_ins_and_catches_a_level_wide_reduction():
    check_cell(ChildSumTreeLSTMCell(6, 5))

    class Leaky(nn.Module):  # mixes nodes of a level: not a per-node function
        input_size = hidden_size = 4

        def forward(self, x, children):
            h = torch.tanh(x + x.mean(0, keepdim=True))
            return (h + children.sum(children[0]),) if children else (h,)

    with pytest.raises(AssertionError, match="batched and one-at-a-time"):
        check_cell(Leaky())
    from nlp_lib.cells import LSTMCell

    with pytest.raises(TypeError, match="check_cell checks tree cells; LSTMCell is a recurrent cell"):
        check_cell(LSTMCell(4, 4))


def test_distinct_words_projected_once_equal_every_occurrence():
    import dataclasses

    rng = random.Random(11)
    trees = [random_binary_tree(rng.randint(1, 40), rng, vocab_size=7) for _ in range(10)]  # many repeats
    batch = _batch(trees)
    assert batch.unique_tokens.numel() < batch.input_positions.numel()
    plain = dataclasses.replace(batch, unique_tokens=None, token_inverse=None)
    torch.manual_seed(0)
    model = TreeClassifier(vocab_size=VOCAB, num_classes=5, cell=NaryTreeLSTMCell(8, 6)).double()
    a_out, a_grads = _loss_and_grads(model, batch)
    b_out, b_grads = _loss_and_grads(model, plain)
    torch.testing.assert_close(a_out, b_out, atol=1e-12, rtol=0)
    for k in a_grads:
        torch.testing.assert_close(a_grads[k], b_grads[k], atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("structure", ["binary_leaf_inputs", "ternary_all_inputs", "dag", "down", "partial_inputs"])
def test_fused_nary_sweep_equals_generic_sweep(structure):
    """The hand-written N-ary sweep gives the generic runner's outputs and gradients."""
    rng = random.Random(11)
    torch.manual_seed(0)
    arity, direction = 2, "up"
    if structure == "binary_leaf_inputs":
        trees = [random_binary_tree(rng.randint(1, 90), rng, VOCAB) for _ in range(9)]
    elif structure == "ternary_all_inputs":  # missing slots, and inner nodes with inputs of their own
        trees, arity = [random_tree(rng.randint(1, 60), rng, max_children=3, vocab_size=VOCAB) for _ in range(9)], 3
    elif structure == "dag":
        trees, arity = [random_dag(rng.randint(2, 40), rng, vocab_size=VOCAB) for _ in range(6)], 4
    else:
        trees = [random_binary_tree(rng.randint(1, 90), rng, VOCAB) for _ in range(9)]
        direction = "down" if structure == "down" else "up"
    batch = _batch(trees)
    if structure == "dag":
        arity = max(arity, batch.max_children, batch.reversed()[0].max_children)
    cell = NaryTreeLSTMCell(8, 6, arity=arity).double()
    x = torch.randn(batch.num_nodes, 8, dtype=torch.float64, requires_grad=True)
    has_input = batch.input_positions if structure == "binary_leaf_inputs" else None
    if structure == "partial_inputs":  # inputs for positions 0..K-1 only: some leaves read x_empty
        has_input = torch.arange(batch.level_offsets[1] - 3)
    xs = x[: len(has_input)] if has_input is not None else x
    results = []
    for fused in (True, False):
        runner = TreeRunner(cell, direction=direction, fused=fused)
        cell.zero_grad()
        x.grad = None
        h, c = runner(batch, xs, has_input)
        (h.pow(2).sum() + (c * 0.5).sin().sum()).backward()
        results.append([h.detach(), c.detach(), x.grad.clone()] + [p.grad.clone() for p in cell.parameters()])
    for a, b in zip(*results, strict=True):
        assert torch.allclose(a, b, atol=1e-10, rtol=0)


def test_fused_nary_sweep_under_bf16_autocast():
    """Mixed precision (precision=bf16-mixed): the fused sweep runs in bf16 and returns float32 gradients."""
    rng = random.Random(5)
    torch.manual_seed(0)
    batch = _batch([random_binary_tree(rng.randint(1, 60), rng, VOCAB) for _ in range(8)])
    cell = NaryTreeLSTMCell(8, 16, arity=2)
    x = torch.randn(batch.num_nodes, 8, requires_grad=True)
    results = []
    for fused, autocast in ((True, False), (True, True), (False, True)):
        runner = TreeRunner(cell, fused=fused)
        cell.zero_grad()
        x.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            h, c = runner(batch, x, None)
            loss = h.float().pow(2).sum() + c.float().sum()
        loss.backward()
        assert x.grad.dtype == torch.float32 and all(p.grad.dtype == torch.float32 for p in cell.parameters())
        results.append([h.detach().float(), x.grad.clone()] + [p.grad.clone() for p in cell.parameters()])
    exact = results[0]
    for mixed in results[1:]:  # bf16 keeps ~3 significant digits
        for a, b in zip(exact, mixed, strict=True):
            assert (a - b).abs().max() <= 0.05 * a.abs().max() + 1e-3
