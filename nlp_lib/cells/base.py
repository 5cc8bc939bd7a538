"""What a user writes to bring a node function of their own, and the state types of the built-ins.

A **tree cell** is the computation for ONE node: given the node's input and its children's states,
return the node's state. The library applies it to every node of a whole level of a batch in one
call, so a cell is written with row-wise tensor operations, and anything that involves several
children goes through the :class:`Children` it receives (sums, means, maxima, children side by side
by slot, the node's own values repeated for each of its children). No batching code, no padding, no
registration: any ``nn.Module`` with this signature works.

1. ``forward(x, children) -> state``. ``x`` is ``[M, P]``: one row per node (the node's input, or
   its projection, below). ``children`` is a :class:`Children`; it is *falsy* for leaves (nodes
   without children, which the library runs as one level of their own). The state is a tuple of
   ``[M, ...]`` tensors (a ``NamedTuple`` such as :class:`TreeLSTMState`); its first field is the
   node's output ``h``.
2. Optionally ``project(x)``: ``[K, input_size] -> [K, P]``, the part that depends on the node's
   input alone. The library runs it **once for all nodes** before the level loop (the hoisted input
   projection of DGL's Tree-LSTM) and passes its rows to ``forward``. Without ``project`` a cell
   receives its raw input. A node without an input (a constituency tree's inner node) receives
   ``project`` of a zero vector.
3. Optionally ``project_leaf(x)``: the narrower projection a *leaf* reads; when exactly the leaves
   have inputs the runner calls it instead (e.g. a Tree-LSTM leaf has no forget gate).
4. Optionally ``check(max_children)``: raise a clear error for a batch the cell cannot run (an
   N-ary cell given a node with more than N children).

See ``docs/custom_cells.md`` for a worked example.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = ["Children", "TreeCell", "TreeGRUState", "TreeLSTMState", "RecursiveState"]


class TreeLSTMState(NamedTuple):
    """Hidden and memory state of Tree-LSTM nodes: ``h`` and ``c``, each ``[nodes, hidden]``."""

    h: Tensor
    c: Tensor


class TreeGRUState(NamedTuple):
    """Hidden state of Tree-GRU nodes: ``h``, ``[nodes, hidden]``."""

    h: Tensor


class RecursiveState(NamedTuple):
    """Hidden state of a plain recursive neural network's nodes: ``h``, ``[nodes, hidden]``."""

    h: Tensor


