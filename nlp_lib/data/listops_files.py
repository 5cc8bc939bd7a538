"""ListOps files in the official format: one ``<label>\\t<bracketed expression>`` a line.

:func:`write_tsv` writes examples (e.g. from :func:`nlp_lib.data.listops.generate_listops`);
:func:`read_listops` reads them back as unlabelled binary trees (tokens at the leaves) with their
labels. Bad input (see :mod:`nlp_lib.data.bad_input`): a line that is not UTF-8, has no tab, a label
that is not 0-9 or a malformed bracketing is an error naming the file and the line, or, with
``on_error="skip"``, left out and reported in one warning.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from nlp_lib.data.bad_input import (
    OnError,
    check_on_error,
    decode_line,
    no_records,
    regular_file,
    report_skipped,
    unseen_label,
)
from nlp_lib.errors import DataError, NlpLibError, TreeFormatError
from nlp_lib.structure.brackets import parse_unlabelled
from nlp_lib.structure.tree import Tree

__all__ = ["ListOpsData", "read_listops", "write_tsv"]

log = logging.getLogger(__name__)


def write_tsv(examples: Iterable[tuple[int, str]], path: str | Path) -> int:
    """Write examples in the official format, one ``<label>\\t<expression>`` a line (UTF-8).

    Args:
        examples: ``(label, expression)`` pairs, e.g. from :func:`generate_listops`.
        path: The file to write (its directory is created if needed).

    Returns:
        The number of lines written.

    Raises:
        ValueError: A label is not an integer 0-9, or an expression is empty or holds a tab or
            a line break.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with p.open("w", encoding="utf-8", newline="\n") as f:
        for n, (label, expr) in enumerate(examples, start=1):
            if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label <= 9:
                raise ValueError(f"example {n}: label must be an integer 0-9, got {label!r}")
            if not expr.strip() or any(c in expr for c in "\t\r\n"):
                raise ValueError(f"example {n}: the expression must be non-empty, one line, without tabs")
            f.write(f"{label}\t{expr}\n")
    return n


@dataclass
class ListOpsData:
    """Examples read from a ListOps file, and the lines skipped with ``on_error="skip"``.

    Attributes:
        trees: The binarised expressions as unlabelled trees (tokens at the leaves), in file order.
        labels: The label (0-9) of each tree.
        skipped: ``(line number, message)`` of every line skipped.
        lines: The 1-based line number of each example.
    """

    trees: list[Tree] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.trees)

    def labelled_trees(self) -> list[Tree]:
        """The trees with their label at the root and ``-1`` at every other node."""
        return [
            Tree(parent=t.parent, words=t.words, labels=(-1,) * (len(t) - 1) + (y,))
            for t, y in zip(self.trees, self.labels, strict=True)
        ]


def _parse_line(line: str) -> tuple[Tree, int]:
    label_text, tab, expr = line.partition("\t")
    if not tab:
        raise DataError("missing tab: expected '<label>\\t<expression>'")
    label_text = label_text.strip()
    if not (label_text.isascii() and label_text.isdigit()) or int(label_text) > 9:
        raise DataError(f"label {label_text!r} is not an integer 0-9")
    if not expr.strip():
        raise DataError("empty expression after the tab")
    try:
        tree = parse_unlabelled(expr)
    except TreeFormatError as e:
        raise TreeFormatError(f"malformed bracketing in the expression: {e}") from None
    return tree, int(label_text)


def read_listops(
    path: str | Path, *, on_error: OnError = "raise", known_labels: Collection[int] | None = None
) -> ListOpsData:
    """Read a ListOps file in the official format (blank lines are ignored).

    Labels are read as data: the expression is parsed, not evaluated.

    Args:
        path: The file, one ``<label>\\t<bracketed expression>`` a line.
        on_error: ``"raise"`` stops at the first bad line; ``"skip"`` skips it, records it in
            :attr:`ListOpsData.skipped` and logs one warning at the end (file, count, first lines).
        known_labels: The labels training saw; when given, a line with another label is bad
            (for validation and test files).

    Returns:
        The trees, their labels and the skipped lines.

    Raises:
        DataError: The file does not exist or holds no example (empty, or every line skipped), or
            (with ``on_error="raise"``) a line is not valid UTF-8 (byte offset and bytes named),
            has no tab, a label that is not 0-9 or that training never saw, or a malformed
            bracketing (:class:`TreeFormatError`); the message names the file and the 1-based line.
        ValueError: ``on_error`` is neither ``"raise"`` nor ``"skip"``.
    """
    check_on_error(on_error)
    p = regular_file(path)
    known = None if known_labels is None else set(known_labels)
    out = ListOpsData()
    with p.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = decode_line(raw)
                if not line.strip():
                    continue
                tree, label = _parse_line(line.rstrip("\r\n"))
                if known is not None and label not in known:
                    raise DataError(unseen_label(label, known))
            except NlpLibError as e:
                if on_error == "raise":
                    kind = TreeFormatError if isinstance(e, TreeFormatError) else DataError
                    raise kind(str(e), path=str(p), line=lineno) from None
                out.skipped.append((lineno, str(e)))
                continue
            out.trees.append(tree)
            out.labels.append(label)
            out.lines.append(lineno)
    report_skipped(log, p, out.skipped)
    if not out.trees:
        raise no_records(p, "examples", out.skipped)
    return out
