"""Prepared data as Arrow (issue 19): one pipeline for every kind, read by index from memory-mapped files."""

import logging
import pickle

import numpy as np
import pyarrow as pa
import pytest

from nlp_lib.data import cache as cache_module
from nlp_lib.data.arrow import ArrowSplit, int_type, write_records
from nlp_lib.data.builders import listops_data, parallel_data, ptb_sentence_data
from nlp_lib.data.parallel import iter_parallel, read_parallel

PAIRS = [("a small dog", "ein kleiner Hund"), ("two cats sleep", "zwei Katzen schlafen"), ("the dog runs", "der Hund")]


def _parallel_dir(tmp_path, n=30):
    d = tmp_path / "par"
    d.mkdir()
    for split in ("train", "val"):
        (d / f"{split}.en").write_text("\n".join(x for x, _ in PAIRS * n) + "\n")
        (d / f"{split}.de").write_text("\n".join(y for _, y in PAIRS * n) + "\n")
    return d


def test_int_type_is_the_narrowest_that_holds_the_values():
    assert [str(int_type(0, h)) for h in (255, 256, 65535, 65536)] == ["uint8", "uint16", "uint16", "uint32"]
    assert [str(int_type(-1, h)) for h in (127, 128, 40_000)] == ["int8", "int16", "int32"]


def test_an_arrow_split_reads_examples_by_index_and_pickles_as_its_files(tmp_path):
    schema = pa.schema([("ids", pa.list_(pa.uint16())), ("label", pa.int8())])
    rows = [([i, i + 1, i + 2][: 1 + i % 3], i % 5) for i in range(25_000)]  # more than one record batch
    write_records(tmp_path / "t.arrow", schema, rows)
    split = ArrowSplit([tmp_path / "t.arrow"], ("ids", "label"))
    assert len(split) == len(rows) and split[7] == rows[7] and split[-1] == rows[-1]
    assert split[10_003:10_006] == rows[10_003:10_006]
    assert split.__getitems__([24_999, 0, 12_345]) == [rows[24_999], rows[0], rows[12_345]]
    assert split.lengths("ids").tolist() == [len(r[0]) for r in rows]
    by_length = split.reordered(np.argsort(split.lengths("ids"), kind="stable"))
    assert by_length[:3] == [rows[0], rows[3], rows[6]]
    with pytest.raises(IndexError):
        split[len(rows)]
    copy = pickle.loads(pickle.dumps(by_length))  # what a spawned DataLoader worker receives
    assert copy == by_length and len(pickle.dumps(split)) < 10_000  # the file's path, not its rows


def test_seq2seq_data_is_memory_mapped_in_narrow_types_with_references_only_for_evaluation(tmp_path):
    d, cache = _parallel_dir(tmp_path), tmp_path / "cache"
    dm = parallel_data(path=str(d), source="en", target="de", tokenizer="word", cache_dir=str(cache))
    dm.prepare()
    train, val = dm.splits["train"], dm.splits["val"]
    assert train.table.schema.field("source").type == pa.list_(pa.uint8())  # 13 words: one byte an id
    (entry,) = cache.iterdir()
    assert all(f.parent.parent == entry for f in train.files)  # mapped from the entry, not copied
    assert train[0][2] == "" and val[1][2] == "zwei Katzen schlafen"  # BLEU needs references, training does not
    assert dm.tokenizers["target"].decode(val[1][1]) == "zwei Katzen schlafen"


def test_a_held_out_split_equals_the_permutation_of_the_old_builders(tmp_path):
    import torch

    d = _parallel_dir(tmp_path)
    dm = parallel_data(path=str(d), source="en", target="de", val=None, tokenizer="word", cache=False)
    dm.prepare()
    pairs = read_parallel(d / "train.en", d / "train.de")
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(0)).tolist()
    k = max(1, round(0.05 * len(pairs)))
    assert [e[2] for e in dm.splits["val"]] == [pairs[i][1] for i in order[:k]]
    assert len(dm.splits["train"]) == len(pairs) - k


