import random

import pytest
import torch

from nlp_lib.errors import StructureError
from nlp_lib.structure import Tree, TreeBatch, compute_heights
from nlp_lib.structure.random_trees import random_binary_tree, random_tree


def _batch(trees):
    return TreeBatch.from_arrays([t.parent for t in trees], [[i for i, _ in enumerate(t.parent)] for t in trees])


def test_tree_validates_topological_order_and_single_root():
    with pytest.raises(StructureError, match="parents must come after"):
        Tree(parent=[-1, 0])
    with pytest.raises(StructureError, match="exactly one root"):
        Tree(parent=[2, -1, -1])
    with pytest.raises(StructureError, match="words"):
        Tree(parent=[1, -1], words=["a"])


def test_heights_linear_pass():
    #      4
    #    3   \
    #   0 1   2
    assert compute_heights([3, 3, 4, 4, -1]) == [0, 0, 0, 1, 2]


def test_schedule_levels_are_contiguous_and_children_precede_parents():
    rng = random.Random(0)
    trees = [random_tree(rng.randint(1, 40), rng) for _ in range(12)] + [random_binary_tree(30, rng)]
    b = _batch(trees)
    assert b.num_nodes == sum(len(t) for t in trees)
    assert b.level_offsets[0] == 0 and b.level_offsets[-1] == b.num_nodes
    heights = torch.tensor([h for t in trees for h in t.heights])[b.order]
    for lvl in range(b.num_levels):
        lv = b.level(lvl)
        assert bool((heights[lv.start : lv.end] == lvl).all())
        # every child of this level lies in an earlier level
        assert bool((lv.child_index < lv.start).all())
        assert bool((lv.child_parent >= 0).all()) and bool((lv.child_parent < lv.num_nodes).all())
    assert b.edge_offsets[-1] == b.num_nodes - len(trees)


def test_schedule_reproduces_every_parent_and_slot():
    rng = random.Random(1)
    trees = [random_tree(rng.randint(1, 30), rng) for _ in range(10)]
    b = _batch(trees)
    # map positions back to (tree, local id) with `order` and check every edge
    offsets = [0]
    for t in trees:
        offsets.append(offsets[-1] + len(t))
    glob = b.order.tolist()

    def local(pos):
        g = glob[pos]
        k = max(i for i, o in enumerate(offsets[:-1]) if o <= g)
        return k, g - offsets[k]

    seen = 0
    for lvl in range(b.num_levels):
        lv = b.level(lvl)
        for c, p, s in zip(lv.child_index.tolist(), lv.child_parent.tolist(), lv.child_slot.tolist(), strict=True):
            tc, ic = local(c)
            tp, ip = local(lv.start + p)
            assert tc == tp
            assert trees[tc].parent[ic] == ip
            assert trees[tc].children()[ip][s] == ic  # slot = rank among siblings
            seen += 1
    assert seen == sum(len(t) - 1 for t in trees)
    roots = [local(r) for r in b.roots.tolist()]
    assert roots == [(k, len(t) - 1) for k, t in enumerate(trees)]
    assert b.max_children == max(max((len(c) for c in t.children()), default=0) for t in trees)


def test_tokens_labels_follow_level_order_and_batch_moves():
    t = Tree(parent=[2, 2, -1], words=["a", "b", ""], labels=[1, 0, 3])
    b = TreeBatch.from_arrays([t.parent], [[5, 6, -1]], [list(t.labels)])
    assert b.tokens.tolist() == [5, 6, -1]
    assert b.labels[b.roots].tolist() == [3]
    assert b.input_positions.tolist() == [0, 1]
    moved = b.to("cpu")
    assert moved.level_offsets == b.level_offsets and torch.equal(moved.child_index, b.child_index)


def test_single_node_trees():
    b = TreeBatch.from_arrays([[-1], [-1]], [[1], [2]])
    assert b.num_levels == 1 and b.num_nodes == 2 and b.child_index.numel() == 0
