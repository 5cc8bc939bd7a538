"""Parsers for bracketed trees: PTB style (SST) and unlabelled bracketings (ListOps).

Both produce a :class:`~nlp_lib.structure.tree.Tree` in post-order in one linear pass with an
explicit stack (no recursion, so trees of any depth parse). Errors are :class:`TreeFormatError`
with the character column; readers add the file name and line number.
"""

from __future__ import annotations

import re

from nlp_lib.errors import TreeFormatError
from nlp_lib.structure.tree import Tree

__all__ = ["parse_ptb", "parse_unlabelled", "to_ptb"]

_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_CLASS_ID = re.compile(r"[0-9]+")  # ASCII digits only: int() would also take "+3", "1_0" and "٣"


def _err(msg: str, col: int) -> TreeFormatError:
    return TreeFormatError(f"{msg} (column {col + 1})")


def _bad_label(label: str) -> str:
    if label.startswith("-") and _CLASS_ID.fullmatch(label[1:]):
        return f"label {label} is negative: labels are class ids 0, 1, 2, ..."
    try:
        int(label)
    except ValueError:
        return f"label {label!r} is not an integer"
    return f"label {label!r} is not written as a class id (the digits 0-9 only)"


def parse_ptb(text: str, *, numeric_labels: bool = True) -> Tree:
    """Parse a PTB-style tree such as ``(3 (2 It) (4 (3 is) (4 good)))``.

    Every node is ``(LABEL WORD)`` (a leaf) or ``(LABEL CHILD CHILD ...)``. Unary nodes are kept.
    A leaf's word may contain spaces (SST writes ``(2 8 1\\/2)``); they are kept in the word.

    Args:
        text: One tree.
        numeric_labels: Labels must be class ids, integers 0, 1, 2... (SST); ``False`` parses any
            label and returns an unlabelled tree (e.g. ``(S (NP ...))``).

    Returns:
        The tree, with the words at the leaves and one label per node.

    Raises:
        TreeFormatError: Unbalanced brackets, an empty node, a label that is not an integer or is
            negative (``-1`` would read as "no label"), a node with both a word and children, or
            text after the tree.
    """
    parent: list[int] = []
    words: list[str] = []
    labels: list[int] = []
    stack: list[list] = []  # open nodes: [label or None, child ids, word or None, column]
    done = False
    for m in _TOKEN.finditer(text):
        t, col = m.group(), m.start()
        if done:
            raise _err(f"unexpected {t!r} after the end of the tree", col)
        if t == "(":
            if stack:
                top = stack[-1]
                if top[0] is None:
                    top[0] = ""  # "( (S ...))": an empty root label
                if top[2] is not None:
                    raise _err("a node with a word cannot also have children", col)
            stack.append([None, [], None, col])
        elif t == ")":
            if not stack:
                raise _err("unbalanced ')'", col)
            label, kids, word, ocol = stack.pop()
            if label is None:
                raise _err("empty node '()'", ocol)
            if word is None and not kids:
                raise _err(f"node {label!r} has neither a word nor children", ocol)
            if numeric_labels:
                if not _CLASS_ID.fullmatch(label):
                    raise _err(_bad_label(label), ocol)
                lab = int(label)
            else:
                lab = -1
            nid = len(parent)
            parent.append(-1)
            words.append(word if word is not None else "")
            labels.append(lab)
            for k in kids:
                parent[k] = nid
            if stack:
                stack[-1][1].append(nid)
            else:
                done = True
        else:
            if not stack:
                raise _err(f"text {t!r} outside brackets", col)
            top = stack[-1]
            if top[0] is None:
                top[0] = t
            elif not top[1]:  # a leaf's word; SST has a few with spaces, e.g. "(2 8 1\/2)"
                top[2] = t if top[2] is None else f"{top[2]} {t}"
            else:
                raise _err(f"unexpected {t!r}: a node holds one word or child nodes", col)
    if stack:
        raise _err("unbalanced '(': the tree is not closed", stack[-1][3])
    if not parent:
        raise TreeFormatError("empty tree")
    return Tree(parent=parent, words=words, labels=labels if numeric_labels else None)


def parse_unlabelled(text: str) -> Tree:
    """Parse an unlabelled bracketing such as ListOps' ``( ( [MAX 2 ) 9 )``.

    Every token is a leaf; ``( A B ... )`` groups its members under a new node. A bare token is a
    one-node tree; several tokens at the top level without brackets are an error.

    Raises:
        TreeFormatError: Unbalanced brackets, an empty group or several top-level items.
    """
    parent: list[int] = []
    words: list[str] = []
    stack: list[tuple[list[int], int]] = []  # open groups: (child ids, column)
    top_level: list[int] = []
    for m in _TOKEN.finditer(text):
        t, col = m.group(), m.start()
        if t == "(":
            stack.append(([], col))
            continue
        if t == ")":
            if not stack:
                raise _err("unbalanced ')'", col)
            kids, ocol = stack.pop()
            if not kids:
                raise _err("empty group '( )'", ocol)
            nid = len(parent)
            parent.append(-1)
            words.append("")
            for k in kids:
                parent[k] = nid
        else:
            nid = len(parent)
            parent.append(-1)
            words.append(t)
        (stack[-1][0] if stack else top_level).append(nid)
        if not stack and len(top_level) > 1:
            raise _err("more than one tree on the line (missing brackets?)", col)
    if stack:
        raise _err("unbalanced '(': the tree is not closed", stack[-1][1])
    if not parent:
        raise TreeFormatError("empty tree")
    return Tree(parent=parent, words=words)


def to_ptb(tree: Tree) -> str:
    """Write a labelled tree back in PTB style (the inverse of :func:`parse_ptb`)."""
    kids = tree.children()
    out: list[str] = [""] * len(tree)
    labels = tree.labels or (-1,) * len(tree)
    for i in range(len(tree)):  # post-order: children are written before parents
        lab = str(labels[i])
        out[i] = f"({lab} {tree.words[i]})" if not kids[i] else f"({lab} {' '.join(out[k] for k in kids[i])})"
    return out[tree.root]
