"""The parallel-text reader: line-aligned files, plain or gzip (nlp_lib.data.parallel)."""

import gzip

import pytest
from conftest import SHARED_DATA

from nlp_lib.data.parallel import read_parallel
from nlp_lib.errors import DataError

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
