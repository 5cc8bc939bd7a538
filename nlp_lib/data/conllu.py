"""Reader for CoNLL-U files of dependency trees (the parsing itself: :mod:`nlp_lib.structure.conllu`).

Bad input (see :mod:`nlp_lib.data.bad_input`): a sentence with a line that is not UTF-8, not 10
columns, or with bad IDs or HEADs, or that is not one tree, is an error naming the file and the
line, or, with ``on_error="skip"``, left out and reported in one warning. A file with no sentence
at all is an error either way.
"""

from __future__ import annotations

import logging
from pathlib import Path

from nlp_lib.data.bad_input import OnError, check_on_error, no_records, regular_file, report_skipped
from nlp_lib.structure.conllu import DependencyTree, parse_conllu

__all__ = ["read_conllu"]

log = logging.getLogger(__name__)


def read_conllu(path: str | Path, *, on_error: OnError = "raise") -> list[DependencyTree]:
    """Read a CoNLL-U file of dependency trees (see :mod:`nlp_lib.structure.conllu`).

    Args:
        path: The file.
        on_error: ``"raise"`` stops at the first bad line; ``"skip"`` leaves out every sentence
            with a bad line (not UTF-8, not 10 columns, bad IDs or HEADs, not one tree) and logs
            one warning at the end (file, count of sentences and of the lines they take, first bad
            lines).

    Raises:
        DataError: The file does not exist or holds no sentence (empty, or every one skipped), or
            (``on_error="raise"``) a line is not valid UTF-8 (byte offset and bytes named).
        TreeFormatError: (``on_error="raise"``) a malformed sentence; the message names the file
            and the line.
        ValueError: ``on_error`` is neither ``"raise"`` nor ``"skip"``.
    """
    check_on_error(on_error)
    p = regular_file(path)
    # Undecodable bytes become lone surrogates, which parse_conllu reports (or skips) by line.
    text = p.read_bytes().decode("utf-8", errors="surrogateescape")
    skipped: list[tuple[int, str]] = []
    lines: list[int] = []
    out = list(parse_conllu(text.split("\n"), source=str(p), on_error=on_error, skipped=skipped, skipped_lines=lines))
    report_skipped(log, p, skipped, what="sentence", lines=sum(lines))
    if not out:
        raise no_records(p, "sentences", skipped, unit="sentence")
    return out
