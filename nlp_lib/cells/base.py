"""The interfaces a user implements to bring a cell of their own, and the state types.

A **tree cell** is the math for one node, written for a whole level of nodes at once:

1. ``project(x)`` maps node inputs ``[K, input_size]`` to their input projections ``[K, P]``. It
   depends only on the node's own input, so the library runs it **once for all nodes** before the
   level loop (the hoisted input projection of DGL's Tree-LSTM). ``project`` of a zero vector is
   what a node without an input (a constituency tree's inner node) receives.
   Optionally, ``project_leaf(x)`` returns only the leading columns a node *without children*
   reads; when exactly the leaves have inputs (constituency trees) the runner calls it instead,
   which skips e.g. the forget-gate projection no leaf uses.
2. ``forward(x_proj, children, level)`` computes the states ``[M, ...]`` of one level's ``M``
   nodes from their projections ``[M, P]`` and their children's states (a state tuple of ``[E, ...]``
   tensors, ``None`` when no node of the level has children). ``level`` says which node each child
   belongs to (``level.child_parent``) and its rank among its siblings (``level.child_slot``), so a
   cell reduces over children with segment sums, with no padding to the widest node.

Cells are ordinary ``nn.Module`` s; nothing needs to be registered or subclassed.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

from torch import Tensor

from nlp_lib.structure.schedule import LevelView

__all__ = ["TreeCell", "TreeLSTMState"]


class TreeLSTMState(NamedTuple):
    """Hidden and memory state of Tree-LSTM nodes: ``h`` and ``c``, each ``[nodes, hidden]``."""

    h: Tensor
    c: Tensor


@runtime_checkable
class TreeCell(Protocol):
    """A node function the tree runner batches over any schedule.

    Attributes:
        input_size: Size of a node's input vector.
        hidden_size: Size of a node's output ``h`` (the first field of its state).
    """

    input_size: int
    hidden_size: int

    def project(self, x: Tensor) -> Tensor:
        """Input projections ``[K, P]`` of node inputs ``[K, input_size]``."""
        ...

    def __call__(self, x_proj: Tensor, children: tuple[Tensor, ...] | None, level: LevelView) -> tuple[Tensor, ...]:
        """States of one level's nodes from their projections and their children's states."""
        ...
