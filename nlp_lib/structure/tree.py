"""Trees stored as arrays (struct of arrays), never as Python object graphs.

A tree of ``n`` nodes is three parallel arrays:

* ``parent[i]``: index of node ``i``'s parent, ``-1`` for the root;
* ``words[i]``: the word at node ``i`` (``""`` for a node without one, e.g. a constituency
  tree's internal node);
* ``labels[i]``: an integer label per node, ``-1`` where a node has none (optional).

Nodes are in **topological order**: every child comes before its parent (``parent[i] > i``), so
the root is the last node. Parsers produce this order (it is post-order), and it lets heights,
schedules and recursive reference evaluation run in one linear pass. The children of a node are
ordered by index; for N-ary cells the first child is slot 0 (a binary tree's left child).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from nlp_lib.errors import StructureError

__all__ = ["Tree", "compute_heights"]


def compute_heights(parent: Sequence[int]) -> list[int]:
    """Height of every node (0 for a leaf, 1 + the tallest child otherwise), in one linear pass.

    Args:
        parent: Parent index per node, children before parents, ``-1`` at the root.

    Returns:
        The height of each node.
    """
    height = [0] * len(parent)
    for i, p in enumerate(parent):
        if p >= 0:
            h = height[i] + 1
            if h > height[p]:
                height[p] = h
    return height


@dataclass(frozen=True, eq=False)
class Tree:
    """A rooted tree as arrays (see the module docstring for the layout).

    Args:
        parent: Parent index per node, ``-1`` for the root; every child before its parent.
        words: Word per node, ``""`` where a node has none. Defaults to no words.
        labels: Label per node, ``-1`` where a node has none. ``None`` when unlabelled.

    Raises:
        StructureError: If the arrays disagree in length, a parent index does not come after its
            child, or there is not exactly one root.
    """

    parent: tuple[int, ...]
    words: tuple[str, ...] = ()
    labels: tuple[int, ...] | None = None
    _height: list[int] = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        parent = tuple(int(p) for p in self.parent)
        object.__setattr__(self, "parent", parent)
        n = len(parent)
        if n == 0:
            raise StructureError("a tree needs at least one node")
        words = tuple(self.words) if self.words else ("",) * n
        object.__setattr__(self, "words", words)
        if len(words) != n:
            raise StructureError(f"tree has {n} nodes but {len(words)} words")
        if self.labels is not None:
            labels = tuple(int(x) for x in self.labels)
            if len(labels) != n:
                raise StructureError(f"tree has {n} nodes but {len(labels)} labels")
            object.__setattr__(self, "labels", labels)
        roots = 0
        for i, p in enumerate(parent):
            if p == -1:
                roots += 1
            elif not i < p < n:
                raise StructureError(
                    f"node {i} has parent {p}: parents must come after their children "
                    f"(topological order) and lie in [0, {n})"
                )
        if roots != 1 or parent[-1] != -1:
            raise StructureError(f"a tree needs exactly one root, the last node; found {roots} roots")

    def __len__(self) -> int:
        return len(self.parent)

    @property
    def root(self) -> int:
        """Index of the root (always the last node)."""
        return len(self.parent) - 1

    @property
    def heights(self) -> list[int]:
        """Height of every node, computed once and cached."""
        if self._height is None:
            object.__setattr__(self, "_height", compute_heights(self.parent))
        return self._height

    @property
    def leaves(self) -> list[int]:
        """Indices of the nodes without children, in order."""
        has_child = [False] * len(self.parent)
        for p in self.parent:
            if p >= 0:
                has_child[p] = True
        return [i for i, c in enumerate(has_child) if not c]

    def children(self) -> list[list[int]]:
        """Children of every node, each list in index (slot) order."""
        out: list[list[int]] = [[] for _ in self.parent]
        for i, p in enumerate(self.parent):
            if p >= 0:
                out[p].append(i)
        return out

    def leaf_words(self) -> list[str]:
        """The words of the leaves, left to right: the sentence."""
        return [self.words[i] for i in self.leaves]
