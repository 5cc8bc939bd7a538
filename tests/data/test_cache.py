"""The prepared-data cache: a second prepare loads the same data from Arrow; any change rebuilds it."""

import json
import logging
import os

import pytest

from nlp_lib.data.builders import listops_data, parallel_data, ptb_sentence_data, ptb_tree_data
from nlp_lib.data.cache import DataCache

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
    # the examples as read now: the splits map the entry's files, which the tests then damage in place
    dm.snapshot = {name: list(split) for name, split in dm.splits.items()}
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
    assert second.splits == first.snapshot and second.vocab.words == first.vocab.words
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
        assert hit and second.splits == first.snapshot
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
    assert not hit and "is damaged (data/" in caplog.text and again.splits == first.snapshot
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
    assert not hit and hit2 and second.splits == first.snapshot
    _, hit = _prepared(lambda: make(seed=1), caplog)
    assert not hit


def test_an_entry_stored_twice_keeps_the_first(tmp_path):
    entry = DataCache("x", {"k": 1}, tmp_path)
    for n in (1, 2):  # a second DDP rank commits the same entry after the first
        folder = entry.staging()
        (folder / "meta.json").write_text(json.dumps({"n": n}))
        assert entry.commit(folder) == entry.path
    assert entry.load() == {"n": 1}
    assert [p.name for p in tmp_path.iterdir()] == [entry.path.name]  # no staging folder left


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
    assert not hit and "is damaged (tokenizer.model:" in caplog.text
    assert again.splits == first.snapshot and again.vocab_size == first.vocab_size
    _, hit = _prepared(make, caplog)
    assert hit  # rebuilt and stored again


# ---------------------------------------------------------------- verified, not trusted (docs/data.md)
# Every file of an entry is listed in its manifest with its size and sha256 and checked on each
# load: damage of any kind is a warning naming the entry and the file, and a rebuilt entry.

TRAIN_ARROW = "data/train.arrow"


def _listops(cache):
    return lambda: listops_data(train_size=200, val_size=20, test_size=0, generator_seed=3, cache_dir=str(cache))


def _built_entry(tmp_path, caplog):
    """A fresh ListOps build (the reference) and its cache entry's folder."""
    cache = tmp_path / "cache"
    make = _listops(cache)
    fresh, hit = _prepared(make, caplog)
    assert not hit
    (entry,) = cache.iterdir()
    return make, fresh, entry


def _assert_rebuilt(make, fresh, entry, caplog, file):
    """The next prepare warns that ``entry`` is damaged at ``file``, rebuilds the data of a fresh
    build and stores an intact entry, which the prepare after loads."""
    again, hit = _prepared(make, caplog)
    damaged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "is damaged" in r.message]
    assert not hit and len(damaged) == 1, caplog.text
    assert str(entry) in damaged[0] and f"({file}:" in damaged[0], damaged[0]
    assert again.splits == fresh.snapshot and again.vocab.words == fresh.vocab.words
    assert again.num_classes == fresh.num_classes
    third, hit = _prepared(make, caplog)
    assert hit and "WARNING" not in caplog.text and third.splits == fresh.snapshot


