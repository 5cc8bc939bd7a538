"""Value ranges declared next to a parameter, for config checks (pure Python, imports nothing).

A constructor says what it accepts in its own signature::

    def __init__(self, input_size: PositiveInt, hidden_size: PositiveInt, dropout: Probability = 0.0): ...

``PositiveInt`` is ``Annotated[int, Range(min=1)]``: to type checkers and readers an ``int``; to
:mod:`nlp_lib.schema` (which checks every ``_target_`` of a composed config against its target's
signature before anything is read) an integer of at least 1. A user's own class can use the same
markers, or none: plain hints (``int``, ``float``, ``bool``, ``Literal[...]``, ``Optional``) are
checked too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

__all__ = ["Range", "PositiveInt", "NonNegativeInt", "Probability", "FiniteFloat", "PositiveFloat", "SentencePieceSize"]


@dataclass(frozen=True)
class Range:
    """A numeric range: ``min <= value <= max`` (``<`` where ``*_open``); NaN and infinities are
    always outside."""

    min: float | None = None
    max: float | None = None
    min_open: bool = False
    max_open: bool = False

    def problem(self, value: float) -> str | None:
        """``None`` when ``value`` lies in the range, else what was expected."""
        if not math.isfinite(value):
            return f"a finite number{self._text()}"
        low = self.min is None or (value > self.min if self.min_open else value >= self.min)
        high = self.max is None or (value < self.max if self.max_open else value <= self.max)
        return None if low and high else f"a number{self._text()}"

    def _text(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f"{'>' if self.min_open else '>='} {self.min:g}")
        if self.max is not None:
            parts.append(f"{'<' if self.max_open else '<='} {self.max:g}")
        return f" {' and '.join(parts)}" if parts else ""


PositiveInt = Annotated[int, Range(min=1)]
NonNegativeInt = Annotated[int, Range(min=0)]
Probability = Annotated[float, Range(min=0, max=1)]
FiniteFloat = Annotated[float, Range()]
PositiveFloat = Annotated[float, Range(min=0, min_open=True)]
# a sentencepiece vocabulary: its special pieces (pad, unk, bos, eos) and some pieces of text
SentencePieceSize = Annotated[int, Range(min=8)]
