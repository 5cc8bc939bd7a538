"""SCAN: the grammar's full command set, the official file format, and the three classic splits.

SCAN (Lake & Baroni, 2018, "Generalization without Systematicity: On the Compositional Skills of
Sequence-to-Sequence Recurrent Networks", ICML) maps navigation commands such as
``jump twice after walk`` to action sequences such as ``I_WALK I_JUMP I_JUMP``. The commands are
every sentence of a small, non-recursive grammar::

    C -> S and S | S after S | S
    S -> V twice | V thrice | V
    V -> D[1] opposite D[2] | D[1] around D[2] | D | U
    D -> U left | U right | turn left | turn right
    U -> walk | look | run | jump

(``D[1] opposite D[2]`` reads as one direction word: ``walk opposite left``, never
``walk left opposite right``). Its semantics, written here from the paper:

* ``walk``, ``look``, ``run``, ``jump`` -> ``I_WALK``, ``I_LOOK``, ``I_RUN``, ``I_JUMP``; ``turn``
  alone does nothing;
* ``u left`` -> ``I_TURN_LEFT u`` (``turn left`` -> ``I_TURN_LEFT``), likewise ``right``;
* ``u opposite left`` -> ``I_TURN_LEFT I_TURN_LEFT u`` (``turn opposite left`` -> two turns);
* ``u around left`` -> ``(I_TURN_LEFT u)`` four times (``turn around left`` -> four turns);
* ``x twice`` / ``x thrice`` repeat ``x`` two / three times;
* ``x1 and x2`` -> ``x1 x2``; ``x1 after x2`` -> ``x2 x1``.

The grammar has 4 primitives, 10 directed phrases ``D``, 34 verb phrases ``V``, 102 phrases
``S`` and ``102 + 2 * 102 ** 2 = 20,910`` commands, each with a single action sequence: exactly
the official ``tasks.txt``.

Official files hold one example a line, ``IN: <command> OUT: <actions>``
(:func:`read_scan`, :func:`read_scan_split`). :func:`scan_splits` rebuilds the three classic
experiments from the command set:

* ``"simple"``: a seeded random 80/20 train/test split (official sizes 16,728 / 4,182);
* ``"length"``: train on the commands of at most 22 actions, test on the longer ones
  (16,990 / 3,920);
* ``"add_prim_jump"`` (alias ``"add_jump"``): train on every command without the word ``jump``
  plus the lone primitive ``("jump", "I_JUMP")``, test on every other ``jump`` command
  (13,204 distinct training commands / 7,706). The official training file repeats the ``jump``
  example 1,467 times (13,203 + 1,467 = 14,670 lines) to balance it; :func:`scan_splits` keeps a
  single copy and leaves oversampling to the caller.

A validation set is then carved from train, so every split has ``train``, ``val`` and ``test``.
"""

from __future__ import annotations

import gzip
import logging
import random
from collections.abc import Iterable, Iterator
from pathlib import Path

from nlp_lib.data.bad_input import OnError, check_on_error, decode_line, no_records, regular_file, report_skipped
from nlp_lib.errors import ConfigError, DataError

__all__ = [
    "PRIMITIVES",
    "SPLITS",
    "SPLIT_ALIASES",
    "SPLIT_FILES",
    "LENGTH_CUTOFF",
    "generate_scan",
    "read_scan",
    "scan_splits",
    "read_scan_split",
]

logger = logging.getLogger(__name__)

Example = tuple[str, str]

PRIMITIVES: dict[str, str] = {"walk": "I_WALK", "look": "I_LOOK", "run": "I_RUN", "jump": "I_JUMP"}
"""The primitive verbs ``U`` and their actions."""

SPLITS: tuple[str, ...] = ("simple", "length", "add_prim_jump")
"""The split names :func:`scan_splits` and :func:`read_scan_split` know (see also :data:`SPLIT_ALIASES`)."""

SPLIT_ALIASES: dict[str, str] = {"add_jump": "add_prim_jump"}
"""Other accepted names of the splits."""

SPLIT_FILES: dict[str, tuple[str, str]] = {
    "simple": ("simple_split/tasks_train_simple.txt", "simple_split/tasks_test_simple.txt"),
    "length": ("length_split/tasks_train_length.txt", "length_split/tasks_test_length.txt"),
    "add_prim_jump": ("add_prim_split/tasks_train_addprim_jump.txt", "add_prim_split/tasks_test_addprim_jump.txt"),
}
"""The official train and test files of each split, relative to the SCAN directory."""

LENGTH_CUTOFF = 22
"""The ``"length"`` split trains on action sequences of at most this many actions."""

_TURNS = {"left": "I_TURN_LEFT", "right": "I_TURN_RIGHT"}
_REPEATS = {"twice": 2, "thrice": 3}
_JUMP = "jump"
_JUMP_EXAMPLE: Example = ("jump", "I_JUMP")


