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
    "check_tree_labels",
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


def check_tree_labels(
    splits: dict[str, Sequence[object]], num_classes: int | None, root_classes: int | None = None
) -> int:
    """Every tree's labels are class ids: each root labelled, every label ``-1`` (none) or in
    ``0..num_classes - 1``, and a root's below ``root_classes`` when roots take only the first classes
    (SST-2 with neutral phrases: 2 of 3). ``num_classes=None``: the largest training label + 1, at
    most :data:`MAX_INFERRED_CLASSES`. Returns the number of classes. Trees from a custom ``load``
    are named by split and number (the readers check their files by line before this).
    """
    declared = num_classes is not None
    if num_classes is None:
        num_classes = 1 + max(max(t.labels) for t in splits["train"] if t.labels is not None)  # type: ignore[attr-defined]
        if num_classes > MAX_INFERRED_CLASSES:
            raise DataError(
                f"the training labels go up to {num_classes - 1}: with no declared number of classes, "
                f"labels are class ids 0..{MAX_INFERRED_CLASSES - 1}; set data.num_classes to allow more"
            )
    classes = f"data.num_classes={num_classes}" if declared else "the largest training label + 1"
    if root_classes is not None and not 1 <= root_classes <= num_classes:
        raise DataError(f"data.root_classes={root_classes} must be between 1 and the {num_classes} classes ({classes})")
    for name, trees in splits.items():
        for i, t in enumerate(trees):
            labels = t.labels  # type: ignore[attr-defined]
            where = f"split '{name}', tree {i + 1}"
            if labels is None or labels[-1] < 0:
                raise DataError(f"{where}: the root has no label")
            if min(labels) < -1:
                raise DataError(f"{where}: label {min(labels)} is negative (-1: no label)")
            if max(labels) >= num_classes:
                raise DataError(
                    f"{where}: label {max(labels)} is outside the {num_classes} classes 0..{num_classes - 1} ({classes})"
                )
            if root_classes is not None and labels[-1] >= root_classes:
                raise DataError(
                    f"{where}: the root's label {labels[-1]} is not one of the first {root_classes} classes "
                    f"a root may take (data.root_classes={root_classes})"
                )
    return num_classes
