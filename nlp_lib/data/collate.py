"""Turn encoded examples into a level schedule (runs in DataLoader workers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from nlp_lib.structure.schedule import TreeBatch
from nlp_lib.structure.tree import Tree

__all__ = ["EncodedTree", "encode_tree", "collate_trees"]


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


def collate_trees(examples: Sequence[EncodedTree]) -> TreeBatch:
    """The schedule of a batch of encoded trees (labels per node, ``-1`` where none)."""
    return TreeBatch.from_arrays(
        [e.parent for e in examples],
        [e.tokens for e in examples],
        [e.labels for e in examples],
        [e.heights for e in examples],
    )
