"""Directed acyclic graphs as arrays: a node may feed several parents.

A DAG generalises a tree: each edge ``child -> parent`` says that ``parent`` reads ``child``'s state,
and a node may be read by several parents (a shared sub-expression, a lattice, a graph with
re-entrancies). Nodes are numbered in topological order (every edge goes from a lower to a higher
index) and the last node is the graph's output, as a tree's root is. A parent's inputs are ordered
by the children's indices (their ``slot``).

Schedules treat a tree as the DAG whose edges are its ``parent`` array: the same level-by-level
execution runs both (see :meth:`nlp_lib.structure.TreeBatch.from_dags`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from nlp_lib.errors import StructureError

__all__ = ["Dag", "compute_dag_heights"]


def compute_dag_heights(num_nodes: int, child: Sequence[int], parent: Sequence[int]) -> list[int]:
    """Height of every node: 0 without inputs, else 1 + the highest input (the longest path from a source).

    Linear in nodes and edges; nodes must be in topological order (``child[e] < parent[e]``).
    """
    height = [0] * num_nodes
    for p, c in sorted(zip(parent, child, strict=True)):  # by parent: each child's height is final first
        h = height[c] + 1
        if h > height[p]:
            height[p] = h
    return height


@dataclass(frozen=True, eq=False)
class Dag:
    """A DAG as arrays.

    Args:
        num_nodes: Number of nodes.
        child: Per edge, the node whose state is read.
        parent: Per edge, the node that reads it; ``child[e] < parent[e]`` (topological order).
        words: Word per node, ``""`` where a node has none. Defaults to no words.
        labels: Label per node, ``-1`` where a node has none; ``None`` when unlabelled.

    Raises:
        StructureError: an edge out of range or against the topological order, or arrays of
            different lengths.
    """

    num_nodes: int
    child: tuple[int, ...]
    parent: tuple[int, ...]
    words: tuple[str, ...] = field(default=())
    labels: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "child", tuple(self.child))
        object.__setattr__(self, "parent", tuple(self.parent))
        object.__setattr__(self, "words", tuple(self.words) if self.words else ("",) * self.num_nodes)
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(self.labels))
        n = self.num_nodes
        if n < 1:
            raise StructureError("a DAG needs at least one node")
        if len(self.child) != len(self.parent):
            raise StructureError(f"{len(self.child)} edge children but {len(self.parent)} edge parents")
        if len(self.words) != n or (self.labels is not None and len(self.labels) != n):
            raise StructureError(f"words and labels need one entry per node ({n})")
        for e, (c, p) in enumerate(zip(self.child, self.parent, strict=True)):
            if not (0 <= c < p < n):
                raise StructureError(
                    f"edge {e} ({c} -> {p}): nodes must be in 0..{n - 1} and every edge must go from a "
                    "lower to a higher index (number the nodes in topological order)"
                )

    def __len__(self) -> int:
        return self.num_nodes

    @cached_property
    def heights(self) -> list[int]:
        """Each node's height (cached: a dataset computes it once per graph)."""
        return compute_dag_heights(self.num_nodes, self.child, self.parent)

    @classmethod
    def from_tree(cls, tree) -> Dag:  # noqa: ANN001 - a nlp_lib.structure.Tree
        """The DAG of a tree: one edge per non-root node."""
        edges = [(i, p) for i, p in enumerate(tree.parent) if p >= 0]
        return cls(
            num_nodes=len(tree),
            child=tuple(c for c, _ in edges),
            parent=tuple(p for _, p in edges),
            words=tree.words,
            labels=tree.labels,
        )
