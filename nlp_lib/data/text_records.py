"""The raw records of line-based labelled-text files: JSONL and CSV/TSV, parsed line by line.

:func:`read_jsonl` and :func:`read_csv` return every record as a :data:`Row` (where it is, the
lines it takes, its text and label values unchecked) and every line that holds no record as a
:data:`Bad` (where, and the problem), so that :func:`nlp_lib.data.text.read_labelled_text` can
check the values, name each bad record by its line and, with ``on_error="skip"``, leave out
exactly the lines it spoils.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from nlp_lib.data.bad_input import decode_line
from nlp_lib.errors import DataError

__all__ = ["MISSING", "Bad", "Row", "check_columns", "read_csv", "read_jsonl"]

MISSING = object()  # a column a record lacks

Row = tuple[int, int, Any, Any]
"""A record before its values are checked: ``(first line or record number, physical lines, text, label)``."""

Bad = tuple[int, int, str]
"""Lines that hold no record: ``(first line, physical lines, problem)``."""


def check_columns(p: Path, columns: Sequence[str], text_column: str, label_column: str) -> None:
    """A :class:`DataError` listing the file's ``columns`` if the text or the label column is not one of them."""
    for col, key in ((text_column, "text_column"), (label_column, "label_column")):
        if col not in columns:
            raise DataError(f"no column '{col}' ({key}); the file's columns: {', '.join(columns)}", path=str(p))


# ---- JSONL ------------------------------------------------------------------------------------


def read_jsonl(p: Path, text_column: str, label_column: str) -> tuple[list[str], list[Row], list[Bad]]:
    """The keys seen (first-seen order), the records, and the lines that are no JSON object."""
    columns: dict[str, None] = {}
    rows: list[Row] = []
    bad: list[Bad] = []
    with p.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = decode_line(raw)
                if lineno == 1:
                    line = line.removeprefix("\ufeff")  # a byte-order mark
                if not line.strip():
                    continue
                record = _json_object(line)
            except DataError as e:
                bad.append((lineno, 1, str(e)))
                continue
            columns.update(dict.fromkeys(record))
            rows.append((lineno, 1, record.get(text_column, MISSING), record.get(label_column, MISSING)))
    return list(columns), rows, bad