class Children:
    """The children of a level's ``M`` nodes, as a node function sees them.

    Per-child values have one row per child edge (``[E, ...]``, children grouped by node, in slot
    order); per-node values one row per node (``[M, ...]``). The children's state fields are
    attributes (``children.h``, ``children.c``: ``[E, ...]``). Reductions are segment operations
    over each node's own children: nodes with different numbers of children share one call, with no
    padding to the widest node. A node that feeds several parents (a DAG) appears once under each.

    Attributes:
        state: The children's states (the cell's state type, ``[E, ...]`` fields); ``None`` for
            leaves.
        parent: ``[E]`` the index (``0..M-1``) of the node each child belongs to.
        slot: ``[E]`` each child's rank among its node's children (0 = first / left).
        num_nodes: ``M``.
        max_children: An upper bound on any node's number of children (the schedule knows it
            without reading device memory); ``None`` if unknown.
    """

    __slots__ = ("state", "parent", "slot", "num_nodes", "max_children", "_count")

    def __init__(
        self,
        state: tuple[Tensor, ...] | None,
        parent: Tensor,
        slot: Tensor,
        num_nodes: int,
        max_children: int | None = None,
    ) -> None:
        self.state = state
        self.parent = parent
        self.slot = slot
        self.num_nodes = num_nodes
        self.max_children = max_children  # a bound known without a device sync (the batch's), or None
        self._count: Tensor | None = None

    def __bool__(self) -> bool:
        return self.state is not None and bool(self.parent.numel() > 0)  # bool(): numel is a tensor when traced

    def __len__(self) -> int:
        """Number of child edges ``E``."""
        return int(self.parent.numel())

    def __getattr__(self, name: str) -> Any:
        state = object.__getattribute__(self, "state")
        if state is not None and hasattr(state, name):
            return getattr(state, name)
        raise AttributeError(f"Children has no attribute {name!r} (the children's state fields: {_fields(state)})")

    def __getitem__(self, i: int) -> Tensor:
        """The ``i``-th field of the children's state (for plain-tuple states)."""
        if self.state is None:
            raise IndexError("leaves have no children")
        return self.state[i]

    @property
    def count(self) -> Tensor:
        """``[M]`` number of children of each node (long)."""
        if self._count is None:
            self._count = torch.bincount(self.parent, minlength=self.num_nodes)
        return self._count

    def sum(self, t: Tensor) -> Tensor:
        """``[E, ...] -> [M, ...]``: each node's sum over its children (0 for none)."""
        out = t.new_zeros((self.num_nodes,) + t.shape[1:])
        return out.index_add_(0, self.parent, t)

    def mean(self, t: Tensor) -> Tensor:
        """``[E, ...] -> [M, ...]``: each node's mean over its children (0 for none)."""
        div = self.count.clamp(min=1).to(t.dtype).view((-1,) + (1,) * (t.dim() - 1))
        return self.sum(t) / div

    def max(self, t: Tensor) -> Tensor:
        """``[E, ...] -> [M, ...]``: each node's elementwise maximum over its children (0 for none)."""
        index = self.parent.view((-1,) + (1,) * (t.dim() - 1)).expand_as(t)
        out = t.new_zeros((self.num_nodes,) + t.shape[1:])
        return out.scatter_reduce(0, index, t, reduce="amax", include_self=False)

    def broadcast(self, t: Tensor) -> Tensor:
        """``[M, ...] -> [E, ...]``: a per-node value repeated for each of the node's children.

        E.g. a Tree-LSTM's forget gate per child reads its parent's input term:
        ``sigmoid(children.broadcast(x_f) + U_f(children.h))``.
        """
        return t.index_select(0, self.parent)

    def slots(self, t: Tensor, n: int) -> Tensor:
        """``[E, ...] -> [M, n, ...]``: each node's children side by side by slot, zeros where missing.

        For ordered (N-ary) cells, e.g. ``children.slots(children.h, 2).flatten(1)`` is
        ``[h_left; h_right]``. Raises if a node has more than ``n`` children.
        """
        self._check_width(t, n)
        if t.shape[0] == self.num_nodes * n:  # exactly n each, rows in (node, slot) order
            return t.reshape((self.num_nodes, n) + t.shape[1:])
        return self._scatter_slots(t, n)

    def _check_width(self, t: Tensor, n: int) -> None:
        """Raise if a node has more than ``n`` children (``t``: ``[E, ...]``)."""
        e = t.shape[0]
        most = self.max_children if self.max_children is not None else (int(self.slot.max()) + 1 if e else 0)
        if most > n:
            raise ValueError(f"a node has more than {n} children")

    def _scatter_slots(self, t: Tensor, n: int) -> Tensor:
        """:meth:`slots` by scattering each child's row to its ``(node, slot)`` place."""
        m, tail = self.num_nodes, t.shape[1:]
        rows = self.parent * n + self.slot  # [E]
        return t.new_zeros((m * n,) + tail).index_copy(0, rows, t).view((m, n) + tail)


def _fields(state: Any) -> str:
    if state is None:
        return "none: these are leaves"
    return ", ".join(getattr(state, "_fields", ())) or f"a plain tuple of {len(state)}: use children[i]"


@runtime_checkable
class TreeCell(Protocol):
    """A node function the tree runner batches over any schedule.

    Attributes:
        input_size: Size of a node's input vector.
        hidden_size: Size of a node's output ``h`` (the first field of its state).
    """

    input_size: int
    hidden_size: int

    def __call__(self, x: Tensor, children: Children) -> tuple[Tensor, ...]:
        """States ``[M, ...]`` of a level's nodes from their inputs ``[M, P]`` and their children."""
        ...
