"""The child-sum Tree-GRU against its equations (nlp_lib/cells/tree_gru.py; Cho et al. 2014 carried
over to trees as Tai et al. 2015 did the LSTM, as in Kokkinos & Potamianos, EACL 2017), node by node.

The reference reads the equations with one vector per node and one matrix per gate sliced out of
the cell's parameters by their documented layout, never calling the library's cells or runners;
the library's batched run must give every node's ``h`` and every gradient to float64 precision.
"""

import pytest
import torch
from torch import Tensor
from trees_by_hand import BATCHES, INPUTS, RUNS, batch_trees, compare_with_reference

from nlp_lib.cells import ChildSumTreeGRUCell

IN, H = 5, 4
sigmoid, tanh = torch.sigmoid, torch.tanh


def tree_gru_reference(cell: ChildSumTreeGRUCell):
    W_z, W_r, W_h = cell.W_zrh.weight.split(H)  # W_zrh's rows: z, r, h
    b_z, b_r, b_h = cell.W_zrh.bias.split(H)
    U_z, U_r, U_h = cell.U_z.weight, cell.U_r.weight, cell.U_h.weight

    def run(x: Tensor, children: list[list[int]]) -> tuple[Tensor]:
        h: list[Tensor] = []
        zero = torch.zeros(H, dtype=x.dtype)
        for j, kids in enumerate(children):  # children come before their parents
            h_sum = sum((h[k] for k in kids), zero)  # h~_j = sum_k h_k
            z = sigmoid(W_z @ x[j] + U_z @ h_sum + b_z)  # update gate
            r = [sigmoid(W_r @ x[j] + U_r @ h[k] + b_r) for k in kids]  # r_jk, one reset gate per child
            g = tanh(W_h @ x[j] + U_h @ sum((r_k * h[k] for r_k, k in zip(r, kids, strict=True)), zero) + b_h)
            h.append(z * g + (1 - z) * h_sum)
        return (torch.stack(h),)

    return run


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("inputs", INPUTS)
@pytest.mark.parametrize("batch", list(BATCHES))
def test_child_sum_tree_gru_follows_its_equations(batch, inputs, run):
    torch.manual_seed(4)
    cell = ChildSumTreeGRUCell(IN, H).double()
    compare_with_reference(cell, tree_gru_reference(cell), batch_trees(batch), inputs, run)
