"""What every reader does with bad input: ``on_error="raise"`` or ``"skip"``, and how skips are reported.

A reader either raises a :class:`~nlp_lib.errors.DataError` naming the file, the line (or record)
and the problem, or, with ``on_error="skip"`` (``data.on_error=skip`` in the data configs), leaves
the bad line out and, once the file is read, logs one warning naming the file, the number of lines
skipped and the first few of them with their problem. A file that yields no record at all (empty,
or every line skipped) is an error either way: an empty split is never passed on silently.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Literal

from nlp_lib.errors import DataError

__all__ = [
    "MAX_INFERRED_CLASSES",
    "OnError",
    "check_on_error",
    "decode_line",
    "no_records",
    "regular_file",
    "report_skipped",
    "unseen_label",
]

OnError = Literal["raise", "skip"]
"""``"raise"``: stop at the first bad line with a :class:`DataError`; ``"skip"``: leave it out and report it."""

SHOWN = 3
"""How many skipped lines the warning quotes."""

MAX_INFERRED_CLASSES = 1000
"""The most classes a reader infers from integer labels (0..999) when none is declared: a stray
label such as ``99999999999`` would otherwise make a model of 10^11 classes."""


def check_on_error(on_error: str) -> None:
    """Raise ``ValueError`` unless ``on_error`` is ``"raise"`` or ``"skip"``."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")


def regular_file(path: str | Path) -> Path:
    """``path`` as a :class:`Path`, checked to be a regular file (or a link to one).

    Raises:
        DataError: It does not exist, is a directory, or is something else (a FIFO, a device...),
            which a reader could block on.
    """
    p = Path(path)
    if not p.is_file():
        if p.is_dir():
            problem = "is a directory, not a file"
        elif p.exists():
            problem = "not a regular file"
        else:
            problem = "file does not exist"
        raise DataError(problem, path=str(p))
    return p


def decode_line(raw: bytes) -> str:
    """One line of a file as UTF-8 text.

    Raises:
        DataError: The line is not valid UTF-8; the message gives the 1-based byte offset in the
            line and the bad bytes (the caller adds the file and the line).
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"not valid UTF-8 (byte {e.start + 1} of the line: {raw[e.start : e.end]!r})") from None


def report_skipped(
    logger: logging.Logger,
    path: object,
    skipped: Sequence[tuple[int, str]],
    *,
    what: str = "line",
    at: str = "line",
    lines: int | None = None,
) -> None:
    """Log one warning for the lines (or records) a reader skipped; nothing if there are none.

    Args:
        logger: The reader's logger.
        path: The file (or files) read.
        skipped: ``(line number, problem)`` of each skipped line, in file order.
        what: What was skipped: ``"line"``, ``"record"``, ``"sentence"``, ``"pair"``.
        at: What the numbers count: ``"line"`` or ``"record"``.
        lines: The physical lines the skipped records took, where a record can take several (a
            CSV record with a quoted line break, a CoNLL-U sentence); the warning gives the count
            (``skipped 1 bad record(s) (5 lines)``) unless it is one line each.
    """
    if not skipped:
        return
    shown = "; ".join(f"{at} {n}: {msg}" for n, msg in skipped[:SHOWN])
    more = f"; and {len(skipped) - SHOWN} more" if len(skipped) > SHOWN else ""
    lost = ""
    if lines is not None and lines != len(skipped):
        lost = f" ({lines} line{'s' if lines != 1 else ''})"
    logger.warning(
        "%s: skipped %d bad %s(s)%s, the first at %s %d (%s%s)",
        path,
        len(skipped),
        what,
        lost,
        at,
        skipped[0][0],
        shown,
        more,
    )


def no_records(
    path: object, what: str, skipped: Sequence[tuple[int, str]], *, unit: str = "line", at: str = "line"
) -> DataError:
    """The error for a file that yields nothing: empty, or every line (``unit``) skipped."""
    if not skipped:
        return DataError(f"no {what}: the file is empty (or holds only blank lines)", path=str(path))
    n, msg = skipped[0]
    return DataError(
        f"no {what}: every one of its {len(skipped)} {unit}(s) was bad and skipped (the first, {at} {n}: {msg})",
        path=str(path),
    )


def unseen_label(label: object, known: Collection[object]) -> str:
    """The problem text for a label that training never saw."""
    shown = ", ".join(repr(k) for k in sorted(known, key=_order)[:20])
    more = ", ..." if len(known) > 20 else ""
    return f"label {label!r} never occurs in training (training labels: {shown}{more})"


def _order(x: object) -> tuple[int, str]:
    return (0, f"{x:020d}") if isinstance(x, int) and x >= 0 else (1, str(x))
