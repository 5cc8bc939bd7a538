"""Property tests for every file reader: whatever the bytes, records or a DataError naming the file.

For each reader (PTB trees, CoNLL-U, JSONL, CSV, TSV, parallel text, SCAN, ListOps), several kinds
of input: arbitrary bytes; arbitrary text over the characters that matter to the format; a valid
file mutated (bytes flipped, deleted, duplicated; brackets, quotes, tabs, newlines, NUL, a BOM, gzip
magic and other bytes inserted; truncated); and for JSONL and PTB, records built from any values
(JSON objects of any types with keys repeated or missing; trees with any integer labels). Each is
read with ``on_error="raise"`` and with ``"skip"``:

* either call returns records or raises a :class:`DataError` whose message names the file and a
  line the file has (only errors about the whole file, such as "no records", name no line); never
  another exception, never a hang;
* every record returned is one the format allows (a PTB label is a class id 0..999, a text label a
  non-blank string or an integer, a ListOps label 0-9...);
* ``skip`` agrees with ``raise``: a file that reads cleanly reads the same with no warning; the
  first line a ``raise`` stops at is the first line ``skip`` reports; and, for the readers of one
  record a line, every line is a record, blank, or counted in the warning.

Plus round trips for the labelled-text readers: any texts and labels, written by ``json`` or
``csv``, read back exactly. The ``ci`` profile (the default) is derandomized and small (the whole
file runs in seconds); ``HYPOTHESIS_PROFILE=explore`` draws fresh examples, many more of them.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import re
import signal
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlp_lib.data.bad_input import MAX_INFERRED_CLASSES
from nlp_lib.data.conllu import read_conllu
from nlp_lib.data.listops_files import read_listops
from nlp_lib.data.parallel import read_parallel
from nlp_lib.data.ptb import read_ptb_trees
from nlp_lib.data.scan import read_scan
from nlp_lib.data.text import read_labelled_text
from nlp_lib.errors import DataError

settings.register_profile("ci", max_examples=150, deadline=None, derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", max_examples=2000, deadline=None, database=None, print_blob=True)
PROFILE = settings(
    settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HANG_SECONDS = 20  # one example (two reads of a file of a few hundred bytes) takes milliseconds


# ---- the readers --------------------------------------------------------------------------------


@dataclass
class Reader:
    """A reader, one valid file for it, and the characters its format is made of."""

    name: str
    suffix: str
    valid: bytes
    read: Callable[[Path, str], Any]  # (file, on_error) -> the records, as comparable values
    alphabet: str  # characters random text is drawn from
    sane: Callable[[Any], bool]  # what every record read must be

    def __repr__(self) -> str:
        return self.name


def _sane_text(rec: tuple[Any, Any]) -> bool:
    """A text is a string that is not blank; a label a string that is not blank, or an integer."""
    text, label = rec
    label_ok = isinstance(label, str) and label.strip() != "" or type(label) is int
    return isinstance(text, str) and text.strip() != "" and label_ok


CONLLU = (
    "# sent_id = 1\n# text = dogs bark\n"
    "1\tdogs\tdog\tNOUN\t_\t_\t2\tnsubj\t_\t_\n2\tbark\tbark\tVERB\t_\t_\t0\troot\t_\t_\n\n"
    "1-2\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n1\tdo\tdo\tAUX\t_\t_\t3\taux\t_\t_\n"
    "2\tn't\tnot\tPART\t_\t_\t3\tadvmod\t_\t_\n3\tgo\tgo\tVERB\t_\t_\t0\troot\t_\t_\n\n"
    "1\tyes\tyes\tINTJ\t_\t_\t0\troot\t_\t_\n"
)


def _parallel(p: Path, on_error: str) -> Any:
    return read_parallel(p, p.with_suffix(".de"), on_error=on_error)


READERS = [
    Reader(
        "ptb",
        ".txt",
        b"(3 (2 It) (4 (3 is) (4 good)))\n(1 (1 bad) (2 8 1\\/2))\n\n(0 e)\n",
        lambda p, on_error: [(t.parent, t.words, t.labels) for t in read_ptb_trees(p, on_error=on_error).trees],
        "() 0123-9a\t\n",
        lambda rec: all(0 <= y < MAX_INFERRED_CLASSES for y in rec[2]),  # class ids: none negative (-1: no label)
    ),
    Reader(
        "conllu",
        ".conllu",
        CONLLU.encode(),
        lambda p, on_error: [(d.tree.parent, d.tree.words, d.comments) for d in read_conllu(p, on_error=on_error)],
        "\t\n_#=-. 0123ab",
        lambda rec: len(rec[0]) == len(rec[1]) > 0,
    ),
    Reader(
        "jsonl",
        ".jsonl",
        b'{"text": "good film", "label": "pos"}\n{"text": "bad, \\"bad\\" film", "label": 0}\n\n'
        b'{"label": "pos", "text": "ok", "id": [1, {"a": null}]}\n',
        lambda p, on_error: list(zip(*read_labelled_text(p, on_error=on_error), strict=True)),
        '{}[]:," \\textlabe0123.-\n',
        _sane_text,
    ),
    Reader(
        "csv",
        ".csv",
        b'text,label\ngood film,pos\n"bad, ""bad"" film",neg\n"two\nlines",0\n\nok,pos\n',
        lambda p, on_error: list(zip(*read_labelled_text(p, on_error=on_error), strict=True)),
        '",\ntextlabe 01\r\t',
        _sane_text,
    ),
    Reader(
        "tsv",
        ".tsv",
        b'text\tlabel\ngood film\tpos\n"bad\t""bad"" film"\tneg\nok,fine\t1\n',
        lambda p, on_error: list(zip(*read_labelled_text(p, on_error=on_error), strict=True)),
        '"\t\ntextlabe 01,\r',
        _sane_text,
    ),
    Reader(
        "parallel",
        ".en",
        b"a small dog\nthe cat\r\n\nsits\n",
        lambda p, on_error: _parallel(p, on_error),
        "ab \n\r\t",
        lambda rec: all(side.strip() for side in rec),
    ),
    Reader(
        "scan",
        ".txt",
        b"IN: walk OUT: I_WALK\nIN: run twice OUT: I_RUN I_RUN\n\nIN: jump after walk OUT: I_WALK I_JUMP\n",
        lambda p, on_error: read_scan(p, on_error=on_error),
        "IN: OUT walk I_W\n\t",
        lambda rec: all(side.strip() and "OUT:" not in side.split() for side in rec),
    ),
    Reader(
        "listops",
        ".tsv",
        b"9\t( ( ( [MAX 2 ) 9 ) ] )\n3\t( ( ( [MIN 3 ) 5 ) ] )\n\n4\t( ( [SM 4 ) ] )\n",
        lambda p, on_error: [(t.parent, t.words, y) for t, y in zip(*_listops(p, on_error), strict=True)],
        "()[] MAXSI0129\t\n",
        lambda rec: 0 <= rec[2] <= 9,
    ),
]
PARALLEL_TARGET = b"ein kleiner Hund\ndie Katze\n\nsitzt\n"


def _listops(p: Path, on_error: str) -> tuple[list, list]:
    data = read_listops(p, on_error=on_error)
    return data.trees, data.labels


# ---- inputs: arbitrary bytes, arbitrary text, mutations of a valid file -------------------------

INSERTS = [b"(", b")", b'"', b"'", b"\t", b"\n", b"\r", b"\r\n", b"\x00", b"{", b"}", b"[", b"]", b","]
INSERTS += [b":", b"\\", b" ", b"#", b"-", b"9", b"\xff", b"\xc3", b"\x1f\x8b", b"\xef\xbb\xbf", "\u2028".encode()]


@st.composite
def mutations(draw: st.DrawFn, valid: bytes) -> bytes:
    """``valid`` after one to six edits."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "insert", "truncate", "duplicate"]))
        n = len(data)
        if op == "flip" and n:
            i = draw(st.integers(0, n - 1))
            data[i] ^= draw(st.integers(1, 255))
        elif op == "delete" and n:
            i = draw(st.integers(0, n - 1))
            del data[i : draw(st.integers(i + 1, min(n, i + 12)))]
        elif op == "insert":
            i = draw(st.integers(0, n))
            data[i:i] = draw(st.sampled_from(INSERTS)) * draw(st.integers(1, 3))
        elif op == "truncate":
            data = data[: draw(st.integers(0, n))]
        elif op == "duplicate" and n:
            i = draw(st.integers(0, n - 1))
            data[i:i] = data[i : draw(st.integers(i + 1, min(n, i + 40)))]
    return bytes(data)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)
