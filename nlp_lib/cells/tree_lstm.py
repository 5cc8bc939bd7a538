"""Tree-LSTM cells: child-sum and N-ary (Tai, Socher & Manning, ACL 2015).

Kai Sheng Tai, Richard Socher, Christopher D. Manning. "Improved Semantic Representations From
Tree-Structured Long Short-Term Memory Networks". ACL 2015. Equation numbers below are the paper's.

Both cells follow the :class:`nlp_lib.cells.base.TreeCell` protocol: ``project`` holds every term
that depends only on the node's input ``x_j`` (run once for all nodes), ``forward`` the terms that
depend on the children. Parameters are named after the paper (``W_iou``, ``U_f``...).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from nlp_lib.cells.base import Children, TreeLSTMState
from nlp_lib.cells.fused_tree_lstm import Level, nary_tree_lstm_sweep
from nlp_lib.configurable import Configurable
from nlp_lib.constraints import PositiveInt
from nlp_lib.errors import StructureError

__all__ = ["ChildSumTreeLSTMCell", "NaryTreeLSTMCell"]


class ChildSumTreeLSTMCell(Configurable, nn.Module):
    """Child-sum Tree-LSTM (Tai et al. 2015, eqs. 2-8), for trees of any arity.

    ``h~_j = sum_k h_k``; ``i, o, u`` from ``W x_j + U h~_j + b``; one forget gate per child,
    ``f_jk = sigmoid(W_f x_j + U_f h_k + b_f)``; ``c_j = i * u + sum_k f_jk * c_k``;
    ``h_j = o * tanh(c_j)``. Sums over children are segment sums (``index_add``), so nodes with
    different numbers of children share one batched call without padding.

    Args:
        input_size: Size of a node's input vector.
        hidden_size: Size of ``h`` and ``c``.
    """

    def __init__(self, input_size: PositiveInt, hidden_size: PositiveInt) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.W_iou = nn.Linear(input_size, 3 * hidden_size)  # W^(i,o,u) and b^(i,o,u)
        self.W_f = nn.Linear(input_size, hidden_size)  # W^(f) and b^(f)
        self.U_iou = nn.Linear(hidden_size, 3 * hidden_size, bias=False)
        self.U_f = nn.Linear(hidden_size, hidden_size, bias=False)

    def project(self, x: Tensor) -> Tensor:
        """``[K, input_size] -> [K, 4 * hidden]``: ``W_iou x + b_iou`` and ``W_f x + b_f``."""
        return torch.cat([self.W_iou(x), self.W_f(x)], dim=-1)

    def project_leaf(self, x: Tensor) -> Tensor:
        """``[K, input_size] -> [K, 3 * hidden]``: a leaf has no children, so no forget-gate term."""
        return self.W_iou(x)

    def forward(self, x_proj: Tensor, children: Children) -> TreeLSTMState:
        hs = self.hidden_size
        if x_proj.shape[1] == 3 * hs:  # project_leaf's layout: no forget-gate term
            iou, x_f = x_proj, None
        else:  # split, not slices: a slice's backward zero-fills a copy of the whole tensor
            iou, x_f = x_proj.split([3 * hs, hs], dim=1)
        fc = None
        if children:
            if x_f is None:
                raise ValueError("ChildSumTreeLSTMCell: nodes with children need project(), not project_leaf()")
            iou = iou + self.U_iou(children.sum(children.h))  # eqs. 2, 3, 5, 6: U h~_j
            f = torch.sigmoid(children.broadcast(x_f) + self.U_f(children.h))  # [E, H] eq. 4, one per child
            fc = children.sum(f * children.c)  # [M, H]
        i, o, u = iou.chunk(3, dim=-1)
        c = torch.sigmoid(i) * torch.tanh(u)  # eq. 7, first term
        if fc is not None:
            c = c + fc
        h = torch.sigmoid(o) * torch.tanh(c)  # eq. 8
        return TreeLSTMState(h, c)


class NaryTreeLSTMCell(Configurable, nn.Module):
    """N-ary Tree-LSTM (Tai et al. 2015, eqs. 9-14), for trees with at most ``arity`` ordered children.

    Each child slot ``l`` has its own ``U_l``: the children's ``h`` are laid side by side
    (``[M, N * H]``, zeros for missing children) and **one** matrix multiply by ``U_iouf`` yields
    every gate's child term, including a separate forget gate per child,
    ``f_jk = sigmoid(W_f x_j + sum_l U_kl^(f) h_jl + b_f)``. With ``arity=2`` this is the binary
    (constituency) Tree-LSTM.

    Parameters: ``W_iou`` (``W^(i,o,u)``, ``b^(i,o,u)``, rows ``i, o, u``), ``W_f`` (``W^(f)``,
    ``b^(f)``, shared by the children) and ``U_iouf`` = ``[U^(i); U^(o); U^(f)_1..N; U^(u)]``
    stacked by rows, each block ``[U_1 .. U_N]`` over the side-by-side children.

    The cell offers the runner a hand-written level sweep (:attr:`sweep`, the same results as
    ``forward`` level by level, faster to train); a subclass that overrides ``forward`` does not
    offer it, so its own ``forward`` is what runs.

    Args:
        input_size: Size of a node's input vector.
        hidden_size: Size of ``h`` and ``c``.
        arity: The largest number of children a node may have (``N``).
    """

    def __init__(self, input_size: PositiveInt, hidden_size: PositiveInt, arity: PositiveInt = 2) -> None:
        super().__init__()
        if arity < 1:
            raise ValueError(f"arity must be at least 1, got {arity}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.arity = arity
        self.W_iou = nn.Linear(input_size, 3 * hidden_size)  # rows: i, o, u
        self.W_f = nn.Linear(input_size, hidden_size)  # shared by all children
        self.U_iouf = nn.Linear(arity * hidden_size, (3 + arity) * hidden_size, bias=False)  # rows: i, o, f_1..N, u

    def project(self, x: Tensor) -> Tensor:
        """``[K, input_size] -> [K, 4 * hidden]``, laid out ``[i, o, f, u]``: ``W x + b`` in one matmul."""
        hs = self.hidden_size
        w_iou, b_iou = self.W_iou.weight, self.W_iou.bias
        w = torch.cat([w_iou[: 2 * hs], self.W_f.weight, w_iou[2 * hs :]])  # [4H, in]
        b = torch.cat([b_iou[: 2 * hs], self.W_f.bias, b_iou[2 * hs :]])
        return nn.functional.linear(x, w, b)

    def project_leaf(self, x: Tensor) -> Tensor:
        """``[K, input_size] -> [K, 3 * hidden]`` laid out ``[i, o, u]``: a leaf has no forget gate."""
        return self.W_iou(x)

    def forward(self, x_proj: Tensor, children: Children) -> TreeLSTMState:
        # Gates are cut apart with torch.split, never with slices: a split's backward is one cat,
        # a slice's backward writes a zero-filled copy of the whole tensor per slice.
        hs, n = self.hidden_size, self.arity
        m = x_proj.shape[0]
        if x_proj.shape[1] == 3 * hs:  # project_leaf's layout [i, o, u]
            x_io, x_u = x_proj.split([2 * hs, hs], dim=1)
            x_f = None
        else:  # project's layout [i, o, f, u]
            x_io, x_f, x_u = x_proj.split([2 * hs, hs, hs], dim=1)
        if not children:  # leaves: i, o, u from the input alone (eqs. 9, 11, 12, 13 with no children)
            i, o = torch.sigmoid(x_io).chunk(2, dim=1)
            c = i * torch.tanh(x_u)
            return TreeLSTMState(o * torch.tanh(c), c)
        if x_f is None:
            raise ValueError("NaryTreeLSTMCell: nodes with children need project(), not project_leaf()")
        h_cat = children.slots(children.h, n).view(m, n * hs)  # [M, N*H]: h_j1 .. h_jN, zeros if missing
        c_kids = children.slots(children.c, n)  # [M, N, H]
        z_io, z_f, z_u = self.U_iouf(h_cat).split([2 * hs, n * hs, hs], dim=1)  # child terms
        i, o = torch.sigmoid(z_io + x_io).chunk(2, dim=1)  # eqs. 9, 11
        f = torch.sigmoid(z_f.view(m, n, hs) + x_f.unsqueeze(1))  # [M, N, H], eq. 10
        c = i * torch.tanh(z_u + x_u) + (f * c_kids).sum(1)  # eqs. 12, 13
        h = o * torch.tanh(c)  # eq. 14
        return TreeLSTMState(h, c)

    @property
    def sweep(self) -> Callable[[Sequence[Level], int, Tensor, Tensor | None], TreeLSTMState] | None:
        """The runner's fast path: :meth:`fused_sweep`, offered only while ``forward`` is this class's own.

        The fused sweep computes exactly what :meth:`forward` does, so a subclass that overrides
        ``forward`` (and not ``sweep``) gets ``None`` here and the runner calls its ``forward``
        level by level: a changed cell never runs the parent's math silently. A subclass whose
        ``forward`` still matches may offer the sweep again by defining ``sweep`` itself.
        """
        if type(self).forward is not NaryTreeLSTMCell.forward:
            return None
        return self.fused_sweep

    def fused_sweep(
        self, levels: Sequence[Level], num_nodes: int, x_in: Tensor, x_empty: Tensor | None
    ) -> TreeLSTMState:
        """Every node's state over the whole schedule in one hand-written sweep (see :mod:`nlp_lib.cells.fused_tree_lstm`).

        Args:
            levels: The schedule's levels, leaves first.
            num_nodes: ``N``, the nodes of all levels.
            x_in: ``[K, 4H]`` :meth:`project` rows of positions ``[0, K)`` (or ``[K, 3H]``
                :meth:`project_leaf` rows when exactly the leaves have inputs).
            x_empty: ``[1, 4H]`` what every position from ``K`` on reads (a zero input's
                projection), or ``None`` when ``K = N``.

        Returns:
            ``h`` and ``c``, each ``[N, H]`` in level order.
        """
        h, c = nary_tree_lstm_sweep(levels, self.arity, num_nodes, x_in, x_empty, self.U_iouf.weight)
        return TreeLSTMState(h, c)

    def check(self, max_children: int) -> None:
        """Raise if a batch has a node with more children than this cell's arity."""
        if max_children > self.arity:
            raise StructureError(
                f"NaryTreeLSTMCell(arity={self.arity}) got a node with {max_children} children; "
                "binarise the trees or use a larger arity or ChildSumTreeLSTMCell"
            )
