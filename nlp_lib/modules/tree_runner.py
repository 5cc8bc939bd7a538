"""Run a tree cell over a level schedule: one batched cell call per level, never one per node.

Two execution modes give the same results (outputs and gradients, to float tolerance; a test
checks it):

* ``"level"`` (default): all nodes of one height, across the whole batch, in one call. States
  live in one preallocated buffer per state field; a level reads its children with one
  ``index_select`` and writes its own slice. The backward pass is a custom sweep from the top level
  down that accumulates gradients into one buffer with ``index_add`` — so memory traffic is linear in
  the number of nodes (plain autograd over in-place buffer writes would copy the whole buffer once
  per level) and the cell can be any autograd-differentiable module.
* ``"recursive"``: node by node in topological order with plain autograd: the reference the level
  mode is tested against, and a debugging mode in which one can step through a single node with
  ``pdb``.

A cell may offer a whole-schedule fast path of its own, ``sweep(levels, num_nodes, x_in, x_empty)
-> state`` (the built-in :class:`~nlp_lib.cells.tree_lstm.NaryTreeLSTMCell` offers a hand-written
one); level mode calls it in place of the generic sweep unless ``fused=False`` or ``compile=True``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from nlp_lib.cells.base import Children
from nlp_lib.cells.fused_tree_lstm import level_inputs as _level_inputs
from nlp_lib.structure.schedule import LevelView, TreeBatch

__all__ = ["TreeRunner", "run_levels", "run_recursive"]

Mode = Literal["level", "recursive"]
Direction = Literal["up", "down"]


def _children(lv: LevelView, fields: Sequence[Tensor] | None, state_type: type) -> Children:
    state = _make_state(state_type, fields) if fields is not None else None
    return Children(state, lv.child_parent, lv.child_slot, lv.num_nodes, lv.max_children)


def _make_state(state_type: type, fields: Sequence[Tensor]) -> tuple[Tensor, ...]:
    return state_type(*fields) if state_type is not tuple else tuple(fields)


class _LevelSweep(torch.autograd.Function):
    """Forward: level loop writing into buffers. Backward: top-down sweep, grads via ``index_add``.

    ``x_in`` holds the projections of positions ``[0, K)``; every later position gets ``x_empty``
    (the projection of a zero input), broadcast without a copy.
    """

    @staticmethod
    def forward(ctx, cell, levels, num_nodes, meta, x_in, x_empty, *params):  # noqa: ANN001
        bufs: list[Tensor] | None = None
        graphs = []
        state_type: type = tuple
        with torch.enable_grad():
            for lv in levels:
                xl = _level_inputs(x_in, x_empty, lv.start, lv.end).detach().requires_grad_()
                if lv.num_edges and bufs is not None:
                    ch = [b.index_select(0, lv.child_index).requires_grad_() for b in bufs]
                    children = _children(lv, ch, state_type)
                else:
                    ch, children = [], _children(lv, None, state_type)
                out = cell(xl, children)
                if bufs is None:
                    state_type = type(out)
                    bufs = [t.new_empty((num_nodes,) + t.shape[1:]) for t in out]
                for b, t in zip(bufs, out, strict=True):
                    b[lv.start : lv.end] = t.detach()
                graphs.append((xl, ch, tuple(out)))
        meta.append(state_type)  # lets the caller rebuild the cell's own state type
        ctx.set_materialize_grads(False)
        ctx.levels = levels
        ctx.graphs = graphs
        ctx.params = params
        ctx.x_in_shape = x_in.shape
        ctx.has_empty = x_empty is not None
        return tuple(bufs)

    @staticmethod
    def backward(ctx, *grad_bufs):  # noqa: ANN001
        levels, graphs, params = ctx.levels, ctx.graphs, ctx.params
        n = levels[-1].end
        ref = next(t for t in graphs[-1][2])
        # One accumulator per state field, filled in place as the sweep goes down.
        grads = [
            g.clone() if g is not None else torch.zeros((n,) + t.shape[1:], dtype=t.dtype, device=t.device)
            for g, t in zip(grad_bufs, graphs[-1][2], strict=True)
        ]
        k = ctx.x_in_shape[0]
        # Every row of dx_in belongs to exactly one level and is written below: no zero-fill.
        dx_in = ref.new_empty(ctx.x_in_shape) if any(lv.start < k for lv in levels) else None
        d_empty = None
        dparams: list[Tensor | None] = [None] * len(params)
        for lv, (xl, ch, out) in zip(reversed(levels), reversed(graphs), strict=True):
            outs, gouts = [], []
            for t, g in zip(out, grads, strict=True):
                if t.requires_grad:
                    outs.append(t)
                    gouts.append(g[lv.start : lv.end])
            res = torch.autograd.grad(outs, [xl, *ch, *params], gouts, allow_unused=True) if outs else None
            dxl = res[0] if res is not None and res[0] is not None else torch.zeros_like(xl)
            if lv.end <= k:
                dx_in[lv.start : lv.end] = dxl
            else:
                cut = max(k - lv.start, 0)
                if cut:
                    dx_in[lv.start :] = dxl[:cut]
                part = dxl[cut:].sum(0, keepdim=True)
                d_empty = part if d_empty is None else d_empty + part
            if res is None:
                continue
            for g, d in zip(grads, res[1 : 1 + len(ch)], strict=False):  # ch is [] on leaf levels
                if d is not None:
                    g.index_add_(0, lv.child_index, d.to(g.dtype))
            for i, d in enumerate(res[1 + len(ch) :]):
                if d is not None:
                    dparams[i] = d if dparams[i] is None else dparams[i].add_(d)
        ctx.graphs = None
        return (None, None, None, None, dx_in, d_empty if ctx.has_empty else None, *dparams)


def run_levels(cell: nn.Module, batch: TreeBatch, x_in: Tensor, x_empty: Tensor | None = None) -> tuple[Tensor, ...]:
    """States of every node of ``batch``, level by level.

    Args:
        cell: A :class:`~nlp_lib.cells.base.TreeCell`.
        batch: The schedule (on the same device as the projections).
        x_in: ``[K, P]`` input projections of positions ``[0, K)`` (level order); ``K = N`` when
            every node has one.
        x_empty: ``[1, P]`` projection every position from ``K`` on receives (a zero input's).

    Returns:
        The cell's state type with ``[N, ...]`` tensors, in level order.
    """
    if x_in.shape[0] < batch.num_nodes and x_empty is None:
        raise ValueError("x_empty is needed when x_in does not cover every node")
    levels = batch.levels()
    params = [p for p in cell.parameters() if p.requires_grad]
    needs_grad = x_in.requires_grad or (x_empty is not None and x_empty.requires_grad) or params
    if torch.is_grad_enabled() and needs_grad:
        meta: list[type] = []
        bufs = _LevelSweep.apply(cell, levels, batch.num_nodes, meta, x_in, x_empty, *params)
        return _make_state(meta[0], bufs)
    bufs = None
    state_type: type = tuple
    for lv in levels:
        fields = [b.index_select(0, lv.child_index) for b in bufs] if lv.num_edges and bufs is not None else None
        out = cell(_level_inputs(x_in, x_empty, lv.start, lv.end), _children(lv, fields, state_type))
        if bufs is None:
            state_type = type(out)
            bufs = [t.new_empty((batch.num_nodes,) + t.shape[1:]) for t in out]
        for b, t in zip(bufs, out, strict=True):
            b[lv.start : lv.end] = t
    return _make_state(state_type, bufs)


def run_recursive(cell: nn.Module, batch: TreeBatch, x_in: Tensor, x_empty: Tensor | None = None) -> tuple[Tensor, ...]:
    """The same states as :func:`run_levels`, computed one node at a time with plain autograd.

    Nodes are visited in level order (children always first); each call sees one node and its
    children only. Slow by design: the reference for tests and a mode to debug a cell in.
    """
    num_inputs = x_in.shape[0]
    n = batch.num_nodes
    child_index = batch.child_index.tolist()
    child_parent_pos = []
    for lvl in range(batch.num_levels):
        es, ee = batch.edge_offsets[lvl], batch.edge_offsets[lvl + 1]
        start = batch.level_offsets[lvl]
        child_parent_pos.extend(start + p for p in batch.child_parent[es:ee].tolist())
    kids: list[list[int]] = [[] for _ in range(n)]
    for c, p in zip(child_index, child_parent_pos, strict=True):
        kids[p].append(c)
    states: list[tuple[Tensor, ...] | None] = [None] * n
    state_type: type = tuple
    device = x_in.device
    for pos in range(n):
        k = kids[pos]
        lv = LevelView(
            start=pos,
            end=pos + 1,
            child_index=torch.tensor(k, dtype=torch.long, device=device),
            child_parent=torch.zeros(len(k), dtype=torch.long, device=device),
            child_slot=torch.arange(len(k), device=device),
            max_children=len(k),
        )
        fields = None
        if k:
            fields = [torch.cat([states[c][f] for c in k]) for f in range(len(states[k[0]]))]
        out = cell(x_in[pos : pos + 1] if pos < num_inputs else x_empty, _children(lv, fields, state_type))
        state_type = type(out)
        states[pos] = out
    return _make_state(state_type, [torch.cat([s[f] for s in states]) for f in range(len(states[0]))])


def _identity(x: Tensor) -> Tensor:
    return x


class TreeRunner(nn.Module):
    """Applies a tree cell over a batch of trees and returns every node's state.

    Args:
        cell: Any :class:`~nlp_lib.cells.base.TreeCell`: an ``nn.Module`` with
            ``forward(x, children)`` and, optionally, ``project`` / ``project_leaf`` / ``check``.
        mode: ``"level"`` (batched, the default) or ``"recursive"`` (one node at a time, for
            reference and debugging).
        direction: ``"up"`` (leaves to root: a node reads its children) or ``"down"`` (root to
            leaves over the reversed edges: a node reads its parent, or its parents in a DAG; the
            second pass of a bidirectional Tree-LSTM).
        compile: Run the cell through ``torch.compile`` (fused kernels; sizes marked dynamic so
            new level sizes do not recompile). The first batches pay the compilation.
        fused: In ``"level"`` mode without ``compile``, call the cell's own ``sweep()`` when it
            offers one (an unmodified :class:`~nlp_lib.cells.tree_lstm.NaryTreeLSTMCell` does:
            same results, faster training). ``False`` runs every cell through the generic sweep.
    """

    def __init__(
        self,
        cell: nn.Module,
        mode: Mode = "level",
        direction: Direction = "up",
        compile: bool = False,
        fused: bool = True,
    ) -> None:
        super().__init__()
        if mode not in ("level", "recursive"):
            raise ValueError(f"mode must be 'level' or 'recursive', got {mode!r}")
        if direction not in ("up", "down"):
            raise ValueError(f"direction must be 'up' or 'down', got {direction!r}")
        self.cell = cell
        self.mode = mode
        self.direction = direction
        self.compile = compile
        self.fused = fused

    def _level_cell(self) -> nn.Module:
        """The cell the level loop calls: compiled once with dynamic sizes when ``compile=True``.

        Level sizes change with every level and batch; compiling with symbolic sizes gives a
        handful of graphs (leaves, inner nodes, sizes 0 and 1 that the compiler specialises)
        instead of one compilation per size.
        """
        if not self.compile:
            return self.cell
        compiled = self.__dict__.get("_compiled")  # not a submodule: the parameters stay the cell's
        if compiled is None:
            compiled = self.__dict__["_compiled"] = torch.compile(self.cell, dynamic=True)
        return compiled

    def forward(
        self, batch: TreeBatch, x: Tensor, has_input: Tensor | None = None, input_index: Tensor | None = None
    ) -> tuple[Tensor, ...]:
        """Run the cell over the batch.

        Args:
            batch: The schedule.
            x: ``[K, input_size]`` inputs of the nodes in ``has_input`` (or ``[N, input_size]`` for
                all nodes when ``has_input`` is None), in the batch's level order. With
                ``input_index``: ``[U, input_size]`` distinct inputs.
            has_input: ``[K]`` positions of the nodes that have an input; every other node gets
                the projection of a zero input. ``None``: every node has one.
            input_index: ``[K]`` for each input node, its row of ``x``: each distinct input (a
                word that occurs many times in a batch) is projected once, then gathered
                (``batch.token_inverse`` with ``x`` the embeddings of ``batch.unique_tokens``).

        Returns:
            The cell's state type with ``[N, ...]`` tensors in the batch's level order (also for
            ``direction="down"``: the top-down states are mapped back to ``batch``'s positions).
        """
        if self.direction == "down":  # the same cell over the reversed edges: each node reads its parents
            rev, to_rev = batch.reversed()
            if has_input is None:
                perm, where = rev.order, None
            else:
                where = to_rev[has_input]
                perm = torch.argsort(where)
                where = where[perm]
            if input_index is None:
                x = x[perm]
            else:
                input_index = input_index[perm]
            states = self._run(rev, x, input_index, where, True if where is None else None)
            return _make_state(type(states), [s[to_rev] for s in states])
        prefix = batch.inputs_are_prefix if has_input is batch.input_positions else None
        return self._run(batch, x, input_index, has_input, prefix)

    def _run(
        self, batch: TreeBatch, x: Tensor, input_index: Tensor | None, has_input: Tensor | None, prefix: bool | None
    ) -> tuple[Tensor, ...]:
        check = getattr(self.cell, "check", None)
        if check is not None:
            check(batch.max_children)
        proj, empty = self._project(batch, x, input_index, has_input, prefix)
        return self._execute(batch, proj, empty)

    def _project(
        self, batch: TreeBatch, x: Tensor, input_index: Tensor | None, has_input: Tensor | None, prefix: bool | None
    ) -> tuple[Tensor, Tensor | None]:
        """The cell's input projections: ``[K, P]`` rows of positions ``[0, K)`` and ``[1, P]`` for the rest.

        The second is ``None`` when the first covers every node (every node has an input, or
        scattered inputs were placed among zero-input rows).
        """
        if has_input is None:  # every node has an input
            return self._project_inputs(x, input_index, leaf=False), None
        num_inputs = x.shape[0] if input_index is None else input_index.shape[0]
        if prefix is None:  # are the inputs exactly positions 0..K-1?
            prefix = bool(torch.equal(has_input, torch.arange(num_inputs, device=has_input.device)))
        # exactly the leaves (level 0) have inputs: they never read child terms
        leaves_only = prefix and num_inputs == batch.level_offsets[1] and batch.num_levels > 1
        proj = self._project_inputs(x, input_index, leaf=leaves_only)
        if num_inputs == batch.num_nodes:
            return proj, None
        empty = self._projection()(x.new_zeros(1, x.shape[-1]))  # [1, P]: a node without input
        if prefix:
            return proj, empty
        # inputs scattered in level order: place them explicitly
        return empty.expand(batch.num_nodes, -1).index_copy(0, has_input, proj), None  # [N, P]

    def _projection(self) -> Callable[[Tensor], Tensor]:
        """The cell's ``project`` (a cell without one reads its raw input)."""
        project = getattr(self.cell, "project", None)
        return _identity if project is None else project

    def _project_inputs(self, x: Tensor, input_index: Tensor | None, leaf: bool) -> Tensor:
        """``[K, P]``: each input node's row, projected once per distinct input (``project_leaf`` for leaves only)."""
        project_leaf = getattr(self.cell, "project_leaf", None) if leaf else None
        proj = project_leaf(x) if project_leaf is not None else self._projection()(x)  # [U, P]
        if input_index is not None:
            proj = proj.index_select(0, input_index)  # [K, P]: each node's row
        return proj

    def _execute(self, batch: TreeBatch, proj: Tensor, empty: Tensor | None) -> tuple[Tensor, ...]:
        """Run the cell over the levels: node by node, through the cell's own ``sweep()``, or the generic sweep."""
        if self.mode == "recursive":
            return run_recursive(self.cell, batch, proj, empty)
        sweep = getattr(self.cell, "sweep", None) if self.fused and not self.compile else None
        if sweep is not None:
            return sweep(batch.levels(), batch.num_nodes, proj, empty)
        return run_levels(self._level_cell(), batch, proj, empty)
