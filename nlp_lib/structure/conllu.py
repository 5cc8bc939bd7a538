"""Dependency trees from CoNLL-U (Universal Dependencies' format): one word a line, 10 tab-separated columns.

``ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC``; sentences end with a blank line; ``#`` lines
are comments (``# sent_id = ...``, ``# text = ...`` are kept). Multiword-token lines (``3-4``) and
empty nodes (``8.1``) are skipped: the tree is over the syntactic words. ``HEAD`` is the 1-based
index of the word's head, ``0`` for the root.

Each sentence becomes a :class:`~nlp_lib.structure.Tree` with one node per word, numbered in
post-order (every word after its dependents, dependents in sentence order, the root last), which is
the order the schedules need; ``position`` maps nodes back to sentence positions. Every node has a
word, so a child-sum cell reads an input at every node.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from nlp_lib.errors import DataError, TreeFormatError
from nlp_lib.structure.tree import Tree

__all__ = ["DependencyTree", "parse_conllu"]


@dataclass(frozen=True)
class DependencyTree:
    """One CoNLL-U sentence as a tree.

    Attributes:
        tree: Nodes in post-order (see the module docstring); ``tree.words`` are the word forms.
        position: Per node, its 1-based position in the sentence.
        deprel: Per node, its dependency relation (``DEPREL``).
        upos: Per node, its universal part of speech (``UPOS``).
        sent_id: The ``# sent_id`` comment, if any.
        text: The ``# text`` comment, if any.
        comments: Every ``# key = value`` comment of the sentence (e.g. a sentence label).
        line: The line the sentence starts on.
    """

    tree: Tree
    position: tuple[int, ...]
    deprel: tuple[str, ...]
    upos: tuple[str, ...]
    sent_id: str | None = None
    text: str | None = None
    comments: dict[str, str] = field(default_factory=dict)
    line: int = 0

    def sentence(self) -> list[str]:
        """The words in sentence order."""
        out = [""] * len(self.position)
        for node, pos in enumerate(self.position):
            out[pos - 1] = self.tree.words[node]
        return out


def parse_conllu(
    lines: Iterable[str],
    source: str = "<conllu>",
    *,
    on_error: Literal["raise", "skip"] = "raise",
    skipped: list[tuple[int, str]] | None = None,
    skipped_lines: list[int] | None = None,
) -> Iterator[DependencyTree]:
    """Parse CoNLL-U lines into dependency trees, one per sentence.

    Args:
        lines: The file's lines (with or without their newlines). Bytes that were not UTF-8,
            decoded with ``errors="surrogateescape"``, make their line bad.
        source: Name used in error messages (the file's path).
        on_error: ``"raise"`` stops at the first bad line; ``"skip"`` leaves out the whole
            sentence holding it (a tree cannot be built without one of its words).
        skipped: With ``on_error="skip"``, ``(line number, problem)`` of each sentence left out
            (the line is its first bad line) is appended here.
        skipped_lines: With ``on_error="skip"``, the number of lines (comments included) of each
            sentence left out is appended here, in the order of ``skipped``.

    Raises:
        TreeFormatError: naming ``source`` and the line: a line without 10 columns, an ID or HEAD
            that is not a number in range, a sentence without exactly one root, or a cycle.
        DataError: naming ``source`` and the line: a line with undecodable bytes (the byte offset
            in the line and the bytes are named).
        ValueError: ``on_error`` is neither ``"raise"`` nor ``"skip"``.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    rows: list[tuple[int, list[str]]] = []
    comments: dict[str, str] = {}
    start = 1
    last = 0  # the current sentence's last line
    bad: tuple[int, str] | None = None  # the current sentence's first bad line (on_error="skip")

    def leave_out(entry: tuple[int, str]) -> None:
        if skipped is not None:
            skipped.append(entry)
        if skipped_lines is not None:
            skipped_lines.append(last - start + 1)

    def finish() -> Iterator[DependencyTree]:
        if bad is not None:
            leave_out(bad)
            return
        if not rows:
            return
        try:
            yield _sentence(rows, comments, source, start)
        except TreeFormatError as e:
            if on_error == "raise":
                raise
            leave_out((e.line or start, _problem(e)))

    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip("\n").rstrip("\r")
        if not line.strip():
            yield from finish()
            rows, comments, start, bad = [], {}, lineno + 1, None
            continue
        last = lineno
        if bad is not None:
            continue  # the rest of a sentence already skipped
        try:
            _check_decoded(line, source, lineno)
            if line.startswith("#"):
                key, sep, value = line[1:].partition("=")
                if sep:
                    comments[key.strip()] = value.strip()
                continue
            cols = line.split("\t")
            if len(cols) != 10:
                raise TreeFormatError(f"expected 10 tab-separated columns, found {len(cols)}", path=source, line=lineno)
        except DataError as e:
            if on_error == "raise":
                raise
            bad = (lineno, _problem(e))
            continue
        if "-" in cols[0] or "." in cols[0]:  # multiword token or empty node
            continue
        rows.append((lineno, cols))
    yield from finish()


_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, after errors="surrogateescape"


def _check_decoded(line: str, source: str, lineno: int) -> None:
    m = _UNDECODABLE.search(line)
    if m is not None:
        offset = len(line[: m.start()].encode("utf-8", "surrogateescape")) + 1
        bad = line[m.start()].encode("utf-8", "surrogateescape")
        raise DataError(f"not valid UTF-8 (byte {offset} of the line: {bad!r})", path=source, line=lineno)


def _problem(e: DataError) -> str:
    """The message of a DataError without its ``path:line: `` prefix."""
    return str(e).removeprefix(f"{e.path}:{e.line}: ") if e.path is not None else str(e)


def _sentence(rows: list[tuple[int, list[str]]], comments: dict[str, str], source: str, start: int) -> DependencyTree:
    n = len(rows)
    heads: list[int] = []
    for i, (lineno, cols) in enumerate(rows, 1):
        try:
            ident, head = int(cols[0]), int(cols[6])
        except ValueError:
            raise TreeFormatError(
                path=source, line=lineno, message=f"ID {cols[0]!r} and HEAD {cols[6]!r} must be integers"
            ) from None
        if ident != i:
            raise TreeFormatError(
                path=source, line=lineno, message=f"word IDs must run 1, 2, 3...; expected {i}, found {ident}"
            )
        if not 0 <= head <= n:
            raise TreeFormatError(path=source, line=lineno, message=f"HEAD {head} is outside the sentence (0..{n})")
        if head == ident:
            raise TreeFormatError(path=source, line=lineno, message=f"word {ident} is its own head")
        heads.append(head)
    roots = [i for i, h in enumerate(heads, 1) if h == 0]
    if len(roots) != 1:
        raise TreeFormatError(
            f"the sentence starting here has {len(roots)} roots (HEAD 0); a tree needs exactly one",
            path=source,
            line=start,
        )
    kids: list[list[int]] = [[] for _ in range(n + 1)]
    for i, h in enumerate(heads, 1):
        kids[h].append(i)
    order: list[int] = []  # post-order over 1-based word ids, dependents in sentence order
    stack = [(roots[0], 0)]
    while stack:
        w, k = stack.pop()
        if k < len(kids[w]):
            stack.append((w, k + 1))
            stack.append((kids[w][k], 0))
        else:
            order.append(w)
    if len(order) != n:
        lineno = rows[next(i for i in range(n) if i + 1 not in set(order))][0]
        raise TreeFormatError(path=source, line=lineno, message="this word is on a cycle of HEADs, not under the root")
    node_of = {w: j for j, w in enumerate(order)}
    parent = [node_of[heads[w - 1]] if heads[w - 1] else -1 for w in order]
    cols = [rows[w - 1][1] for w in order]
    return DependencyTree(
        tree=Tree(parent=parent, words=[c[1] for c in cols]),
        position=tuple(order),
        deprel=tuple(c[7] for c in cols),
        upos=tuple(c[3] for c in cols),
        sent_id=comments.get("sent_id"),
        text=comments.get("text"),
        comments=dict(comments),
        line=start,
    )
