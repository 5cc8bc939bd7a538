"""Word vocabularies: :class:`WordVocab` for pre-tokenised data (tree leaves, words) and
:class:`Seq2SeqVocab` with the seq2seq special ids."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from nlp_lib import trust
from nlp_lib.errors import BundleError, DataError

__all__ = ["WordVocab", "Seq2SeqVocab"]


Self = TypeVar("Self", bound="_WordList")


class _WordList:
    """What both vocabularies share: words in id order, their index, and the JSON they are saved as
    (``{"lowercase": bool, "words": [...]}``), read back with checks (a bundle's file is untrusted).
    Subclasses check their own special words in ``__init__``."""

    def __init__(self, words: Sequence[str], *, lowercase: bool = False) -> None:
        self.words = list(words)
        self.lowercase = lowercase
        self._index = {w: i for i, w in enumerate(self.words)}

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def __len__(self) -> int:
        return len(self.words)

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as JSON."""
        Path(path).write_text(json.dumps({"lowercase": self.lowercase, "words": self.words}, ensure_ascii=False))

    @classmethod
    def load(cls: type[Self], path: str | Path) -> Self:
        """Read a vocabulary written by :meth:`save`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except RecursionError:
            raise DataError("cannot read vocabulary: nested too deeply", path=str(path)) from None
        except (OSError, ValueError) as e:
            raise DataError(f"cannot read vocabulary: {e}", path=str(path)) from None
        return cls.from_json(data, str(path))

    # How a bundle stores it (nlp_lib.bundle): the file name's suffix and the size it may have.
    bundle_suffix = "vocab.json"
    bundle_limit = 512 << 20

    @classmethod
    def from_bundle(cls: type[Self], directory: Path, name: str) -> Self:
        """Read ``directory/name`` as a bundle's (untrusted) file: regular, size-limited, checked."""
        data = trust.read_json(directory, name, cls.bundle_limit, dict)
        try:
            return cls.from_json(data, str(directory / name))
        except DataError as e:
            raise BundleError(str(e)) from None

    @classmethod
    def from_json(cls: type[Self], data: Any, path: str) -> Self:
        """A vocabulary from :meth:`save`'s JSON (parsed), checked: ``path`` names it in errors."""
        if not isinstance(data, dict) or not isinstance(data.get("words"), list):
            raise DataError('expected a JSON object {"lowercase": ..., "words": [...]}', path=path)
        words, lowercase = data["words"], data.get("lowercase", False)
        bad = next((i for i, w in enumerate(words) if not isinstance(w, str)), None)
        if bad is not None:
            raise DataError(f"words[{bad}] is {trust.short(words[bad])}, not a string", path=path)
        if not isinstance(lowercase, bool):
            raise DataError(f"lowercase must be true or false, got {trust.short(lowercase)}", path=path)
        if len(set(words)) != len(words):
            raise DataError("a word appears twice in the vocabulary", path=path)
        try:
            return cls(words, lowercase=lowercase)
        except ValueError as e:
            raise DataError(f"not a vocabulary: {e}", path=path) from None


class WordVocab(_WordList):
    """Maps words to ids; id 0 is the unknown word ``<unk>``.

    Args:
        words: The known words in id order, ``<unk>`` first.
        lowercase: Lower-case words before looking them up.
    """

    UNK = "<unk>"

    def __init__(self, words: list[str], *, lowercase: bool = False) -> None:
        if not words or words[0] != self.UNK:
            raise ValueError(f"the first word of a vocabulary must be {self.UNK!r}")
        super().__init__(words, lowercase=lowercase)

    @classmethod
    def build(cls, words: Iterable[str], *, min_freq: int = 1, lowercase: bool = False) -> WordVocab:
        """Vocabulary of the words seen at least ``min_freq`` times, most frequent first."""
        counts = Counter(w.lower() if lowercase else w for w in words if w)
        kept = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
        return cls([cls.UNK, *kept], lowercase=lowercase)

    def id(self, word: str) -> int:
        """Id of ``word`` (0 when unknown)."""
        return self._index.get(word.lower() if self.lowercase else word, 0)

    def encode(self, words: Iterable[str]) -> list[int]:
        """Ids of node words; a node without a word (``""``) gets ``-1`` (no input)."""
        return [self.id(w) if w else -1 for w in words]


class Seq2SeqVocab(_WordList):
    """Whitespace-word vocabulary with the seq2seq special ids ``<pad>=0, <unk>=1, <s>=2, </s>=3``.

    Args:
        words: Every token in id order, the four specials first.
        lowercase: Lower-case text before looking words up.
    """

    SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")

    def __init__(self, words: Sequence[str], *, lowercase: bool = False) -> None:
        if tuple(words[:4]) != self.SPECIALS:
            raise ValueError(f"a seq2seq vocabulary starts with {self.SPECIALS}")
        super().__init__(words, lowercase=lowercase)

    @classmethod
    def build(
        cls, texts: Iterable[str], *, min_freq: int = 1, lowercase: bool = False, max_size: int | None = None
    ) -> Seq2SeqVocab:
        """The words of ``texts`` seen at least ``min_freq`` times, most frequent first (ties in
        alphabetical order), at most ``max_size`` entries with the four specials. ``texts`` is
        read once, counted a chunk at a time (a generator over a large corpus will do)."""
        counts: Counter[str] = Counter()
        chunk: list[str] = []
        for t in texts:
            chunk.append(t)
            if len(chunk) == 4096:
                counts.update(_words(chunk, lowercase))
                chunk.clear()
        counts.update(_words(chunk, lowercase))
        return cls.from_counts(counts, min_freq=min_freq, lowercase=lowercase, max_size=max_size)

    @classmethod
    def from_counts(
        cls, counts: dict[str, int], *, min_freq: int = 1, lowercase: bool = False, max_size: int | None = None
    ) -> Seq2SeqVocab:
        """:meth:`build` from word counts already made (e.g. by several processes, then summed)."""
        kept = sorted(
            (w for w, c in counts.items() if c >= min_freq and w not in cls.SPECIALS), key=lambda w: (-counts[w], w)
        )
        if max_size is not None:
            kept = kept[: max(max_size - len(cls.SPECIALS), 0)]
        return cls([*cls.SPECIALS, *kept], lowercase=lowercase)

    def encode(self, text: str) -> list[int]:
        """Ids of the text's words (unknown words get 1)."""
        return [self._index.get(w, 1) for w in (text.lower() if self.lowercase else text).split()]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """:meth:`encode` of each text (one lookup loop, no call per text)."""
        get = self._index.get
        if self.lowercase:
            texts = [t.lower() for t in texts]
        return [[get(w, 1) for w in t.split()] for t in texts]

    def decode(self, ids: Iterable[int]) -> str:
        """The words of ``ids``, space-separated, special ids dropped (``<unk>`` kept)."""
        return " ".join(self.words[i] for i in map(int, ids) if i == 1 or i > 3)


def count_words(texts: Sequence[str], lowercase: bool = False) -> Counter[str]:
    """Whitespace words of ``texts`` counted (as :meth:`Seq2SeqVocab.build` counts them)."""
    return Counter(_words(texts, lowercase))


def _words(texts: Sequence[str], lowercase: bool) -> list[str]:
    """The whitespace words of ``texts`` (one ``split`` of the joined chunk: counted in C, not per word)."""
    joined = "\n".join(texts)
    return (joined.lower() if lowercase else joined).split()