JSON_OBJECT = st.lists(
    st.tuples(st.sampled_from(["text", "label", "id"]) | st.text(max_size=3), JSON_VALUES), max_size=4
)


def _json_line(pairs: list[tuple[str, Any]]) -> str:
    """An object with these keys and values, in order, a key repeated if it comes twice."""
    return "{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in pairs) + "}"


PTB_LABELS = st.integers(-3, 12) | st.integers(0, 10**12) | st.sampled_from(["+3", "03", "x", ""])
PTB_TREES = st.recursive(
    st.tuples(PTB_LABELS, st.sampled_from(["a", "b", "8 1\\/2"])),
    lambda inner: st.tuples(PTB_LABELS, st.lists(inner, min_size=1, max_size=3)),
    max_leaves=6,
)


def _ptb_tree(t: tuple[Any, Any]) -> str:
    label, inside = t
    return f"({label} {inside if isinstance(inside, str) else ' '.join(map(_ptb_tree, inside))})"


def _lines_of(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    return st.lists(strategy | st.just(""), min_size=1, max_size=5).map(lambda lines: "\n".join(lines).encode())


def inputs(r: Reader) -> st.SearchStrategy[bytes]:
    made = [
        st.binary(max_size=200),
        st.text(alphabet=r.alphabet, max_size=120).map(str.encode),
        mutations(r.valid),
        mutations(r.valid),
    ]
    if r.name == "jsonl":  # objects of any JSON values, keys repeated or missing
        made.append(_lines_of(JSON_OBJECT.map(_json_line)))
    if r.name == "ptb":  # trees with any integer labels (negative, huge) and a few that are no integer
        made.append(_lines_of(PTB_TREES.map(_ptb_tree)))
    return st.one_of(made)


# ---- the property -------------------------------------------------------------------------------


@contextlib.contextmanager
def no_hang(seconds: int) -> Iterator[None]:
    """Fail (with a traceback of where it was) if the block runs longer than ``seconds``."""

    def fire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"a read took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def warnings_logged() -> Iterator[list[str]]:
    handler = _Warnings()
    logger = logging.getLogger("nlp_lib")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


FILE_LEVEL = re.compile(  # the errors about a whole file, which name no line
    r": no [^:]+: (the file is empty|every one of its)|: no column '|: not a readable gzip file|: cannot read it \("
)
_SKIPPED = re.compile(r"skipped (\d+) bad \w+\(s\)(?: \((\d+) lines?\))?, the first at (?:line|record) (\d+) ")
ONE_LINE_RECORDS = ("ptb", "listops", "scan", "jsonl")  # readers whose every record is one line


def _lines(r: Reader, data: bytes) -> tuple[int, int]:
    """The file's lines (as a binary file iterates them) and how many of them are blank."""
    pieces = data.split(b"\n")
    if pieces[-1] == b"":
        pieces.pop()
    blank = 0
    for k, raw in enumerate(pieces):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        blank += not (text.removeprefix("\ufeff") if k == 0 and r.name == "jsonl" else text).strip()
    return len(pieces), blank


def _read(r: Reader, p: Path, on_error: str, names: tuple[str, ...], n_lines: int) -> tuple[Any, Any, list[str]]:
    """(records, None, warnings) or (None, the DataError, warnings), with the records or the error checked."""
    with warnings_logged() as warned, no_hang(HANG_SECONDS):
        try:
            records = r.read(p, on_error)
            bad = [rec for rec in records if not r.sane(rec)]
            assert not bad, f"records no reader should return: {bad[:3]}"
            return records, None, list(warned)
        except DataError as e:
            message = str(e)
            assert any(name in message for name in names), f"the error does not name the file: {message}"
            if e.line is not None:
                assert 1 <= e.line <= n_lines, f"line {e.line} of a file of {n_lines} lines: {message}"
            else:
                assert FILE_LEVEL.search(message), f"the error names no line: {message}"
            return None, e, list(warned)


def check_reader(r: Reader, data: bytes, folder: Path) -> None:
    p = folder / f"sample{r.suffix}"
    p.write_bytes(data)
    names = (p.name,)
    n_lines = data.count(b"\n") + 1
    if r.name == "parallel":
        p.with_suffix(".de").write_bytes(PARALLEL_TARGET)
        names = (p.name, "sample.de")
        n_lines = max(n_lines, PARALLEL_TARGET.count(b"\n") + 1)
    strict, error, strict_warned = _read(r, p, "raise", names, n_lines)
    lenient, skip_error, warned = _read(r, p, "skip", names, n_lines)
    assert not strict_warned or error is None, "on_error=raise warned and raised"
    reports = [m for w in warned for m in [_SKIPPED.search(w)] if m]
    if error is None:  # clean: the same records, nothing skipped
        assert skip_error is None and lenient == strict and not warned, (warned, skip_error)
    elif error.line is not None and skip_error is None:  # the line raise stops at is the first skip leaves out
        assert reports and int(reports[0].group(3)) == error.line, (str(error), warned)
    if r.name in ONE_LINE_RECORDS and skip_error is None and not data.startswith(b"\x1f\x8b"):
        # every line is a record, blank, or counted in the warning
        total, blank = _lines(r, data)
        lost = sum(int(m.group(2) or m.group(1)) for m in reports)
        assert len(lenient) + lost + blank == total, (len(lenient), lost, blank, total, warned)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="reader_properties_") as d:
        yield Path(d)


