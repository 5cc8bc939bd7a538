"""Reader for parallel text: two line-aligned files, one sentence a line (plain or gzip), e.g. Multi30K."""

from __future__ import annotations

import gzip
import logging
import zlib
from pathlib import Path

from nlp_lib.data.bad_input import OnError, check_on_error, decode_line, no_records, regular_file, report_skipped
from nlp_lib.errors import DataError

__all__ = ["Pair", "read_parallel"]

log = logging.getLogger(__name__)

Pair = tuple[str, str]
"""A ``(source, target)`` sentence pair."""


def _open_lines(path: Path) -> list[bytes]:
    """The file's lines (gzip decompressed), without their ``\\n`` or ``\\r\\n``; decoded one by one later."""
    regular_file(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read it ({e})", path=str(path)) from None
    lines = raw.split(b"\n")  # only "\n" ends a line: str.splitlines would also split at U+2028, \x1c...
    if lines[-1] == b"":
        lines.pop()
    return [x[:-1] if x.endswith(b"\r") else x for x in lines]


def read_parallel(src_path: str | Path, tgt_path: str | Path, *, on_error: OnError = "raise") -> list[Pair]:
    """Line-aligned source and target files (plain or gzip) as ``(source, target)`` pairs.

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
    src, tgt = _open_lines(sp), _open_lines(tp)
    if len(src) != len(tgt):
        longer, shorter = (sp, tp) if len(src) > len(tgt) else (tp, sp)
        raise DataError(
            f"this line has no counterpart in {shorter}: {sp} has {len(src)} lines but {tp} has {len(tgt)}; "
            "the files of a split must be line-aligned",
            path=str(longer),
            line=min(len(src), len(tgt)) + 1,
        )
    pairs: list[Pair] = []
    skipped: list[tuple[int, str]] = []
    for i, sides in enumerate(zip(src, tgt, strict=True), 1):
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
        pairs.append((x, y))
    report_skipped(log, f"{sp} / {tp}", skipped, what="pair")
    if not pairs:
        raise no_records(sp, f"sentence pairs in it and {tp}", skipped, unit="pair")
    return pairs
