"""data.streaming: training pairs read from their files as the model trains (nlp_lib/data/streaming.py).

Streamed data must train on what prepared data trains on (the same tokenizers, evaluation splits and
training pairs, each once an epoch), plan the same number of batches on every rank, and resume
mid-epoch with the very next batch.
"""

import random
from collections import Counter

import numpy as np
import pytest

from nlp_lib.data import parallel_data
from nlp_lib.data.streaming import StreamingLoader
from nlp_lib.errors import DataError


def _corpus(folder, n_train=900, n_val=60, seed=0):
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(150)]
    folder.mkdir(exist_ok=True)
    for split, n in (("train", n_train), ("val", n_val)):
        for lang in ("en", "de"):
            lines = (" ".join(rng.choice(words) for _ in range(rng.randint(1, 18))) for _ in range(n))
            (folder / f"{split}.{lang}").write_text("\n".join(lines) + "\n")
    return folder


def _data(folder, cache_dir, **kw):
    kw = {"path": str(folder), "source": "en", "target": "de", "tokenizer": "word", "batch_size": 16, **kw}
    dm = parallel_data(cache_dir=str(cache_dir), **kw)
    dm.setup("fit")
    return dm


def _pair(e):
    return tuple(int(x) for x in e[0]), tuple(int(x) for x in e[1])


def _batch_pairs(batch):
    out = []
    for i in range(batch.src.shape[0]):
        src = batch.src[i, : batch.src_lengths[i]].tolist()
        tgt = batch.tgt_out[i].tolist()
        out.append((tuple(src), tuple(t for t in tgt if t != 0)[:-1]))  # without padding and </s>
    return out


class _Progress:
    """What the trainer tells a loader: the epoch, and batches processed in it."""

    def __init__(self):
        self.epoch, self.done = 0, 0

    def __call__(self):
        return self.epoch, self.done


def _loader(dm, progress, replicas=1, rank=0, workers=0):
    from functools import partial

    return StreamingLoader(
        dm.splits["train"],
        sampler=partial(dm.window_sampler, replicas, rank),
        collate=dm.collate,
        progress=progress,
        epoch_now=lambda: progress.epoch,
        seed=dm.seed,
        num_workers=workers,
        replicas=replicas,
        plan_key=dm.plan_key(),
    )


@pytest.mark.parametrize("val", ["val", None])
def test_streamed_data_trains_on_what_prepared_data_trains_on(tmp_path, val):
    folder = _corpus(tmp_path / "c")
    prepared = _data(folder, tmp_path / "cache", val=val, cache=False)
    streamed = _data(folder, tmp_path / "cache", val=val, streaming=True, shuffle_buffer=200, token_budget=300)
    assert streamed.source_tokenizer.words == prepared.source_tokenizer.words
    assert streamed.target_tokenizer.words == prepared.target_tokenizer.words
    assert [_pair(e) for e in streamed.splits["val"]] == [_pair(e) for e in prepared.splits["val"]]
    assert len(streamed.splits["train"]) == len(prepared.splits["train"])
    want = Counter(_pair(e) for e in prepared.splits["train"])
    loader = streamed.train_dataloader()
    batches = list(loader)
    assert len(batches) == len(loader)
    assert Counter(p for b in batches for p in _batch_pairs(b)) == want  # each training pair once an epoch
    # no entry of the training pairs themselves: only their lengths
    entry = next((tmp_path / "cache").iterdir())
    assert sorted(p.name for p in (entry / "data").iterdir() if "train" in p.name) == ["train-lengths.arrow"]


