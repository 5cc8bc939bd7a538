"""LightningDataModule for sequence-to-sequence data: text pairs -> token ids -> :class:`Seq2SeqBatch`.

Tokens: ``tokenizer="word"`` (whitespace words, :class:`Seq2SeqVocab`) or ``"sentencepiece"``
trained on the training split, one model shared by both sides (``shared_vocab=true``) or one per
side. Either way ids ``0..3`` are ``<pad>, <unk>, <s>, </s>`` (:mod:`nlp_lib.structure.seq2seq`), and
the tokenizers are saved with the run and its bundle (``source.*``, ``target.*``). The sources (SCAN,
parallel text) are built by :func:`~nlp_lib.data.builders.scan_data` and
:func:`~nlp_lib.data.builders.parallel_data`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytorch_lightning as pl

from nlp_lib.constraints import NonNegativeInt, PositiveInt, SentencePieceSize
from nlp_lib.data.datamodule import SplitLoaders
from nlp_lib.data.sampling import BucketBatchSampler
from nlp_lib.data.tokenizers import SentencePieceTokenizer
from nlp_lib.data.vocab import Seq2SeqVocab
from nlp_lib.errors import ConfigError, DataError
from nlp_lib.structure.seq2seq import Seq2SeqBatch

__all__ = ["Pair", "Seq2SeqDataModule"]

log = logging.getLogger(__name__)

Pair = tuple[str, str]
"""A ``(source, target)`` text pair."""

Tokenizer = Seq2SeqVocab | SentencePieceTokenizer


class Seq2SeqDataModule(SplitLoaders, pl.LightningDataModule):
    """Text pairs per split -> tokenizers trained on ``train`` -> :class:`Seq2SeqBatch` loaders.

    Args:
        splits: ``{"train": [(source, target), ...], "val": ..., "test": ...}`` (``val`` required),
            or a function returning them (read when the data is prepared, and not at all when
            the prepared data comes from the cache).
        tokenizer: ``"word"`` or ``"sentencepiece"``.
        vocab_size: sentencepiece pieces per model (an upper bound on small corpora).
        shared_vocab: One tokenizer for source and target (needed for ``model.share_embeddings``).
        lowercase: Lower-case words (``tokenizer="word"``).
        min_freq: Words seen fewer times in training become ``<unk>`` (``tokenizer="word"``).
        max_source_length / max_target_length: Truncate training sequences to so many tokens.
        batch_size / eval_batch_size: Sentences per batch.
        num_workers: DataLoader workers.
        seed: Seed of the epoch orders.
        token_budget: Batch training pairs by length instead of by count: similar lengths
            together, at most this many padded source + target tokens a batch, the same number of
            batches on every rank (:class:`~nlp_lib.data.sampling.BucketBatchSampler`).
        cache / cache_dir / cache_key: The on-disk cache of the prepared data (encoded splits and
            tokenizers; :mod:`nlp_lib.data.cache`), keyed by ``cache_key`` (what ``splits`` reads,
            set by :func:`~nlp_lib.data.builders.scan_data` and
            :func:`~nlp_lib.data.builders.parallel_data`) and the options; ``None``: not cached.
    """

    # the models this data trains, as nlp-lib names their kinds (checked before anything is read)
    feeds: ClassVar[tuple[str, ...]] = ("seq2seq model",)

    def __init__(
        self,
        splits: dict[str, list[Pair]] | Callable[[], dict[str, list[Pair]]],
        *,
        tokenizer: Literal["word", "sentencepiece"] = "word",
        vocab_size: SentencePieceSize = 8000,
        shared_vocab: bool = False,
        lowercase: bool = False,
        min_freq: PositiveInt = 1,
        max_source_length: PositiveInt = 100,
        max_target_length: PositiveInt = 100,
        batch_size: PositiveInt = 64,
        eval_batch_size: int | None = None,
        num_workers: NonNegativeInt = 0,
        seed: int = 0,
        token_budget: PositiveInt | None = None,
        cache: bool = True,
        cache_dir: str | None = None,
        cache_key: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if token_budget is not None and token_budget < 1:
            raise DataError(f"data.token_budget must be at least 1 (or null), got {token_budget}")
        self.token_budget = token_budget
        if tokenizer not in ("word", "sentencepiece"):
            raise ConfigError(f"data.tokenizer: must be 'word' or 'sentencepiece', got {tokenizer!r}")
        self._raw = splits
        self.cache = cache
        self.cache_dir = cache_dir
        self.cache_key = cache_key
        self.kind = tokenizer
        self._vocab_size = vocab_size
        self.shared_vocab = shared_vocab
        self.lowercase = lowercase
        self.min_freq = min_freq
        self.max_lengths = (max_source_length, max_target_length)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.source_tokenizer: Tokenizer | None = None
        self.target_tokenizer: Tokenizer | None = None
        self.splits: dict[str, list[tuple[list[int], list[int], str]]] = {}
        self._eval_batches: dict[str, list[Seq2SeqBatch]] = {}

    def _train_tokenizer(self, texts: list[str]) -> Tokenizer:
        if self.kind == "word":
            return Seq2SeqVocab.build(texts, min_freq=self.min_freq, lowercase=self.lowercase)
        return SentencePieceTokenizer.train(texts, vocab_size=self._vocab_size, specials=True)

    @property
    def raw(self) -> dict[str, list[Pair]]:
        """The text pairs of every split (read now if ``splits`` was a function)."""
        if callable(self._raw):
            self._raw = self._raw()
        for need in ("train", "val"):
            if not self._raw.get(need):
                raise DataError(f"seq2seq data needs a non-empty '{need}' split (have: {', '.join(self._raw)})")
        return self._raw

    def prepare(self) -> None:
        if self.splits:
            return
        entry = self._cache_entry()
        if entry is not None and self._from_cache(entry):
            return
        from nlp_lib.data.cache import warnings_of

        with warnings_of() as self._notes:  # skipped lines: repeated by runs that load the cache
            train = self.raw["train"]
        if self.source_tokenizer is None:  # fine-tuning adopts the trained model's (adopt_tokenizer)
            if self.shared_vocab:
                self.source_tokenizer = self.target_tokenizer = self._train_tokenizer(
                    [x for x, _ in train] + [y for _, y in train]
                )
            else:
                self.source_tokenizer = self._train_tokenizer([x for x, _ in train])
                self.target_tokenizer = self._train_tokenizer([y for _, y in train])
        ms, mt = self.max_lengths
        for split, pairs in self.raw.items():
            cut = split == "train"  # evaluation sees whole sentences
            self.splits[split] = [
                (
                    self.source_tokenizer.encode(x)[: ms if cut else None],
                    self.target_tokenizer.encode(y)[: mt if cut else None],
                    y,
                )
                for x, y in pairs
            ]
        self._log_summary()
        if entry is not None:
            self._to_cache(entry)

    def _log_summary(self) -> None:
        log.info(
            "data: %s; vocabularies: source %d, target %d (%s%s)",
            ", ".join(f"{k} {len(v)} pairs" for k, v in self.splits.items()),
            self.source_tokenizer.vocab_size,
            self.target_tokenizer.vocab_size,
            self.kind,
            ", shared" if self.source_tokenizer is self.target_tokenizer else "",
        )

    # ------------------------------------------------------------------ the on-disk cache

    def _cache_entry(self) -> Any:
        if not self.cache or self.cache_key is None or self.source_tokenizer is not None:
            return None  # adopted tokenizers (fine-tuning) are not part of the key: not cached
        from nlp_lib.data.cache import DataCache

        key = {
            "source": self.cache_key,
            "tokenizer": self.kind,
            "vocab_size": self._vocab_size if self.kind == "sentencepiece" else None,
            "shared_vocab": self.shared_vocab,
            "lowercase": self.lowercase,
            "min_freq": self.min_freq,
            "max_lengths": list(self.max_lengths),
        }
        return DataCache("seq2seq", key, self.cache_dir)

    def _tokenizer_file(self, side: str) -> str:
        return f"{side}.{'vocab.json' if self.kind == 'word' else 'model'}"

    def _from_cache(self, entry: Any) -> bool:
        from nlp_lib.data.cache import load_entry

        return load_entry(self, entry, self._fill_from_cache, ("source_tokenizer", "target_tokenizer", "splits"))

    def _fill_from_cache(self, entry: Any, data: Any, meta: dict[str, Any]) -> None:
        from nlp_lib.data.cache import columns, no_gc, repeat_warnings

        repeat_warnings(meta.get("notes", []), entry)
        cls = Seq2SeqVocab if self.kind == "word" else SentencePieceTokenizer
        self.source_tokenizer = cls.load(entry.file(self._tokenizer_file("source")))
        self.target_tokenizer = (
            self.source_tokenizer if meta["shared"] else cls.load(entry.file(self._tokenizer_file("target")))
        )
        with no_gc():
            for name in meta["splits"]:
                self.splits[name] = list(zip(*columns(data[name], ("source", "target", "text")), strict=True))
        self._log_summary()

    def _to_cache(self, entry: Any) -> None:
        from nlp_lib.data.cache import splits_dataset

        data = splits_dataset(self.splits, ("source", "target", "text"))
        src, tgt = self.source_tokenizer, self.target_tokenizer
        shared = src is tgt

        def write(folder: Path) -> None:
            src.save(folder / self._tokenizer_file("source"))
            if not shared:
                tgt.save(folder / self._tokenizer_file("target"))

        entry.store(data, {"splits": list(self.splits), "shared": shared, "notes": list(self._notes)}, write)

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    @property
    def tokenizers(self) -> dict[str, Tokenizer]:
        self.prepare()
        return {"source": self.source_tokenizer, "target": self.target_tokenizer}

    def model_sizes(self) -> dict[str, int]:
        """The constructor arguments the data decides: ``src_vocab_size`` and ``tgt_vocab_size``."""
        self.prepare()
        return {"src_vocab_size": self.source_tokenizer.vocab_size, "tgt_vocab_size": self.target_tokenizer.vocab_size}

    def adopt_tokenizer(self, tokenizer: Any) -> None:
        """Fine-tuning: a trained model's ``{"source": ..., "target": ...}`` tokenizers instead of new ones."""
        if not isinstance(tokenizer, dict) or set(tokenizer) != {"source", "target"}:
            raise DataError("init_from: the bundle is not a seq2seq model (it has no source/target tokenizers)")
        self.source_tokenizer, self.target_tokenizer = tokenizer["source"], tokenizer["target"]

    def collate(self, examples: list[tuple[list[int], list[int], str]]) -> Seq2SeqBatch:
        return Seq2SeqBatch.from_ids([e[0] for e in examples], [e[1] for e in examples], [e[2] for e in examples])

    def budget_sampler(self, split: str, replicas: int, rank: int) -> Any:
        if self.token_budget is None:
            return None
        sizes = [(len(s), len(t)) for s, t, _ in self.splits[split]]  # padded separately: cost per side
        return BucketBatchSampler(sizes, self.token_budget, num_replicas=replicas, rank=rank, seed=self.seed)

    def eval_examples(self, split: str) -> list:
        return sorted(self.splits[split], key=lambda e: len(e[0]))

    def save(self, directory: str | Path) -> None:
        """The tokenizers, as the bundle stores them (``source.*``, ``target.*``)."""
        from nlp_lib.bundle import save_tokenizers

        save_tokenizers(self.tokenizers, Path(directory))
