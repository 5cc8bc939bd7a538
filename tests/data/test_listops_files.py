"""Tests of the ListOps writer and reader of the official format (nlp_lib.data.listops_files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlp_lib.data.listops import generate_listops, to_plain
from nlp_lib.data.listops_files import read_listops, write_tsv
from nlp_lib.errors import DataError, TreeFormatError

OFFICIAL_PLAIN = "[MAX 2 9 [MIN 4 7 ] 0 ]"
OFFICIAL_BRACKETED = "( ( ( ( ( [MAX 2 ) 9 ) ( ( ( [MIN 4 ) 7 ) ] ) ) 0 ) ] )"


def test_write_then_read(tmp_path: Path) -> None:
    examples = generate_listops(50, seed=9, max_depth=5)
    path = tmp_path / "sub" / "train.tsv"
    assert write_tsv(examples, path) == 50
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == f"{examples[0].label}\t{examples[0].expression}"
    data = read_listops(path)
    assert len(data) == 50 and data.labels == [e.label for e in examples] and data.skipped == []
    for tree, (_, expr) in zip(data.trees, examples, strict=True):
        assert tree.leaf_words() == to_plain(expr)
    labelled = data.labelled_trees()
    assert [t.labels[t.root] for t in labelled] == data.labels
    assert all(set(t.labels[:-1]) <= {-1} for t in labelled)


def test_write_rejects_bad_examples(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="label"):
        write_tsv([(10, "1")], tmp_path / "a.tsv")
    with pytest.raises(ValueError, match="tab"):
        write_tsv([(1, "( [MAX\t1 )")], tmp_path / "b.tsv")


def test_reader_skips_blank_lines_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "d.tsv"
    path.write_bytes(b"\n9\t" + OFFICIAL_BRACKETED.encode() + b"\r\n   \n3\t( ( ( [MIN 3 ) 5 ) ] )\n\n")
    data = read_listops(path)
    assert data.labels == [9, 3] and data.skipped == []
    assert data.trees[0].leaf_words() == OFFICIAL_PLAIN.split()


BAD_LINES = [
    (b"9 ( ( [MAX 2 ) ] )", DataError, "missing tab"),
    (b"x\t( ( [MAX 2 ) ] )", DataError, "label 'x' is not an integer 0-9"),
    (b"10\t( ( [MAX 2 ) ] )", DataError, "label '10' is not an integer 0-9"),
    (b"-1\t( ( [MAX 2 ) ] )", DataError, "label '-1' is not an integer 0-9"),
    (b"2\t( ( [MAX 2 ) ] ", TreeFormatError, "malformed bracketing.*unbalanced '\\('"),
    (b"2\t( ( [MAX 2 ) ] ) )", TreeFormatError, "malformed bracketing.*unbalanced '\\)'"),
    (b"2\t   ", DataError, "empty expression"),
    (b"2\t( [MAX \xff2 ) ] )", DataError, "not valid UTF-8"),
]


@pytest.mark.parametrize(("bad", "kind", "match"), BAD_LINES)
def test_reader_errors_name_file_and_line(tmp_path: Path, bad: bytes, kind: type, match: str) -> None:
    path = tmp_path / "bad.tsv"
    path.write_bytes(b"3\t( ( ( [MIN 3 ) 5 ) ] )\n\n" + bad + b"\n")
    with pytest.raises(kind, match=match) as info:
        read_listops(path)
    assert str(info.value).startswith(f"{path}:3: ")
    assert info.value.path == str(path) and info.value.line == 3


def test_reader_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.tsv"
    with pytest.raises(DataError, match="does not exist") as info:
        read_listops(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(DataError, match="not a file"):
        read_listops(tmp_path)


def test_reader_skip_keeps_every_valid_line(tmp_path: Path) -> None:
    good = [(e.label, e.expression) for e in generate_listops(5, seed=10, max_depth=4)]
    lines: list[bytes] = []
    for (label, expr), (bad, _, _) in zip(good, BAD_LINES, strict=False):
        lines += [f"{label}\t{expr}".encode(), bad]
    path = tmp_path / "mixed.tsv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    data = read_listops(path, on_error="skip")
    assert data.labels == [y for y, _ in good]
    assert [t.leaf_words() for t in data.trees] == [to_plain(x) for _, x in good]
    assert [n for n, _ in data.skipped] == [2, 4, 6, 8, 10]
    assert "missing tab" in data.skipped[0][1]
    with pytest.raises(ValueError, match="on_error"):
        read_listops(path, on_error="ignore")  # type: ignore[arg-type]