def _json_object(line: str) -> dict[str, Any]:
    try:
        record = json.loads(line, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise DataError("not valid JSON (nested too deeply)") from None
    except ValueError as e:
        raise DataError(f"not valid JSON ({e})") from None
    if not isinstance(record, dict):
        raise DataError(f"expected a JSON object {{...}} a line, found {type(record).__name__}")
    return record


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise DataError(f"the key {key!r} appears twice in one object: which value is meant is ambiguous")
    return out


# ---- CSV / TSV --------------------------------------------------------------------------------


def read_csv(p: Path, delimiter: str, text_column: str, label_column: str) -> tuple[list[str], list[Row], list[Bad]]:
    """The header, the records (each from its first line, with the lines it takes) and the bad lines."""
    texts: list[str] = []  # the decodable lines, with their line numbers
    numbers: list[int] = []
    bad: list[Bad] = []
    with p.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                text = decode_line(raw)
            except DataError as e:
                if not texts:
                    raise DataError(f"the header {e}", path=str(p), line=lineno) from None
                bad.append((lineno, 1, str(e)))
                continue
            texts.append(text.removeprefix("\ufeff") if lineno == 1 else text)  # a byte-order mark
            numbers.append(lineno)
    header: list[str] | None = None
    where: tuple[int, int] = (0, 0)
    rows: list[Row] = []
    with _field_limit(sum(map(len, texts))):  # a field may be as long as the file
        for i, j, fields, problem in _csv_records(texts, numbers, delimiter):
            first = numbers[i]
            if header is None:
                if problem:
                    raise DataError(f"the header: {problem}", path=str(p), line=first)
                header, where = fields, _columns_of(fields, p, first, text_column, label_column)
                continue
            if not problem and len(fields) != len(header):  # too many fields, or too few
                count = f"{len(fields)} field" + ("s" if len(fields) != 1 else "")
                problem = f"{count}, but the header has {len(header)} ({', '.join(header)})"
                if j - i > 1:
                    problem += _spans(texts[i:j], numbers[i:j], delimiter)
            if problem:
                bad.append((first, j - i, problem))
                continue
            rows.append((first, j - i, fields[where[0]], fields[where[1]]))
    return header or [], rows, bad


def _columns_of(header: list[str], p: Path, line: int, text_column: str, label_column: str) -> tuple[int, int]:
    """Where the text and label columns are in the header; a column named twice is ambiguous."""
    check_columns(p, header, text_column, label_column)
    for col in (text_column, label_column):
        if header.count(col) > 1:
            at = " and ".join(str(k + 1) for k, c in enumerate(header) if c == col)
            raise DataError(
                f"the header names the column '{col}' twice (fields {at}): which is meant?", path=str(p), line=line
            )
    return header.index(text_column), header.index(label_column)


def _csv_records(texts: list[str], numbers: list[int], delimiter: str) -> Iterator[tuple[int, int, list[str], str]]:
    """``(first, end, fields, problem)`` of every record: ``texts[first:end]`` are its lines
    (``numbers``: their line numbers).

    A quoted field still open at the end of the file is a quote left open: that record (up to the
    line the quote opens on) is bad, and reading starts again on the next line, so the records
    after it are not swallowed.
    """
    start = 0
    while start < len(texts):
        reader = csv.reader(texts[start:] if start else texts, delimiter=delimiter)
        while True:
            i = start + reader.line_num
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield i, start + reader.line_num, [], _csv_problem(e)
                continue
            j = start + reader.line_num
            if not fields:  # a blank line
                continue
            opened = _open_quote(texts[i:j], delimiter) if j == len(texts) else None
            if opened is None:
                yield i, j, fields, ""
                continue
            k, col = opened
            problem = f"the quoted field opened on line {numbers[i + k]} (column {col + 1}) is never closed"
            yield i, i + k + 1, [], f"{problem}: its '\"' runs to the end of the file"
            start = i + k + 1  # read again after the line the quote opens on
            break


def _csv_problem(e: csv.Error) -> str:
    if "new-line character" in str(e):
        return "a carriage return (\\r) inside an unquoted field (quote the field, or end lines with \\n)"
    return f"not valid CSV ({e})"


def _quotes(lines: Sequence[str], delimiter: str) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """In a record's lines, read as :mod:`csv` reads them: where the first quoted field that spans
    a line break opens, and where a quoted field still open at the end opens (``(line index, column)``)."""
    spanning = opened = None
    quoted = False
    for k, line in enumerate(lines):
        pos, start_of_field = 0, True
        while pos < len(line):
            if quoted:
                q = line.find('"', pos)
                if q < 0:
                    break
                if line.startswith('"', q + 1):  # "" inside quotes: a literal quote
                    pos = q + 2
                    continue
                quoted, pos, start_of_field = False, q + 1, False  # closed; the field goes on unquoted
            elif start_of_field and line[pos] == '"':
                quoted, opened, pos = True, (k, pos), pos + 1
            else:  # unquoted: a quote is literal, up to the next delimiter
                d = line.find(delimiter, pos)
                if d < 0:
                    break
                pos, start_of_field = d + 1, True
        if quoted and spanning is None:
            spanning = opened
    return spanning, (opened if quoted else None)


def _open_quote(lines: Sequence[str], delimiter: str) -> tuple[int, int] | None:
    return _quotes(lines, delimiter)[1]


def _spans(lines: Sequence[str], numbers: Sequence[int], delimiter: str) -> str:
    """Why a malformed record takes several lines: the quoted field that spans them."""
    spanning = _quotes(lines, delimiter)[0]
    where = (
        f"the quoted field opened on line {numbers[spanning[0]]} (column {spanning[1] + 1})"
        if spanning
        else "a quoted field"
    )
    return f"; the record runs over lines {numbers[0]}-{numbers[-1]}: {where} holds line breaks (a '\"' left open?)"


@contextlib.contextmanager
def _field_limit(n: int) -> Iterator[None]:
    """Let :mod:`csv` read fields of up to ``n`` characters (its default limit is 131,072)."""
    old = csv.field_size_limit()
    csv.field_size_limit(max(old, n + 1))
    try:
        yield
    finally:
        csv.field_size_limit(old)
