"""ListOps: expressions (evaluation, the plain and bracketed forms) and a seeded generator.

ListOps (Nangia & Bowman, 2018, "ListOps: A Diagnostic Dataset for Latent Tree Learning",
NAACL Student Research Workshop) is a ten-way classification of nested list expressions such as
``[MAX 2 9 [MIN 4 7 ] 0 ]`` (value 9). The generator follows the rules in
``data/listops/RULES.md``:

* operators ``[MIN``, ``[MAX``, ``[MED`` (median truncated to an integer) and ``[SM`` (sum
  modulo 10), chosen uniformly; each operator list ends with ``]``;
* a node at depth ``d < max_depth`` is an operator with probability ``p_operator``, otherwise a
  digit 0-9 drawn uniformly; an operator has a uniform number of arguments in
  ``[min_args, max_args]``, each drawn at depth ``d + 1``; at ``max_depth`` every node is a digit;
* examples are de-duplicated and labelled with the value of the expression.

Expressions come in two forms. The *plain* sequence is the list of tokens ``[MAX 2 9 [MIN 4 7 ]
0 ]``. The *bracketed* form, used in the official files (one ``<label>\\t<expression>`` a line),
binarises every operator list left-branching over ``op, a1, ..., ak, ]``::

    [MAX 2 9 [MIN 4 7 ] 0 ]  ->  ( ( ( ( ( [MAX 2 ) 9 ) ( ( ( [MIN 4 ) 7 ) ] ) ) 0 ) ] )

Dropping ``(`` and ``)`` from the bracketed form gives the plain sequence back. The *length* of an
expression is its number of non-bracket tokens (operators, digits and ``]``), i.e. the length of
the plain sequence.

The official file format (one ``<label>\\t<expression>`` a line) is written and read by
:mod:`nlp_lib.data.listops_files`. Everything here is pure Python: one :class:`random.Random` per
call, no global random state, no recursion (expressions of any depth are handled with explicit
stacks).
"""

from __future__ import annotations

import math
import random
import re
import statistics
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from nlp_lib.constraints import PositiveInt
from nlp_lib.errors import DataError

__all__ = [
    "OPERATORS",
    "CLOSE",
    "ListOpsExample",
    "generate_listops",
    "generate_splits",
    "evaluate",
    "to_plain",
    "to_bracketed",
]

OPERATORS: tuple[str, ...] = ("[MIN", "[MAX", "[MED", "[SM")
"""The operator tokens, in the order the generator draws them from."""

CLOSE = "]"
"""The token that ends an operator list."""

_DIGITS = frozenset("0123456789")
_TOKEN = re.compile(r"\(|\)|[^\s()]+")  # the same tokenisation as nlp_lib.structure.brackets
_MAX_EXPECTED_LENGTH = 1e7  # refuse parameters whose expressions would not fit in memory


class ListOpsExample(NamedTuple):
    """One example: the label (the value, 0-9) and the bracketed expression."""

    label: int
    expression: str


# --------------------------------------------------------------------------------------------
# Expressions: tokens, evaluation, formatting
# --------------------------------------------------------------------------------------------


def _tokens(expr: str | Sequence[str]) -> list[str]:
    return _TOKEN.findall(expr) if isinstance(expr, str) else list(expr)


def to_plain(expr: str | Sequence[str]) -> list[str]:
    """The plain token sequence of an expression: its tokens without ``(`` and ``)``.

    Args:
        expr: An expression, bracketed or plain, as a string or a list of tokens.

    Returns:
        The tokens other than ``(`` and ``)``, in order.
    """
    return [t for t in _tokens(expr) if t not in ("(", ")")]


def _apply(op: str, args: list[int]) -> int:
    if op == "[MIN":
        return min(args)
    if op == "[MAX":
        return max(args)
    if op == "[MED":
        return int(statistics.median(args))
    return sum(args) % 10  # [SM


def evaluate(expr: str | Sequence[str]) -> int:
    """The value of an expression (brackets ``(``/``)`` are ignored, so either form works).

    ``[MED`` is ``int(statistics.median(args))``: the median of an even number of arguments is
    the mean of the middle two, truncated (``[MED 2 3 4 5 ]`` is 3).

    Args:
        expr: An expression, bracketed or plain, as a string or a list of tokens.

    Returns:
        The value, 0-9.

    Raises:
        DataError: The expression is empty, has an unknown token, an operator list without
            arguments or without its ``]``, a stray ``]``, or more than one top-level item.
    """
    stack: list[tuple[str, list[int]]] = []
    result: int | None = None
    for t in to_plain(expr):
        if t in OPERATORS:
            if result is not None and not stack:
                raise DataError(f"unexpected {t!r} after the end of the expression")
            stack.append((t, []))
            continue
        if t == CLOSE:
            if not stack:
                raise DataError("']' without an open operator list")
            op, args = stack.pop()
            if not args:
                raise DataError(f"operator list {op!r} has no arguments")
            value = _apply(op, args)
        elif len(t) == 1 and t in _DIGITS:
            value = int(t)
        else:
            raise DataError(f"unknown token {t!r} (expected a digit, {', '.join(OPERATORS)} or ']')")
        if stack:
            stack[-1][1].append(value)
        elif result is None:
            result = value
        else:
            raise DataError(f"unexpected {t!r} after the end of the expression")
    if stack:
        raise DataError(f"operator list {stack[-1][0]!r} is not closed with ']'")
    if result is None:
        raise DataError("empty expression")
    return result


