"""Hand-built trees and a driver for the paper-equation tests of the tree cells (tests/cells/test_tree_*.py).

Each test writes its cell's equations out node by node (a plain, independent reading of the paper:
one vector per node, one matrix per gate sliced out of the cell's parameters) and compares them with
the library's batched run: :class:`~nlp_lib.modules.TreeRunner` over a :class:`~nlp_lib.structure.TreeBatch`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from nlp_lib.modules import TreeRunner
from nlp_lib.structure import TreeBatch

# Parent index of each node (children before parents, the root last); a node's children are in
# the order of their indices (slot 0 = the lowest index).
TREES: dict[str, list[int]] = {
    "leaf": [-1],
    "one_child": [1, -1],
    "two_children": [2, 2, -1],
    "three_children": [3, 3, 3, -1],
    "chain": [1, 2, 3, 4, -1],  # five levels, one child each
    "left_branching": [2, 2, 4, 4, 6, 6, -1],  # (((a b) c) d)
    "mixed": [2, 2, 6, 4, 6, 6, -1],  # root: a 2-child node, a 1-child node and a leaf
}
# Batches: every tree alone, two different trees together, and all of them in one batch.
BATCHES: dict[str, list[str]] = {
    **{name: [name] for name in TREES},
    "mixed_and_chain": ["mixed", "chain"],
    "all": list(TREES),
}
# Which nodes have an input: all of them; the leaves only (a constituency tree: the inner nodes get
# a zero input); or a scattered choice (some leaves without, some inner nodes with one).
INPUTS = ("all", "leaves", "scattered")
# How the library runs the batch: the default (a cell's own sweep() where it offers one), the
# generic level sweep (fused=False), and node by node (mode="recursive").
RUNS = ("level", "generic", "recursive")


def batch_trees(batch: str) -> list[list[int]]:
    """The parent arrays of a batch."""
    return [TREES[name] for name in BATCHES[batch]]


def batches_within(max_children: int) -> list[str]:
    """The batches whose nodes have at most ``max_children`` children (for N-ary cells)."""
    return [b for b in BATCHES if all(len(k) <= max_children for p in batch_trees(b) for k in children_of(p))]


def children_of(parents: list[int]) -> list[list[int]]:
    """Each node's children, in slot order."""
    kids: list[list[int]] = [[] for _ in parents]
    for child, parent in enumerate(parents):
        if parent >= 0:
            kids[parent].append(child)
    return kids


def has_input(parents: list[int], inputs: str, offset: int) -> list[bool]:
    kids = children_of(parents)
    if inputs == "all":
        return [True] * len(parents)
    if inputs == "leaves":
        return [not k for k in kids]
    return [(offset + j) % 3 != 1 for j in range(len(parents))]


def compare_with_reference(
    cell: torch.nn.Module,
    reference: Callable[[Tensor, list[list[int]]], tuple[Tensor, ...]],
    trees: list[list[int]],
    inputs: str,
    run: str,
    atol: float = 1e-10,
) -> None:
    """The library's batched states (and gradients) of every node equal ``reference``'s.

    Args:
        cell: A float64 tree cell.
        reference: ``(x [n, input_size], children per node) -> state fields [n, ...]`` for ONE tree,
            nodes in the tree's own order; ``x`` rows of nodes without an input are zeros.
        trees: Parent arrays.
        inputs: One of :data:`INPUTS`.
        run: One of :data:`RUNS`.
    """
    torch.manual_seed(0)
    sizes = [len(p) for p in trees]
    total = sum(sizes)
    feats = torch.randn(total, cell.input_size, dtype=torch.float64, requires_grad=True)  # one row per node
    tokens, mask, offset = [], [], 0
    for p in trees:
        m = has_input(p, inputs, offset)
        tokens.append([offset + j if m[j] else -1 for j in range(len(p))])
        mask += m
        offset += len(p)
    batch = TreeBatch.from_arrays(trees, tokens)
    runner = TreeRunner(cell, mode="recursive" if run == "recursive" else "level", fused=run != "generic")
    x = feats[batch.tokens[batch.input_positions]]  # [K, input_size] in level order
    states = runner(batch, x, batch.input_positions)
    ours = [torch.empty_like(s).index_copy(0, batch.order, s) for s in states]  # back to the trees' node order

    x_ref = feats * torch.tensor(mask, dtype=torch.float64).unsqueeze(1)  # no input: a zero vector
    parts, offset = [], 0
    for p in trees:
        parts.append(reference(x_ref[offset : offset + len(p)], children_of(p)))
        offset += len(p)
    theirs = [torch.cat(field) for field in zip(*parts, strict=True)]
    assert len(ours) == len(theirs), (len(ours), len(theirs))
    for name, a, b in zip(type(states)._fields, ours, theirs, strict=True):
        torch.testing.assert_close(a, b, atol=atol, rtol=0, msg=lambda m, name=name: f"state {name}: {m}")

    weights = [torch.randn_like(t) for t in theirs]  # a gradient through every field of every node
    params = [feats, *cell.parameters()]
    names = ["input", *(n for n, _ in cell.named_parameters())]
    g_ours = _grads(sum((a * w).sum() for a, w in zip(ours, weights, strict=True)), params)
    g_theirs = _grads(sum((b * w).sum() for b, w in zip(theirs, weights, strict=True)), params)
    for name, a, b in zip(names, g_ours, g_theirs, strict=True):
        torch.testing.assert_close(a, b, atol=atol, rtol=0, msg=lambda m, name=name: f"gradient of {name}: {m}")


def _grads(loss: Tensor, params: list[Tensor]) -> list[Tensor]:
    """Gradients, zeros for a parameter the computation does not use (a batch of leaves has no ``U``)."""
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]
