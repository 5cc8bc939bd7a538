"""Random trees for tests, benchmarks and debugging (seeded, any shape from chains to balanced)."""

from __future__ import annotations

import random

from nlp_lib.structure.dag import Dag
from nlp_lib.structure.tree import Tree

__all__ = ["random_binary_tree", "random_dag", "random_tree"]


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


def random_dag(
    num_nodes: int, rng: random.Random, extra_edges: float = 0.5, max_inputs: int | None = None, vocab_size: int = 100
) -> Dag:
    """A random DAG: a :func:`random_tree` plus about ``extra_edges * num_nodes`` shortcut edges.

    Each extra edge makes an earlier node feed one more parent (a shared node), so nodes have
    several parents; every node has a word. ``max_inputs`` bounds the number of inputs per node.
    """
    tree = random_tree(num_nodes, rng, max_children=max_inputs, vocab_size=vocab_size)
    edges = {(i, p) for i, p in enumerate(tree.parent) if p >= 0}
    inputs = [0] * num_nodes
    for _, p in edges:
        inputs[p] += 1
    for _ in range(round(extra_edges * num_nodes)) if num_nodes > 2 else ():
        p = rng.randrange(2, num_nodes)
        c = rng.randrange(0, p - 1)
        if (c, p) in edges or (max_inputs is not None and inputs[p] >= max_inputs):
            continue
        edges.add((c, p))
        inputs[p] += 1
    ordered = sorted(edges, key=lambda e: (e[1], e[0]))
    return Dag(
        num_nodes=num_nodes,
        child=[c for c, _ in ordered],
        parent=[p for _, p in ordered],
        words=tree.words,
    )
