import pytest
import torch

from nlp_lib.cells import Children, TreeLSTMState


def _children():
    # 3 nodes: node 0 has children rows 0, 1; node 1 none; node 2 has row 2
    h = torch.tensor([[1.0, -2.0], [3.0, 4.0], [5.0, 6.0]])
    return Children(TreeLSTMState(h, -h), torch.tensor([0, 0, 2]), torch.tensor([0, 1, 0]), 3)


def test_reductions_are_per_node_and_zero_without_children():
    ch = _children()
    assert ch.sum(ch.h).tolist() == [[4.0, 2.0], [0.0, 0.0], [5.0, 6.0]]
    assert ch.mean(ch.h).tolist() == [[2.0, 1.0], [0.0, 0.0], [5.0, 6.0]]
    assert ch.max(ch.h).tolist() == [[3.0, 4.0], [0.0, 0.0], [5.0, 6.0]]
    assert ch.count.tolist() == [2, 0, 1]
    assert ch.broadcast(torch.tensor([10.0, 20.0, 30.0])).tolist() == [10.0, 10.0, 30.0]
    assert torch.equal(ch.c, -ch.h) and torch.equal(ch[0], ch.h)


def test_slots_lay_children_side_by_side_with_zeros():
    ch = _children()
    s = ch.slots(ch.h, 2)
    assert s.shape == (3, 2, 2)
    assert s[0].tolist() == [[1.0, -2.0], [3.0, 4.0]]
    assert s[1].tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert s[2].tolist() == [[5.0, 6.0], [0.0, 0.0]]
    with pytest.raises(ValueError, match="more than 1"):
        ch.slots(ch.h, 1)


def test_leaves_are_falsy_and_name_the_missing_field():
    leaves = Children(None, torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 4)
    assert not leaves and len(leaves) == 0
    with pytest.raises(AttributeError, match="leaves"):
        _ = leaves.h
    with pytest.raises(AttributeError, match="h, c"):
        _ = _children().z
