"""Checked once per user (docs/data.md, "Cache"): an entry this user built or checked in full is
stamped, and a later load of the same files reads none of them; anything that changed a file, an
entry from elsewhere, a forged stamp or a key others may write means a full check again."""

import json
import logging
import os
import shutil

import pytest

from nlp_lib.data import cache as cache_module
from nlp_lib.data.builders import listops_data
from nlp_lib.data.datamodule import PreparedData


@pytest.fixture
def counted(monkeypatch):
    """Counts of the two full checks: files hashed (manifest) and contents checked (Arrow, ids)."""
    counts = {"hashed": 0, "checked": 0}
    sha, check = cache_module._sha256, PreparedData.check

    def hashed(*a):
        counts["hashed"] += 1
        return sha(*a)

    def checked(self):
        counts["checked"] += 1
        return check(self)

    monkeypatch.setattr(cache_module, "_sha256", hashed)
    monkeypatch.setattr(PreparedData, "check", checked)
    return counts


def _load(cache, caplog):
    """The prepared data (its examples read now: the splits map files the tests then change) and
    whether it came from the cache."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nlp_lib"):
        dm = listops_data(train_size=120, val_size=12, test_size=0, generator_seed=5, cache_dir=str(cache))
        dm.prepare()
    return {k: list(v) for k, v in dm.splits.items()}, "loaded from the cache" in caplog.text


def _entry(cache):
    (entry,) = (p for p in cache.iterdir() if not p.name.startswith("."))
    return entry


def test_a_stamped_entry_loads_without_reading_its_files(tmp_path, caplog, counted):
    cache = tmp_path / "cache"
    fresh, hit = _load(cache, caplog)
    assert not hit and (_entry(cache) / cache_module.STAMP).is_file()  # built here: stamped
    counted.update(hashed=0, checked=0)
    again, hit = _load(cache, caplog)
    assert hit and counted == {"hashed": 0, "checked": 0} and "stamped: not read again" in caplog.text
    assert again == fresh


def _copied_from_elsewhere(entry, tmp_path):
    """The same bytes in new files: what a cache folder handed over (copied, unpacked) is like."""
    copy = tmp_path / "copy"
    shutil.copytree(entry, copy)
    shutil.rmtree(entry)
    copy.rename(entry)


def _rewritten_with_old_times(entry, tmp_path):
    """The same size and modification time, other bytes (an edit hiding itself): a new change time."""
    f = entry / "data" / "train.arrow"
    st = f.stat()
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))


def _stamp_of_another_key(entry, tmp_path):
    (entry / cache_module.STAMP).write_text(json.dumps({"hmac": "0" * 64}))


def _stamp_garbage(entry, tmp_path):
    (entry / cache_module.STAMP).write_bytes(b"\xff" * 9000)


CHANGES = [_copied_from_elsewhere, _rewritten_with_old_times, _stamp_of_another_key, _stamp_garbage]


@pytest.mark.parametrize("change", CHANGES, ids=[c.__name__.lstrip("_") for c in CHANGES])
def test_anything_else_is_checked_in_full_then_stamped(tmp_path, caplog, counted, change):
    cache = tmp_path / "cache"
    fresh, _ = _load(cache, caplog)
    entry = _entry(cache)
    change(entry, tmp_path)
    counted.update(hashed=0, checked=0)
    again, hit = _load(cache, caplog)
    if change is _rewritten_with_old_times:  # the manifest's sha256 catches it: rebuilt
        assert not hit and "is damaged (data/train.arrow:" in caplog.text
    else:  # the same bytes: checked in full, loaded, stamped
        assert hit and counted["hashed"] > 0 and counted["checked"] == 1
    assert again == fresh
    counted.update(hashed=0, checked=0)
    _, hit = _load(cache, caplog)
    assert hit and counted == {"hashed": 0, "checked": 0}  # stamped by the full check


def test_a_key_that_others_may_write_stamps_nothing(tmp_path, caplog, counted, monkeypatch):
    key = tmp_path / "state" / "cache.key"
    monkeypatch.setenv("NLP_LIB_KEY_FILE", str(key))
    cache = tmp_path / "cache"
    _load(cache, caplog)
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_bytes()) == 32  # created on first use
    key.chmod(0o666)
    with caplog.at_level(logging.WARNING):
        counted.update(hashed=0, checked=0)
        _, hit = _load(cache, caplog)
    assert hit and counted["hashed"] > 0 and counted["checked"] == 1
    assert "only this user may read and write" in caplog.text


def test_a_key_inside_the_cache_folder_is_not_used(tmp_path, caplog, counted, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("NLP_LIB_KEY_FILE", str(cache / "cache.key"))  # handed over with the cache
    _load(cache, caplog)
    assert not (cache / "cache.key").exists()
    counted.update(hashed=0, checked=0)
    _, hit = _load(cache, caplog)
    assert hit and counted["hashed"] > 0 and counted["checked"] == 1


def test_the_stamp_is_not_part_of_the_entry(tmp_path, caplog):
    """The manifest neither lists the stamp nor counts it as an extra file."""
    cache = tmp_path / "cache"
    _load(cache, caplog)
    entry = _entry(cache)
    listed = json.loads((entry / cache_module.MANIFEST).read_text())["files"]
    assert cache_module.STAMP not in listed and (entry / cache_module.STAMP).is_file()


# ---------------------------------------------------------------- found by the hostile review


def test_a_file_changed_during_the_full_check_is_not_stamped(tmp_path, caplog, counted, monkeypatch):
    """The stamp vouches for the files as they were before the check, not as they are after it."""
    cache = tmp_path / "cache"
    _load(cache, caplog)
    entry = _entry(cache)
    (entry / cache_module.STAMP).unlink()  # checked in full at the next load
    real = PreparedData.check

    def check_then_rewrite(self):
        real(self)
        f = entry / "meta.json"
        f.write_bytes(f.read_bytes())  # the same bytes: passes later checks, but written after this one

    monkeypatch.setattr(PreparedData, "check", check_then_rewrite)
    _, hit = _load(cache, caplog)
    assert hit and not (entry / cache_module.STAMP).exists()


def test_files_others_may_write_are_never_stamped(tmp_path, caplog, counted):
    """A file others can write may change through a shared mapping without any time changing."""
    cache = tmp_path / "cache"
    _load(cache, caplog)
    entry = _entry(cache)
    (entry / "data" / "train.arrow").chmod(0o664)
    for _ in range(2):
        counted.update(hashed=0, checked=0)
        _, hit = _load(cache, caplog)
        assert hit and counted["checked"] == 1  # checked in full each time: never vouched for


def test_a_key_others_may_read_is_refused(tmp_path, caplog, counted, monkeypatch):
    key = tmp_path / "state" / "cache.key"
    monkeypatch.setenv("NLP_LIB_KEY_FILE", str(key))
    cache = tmp_path / "cache"
    _load(cache, caplog)
    key.chmod(0o644)  # anyone who reads it can forge stamps
    counted.update(hashed=0, checked=0)
    with caplog.at_level(logging.WARNING):
        _, hit = _load(cache, caplog)
    assert hit and counted["checked"] == 1 and "only this user may read and write" in caplog.text


def test_no_home_means_no_stamps_not_a_lost_entry(tmp_path, caplog, counted, monkeypatch):
    monkeypatch.delenv("NLP_LIB_KEY_FILE")
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(cache_module.Path, "home", staticmethod(no_home))
    cache = tmp_path / "cache"
    fresh, hit = _load(cache, caplog)
    assert not hit
    entry = _entry(cache)
    assert not (entry / cache_module.STAMP).exists()
    counted.update(hashed=0, checked=0)
    again, hit = _load(cache, caplog)
    assert hit and again == fresh and counted["checked"] == 1 and _entry(cache) == entry