def _overwrite(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _zeros_in_the_middle(entry):
    f = entry / TRAIN_ARROW
    _overwrite(f, f.stat().st_size // 2 - 1024, bytes(2048))
    return TRAIN_ARROW


def _random_bytes(entry):
    import random

    f = entry / TRAIN_ARROW
    _overwrite(f, f.stat().st_size // 3, random.Random(0).randbytes(512))
    return TRAIN_ARROW


def _truncated(entry):
    f = entry / TRAIN_ARROW
    os.truncate(f, f.stat().st_size // 2)
    return TRAIN_ARROW


def _deleted_arrow(entry):
    (entry / TRAIN_ARROW).unlink()
    return TRAIN_ARROW


def _deleted_vocabulary(entry):
    (entry / "vocab.json").unlink()
    return "vocab.json"


def _one_changed_byte_in_meta(entry):
    f = entry / "meta.json"
    f.write_text(f.read_text().replace('"num_classes": 10', '"num_classes": 11'))
    return "meta.json"


def _an_extra_file(entry):
    (entry / "data" / "cache-0001.arrow").write_bytes(b"x")
    return "data/cache-0001.arrow"


def _a_symlink_to_the_same_bytes(entry):
    f = entry / TRAIN_ARROW
    copy = entry.parent.parent / "outside.arrow"
    copy.write_bytes(f.read_bytes())
    f.unlink()
    f.symlink_to(copy)  # the right bytes, but not the entry's own file
    return TRAIN_ARROW


def _a_fifo(entry):
    os.mkfifo(entry / "data" / "pipe")  # opening it for reading would block
    return "data/pipe"


def _a_written_by_old_code(entry):
    (entry / "manifest.json").unlink()  # what every entry of the versions before checksums is like
    return "manifest.json"


DAMAGE = [
    _zeros_in_the_middle,
    _random_bytes,
    _truncated,
    _deleted_arrow,
    _deleted_vocabulary,
    _one_changed_byte_in_meta,
    _an_extra_file,
    _a_symlink_to_the_same_bytes,
    _a_fifo,
    _a_written_by_old_code,
]


@pytest.mark.parametrize("damage", DAMAGE, ids=[d.__name__.lstrip("_") for d in DAMAGE])
def test_a_damaged_entry_is_rebuilt_with_a_warning_naming_the_file(tmp_path, caplog, damage):
    make, fresh, entry = _built_entry(tmp_path, caplog)
    file = damage(entry)
    _assert_rebuilt(make, fresh, entry, caplog, file)


def _manifest_edit(edit):
    def tamper(entry):
        f = entry / "manifest.json"
        doc = json.loads(f.read_text())
        f.write_text(json.dumps(edit(doc)))
        return "manifest.json"

    return tamper


def _raw_manifest(text):
    def tamper(entry):
        (entry / "manifest.json").write_text(text)
        return "manifest.json"

    return tamper


def _changed_digest(doc):
    doc["files"][TRAIN_ARROW]["sha256"] = "0" * 64
    return doc


def _renamed_path(new):
    def edit(doc):
        doc["files"][new] = doc["files"].pop("vocab.json")
        return doc

    return edit


def _record(rel, record):
    def edit(doc):
        doc["files"][rel] = record
        return doc

    return edit


def _manifest_as_a_symlink(entry):
    f = entry / "manifest.json"
    copy = entry.parent.parent / "manifest-copy.json"
    copy.write_bytes(f.read_bytes())
    f.unlink()
    f.symlink_to(copy)
    return "manifest.json"


TAMPERED = {
    "a_list": _manifest_edit(lambda doc: [doc]),
    "a_string": _manifest_edit(lambda doc: "files"),
    "not_json": _raw_manifest('{"format": 1, "files": {'),
    "not_utf8": lambda entry: (entry / "manifest.json").write_bytes(b'{"format": 1, "\xff": 2}') and "manifest.json",
    "files_a_list": _manifest_edit(lambda doc: {**doc, "files": list(doc["files"])}),
    "format_true": _manifest_edit(lambda doc: {**doc, "format": True}),
    "another_algorithm": _manifest_edit(lambda doc: {**doc, "algorithm": "md5"}),
    "size_a_string": _manifest_edit(_record("vocab.json", {"size": "126", "sha256": "0" * 64})),
    "size_a_bool": _manifest_edit(_record("vocab.json", {"size": True, "sha256": "0" * 64})),
    "digest_a_number": _manifest_edit(_record("vocab.json", {"size": 1, "sha256": 7})),
    "record_a_list": _manifest_edit(_record("vocab.json", [1, "0" * 64])),
    "dot_dot_path": _manifest_edit(_renamed_path("../x")),
    "nested_dot_dot_path": _manifest_edit(_renamed_path("data/../../vocab.json")),
    "absolute_path": _manifest_edit(_renamed_path("/etc/passwd")),
    "dot_path": _manifest_edit(_renamed_path("./vocab.json")),
    "changed_digest": _manifest_edit(_changed_digest),
    "a_file_dropped": _manifest_edit(
        lambda doc: {**doc, "files": {k: v for k, v in doc["files"].items() if k != TRAIN_ARROW}}
    ),
    "meta_dropped": _manifest_edit(
        lambda doc: {**doc, "files": {k: v for k, v in doc["files"].items() if k != "meta.json"}}
    ),
    "a_symlink": _manifest_as_a_symlink,
    "a_folder": lambda entry: (
        ((entry / "manifest.json").unlink(), (entry / "manifest.json").mkdir()) and "manifest.json"
    ),
}
# what each of them names: the manifest itself, or the file it fails to vouch for
NAMES = {"changed_digest": TRAIN_ARROW, "a_file_dropped": TRAIN_ARROW}


@pytest.mark.parametrize("name", list(TAMPERED))
def test_a_tampered_manifest_rebuilds_the_entry(tmp_path, caplog, name):
    make, fresh, entry = _built_entry(tmp_path, caplog)
    TAMPERED[name](entry)
    _assert_rebuilt(make, fresh, entry, caplog, NAMES.get(name, "manifest.json"))


def test_an_entry_that_is_a_symlink_is_rebuilt_and_its_target_left_alone(tmp_path, caplog):
    make, fresh, entry = _built_entry(tmp_path, caplog)
    target = tmp_path / "elsewhere"
    entry.rename(target)
    entry.symlink_to(target)  # an intact entry, but not inside the cache folder
    _assert_rebuilt(make, fresh, entry, caplog, ".")
    assert (target / "manifest.json").is_file() and not entry.is_symlink()


def test_an_intact_entry_is_loaded_and_each_of_its_files_hashed_once(tmp_path, caplog, monkeypatch):
    from nlp_lib.data import cache as cache_module

    make, fresh, entry = _built_entry(tmp_path, caplog)
    manifest = json.loads((entry / "manifest.json").read_text())
    on_disk = sorted(str(p.relative_to(entry)) for p in entry.rglob("*") if p.is_file())
    assert sorted(manifest["files"]) == [p for p in on_disk if p not in ("manifest.json", cache_module.STAMP)]
    assert TRAIN_ARROW in manifest["files"] and "vocab.json" in manifest["files"]
    (entry / cache_module.STAMP).unlink()  # an entry not checked by this user (tests/data/test_cache_stamp.py)

    folder = entry.stat().st_ino
    hashed = []
    real = cache_module._sha256
    monkeypatch.setattr(cache_module, "_sha256", lambda folder, rel: hashed.append(rel) or real(folder, rel))
    with caplog.at_level(logging.WARNING):
        second, hit = _prepared(make, caplog)
    assert hit and "WARNING" not in caplog.text and second.splits == fresh.snapshot
    assert sorted(hashed) == sorted(manifest["files"])  # once per file, per load
    assert entry.stat().st_ino == folder  # the same folder: not deleted, not rebuilt


def test_the_other_datamodules_are_verified_too(tmp_path, caplog):
    """One mechanism in DataCache: a seq2seq entry (two tokenizers) is checked the same way."""
    d, cache = tmp_path / "par", tmp_path / "cache"
    d.mkdir()
    for split in ("train", "val"):
        (d / f"{split}.en").write_text("\n".join(["a small dog", "two cats sleep", "the dog runs"] * 30) + "\n")
        (d / f"{split}.de").write_text("\n".join(["ein kleiner Hund", "zwei Katzen", "der Hund rennt"] * 30) + "\n")

    def make():
        return parallel_data(path=str(d), source="en", target="de", tokenizer="word", cache_dir=str(cache))

    fresh, _ = _prepared(make, caplog)
    (entry,) = cache.iterdir()
    _overwrite(entry / "target.vocab.json", 2, b"!!")
    again, hit = _prepared(make, caplog)
    assert not hit and f"{entry} is damaged (target.vocab.json:" in caplog.text
    assert again.splits == fresh.snapshot
    assert again.tokenizers["target"].decode(again.splits["val"][1][1]) == "zwei Katzen"
