"""A fused level sweep for the N-ary Tree-LSTM: hand-written forward and backward, no autograd per level.

The generic level runner (:mod:`nlp_lib.modules.tree_runner`) batches *any* cell, and pays for
that generality with one ``torch.autograd.grad`` call per level and one weight-gradient matrix
multiply per level (small levels at the top of the trees make small, inefficient multiplies). For
the built-in :class:`~nlp_lib.cells.tree_lstm.NaryTreeLSTMCell` this module does what cuDNN does
for ``nn.LSTM``: the gate equations' derivatives are written out, each level's backward is a
handful of element-wise kernels and one multiply by ``U``, and the gradient of ``U`` is **one**
multiply over every inner node of the batch at the end of the sweep.

Results equal the generic runner's (outputs and every gradient; tests check it against the
one-node-at-a-time reference). The cell offers this sweep as its ``sweep()`` hook, which the
runner calls in ``"level"`` mode without ``compile``; a subclass that overrides ``forward`` does
not offer it (see :attr:`NaryTreeLSTMCell.sweep <nlp_lib.cells.tree_lstm.NaryTreeLSTMCell.sweep>`).

Torch only: a level is any object with the attributes of
:class:`nlp_lib.structure.schedule.LevelView` (the :class:`Level` protocol below).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import Tensor

__all__ = ["Level", "level_inputs", "nary_tree_lstm_sweep"]


class Level(Protocol):
    """One level of a schedule, as a sweep reads it (what :class:`~nlp_lib.structure.schedule.LevelView` holds).

    Attributes:
        start, end: The level's node positions ``[start, end)``.
        child_index: ``[E]`` position of each child edge's child, edges grouped by parent.
        child_parent: ``[E]`` index (``0..M-1``) of each edge's parent within the level.
        child_slot: ``[E]`` each child's rank among its siblings.
    """

    start: int
    end: int
    child_index: Tensor
    child_parent: Tensor
    child_slot: Tensor

    @property
    def num_nodes(self) -> int: ...

    @property
    def num_edges(self) -> int: ...


def level_inputs(x_in: Tensor, x_empty: Tensor | None, start: int, end: int) -> Tensor:
    """Projections of the nodes at positions ``[start, end)``: ``x_in`` covers ``[0, K)``, ``x_empty`` the rest."""
    k = x_in.shape[0]
    if end <= k:
        return x_in[start:end]
    if start >= k:
        return x_empty.expand(end - start, -1)
    return torch.cat([x_in[start:], x_empty.expand(end - k, -1)])


_sigmoid_bw = torch.ops.aten.sigmoid_backward.grad_input  # grad * y * (1 - y), written into ``grad_input``
_tanh_bw = torch.ops.aten.tanh_backward.grad_input  # grad * (1 - y * y)


def _side_by_side(buf: Tensor, lv: Level, n: int, out: Tensor) -> None:
    """Write into ``out`` (``[M * n, H]``) the level's children's rows of ``buf`` by (node, slot), zeros where missing."""
    if lv.num_edges == out.shape[0]:  # every node has exactly n children, already in (node, slot) order
        torch.index_select(buf, 0, lv.child_index, out=out)
    else:
        out.zero_().index_copy_(0, lv.child_parent * n + lv.child_slot, buf.index_select(0, lv.child_index))


class _NarySweep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, levels, n, num_nodes, x_in, x_empty, weight):  # noqa: ANN001
        hs = weight.shape[0] // (3 + n)
        h_buf = x_in.new_empty((num_nodes, hs))
        c_buf = x_in.new_empty((num_nodes, hs))
        inner = [lv for lv in levels if lv.num_edges]
        first_inner = inner[0].start if inner else num_nodes
        # Every inner node's children side by side, in one buffer: the weight gradient's one multiply reads it.
        hc_all = x_in.new_empty((num_nodes - first_inner, n * hs))
        saved = []
        for lv in levels:
            xl = level_inputs(x_in, x_empty, lv.start, lv.end)
            m = lv.num_nodes
            if lv.num_edges == 0:  # leaves: gates from the input alone
                if lv.start >= first_inner:
                    raise ValueError("fused N-ary sweep: a level without children above the leaves")
                if xl.shape[1] == 3 * hs:
                    x_io, x_u = xl.split([2 * hs, hs], dim=1)
                else:
                    x_io, _, x_u = xl.split([2 * hs, hs, hs], dim=1)
                i, o = torch.sigmoid(x_io).chunk(2, dim=1)
                u = torch.tanh(x_u)
                c = i * u
                cc = f = None
            else:
                if xl.shape[1] != 4 * hs:
                    raise ValueError("NaryTreeLSTMCell: nodes with children need project(), not project_leaf()")
                x_io, x_f, x_u = xl.split([2 * hs, hs, hs], dim=1)
                hc = hc_all[lv.start - first_inner : lv.end - first_inner]  # [M, N*H]
                _side_by_side(h_buf, lv, n, hc.view(m * n, hs))
                cc = x_in.new_empty((m, n, hs))
                _side_by_side(c_buf, lv, n, cc.view(m * n, hs))
                z_io, z_f, z_u = torch.mm(hc, weight.t()).split([2 * hs, n * hs, hs], dim=1)
                i, o = torch.sigmoid(z_io.add_(x_io)).chunk(2, dim=1)
                f = torch.sigmoid(z_f.view(m, n, hs).add_(x_f.unsqueeze(1)))
                u = torch.tanh(z_u.add_(x_u))
                c = torch.addcmul((f * cc).sum(1), i, u)
            tc = torch.tanh(c)
            torch.mul(o, tc, out=h_buf[lv.start : lv.end])
            c_buf[lv.start : lv.end] = c
            saved.append((xl.shape[1], i, o, u, tc, f, cc))
        ctx.levels, ctx.n, ctx.saved, ctx.hc_all, ctx.first_inner = levels, n, saved, hc_all, first_inner
        ctx.x_in_shape, ctx.has_empty = x_in.shape, x_empty is not None
        ctx.save_for_backward(weight)
        ctx.set_materialize_grads(False)
        return h_buf, c_buf

    @staticmethod
    def backward(ctx, grad_h, grad_c):  # noqa: ANN001
        (weight,) = ctx.saved_tensors
        levels, n, saved, first_inner = ctx.levels, ctx.n, ctx.saved, ctx.first_inner
        hs = weight.shape[0] // (3 + n)
        num_nodes = levels[-1].end
        ref = saved[-1][1]
        gh = grad_h.clone() if grad_h is not None else ref.new_zeros((num_nodes, hs))
        gc = grad_c.clone() if grad_c is not None else ref.new_zeros((num_nodes, hs))
        k = ctx.x_in_shape[0]
        dx_in = ref.new_empty(ctx.x_in_shape) if any(lv.start < k for lv in levels) else None
        # Pre-activation gradients of every inner node, in U_iouf's row order [i, o, f_1..f_N, u].
        dz_all = ref.new_empty((num_nodes - first_inner, (3 + n) * hs))
        leaf_empty = None  # x_empty's gradient from leaves without inputs
        for lv, (width, i, o, u, tc, f, cc) in zip(reversed(levels), reversed(saved), strict=True):
            m = lv.num_nodes
            dh, dc = gh[lv.start : lv.end], gc[lv.start : lv.end]
            dct = _tanh_bw(dh * o, tc, grad_input=torch.empty_like(dc)).add_(dc)  # dL/dc through h = o tanh(c)
            if f is None:  # leaves: [i, o, u] or [i, o, f, u] columns of their inputs
                dxl = dx_in[lv.start : lv.end] if lv.end <= k else ref.new_empty((m, width))  # in place if it can
                dzi, dzo, dzu = dxl[:, :hs], dxl[:, hs : 2 * hs], dxl[:, width - hs :]
                if width == 4 * hs:
                    dxl[:, 2 * hs : 3 * hs] = 0
            else:
                dz = dz_all[lv.start - first_inner : lv.end - first_inner]
                dzi, dzo, dzu = dz[:, :hs], dz[:, hs : 2 * hs], dz[:, (2 + n) * hs :]
                dzf = dz[:, 2 * hs : (2 + n) * hs].view(m, n, hs)
                _sigmoid_bw(dct.unsqueeze(1) * cc, f, grad_input=dzf)
            _sigmoid_bw(dct * u, i, grad_input=dzi)
            _sigmoid_bw(dh * tc, o, grad_input=dzo)
            _tanh_bw(dct * i, u, grad_input=dzu)
            if f is not None:
                d_hc = torch.mm(dz, weight).view(m * n, hs)  # to the children's h, side by side
                d_cc = (dct.unsqueeze(1) * f).view(m * n, hs)  # to the children's c
                if lv.num_edges != m * n:  # missing slots: keep the rows of existing children
                    rows = lv.child_parent * n + lv.child_slot
                    d_hc, d_cc = d_hc.index_select(0, rows), d_cc.index_select(0, rows)
                gh.index_add_(0, lv.child_index, d_hc)
                gc.index_add_(0, lv.child_index, d_cc)
                if lv.start < k:  # inner nodes with inputs of their own: [i, o, sum_k f_k, u]
                    dxl = torch.cat([dzi, dzo, dzf.sum(1), dzu], dim=1)
            if lv.end > k and f is None:  # leaves from K on read x_empty
                cut = max(k - lv.start, 0)
                if cut:
                    dx_in[lv.start :] = dxl[:cut]
                part = dxl[cut:].sum(0, keepdim=True)
                leaf_empty = part if leaf_empty is None else leaf_empty + part
            elif lv.start < k and f is not None:  # rows with inputs; the rest are folded into d_empty below
                cut = min(k, lv.end) - lv.start
                dx_in[lv.start : lv.start + cut] = dxl[:cut]
        d_empty = None
        if ctx.has_empty:  # every inner position from K on read x_empty: fold their column sums
            a = max(k, first_inner) - first_inner
            col = dz_all[a:].sum(0)
            f_sum = col[2 * hs : (2 + n) * hs].view(n, hs).sum(0)
            d_empty = torch.cat([col[: 2 * hs], f_sum, col[(2 + n) * hs :]]).unsqueeze(0)
            if leaf_empty is not None:
                d_empty = d_empty + leaf_empty
        d_weight = None
        if ctx.needs_input_grad[5]:  # one multiply over every inner node of the batch
            d_weight = torch.mm(dz_all.t(), ctx.hc_all)
        ctx.saved = ctx.hc_all = None
        return None, None, None, dx_in, d_empty, d_weight


def nary_tree_lstm_sweep(
    levels: Sequence[Level], arity: int, num_nodes: int, x_in: Tensor, x_empty: Tensor | None, weight: Tensor
) -> tuple[Tensor, Tensor]:
    """``(h, c)``, each ``[N, H]``, of every node: the N-ary Tree-LSTM over the levels, fused.

    Args:
        levels: The schedule's levels, leaves first.
        arity: ``N``.
        num_nodes: ``N`` nodes in all.
        x_in: ``[K, 4H]`` projections (layout ``[i, o, f, u]``) of positions ``[0, K)``, or ``[K, 3H]``
            (``[i, o, u]``) when exactly the leaves have inputs.
        x_empty: ``[1, 4H]`` projection of every later position (a zero input's), or None.
        weight: ``U_iouf``'s weight, ``[(3 + N) H, N H]``.

    Under autocast (mixed precision: ``precision=bf16-mixed`` or ``16-mixed``) the sweep runs in the
    autocast dtype, as autocast would run the generic path's multiplies, with autocast off inside:
    the hand-written backward then sees one dtype, and the casts' own backward returns the
    gradients of ``x_in``, ``x_empty`` and ``weight`` in their own dtypes.
    """
    device = x_in.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        with torch.autocast(device, enabled=False):
            return _NarySweep.apply(
                list(levels),
                arity,
                num_nodes,
                x_in.to(dtype),
                x_empty.to(dtype) if x_empty is not None else None,
                weight.to(dtype),
            )
    return _NarySweep.apply(list(levels), arity, num_nodes, x_in, x_empty, weight)
