"""Level schedules: a batch of trees turned into index tensors for level-by-level execution.

Every node of every tree in the batch gets a *position* in one flat state buffer. Positions are
sorted by height (leaves first), so each **level** (all nodes of one height, across all trees) is a
contiguous slice ``[level_offsets[l], level_offsets[l + 1])`` and every node's children lie in
earlier levels. A runner then executes one batched cell call per level, never one per node.

Edges (child -> parent) are sorted by their parent's position, so the edges entering level ``l``
are the slice ``[edge_offsets[l], edge_offsets[l + 1])``, and per edge the schedule holds the
child's position, the parent's index *within its level* and the child's slot among its siblings.

Building a schedule is vectorised (a few sorts and scatters over all nodes of the batch); it runs
in DataLoader workers, and the batch moves to a device with ``.to(device)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from nlp_lib.structure.tree import compute_heights

__all__ = ["TreeBatch", "LevelView"]


@dataclass(frozen=True)
class LevelView:
    """What a cell needs to know about one level's nodes and the edges from their children.

    Attributes:
        start: Position of the level's first node in the state buffer.
        end: One past the position of its last node.
        child_index: ``[E]`` positions of the children of this level's nodes.
        child_parent: ``[E]`` for each child, its parent's index within the level (``0..M-1``).
        child_slot: ``[E]`` for each child, its rank among its siblings (0 = first/left).
    """

    start: int
    end: int
    child_index: Tensor
    child_parent: Tensor
    child_slot: Tensor

    @property
    def num_nodes(self) -> int:
        """Number of nodes in this level (``M``)."""
        return self.end - self.start

    @property
    def num_edges(self) -> int:
        """Number of child edges entering this level (``E``)."""
        return int(self.child_index.shape[0])


@dataclass
class TreeBatch:
    """A batch of trees as one level schedule (all tensors in level order).

    Attributes:
        tokens: ``[N]`` token id per node, ``-1`` for a node without a token.
        labels: ``[N]`` label per node, ``-1`` where none; ``None`` when unlabelled.
        roots: ``[B]`` position of each tree's root.
        node_tree: ``[N]`` index of the tree each node belongs to.
        child_index: ``[E]`` child position per edge, edges sorted by parent position.
        child_parent: ``[E]`` parent's index within its level, per edge.
        child_slot: ``[E]`` child's rank among its siblings, per edge.
        level_offsets: ``L + 1`` node offsets of the levels (Python ints: slicing needs no sync).
        edge_offsets: ``L + 1`` edge offsets of the levels.
        order: ``[N]`` for each position, the node's index in the concatenation of the input
            trees (tree by tree, node by node), to map results back to the original order.
        input_positions: ``[K]`` positions of the nodes that have a token (``tokens >= 0``),
            computed here so that a model on a GPU needs no ``nonzero`` sync.
        inputs_are_prefix: Whether ``input_positions`` is exactly ``0..K-1`` (true for
            constituency trees, whose leaves are level 0, and for trees where every node has an
            input); the runner then needs no scatter to place input projections.
        max_children: The largest number of children of any node (N-ary cells check it).
    """

    tokens: Tensor
    labels: Tensor | None
    roots: Tensor
    node_tree: Tensor
    child_index: Tensor
    child_parent: Tensor
    child_slot: Tensor
    level_offsets: tuple[int, ...]
    edge_offsets: tuple[int, ...]
    order: Tensor
    input_positions: Tensor
    inputs_are_prefix: bool = False
    max_children: int = 0

    @property
    def num_trees(self) -> int:
        return int(self.roots.shape[0])

    @property
    def num_nodes(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def num_levels(self) -> int:
        return len(self.level_offsets) - 1

    def level(self, i: int) -> LevelView:
        """The ``i``-th level (0 = leaves) as a :class:`LevelView`."""
        es, ee = self.edge_offsets[i], self.edge_offsets[i + 1]
        return LevelView(
            start=self.level_offsets[i],
            end=self.level_offsets[i + 1],
            child_index=self.child_index[es:ee],
            child_parent=self.child_parent[es:ee],
            child_slot=self.child_slot[es:ee],
        )

    def levels(self) -> list[LevelView]:
        """All levels, leaves first."""
        return [self.level(i) for i in range(self.num_levels)]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TreeBatch:
        """The same batch with every tensor on ``device`` (Lightning calls this)."""
        moved = {}
        for f in fields(self):
            v = getattr(self, f.name)
            moved[f.name] = v.to(device, non_blocking=non_blocking) if isinstance(v, Tensor) else v
        return TreeBatch(**moved)

    def pin_memory(self) -> TreeBatch:
        """The same batch in pinned memory (DataLoader's ``pin_memory=True`` calls this)."""
        moved = {}
        for f in fields(self):
            v = getattr(self, f.name)
            moved[f.name] = v.pin_memory() if isinstance(v, Tensor) else v
        return TreeBatch(**moved)

    @staticmethod
    def from_arrays(
        parents: Sequence[Sequence[int]],
        tokens: Sequence[Sequence[int]] | None = None,
        labels: Sequence[Sequence[int]] | None = None,
        heights: Sequence[Sequence[int]] | None = None,
    ) -> TreeBatch:
        """Build the schedule of a batch of trees.

        Args:
            parents: Per tree, the parent index of each node (children before parents, -1 root).
            tokens: Per tree, a token id per node (-1 for none). Defaults to all -1.
            labels: Per tree, a label per node (-1 for none). Defaults to unlabelled.
            heights: Per tree, each node's height, if already known (cached by the dataset);
                computed in one linear pass otherwise.

        Returns:
            The batch, with every tensor on the CPU.
        """
        sizes = [len(p) for p in parents]
        num_trees = len(sizes)
        if num_trees == 0:
            raise ValueError("cannot build a schedule for an empty batch")
        if heights is None:
            heights = [compute_heights(p) for p in parents]
        size_t = torch.tensor(sizes, dtype=torch.long)
        offsets = torch.cumsum(size_t, 0) - size_t  # [B] first node id of each tree
        n = int(size_t.sum())
        flat = torch.arange(n)
        node_tree = torch.repeat_interleave(torch.arange(num_trees), size_t)  # [N]
        parent_local = torch.tensor([i for p in parents for i in p], dtype=torch.long)  # [N]
        height = torch.tensor([h for hs in heights for h in hs], dtype=torch.long)  # [N]
        is_child = parent_local >= 0
        parent_global = torch.where(is_child, parent_local + offsets[node_tree], -1)  # [N]

        # Level order: by height, then by node id (stable): positions of each level contiguous.
        num_levels = int(height.max()) + 1
        order = torch.argsort(height * n + flat)  # [N] position -> node id
        pos = torch.empty_like(order)
        pos[order] = flat  # node id -> position
        level_counts = torch.bincount(height, minlength=num_levels)
        level_offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(level_counts, 0)])

        # Edges sorted by parent position, siblings by node id (= slot order).
        child_ids = flat[is_child]  # [E]
        parent_ids = parent_global[is_child]  # [E]
        parent_pos = pos[parent_ids]
        e_order = torch.argsort(parent_pos * n + child_ids)
        child_ids, parent_ids, parent_pos = child_ids[e_order], parent_ids[e_order], parent_pos[e_order]
        e = child_ids.shape[0]
        new_group = torch.ones(e, dtype=torch.bool)
        if e > 1:
            new_group[1:] = parent_pos[1:] != parent_pos[:-1]
        e_range = torch.arange(e)
        group_start = torch.cummax(torch.where(new_group, e_range, 0), 0).values
        child_slot = e_range - group_start
        parent_height = height[parent_ids]
        edge_counts = torch.bincount(parent_height, minlength=num_levels)
        edge_offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(edge_counts, 0)])
        child_parent = parent_pos - level_offsets[parent_height]

        roots = pos[offsets + size_t - 1]  # the root is each tree's last node
        tok = (
            torch.tensor([t for ts in tokens for t in ts], dtype=torch.long)[order]
            if tokens is not None
            else torch.full((n,), -1, dtype=torch.long)
        )
        lab = torch.tensor([x for ls in labels for x in ls], dtype=torch.long)[order] if labels is not None else None
        input_positions = torch.nonzero(tok >= 0).view(-1)
        return TreeBatch(
            tokens=tok,
            labels=lab,
            roots=roots,
            node_tree=node_tree[order],
            child_index=pos[child_ids],
            child_parent=child_parent,
            child_slot=child_slot,
            level_offsets=tuple(level_offsets.tolist()),
            edge_offsets=tuple(edge_offsets.tolist()),
            order=order,
            input_positions=input_positions,
            inputs_are_prefix=bool(torch.equal(input_positions, torch.arange(input_positions.numel()))),
            max_children=int(child_slot.max()) + 1 if e else 0,
        )
