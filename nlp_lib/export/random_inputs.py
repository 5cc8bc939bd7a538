"""The random inputs of the parity checks: padded token batches and forests of random trees.

Each check draws from one ``torch.Generator`` seeded with 0, so an export traces and checks the
same inputs every time.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import Tensor

from nlp_lib.export.runtime import tree_inputs

__all__ = ["caterpillar", "concat_inputs", "random_forest", "random_tokens", "split_inputs"]


def random_tokens(g: torch.Generator, vocab: int, batch: int, max_length: int) -> tuple[Tensor, Tensor]:
    """``batch`` sequences of ids ``1..vocab-1`` padded with 0 to ``max_length``; the first is full."""
    lens = torch.randint(1, max_length + 1, (batch,), generator=g)
    lens[0] = max_length
    toks = torch.randint(1, max(vocab, 2), (batch, max_length), generator=g)
    toks[torch.arange(max_length) >= lens.unsqueeze(1)] = 0
    return toks, lens


def caterpillar(depth: int, vocab: int) -> tuple[list[int], list[int]]:
    """A left-branching binary tree of height ``depth``: every level of the traced sweep has edges."""
    parent, tokens = [-1], [1 % vocab]  # leaf 0
    top = 0
    for _ in range(depth):
        parent.append(-1)
        tokens.append(2 % vocab)  # another leaf
        leaf = len(parent) - 1
        parent.append(-1)
        tokens.append(-1)
        node = len(parent) - 1
        parent[top] = parent[leaf] = node
        top = node
    return parent, tokens


def random_forest(g: torch.Generator, vocab: int, count: int, arity: int, max_nodes: int) -> dict[str, np.ndarray]:
    """Random trees (children before parents, root last), some inner nodes without a token."""
    rng = random.Random(int(torch.randint(0, 2**31, (1,), generator=g)))
    parents, tokens = [], []
    for _ in range(count):
        # grow a tree top-down, then number it children-first
        kids: list[list[int]] = [[]]
        for _ in range(rng.randint(0, max_nodes - 1)):
            open_ = [i for i, k in enumerate(kids) if len(k) < arity]
            p = rng.choice(open_)
            kids[p].append(len(kids))
            kids.append([])
        order: list[int] = []  # children before parents (post-order), iteratively
        stack = [(0, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
            else:
                stack.append((node, True))
                stack.extend((k, False) for k in reversed(kids[node]))
        pos = {node: j for j, node in enumerate(order)}
        par = [-1] * len(order)
        for node, ks in enumerate(kids):
            for k in ks:
                par[pos[k]] = pos[node]
        parents.append(par)
        tokens.append([rng.randrange(vocab) if not kids[node] or rng.random() < 0.3 else -1 for node in order])
    return tree_inputs(parents, tokens)


def concat_inputs(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Two batches of tree inputs as one (node ids of ``b`` shifted past ``a``'s)."""
    shift = len(a["tokens"])
    out = {}
    for k in a:
        moved = b[k] + shift if k in ("edge_parent", "edge_child", "roots") else b[k]
        out[k] = np.concatenate([a[k], moved])
    return out


def split_inputs(inputs: dict[str, np.ndarray]) -> tuple[list[list[int]], list[list[int]]]:
    """Each tree's parent array and tokens back from a batch of tree inputs (:func:`tree_inputs`)."""
    starts = np.r_[0, inputs["roots"][:-1] + 1]
    trees_parents, trees_tokens = [], []
    for s, r in zip(starts, inputs["roots"], strict=True):
        par = np.full(r - s + 1, -1)
        sel = (inputs["edge_child"] >= s) & (inputs["edge_child"] <= r)
        par[inputs["edge_child"][sel] - s] = inputs["edge_parent"][sel] - s
        trees_parents.append(par.tolist())
        trees_tokens.append(inputs["tokens"][s : r + 1].tolist())
    return trees_parents, trees_tokens
