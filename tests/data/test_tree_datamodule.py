import torch

from nlp_lib.data.builders import listops_data


def _data(**kw):
    data = listops_data(train_size=64, val_size=20, test_size=20, batch_size=16, seed=3, **kw)
    data.prepare()
    return data


def test_schedules_built_in_workers_equal_those_built_in_process():
    a = list(_data(num_workers=0).train_dataloader())
    b = list(_data(num_workers=2).train_dataloader())
    assert len(a) == len(b) == 4
    for x, y in zip(a, b, strict=True):
        for f in ("tokens", "labels", "child_index", "child_parent", "child_slot", "roots", "unique_tokens"):
            assert torch.equal(getattr(x, f), getattr(y, f)), f
        assert x.level_offsets == y.level_offsets


def test_eval_schedules_are_built_once():
    data = _data()
    first = list(data.val_dataloader())
    again = list(data.val_dataloader())
    assert [b.num_trees for b in first] == [16, 4]
    assert all(x is y for x, y in zip(first, again, strict=True))
