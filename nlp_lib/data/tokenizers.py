"""Tokenizers a trained model keeps with it (no Lightning needed to use one)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from nlp_lib import trust
from nlp_lib.errors import BundleError, ConfigError

__all__ = ["SentencePieceTokenizer"]


class SentencePieceTokenizer:
    """A sentencepiece model: id 0 pads, 1 is unknown (and, trained with ``specials=True`` for
    seq2seq, 2 begins and 3 ends a sentence).

    Args:
        model: The serialised model (``tokenizer.model``'s bytes).
    """

    def __init__(self, model: bytes) -> None:
        import sentencepiece as spm

        self.model = model
        self.sp = spm.SentencePieceProcessor(model_proto=model)

    def __reduce__(self) -> tuple[Any, ...]:  # to the processes that encode a large split
        return (type(self), (self.model,))

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        *,
        vocab_size: int = 8000,
        model_type: str = "unigram",
        specials: bool = False,
        sample: int | None = None,
        seed: int = 0,
    ) -> SentencePieceTokenizer:
        """Train on ``texts`` (``vocab_size`` is an upper bound on small corpora).

        ``specials=True`` reserves ids 2 and 3 for begin and end of sentence (what
        :class:`~nlp_lib.models.Seq2Seq` expects). ``sample``: when given (the corpus has more
        sentences than that), sentencepiece keeps a uniform sample of that many sentences, drawn
        with ``seed`` (its ``input_sentence_size`` and ``shuffle_input_sentence``): training
        memory and time stay bounded on large corpora. ``texts`` is read once (a generator will do).
        """
        import sentencepiece as spm

        buf = io.BytesIO()
        extra: dict[str, Any] = {}
        if sample is not None:
            extra = {"input_sentence_size": sample, "shuffle_input_sentence": True}
            spm.set_random_generator_seed(seed)
        try:
            _train(spm, buf, texts, vocab_size, model_type, specials, **extra)
        except RuntimeError as e:  # e.g. fewer pieces than the text has characters
            reason = str(e).strip().splitlines()[-1] if str(e).strip() else "it failed"
            raise ConfigError(
                f"vocab_size={vocab_size}: sentencepiece cannot train a vocabulary of that size on this text "
                f"({reason}); choose another data.vocab_size"
            ) from None
        return cls(buf.getvalue())

    @property
    def vocab_size(self) -> int:
        return int(self.sp.get_piece_size())

    def encode(self, text: str) -> list[int]:
        ids = self.sp.encode(text)
        return ids or [1]  # an all-whitespace text still gets one (unknown) token

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """:meth:`encode` of each text, in one call into sentencepiece."""
        return [ids or [1] for ids in self.sp.encode(list(texts))]

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` (special ids dropped)."""
        drop = {0, self.sp.bos_id(), self.sp.eos_id()}
        return self.sp.decode([int(i) for i in ids if int(i) not in drop])

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.model)

    @classmethod
    def load(cls, path: str | Path) -> SentencePieceTokenizer:
        return cls(Path(path).read_bytes())

    # How a bundle stores it (nlp_lib.bundle): the file name's suffix and the size it may have.
    bundle_suffix = "model"
    bundle_limit = 256 << 20

    @classmethod
    def from_bundle(cls, directory: Path, name: str) -> SentencePieceTokenizer:
        """Read ``directory/name`` as a bundle's (untrusted) file: regular, size-limited, checked."""
        data = trust.read_bytes(directory, name, cls.bundle_limit)
        try:
            return cls(data)
        except (RuntimeError, ValueError, TypeError) as e:
            raise BundleError(f"{directory / name}: not a sentencepiece model ({e})") from None


def _train(
    spm: Any, buf: io.BytesIO, texts: Iterable[str], vocab_size: int, model_type: str, specials: bool, **extra: Any
) -> None:
    spm.SentencePieceTrainer.train(
        **extra,
        sentence_iterator=iter(texts),
        model_writer=buf,
        vocab_size=vocab_size,
        model_type=model_type,
        hard_vocab_limit=False,
        pad_id=0,
        unk_id=1,
        bos_id=2 if specials else -1,
        eos_id=3 if specials else -1,
        minloglevel=2,
    )
