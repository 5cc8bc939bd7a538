"""Tests of the ListOps generator, formatter and evaluator (nlp_lib.data.listops)."""

from __future__ import annotations

import pytest

from nlp_lib.data.listops import (
    CLOSE,
    OPERATORS,
    evaluate,
    generate_listops,
    generate_splits,
    to_bracketed,
    to_plain,
)
from nlp_lib.errors import DataError
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
