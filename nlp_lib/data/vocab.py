"""Word-level vocabulary for pre-tokenised data (tree leaves)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from nlp_lib.errors import DataError

__all__ = ["WordVocab"]


class WordVocab:
    """Maps words to ids; id 0 is the unknown word ``<unk>``.

    Args:
        words: The known words in id order, ``<unk>`` first.
        lowercase: Lower-case words before looking them up.
    """

    UNK = "<unk>"

    def __init__(self, words: list[str], *, lowercase: bool = False) -> None:
        if not words or words[0] != self.UNK:
            raise ValueError(f"the first word of a vocabulary must be {self.UNK!r}")
        self.words = list(words)
        self.lowercase = lowercase
        self._index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, words: Iterable[str], *, min_freq: int = 1, lowercase: bool = False) -> WordVocab:
        """Vocabulary of the words seen at least ``min_freq`` times, most frequent first."""
        counts = Counter(w.lower() if lowercase else w for w in words if w)
        kept = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
        return cls([cls.UNK, *kept], lowercase=lowercase)

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def __len__(self) -> int:
        return len(self.words)

    def id(self, word: str) -> int:
        """Id of ``word`` (0 when unknown)."""
        return self._index.get(word.lower() if self.lowercase else word, 0)

    def encode(self, words: Iterable[str]) -> list[int]:
        """Ids of node words; a node without a word (``""``) gets ``-1`` (no input)."""
        return [self.id(w) if w else -1 for w in words]

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as JSON."""
        Path(path).write_text(json.dumps({"lowercase": self.lowercase, "words": self.words}, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> WordVocab:
        """Read a vocabulary written by :meth:`save`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(data["words"], lowercase=bool(data["lowercase"]))
        except (OSError, ValueError, KeyError) as e:
            raise DataError(f"cannot read vocabulary: {e}", path=str(path)) from None
