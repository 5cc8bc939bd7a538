"""Readers for tree files: PTB-style bracketed trees, one a line (the SST format), and CoNLL-U dependency trees."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nlp_lib.errors import DataError, NlpLibError
from nlp_lib.structure.brackets import parse_ptb
from nlp_lib.structure.conllu import DependencyTree, parse_conllu
from nlp_lib.structure.tree import Tree

__all__ = ["read_ptb_trees", "read_conllu", "ReadResult", "OnError"]

OnError = Literal["raise", "skip"]


@dataclass
class ReadResult:
    """Records read from a file, and the lines skipped with ``on_error="skip"``.

    Attributes:
        trees: The trees read, in file order.
        skipped: ``(line number, message)`` of every line skipped.
    """

    trees: list[Tree] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)


def read_ptb_trees(path: str | Path, *, on_error: OnError = "raise", numeric_labels: bool = True) -> ReadResult:
    """Read a file of PTB-style trees (blank lines are ignored).

    Args:
        path: The file.
        on_error: ``"raise"`` stops at the first bad line; ``"skip"`` skips it and records it.
        numeric_labels: Labels must be integers (see :func:`~nlp_lib.structure.brackets.parse_ptb`).

    Raises:
        DataError: The file does not exist, or a line is not valid UTF-8 or not a tree (the
            message names the file and the line).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError("file does not exist" if not p.exists() else "not a file", path=str(p))
    out = ReadResult()
    with p.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                try:
                    line = raw.decode("utf-8").strip()
                except UnicodeDecodeError as e:
                    raise DataError(f"not valid UTF-8 (byte {e.start + 1}: {raw[e.start : e.start + 1]!r})") from None
                if not line:
                    continue
                out.trees.append(parse_ptb(line, numeric_labels=numeric_labels))
            except NlpLibError as e:
                if on_error == "raise":
                    raise DataError(str(e), path=str(p), line=lineno) from None
                out.skipped.append((lineno, str(e)))
    return out


def read_conllu(path: str | Path) -> list[DependencyTree]:
    """Read a CoNLL-U file of dependency trees (see :mod:`nlp_lib.structure.conllu`).

    Raises:
        DataError: The file does not exist or is not valid UTF-8.
        TreeFormatError: A malformed sentence (the message names the file and the line).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError("file does not exist" if not p.exists() else "not a file", path=str(p))
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        line = p.read_bytes()[: e.start].count(b"\n") + 1
        raise DataError(f"not valid UTF-8 (byte {e.start + 1} of the file)", path=str(p), line=line) from None
    return list(parse_conllu(text.splitlines(), source=str(p)))
