"""Turn encoded examples into a level schedule (runs in DataLoader workers)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from nlp_lib.structure.schedule import TreeBatch
from nlp_lib.structure.tree import Tree

__all__ = ["EncodedTree", "check_tree_arrays", "collate_trees", "encode_tree", "encode_tree_subwords", "tree_levels"]


class EncodedTree(NamedTuple):
    """One tree ready for batching: parallel per-node lists."""

    parent: tuple[int, ...]
    tokens: list[int]
    labels: list[int]
    heights: list[int]


def encode_tree(tree: Tree, tokens: list[int]) -> EncodedTree:
    """Pair a tree with its node token ids (``-1`` for nodes without one)."""
    labels = list(tree.labels) if tree.labels is not None else [-1] * len(tree)
    return EncodedTree(tree.parent, tokens, labels, tree.heights)


def encode_tree_subwords(tree: Tree, pieces: Callable[[str], list[int]]) -> EncodedTree:
    """A tree whose words are split into subword pieces: each piece a leaf under its word's node.

    A word of one piece keeps its node, with that piece's id. A word of ``k > 1`` pieces becomes a
    small left-branching binary subtree: ``((p1 p2) p3) ...``, its pieces the leaves (in order, so
    slot 0 is always the left part), its inner nodes without input. On a leaf (constituency
    trees: words are leaves) the subtree's top takes the word's place (its parent and its label),
    so every node keeps at most two children and binary (N-ary) cells still apply. On a node with
    children (dependency trees: every word is a node) the node keeps its place and label, loses
    its input, and gets the subtree as one more child, its first (use a child-sum cell there).
    Nodes stay numbered children first.

    Args:
        tree: A tree (words on any nodes).
        pieces: A word's piece ids (e.g. a sentencepiece model's ``encode``).
    """
    n = len(tree)
    old_labels = list(tree.labels) if tree.labels is not None else [-1] * n
    has_children = [False] * n
    for p in tree.parent:
        if p >= 0:
            has_children[p] = True
    tokens: list[int] = []
    labels: list[int] = []
    link: list[tuple[bool, int]] = []  # (is an original node index, parent index)
    place = [0] * n  # original node -> its new index
    for i, word in enumerate(tree.words):
        ids = pieces(word) if word else []
        if len(ids) <= 1:
            place[i] = len(tokens)
            tokens.append(ids[0] if ids else -1)
            labels.append(old_labels[i])
            link.append((True, tree.parent[i]))
            continue
        left = len(tokens)  # p1, then (p2, (p1 p2)), (p3, ((p1 p2) p3)) ...: children before parents, left first
        tokens.append(ids[0])
        labels.append(-1)
        link.append((False, -1))
        for piece in ids[1:]:
            right = len(tokens)
            tokens.append(piece)
            labels.append(-1)
            link.append((False, -1))
            top = len(tokens)
            tokens.append(-1)
            labels.append(-1)
            link.append((False, -1))
            link[left] = (False, top)
            link[right] = (False, top)
            left = top
        if has_children[i]:  # the pieces' subtree becomes one more child of the word's node
            place[i] = len(tokens)
            tokens.append(-1)
            labels.append(old_labels[i])
            link.append((True, tree.parent[i]))
            link[left] = (False, place[i])
        else:
            labels[left] = old_labels[i]
            link[left] = (True, tree.parent[i])
            place[i] = left
    parent = tuple(place[p] if original and p >= 0 else p for original, p in link)
    from nlp_lib.structure.tree import compute_heights

    return EncodedTree(parent, tokens, labels, compute_heights(parent))


def collate_trees(examples: Sequence[EncodedTree]) -> TreeBatch:
    """The schedule of a batch of encoded trees (labels per node, ``-1`` where none)."""
    return TreeBatch.from_arrays(
        [e.parent for e in examples],
        [e.tokens for e in examples],
        [e.labels for e in examples],
        [e.heights for e in examples],
    )


def check_tree_arrays(split: Any, name: str) -> None:
    """``ValueError`` unless every tree of ``split`` is one: per tree, parents after their children
    and inside it, one root (the last node), heights above the children's (a schedule's order)."""
    parent = split.values("parent").astype(np.int64)
    heights = split.values("heights").astype(np.int64)
    sizes = split.lengths("parent")
    if any(not np.array_equal(split.lengths(c), sizes) for c in ("tokens", "labels", "heights")):
        raise ValueError(f"the {name} split: a tree's arrays differ in length")
    if (sizes < 1).any():
        raise ValueError(f"the {name} split: a tree without nodes")
    ends = np.cumsum(sizes)
    starts = ends - sizes
    tree = np.repeat(np.arange(len(sizes)), sizes)
    local = np.arange(len(parent)) - starts[tree]
    root = local == sizes[tree] - 1
    inner = ~root
    if (
        (parent[root] != -1).any()
        or (parent[inner] <= local[inner]).any()
        or (parent[inner] >= sizes[tree][inner]).any()
    ):
        raise ValueError(f"the {name} split: a parent index out of order or outside its tree")
    up = starts[tree][inner] + parent[inner]  # the global index of each non-root node's parent
    if (heights < 0).any() or (heights[up] <= heights[inner]).any():
        raise ValueError(f"the {name} split: a node's height is not above its children's")


def tree_levels(split: Any) -> np.ndarray:
    """Each tree's height in levels (its root's height + 1) from a split's ``heights`` column, in the split's order."""
    col = split.table.column("heights")
    roots = [c.values.to_numpy()[c.offsets.to_numpy()[1:] - 1] for c in col.chunks if len(c)]
    levels = (np.concatenate(roots) if roots else np.zeros(0, dtype=np.int64)).astype(np.int64) + 1
    return levels[split.order] if split.order is not None else levels