# --------------------------------------------------------------------------------------------
# The grammar
# --------------------------------------------------------------------------------------------


def _verb_phrases() -> Iterator[tuple[str, list[str]]]:
    """Every ``V`` with its actions (``D`` and ``U`` are among them)."""
    verbs: list[tuple[str, list[str]]] = [(u, [a]) for u, a in PRIMITIVES.items()] + [("turn", [])]
    for direction, turn in _TURNS.items():
        for verb, act in verbs:
            yield f"{verb} {direction}", [turn, *act]  # D
            yield f"{verb} opposite {direction}", [turn, turn, *act]
            yield f"{verb} around {direction}", [turn, *act] * 4
    for u, a in PRIMITIVES.items():
        yield u, [a]  # U


def _phrases() -> list[tuple[str, list[str]]]:
    """Every ``S`` with its actions."""
    out = []
    for v, act in _verb_phrases():
        out.append((v, act))
        for word, n in _REPEATS.items():
            out.append((f"{v} {word}", act * n))
    return out


def generate_scan() -> list[Example]:
    """Every command of the SCAN grammar with its action sequence.

    Returns:
        The 20,910 ``(command, actions)`` pairs, both space-separated strings, sorted by command;
        e.g. ``("jump twice after walk", "I_WALK I_JUMP I_JUMP")``.
    """
    phrases = _phrases()
    out = [(s, " ".join(act)) for s, act in phrases]
    for s1, a1 in phrases:
        for s2, a2 in phrases:
            out.append((f"{s1} and {s2}", " ".join(a1 + a2)))
            out.append((f"{s1} after {s2}", " ".join(a2 + a1)))
    out.sort()
    return out


# --------------------------------------------------------------------------------------------
# Reading the official files
# --------------------------------------------------------------------------------------------


def _parse_line(line: str) -> Example:
    # Whitespace-separated words, not a regular expression: r"IN:\s+(\S.*?)\s+OUT:\s+(\S.*)" took
    # quadratic time on a long run of spaces (minutes for a line of a few hundred thousand).
    words = line.split()
    if len(words) < 4 or words[0] != "IN:" or words.count("OUT:") != 1:
        raise ValueError
    out = words.index("OUT:")
    if out < 2 or out == len(words) - 1 or "IN:" in words[1:out]:  # no command, no actions, or IN: twice
        raise ValueError
    return " ".join(words[1:out]), " ".join(words[out + 1 :])


