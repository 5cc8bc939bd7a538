"""Seq2seq data: parallel reader, vocabularies, batches, SCAN and Multi30K data modules."""

import gzip

import pytest
import torch
from conftest import SHARED_DATA

from nlp_lib.data.builders import parallel_data, scan_data
from nlp_lib.data.parallel import read_parallel
from nlp_lib.data.vocab import Seq2SeqVocab
from nlp_lib.errors import ConfigError, DataError
from nlp_lib.structure.seq2seq import BOS, EOS, PAD, Seq2SeqBatch

MULTI30K = SHARED_DATA / "multi30k" / "raw"


def test_read_parallel_multi30k_counts():
    if not (MULTI30K / "train.en.gz").is_file():
        pytest.skip("Multi30K not found (the shared data folder is absent)")
    for prefix, n in (("train", 29000), ("val", 1014), ("test_2016_flickr", 1000)):
        pairs = read_parallel(MULTI30K / f"{prefix}.en.gz", MULTI30K / f"{prefix}.de.gz")
        assert len(pairs) == n
    assert pairs[0][0] and pairs[0][1]


def test_read_parallel_errors_name_file_and_line(tmp_path):
    (tmp_path / "a.en").write_text("one\ntwo\nthree\n")
    (tmp_path / "a.de").write_text("eins\nzwei\n")
    with pytest.raises(DataError, match="line-aligned"):
        read_parallel(tmp_path / "a.en", tmp_path / "a.de")
    (tmp_path / "b.en").write_text("one\n\nthree\n")
    with gzip.open(tmp_path / "b.de.gz", "wt") as f:
        f.write("eins\nzwei\ndrei\n")
    with pytest.raises(DataError) as e:
        read_parallel(tmp_path / "b.en", tmp_path / "b.de.gz")
    assert "b.en" in str(e.value) and "2" in str(e.value)
    assert read_parallel(tmp_path / "b.en", tmp_path / "b.de.gz", on_error="skip") == [
        ("one", "eins"),
        ("three", "drei"),
    ]
    with pytest.raises(DataError, match="does not exist"):
        read_parallel(tmp_path / "nope.en", tmp_path / "a.de")


def test_vocab_and_batch_layout(tmp_path):
    vocab = Seq2SeqVocab.build(["jump twice", "walk left", "jump"])
    assert vocab.words[:4] == ["<pad>", "<unk>", "<s>", "</s>"] and vocab.words[4] == "jump"
    ids = vocab.encode("jump left fly")
    assert ids[-1] == 1 and vocab.decode(ids) == "jump left <unk>"
    vocab.save(tmp_path / "v.json")
    assert Seq2SeqVocab.load(tmp_path / "v.json").words == vocab.words
    b = Seq2SeqBatch.from_ids([[5, 6, 7], [8]], [[9, 10], [11, 12, 13]], ["a b", "c d e"])
    assert b.src.tolist() == [[5, 6, 7], [8, PAD, PAD]] and b.src_lengths.tolist() == [3, 1]
    assert b.tgt_in.tolist() == [[BOS, 9, 10, PAD], [BOS, 11, 12, 13]]
    assert b.tgt_out.tolist() == [[9, 10, EOS, PAD], [11, 12, 13, EOS]]
    assert b.num_target_tokens == 7


def test_scan_data_module_generated():
    dm = scan_data(split="length", batch_size=16)
    dm.prepare()
    assert set(dm.splits) == {"train", "val", "test"}
    assert max(len(t) for _, t, _ in dm.splits["train"]) <= 22 < min(len(t) for _, t, _ in dm.splits["test"])
    sizes = dm.model_sizes()
    assert sizes["src_vocab_size"] == 4 + 13 and sizes["tgt_vocab_size"] == 4 + 6  # 13 words, 6 actions
    batch = next(iter(dm.val_dataloader()))
    assert isinstance(batch, Seq2SeqBatch) and batch.src.dtype == torch.long
    with pytest.raises(ConfigError, match="data.split"):
        scan_data(split="nope")


def test_parallel_data_errors(tmp_path):
    with pytest.raises(ConfigError, match="data.path"):
        parallel_data(path=str(tmp_path / "none"), source="en", target="de")
    (tmp_path / "train.en").write_text("a b\nc d\ne f\n")
    (tmp_path / "train.de").write_text("A B\nC D\nE F\n")
    with pytest.raises(ConfigError, match="data.val"):
        parallel_data(path=str(tmp_path), source="en", target="de")
    dm = parallel_data(path=str(tmp_path), source="en", target="de", val=None, val_fraction=0.34, tokenizer="word")
    dm.prepare()
    assert len(dm.splits["train"]) == 2 and len(dm.splits["val"]) == 1