def to_bracketed(expr: str | Sequence[str]) -> str:
    """The official left-branching bracketed form of an expression.

    An operator list ``op a1 ... ak ]`` becomes ``( ... ( ( op a1 ) a2 ) ... ak ) ] )``; a nested
    list argument is bracketed the same way, a digit stays a bare token.

    Args:
        expr: An expression, plain or already bracketed (brackets are dropped first), as a string
            or a list of tokens.

    Returns:
        The bracketed expression, tokens separated by single spaces.

    Raises:
        DataError: The expression is malformed (see :func:`evaluate`).
    """
    plain = to_plain(expr)
    evaluate(plain)  # validates the structure
    # Number of items after each operator (its arguments plus the closing "]"): that many "(".
    items = [0] * len(plain)
    open_ops: list[int] = []
    for i, t in enumerate(plain):
        if open_ops:
            items[open_ops[-1]] += 1
        if t in OPERATORS:
            open_ops.append(i)
        elif t == CLOSE:
            open_ops.pop()
    out: list[str] = []
    depth = 0  # operator lists open at this point
    for i, t in enumerate(plain):
        if t in OPERATORS:
            out.extend("(" * items[i])
            out.append(t)
            depth += 1
            continue
        out.append(t)
        if t == CLOSE:
            out.append(")")  # closes this list's last pair, "( <prev> ] )"
            depth -= 1
        if depth:
            out.append(")")  # the item just completed closes a "( <prev> item )" of its list
    return " ".join(out)


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Params:
    max_depth: int
    min_args: int
    max_args: int
    p_operator: float
    min_length: int | None
    max_length: int | None
    require_operator_root: bool


def _check_params(p: _Params) -> None:
    if p.max_depth < 0:
        raise ValueError(f"max_depth must be at least 0, got {p.max_depth}")
    if not 1 <= p.min_args <= p.max_args:
        raise ValueError(f"need 1 <= min_args <= max_args, got min_args={p.min_args}, max_args={p.max_args}")
    if not 0.0 <= p.p_operator <= 1.0:
        raise ValueError(f"p_operator must lie in [0, 1], got {p.p_operator}")
    for name, v in (("min_length", p.min_length), ("max_length", p.max_length)):
        if v is not None and v < 1:
            raise ValueError(f"{name} must be at least 1 (or None for no bound), got {v}")
    if p.min_length is not None and p.max_length is not None and p.min_length > p.max_length:
        raise ValueError(f"min_length ({p.min_length}) is larger than max_length ({p.max_length})")
    if p.require_operator_root:
        if p.max_depth == 0 or p.p_operator == 0.0:
            raise ValueError(
                "require_operator_root=True needs operators: max_depth >= 1 and p_operator > 0 "
                f"(got max_depth={p.max_depth}, p_operator={p.p_operator})"
            )
        shortest = p.min_args + 2  # "[OP d1 ... dk ]"
        if p.max_length is not None and p.max_length < shortest:
            raise ValueError(
                f"max_length={p.max_length} is shorter than the shortest operator expression "
                f"({shortest} tokens with min_args={p.min_args})"
            )
    if p.max_length is None:
        # Expected length E(d) of an expression drawn at depth d: E(max_depth) = 1 and
        # E(d) = (1 - p) + p * (2 + mean_args * E(d + 1)). Without a length bound, a draw that
        # is expected to be astronomically long would never finish.
        mean_args = (p.min_args + p.max_args) / 2
        expected = 1.0
        for _ in range(p.max_depth):
            expected = (1 - p.p_operator) + p.p_operator * (2 + mean_args * expected)
            if expected > _MAX_EXPECTED_LENGTH or math.isinf(expected):
                break
        if expected > _MAX_EXPECTED_LENGTH:
            raise ValueError(
                f"expressions would be about {expected:.3g} tokens long on average "
                f"(p_operator={p.p_operator}, mean args {mean_args}, max_depth={p.max_depth}); "
                "lower p_operator, max_args or max_depth, or set max_length"
            )


def _draw(rng: random.Random, p: _Params) -> list[str] | None:
    """One expression as a plain token list, drawn in pre-order; ``None`` if it exceeds max_length."""
    tokens: list[str] = []
    remaining: list[int] = []  # arguments still to draw, per open operator list
    limit = p.max_length
    while True:
        if len(remaining) < p.max_depth and rng.random() < p.p_operator:
            tokens.append(rng.choice(OPERATORS))
            remaining.append(rng.randint(p.min_args, p.max_args))
            if limit is not None and len(tokens) > limit:
                return None
            continue  # next: its first argument, one level deeper
        tokens.append(str(rng.randrange(10)))
        while remaining:  # a node is complete: close every list that has all its arguments
            remaining[-1] -= 1
            if remaining[-1]:
                break
            remaining.pop()
            tokens.append(CLOSE)
        if limit is not None and len(tokens) > limit:
            return None
        if not remaining:
            return tokens


