"""Memory grows linearly with the number of nodes, also for deep trees (one level per node)."""

import torch

from nlp_lib.cells import NaryTreeLSTMCell
from nlp_lib.models import TreeClassifier
from nlp_lib.structure import Tree, TreeBatch


def _chain(num_leaves: int) -> Tree:
    """A left-branching binary tree: as many levels as leaves (the worst case for per-level copies)."""
    parent, words = [-1, -1], ["w1", "w2"]
    parent[0] = parent[1] = 2
    parent.append(-1)
    words.append("")
    for i in range(num_leaves - 2):
        top = len(parent) - 1
        leaf = len(parent)
        parent += [-1, -1]
        words += [f"w{i % 50}", ""]
        parent[top] = parent[leaf] = leaf + 1
    return Tree(parent=parent, words=words)


def _saved_bytes(num_leaves: int) -> int:
    """Bytes of every tensor autograd saves for the backward pass of one training forward."""
    torch.manual_seed(0)
    model = TreeClassifier(vocab_size=60, num_classes=5, cell=NaryTreeLSTMCell(16, 16))
    t = _chain(num_leaves)
    batch = TreeBatch.from_arrays([t.parent], [[int(w[1:]) if w else -1 for w in t.words]])
    seen: dict[int, int] = {}

    def pack(x: torch.Tensor) -> torch.Tensor:
        seen[x.untyped_storage().data_ptr()] = x.untyped_storage().nbytes()
        return x

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        model(batch).logits.sum().backward()
    return sum(seen.values())


def test_saved_memory_is_linear_in_nodes_for_deep_trees():
    small, large = _saved_bytes(200), _saved_bytes(800)  # 200 vs 800 levels
    # Linear: 4x the nodes -> ~4x the memory. Quadratic (a full-buffer copy per level) would be ~16x.
    assert large / small < 5.0, (small, large)
