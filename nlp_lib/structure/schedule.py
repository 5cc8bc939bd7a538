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

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor

from nlp_lib.structure.dag import Dag
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
        max_children: An upper bound on the number of children of this level's nodes (the
            batch's), known without a device sync; ``None`` if unknown.
    """

    start: int
    end: int
    child_index: Tensor
    child_parent: Tensor
    child_slot: Tensor
    max_children: int | None = None

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
        unique_tokens: ``[U]`` the distinct token ids of the batch (sorted).
        token_inverse: ``[K]`` for each node in ``input_positions``, the row of its token in
            ``unique_tokens``: a model can embed and project each distinct word once
            (``x[token_inverse]``) instead of once per occurrence.
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
    unique_tokens: Tensor | None = None
    token_inverse: Tensor | None = None

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
            max_children=self.max_children,
        )

    def levels(self) -> list[LevelView]:
        """All levels, leaves first."""
        return [self.level(i) for i in range(self.num_levels)]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TreeBatch:
        """The same batch with every tensor on ``device`` (Lightning calls this).

        A reversed schedule already built (:meth:`reversed`, on the CPU in collate) moves along,
        so a top-down pass on the device needs no host round trip.
        """
        return self._map(lambda v: v.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> TreeBatch:
        """The same batch in pinned memory (DataLoader's ``pin_memory=True`` calls this)."""
        return self._map(lambda v: v.pin_memory())

    def _map(self, fn: Callable[[Tensor], Tensor]) -> TreeBatch:
        moved = {}
        for f in fields(self):
            v = getattr(self, f.name)
            moved[f.name] = fn(v) if isinstance(v, Tensor) else v
        out = TreeBatch(**moved)
        cached = self.__dict__.get("_reversed")
        if cached is not None:
            rev, to_rev = cached
            out.__dict__["_reversed"] = (rev._map(fn), fn(to_rev))
        return out

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
        if not sizes:
            raise ValueError("cannot build a schedule for an empty batch")
        if heights is None:
            heights = [compute_heights(p) for p in parents]
        size_t, offsets, node_tree = _offsets(sizes)
        parent_local = _concat(parents, int(size_t.sum()))  # [N]
        is_child = parent_local >= 0
        child_ids = torch.arange(int(size_t.sum()))[is_child]  # [E]
        parent_ids = (parent_local + offsets[node_tree])[is_child]  # [E]
        return _schedule(
            child_ids,
            parent_ids,
            _concat(heights, int(size_t.sum())),
            node_tree,
            offsets + size_t - 1,  # the root is each tree's last node
            _flat(tokens, -1, int(size_t.sum())),
            _flat(labels, None, 0),
        )[0]

    @staticmethod
    def from_dags(
        dags: Sequence[Dag],
        tokens: Sequence[Sequence[int]] | None = None,
        labels: Sequence[Sequence[int]] | None = None,
    ) -> TreeBatch:
        """Build the schedule of a batch of DAGs (a node may feed several parents).

        A node's level is its height (the longest path from a node without inputs); a node read
        by two parents is gathered once for each. The output node of each graph (``roots``) is its
        last node. Trees given as ``Dag.from_tree`` get exactly the schedule of :meth:`from_arrays`.

        Args:
            dags: The graphs (their heights are cached on them).
            tokens: Per graph, a token id per node (-1 for none). Defaults to all -1.
            labels: Per graph, a label per node (-1 for none). Defaults to ``dag.labels`` when every
                graph has them, else unlabelled.
        """
        if not dags:
            raise ValueError("cannot build a schedule for an empty batch")
        size_t, offsets, node_tree = _offsets([d.num_nodes for d in dags])
        edge_counts = torch.tensor([len(d.child) for d in dags], dtype=torch.long)
        edge_off = torch.repeat_interleave(offsets, edge_counts)  # [E]
        child_ids = torch.tensor([c for d in dags for c in d.child], dtype=torch.long) + edge_off
        parent_ids = torch.tensor([p for d in dags for p in d.parent], dtype=torch.long) + edge_off
        if labels is None and all(d.labels is not None for d in dags):
            labels = [d.labels for d in dags]
        return _schedule(
            child_ids,
            parent_ids,
            torch.tensor([h for d in dags for h in d.heights], dtype=torch.long),
            node_tree,
            offsets + size_t - 1,
            _flat(tokens, -1, int(size_t.sum())),
            _flat(labels, None, 0),
        )[0]

    def edge_parents(self) -> Tensor:
        """``[E]`` the position of each edge's parent (``level start + child_parent``)."""
        starts = torch.tensor(self.level_offsets[:-1], dtype=torch.long, device=self.child_parent.device)
        counts = torch.tensor(
            [b - a for a, b in zip(self.edge_offsets[:-1], self.edge_offsets[1:], strict=True)],
            dtype=torch.long,
            device=self.child_parent.device,
        )
        return torch.repeat_interleave(starts, counts) + self.child_parent

    def reversed(self) -> tuple[TreeBatch, Tensor]:
        """The schedule of the same graphs with every edge reversed: roots first, leaves last.

        A top-down pass (each node reads its parent's state, e.g. the second half of a
        bidirectional Tree-LSTM) runs over it like a bottom-up pass over ``self``. A node's level
        in the reversed schedule is its depth (longest path from a root).

        Returns:
            ``(rev, to_rev)``: the reversed schedule, whose ``order`` maps its positions to
            positions of ``self`` (and whose tokens, labels and roots are ``self``'s, moved), and
            ``to_rev`` (``[N]``), mapping positions of ``self`` to positions of ``rev``.
        """
        cached = self.__dict__.get("_reversed")
        if cached is not None:
            return cached
        n = self.num_nodes
        parent_pos = self.edge_parents()  # [E]
        depth = torch.zeros(n, dtype=torch.long, device=parent_pos.device)
        for lvl in range(self.num_levels - 1, 0, -1):  # top-down: a parent's depth is final first
            es, ee = self.edge_offsets[lvl], self.edge_offsets[lvl + 1]
            if ee > es:
                depth.scatter_reduce_(
                    0, self.child_index[es:ee], depth[parent_pos[es:ee]] + 1, reduce="amax", include_self=True
                )
        dev = self.child_index.device
        rev, pos = _schedule(
            parent_pos.cpu(),  # reversed: the bottom-up parent is read by the bottom-up child
            self.child_index.cpu(),
            depth.cpu(),
            self.node_tree.cpu(),
            self.roots.cpu(),
            self.tokens.cpu(),
            self.labels.cpu() if self.labels is not None else None,
        )
        self.__dict__["_reversed"] = out = (rev.to(dev), pos.to(dev))
        return out


def _offsets(sizes: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
    size_t = torch.tensor(sizes, dtype=torch.long)
    offsets = torch.cumsum(size_t, 0) - size_t  # [B] first node id of each graph
    node_tree = torch.repeat_interleave(torch.arange(len(sizes)), size_t)  # [N]
    return size_t, offsets, node_tree


def _concat(values: Sequence[Sequence[int]], n: int | None = None) -> Tensor:
    """One long tensor of the sequences laid end to end (through numpy: ~4x faster than a Python list)."""
    if n is None:
        n = sum(len(v) for v in values)
    return torch.from_numpy(np.fromiter(itertools.chain.from_iterable(values), dtype=np.int64, count=n))


def _flat(values: Sequence[Sequence[int]] | None, fill: int | None, n: int) -> Tensor | None:
    if values is None:
        return torch.full((n,), fill, dtype=torch.long) if fill is not None else None
    return _concat(values)


def _schedule(
    child_ids: Tensor,
    parent_ids: Tensor,
    height: Tensor,
    node_tree: Tensor,
    root_ids: Tensor,
    tokens: Tensor,
    labels: Tensor | None,
) -> tuple[TreeBatch, Tensor]:
    """The schedule of a batch given its edges (``child_ids[e]`` is read by ``parent_ids[e]``) by node id.

    Returns the batch and ``pos`` (node id -> position).
    """
    n = int(height.shape[0])
    flat = torch.arange(n)
    # Level order: by height, then by node id (stable): positions of each level contiguous.
    num_levels = int(height.max()) + 1
    order = torch.argsort(height * n + flat)  # [N] position -> node id
    pos = torch.empty_like(order)
    pos[order] = flat  # node id -> position
    level_counts = torch.bincount(height, minlength=num_levels)
    level_offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(level_counts, 0)])

    # Edges sorted by parent position, a parent's inputs by node id (= slot order).
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

    tok = tokens[order]
    input_positions = torch.nonzero(tok >= 0).view(-1)
    unique_tokens, token_inverse = torch.unique(tok[input_positions], sorted=True, return_inverse=True)
    batch = TreeBatch(
        tokens=tok,
        labels=labels[order] if labels is not None else None,
        roots=pos[root_ids],
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
        unique_tokens=unique_tokens,
        token_inverse=token_inverse,
    )
    return batch, pos
