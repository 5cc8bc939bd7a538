import random

import pytest
import torch

from nlp_lib.errors import StructureError
from nlp_lib.structure import Dag, TreeBatch
from nlp_lib.structure.dag import compute_dag_heights
from nlp_lib.structure.random_trees import random_dag, random_tree


def test_heights_are_longest_paths():
    # 0 -> 2, 1 -> 2, 2 -> 3, 0 -> 3 (node 0 feeds two parents)
    assert compute_dag_heights(4, [0, 1, 2, 0], [2, 2, 3, 3]) == [0, 0, 1, 2]


def test_rejects_edges_against_topological_order():
    with pytest.raises(StructureError, match="lower to a higher"):
        Dag(num_nodes=3, child=[2], parent=[1])


def test_schedule_of_a_dag_reads_a_shared_node_under_each_parent():
    d = Dag(num_nodes=4, child=[0, 1, 2, 0], parent=[2, 2, 3, 3], words=["a", "b", "", ""])
    b = TreeBatch.from_dags([d], tokens=[[0, 1, -1, -1]])
    assert b.level_offsets == (0, 2, 3, 4)
    top = b.level(2)  # node 3 reads node 0 (slot 0) and node 2 (slot 1)
    assert sorted(zip(top.child_slot.tolist(), b.order[top.child_index].tolist(), strict=True)) == [(0, 0), (1, 2)]
    assert b.roots.tolist() == [3]


def test_tree_as_dag_gives_the_same_schedule():
    rng = random.Random(0)
    trees = [random_tree(rng.randint(1, 40), rng, vocab_size=10) for _ in range(6)]
    a = TreeBatch.from_arrays([t.parent for t in trees])
    b = TreeBatch.from_dags([Dag.from_tree(t) for t in trees])
    for f in ("child_index", "child_parent", "child_slot", "order", "roots", "node_tree"):
        assert torch.equal(getattr(a, f), getattr(b, f)), f
    assert a.level_offsets == b.level_offsets and a.edge_offsets == b.edge_offsets


def test_random_dags_have_shared_nodes():
    rng = random.Random(1)
    d = random_dag(30, rng, vocab_size=10)
    fan_out = torch.bincount(torch.tensor(d.child), minlength=d.num_nodes)
    assert int(fan_out.max()) > 1


def test_reversed_schedule_runs_root_first():
    rng = random.Random(2)
    trees = [random_tree(rng.randint(1, 30), rng, vocab_size=10) for _ in range(5)]
    b = TreeBatch.from_arrays([t.parent for t in trees])
    r, to_rev = b.reversed()
    assert r.num_nodes == b.num_nodes
    # level 0 of the reversed schedule holds exactly the roots
    assert sorted(to_rev[b.roots].tolist()) == list(range(r.level_offsets[1]))
    # every reversed edge reads from the bottom-up parent
    for lvl in range(1, r.num_levels):
        lv = r.level(lvl)
        for c, p in zip(lv.child_index.tolist(), (lv.start + lv.child_parent).tolist(), strict=True):
            # c (reversed position) is the bottom-up parent of p (reversed position)
            bu_c, bu_p = r.order[c].item(), r.order[p].item()
            assert bu_c in _parents(b, bu_p)


def _parents(b, pos):
    out = set()
    for lvl in range(b.num_levels):
        lv = b.level(lvl)
        for c, p in zip(lv.child_index.tolist(), (lv.start + lv.child_parent).tolist(), strict=True):
            if c == pos:
                out.add(p)
    return out
