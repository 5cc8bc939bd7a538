"""The prepared-data cache: a second prepare loads the same data from Arrow; any change rebuilds it."""

import logging
import os

import pytest

from nlp_lib.data.cache import DataCache
from nlp_lib.data.seq2seq import parallel_data
from nlp_lib.data.sources import listops_data, ptb_sentence_data, ptb_tree_data

TREES = {
    "train.txt": [
        "(3 (2 a) (4 (4 good) (2 film)))",
        "(1 (1 bad) (2 film))",
        "(4 (3 (2 a) (4 great)) (2 one))",
        "(0 (0 awful) (2 one))",
    ],
    "dev.txt": ["(3 (2 good) (2 one))", "(0 (2 a) (0 (0 awful) (2 film)))"],
}


def _tree_dir(tmp_path):
    d = tmp_path / "trees"
    d.mkdir()
    for name, lines in TREES.items():
        (d / name).write_text("\n".join(lines) + "\n")
    return d


def _prepared(make, caplog):
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nlp_lib"):
        dm = make()
        dm.prepare()
    return dm, "loaded from the cache" in caplog.text


@pytest.mark.parametrize("builder", [ptb_tree_data, ptb_sentence_data], ids=["trees", "sentences"])
def test_tree_data_second_prepare_comes_from_the_cache_unchanged(tmp_path, caplog, builder):
    d, cache = _tree_dir(tmp_path), tmp_path / "cache"

    def make(**kw):
        return builder(path=str(d), cache_dir=str(cache), **kw)

    first, hit = _prepared(make, caplog)
    assert not hit and len(list(cache.iterdir())) == 1
    second, hit = _prepared(make, caplog)
    assert hit
    assert second.splits == first.splits and second.vocab.words == first.vocab.words
    assert second.num_classes == first.num_classes == 5
    # another option, another entry
    _, hit = _prepared(lambda: make(lowercase=True), caplog)
    assert not hit and len(list(cache.iterdir())) == 2
    # an edited file is read again: the new tree is there
    with open(d / "train.txt", "a") as f:
        f.write("(2 (2 new) (2 words))\n")
    third, hit = _prepared(make, caplog)
    assert not hit and len(third.splits["train"]) == 5 and "new" in third.vocab.words


def test_parallel_text_cache_keeps_tokenizers_and_raw_targets(tmp_path, caplog):
    d, cache = tmp_path / "par", tmp_path / "cache"
    d.mkdir()
    src = ["a small dog", "two cats sleep", "the dog runs", "a cat runs"] * 5
    tgt = ["ein kleiner Hund", "zwei Katzen schlafen", "der Hund rennt", "eine Katze rennt"] * 5
    for split in ("train", "val"):
        (d / f"{split}.en").write_text("\n".join(src) + "\n")
        (d / f"{split}.de").write_text("\n".join(tgt) + "\n")
    for kind, shared in (("word", False), ("sentencepiece", True)):

        def make(kind=kind, shared=shared):
            return parallel_data(
                path=str(d), source="en", target="de", tokenizer=kind, shared_vocab=shared, vocab_size=40,
                cache_dir=str(cache),
            )  # fmt: skip

        first, hit = _prepared(make, caplog)
        assert not hit
        second, hit = _prepared(make, caplog)
        assert hit and second.splits == first.splits
        assert (second.source_tokenizer is second.target_tokenizer) == shared
        assert second.model_sizes() == first.model_sizes()
        assert second.splits["val"][0][2] == "ein kleiner Hund"
        assert second.tokenizers["target"].decode(second.splits["val"][1][1]) == "zwei Katzen schlafen"


