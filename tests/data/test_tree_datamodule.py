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


def test_batch_by_height_groups_trees_of_similar_heights_in_training_and_evaluation(tmp_path):
    import pytest

    from nlp_lib.data.collate import tree_levels
    from nlp_lib.errors import DataError

    kw = dict(train_size=400, val_size=100, test_size=0, max_depth=8, batch_size=32, seed=3, cache_dir=str(tmp_path))
    plain, height = listops_data(**kw), listops_data(batch_by="height", **kw)
    plain.prepare()
    height.prepare()
    assert plain.splits == height.splits  # the same prepared data (and cache entry): only the plan differs
    levels = tree_levels(height.splits["train"])

    def level_steps(data):
        return [b.num_levels for b in data.train_dataloader()]

    steps = level_steps(height)
    assert (
        sum(b.num_trees for b in height.train_dataloader()) == 400
        and max(b.num_trees for b in height.train_dataloader()) <= 32
    )
    assert sum(steps) < 0.8 * sum(level_steps(plain))  # fewer level steps for the same trees
    assert sum(steps) >= sum(sorted(levels.tolist(), reverse=True)[::32])  # no plan beats the sorted cut
    val = [b.num_levels for b in height.val_dataloader()]
    assert val == sorted(val)  # evaluation batches by height too
    with pytest.raises(DataError, match="data.batch_by=height"):
        listops_data(batch_by="height", node_budget=500, **kw)
