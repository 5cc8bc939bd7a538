"""Reader for labelled text: JSONL / CSV / TSV / Parquet files and Hugging Face Hub datasets.

JSONL and CSV/TSV files are parsed line by line (:mod:`nlp_lib.data.text_records`), so that every
bad record is named by its line and ``on_error="skip"`` can leave out exactly the lines it spoils;
Parquet files and Hub datasets (``hub:NAME@SPLIT``) are read with Hugging Face ``datasets``. The
DataModule that tokenises and batches them is :class:`~nlp_lib.data.text_datamodule.TextDataModule`
(which also takes globs: ``data/train-*.jsonl``, the matching files in name order, one split).

Values: a text is a string that is not blank. A label is a string (not blank) or an integer; a JSON
or Parquet ``true``/``false`` is the class ``"true"``/``"false"``, a float that is a whole number
(``1.0``, as pandas writes integers beside missing values) is that integer, any other float is
refused (a fraction is no class id: write the name as a string), NaN is a missing label, and an
object or a list is refused. CSV fields are strings, as written.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlp_lib.data.bad_input import OnError, check_on_error, no_records, regular_file, report_skipped
from nlp_lib.data.text_records import MISSING, Bad, Row, check_columns, read_csv, read_jsonl
from nlp_lib.errors import DataError

__all__ = ["HUB_PREFIX", "LabelledText", "read_labelled_text", "record_error"]

log = logging.getLogger(__name__)

_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}


@dataclass
class LabelledText:
    """Texts and labels read from a file; iterates as ``texts, labels``.

    Attributes:
        texts: The texts, in file order.
        labels: The label of each text (a string or an integer; see the module docstring).
        lines: Where each record is: its first line (JSONL, CSV, TSV) or its 1-based record
            number (Parquet, Hub), as ``at`` says.
        skipped: ``(line or record number, problem)`` of every record left out with ``on_error="skip"``.
        at: ``"line"`` or ``"record"``.
        lines_skipped: The physical lines the skipped records took (a CSV record can take several).
    """

    texts: list[str]
    labels: list[Any]
    lines: list[int]
    skipped: list[tuple[int, str]] = field(default_factory=list)
    at: str = "line"
    lines_skipped: int = 0

    def __iter__(self) -> Iterator[list[Any]]:
        yield self.texts
        yield self.labels

    def __len__(self) -> int:
        return len(self.texts)


def record_error(path: str | Path, at: str, n: int, problem: str) -> DataError:
    """A :class:`DataError` at line ``n`` (``at="line"``) or record ``n`` (``at="record"``) of ``path``."""
    if at == "line":
        return DataError(problem, path=str(path), line=n)
    return DataError(f"record {n}: {problem}", path=str(path))


def read_labelled_text(
    path: str | Path, *, text_column: str = "text", label_column: str = "label", on_error: OnError = "raise"
) -> LabelledText:
    """Texts and labels of a local JSONL, CSV (TSV) or Parquet file, or of a Hub dataset split.

    Args:
        path: The file; its extension says the kind (``.jsonl``/``.json`` (one object a line),
            ``.csv``, ``.tsv``, ``.parquet``). ``hub:NAME[:CONFIG]@SPLIT``: a Hugging Face dataset.
        text_column: Column holding the text.
        label_column: Column holding the label.
        on_error: ``"raise"`` stops at the first bad line or record (in file order); ``"skip"``
            leaves it out and logs one warning at the end (file, count, physical lines lost, first few).

    Returns:
        A :class:`LabelledText` (``texts, labels = read_labelled_text(...)`` works).

    Raises:
        DataError: the file is missing, of an unknown kind, unreadable, lacks a column (the
            message lists the file's columns), its CSV header is broken, or it holds no record
            (empty, or every one skipped); or (``on_error="raise"``) a line is not valid UTF-8 (byte
            offset and bytes named), not a JSON object (or one with a key twice), a CSV record with
            more or fewer fields than the header (a quoted field left open is named by the line it
            opens on), or a record has an empty text, no label, or a value of the wrong kind (see
            the module docstring). The message names the file and the line (JSONL/CSV) or record
            number (Parquet, Hub).
        ValueError: ``on_error`` is neither ``"raise"`` nor ``"skip"``.
    """
    check_on_error(on_error)
    if str(path).startswith(HUB_PREFIX):
        ds, p = _load_hub(str(path)), Path(str(path))
        return _records(p, _dataset_rows(ds, p, text_column, label_column), [], text_column, label_column, on_error)
    p = regular_file(path)
    kind = _FORMATS.get(p.suffix.lower())
    if kind is None:
        raise DataError(f"unknown file kind '{p.suffix}': use .jsonl, .csv, .tsv or .parquet", path=str(p))
    if kind == "json":
        columns, rows, bad = read_jsonl(p, text_column, label_column)
    elif kind == "csv":
        columns, rows, bad = read_csv(p, "\t" if p.suffix.lower() == ".tsv" else ",", text_column, label_column)
    else:
        import datasets

        datasets.disable_progress_bars()
        try:
            ds = datasets.load_dataset("parquet", data_files=str(p), split="train")
        except Exception as e:  # datasets wraps parser errors in several types
            raise DataError(f"cannot read it as parquet: {_first_line(e)}", path=str(p)) from None
        return _records(p, _dataset_rows(ds, p, text_column, label_column), [], text_column, label_column, on_error)
    if rows and kind == "json":  # a key no object has is a wrong column name, not records without it
        check_columns(p, columns, text_column, label_column)
    return _records(p, rows, bad, text_column, label_column, on_error, at="line")


HUB_PREFIX = "hub:"


def _load_hub(spec: str) -> Any:
    """``hub:NAME[:CONFIG]@SPLIT``: a split of a Hugging Face dataset, through ``datasets.load_dataset``.

    ``NAME`` is a Hub dataset (needs the network, or a copy in the ``datasets`` cache) or a local
    folder laid out like one (``train.jsonl``...), which goes through the same loading code.
    """
    import datasets

    body = spec[len(HUB_PREFIX) :]
    name, _, split = body.rpartition("@")
    if not name or not split:
        raise DataError(f"'{spec}': a Hub dataset is given as hub:NAME[:CONFIG]@SPLIT, e.g. hub:imdb@train")
    config = None
    if ":" in name and not Path(name).exists():
        name, _, config = name.partition(":")
    datasets.disable_progress_bars()
    try:
        return datasets.load_dataset(name, config, split=split)
    except Exception as e:  # offline, unknown name or split: datasets raises several types
        raise DataError(f"cannot load the Hugging Face dataset split: {_first_line(e)}", path=spec) from None


def _dataset_rows(ds: Any, p: Path, text_column: str, label_column: str) -> list[Row]:
    """The records of a loaded dataset (Parquet, Hub), numbered from 1."""
    check_columns(p, ds.column_names, text_column, label_column)
    values = ds[label_column]
    feature = ds.features.get(label_column)
    if hasattr(feature, "int2str"):  # a ClassLabel column (Hub datasets): its names, not its ids
        values = [None if y is None else feature.int2str(y) for y in values]
    return [(n, 1, t, y) for n, (t, y) in enumerate(zip(ds[text_column], values, strict=True), 1)]


def _records(
    p: Path,
    rows: list[Row],
    bad: list[Bad],
    text_column: str,
    label_column: str,
    on_error: OnError,
    at: str = "record",
) -> LabelledText:
    """Check every record's text and label; raise at the first problem in file order, or skip and report.

    ``at``: what the numbers of ``rows`` and ``bad`` count, ``"line"`` or ``"record"``.
    """
    out = LabelledText([], [], [], [], at)
    problems = list(bad)
    for n, span, t, y in rows:
        problem = _text_problem(t, text_column)
        label, label_problem = _label(y, label_column)
        if problem or label_problem:
            problems.append((n, span, problem or label_problem))
            continue
        out.texts.append(t)
        out.labels.append(label)
        out.lines.append(n)
    problems.sort()
    if problems and on_error == "raise":
        raise record_error(p, at, problems[0][0], problems[0][2])
    out.skipped = [(n, problem) for n, _, problem in problems]
    out.lines_skipped = sum(span for _, span, _ in problems)
    what = at if out.lines_skipped == len(problems) else "record"
    report_skipped(log, p, out.skipped, what=what, at=at, lines=out.lines_skipped if at == "line" else None)
    if not out.texts:
        raise no_records(p, "records", out.skipped, unit=what, at=at)
    return out


def _text_problem(t: Any, column: str) -> str:
    if t is MISSING or t is None or (isinstance(t, str) and not t.strip()):
        return f"empty or missing '{column}'"
    if not isinstance(t, str):
        return f"'{column}' must be a string, found {_describe(t)}"
    return ""


def _label(y: Any, column: str) -> tuple[Any, str]:
    """The label a value stands for (see the module docstring), or the problem with it."""
    if y is MISSING or y is None or (isinstance(y, str) and not y.strip()):
        return None, f"empty or missing '{column}'"
    if isinstance(y, str):
        return y, ""
    if isinstance(y, bool):  # before int: True is an int
        return ("true" if y else "false"), ""
    if isinstance(y, int):
        return y, ""
    if isinstance(y, float):
        if math.isnan(y):
            return None, f"empty or missing '{column}' (NaN)"
        if y.is_integer():
            return int(y), ""
        return None, (
            f"'{column}' is the number {y!r}, which is no class id: a label is a string or an integer "
            f'(write "{y}" to use it as a class name)'
        )
    return None, f"'{column}' must be a string or an integer, found {_describe(y)}"


def _describe(v: Any) -> str:
    if isinstance(v, bool):
        kind = "a boolean"
    elif isinstance(v, int | float):
        kind = "a number"
    elif isinstance(v, dict):
        kind = "an object"
    elif isinstance(v, list | tuple):
        kind = "a list"
    else:
        kind = f"a {type(v).__name__}"
    try:
        shown = json.dumps(v, ensure_ascii=False, default=str)
    except ValueError:  # a circular structure (not from JSON)
        shown = repr(v)
    return f"{kind} ({shown[:40]}{'...' if len(shown) > 40 else ''})"


def _first_line(e: Exception) -> str:
    msg = str(e).strip().splitlines()
    return msg[0] if msg else type(e).__name__