def test_epochs_are_planned_by_seed_and_epoch_with_workers_or_without(tmp_path):
    folder = _corpus(tmp_path / "c")
    dm = _data(folder, tmp_path / "cache", streaming=True, shuffle_buffer=150)
    progress = _Progress()
    first = [_batch_pairs(b) for b in _loader(dm, progress)]
    again = [_batch_pairs(b) for b in _loader(dm, progress)]
    assert first == again
    workers = [_batch_pairs(b) for b in _loader(dm, progress, workers=2)]
    assert sorted(workers) == sorted(first)  # the same batches, interleaved by the two workers
    progress.epoch = 1
    other = [_batch_pairs(b) for b in _loader(dm, progress)]
    assert other != first and Counter(p for b in other for p in b) == Counter(p for b in first for p in b)


@pytest.mark.parametrize("budget", [None, 250])
def test_every_rank_makes_the_same_number_of_batches(tmp_path, budget):
    folder = _corpus(tmp_path / "c", n_train=1003)
    dm = _data(folder, tmp_path / "cache", streaming=True, shuffle_buffer=170, token_budget=budget)
    ranks = [list(_loader(dm, _Progress(), replicas=3, rank=r)) for r in range(3)]
    assert len({len(r) for r in ranks}) == 1 and len(ranks[0]) == len(_loader(dm, _Progress(), replicas=3))
    seen = Counter(p for r in ranks for b in r for p in _batch_pairs(b))
    assert set(seen) == {_pair(e) for e in _data(folder, tmp_path / "c2", cache=False).splits["train"]}


@pytest.mark.parametrize("workers", [0, 2, 3])
def test_a_resumed_epoch_continues_with_the_very_next_batch(tmp_path, workers):
    folder = _corpus(tmp_path / "c")
    dm = _data(folder, tmp_path / "cache", streaming=True, shuffle_buffer=120, token_budget=200)
    progress = _Progress()
    progress.epoch = 1
    whole = [_batch_pairs(b) for b in _loader(dm, progress, workers=workers)]
    # windows 0..6 (the last one longer): with workers, one of them runs out before the others
    for cut in (1, 11, len(whole) - 3, len(whole) - 1):
        loader = _loader(dm, progress, workers=workers)
        it = iter(loader)
        for progress.done in range(1, cut + 1):
            next(it)
        next(it)  # Lightning fetches one batch ahead of the one it trains on
        state = loader.state_dict()
        del it
        resumed = _loader(dm, _Progress(), workers=workers)
        resumed.load_state_dict(state)
        resumed._epoch_now = lambda: 1
        assert [_batch_pairs(b) for b in resumed] == whole[cut:], cut
        again = _loader(dm, _Progress(), workers=workers)
        again.load_state_dict({**state, "epoch": 2})  # the state of another epoch skips nothing in this one
        again._epoch_now = lambda: 1
        assert len(list(again)) == len(whole)
    with pytest.raises(ValueError, match="data.shuffle_buffer"):
        other = _data(folder, tmp_path / "cache", streaming=True, shuffle_buffer=130, token_budget=200)
        _loader(other, _Progress(), workers=workers).load_state_dict(state)
    with pytest.raises(ValueError, match="malformed"):
        _loader(dm, _Progress(), workers=workers).load_state_dict({**state, "first": 7})


def test_a_training_file_changed_under_a_run_is_an_error(tmp_path):
    folder = _corpus(tmp_path / "c")
    dm = _data(folder, tmp_path / "cache", streaming=True, shuffle_buffer=100)
    lines = (folder / "train.en").read_text().splitlines()
    (folder / "train.en").write_text("\n".join(["x y z", *lines[1:]]) + "\n")
    with pytest.raises(DataError, match="encode to other lengths"):
        list(dm.train_dataloader())
    (folder / "train.en").write_text("\n".join(lines[:500]) + "\n")
    (folder / "train.de").write_text("\n".join((folder / "train.de").read_text().splitlines()[:500]) + "\n")
    with pytest.raises(DataError, match="ended at record 500"):
        list(dm.train_dataloader())


