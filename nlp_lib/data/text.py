"""Labelled text from local JSONL / CSV / TSV / Parquet files, tokenised with sentencepiece.

JSONL and CSV/TSV files are parsed here, line by line (:mod:`json`, :mod:`csv`), so that every bad
record is named by its line and ``on_error="skip"`` can leave out exactly the lines it spoils;
Parquet files and Hub datasets (``hub:NAME@SPLIT``) are read with Hugging Face ``datasets``. A path
may be a glob (``data/train-*.jsonl``: the matching files in name order, read as one split). A
sentencepiece model is trained on the training split's texts and saved with the run
(``tokenizer.model``), so a trained model reads new text exactly as it was trained. The prepared
data (ids, labels, the sentencepiece model) is kept in the on-disk cache
(:mod:`nlp_lib.data.cache`): a second run on the same files and options neither re-reads nor
re-tokenises.

Values: a text is a string that is not blank. A label is a string (not blank) or an integer; a JSON
or Parquet ``true``/``false`` is the class ``"true"``/``"false"``, a float that is a whole number
(``1.0``, as pandas writes integers beside missing values) is that integer, any other float is
refused (a fraction is no class id: write the name as a string), NaN is a missing label, and an
object or a list is refused. CSV fields are strings, as written.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch

from nlp_lib.constraints import NonNegativeInt, PositiveInt, SentencePieceSize
from nlp_lib.data.bad_input import (
    OnError,
    check_on_error,
    decode_line,
    no_records,
    regular_file,
    report_skipped,
    unseen_label,
)
from nlp_lib.data.datamodule import SplitLoaders
from nlp_lib.data.sampling import BucketBatchSampler
from nlp_lib.data.tokenizers import SentencePieceTokenizer
from nlp_lib.errors import DataError
from nlp_lib.structure.sequence import SequenceBatch

__all__ = ["LabelledText", "TextDataModule", "read_labelled_text"]

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


_MISSING = object()  # a column a record lacks

Row = tuple[int, int, Any, Any]
"""A record before its values are checked: ``(first line or record number, physical lines, text, label)``."""

Bad = tuple[int, int, str]
"""Lines that hold no record: ``(first line, physical lines, problem)``."""


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
        columns, rows, bad = _read_jsonl(p, text_column, label_column)
    elif kind == "csv":
        columns, rows, bad = _read_csv(p, "\t" if p.suffix.lower() == ".tsv" else ",", text_column, label_column)
    else:
        import datasets

        datasets.disable_progress_bars()
        try:
            ds = datasets.load_dataset("parquet", data_files=str(p), split="train")
        except Exception as e:  # datasets wraps parser errors in several types
            raise DataError(f"cannot read it as parquet: {_first_line(e)}", path=str(p)) from None
        return _records(p, _dataset_rows(ds, p, text_column, label_column), [], text_column, label_column, on_error)
    if rows and kind == "json":  # a key no object has is a wrong column name, not records without it
        _check_columns(p, columns, text_column, label_column)
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


def _check_columns(p: Path, columns: Sequence[str], text_column: str, label_column: str) -> None:
    for col, key in ((text_column, "text_column"), (label_column, "label_column")):
        if col not in columns:
            raise DataError(f"no column '{col}' ({key}); the file's columns: {', '.join(columns)}", path=str(p))


def _dataset_rows(ds: Any, p: Path, text_column: str, label_column: str) -> list[Row]:
    """The records of a loaded dataset (Parquet, Hub), numbered from 1."""
    _check_columns(p, ds.column_names, text_column, label_column)
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
    if t is _MISSING or t is None or (isinstance(t, str) and not t.strip()):
        return f"empty or missing '{column}'"
    if not isinstance(t, str):
        return f"'{column}' must be a string, found {_describe(t)}"
    return ""


def _label(y: Any, column: str) -> tuple[Any, str]:
    """The label a value stands for (see the module docstring), or the problem with it."""
    if y is _MISSING or y is None or (isinstance(y, str) and not y.strip()):
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


# ---- JSONL ------------------------------------------------------------------------------------


def _read_jsonl(p: Path, text_column: str, label_column: str) -> tuple[list[str], list[Row], list[Bad]]:
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
            rows.append((lineno, 1, record.get(text_column, _MISSING), record.get(label_column, _MISSING)))
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


def _read_csv(p: Path, delimiter: str, text_column: str, label_column: str) -> tuple[list[str], list[Row], list[Bad]]:
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
    _check_columns(p, header, text_column, label_column)
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


def _first_line(e: Exception) -> str:
    msg = str(e).strip().splitlines()
    return msg[0] if msg else type(e).__name__


class TextDataModule(SplitLoaders, pl.LightningDataModule):
    """Labelled text for sequence classification: files -> sentencepiece ids -> SequenceBatch.

    Args:
        train_path: Training file (JSONL, CSV, TSV or Parquet).
        val_path: Validation file; ``None`` holds out ``val_fraction`` of the training rows.
        test_path: Optional test file.
        text_column: Column holding the text.
        label_column: Column holding the label (strings or integers).
        vocab_size: sentencepiece vocabulary size (an upper bound on small corpora).
        val_fraction: Share of training rows held out when there is no ``val_path``.
        batch_size: Training batch size.
        eval_batch_size: Evaluation batch size (default ``batch_size``).
        max_length: Truncate token sequences to this many tokens.
        num_workers: DataLoader workers.
        seed: Seed for shuffling and the held-out split.
        on_error: ``"raise"`` on a bad line or record (or a label training never saw), or
            ``"skip"`` it and report the count in a warning.
        token_budget: Batch training texts by length instead of by count: similar lengths
            together, at most this many padded tokens a batch, the same number of batches on every
            rank (:class:`~nlp_lib.data.sampling.BucketBatchSampler`; ``batch_size`` ignored).
        cache / cache_dir: The on-disk cache of the prepared data (see the module docstring).
    """

    # the models this data trains, as nlp-lib names their kinds (checked before anything is read)
    feeds: ClassVar[tuple[str, ...]] = ("sequence classifier",)

    def __init__(
        self,
        *,
        train_path: str,
        val_path: str | None = None,
        test_path: str | None = None,
        text_column: str = "text",
        label_column: str = "label",
        vocab_size: SentencePieceSize = 8000,
        val_fraction: float = 0.1,
        batch_size: PositiveInt = 32,
        eval_batch_size: int | None = None,
        max_length: PositiveInt = 256,
        num_workers: NonNegativeInt = 0,
        seed: int = 0,
        on_error: OnError = "raise",
        token_budget: PositiveInt | None = None,
        cache: bool = True,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        check_on_error(on_error)
        if token_budget is not None and token_budget < 1:
            raise DataError(f"data.token_budget must be at least 1 (or null), got {token_budget}")
        self.token_budget = token_budget
        self.cache = cache
        self.cache_dir = cache_dir
        self._eval_batches: dict[str, list[Any]] = {}
        self.on_error = on_error
        self.paths = {"train": train_path, "val": val_path, "test": test_path}
        self.columns = (text_column, label_column)
        self._vocab_size = vocab_size
        if val_path is None and not 0 < val_fraction < 1:
            raise DataError(
                "data.val_fraction: must lie between 0 and 1 (the share of training rows held out for "
                f"validation, which picks the best checkpoint) when there is no data.val_path; got {val_fraction}"
            )
        self.val_fraction = val_fraction
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.max_length = max_length
        self.num_workers = num_workers
        self.seed = seed
        self.tokenizer: SentencePieceTokenizer | None = None
        self.vocab: Any = None  # a word vocabulary, when fine-tuning a model trained with one
        self._base_vocab: Any = None
        self.label_names: list[str] = []
        self.splits: dict[str, list[tuple[list[int], int]]] = {}

    def _files(self, split: str) -> list[Path]:
        """The files of a split: its path, or the files its glob pattern matches (name order)."""
        path = str(self.paths[split])
        if not any(c in path for c in "*?["):
            return [Path(path)]
        import glob

        found = sorted(Path(p) for p in glob.glob(path, recursive=True) if Path(p).is_file())
        if not found:
            raise DataError(f"data.{split}_path: no file matches the pattern '{path}'")
        return found

    def _cache_entry(self) -> Any:
        if not self.cache or self.tokenizer is not None or self._base_vocab is not None:  # adopted: not cached
            return None
        if any(str(p).startswith(HUB_PREFIX) for p in self.paths.values() if p is not None):
            return None  # a Hub dataset has no file to fingerprint here (datasets caches its download)
        from nlp_lib.data.cache import DataCache, file_fingerprints

        key = {
            "files": {s: file_fingerprints(self._files(s)) for s, p in self.paths.items() if p is not None},
            "columns": list(self.columns),
            "vocab_size": self._vocab_size,
            "val_fraction": self.val_fraction if self.paths["val"] is None else None,
            "seed": self.seed if self.paths["val"] is None else None,
            "max_length": self.max_length,
            "on_error": self.on_error,
        }
        return DataCache("text", key, self.cache_dir)

    def _from_cache(self, entry: Any) -> bool:
        from nlp_lib.data.cache import load_entry

        return load_entry(self, entry, self._fill_from_cache, ("tokenizer", "label_names", "splits"))

    def _fill_from_cache(self, entry: Any, data: Any, meta: dict[str, Any]) -> None:
        from nlp_lib.data.cache import columns, no_gc, repeat_warnings

        repeat_warnings(meta.get("notes", []), entry)
        self.tokenizer = SentencePieceTokenizer.load(entry.file("tokenizer.model"))
        self.label_names = list(meta["labels"])
        with no_gc():
            for name in meta["splits"]:
                self.splits[name] = list(zip(*columns(data[name], ("ids", "label")), strict=True))
        self._log_summary()

    def _to_cache(self, entry: Any, notes: list[str]) -> None:
        from nlp_lib.data.cache import splits_dataset

        data = splits_dataset(self.splits, ("ids", "label"))
        tok = self.tokenizer
        meta = {"splits": list(self.splits), "labels": self.label_names, "notes": notes}
        entry.store(data, meta, lambda folder: tok.save(folder / "tokenizer.model"))

    def _read(self) -> dict[str, tuple[list[Any], list[Any], list[tuple[str, str, int]]]]:
        raw = {}
        for split, path in self.paths.items():
            if path is None:
                continue
            texts: list[Any] = []
            labels: list[Any] = []
            where: list[tuple[str, str, int]] = []
            for f in self._files(split):
                data = read_labelled_text(
                    f, text_column=self.columns[0], label_column=self.columns[1], on_error=self.on_error
                )
                texts += data.texts
                labels += data.labels
                where += [(str(f), data.at, n) for n in data.lines]
            raw[split] = (texts, labels, where)
        return raw

    def prepare(self) -> None:
        if self.splits:
            return
        entry = self._cache_entry()
        if entry is not None and self._from_cache(entry):
            return
        from nlp_lib.data.cache import warnings_of

        with warnings_of() as notes:  # skipped records: repeated by runs that load the cache
            self._prepare()
        self._log_summary()
        if entry is not None:
            self._to_cache(entry, notes)

    def _prepare(self) -> None:
        raw = self._read()
        if "val" not in raw:
            texts, labels, where = raw["train"]
            g = torch.Generator().manual_seed(self.seed)
            order = torch.randperm(len(texts), generator=g).tolist()
            k = max(1, round(self.val_fraction * len(texts)))
            if k >= len(texts):
                raise DataError(f"data.train_path: {len(texts)} rows are too few to hold out a validation split")
            raw["val"] = tuple([column[i] for i in order[:k]] for column in (texts, labels, where))
            raw["train"] = tuple([column[i] for i in order[k:]] for column in (texts, labels, where))
        self.label_names = sorted({str(y) for y in raw["train"][1]}, key=_label_key)
        if len(self.label_names) < 2:
            raise DataError(
                f"data.train_path: every training row has the label {self.label_names[0]!r}; "
                f"a classifier needs at least two labels (files: {self.paths['train']})"
            )
        index = {name: i for i, name in enumerate(self.label_names)}
        for split, (texts, labels, where) in raw.items():  # labels training never saw: error, or skip
            bad = [i for i, y in enumerate(labels) if str(y) not in index]
            if not bad:
                continue
            problem = f"{unseen_label(str(labels[bad[0]]), self.label_names)} (the {split} split)"
            if self.on_error == "raise":
                raise record_error(*where[bad[0]], problem)
            log.warning(
                "the %s split: skipped %d record(s) whose label never occurs in training, the first at %s %s:%d (%s)",
                split,
                len(bad),
                where[bad[0]][1],
                where[bad[0]][0],
                where[bad[0]][2],
                problem,
            )
            drop = set(bad)
            raw[split] = tuple([x for i, x in enumerate(column) if i not in drop] for column in (texts, labels, where))
            if not raw[split][0]:
                raise DataError(f"the {split} split has no record left: every label in it is unseen in training")
        if self._base_vocab is not None:  # a word-vocabulary model: known words keep their ids, new ones appended
            from nlp_lib.data.vocab import WordVocab

            base = self._base_vocab
            seen = WordVocab.build((w for t in raw["train"][0] for w in t.split()), lowercase=base.lowercase)
            known = set(base.words)
            self.vocab = WordVocab(base.words + [w for w in seen.words[1:] if w not in known], lowercase=base.lowercase)
        elif self.tokenizer is None:  # fine-tuning keeps the trained model's pieces (adopt_tokenizer)
            self.tokenizer = SentencePieceTokenizer.train(raw["train"][0], vocab_size=self._vocab_size)
        for split, (texts, labels, _) in raw.items():
            self.splits[split] = [
                (self._encode(t)[: self.max_length], index[str(y)]) for t, y in zip(texts, labels, strict=True)
            ]

    def _encode(self, text: str) -> list[int]:
        if self.vocab is not None:  # whitespace words, as the bundle's predict reads them
            return [self.vocab.id(w) for w in text.split()] or [0]
        return self.tokenizer.encode(text)

    def _log_summary(self) -> None:
        log.info(
            "data: %s; %s vocabulary %d; %d classes",
            ", ".join(f"{k} {len(v)} texts" for k, v in self.splits.items()),
            "word" if self.vocab is not None else "sentencepiece",
            self.vocab_size,
            len(self.label_names),
        )

    def adopt_tokenizer(self, tokenizer: Any) -> None:
        """Fine-tuning: tokenise as the trained model did, with its sentencepiece model, or with its
        word vocabulary (e.g. a model trained on SST sentences: words split on whitespace, known
        words keep their ids and vectors, new words of the training split are appended)."""
        from nlp_lib.data.vocab import WordVocab

        if isinstance(tokenizer, WordVocab):
            self._base_vocab = tokenizer
            return
        if not isinstance(tokenizer, SentencePieceTokenizer):
            raise DataError(
                f"init_from: the model was trained with a {type(tokenizer).__name__}; text data takes a "
                "sentencepiece model or a word vocabulary"
            )
        self.tokenizer = tokenizer

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    @property
    def vocab_size(self) -> int:
        self.prepare()
        return self.vocab.vocab_size if self.vocab is not None else self.tokenizer.vocab_size

    @property
    def num_classes(self) -> int:
        self.prepare()
        return len(self.label_names)

    def collate(self, examples: list[tuple[list[int], int]]) -> SequenceBatch:
        return SequenceBatch.from_lists([e[0] for e in examples], [e[1] for e in examples])

    def budget_sampler(self, split: str, replicas: int, rank: int) -> Any:
        if self.token_budget is None:
            return None
        sizes = [len(e[0]) for e in self.splits[split]]  # similar lengths together
        return BucketBatchSampler(sizes, self.token_budget, num_replicas=replicas, rank=rank, seed=self.seed)

    def eval_examples(self, split: str) -> list:
        return sorted(self.splits[split], key=lambda e: len(e[0]))

    def save(self, directory: str | Path) -> None:
        """The tokenizer (``tokenizer.model``) and the label names (``labels.json``)."""
        import json

        if self.vocab is not None:
            self.vocab.save(Path(directory) / "vocab.json")
        else:
            self.tokenizer.save(Path(directory) / "tokenizer.model")
        (Path(directory) / "labels.json").write_text(json.dumps(self.label_names, ensure_ascii=False))


def _label_key(name: str) -> tuple[int, Any]:
    """Integers in numeric order, then strings alphabetically."""
    try:
        return (0, int(name))
    except ValueError:
        return (1, name)
