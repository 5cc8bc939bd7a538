"""Tests of the SCAN generator, reader and splits, checked against the official files in place."""

from __future__ import annotations

import gzip
import logging
import re
from collections import Counter
from pathlib import Path

import pytest
from conftest import SHARED_DATA

from nlp_lib.data.scan import generate_scan, read_scan, read_scan_split, scan_splits
from nlp_lib.errors import ConfigError, DataError

SCAN_DIR = SHARED_DATA / "scan"


@pytest.fixture(scope="module")
def scan_dir() -> Path:
    if not (SCAN_DIR / "tasks.txt").is_file():
        pytest.skip(f"official SCAN files not found at {SCAN_DIR} (the shared data folder is absent)")
    return SCAN_DIR


@pytest.fixture(scope="module")
def generated() -> list[tuple[str, str]]:
    return generate_scan()


# ---- the grammar ----------------------------------------------------------------------------


def test_generated_count_and_order(generated: list[tuple[str, str]]) -> None:
    assert len(generated) == 20_910
    assert len({c for c, _ in generated}) == 20_910  # one action sequence per command
    assert generated == sorted(generated)
    assert generate_scan() == generated  # deterministic


def test_generated_equals_official_tasks(generated: list[tuple[str, str]], scan_dir: Path) -> None:
    official = read_scan(scan_dir / "tasks.txt")
    assert len(official) == 20_910
    assert set(official) == set(generated)


@pytest.mark.parametrize(
    ("command", "actions"),
    [
        ("turn around left twice", " ".join(["I_TURN_LEFT"] * 8)),
        (
            "jump opposite right after look left thrice",
            "I_TURN_LEFT I_LOOK I_TURN_LEFT I_LOOK I_TURN_LEFT I_LOOK I_TURN_RIGHT I_TURN_RIGHT I_JUMP",
        ),
        ("walk and run", "I_WALK I_RUN"),
        ("jump twice after walk", "I_WALK I_JUMP I_JUMP"),
        ("turn left", "I_TURN_LEFT"),
        ("turn opposite right", "I_TURN_RIGHT I_TURN_RIGHT"),
        ("run around right", "I_TURN_RIGHT I_RUN I_TURN_RIGHT I_RUN I_TURN_RIGHT I_RUN I_TURN_RIGHT I_RUN"),
    ],
)
def test_hand_checked_examples(generated: list[tuple[str, str]], command: str, actions: str) -> None:
    assert dict(generated)[command] == actions


def test_no_bare_turn(generated: list[tuple[str, str]]) -> None:
    commands = {c for c, _ in generated}
    assert "turn" not in commands and "turn twice" not in commands and "turn left opposite right" not in commands


# ---- the splits -----------------------------------------------------------------------------


def _sizes(splits: dict[str, list[tuple[str, str]]]) -> tuple[int, int, int]:
    return len(splits["train"]), len(splits["val"]), len(splits["test"])


