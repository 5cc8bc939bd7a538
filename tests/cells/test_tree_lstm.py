"""Tree-LSTM cells against Tai, Socher & Manning (ACL 2015), written out node by node.

The references below read the paper's equations (child-sum: eqs. 2-8; N-ary: eqs. 9-14) with one
vector per node and one matrix per gate, sliced out of the cell's parameters by their documented
layout; they never call the library's cells or runners. The library's batched run (a whole
:class:`~nlp_lib.structure.TreeBatch` through :class:`~nlp_lib.modules.TreeRunner`) must give every
node's ``h`` and ``c`` and every gradient to float64 precision, on hand-built trees.
"""

import pytest
import torch
from torch import Tensor
from trees_by_hand import BATCHES, INPUTS, RUNS, batch_trees, batches_within, compare_with_reference

from nlp_lib.cells import Children, ChildSumTreeLSTMCell, NaryTreeLSTMCell, TreeLSTMState
from nlp_lib.modules import TreeRunner
from nlp_lib.structure import TreeBatch

IN, H = 5, 4
sigmoid, tanh = torch.sigmoid, torch.tanh


def child_sum_reference(cell: ChildSumTreeLSTMCell):
    """Tai et al. eqs. 2-8, one node at a time."""
    W_i, W_o, W_u = cell.W_iou.weight.split(H)  # W_iou's rows: i, o, u
    b_i, b_o, b_u = cell.W_iou.bias.split(H)
    W_f, b_f = cell.W_f.weight, cell.W_f.bias
    U_i, U_o, U_u = cell.U_iou.weight.split(H)  # U_iou's rows: i, o, u
    U_f = cell.U_f.weight

    def run(x: Tensor, children: list[list[int]]) -> tuple[Tensor, Tensor]:
        h: list[Tensor] = []
        c: list[Tensor] = []
        for j, kids in enumerate(children):  # children come before their parents
            h_sum = sum((h[k] for k in kids), torch.zeros(H, dtype=x.dtype))  # eq. 2: h~_j
            i = sigmoid(W_i @ x[j] + U_i @ h_sum + b_i)  # eq. 3
            f = [sigmoid(W_f @ x[j] + U_f @ h[k] + b_f) for k in kids]  # eq. 4: f_jk, one per child
            o = sigmoid(W_o @ x[j] + U_o @ h_sum + b_o)  # eq. 5
            u = tanh(W_u @ x[j] + U_u @ h_sum + b_u)  # eq. 6
            c.append(i * u + sum((f_k * c[k] for f_k, k in zip(f, kids, strict=True)), torch.zeros(H)))  # eq. 7
            h.append(o * tanh(c[j]))  # eq. 8
        return torch.stack(h), torch.stack(c)

    return run


