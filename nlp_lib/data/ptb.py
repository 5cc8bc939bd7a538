"""Reader for PTB-style bracketed trees, one a line (the SST format), and the SST-2 label mapping.

Bad input (see :mod:`nlp_lib.data.bad_input`): a line that is not UTF-8 or not a tree, or a tree
with a label training never saw (``known_labels``), is a :class:`~nlp_lib.errors.DataError` naming
the file and the line, or, with ``on_error="skip"``, left out and reported in one warning. A file
with no tree at all is an error either way.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from nlp_lib.data.bad_input import (
    MAX_INFERRED_CLASSES,
    OnError,
    check_on_error,
    decode_line,
    no_records,
    regular_file,
    report_skipped,
    unseen_label,
)
from nlp_lib.errors import DataError, NlpLibError
from nlp_lib.structure.brackets import parse_ptb
from nlp_lib.structure.tree import Tree

__all__ = ["read_ptb_trees", "ReadResult", "OnError", "sst_binary"]

log = logging.getLogger(__name__)


@dataclass
class ReadResult:
    """Records read from a file, and the lines skipped with ``on_error="skip"``.

    Attributes:
        trees: The trees read, in file order.
        skipped: ``(line number, message)`` of every line skipped.
        lines: The 1-based line number of each tree.
    """

    trees: list[Tree] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)

    def labels(self) -> set[int]:
        """Every label on any node of any tree (``-1``, no label, left out)."""
        return {y for t in self.trees if t.labels is not None for y in t.labels if y != -1}


def read_ptb_trees(
    path: str | Path,
    *,
    on_error: OnError = "raise",
    numeric_labels: bool = True,
    known_labels: Collection[int] | None = None,
    num_classes: int | None = None,
    classes_note: str | None = None,
) -> ReadResult:
    """Read a file of PTB-style trees (blank lines are ignored).

    Args:
        path: The file.
        on_error: ``"raise"`` stops at the first bad line; ``"skip"`` skips it, records it in
            :attr:`ReadResult.skipped` and logs one warning at the end (file, count, first lines).
        numeric_labels: Labels must be class ids 0, 1, 2... (see :func:`~nlp_lib.structure.brackets.parse_ptb`).
        known_labels: The labels training saw (``ReadResult.labels()`` of the training file);
            when given, a tree with any other label on a node is a bad line. For validation and
            test files.
        num_classes: The declared number of classes (``data.num_classes``): a label outside
            ``0..num_classes - 1`` on any node is a bad line. ``None``: labels up to
            :data:`~nlp_lib.data.bad_input.MAX_INFERRED_CLASSES` ``- 1`` are taken (the model's
            classes are inferred from them), a larger one is a bad line whose message says to
            set ``data.num_classes``.
        classes_note: Where ``num_classes`` comes from, for the message (default
            ``data.num_classes=N``).

    Raises:
        DataError: The file does not exist or holds no tree (empty, or every line skipped), or
            (``on_error="raise"``) a line is not valid UTF-8 (the byte offset and the bad bytes are
            named), not a tree (a negative label is one), has a label out of range or an unseen
            label; the message names the file and the line.
        ValueError: ``on_error`` is neither ``"raise"`` nor ``"skip"``.
    """
    check_on_error(on_error)
    p = regular_file(path)
    known = None if known_labels is None else set(known_labels)
    out = ReadResult()
    with p.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = decode_line(raw).strip()
                if not line:
                    continue
                tree = parse_ptb(line, numeric_labels=numeric_labels)
                if tree.labels is not None:
                    top = max(tree.labels)
                    if top >= (num_classes if num_classes is not None else MAX_INFERRED_CLASSES):
                        raise DataError(_out_of_range(top, num_classes, classes_note))
                if known is not None and tree.labels is not None:
                    bad = next((y for y in tree.labels if y != -1 and y not in known), None)
                    if bad is not None:
                        raise DataError(unseen_label(bad, known))
            except NlpLibError as e:
                if on_error == "raise":
                    raise DataError(str(e), path=str(p), line=lineno) from None
                out.skipped.append((lineno, str(e)))
                continue
            out.trees.append(tree)
            out.lines.append(lineno)
    report_skipped(log, p, out.skipped)
    if not out.trees:
        raise no_records(p, "trees", out.skipped)
    return out


def _out_of_range(label: int, num_classes: int | None, note: str | None) -> str:
    if num_classes is None:
        top = MAX_INFERRED_CLASSES - 1
        return (
            f"label {label} is larger than {top}: with no declared number of classes, labels are class ids "
            f"0..{top}; set data.num_classes to the number of classes to allow larger ones"
        )
    return (
        f"label {label} is outside the {num_classes} classes 0..{num_classes - 1} "
        f"({note or f'data.num_classes={num_classes}'})"
    )


_SST_BINARY = {0: 0, 1: 0, 2: -1, 3: 1, 4: 1}


def sst_binary(tree: Tree, neutral: bool = False) -> Tree | None:
    """SST-2 from a fine-grained SST tree: labels 0, 1 -> 0 (negative) and 3, 4 -> 1 (positive).

    Neutral (2) phrases get no label, or with ``neutral=True`` the label 2: a third class for phrases
    only, as in Tai et al. (2015)'s training, whose roots are then predicted among the first two
    (``data.root_classes=2``). Returns ``None`` for a tree whose root is neutral (SST-2 drops those
    sentences).
    """
    if tree.labels is None or tree.labels[-1] == 2:
        return None
    if not set(tree.labels) <= set(_SST_BINARY) | {-1}:
        raise DataError(f"binary SST needs labels 0..4, found {sorted(set(tree.labels))}")
    mapping = {**_SST_BINARY, 2: 2} if neutral else _SST_BINARY
    return Tree(parent=tree.parent, words=tree.words, labels=[mapping.get(x, -1) for x in tree.labels])