def test_several_encoding_processes_give_the_same_examples(tmp_path):
    make = lambda proc: listops_data(  # noqa: E731
        train_size=300, val_size=20, test_size=0, generator_seed=4, cache=False, num_proc=proc
    )
    one, two = make(1), make(2)
    one.prepare()
    two.prepare()
    assert len(two.splits["train"].files) == 2  # two shards, one per process
    assert two.splits == {k: list(v) for k, v in one.splits.items()}


def _forge(entry, name, table):
    """Replace an entry's Arrow file and re-sign its manifest: an entry forged whole, not damaged."""
    (entry / "data" / name).unlink()  # a new file: the old one stays mapped (``table`` reads from it)
    with pa.OSFile(str(entry / "data" / name), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    (entry / "manifest.json").unlink()
    cache_module._write_manifest(entry)


def _cached_pairs(tmp_path):
    """A prepared, cached parallel corpus: the maker, its splits as lists and its one cache entry."""
    d, cache = _parallel_dir(tmp_path), tmp_path / "cache"

    def make():
        return parallel_data(path=str(d), source="en", target="de", tokenizer="word", cache_dir=str(cache))

    fresh = make()
    fresh.prepare()
    (entry,) = cache.iterdir()
    return make, fresh, {k: list(v) for k, v in fresh.splits.items()}, entry


def test_a_forged_entry_with_ids_outside_the_vocabulary_is_rebuilt(tmp_path, caplog):
    make, fresh, reference, entry = _cached_pairs(tmp_path)
    train = fresh.splits["train"].table
    bad = pa.array([[60_000]] * train.num_rows, type=pa.list_(pa.uint16()))
    _forge(entry, "train.arrow", train.set_column(0, "source", bad))
    again = make()
    with caplog.at_level(logging.WARNING):
        again.prepare()
    assert "unreadable" in caplog.text and "outside 0.." in caplog.text
    assert again.splits == reference


def test_a_forged_tree_entry_with_a_parent_out_of_order_is_rebuilt(tmp_path, caplog):
    cache = tmp_path / "cache"

    def make():
        return listops_data(train_size=50, val_size=10, test_size=0, generator_seed=2, cache_dir=str(cache))

    fresh = make()
    fresh.prepare()
    (entry,) = cache.iterdir()
    val = fresh.splits["val"].table
    parents = val.column("parent").to_pylist()
    parents[0] = [len(parents[0]) - 1] * len(parents[0])  # the root is its own parent: a cycle
    forged = val.set_column(0, "parent", pa.array(parents, type=val.schema.field("parent").type))
    _forge(entry, "val.arrow", forged)
    again = make()
    with caplog.at_level(logging.WARNING):
        again.prepare()
    assert "parent index out of order" in caplog.text and len(again.splits["val"]) == 10


def test_a_forged_entry_with_decreasing_offsets_in_a_later_batch_is_rebuilt(tmp_path, caplog):
    """Contents are validated a record batch at a time (not through the map): every batch is seen."""
    make, fresh, reference, entry = _cached_pairs(tmp_path)
    train = fresh.splits["train"].table.combine_chunks()
    good, last = train.slice(0, train.num_rows - 2), train.slice(train.num_rows - 2)
    source = last.column("source").chunks[0]
    offsets = np.array([0, 2, 1], dtype=np.int32)  # decreasing: only a full validation sees it
    values = pa.array([1, 2], type=source.type.value_type)
    broken = pa.Array.from_buffers(source.type, 2, [None, pa.py_buffer(offsets.tobytes())], children=[values])
    forged = pa.Table.from_batches(
        [
            *good.to_batches(max_chunksize=16),
            *last.set_column(last.schema.get_field_index("source"), "source", broken).to_batches(),
        ]
    )
    assert forged.to_batches()[-1].num_rows == 2 and len(forged.to_batches()) > 2
    _forge(entry, "train.arrow", forged)
    again = make()
    with caplog.at_level(logging.WARNING):
        again.prepare()
    assert "unreadable" in caplog.text
    assert again.splits == reference


def test_the_sentences_of_trees_are_prepared_the_same_way(tmp_path):
    d = tmp_path / "sst"
    d.mkdir()
    (d / "train.txt").write_text("(3 (2 a) (4 good))\n(1 (1 bad) (2 film))\n")
    (d / "dev.txt").write_text("(3 (2 good) (2 film))\n")
    dm = ptb_sentence_data(path=str(d), test_file=None, cache=False)
    dm.prepare()
    assert [e[1] for e in dm.splits["train"]] == [3, 1]
    assert [dm.vocab.words[i] for i in dm.splits["val"][0][0]] == ["good", "film"]
    assert dm.splits["train"].table.schema.field("label").type == pa.uint8()


def test_parallel_files_are_streamed(tmp_path):
    d = _parallel_dir(tmp_path)
    pairs = iter_parallel(d / "train.en", d / "train.de")
    assert next(pairs) == PAIRS[0]  # a generator: the first pair before the rest is read
    assert [PAIRS[0], *pairs] == read_parallel(d / "train.en", d / "train.de")


def test_sentencepiece_trained_on_a_seeded_sample():
    from nlp_lib.data.tokenizers import SentencePieceTokenizer

    texts = [f"word{i % 50} other{i % 7} and more text {i % 3}" for i in range(2_000)]
    a = SentencePieceTokenizer.train(iter(texts), vocab_size=60, sample=500, seed=1)
    b = SentencePieceTokenizer.train(iter(texts), vocab_size=60, sample=500, seed=1)
    assert a.model == b.model and a.vocab_size <= 60


def test_evaluation_only_prepares_one_split_with_the_given_tokenizers(tmp_path):
    d = _parallel_dir(tmp_path)
    trained = parallel_data(path=str(d), source="en", target="de", tokenizer="word", cache=False)
    trained.prepare()
    (d / "train.en").write_text("not read\n")  # evaluation never opens the training files
    (d / "train.de").write_text("")
    other = parallel_data(path=str(d), source="en", target="de", tokenizer="word", cache_dir=str(tmp_path / "c"))
    other.adopt_tokenizer(trained.tokenizers)
    other.evaluate_only("val")
    other.prepare()
    assert set(other.splits) == {"val"} and other.splits["val"] == list(trained.splits["val"])
    assert not (tmp_path / "c").exists()  # nothing cached


def test_a_forged_tree_entry_whose_meta_disagrees_with_the_options_is_rebuilt(tmp_path, caplog):
    import json

    from nlp_lib.data.builders import ptb_tree_data

    d, cache = tmp_path / "sst", tmp_path / "cache"
    d.mkdir()
    (d / "train.txt").write_text("(4 (2 a) (3 b))\n(0 (1 a) (2 b))\n")
    (d / "dev.txt").write_text("(3 (2 a) (4 b))\n")

    def make():
        return ptb_tree_data(path=str(d), binary=True, neutral_phrases=True, cache_dir=str(cache))

    fresh = make()
    fresh.prepare()
    (entry,) = cache.iterdir()
    for forged in ({"num_classes": 5}, {"label_names": ["negative", "positive"]}):
        meta = json.loads((entry / "meta.json").read_text())
        (entry / "meta.json").write_text(json.dumps({**meta, **forged}))
        (entry / "manifest.json").unlink()
        cache_module._write_manifest(entry)  # consistent, signed again: forged, not damaged
        for f in entry.iterdir():
            if f.name.startswith("checked"):
                f.unlink()  # as a handed-over entry
        again = make()
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            again.prepare()
        assert "meta.json" in caplog.text, caplog.text
        assert (again.num_classes, again.label_names) == (3, ["negative", "positive", "neutral"])
