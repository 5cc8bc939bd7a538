"""Random trees for tests, benchmarks and debugging (seeded, any shape from chains to balanced)."""

from __future__ import annotations

import random

from nlp_lib.structure.tree import Tree

__all__ = ["random_binary_tree", "random_tree"]


def random_binary_tree(num_leaves: int, rng: random.Random, vocab_size: int = 100) -> Tree:
    """A random full binary tree over ``num_leaves`` leaves (words ``w<id>``), in post-order.

    Adjacent subtrees are merged at random positions, so shapes range from chains to balanced.
    """
    if num_leaves < 1:
        raise ValueError("a tree needs at least one leaf")
    # Each subtree: (parent list with -1 at its root, words).
    subs = [([-1], [f"w{rng.randrange(vocab_size)}"]) for _ in range(num_leaves)]
    while len(subs) > 1:
        i = rng.randrange(len(subs) - 1)
        (pa, wa), (pb, wb) = subs[i], subs[i + 1]
        na, nb = len(pa), len(pb)
        root = na + nb
        parent = [p if p >= 0 else root for p in pa] + [p + na if p >= 0 else root for p in pb] + [-1]
        subs[i : i + 2] = [(parent, wa + wb + [""])]
    parent, words = subs[0]
    return Tree(parent=parent, words=words)


def random_tree(num_nodes: int, rng: random.Random, max_children: int | None = None, vocab_size: int = 100) -> Tree:
    """A random tree of any arity (every node has a word, like a dependency tree), in post-order.

    Node ``i`` (``i < n - 1``) picks its parent uniformly among later nodes that still have room.
    """
    if num_nodes < 1:
        raise ValueError("a tree needs at least one node")
    parent = [-1] * num_nodes
    room = [max_children or num_nodes] * num_nodes
    for i in range(num_nodes - 2, -1, -1):
        choices = [j for j in range(i + 1, num_nodes) if room[j] > 0]
        j = rng.choice(choices)
        parent[i] = j
        room[j] -= 1
    words = [f"w{rng.randrange(vocab_size)}" for _ in range(num_nodes)]
    return Tree(parent=parent, words=words)