@pytest.mark.parametrize("r", READERS, ids=[r.name for r in READERS])
def test_any_bytes_give_records_or_a_data_error_naming_the_file(r: Reader, folder: Path) -> None:
    @PROFILE
    @given(inputs(r))
    def run(data: bytes) -> None:
        check_reader(r, data, folder)

    run()


# ---- round trips: what json and csv write, the labelled-text reader reads back -------------------

TEXTS = st.text(min_size=1, max_size=30).filter(lambda t: t.strip() != "")
LABELS = st.one_of(st.integers(), TEXTS)


@PROFILE
@given(st.lists(st.tuples(TEXTS, LABELS), min_size=1, max_size=8))
def test_jsonl_round_trip(rows: list[tuple[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "rows.jsonl"
        p.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows), encoding="utf-8")
        got = read_labelled_text(p)
    assert got.texts == [t for t, _ in rows] and got.labels == [y for _, y in rows]
    assert got.lines == list(range(1, len(rows) + 1))


@PROFILE
@given(st.lists(st.tuples(TEXTS, LABELS), min_size=1, max_size=8), st.sampled_from([",", "\t"]))
def test_csv_round_trip(rows: list[tuple[str, Any]], delimiter: str) -> None:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)  # lines end with \r\n; a field with \r or \n is quoted
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / ("rows.tsv" if delimiter == "\t" else "rows.csv")
        p.write_bytes(out.getvalue().encode("utf-8"))
        got = read_labelled_text(p)
    assert got.texts == [t for t, _ in rows] and got.labels == [str(y) for _, y in rows]
