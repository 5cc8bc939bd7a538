"""Seq2seq data: vocabularies, batches, and the SCAN and parallel-text DataModules (nlp_lib.data.seq2seq_datamodule)."""

import pytest
import torch

from nlp_lib.data.builders import parallel_data, scan_data
from nlp_lib.data.vocab import Seq2SeqVocab
from nlp_lib.errors import ConfigError
from nlp_lib.structure.seq2seq import BOS, EOS, PAD, Seq2SeqBatch


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