def _raw_lines(p: Path) -> Iterator[bytes]:
    with p.open("rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    if gz or p.suffix == ".gz":
        try:
            with gzip.open(p, "rb") as f:
                yield from f
        except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
            raise DataError(f"not a readable gzip file: {e}", path=str(p)) from None
    else:
        with p.open("rb") as f:
            yield from f


def read_scan(path: str | Path, *, on_error: OnError = "raise") -> list[Example]:
    """Read a SCAN file, one ``IN: <command> OUT: <actions>`` a line, plain or gzipped.

    Blank lines are skipped; runs of whitespace inside the command and actions become one space.
    A file is read as gzip when its name ends with ``.gz`` or its content starts with the gzip
    magic bytes.

    Args:
        path: The file.
        on_error: ``"raise"`` stops at the first bad line; ``"skip"`` skips bad lines and logs
            one warning with their count and the first few (line number and problem).

    Returns:
        The ``(command, actions)`` pairs in file order, duplicates kept.

    Raises:
        DataError: The file does not exist, is not readable gzip or holds no example (empty, or
            every line skipped), or (with ``on_error="raise"``) a line is not valid UTF-8 (byte
            offset and bytes named) or not of the form ``IN: <command> OUT: <actions>``; the
            message names the file and the 1-based line.
        ValueError: ``on_error`` is neither ``"raise"`` nor ``"skip"``.
    """
    check_on_error(on_error)
    p = regular_file(path)
    out: list[Example] = []
    bad: list[tuple[int, str]] = []
    for lineno, raw in enumerate(_raw_lines(p), start=1):
        try:
            line = decode_line(raw)
            if not line.strip():
                continue
            try:
                out.append(_parse_line(line))
            except ValueError:
                raise DataError(f"expected 'IN: <command> OUT: <actions>', got {line.rstrip()[:60]!r}") from None
        except DataError as e:
            if on_error == "raise":
                raise DataError(str(e), path=str(p), line=lineno) from None
            bad.append((lineno, str(e)))
    report_skipped(logger, p, bad)
    if not out:
        raise no_records(p, "examples", bad)
    return out


def _canonical_split(split: str) -> str:
    name = SPLIT_ALIASES.get(split, split)
    if name not in SPLITS:
        valid = ", ".join([*SPLITS, *SPLIT_ALIASES])
        raise ConfigError(f"data.split: unknown SCAN split {split!r}; valid: {valid}")
    return name


def read_scan_split(directory: str | Path, split: str, *, on_error: OnError = "raise") -> dict[str, list[Example]]:
    """Read the official train and test files of a split.

    Args:
        directory: The SCAN directory (``data.path``), holding ``simple_split/``,
            ``length_split/`` and ``add_prim_split/`` (see :data:`SPLIT_FILES`).
        split: ``"simple"``, ``"length"`` or ``"add_prim_jump"`` (alias ``"add_jump"``).
        on_error: What to do with a bad line (see :func:`read_scan`).

    Returns:
        ``{"train": [...], "test": [...]}`` exactly as in the files (the official
        ``add_prim_jump`` train file repeats ``("jump", "I_JUMP")``; the repeats are kept).

    Raises:
        ConfigError: ``split`` is unknown (the message names ``data.split``).
        DataError: A file is missing (the message names it and ``data.path``) or malformed.
    """
    name = _canonical_split(split)
    root = Path(directory)
    out: dict[str, list[Example]] = {}
    for part, rel in zip(("train", "test"), SPLIT_FILES[name], strict=True):
        p = root / rel
        if not p.is_file():
            found = "is a directory, not a file" if p.is_dir() else "not found"
            raise DataError(f"data.path: SCAN {name!r} {part} file {found} at '{p}' (expected {rel} under '{root}')")
        out[part] = read_scan(p, on_error=on_error)
    return out


# --------------------------------------------------------------------------------------------
# The splits
# --------------------------------------------------------------------------------------------


def _random_part(items: list[Example], fraction: float, rng: random.Random) -> tuple[list[Example], list[Example]]:
    """Split ``items`` into (rest, part) with ``round(fraction * len(items))`` items in part."""
    order = list(range(len(items)))
    rng.shuffle(order)
    k = round(fraction * len(items))
    chosen = set(order[:k])
    rest = [x for i, x in enumerate(items) if i not in chosen]
    part = [x for i, x in enumerate(items) if i in chosen]
    return rest, part


def scan_splits(
    examples: Iterable[Example], split: str, seed: int = 0, val_fraction: float = 0.1
) -> dict[str, list[Example]]:
    """Build a classic SCAN split from a set of examples (normally :func:`generate_scan`).

    * ``"simple"``: a random 80/20 train/test split (``round(0.2 * n)`` test examples).
    * ``"length"``: train on the examples of at most :data:`LENGTH_CUTOFF` (22) actions, test on
      the longer ones.
    * ``"add_prim_jump"`` / ``"add_jump"``: train on every example whose command lacks the word
      ``jump`` plus the primitive example(s) whose command is ``jump`` alone, test on the other
      ``jump`` commands. The primitive is *not* repeated (the official train file repeats it to
      balance it); it is also never moved to ``val``, so the model always sees it.

    Then ``round(val_fraction * len(train))`` training examples (chosen at random) become ``val``.
    The examples are sorted first, so the result depends on their set, not their order, and every
    returned list is sorted by command.

    Args:
        examples: ``(command, actions)`` pairs.
        split: ``"simple"``, ``"length"``, ``"add_prim_jump"`` or ``"add_jump"``.
        seed: Seed of the random choices (one :class:`random.Random`, no global state).
        val_fraction: Fraction of train moved to ``val``, in ``[0, 1)``.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``.

    Raises:
        ConfigError: ``split`` is unknown (the message names ``data.split`` and the valid names),
            or ``val_fraction`` is not in ``[0, 1)``.
        DataError: ``"add_prim_jump"`` is asked for and no example has the command ``jump``.
    """
    name = _canonical_split(split)
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"data.val_fraction: must be in [0, 1), got {val_fraction!r}")
    items = sorted(examples)
    rng = random.Random(seed)
    keep: list[Example] = []  # train examples never moved to val
    if name == "simple":
        train, test = _random_part(items, 0.2, rng)
    elif name == "length":
        train = [x for x in items if len(x[1].split()) <= LENGTH_CUTOFF]
        test = [x for x in items if len(x[1].split()) > LENGTH_CUTOFF]
    else:
        keep = [x for x in items if x[0].split() == [_JUMP]]
        if not keep:
            raise DataError(f"the {name!r} split needs the primitive example {_JUMP_EXAMPLE!r}, which is absent")
        train = [x for x in items if _JUMP not in x[0].split()]
        test = [x for x in items if _JUMP in x[0].split() and x[0].split() != [_JUMP]]
    train, val = _random_part(train, val_fraction, rng)
    return {"train": sorted(train + keep), "val": val, "test": test}
