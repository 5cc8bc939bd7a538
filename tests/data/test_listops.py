"""Tests of the ListOps generator, formatter, evaluator, writer and reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlp_lib.data.listops import (
    CLOSE,
    OPERATORS,
    evaluate,
    generate_listops,
    generate_splits,
    read_listops,
    to_bracketed,
    to_plain,
    write_tsv,
)
from nlp_lib.errors import DataError, TreeFormatError
from nlp_lib.structure.brackets import parse_unlabelled

OFFICIAL_PLAIN = "[MAX 2 9 [MIN 4 7 ] 0 ]"
OFFICIAL_BRACKETED = "( ( ( ( ( [MAX 2 ) 9 ) ( ( ( [MIN 4 ) 7 ) ] ) ) 0 ) ] )"


def _structure(expr: str) -> tuple[int, list[int]]:
    """Operator nesting depth and the argument count of every operator list."""
    depth, max_depth, counts, open_counts = 0, 0, [], []
    for t in to_plain(expr):
        if open_counts and t != CLOSE:
            open_counts[-1] += 1
        if t in OPERATORS:
            depth += 1
            max_depth = max(max_depth, depth)
            open_counts.append(0)
        elif t == CLOSE:
            depth -= 1
            counts.append(open_counts.pop())
    return max_depth, counts


# ---- formatting and evaluation --------------------------------------------------------------


def test_official_formatting_example() -> None:
    assert to_bracketed(OFFICIAL_PLAIN) == OFFICIAL_BRACKETED
    assert to_bracketed(OFFICIAL_PLAIN.split()) == OFFICIAL_BRACKETED
    assert to_bracketed(OFFICIAL_BRACKETED) == OFFICIAL_BRACKETED  # idempotent
    assert " ".join(to_plain(OFFICIAL_BRACKETED)) == OFFICIAL_PLAIN
    assert to_bracketed("7") == "7"


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("[MIN 4 7 2 ]", 2),
        ("[MAX 4 7 2 ]", 7),
        ("[MED 2 3 4 5 ]", 3),  # median 3.5, truncated
        ("[MED 1 9 4 ]", 4),
        ("[MED 8 9 ]", 8),  # 8.5 -> 8
        ("[SM 9 8 7 ]", 4),  # 24 mod 10
        ("[SM 0 0 ]", 0),
        (OFFICIAL_PLAIN, 9),
        (OFFICIAL_BRACKETED, 9),
        ("[SM [MAX 1 2 ] [MIN 3 [MED 5 6 7 ] ] ]", 5),
        ("6", 6),
    ],
)
def test_evaluate(expr: str, value: int) -> None:
    assert evaluate(expr) == value


@pytest.mark.parametrize(
    ("expr", "match"),
    [
        ("", "empty"),
        ("[MAX 1 2", "not closed"),
        ("[MAX 1 ] ]", "without an open"),
        ("[MIN ]", "no arguments"),
        ("[FOO 1 2 ]", "unknown token"),
        ("12", "unknown token"),
        ("[MAX 1 ] 2", "after the end"),
    ],
)
def test_evaluate_rejects_malformed(expr: str, match: str) -> None:
    with pytest.raises(DataError, match=match):
        evaluate(expr)


# ---- generation -----------------------------------------------------------------------------


def test_deterministic_and_seed_dependent() -> None:
    a = generate_listops(200, seed=1, max_depth=6)
    assert a == generate_listops(200, seed=1, max_depth=6)
    assert a != generate_listops(200, seed=2, max_depth=6)


def test_examples_are_distinct_labelled_and_parse_back() -> None:
    examples = generate_listops(300, seed=3, max_depth=6)
    assert len({e.expression for e in examples}) == len(examples) == 300
    for label, expr in examples:
        assert label == evaluate(expr) and 0 <= label <= 9
        assert expr == to_bracketed(expr)
        tree = parse_unlabelled(expr)
        plain = to_plain(expr)
        assert tree.leaf_words() == plain
        assert all(len(c) in (0, 2) for c in tree.children())  # binarised
        assert plain[0] in OPERATORS  # require_operator_root


def test_splits_disjoint_and_prefix_of_one_stream() -> None:
    sizes = {"train": 300, "val": 50, "test": 50}
    splits = generate_splits(sizes, seed=4, max_depth=5)
    assert {k: len(v) for k, v in splits.items()} == sizes
    exprs = [set(e.expression for e in v) for v in splits.values()]
    assert sum(map(len, exprs)) == 400
    assert not (exprs[0] & exprs[1] or exprs[0] & exprs[2] or exprs[1] & exprs[2])
    assert splits == generate_splits(sizes, seed=4, max_depth=5)
    flat = generate_listops(400, seed=4, max_depth=5)
    assert flat == splits["train"] + splits["val"] + splits["test"]


@pytest.mark.parametrize("max_depth", [1, 2, 4])
def test_respects_depth_and_argument_bounds(max_depth: int) -> None:
    examples = generate_listops(200, seed=5, max_depth=max_depth, min_args=2, max_args=4, p_operator=0.6)
    depths = []
    for _, expr in examples:
        depth, counts = _structure(expr)
        depths.append(depth)
        assert 1 <= depth <= max_depth
        assert all(2 <= c <= 4 for c in counts)
    assert max(depths) == max_depth  # p_operator=0.6 reaches the bound


def test_length_bounds_and_bare_digits() -> None:
    examples = generate_listops(100, seed=6, max_depth=6, min_length=10, max_length=30)
    assert all(10 <= len(to_plain(e.expression)) <= 30 for e in examples)
    digits = generate_listops(10, seed=7, require_operator_root=False, p_operator=0.0)
    assert sorted(e.expression for e in digits) == [str(d) for d in range(10)]


def test_exhausted_space_raises_instead_of_spinning() -> None:
    # max_depth=1, two arguments: 4 operators x 100 digit pairs = 400 expressions.
    assert len(generate_listops(400, seed=8, max_depth=1, min_args=2, max_args=2, max_attempts=50_000)) == 400
    with pytest.raises(ValueError, match="distinct"):
        generate_listops(401, seed=8, max_depth=1, min_args=2, max_args=2, max_attempts=50_000)
    with pytest.raises(ValueError, match="distinct"):
        generate_listops(11, seed=8, require_operator_root=False, p_operator=0.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_depth": -1},
        {"min_args": 3, "max_args": 2},
        {"p_operator": 1.5},
        {"min_length": 10, "max_length": 5},
        {"max_depth": 0},  # require_operator_root cannot be met
        {"max_length": 3},  # shorter than "[OP d d ]"
        {"p_operator": 1.0, "max_depth": 20},  # astronomically long without max_length
    ],
)
def test_bad_parameters(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        generate_listops(1, seed=0, **kwargs)


# ---- writing and reading --------------------------------------------------------------------


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