def test_simple_split_disjoint_and_complete(generated: list[tuple[str, str]]) -> None:
    s = scan_splits(generated, "simple", seed=0)
    assert set(s) == {"train", "val", "test"}
    train, val, test = (set(s[k]) for k in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == set(generated)
    assert len(test) == 4_182 and len(train) + len(val) == 16_728  # the official sizes
    assert len(val) == round(0.1 * 16_728)
    assert scan_splits(generated, "simple", seed=0) == s
    assert scan_splits(list(reversed(generated)), "simple", seed=0) == s  # order of the input is irrelevant
    assert scan_splits(generated, "simple", seed=1)["test"] != s["test"]


def test_length_split(generated: list[tuple[str, str]]) -> None:
    s = scan_splits(generated, "length", val_fraction=0.0)
    assert _sizes(s) == (16_990, 0, 3_920)
    assert max(len(a.split()) for _, a in s["train"]) == 22
    assert min(len(a.split()) for _, a in s["test"]) > 22
    s = scan_splits(generated, "length", seed=3)
    assert len(s["train"]) + len(s["val"]) == 16_990 and len(s["test"]) == 3_920


def test_length_split_equals_official(generated: list[tuple[str, str]], scan_dir: Path) -> None:
    s = scan_splits(generated, "length")
    official = read_scan_split(scan_dir, "length")
    assert set(s["train"]) | set(s["val"]) == set(official["train"])
    assert set(s["test"]) == set(official["test"])


@pytest.mark.parametrize("name", ["add_prim_jump", "add_jump"])
def test_add_jump_split(generated: list[tuple[str, str]], name: str) -> None:
    s = scan_splits(generated, name)
    train = s["train"] + s["val"]
    assert ("jump", "I_JUMP") in s["train"]  # the primitive is never moved to val
    assert train.count(("jump", "I_JUMP")) == 1  # not repeated
    assert all("jump" not in c.split() for c, _ in train if c != "jump")
    assert all("jump" in c.split() and c != "jump" for c, _ in s["test"])
    assert len(train) == 13_204 and len(s["test"]) == 7_706


def test_add_jump_split_equals_official(generated: list[tuple[str, str]], scan_dir: Path) -> None:
    s = scan_splits(generated, "add_jump")
    official = read_scan_split(scan_dir, "add_prim_jump")
    assert len(official["train"]) == 14_670  # the primitive is repeated in the official file...
    assert Counter(official["train"])[("jump", "I_JUMP")] == 1_467
    assert len(set(official["train"])) == 13_204  # ...so 13,203 jump-free commands + "jump"
    assert set(s["train"]) | set(s["val"]) == set(official["train"])
    assert len(official["test"]) == 7_706
    assert set(s["test"]) == set(official["test"])


def test_unknown_split_and_bad_val_fraction(generated: list[tuple[str, str]]) -> None:
    with pytest.raises(ConfigError, match=r"data\.split.*'nope'.*simple, length, add_prim_jump, add_jump"):
        scan_splits(generated, "nope")
    with pytest.raises(ConfigError, match=r"data\.split"):
        read_scan_split(".", "nope")
    with pytest.raises(ConfigError, match="val_fraction"):
        scan_splits(generated, "simple", val_fraction=1.0)
    with pytest.raises(DataError, match="jump"):
        scan_splits([("walk", "I_WALK")], "add_jump")


# ---- reading --------------------------------------------------------------------------------


def test_read_official_simple_test(generated: list[tuple[str, str]], scan_dir: Path) -> None:
    official = read_scan(scan_dir / "simple_split" / "tasks_test_simple.txt")
    assert len(official) == 4_182
    assert set(official) <= set(generated)
    assert set(official) == set(read_scan_split(scan_dir, "simple")["test"])


def test_read_scan_split_missing_file(tmp_path: Path) -> None:
    (tmp_path / "length_split").mkdir()
    (tmp_path / "length_split" / "tasks_train_length.txt").write_text("IN: walk OUT: I_WALK\n")
    with pytest.raises(DataError, match=r"data\.path.*tasks_test_length\.txt"):
        read_scan_split(tmp_path, "length")
    with pytest.raises(DataError, match=r"data\.path.*tasks_train_addprim_jump\.txt"):
        read_scan_split(tmp_path, "add_jump")


BAD_FILE = (
    "IN: walk OUT: I_WALK\n\nIN: run twice OUT: I_RUN I_RUN\nwalk -> I_WALK\nIN: look OUT:\nIN: jump OUT: I_JUMP\n"
)


def test_read_scan_plain_and_blank_lines(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_text("IN: walk  left OUT: I_TURN_LEFT I_WALK  \n\n   \nIN: run OUT: I_RUN")
    assert read_scan(p) == [("walk left", "I_TURN_LEFT I_WALK"), ("run", "I_RUN")]


def test_bad_line_raises_with_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.txt"
    p.write_text(BAD_FILE)
    with pytest.raises(
        DataError, match=re.escape(f"{p}:4: expected 'IN: <command> OUT: <actions>', got 'walk -> I_WALK'")
    ) as e:
        read_scan(p)
    assert e.value.line == 4 and e.value.path == str(p)
    with pytest.raises(DataError, match="does not exist"):
        read_scan(tmp_path / "absent.txt")
    with pytest.raises(ValueError, match="on_error"):
        read_scan(p, on_error="ignore")  # type: ignore[arg-type]


def test_skip_bad_lines_logs_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = tmp_path / "bad.txt"
    p.write_text(BAD_FILE)
    with caplog.at_level(logging.WARNING, logger="nlp_lib.data.scan"):
        got = read_scan(p, on_error="skip")
    assert got == [("walk", "I_WALK"), ("run twice", "I_RUN I_RUN"), ("jump", "I_JUMP")]
    assert "skipped 2 bad line(s), the first at line 4" in caplog.text


def test_read_gzip(tmp_path: Path) -> None:
    text = "IN: jump twice after walk OUT: I_WALK I_JUMP I_JUMP\nIN: walk and run OUT: I_WALK I_RUN\n"
    p = tmp_path / "tasks.txt.gz"
    with gzip.open(p, "wt", encoding="utf-8") as f:
        f.write(text)
    expected = [("jump twice after walk", "I_WALK I_JUMP I_JUMP"), ("walk and run", "I_WALK I_RUN")]
    assert read_scan(p) == expected
    q = tmp_path / "gzipped_without_suffix"
    q.write_bytes(p.read_bytes())
    assert read_scan(q) == expected
    r = tmp_path / "broken.gz"
    r.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="gzip"):
        read_scan(r)
