"""The plain recursive neural network cell against its equation (Socher et al. 2011, 2013), node by node.

``h_j = tanh(W [h_j1; ...; h_jN] + W_x x_j + b)``, missing children zero vectors (the cell's
docstring). The reference uses one matrix per child slot, sliced out of ``W`` by its documented
layout, and never calls the library's cells or runners; the library's batched run must give every
node's ``h`` and every gradient to float64 precision.
"""

import pytest
import torch
from torch import Tensor
from trees_by_hand import INPUTS, RUNS, batch_trees, batches_within, compare_with_reference

from nlp_lib.cells import RecursiveNNCell
from nlp_lib.errors import StructureError
from nlp_lib.modules import TreeRunner
from nlp_lib.structure import TreeBatch

IN, H = 5, 4


def recursive_nn_reference(cell: RecursiveNNCell):
    n = cell.arity
    W_x, b = cell.W_x.weight, cell.W_x.bias
    W_slot = cell.W.weight.split(H, dim=1)  # W's columns: child slot 1..N, H each

    def run(x: Tensor, children: list[list[int]]) -> tuple[Tensor]:
        h: list[Tensor] = []
        zero = torch.zeros(H, dtype=x.dtype)
        for j, kids in enumerate(children):  # children come before their parents
            assert len(kids) <= n
            kid_term = sum((W_slot[s] @ h[k] for s, k in enumerate(kids)), zero)  # a missing child adds 0
            h.append(torch.tanh(kid_term + W_x @ x[j] + b))
        return (torch.stack(h),)

    return run


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("inputs", INPUTS)
@pytest.mark.parametrize("arity, batch", [(2, b) for b in batches_within(2)] + [(3, b) for b in batches_within(3)])
def test_recursive_nn_follows_its_equation(arity, batch, inputs, run):
    torch.manual_seed(5)
    cell = RecursiveNNCell(IN, H, arity=arity).double()
    compare_with_reference(cell, recursive_nn_reference(cell), batch_trees(batch), inputs, run)


def test_recursive_nn_rejects_more_children_than_its_arity():
    batch = TreeBatch.from_arrays(batch_trees("three_children"))
    with pytest.raises(StructureError, match=r"RecursiveNNCell\(arity=2\) got a node with 3 children"):
        TreeRunner(RecursiveNNCell(IN, H, arity=2))(batch, torch.randn(batch.num_nodes, IN))
