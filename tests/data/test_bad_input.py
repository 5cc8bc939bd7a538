"""Bad input, for every reader: one test per (reader, kind of bad input), and the real files reading cleanly.

Each reader either raises a DataError naming the file, the line and the problem, or, with
``on_error="skip"``, keeps every valid record and logs one warning with the file, the count and the
first bad lines. Broken files are written by hand in ``tmp_path``.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, SHARED_DATA

from nlp_lib.data.conllu import read_conllu
from nlp_lib.data.listops_files import read_listops
from nlp_lib.data.parallel import read_parallel
from nlp_lib.data.ptb import read_ptb_trees
from nlp_lib.data.scan import read_scan, read_scan_split
from nlp_lib.data.text import read_labelled_text
from nlp_lib.errors import DataError

# ---- one good and one bad line per line-based reader ---------------------------------------------

CONLLU_GOOD = "1\tdogs\tdog\tNOUN\t_\t_\t2\tnsubj\t_\t_\n2\tbark\tbark\tVERB\t_\t_\t0\troot\t_\t_\n"
CONLLU_OTHER = "1\tcats\tcat\tNOUN\t_\t_\t2\tnsubj\t_\t_\n2\tsleep\tsleep\tVERB\t_\t_\t0\troot\t_\t_\n"


@dataclass
class Reader:
    """How to call a reader on one file, what it returns as comparable records, and sample lines."""

    name: str
    suffix: str
    read: Callable[[Path, str], Any]
    records: Callable[[Any], list]
    good: list[str]  # three good lines (records)
    expected: list  # their records
    bad: str  # a malformed line
    problem: str  # the message for it
    logger: str
    utf8_line: bytes  # a line with a non-UTF-8 byte at byte 7 (1-based) of the line
    what: str = "line"  # what one skipped unit is called in the warning

    def write(self, path: Path, lines: list[bytes | str]) -> Path:
        path.write_bytes(b"".join(x if isinstance(x, bytes) else x.encode() for x in lines))
        return path


def _ptb_records(res: Any) -> list:
    return [(t.leaf_words(), t.labels[-1]) for t in res.trees]


def _listops_records(res: Any) -> list:
    return [(t.leaf_words(), y) for t, y in zip(res.trees, res.labels, strict=True)]


READERS = [
    Reader(
        "ptb",
        ".txt",
        lambda p, on_error: read_ptb_trees(p, on_error=on_error),
        _ptb_records,
        ["(3 (2 a) (4 b))\n", "(1 (1 c) (2 d))\n", "(0 e)\n"],
        [(["a", "b"], 3), (["c", "d"], 1), (["e"], 0)],
        "(3 (2 a) (4 b)\n",
        "unbalanced '(': the tree is not closed (column 1)",
        "nlp_lib.data.ptb",
        b"(3 (2 \xffa) (4 b))\n",
    ),
    Reader(
        "listops",
        ".tsv",
        lambda p, on_error: read_listops(p, on_error=on_error),
        _listops_records,
        ["9\t( ( ( [MAX 2 ) 9 ) ] )\n", "3\t( ( ( [MIN 3 ) 5 ) ] )\n", "4\t( ( [SM 4 ) ] )\n"],
        [(["[MAX", "2", "9", "]"], 9), (["[MIN", "3", "5", "]"], 3), (["[SM", "4", "]"], 4)],
        "9 ( ( [MAX 2 ) ] )\n",
        "missing tab: expected '<label>\\t<expression>'",
        "nlp_lib.data.listops_files",
        b"9\t( ( \xff[MAX 2 ) ] )\n",
    ),
    Reader(
        "scan",
        ".txt",
        lambda p, on_error: read_scan(p, on_error=on_error),
        lambda res: res,
        ["IN: walk OUT: I_WALK\n", "IN: run twice OUT: I_RUN I_RUN\n", "IN: jump OUT: I_JUMP\n"],
        [("walk", "I_WALK"), ("run twice", "I_RUN I_RUN"), ("jump", "I_JUMP")],
        "walk -> I_WALK\n",
        "expected 'IN: <command> OUT: <actions>', got 'walk -> I_WALK'",
        "nlp_lib.data.scan",
        b"IN: wa\xfflk OUT: I_WALK\n",
    ),
    Reader(
        "conllu",
        ".conllu",
        lambda p, on_error: read_conllu(p, on_error=on_error),
        lambda res: [d.sentence() for d in res],
        ["# s1\n" + CONLLU_GOOD + "\n", CONLLU_OTHER + "\n", "1\tyes\tyes\tINTJ\t_\t_\t0\troot\t_\t_\n\n"],
        [["dogs", "bark"], ["cats", "sleep"], ["yes"]],
        "1\tbad\t_\t_\t_\t_\t0\troot\t_\n\n",
        "expected 10 tab-separated columns, found 9",
        "nlp_lib.data.conllu",
        b"1\tno\xff\t_\t_\t_\t_\t0\troot\t_\t_\n\n",
        what="sentence",
    ),
    Reader(
        "jsonl",
        ".jsonl",
        lambda p, on_error: read_labelled_text(p, on_error=on_error),
        lambda res: list(zip(*res, strict=True)),
        [
            '{"text": "good film", "label": "pos"}\n',
            '{"text": "bad film", "label": "neg"}\n',
            '{"text": "ok", "label": "pos"}\n',
        ],
        [("good film", "pos"), ("bad film", "neg"), ("ok", "pos")],
        '{"text": "broken, "label": "neg"}\n',
        "not valid JSON (Expecting ',' delimiter: line 1 column 20 (char 19))",
        "nlp_lib.data.text",
        b'{"te\xffxt": "x", "label": "pos"}\n',
    ),
    Reader(
        "csv",
        ".csv",
        lambda p, on_error: read_labelled_text(p, on_error=on_error),
        lambda res: list(zip(*res, strict=True)),
        ["good film,pos\n", '"bad, bad film",neg\n', "ok,pos\n"],
        [("good film", "pos"), ("bad, bad film", "neg"), ("ok", "pos")],
        "bad, bad film,neg\n",
        "3 fields, but the header has 2 (text, label)",
        "nlp_lib.data.text",
        b"good \xfffilm,pos\n",
    ),
]
HEADERS = {"csv": "text,label\n"}  # lines before the records
IDS = [r.name for r in READERS]


def _layout(r: Reader, bad: bytes | str) -> tuple[list, int]:
    """good, BAD, good, good; and the line number of the bad one."""
    head = [HEADERS[r.name]] if r.name in HEADERS else []
    lines = [*head, r.good[0], bad, r.good[1], r.good[2]]
    return lines, len(head) + r.good[0].count("\n") + 1


# ---- a malformed line or tree -------------------------------------------------------------------


@pytest.mark.parametrize("r", READERS, ids=IDS)
def test_malformed_line_raises_naming_file_and_line(r: Reader, tmp_path: Path) -> None:
    lines, at = _layout(r, r.bad)
    p = r.write(tmp_path / f"broken{r.suffix}", lines)
    with pytest.raises(DataError) as e:
        r.read(p, "raise")
    assert str(e.value) == f"{p}:{at}: {r.problem}"
    assert e.value.path == str(p) and e.value.line == at


@pytest.mark.parametrize("r", READERS, ids=IDS)
def test_malformed_line_skipped_keeps_every_valid_record(
    r: Reader, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines, at = _layout(r, r.bad)
    p = r.write(tmp_path / f"broken{r.suffix}", lines)
    with caplog.at_level(logging.WARNING, logger=r.logger):
        got = r.read(p, "skip")
    assert r.records(got) == r.expected
    assert f"{p}: skipped 1 bad {r.what}(s), the first at line {at} (line {at}: {r.problem})" in caplog.text


# ---- non-UTF-8 bytes ----------------------------------------------------------------------------


@pytest.mark.parametrize("r", READERS, ids=IDS)
def test_non_utf8_raises_naming_file_line_and_byte(r: Reader, tmp_path: Path) -> None:
    lines, at = _layout(r, r.utf8_line)
    p = r.write(tmp_path / f"latin{r.suffix}", lines)
    with pytest.raises(DataError) as e:
        r.read(p, "raise")
    offset = r.utf8_line.index(b"\xff") + 1
    assert str(e.value) == f"{p}:{at}: not valid UTF-8 (byte {offset} of the line: b'\\xff')"


@pytest.mark.parametrize("r", READERS, ids=IDS)
def test_non_utf8_line_skipped(r: Reader, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lines, at = _layout(r, r.utf8_line)
    p = r.write(tmp_path / f"latin{r.suffix}", lines)
    with caplog.at_level(logging.WARNING, logger=r.logger):
        got = r.read(p, "skip")
    assert r.records(got) == r.expected
    assert f"{p}: skipped 1 bad {r.what}(s), the first at line {at} (line {at}: not valid UTF-8" in caplog.text


# ---- empty splits -------------------------------------------------------------------------------


@pytest.mark.parametrize("r", READERS, ids=IDS)
def test_empty_file_is_an_error(r: Reader, tmp_path: Path) -> None:
    p = r.write(tmp_path / f"empty{r.suffix}", [HEADERS.get(r.name, ""), "\n"])
    with pytest.raises(DataError, match=r"^.*: no \w+: the file is empty") as e:
        r.read(p, "skip")
    assert str(e.value).startswith(f"{p}: ")


@pytest.mark.parametrize("r", READERS, ids=IDS)
def test_every_line_skipped_is_an_error(r: Reader, tmp_path: Path) -> None:
    head = [HEADERS[r.name]] if r.name in HEADERS else []
    p = r.write(tmp_path / f"allbad{r.suffix}", [*head, r.bad, r.bad])
    with pytest.raises(DataError) as e:
        r.read(p, "skip")
    assert str(e.value).startswith(f"{p}: no ")
    assert f"every one of its 2 {r.what}(s) was bad and skipped (the first, line {len(head) + 1}: {r.problem})" in str(
        e.value
    )


# ---- parallel text ------------------------------------------------------------------------------


def test_parallel_files_of_different_lengths_fail_even_with_skip(tmp_path: Path) -> None:
    (tmp_path / "a.en").write_text("one\ntwo\nthree\n")
    with gzip.open(tmp_path / "a.de.gz", "wt") as f:
        f.write("eins\nzwei\n")
    for on_error in ("raise", "skip"):
        with pytest.raises(DataError) as e:
            read_parallel(tmp_path / "a.en", tmp_path / "a.de.gz", on_error=on_error)
        assert str(e.value) == (
            f"{tmp_path / 'a.en'}:3: this line has no counterpart in {tmp_path / 'a.de.gz'}: "
            f"{tmp_path / 'a.en'} has 3 lines but {tmp_path / 'a.de.gz'} has 2; the files of a split must be line-aligned"
        )


PARALLEL_BAD = [
    ("half_empty", b"", "empty line whose other side is not empty (data.on_error=skip drops such pairs)", "en"),
    ("non_utf8_target", None, "not valid UTF-8 (byte 3 of the line: b'\\xe9')", "de"),
]


@pytest.mark.parametrize(("kind", "src_line", "problem", "side"), PARALLEL_BAD, ids=[k for k, *_ in PARALLEL_BAD])
def test_parallel_bad_pair(
    kind: str, src_line: bytes | None, problem: str, side: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = [b"one", b"two" if src_line is None else src_line, b"three", b"four"]
    tgt = [b"eins", b"zw\xe9i" if kind == "non_utf8_target" else b"zwei", b"drei", b"vier"]
    (tmp_path / "p.en").write_bytes(b"\n".join(src) + b"\n")
    (tmp_path / "p.de").write_bytes(b"\r\n".join(tgt) + b"\r\n")
    with pytest.raises(DataError) as e:
        read_parallel(tmp_path / "p.en", tmp_path / "p.de")
    assert str(e.value) == f"{tmp_path / f'p.{side}'}:2: {problem}"
    with caplog.at_level(logging.WARNING, logger="nlp_lib.data.parallel"):
        pairs = read_parallel(tmp_path / "p.en", tmp_path / "p.de", on_error="skip")
    assert pairs == [("one", "eins"), ("three", "drei"), ("four", "vier")]
    assert f"skipped 1 bad pair(s), the first at line 2 (line 2: p.{side}: {problem})" in caplog.text


def test_parallel_empty_and_all_skipped(tmp_path: Path) -> None:
    (tmp_path / "e.en").write_text("")
    (tmp_path / "e.de").write_text("")
    with pytest.raises(DataError, match="no sentence pairs .*: the file is empty"):
        read_parallel(tmp_path / "e.en", tmp_path / "e.de", on_error="skip")
    (tmp_path / "h.en").write_text("a\n\n")
    (tmp_path / "h.de").write_text("\nb\n")
    with pytest.raises(DataError, match=r"every one of its 2 pair\(s\) was bad and skipped \(the first, line 1: h.de"):
        read_parallel(tmp_path / "h.en", tmp_path / "h.de", on_error="skip")


# ---- labelled text: missing columns, records, unseen labels -------------------------------------


def _write_table(path: Path, rows: list[dict]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif path.suffix in (".csv", ".tsv"):
        sep = "\t" if path.suffix == ".tsv" else ","
        keys = list(rows[0])
        path.write_text(sep.join(keys) + "\n" + "".join(sep.join(str(r[k]) for k in keys) + "\n" for r in rows))
    else:
        import datasets

        datasets.Dataset.from_list(rows).to_parquet(str(path))
    return path


ROWS = [{"review": "good film", "stars": "pos"}, {"review": "bad film", "stars": "neg"}]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".tsv", ".parquet"])
def test_text_missing_column_lists_the_files_columns(suffix: str, tmp_path: Path) -> None:
    p = _write_table(tmp_path / f"t{suffix}", ROWS)
    with pytest.raises(DataError) as e:
        read_labelled_text(p, text_column="review", label_column="label")
    assert str(e.value) == f"{p}: no column 'label' (label_column); the file's columns: review, stars"
    with pytest.raises(DataError) as e:
        read_labelled_text(p, text_column="text", label_column="stars")
    assert str(e.value) == f"{p}: no column 'text' (text_column); the file's columns: review, stars"


def _raises_then_skips(p: Path, error: str, kept: list, lines: list[int], caplog: pytest.LogCaptureFixture) -> str:
    """``p`` raises ``error`` by default; with ``on_error=skip`` it keeps ``kept`` (from ``lines``). The log."""
    with pytest.raises(DataError) as e:
        read_labelled_text(p)
    assert str(e.value) == error
    with caplog.at_level(logging.WARNING, logger="nlp_lib.data.text"):
        got = read_labelled_text(p, on_error="skip")
    assert list(got) == kept and got.lines == lines
    return caplog.text


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_a_row_with_too_few_fields_is_a_malformed_line(suffix: str, tmp_path: Path, caplog) -> None:
    sep = "\t" if suffix == ".tsv" else ","
    p = tmp_path / f"t{suffix}"
    p.write_text(f"text{sep}label\ngood film{sep}pos\njust some words\nbad film{sep}neg\n")
    problem = "1 field, but the header has 2 (text, label)"
    log = _raises_then_skips(p, f"{p}:3: {problem}", [["good film", "bad film"], ["pos", "neg"]], [2, 4], caplog)
    assert f"{p}: skipped 1 bad" in log and problem in log


def test_parquet_bad_records_are_named_by_number(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = [{"text": "good", "label": "pos"}, {"text": "", "label": "neg"}, {"text": "fine", "label": "pos"}]
    p = _write_table(tmp_path / "t.parquet", rows)
    error = f"{p}: record 2: empty or missing 'text'"
    log = _raises_then_skips(p, error, [["good", "fine"], ["pos", "pos"]], [1, 3], caplog)
    assert f"{p}: skipped 1 bad record(s), the first at record 2 (record 2: empty or missing 'text')" in log
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="junk.parquet: cannot read it as parquet"):
        read_labelled_text(tmp_path / "junk.parquet")


def _text_module(tmp_path: Path, val_rows: list[dict], on_error: str) -> Any:
    from nlp_lib.data.text_datamodule import TextDataModule

    train = [
        {"text": f"{w} film number {i}", "label": y} for i in range(10) for w, y in (("good", "pos"), ("bad", "neg"))
    ]
    _write_table(tmp_path / "train.jsonl", train)
    _write_table(tmp_path / "val.jsonl", val_rows)
    return TextDataModule(
        train_path=str(tmp_path / "train.jsonl"), val_path=str(tmp_path / "val.jsonl"), vocab_size=30, on_error=on_error
    )


def test_text_label_unseen_in_training(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    val = [{"text": "good film", "label": "pos"}, {"text": "meh film", "label": "meh"}, {"text": "bad", "label": "neg"}]
    dm = _text_module(tmp_path, val, "raise")
    with pytest.raises(DataError) as e:
        dm.prepare()
    assert str(e.value) == (
        f"{tmp_path / 'val.jsonl'}:2: label 'meh' never occurs in training (training labels: 'neg', 'pos') (the val split)"
    )
    dm = _text_module(tmp_path, val, "skip")
    with caplog.at_level(logging.WARNING, logger="nlp_lib.data.text_datamodule"):
        dm.prepare()
    assert [y for _, y in dm.splits["val"]] == [dm.label_names.index("pos"), dm.label_names.index("neg")]
    assert (
        f"the val split: skipped 1 record(s) whose label never occurs in training, the first at line {tmp_path / 'val.jsonl'}:2"
        in caplog.text
    )


# ---- tree data: labels training never saw -------------------------------------------------------


def test_ptb_label_unseen_in_training(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    train = read_ptb_trees(READERS[0].write(tmp_path / "train.txt", READERS[0].good))
    assert train.labels() == {0, 1, 2, 3, 4}
    dev = READERS[0].write(tmp_path / "dev.txt", ["(3 (2 a) (4 b))\n", "\n", "(1 (7 c) (2 d))\n", "(0 e)\n"])
    with pytest.raises(DataError) as e:
        read_ptb_trees(dev, known_labels=train.labels())
    assert str(e.value) == f"{dev}:3: label 7 never occurs in training (training labels: 0, 1, 2, 3, 4)"
    with caplog.at_level(logging.WARNING, logger="nlp_lib.data.ptb"):
        res = read_ptb_trees(dev, known_labels=train.labels(), on_error="skip")
    assert _ptb_records(res) == [(["a", "b"], 3), (["e"], 0)] and res.lines == [1, 4]
    assert f"{dev}: skipped 1 bad line(s), the first at line 3 (line 3: label 7 never occurs" in caplog.text


def test_listops_label_unseen_in_training(tmp_path: Path) -> None:
    r = READERS[1]
    p = r.write(tmp_path / "val.tsv", r.good)
    with pytest.raises(DataError) as e:
        read_listops(p, known_labels={3, 9})
    assert str(e.value) == f"{p}:3: label 4 never occurs in training (training labels: 3, 9)"
    assert _listops_records(read_listops(p, known_labels={3, 9}, on_error="skip")) == r.expected[:2]


# ---- data.on_error in the configs reaches the reader --------------------------------------------


def _instantiate(name: str, **overrides: Any) -> Any:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(REPO / "conf" / "data" / f"{name}.yaml")
    assert "on_error" in cfg, f"conf/data/{name}.yaml has no on_error key"
    for key, value in overrides.items():
        cfg[key] = value
    if "cache" in cfg:
        cfg.cache = False
    return instantiate(cfg)


def test_on_error_skip_in_tree_configs_reaches_the_reader(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ptb, listops = READERS[0], READERS[1]
    ptb.write(tmp_path / "train.txt", _layout(ptb, ptb.bad)[0])
    ptb.write(tmp_path / "dev.txt", ptb.good)
    listops.write(tmp_path / "train.tsv", _layout(listops, listops.bad)[0])
    listops.write(tmp_path / "val.tsv", listops.good)
    for name in ("sst", "sst_sentences", "listops"):
        for on_error in ("raise", "skip"):
            dm = _instantiate(name, path=str(tmp_path), on_error=on_error)
            if on_error == "raise":
                with pytest.raises(DataError, match=r"train\.(txt|tsv):2: "):
                    dm.prepare()
                continue
            caplog.clear()
            with caplog.at_level(logging.WARNING):
                dm.prepare()
            assert len(dm.splits["train"]) == 3, name
            assert "skipped 1 bad line(s), the first at line 2" in caplog.text, name


def test_on_error_skip_in_parallel_and_text_configs_reaches_the_reader(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "train.en").write_text("a b\n\ne f\ng h\n")
    (tmp_path / "train.de").write_text("A B\nC D\nE F\nG H\n")
    (tmp_path / "val.en").write_text("a\n")
    (tmp_path / "val.de").write_text("A\n")
    from hydra.errors import InstantiationException

    # parallel_data may read when built (then Hydra wraps the DataError) or when prepared
    with pytest.raises((DataError, InstantiationException), match=r"train\.en:2: empty line"):
        _instantiate("parallel", path=str(tmp_path), source="en", target="de", tokenizer="word").prepare()
    with caplog.at_level(logging.WARNING):
        dm = _instantiate("parallel", path=str(tmp_path), source="en", target="de", tokenizer="word", on_error="skip")
        dm.prepare()
    assert len(dm.splits["train"]) == 3 and "skipped 1 bad pair(s)" in caplog.text
    rows = [json.dumps({"text": f"{w} film {i}", "label": w}) + "\n" for i in range(10) for w in ("good", "bad")]
    (tmp_path / "t.jsonl").write_text("".join(rows[:3]) + "{oops\n" + "".join(rows[3:]))
    with pytest.raises(DataError, match=r"t\.jsonl:4: not valid JSON"):
        _instantiate("text", train_path=str(tmp_path / "t.jsonl"), vocab_size=30).prepare()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        dm = _instantiate("text", train_path=str(tmp_path / "t.jsonl"), vocab_size=30, on_error="skip")
        dm.prepare()
    assert len(dm.splits["train"]) + len(dm.splits["val"]) == 20 and "skipped 1 bad line(s)" in caplog.text


# ---- the real files read cleanly ----------------------------------------------------------------


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found (the shared data folder is absent)")
    return path


def test_real_sst_trees_read_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    trees = _need(SHARED_DATA / "sst" / "trees")
    with caplog.at_level(logging.WARNING):
        train = read_ptb_trees(trees / "train.txt", on_error="skip")
        dev = read_ptb_trees(trees / "dev.txt", known_labels=train.labels())
    assert (len(train.trees), len(dev.trees)) == (8544, 1101) and train.skipped == [] and not caplog.records
    assert train.labels() == {0, 1, 2, 3, 4} and train.lines[:3] == [1, 2, 3]


def test_real_multi30k_tokenised_reads_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    tok = _need(SHARED_DATA / "multi30k" / "tok")
    with caplog.at_level(logging.WARNING):
        pairs = read_parallel(tok / "val.lc.norm.tok.en", tok / "val.lc.norm.tok.de", on_error="skip")
    assert len(pairs) == 1014 and not caplog.records


def test_real_scan_split_reads_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    scan = _need(SHARED_DATA / "scan" / "length_split")
    with caplog.at_level(logging.WARNING):
        files = read_scan_split(scan.parent, "length", on_error="skip")
    assert (len(files["train"]), len(files["test"])) == (16_990, 3_920) and not caplog.records


def test_real_conllu_reads_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    files = sorted(SHARED_DATA.glob("**/*.conllu")) if SHARED_DATA.is_dir() else []
    if not files:
        pytest.skip(f"no CoNLL-U file under {SHARED_DATA}")
    with caplog.at_level(logging.WARNING):
        for f in files:
            assert read_conllu(f, on_error="skip")
    assert not caplog.records


# ---- a path that is a directory -----------------------------------------------------------------


@pytest.mark.parametrize("r", READERS, ids=IDS)
def test_a_directory_is_named_as_one(r: Reader, tmp_path: Path) -> None:
    d = tmp_path / f"split{r.suffix}"
    d.mkdir()
    with pytest.raises(DataError) as e:
        r.read(d, "skip")
    assert str(e.value) == f"{d}: is a directory, not a file"


def test_a_parallel_file_that_is_a_directory_is_named_as_one(tmp_path: Path) -> None:
    from nlp_lib.data.builders import parallel_data
    from nlp_lib.errors import ConfigError

    (tmp_path / "train.en").write_text("a\n")
    (tmp_path / "train.de").mkdir()
    with pytest.raises(ConfigError) as e:
        parallel_data(path=str(tmp_path), source="en", target="de", val=None)
    assert (
        str(e.value)
        == f"data.train: {tmp_path / 'train.de'} is a directory; the train split's de side must be a text file"
    )
    with pytest.raises(DataError, match=r"train\.de: is a directory, not a file$"):
        read_parallel(tmp_path / "train.en", tmp_path / "train.de")


# ---- PTB labels: class ids in a declared (or sane) range ----------------------------------------

PTB_LABELS = [
    ("(3 (-2 a) (2 b))", "label -2 is negative: labels are class ids 0, 1, 2, ... (column 4)"),
    ("(-3 (2 a) (2 b))", "label -3 is negative: labels are class ids 0, 1, 2, ... (column 1)"),
    ("(3 (-1 a) (2 b))", "label -1 is negative: labels are class ids 0, 1, 2, ... (column 4)"),
    ("(+3 (2 a) (2 b))", "label '+3' is not written as a class id (the digits 0-9 only) (column 1)"),
    (
        "(99999999999 (2 a) (2 b))",
        "label 99999999999 is larger than 999: with no declared number of classes, labels are class ids "
        "0..999; set data.num_classes to the number of classes to allow larger ones",
    ),
]


@pytest.mark.parametrize(
    ("tree", "problem"), PTB_LABELS, ids=["negative", "negative_root", "minus_one", "plus", "huge"]
)
def test_ptb_label_out_of_range_is_a_bad_line(
    tree: str, problem: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r = READERS[0]
    p = r.write(tmp_path / "train.txt", _layout(r, tree + "\n")[0])
    with pytest.raises(DataError) as e:
        read_ptb_trees(p)
    assert str(e.value) == f"{p}:2: {problem}"
    with caplog.at_level(logging.WARNING, logger="nlp_lib.data.ptb"):
        assert _ptb_records(read_ptb_trees(p, on_error="skip")) == r.expected
    assert f"{p}: skipped 1 bad line(s), the first at line 2 (line 2: {problem})" in caplog.text


def test_ptb_labels_beyond_the_declared_classes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    r = READERS[0]
    p = r.write(tmp_path / "train.txt", r.good)  # labels up to 4
    with pytest.raises(DataError) as e:
        read_ptb_trees(p, num_classes=4)
    assert str(e.value) == f"{p}:1: label 4 is outside the 4 classes 0..3 (data.num_classes=4)"
    assert len(read_ptb_trees(p, num_classes=4, on_error="skip").trees) == 2
    big = r.write(tmp_path / "big.txt", ["(1500 (2 a) (1499 b))\n"])
    assert read_ptb_trees(big, num_classes=1501).labels() == {2, 1499, 1500}  # declared: no cap


def test_ptb_label_range_through_the_data_module(tmp_path: Path) -> None:
    from nlp_lib.data.builders import ptb_tree_data

    r = READERS[0]
    r.write(tmp_path / "train.txt", _layout(r, "(99999999999 (2 a) (2 b))\n")[0])
    r.write(tmp_path / "dev.txt", ["(3 (2 a) (4 b))\n", "(7 (2 a) (4 b))\n"])
    with pytest.raises(DataError, match=rf"^{tmp_path / 'train.txt'}:2: label 99999999999 is larger than 999: .*"):
        ptb_tree_data(path=str(tmp_path), cache=False).prepare()
    r.write(tmp_path / "train.txt", r.good)
    with pytest.raises(DataError) as e:
        ptb_tree_data(path=str(tmp_path), cache=False, num_classes=5).prepare()
    assert str(e.value) == f"{tmp_path / 'dev.txt'}:2: label 7 is outside the 5 classes 0..4 (data.num_classes=5)"
    with pytest.raises(DataError) as e:
        ptb_tree_data(path=str(tmp_path), cache=False, binary=True).prepare()
    assert str(e.value) == (
        f"{tmp_path / 'dev.txt'}:2: label 7 is outside the 5 classes 0..4 "
        "(data.binary=true reads SST's fine-grained labels 0..4)"
    )
    dm = ptb_tree_data(path=str(tmp_path), cache=False, num_classes=5, on_error="skip")
    dm.prepare()
    assert dm.num_classes == 5 and len(dm.splits["val"]) == 1


def test_tree_data_module_refuses_labels_out_of_range_from_a_custom_loader() -> None:
    from nlp_lib.data.tree_datamodule import TreeDataModule
    from nlp_lib.structure.tree import Tree

    def load(*labels: tuple[int, ...]) -> Callable[[], dict]:
        trees = [Tree(parent=[2, 2, -1], words=["a", "b", ""], labels=y) for y in labels]
        return lambda: {"train": trees, "val": trees}

    with pytest.raises(DataError, match=r"^the training labels go up to 99999999999: .*set data.num_classes"):
        TreeDataModule(load=load((1, 0, 99999999999)), cache=False).prepare()
    with pytest.raises(DataError, match=r"^split 'train', tree 1: label -2 is negative \(-1: no label\)$"):
        TreeDataModule(load=load((-2, 0, 1)), cache=False).prepare()
    with pytest.raises(DataError) as e:
        TreeDataModule(load=load((1, 0, 1), (3, 0, 2)), num_classes=3, cache=False).prepare()
    assert str(e.value) == "split 'train', tree 2: label 3 is outside the 3 classes 0..2 (data.num_classes=3)"
    with pytest.raises(DataError) as e:  # roots take only the first classes (SST-2 with neutral phrases)
        TreeDataModule(load=load((2, 0, 1), (0, 2, 2)), num_classes=3, root_classes=2, cache=False).prepare()
    assert str(e.value) == (
        "split 'train', tree 2: the root's label 2 is not one of the first 2 classes a root may take "
        "(data.root_classes=2)"
    )
    with pytest.raises(DataError, match=r"^data.root_classes=4 must be between 1 and the 3 classes"):
        TreeDataModule(load=load((2, 0, 1)), num_classes=3, root_classes=4, cache=False).prepare()


def test_binary_sst_labels_neutral_phrases_and_predicts_roots_among_two(tmp_path: Path) -> None:
    from nlp_lib.data.builders import ptb_sentence_data, ptb_tree_data

    r = READERS[0]
    r.write(tmp_path / "train.txt", ["(4 (2 a) (3 b))\n", "(2 (2 a) (2 b))\n", "(0 (1 a) (2 b))\n"])
    r.write(tmp_path / "dev.txt", ["(3 (2 a) (4 b))\n"])
    dm = ptb_tree_data(path=str(tmp_path), cache=False, binary=True, neutral_phrases=True)  # conf/data/sst.yaml's
    dm.prepare()
    assert (dm.num_classes, dm.root_classes, len(dm.splits["train"])) == (3, 2, 2)  # the neutral sentence dropped
    assert [list(map(int, dm.splits["train"][i].labels)) for i in range(2)] == [[2, 1, 1], [0, 2, 0]]
    assert dm.label_names == ["negative", "positive", "neutral"]
    # a run saved before the option (its config has no neutral_phrases) reads its data as it was trained
    off = ptb_tree_data(path=str(tmp_path), cache=False, binary=True)
    off.prepare()
    assert (off.num_classes, off.root_classes, off.label_names) == (2, None, ["negative", "positive"])
    assert list(map(int, off.splits["train"][0].labels)) == [-1, 1, 1]
    with pytest.raises(DataError) as e:
        ptb_tree_data(path=str(tmp_path), cache=False, binary=True, neutral_phrases=True, num_classes=2)
    assert str(e.value) == (
        "data.binary=true needs data.num_classes=3 (negative, positive and, for phrases, neutral; "
        "data.neutral_phrases=false for 2), got 2"
    )
    with pytest.raises(DataError, match=r"^data.root_classes: sentence data has root labels only"):
        ptb_sentence_data(path=str(tmp_path), cache=False, binary=True, root_classes=2)
    # evaluation with a model's named labels: the data's must name the same classes
    cases = [(dm.label_names, True), (["0", "1", "2"], True), (["neg", "pos", "neu"], False), (list("01234"), False)]
    for model_labels, ok in cases:  # a model labelled by ids: as many classes as the data names
        other = ptb_tree_data(path=str(tmp_path), cache=False, binary=True, neutral_phrases=True)
        other.vocab = dm.vocab  # as nlp-lib eval does
        other.evaluate_only("val", model_labels)
        if ok:
            other.prepare()
            assert len(other.splits["val"]) == 1
        else:
            with pytest.raises(DataError) as e:
                other.prepare()
            assert str(e.value) == (
                f"the data's labels ['negative', 'positive', 'neutral'] are not the model's {model_labels}"
            )
    # a prepared split whose root is labelled with a phrase-only class (a hostile cache entry) is refused
    loose = ptb_tree_data(path=str(tmp_path), cache=False, num_classes=5)
    loose.prepare()
    loose.root_classes = 2
    with pytest.raises(ValueError, match=r"^the train split: a root's label is outside 0..1$"):
        loose.check_piece("train", loose.splits["train"])


# ---- JSONL: one object a line, unique keys, scalar values ---------------------------------------

JSONL_BAD = [
    (
        '{"text": "meh", "label": "pos", "label": "neg"}',
        "the key 'label' appears twice in one object: which value is meant is ambiguous",
    ),
    ('{"text": "meh", "label": {"x": 1}}', """'label' must be a string or an integer, found an object ({"x": 1})"""),
    ('{"text": "meh", "label": ["pos"]}', """'label' must be a string or an integer, found a list (["pos"])"""),
    (
        '{"text": "meh", "label": 0.5}',
        """'label' is the number 0.5, which is no class id: a label is a string or an integer """
        """(write "0.5" to use it as a class name)""",
    ),
    ('{"text": "meh", "label": NaN}', "empty or missing 'label' (NaN)"),
    ('{"text": "meh", "label": ""}', "empty or missing 'label'"),
    ('{"text": 42, "label": "pos"}', "'text' must be a string, found a number (42)"),
    ('{"text": ["a", "b"], "label": "pos"}', """'text' must be a string, found a list (["a", "b"])"""),
    ("[[[[" * 300 + "]]]]" * 300, "not valid JSON (nested too deeply)"),
]


@pytest.mark.parametrize(
    ("line", "problem"),
    JSONL_BAD,
    ids=[
        "duplicate_key",
        "dict_label",
        "list_label",
        "fraction",
        "nan",
        "empty_label",
        "int_text",
        "list_text",
        "deep",
    ],
)
def test_jsonl_bad_value_is_named_by_line_and_skipped(
    line: str, problem: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r = READERS[4]
    p = r.write(tmp_path / "t.jsonl", _layout(r, line + "\n")[0])
    log = _raises_then_skips(
        p, f"{p}:2: {problem}", [list(x) for x in zip(*r.expected, strict=True)], [1, 3, 4], caplog
    )
    assert f"{p}: skipped 1 bad line(s), the first at line 2 (line 2: {problem})" in log


def test_jsonl_scalar_labels_are_read_deliberately(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    rows = [("a", True), ("b", False), ("c", 1.0), ("d", 1), ("e", "1"), ("f", 2**70), ("g", -3)]
    p.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    got = read_labelled_text(p)
    assert got.labels == ["true", "false", 1, 1, "1", 2**70, -3]  # 1.0 and 1 are one class; a bool is its JSON name
    assert got.lines == list(range(1, 8))


def test_jsonl_first_bad_line_in_file_order(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    p.write_text('{"label": "pos"}\n{oops\n{"text": "good", "label": "pos"}\n')
    with pytest.raises(DataError) as e:
        read_labelled_text(p)
    assert str(e.value) == f"{p}:1: empty or missing 'text'"  # not line 2, though its JSON is checked first


def test_jsonl_byte_order_mark_is_not_part_of_the_first_record(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    p.write_bytes(b'\xef\xbb\xbf{"text": "good", "label": "pos"}\n{"text": "bad", "label": "neg"}\n')
    assert list(read_labelled_text(p)) == [["good", "bad"], ["pos", "neg"]]


# ---- CSV / TSV: records as the csv module reads them, quotes left open named ---------------------


def test_csv_unclosed_quote_is_named_where_it_opens_and_swallows_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = tmp_path / "t.csv"
    p.write_text('text,label\ngood film,pos\n"bad film,neg\nok,pos\nfine,neg\nnice,pos\n')
    problem = "the quoted field opened on line 3 (column 1) is never closed: its '\"' runs to the end of the file"
    kept = [["good film", "ok", "fine", "nice"], ["pos", "pos", "neg", "pos"]]
    log = _raises_then_skips(p, f"{p}:3: {problem}", kept, [2, 4, 5, 6], caplog)
    assert f"{p}: skipped 1 bad line(s), the first at line 3 (line 3: {problem})" in log


def test_csv_quote_closed_lines_later_counts_every_line_lost(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = tmp_path / "t.tsv"
    p.write_text('text\tlabel\ngood film\tpos\n"bad film\tneg\nok\tpos\nfine"\tneg\tx\nnice\tpos\n')
    problem = (
        "3 fields, but the header has 2 (text, label); the record runs over lines 3-5: the quoted field opened "
        "on line 3 (column 1) holds line breaks (a '\"' left open?)"
    )
    log = _raises_then_skips(p, f"{p}:3: {problem}", [["good film", "nice"], ["pos", "pos"]], [2, 6], caplog)
    assert f"{p}: skipped 1 bad record(s) (3 lines), the first at line 3 (line 3: {problem})" in log
    got = read_labelled_text(p, on_error="skip")
    assert got.skipped == [(3, problem)] and got.lines_skipped == 3


def test_csv_header_with_an_unclosed_quote(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text('text,"label\ngood,pos\nbad,neg\n')
    with pytest.raises(DataError) as e:
        read_labelled_text(p, on_error="skip")
    assert str(e.value) == (
        f"{p}:1: the header: the quoted field opened on line 1 (column 6) is never closed: "
        "its '\"' runs to the end of the file"
    )


def test_csv_fields_are_strings_as_written(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("text,label\nNA,pos\nnull,neg\n5,1.0\nNone,007\n")  # pandas read these as missing or numbers
    assert list(read_labelled_text(p)) == [["NA", "null", "5", "None"], ["pos", "neg", "1.0", "007"]]
    p.write_text("text,label\ngood,99999999999999999999999\nbad,1\n")  # too big for an Arrow column
    assert read_labelled_text(p).labels == ["99999999999999999999999", "1"]


def test_csv_carriage_return_in_an_unquoted_field_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = tmp_path / "t.csv"
    p.write_bytes(b'text,label\ngood,pos\nba\rd,neg\n"fi\rne",pos\n')
    problem = "a carriage return (\\r) inside an unquoted field (quote the field, or end lines with \\n)"
    _raises_then_skips(p, f"{p}:3: {problem}", [["good", "fi\rne"], ["pos", "pos"]], [2, 4], caplog)


def test_csv_byte_order_mark_and_a_column_named_twice(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_bytes(b"\xef\xbb\xbftext,label\ngood,pos\nbad,neg\n")
    assert list(read_labelled_text(p)) == [["good", "bad"], ["pos", "neg"]]
    p.write_text("text,label,label\ngood,pos,neg\n")
    with pytest.raises(DataError) as e:
        read_labelled_text(p)
    assert str(e.value) == f"{p}:1: the header names the column 'label' twice (fields 2 and 3): which is meant?"


def test_text_data_module_labels_from_a_dict_never_become_classes(tmp_path: Path) -> None:
    from nlp_lib.data.text_datamodule import TextDataModule

    rows = [json.dumps({"text": f"film {i}", "label": y}) + "\n" for i in range(10) for y in ("pos", "neg")]
    (tmp_path / "t.jsonl").write_text("".join(rows) + '{"text": "odd", "label": {"x": 1}}\n')
    (tmp_path / "v.jsonl").write_text("".join(rows[:4]))
    dm = TextDataModule(
        train_path=str(tmp_path / "t.jsonl"),
        val_path=str(tmp_path / "v.jsonl"),
        vocab_size=30,
        cache=False,
        on_error="skip",
    )
    dm.prepare()
    assert dm.label_names == ["neg", "pos"] and len(dm.splits["train"]) == 20


# ---- SCAN: a long line is read in linear time ---------------------------------------------------


def test_scan_long_run_of_spaces_is_read_in_linear_time(tmp_path: Path) -> None:
    import signal

    p = tmp_path / "t.txt"
    p.write_text("IN: walk" + " " * 300_000 + "x\nIN: walk OUT: I_WALK\n")  # the old regular expression: minutes

    def too_slow(signum: int, frame: Any) -> None:
        raise TimeoutError("reading one line of 300,000 spaces took over 10 s")

    old = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(10)
    try:
        with pytest.raises(DataError, match=r"t\.txt:1: expected 'IN: <command> OUT: <actions>'"):
            read_scan(p)
        assert read_scan(p, on_error="skip") == [("walk", "I_WALK")]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_conllu_skipped_sentence_counts_its_lines(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = tmp_path / "t.conllu"
    bad = "# sent_id = 2\n1\tcats\tcat\tNOUN\t_\t_\t2\tnsubj\t_\n2\tsleep\tsleep\tVERB\t_\t_\t0\troot\t_\t_\n\n"
    p.write_text(CONLLU_GOOD + "\n" + bad + CONLLU_OTHER)
    with caplog.at_level(logging.WARNING, logger="nlp_lib.data.conllu"):
        assert [d.sentence() for d in read_conllu(p, on_error="skip")] == [["dogs", "bark"], ["cats", "sleep"]]
    assert f"{p}: skipped 1 bad sentence(s) (3 lines), the first at line 5 (line 5: expected 10" in caplog.text