def _distinct_stream(rng: random.Random, p: _Params, total: int, max_attempts: int | None) -> Iterator[ListOpsExample]:
    """Yields ``total`` distinct examples, or raises ValueError when the attempts run out."""
    attempts_allowed = max_attempts if max_attempts is not None else 100 * total + 10_000
    seen: set[tuple[str, ...]] = set()
    attempts = 0
    while len(seen) < total:
        if attempts >= attempts_allowed:
            raise ValueError(
                f"found only {len(seen)} distinct ListOps expressions of the {total} requested after "
                f"{attempts} attempts: the parameters (max_depth={p.max_depth}, "
                f"args {p.min_args}-{p.max_args}, p_operator={p.p_operator}, "
                f"length {p.min_length}-{p.max_length}) allow too few distinct expressions, or the "
                "length bounds reject most draws; ask for fewer examples, widen the parameters or "
                "raise max_attempts"
            )
        attempts += 1
        tokens = _draw(rng, p)
        if tokens is None:
            continue
        if p.require_operator_root and tokens[0] not in OPERATORS:
            continue
        if p.min_length is not None and len(tokens) < p.min_length:
            continue
        key = tuple(tokens)
        if key in seen:
            continue
        seen.add(key)
        yield ListOpsExample(evaluate(tokens), to_bracketed(tokens))


def generate_splits(
    sizes: Mapping[str, int],
    seed: int,
    *,
    max_depth: PositiveInt = 20,
    min_args: int = 2,
    max_args: int = 5,
    p_operator: float = 0.25,
    min_length: int | None = None,
    max_length: PositiveInt | None = None,
    require_operator_root: bool = True,
    max_attempts: int | None = None,
) -> dict[str, list[ListOpsExample]]:
    """Generate several splits from one random stream, with no expression in two splits.

    The splits are filled in the order of ``sizes`` from a single ``random.Random(seed)`` stream
    of distinct expressions, so the same arguments always give the same splits, and no
    expression appears twice in a split or in two splits. Changing one size changes the splits
    that come after it in ``sizes``.

    Args:
        sizes: Split name to number of examples, e.g. ``{"train": 90000, "val": 5000}``.
        seed: Seed of the random stream.
        max_depth: Depth at which every node is a digit (the root is at depth 0), so operators
            nest at most ``max_depth`` deep.
        min_args: Fewest arguments of an operator.
        max_args: Most arguments of an operator.
        p_operator: Probability that a node above ``max_depth`` is an operator.
        min_length: Reject expressions with fewer non-bracket tokens (``None``: no bound).
        max_length: Reject expressions with more non-bracket tokens (``None``: no bound).
        require_operator_root: Reject expressions that are a bare digit (as in the official data).
        max_attempts: Draws allowed before giving up (default ``100 * total + 10000``).

    Returns:
        Split name to its examples ``(label, bracketed expression)``.

    Raises:
        ValueError: A parameter is out of range, or not enough distinct expressions were found
            within ``max_attempts`` draws (e.g. more examples requested than the space holds).
    """
    params = _Params(max_depth, min_args, max_args, p_operator, min_length, max_length, require_operator_root)
    _check_params(params)
    for name, n in sizes.items():
        if n < 0:
            raise ValueError(f"split {name!r}: the number of examples must be at least 0, got {n}")
    stream = _distinct_stream(random.Random(seed), params, sum(sizes.values()), max_attempts)
    return {name: [next(stream) for _ in range(n)] for name, n in sizes.items()}


def generate_listops(
    num_examples: int,
    seed: int,
    *,
    max_depth: PositiveInt = 20,
    min_args: int = 2,
    max_args: int = 5,
    p_operator: float = 0.25,
    min_length: int | None = None,
    max_length: PositiveInt | None = None,
    require_operator_root: bool = True,
    max_attempts: int | None = None,
) -> list[ListOpsExample]:
    """Generate ``num_examples`` distinct ListOps examples, deterministically from ``seed``.

    The arguments are those of :func:`generate_splits`; the result equals
    ``generate_splits({"data": num_examples}, seed, ...)["data"]``.

    Returns:
        The examples ``(label, bracketed expression)``.

    Raises:
        ValueError: See :func:`generate_splits`.
    """
    return generate_splits(
        {"data": num_examples},
        seed,
        max_depth=max_depth,
        min_args=min_args,
        max_args=max_args,
        p_operator=p_operator,
        min_length=min_length,
        max_length=max_length,
        require_operator_root=require_operator_root,
        max_attempts=max_attempts,
    )["data"]