def test_a_cached_entry_streams_alike_and_a_corrupt_lengths_file_is_rebuilt(tmp_path):
    folder = _corpus(tmp_path / "c")
    first = _data(folder, tmp_path / "cache", streaming=True, shuffle_buffer=150)
    want = [_batch_pairs(b) for b in first.train_dataloader()]
    again = _data(folder, tmp_path / "cache", streaming=True, shuffle_buffer=150)
    assert [_batch_pairs(b) for b in again.train_dataloader()] == want
    entry = next((tmp_path / "cache").iterdir())
    lengths = entry / "data" / "train-lengths.arrow"
    lengths.write_bytes(lengths.read_bytes()[:-40])
    rebuilt = _data(folder, tmp_path / "cache", streaming=True, shuffle_buffer=150)
    assert [_batch_pairs(b) for b in rebuilt.train_dataloader()] == want
    # prepared (not streamed) data of the same files and options is another entry
    _data(folder, tmp_path / "cache")
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_lengths_from_an_entry_are_checked(tmp_path):
    import pyarrow as pa

    from nlp_lib.data.streaming import StreamSplit

    path = tmp_path / "l.arrow"
    table = pa.table({"source": pa.array([1, 2], pa.int32()), "target": pa.array([3, 4], pa.uint32()), "keep": [1, 1]})
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    with pytest.raises(ValueError, match="expected"):
        StreamSplit.open(path, ("source", "target"), 2, records=list, encode=None, window=10)
    table = table.set_column(0, "source", pa.array([1, 2], pa.uint32())).set_column(2, "keep", pa.array([True, None]))
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    with pytest.raises(ValueError, match="missing values"):
        StreamSplit.open(path, ("source", "target"), 2, records=list, encode=None, window=10)
    with pytest.raises(ValueError, match="columns"):
        StreamSplit.open(path, ("src", "target"), 2, records=list, encode=None, window=10)
    table = table.set_column(2, "keep", pa.array([True, False]))
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    with pytest.raises(ValueError, match="1 training records, meta.json says 2"):
        StreamSplit.open(path, ("source", "target"), 2, records=list, encode=None, window=10)
    split = StreamSplit.open(path, ("source", "target"), 1, records=list, encode=None, window=10)
    assert split.lengths.tolist() == [[1, 3], [2, 4]] and split.keep.tolist() == [True, False]
    path.write_bytes(b"not arrow")
    with pytest.raises(ValueError, match="not a readable Arrow stream"):
        StreamSplit.open(path, ("source", "target"), 2, records=list, encode=None, window=10)


def test_streaming_needs_a_reader_it_can_call_again():
    from nlp_lib.data.seq2seq_datamodule import Seq2SeqDataModule
    from nlp_lib.errors import ConfigError

    with pytest.raises(ConfigError, match="data.streaming"):
        Seq2SeqDataModule({"train": [("a", "b")]}, streaming=True)


def test_windows_cut_a_short_tail_into_the_window_before():
    from nlp_lib.data.streaming import StreamSplit

    keep = np.ones(1040, dtype=bool)
    split = StreamSplit(np.ones((1040, 2), np.uint32), keep, records=list, encode=None, window=100)
    assert split.bounds[-1] == (900, 1040) and len(split.bounds) == 10
    split = StreamSplit(np.ones((1060, 2), np.uint32), keep[:1060] if len(keep) >= 1060 else np.ones(1060, bool),
                        records=list, encode=None, window=100)  # fmt: skip
    assert split.bounds[-1] == (1000, 1060)


def test_lines_added_to_a_training_file_are_an_error_too(tmp_path):
    folder = _corpus(tmp_path / "c")
    dm = _data(folder, tmp_path / "cache", streaming=True, shuffle_buffer=100)
    for lang in ("en", "de"):
        with open(folder / f"train.{lang}", "a") as f:
            f.write("w1 w2\n")
    with pytest.raises(DataError, match="more than the 900 records prepared"):
        list(dm.train_dataloader())