def test_damaged_or_disabled_cache(tmp_path, caplog):
    d, cache = _tree_dir(tmp_path), tmp_path / "cache"

    def make(**kw):
        return ptb_tree_data(path=str(d), cache_dir=str(cache), **kw)

    first, _ = _prepared(make, caplog)
    (entry,) = cache.iterdir()
    for f in (entry / "data").rglob("*.arrow"):
        f.write_bytes(b"not arrow")
    with caplog.at_level(logging.WARNING):
        again, hit = _prepared(make, caplog)
    assert not hit and "unreadable" in caplog.text and again.splits == first.splits
    _, hit = _prepared(make, caplog)
    assert hit  # the damaged entry was replaced by the rebuilt one

    off = tmp_path / "off"
    _prepared(lambda: ptb_tree_data(path=str(d), cache=False, cache_dir=str(off)), caplog)
    assert not off.exists()


def test_a_given_vocabulary_is_never_cached(tmp_path, caplog):
    d, cache = _tree_dir(tmp_path), tmp_path / "cache"
    base, _ = _prepared(lambda: ptb_tree_data(path=str(d), cache_dir=str(cache)), caplog)
    tuned = ptb_tree_data(path=str(d), cache_dir=str(cache))
    tuned.adopt_tokenizer(base.vocab)  # fine-tuning: ids come from the trained model's vocabulary
    tuned.prepare()
    assert len(list(cache.iterdir())) == 1


def test_generated_listops_is_cached_by_its_parameters(tmp_path, caplog):
    cache = tmp_path / "cache"

    def make(seed=0):
        return listops_data(train_size=60, val_size=20, test_size=0, generator_seed=seed, cache_dir=str(cache))

    first, hit = _prepared(make, caplog)
    second, hit2 = _prepared(make, caplog)
    assert not hit and hit2 and second.splits == first.splits
    _, hit = _prepared(lambda: make(seed=1), caplog)
    assert not hit


def test_an_entry_stored_twice_keeps_the_first(tmp_path):
    from datasets import Dataset, DatasetDict

    entry = DataCache("x", {"k": 1}, tmp_path)
    entry.store(DatasetDict({"train": Dataset.from_dict({"a": [1]})}), {"n": 1})
    entry.store(DatasetDict({"train": Dataset.from_dict({"a": [2]})}), {"n": 2})  # a second DDP rank
    data, meta = entry.load()
    assert meta == {"n": 1} and data["train"]["a"] == [1]
    assert [p.name for p in tmp_path.iterdir()] == [entry.path.name]  # no temporary folder left


def test_default_folder_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NLP_LIB_CACHE", str(tmp_path / "env"))
    assert DataCache("x", {}).path.parent == tmp_path / "env"
    assert os.environ["NLP_LIB_CACHE"] == str(tmp_path / "env")


def test_a_cached_run_repeats_the_skipped_lines_warning(tmp_path, caplog):
    d, cache = _tree_dir(tmp_path), tmp_path / "cache"
    with open(d / "train.txt", "a") as f:
        f.write("(3 (2 broken\n")

    def make():
        return ptb_tree_data(path=str(d), cache_dir=str(cache), on_error="skip")

    with caplog.at_level(logging.WARNING):
        first, hit = _prepared(make, caplog)
    assert not hit and "skipped 1" in caplog.text and "line 5" in caplog.text
    with caplog.at_level(logging.WARNING):
        second, hit = _prepared(make, caplog)
    assert hit and "skipped 1" in caplog.text and "when the cached data" in caplog.text
    assert len(second.splits["train"]) == 4


def test_a_damaged_tokenizer_file_in_an_entry_is_a_cache_miss(tmp_path, caplog):
    d, cache = _tree_dir(tmp_path), tmp_path / "cache"

    def make():
        return ptb_tree_data(path=str(d), cache_dir=str(cache), tokenizer="sentencepiece", vocab_size=20)

    first, _ = _prepared(make, caplog)
    (entry,) = cache.iterdir()
    (entry / "tokenizer.model").write_bytes(b"truncated")
    with caplog.at_level(logging.WARNING):
        again, hit = _prepared(make, caplog)
    assert not hit and "unreadable" in caplog.text
    assert again.splits == first.splits and again.vocab_size == first.vocab_size
    _, hit = _prepared(make, caplog)
    assert hit  # rebuilt and stored again