def nary_reference(cell: NaryTreeLSTMCell):
    """Tai et al. eqs. 9-14, one node at a time; a missing child (fewer than N) is a zero ``h`` and ``c``."""
    n = cell.arity
    W_i, W_o, W_u = cell.W_iou.weight.split(H)  # W_iou's rows: i, o, u
    b_i, b_o, b_u = cell.W_iou.bias.split(H)
    W_f, b_f = cell.W_f.weight, cell.W_f.bias  # W^(f), b^(f): shared by every child's forget gate
    U = cell.U_iouf.weight  # rows: blocks i, o, f_1..f_N, u; columns: blocks child slot 1..N

    def U_(gate: int, slot: int) -> Tensor:  # one H x H block: U^(gate)_slot
        return U[gate * H : (gate + 1) * H, slot * H : (slot + 1) * H]

    gate_i, gate_o, gate_u = 0, 1, 2 + n

    def gate_f(k: int) -> int:
        return 2 + k

    def run(x: Tensor, children: list[list[int]]) -> tuple[Tensor, Tensor]:
        h: list[Tensor] = []
        c: list[Tensor] = []
        zero = torch.zeros(H, dtype=x.dtype)
        slots = range(n)
        for j, kids in enumerate(children):
            assert len(kids) <= n
            h_j = [h[kids[s]] if s < len(kids) else zero for s in slots]  # h_j1 .. h_jN
            c_j = [c[kids[s]] if s < len(kids) else zero for s in slots]  # c_j1 .. c_jN
            z_i, z_o, z_u = (sum((U_(g, s) @ h_j[s] for s in slots), zero) for g in (gate_i, gate_o, gate_u))
            i = sigmoid(W_i @ x[j] + z_i + b_i)  # eq. 9: sum_l U^(i)_l h_jl
            f = [sigmoid(W_f @ x[j] + sum((U_(gate_f(k), s) @ h_j[s] for s in slots), zero) + b_f) for k in slots]
            # eq. 10: f_jk, with sum_l U^(f)_kl h_jl
            o = sigmoid(W_o @ x[j] + z_o + b_o)  # eq. 11
            u = tanh(W_u @ x[j] + z_u + b_u)  # eq. 12
            c.append(i * u + sum((f[s] * c_j[s] for s in slots), zero))  # eq. 13
            h.append(o * tanh(c[j]))  # eq. 14
        return torch.stack(h), torch.stack(c)

    return run


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("inputs", INPUTS)
@pytest.mark.parametrize("batch", list(BATCHES))
def test_child_sum_tree_lstm_follows_tai_et_al_eqs_2_to_8(batch, inputs, run):
    torch.manual_seed(1)
    cell = ChildSumTreeLSTMCell(IN, H).double()
    compare_with_reference(cell, child_sum_reference(cell), batch_trees(batch), inputs, run)


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("inputs", INPUTS)
@pytest.mark.parametrize("arity, batch", [(2, b) for b in batches_within(2)] + [(3, b) for b in batches_within(3)])
def test_nary_tree_lstm_follows_tai_et_al_eqs_9_to_14(arity, batch, inputs, run):
    torch.manual_seed(2)
    cell = NaryTreeLSTMCell(IN, H, arity=arity).double()
    compare_with_reference(cell, nary_reference(cell), batch_trees(batch), inputs, run)


def test_the_fused_sweep_is_offered_only_while_forward_is_the_cells_own():
    class Doubled(NaryTreeLSTMCell):  # other math: must run its own forward, not the parent's sweep
        def forward(self, x_proj, children):
            h, c = super().forward(x_proj, children)
            return TreeLSTMState(2 * h, c)

    class Renamed(NaryTreeLSTMCell):  # the same forward: the sweep stays on offer
        pass

    assert NaryTreeLSTMCell(IN, H).sweep is not None and Renamed(IN, H).sweep is not None
    assert Doubled(IN, H).sweep is None
    torch.manual_seed(3)
    cell = Doubled(IN, H, arity=3).double()
    batch = TreeBatch.from_arrays(batch_trees("all"))
    x = torch.randn(batch.num_nodes, IN, dtype=torch.float64)
    h = TreeRunner(cell)(batch, x).h
    torch.testing.assert_close(h, TreeRunner(cell, fused=False)(batch, x).h, atol=1e-12, rtol=0)
    torch.testing.assert_close(h, TreeRunner(cell, mode="recursive")(batch, x).h, atol=1e-12, rtol=0)
    plain = NaryTreeLSTMCell(IN, H, arity=3).double()
    plain.load_state_dict(cell.state_dict())
    assert not torch.allclose(h, TreeRunner(plain)(batch, x).h)


@pytest.mark.parametrize("cell", [NaryTreeLSTMCell(IN, H, arity=2), ChildSumTreeLSTMCell(IN, H)])
def test_project_leaf_gives_the_same_leaf_states_as_project(cell):
    x = torch.randn(7, IN)
    none = torch.zeros(0, dtype=torch.long)
    leaves = Children(None, none, none, 7)
    short, full = cell(cell.project_leaf(x), leaves), cell(cell.project(x), leaves)
    assert cell.project_leaf(x).shape[1] < cell.project(x).shape[1]
    for a, b in zip(short, full, strict=True):
        torch.testing.assert_close(a, b)