@pytest.mark.parametrize("n", [1, 2, 5])
def test_tiny_windows_still_give_every_rank_the_same_batches(tmp_path, n):
    # fixed-size batches pad a window's shuffle to equal shares, also when the pad exceeds the window
    folder = _corpus(tmp_path / "c", n_train=n * 3)
    dm = _data(folder, tmp_path / "cache", streaming=True, shuffle_buffer=n, batch_size=2)
    counts = [(len(loader), len(list(loader))) for r in range(4) for loader in [_loader(dm, _Progress(), 4, r)]]
    assert len(set(counts)) == 1 and counts[0][0] == counts[0][1], counts


def test_a_checkpoint_position_past_the_epoch_or_of_another_type_is_refused(tmp_path):
    folder = _corpus(tmp_path / "c")
    dm = _data(folder, tmp_path / "cache", streaming=True, shuffle_buffer=150)
    loader = _loader(dm, _Progress(), workers=2)
    state = loader.state_dict()
    for bad in ([10**9, 0], [1.0, 0], ["1", 0], [True, 0], None):
        with pytest.raises(ValueError, match="streamed-data position"):
            loader.load_state_dict({**state, "per_worker": bad})
    for key, value in (("first", "1"), ("epoch", -1), ("epoch", None)):
        with pytest.raises(ValueError, match="malformed"):
            loader.load_state_dict({**state, key: value})
    with pytest.raises(ValueError, match="malformed"):
        loader.load_state_dict({k: v for k, v in state.items() if k != "per_worker"})


def test_a_checkpoint_written_right_after_a_resume_keeps_its_position(tmp_path):
    folder = _corpus(tmp_path / "c")
    dm = _data(folder, tmp_path / "cache", streaming=True, shuffle_buffer=150)
    progress = _Progress()
    loader = _loader(dm, progress, workers=2)
    progress.done = 3
    loader.load_state_dict({**loader.state_dict(), "per_worker": [2, 1], "first": 1, "batches": 3})
    assert loader.state_dict()["per_worker"] == [2, 1] and loader.state_dict()["first"] == 1


def test_a_tampered_training_mask_is_refused_and_the_entry_rebuilt(tmp_path, caplog):
    import hashlib
    import json

    import pyarrow as pa

    folder = _corpus(tmp_path / "c")
    first = _data(folder, tmp_path / "cache", streaming=True, shuffle_buffer=150, val=None)
    want = len(first.splits["train"])
    entry = next((tmp_path / "cache").iterdir())
    path = entry / "data" / "train-lengths.arrow"
    table = pa.ipc.open_stream(path.read_bytes()).read_all()
    keep = table.column("keep").to_pylist()
    keep[keep.index(True)] = False  # one training pair dropped, the count in meta.json to match
    table = table.set_column(2, "keep", pa.array(keep))
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    meta = json.loads((entry / "meta.json").read_text())
    meta["stream"]["examples"] = want - 1
    (entry / "meta.json").write_text(json.dumps(meta))
    manifest = json.loads((entry / "manifest.json").read_text())  # a consistent, hostile entry
    for rel in ("data/train-lengths.arrow", "meta.json"):
        data = (entry / rel).read_bytes()
        manifest["files"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (entry / "manifest.json").write_text(json.dumps(manifest))
    for f in entry.iterdir():  # as a handed-over entry: no stamp of this user's
        if f.name.startswith("checked"):
            f.unlink()
    again = _data(folder, tmp_path / "cache", streaming=True, shuffle_buffer=150, val=None)
    assert len(again.splits["train"]) == want
    assert any("not the seeded draw" in r.getMessage() for r in caplog.records)


def test_skipped_lines_are_reported_once_not_once_a_pass(tmp_path, caplog):
    import logging

    folder = _corpus(tmp_path / "c")
    lines = (folder / "train.de").read_text().splitlines()
    lines[3] = ""
    (folder / "train.de").write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING):
        dm = _data(folder, tmp_path / "cache", streaming=True, shuffle_buffer=150, on_error="skip")
        list(dm.train_dataloader())
    assert sum("skipped" in r.getMessage() for r in caplog.records) == 1
