"""Reader for parallel text: two line-aligned files, one sentence a line (plain or gzip), e.g. Multi30K."""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Iterator
from pathlib import Path

from nlp_lib.data.bad_input import OnError, check_on_error, decode_line, no_records, regular_file, report_skipped
from nlp_lib.errors import DataError

__all__ = ["Pair", "iter_parallel", "read_parallel"]

log = logging.getLogger(__name__)

Pair = tuple[str, str]
"""A ``(source, target)`` sentence pair."""


_READ = 1 << 20


def _chunks(path: Path) -> Iterator[bytes]:
    """The file's bytes (gzip decompressed), 1 MiB at a time; a read error as :class:`DataError`."""
    regular_file(path)
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rb") if gzipped else open(path, "rb") as f:
            while block := f.read(_READ):
                yield block
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read it ({e})", path=str(path)) from None


def _count_lines(path: Path) -> int:
    """Lines of the file as :func:`_lines` yields them (a last line without ``\\n`` counts)."""
    count, last = 0, b"\n"
    for block in _chunks(path):
        count += block.count(b"\n")
        last = block[-1:]
    return count + (last != b"\n")


def _lines(path: Path) -> Iterator[bytes]:
    """The file's lines without their ``\\n`` or ``\\r\\n``, streamed (decoded one by one later).

    Only ``\\n`` ends a line: ``str.splitlines`` would also split at U+2028, ``\\x1c``...
    """
    rest = b""
    for block in _chunks(path):
        lines = (rest + block).split(b"\n")
        rest = lines.pop()
        for x in lines:
            yield x[:-1] if x.endswith(b"\r") else x
    if rest:
        yield rest[:-1] if rest.endswith(b"\r") else rest


def read_parallel(src_path: str | Path, tgt_path: str | Path, *, on_error: OnError = "raise") -> list[Pair]:
    """Line-aligned source and target files (plain or gzip) as a list of ``(source, target)`` pairs.

    :func:`iter_parallel` as a list (same checks and errors).
    """
    return list(iter_parallel(src_path, tgt_path, on_error=on_error))


def iter_parallel(src_path: str | Path, tgt_path: str | Path, *, on_error: OnError = "raise") -> Iterator[Pair]:
    """Line-aligned source and target files (plain or gzip) as ``(source, target)`` pairs, streamed:
    the files are read a MiB at a time (once to count their lines, once to pair them).

    Lines blank on both sides are left out. A bad pair (a line empty on one side only, or not
    valid UTF-8 on either side) is an error, or with ``on_error="skip"`` left out and reported in
    one warning (files, count, first pairs).

    Raises:
        DataError: a file is missing or unreadable, the files have different numbers of lines (even
            with ``on_error="skip"``: the alignment is lost), no pair is left (empty files, or every
            pair skipped), or (``on_error="raise"``) a bad pair; the message names file and line
            (and, for bad UTF-8, the byte offset in the line and the bytes).
        ValueError: ``on_error`` is neither ``"raise"`` nor ``"skip"``.
    """
    check_on_error(on_error)
    sp, tp = Path(src_path), Path(tgt_path)
    ns, nt = _count_lines(sp), _count_lines(tp)
    if ns != nt:
        longer, shorter = (sp, tp) if ns > nt else (tp, sp)
        raise DataError(
            f"this line has no counterpart in {shorter}: {sp} has {ns} lines but {tp} has {nt}; "
            "the files of a split must be line-aligned",
            path=str(longer),
            line=min(ns, nt) + 1,
        )
    pairs = 0
    skipped: list[tuple[int, str]] = []
    for i, sides in enumerate(zip(_lines(sp), _lines(tp), strict=True), 1):
        text: list[str] = []
        where, problem = sp, ""
        for f, raw in zip((sp, tp), sides, strict=True):
            try:
                text.append(decode_line(raw).strip())
            except DataError as e:
                where, problem = f, str(e)
                break
        if not problem:
            x, y = text
            if not x and not y:
                continue
            if not x or not y:
                where = sp if not x else tp
                problem = "empty line whose other side is not empty (data.on_error=skip drops such pairs)"
        if problem:
            if on_error == "raise":
                raise DataError(problem, path=str(where), line=i)
            skipped.append((i, f"{where.name}: {problem}"))
            continue
        pairs += 1
        yield x, y
    report_skipped(log, f"{sp} / {tp}", skipped, what="pair")
    if not pairs:
        raise no_records(sp, f"sentence pairs in it and {tp}", skipped, unit="pair")
    return pairs
