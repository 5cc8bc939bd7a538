"""LightningDataModule for sequence-to-sequence data: text pairs -> token ids -> :class:`Seq2SeqBatch`.

Tokens: ``tokenizer="word"`` (whitespace words, :class:`Seq2SeqVocab`) or ``"sentencepiece"``
trained on the training split, one model shared by both sides (``shared_vocab=true``) or one per
side. Either way ids ``0..3`` are ``<pad>, <unk>, <s>, </s>`` (:mod:`nlp_lib.structure.seq2seq`), and
the tokenizers are saved with the run and its bundle (``source.*``, ``target.*``). The sources (SCAN,
parallel text) are built by :func:`~nlp_lib.data.builders.scan_data` and
:func:`~nlp_lib.data.builders.parallel_data`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from nlp_lib.constraints import NonNegativeInt, PositiveInt, SentencePieceSize
from nlp_lib.data.datamodule import PreparedData
from nlp_lib.data.sampling import BucketBatchSampler
from nlp_lib.data.tokenizers import SentencePieceTokenizer
from nlp_lib.data.vocab import Seq2SeqVocab, count_words
from nlp_lib.errors import ConfigError, DataError
from nlp_lib.structure.seq2seq import Seq2SeqBatch

__all__ = ["Pair", "Seq2SeqDataModule"]

log = logging.getLogger(__name__)

Pair = tuple[str, str]
"""A ``(source, target)`` text pair."""

Tokenizer = Seq2SeqVocab | SentencePieceTokenizer


def _encode_pairs(
    batch: dict[str, list[str]],
    *,
    source: Tokenizer,
    target: Tokenizer,
    max_source: int | None,
    max_target: int | None,
    keep_text: bool,
) -> dict[str, list[Any]]:
    """A batch of raw pairs as id lists (``Dataset.map``); the target text kept for evaluation splits."""
    texts = batch["target"]
    src, tgt = source.encode_batch(batch["source"]), target.encode_batch(texts)
    return {
        "source": src if max_source is None else [x[:max_source] for x in src],
        "target": tgt if max_target is None else [y[:max_target] for y in tgt],
        "text": texts if keep_text else [""] * len(texts),
    }


def _count_batch(batch: dict[str, list[str]], *, columns: tuple[str, ...], lowercase: bool) -> dict[str, list[Any]]:
    """The words of a batch of raw pairs and their counts (``Dataset.map``; summed afterwards)."""
    counts = count_words([t for c in columns for t in batch[c]], lowercase)
    return {"word": list(counts), "count": list(counts.values())}


def _texts(raw: Any, *columns: str) -> Iterator[str]:
    """The texts of raw ``columns``, read a chunk at a time (for counting words or sentencepiece)."""
    from nlp_lib.data.arrow import CHUNK

    for column in columns:
        for batch in raw.select_columns([column]).iter(batch_size=CHUNK):
            yield from batch[column]


class Seq2SeqDataModule(PreparedData):
    """Text pairs per split -> tokenizers trained on ``train`` -> :class:`Seq2SeqBatch` loaders.

    The pairs are prepared once into Arrow files (:class:`~nlp_lib.data.datamodule.PreparedData`):
    ids in the narrowest unsigned type that holds the vocabulary, the target text kept for the
    evaluation splits only (BLEU and chrF score against it; training never reads it).

    Args:
        splits: ``{"train": pairs, "val": pairs, "test": pairs}``, each an iterable of
            ``(source, target)`` (a generator will do: the pairs are written to disk a chunk at a
            time), or a function returning them (called when the data is prepared, and not at all
            when the prepared data comes from the cache). Without ``val``, ``val_fraction`` of
            ``train`` is held out.
        tokenizer: ``"word"`` or ``"sentencepiece"``.
        vocab_size: sentencepiece pieces per model (an upper bound on small corpora; ``None``:
            8000), or, with ``tokenizer="word"``, the most entries per vocabulary, the four specials
            included (the most frequent words; ``None``: every word seen ``min_freq`` times).
        sentencepiece_sample: At most so many training sentences train sentencepiece (a seeded
            uniform sample of larger corpora: ``input_sentence_size``).
        shared_vocab: One tokenizer for source and target (needed for ``model.share_embeddings``).
        lowercase: Lower-case words (``tokenizer="word"``).
        min_freq: Words seen fewer times in training become ``<unk>`` (``tokenizer="word"``).
        max_source_length / max_target_length: Truncate training sequences to so many tokens.
        batch_size / eval_batch_size: Sentences per batch.
        num_workers: DataLoader workers.
        num_proc: Processes encoding each split (``Dataset.map``); ``None``: every CPU (up to 8)
            for splits of 50,000 pairs or more, one below.
        seed: Seed of the epoch orders and of the held-out split.
        val_fraction: Share of ``train`` held out for validation when ``splits`` has no ``val``.
        token_budget: Batch training pairs by length instead of by count: similar lengths
            together, at most this many padded source + target tokens a batch, the same number of
            batches on every rank (:class:`~nlp_lib.data.sampling.BucketBatchSampler`).
        streaming: Read the training pairs from their files as the model trains, never writing
            them out (corpora larger than the disk a prepared copy would take; needs ``splits`` as a
            function, which every builder passes): only their lengths, the tokenizers and the
            evaluation splits are prepared and cached (:mod:`nlp_lib.data.streaming`).
        shuffle_buffer: With ``streaming``: consecutive pairs read, shuffled and batched together.
        cache / cache_dir / cache_key: The on-disk cache of the prepared data (encoded splits and
            tokenizers; :mod:`nlp_lib.data.cache`), keyed by ``cache_key`` (what ``splits`` reads,
            set by :func:`~nlp_lib.data.builders.scan_data` and
            :func:`~nlp_lib.data.builders.parallel_data`) and the options; ``None``: not cached.
    """

    # the models this data trains, as nlp-lib names their kinds (checked before anything is read)
    feeds: ClassVar[tuple[str, ...]] = ("seq2seq model",)
    cache_kind = "seq2seq"
    fields = ("source", "target", "text")
    restored = ("source_tokenizer", "target_tokenizer")

    def __init__(
        self,
        splits: dict[str, Iterable[Pair]] | Callable[[], dict[str, Iterable[Pair]]],
        *,
        tokenizer: Literal["word", "sentencepiece"] = "word",
        vocab_size: SentencePieceSize | None = None,
        sentencepiece_sample: PositiveInt = 1_000_000,
        shared_vocab: bool = False,
        lowercase: bool = False,
        min_freq: PositiveInt = 1,
        max_source_length: PositiveInt = 100,
        max_target_length: PositiveInt = 100,
        batch_size: PositiveInt = 64,
        eval_batch_size: int | None = None,
        num_workers: NonNegativeInt = 0,
        num_proc: PositiveInt | None = None,
        seed: int = 0,
        val_fraction: float = 0.1,
        token_budget: PositiveInt | None = None,
        streaming: bool = False,
        shuffle_buffer: PositiveInt = 100_000,
        cache: bool = True,
        cache_dir: str | None = None,
        cache_key: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            seed=seed,
            num_proc=num_proc,
            cache=cache,
            cache_dir=cache_dir,
            cache_key=cache_key,
        )
        if token_budget is not None and token_budget < 1:
            raise DataError(f"data.token_budget must be at least 1 (or null), got {token_budget}")
        self.token_budget = token_budget
        if streaming and not callable(splits):
            raise ConfigError("data.streaming: the pairs must come from a function that reads them again every epoch")
        self.streaming = streaming
        self.shuffle_buffer = shuffle_buffer
        if tokenizer not in ("word", "sentencepiece"):
            raise ConfigError(f"data.tokenizer: must be 'word' or 'sentencepiece', got {tokenizer!r}")
        if not 0 < val_fraction < 1:
            raise ConfigError(f"data.val_fraction: must lie between 0 and 1, got {val_fraction}")
        self._raw = splits
        self.kind = tokenizer
        self._vocab_size = vocab_size
        self.sentencepiece_sample = sentencepiece_sample
        self.shared_vocab = shared_vocab
        self.lowercase = lowercase
        self.min_freq = min_freq
        self.max_lengths = (max_source_length, max_target_length)
        self.val_fraction = val_fraction
        self.source_tokenizer: Tokenizer | None = None
        self.target_tokenizer: Tokenizer | None = None

    def _train_tokenizer(self, raw: Any, folder: Path, *columns: str) -> Tokenizer:
        """Trained on the training split: an Arrow table, or (streaming) the mask of the stream's training pairs."""
        if isinstance(raw, np.ndarray):
            counts, texts, n = self._stream_counts(raw, columns), self._stream_texts(raw, columns), int(raw.sum())
        else:
            counts, texts, n = None, _texts(raw, *columns), len(raw)
        if self.kind == "word":  # counted a chunk at a time by data.num_proc processes, summed by Arrow
            counts = counts() if counts is not None else self._count_words(raw, folder, columns)
            return Seq2SeqVocab.from_counts(
                counts, min_freq=self.min_freq, lowercase=self.lowercase, max_size=self._vocab_size
            )
        n *= len(columns)
        sample = self.sentencepiece_sample if n > self.sentencepiece_sample else None
        return SentencePieceTokenizer.train(
            texts, vocab_size=self._vocab_size or 8000, specials=True, sample=sample, seed=self.seed
        )

    def _count_words(self, raw: Any, folder: Path, columns: tuple[str, ...]) -> dict[str, int]:
        from datasets import Features, Value

        from nlp_lib.data.arrow import open_split

        features = Features({"word": Value("string"), "count": Value("int64")})
        name = "count-" + "-".join(columns)
        files = self.encode_split(folder, name, raw, _count_batch, features, columns=columns, lowercase=self.lowercase)
        table, _ = open_split(folder / "data", files, ("word", "count"), name)
        total = table.group_by("word").aggregate([("count", "sum")])
        return dict(zip(total.column("word").to_pylist(), total.column("count_sum").to_pylist(), strict=True))

    def build(self, folder: Path) -> dict[str, Any]:
        import pyarrow as pa
        from datasets import Features, Sequence, Value

        from nlp_lib.data.arrow import int_type

        pairs = self._raw() if callable(self._raw) else self._raw
        schema = pa.schema([("source", pa.string()), ("target", pa.string())])
        held_out = "val" not in pairs and self.wanted("val")  # val is a share of train
        stream = self.streaming and self.only is None and "train" in pairs  # train read again as it trains
        raw = {
            name: self.write_raw(folder, name, schema, split)
            for name, split in pairs.items()
            if (self.wanted(name) or (name == "train" and held_out)) and not (stream and name == "train")
        }
        keep = None
        if stream:  # which pairs train (the others: validation), by the same seeded draw as below
            keep, held = self._stream_hold_out(held_out)
            if held is not None:
                raw["val"] = self.write_raw(folder, "val", schema, held)
        elif "train" in raw and held_out and len(raw["train"]) > 1:
            raw["train"], raw["val"] = self.hold_out(raw["train"], self.val_fraction, self.seed)
        raw = {name: table for name, table in raw.items() if self.wanted(name)}
        for need in self.required():
            size = int(keep.sum()) if need == "train" and keep is not None else len(raw.get(need, ()))
            if size == 0:
                raise DataError(f"seq2seq data needs a non-empty '{need}' split (have: {', '.join(pairs)})")
        if self.source_tokenizer is None and self.only is not None:
            raise DataError("evaluate_only: adopt the trained model's tokenizers first (adopt_tokenizer)")
        if self.source_tokenizer is None:  # fine-tuning adopts the trained model's (adopt_tokenizer)
            train = keep if stream else raw["train"]
            if self.shared_vocab:
                self.source_tokenizer = self.target_tokenizer = self._train_tokenizer(train, folder, "source", "target")
            else:
                self.source_tokenizer = self._train_tokenizer(train, folder, "source")
                self.target_tokenizer = self._train_tokenizer(train, folder, "target")
        features = Features(
            {
                "source": Sequence(Value(str(int_type(0, self.source_tokenizer.vocab_size - 1)))),
                "target": Sequence(Value(str(int_type(0, self.target_tokenizer.vocab_size - 1)))),
                "text": Value("string"),
            }
        )
        files = {}
        for name, table in raw.items():
            train = name == "train"  # evaluation sees whole sentences, and keeps its references
            files[name] = self.encode_split(
                folder,
                name,
                table,
                _encode_pairs,
                features,
                source=self.source_tokenizer,
                target=self.target_tokenizer,
                max_source=self.max_lengths[0] if train else None,
                max_target=self.max_lengths[1] if train else None,
                keep_text=not train,
            )
        meta = {"splits": files, "shared": self.source_tokenizer is self.target_tokenizer}
        if stream:
            meta["stream"] = {"examples": self._stream_lengths(folder, keep)}
        return meta

    # ------------------------------------------------------------------ data.streaming

    def _train_pairs(self, warn: bool = False) -> Iterator[Pair]:
        """The training pairs, read again from the files (``data.streaming``); the reader's
        warnings only with ``warn`` (the first pass of preparation)."""
        from nlp_lib.data.streaming import quietly

        pairs = iter(self._raw()["train"])
        return pairs if warn else quietly(pairs)

    def _stream_hold_out(self, held_out: bool) -> tuple[np.ndarray, list[Pair] | None]:
        from nlp_lib.data.streaming import hold_out_stream

        fraction = self.val_fraction if held_out else None
        passes = iter([functools.partial(self._train_pairs, warn=True)])  # the first pass warns, the others not
        return hold_out_stream(lambda: next(passes, self._train_pairs)(), fraction, self.seed)

    def _kept(self, keep: np.ndarray) -> Iterator[Pair]:
        from nlp_lib.data.streaming import kept

        return kept(self._train_pairs(), keep)

    def _stream_counts(self, keep: np.ndarray, columns: tuple[str, ...]) -> Callable[[], dict[str, int]]:
        import collections
        import itertools

        def count() -> dict[str, int]:
            sides = [("source", "target").index(c) for c in columns]
            total: collections.Counter[str] = collections.Counter()
            pairs = self._kept(keep)
            while chunk := list(itertools.islice(pairs, 10_000)):
                total.update(count_words([p[j] for j in sides for p in chunk], self.lowercase))
            return total

        return count

    def _stream_texts(self, keep: np.ndarray, columns: tuple[str, ...]) -> Iterator[str]:
        for column in columns:  # column after column, as the prepared data's texts are read
            j = ("source", "target").index(column)
            yield from (p[j] for p in self._kept(keep))

    def _stream_encode(self, pairs: list[Pair]) -> tuple[list[tuple[Any, ...]], np.ndarray]:
        """Training pairs -> examples and their ``[n, 2]`` lengths, as preparation encodes them."""
        columns = _encode_pairs(
            {"source": [p[0] for p in pairs], "target": [p[1] for p in pairs]},
            source=self.source_tokenizer,
            target=self.target_tokenizer,
            max_source=self.max_lengths[0],
            max_target=self.max_lengths[1],
            keep_text=False,
        )
        lengths = np.array([[len(a), len(b)] for a, b in zip(columns["source"], columns["target"], strict=True)])
        return list(zip(columns["source"], columns["target"], columns["text"], strict=True)), lengths.reshape(-1, 2)

    def _stream_lengths(self, folder: Path, keep: np.ndarray) -> int:
        """One encoding pass over the stream: every pair's lengths (held-out ones 0) into the entry."""
        from nlp_lib.data.datamodule import DATA
        from nlp_lib.data.streaming import LENGTHS, write_lengths

        (folder / DATA).mkdir(exist_ok=True)
        return write_lengths(
            folder / DATA / LENGTHS, self._train_pairs(), keep, self._stream_encode, ("source", "target")
        )

    def check_stream(self, split: Any) -> None:
        n = len(split.keep)
        want = np.ones(n, dtype=bool)  # the seeded draw of _stream_hold_out, when val is held out
        if "val" not in self._raw() and n > 1:
            from nlp_lib.data.arrow import hold_out

            want[hold_out(n, self.val_fraction, self.seed)[1]] = False
        if not np.array_equal(split.keep, want):
            raise ValueError("train-lengths.arrow: its training pairs are not the seeded draw of this data")
        if split.lengths[~want].any() or (split.lengths > np.array(self.max_lengths)).any():
            raise ValueError("train-lengths.arrow: lengths beyond data.max_*_length, or on held-out pairs")

    def open_stream(self, folder: Path, meta: Any) -> Any:
        from nlp_lib.data.streaming import LENGTHS, StreamSplit

        if not isinstance(meta, dict) or not isinstance(meta.get("examples"), int):
            raise ValueError(f"meta.json: 'stream' must hold the number of training examples, got {meta!r}")
        if not self.streaming or not callable(self._raw):
            raise ValueError("meta.json: a streamed entry, but data.streaming is off")
        return StreamSplit.open(
            folder / LENGTHS,
            ("source", "target"),
            meta["examples"],
            records=self._train_pairs,
            encode=self._stream_encode,
            window=self.shuffle_buffer,
        )

    def summary(self) -> str:
        splits = ", ".join(f"{k} {len(v)} pairs" for k, v in self.splits.items())
        shared = ", shared" if self.source_tokenizer is self.target_tokenizer else ""
        sizes = f"source {self.source_tokenizer.vocab_size}, target {self.target_tokenizer.vocab_size}"
        return f"{splits}; vocabularies: {sizes} ({self.kind}{shared})"

    # ------------------------------------------------------------------ the on-disk cache

    def cache_options(self) -> dict[str, Any] | None:
        if self.source_tokenizer is not None:
            return None  # adopted tokenizers (fine-tuning) are not part of the key: not cached
        spm = self.kind == "sentencepiece"
        return {
            "tokenizer": self.kind,
            "vocab_size": self._vocab_size,
            "sentencepiece_sample": self.sentencepiece_sample if spm else None,
            "shared_vocab": self.shared_vocab,
            "lowercase": self.lowercase,
            "min_freq": self.min_freq,
            "max_lengths": list(self.max_lengths),
            "val_fraction": self.val_fraction,
            "seed": self.seed,
            **({"streaming": True} if self.streaming else {}),
        }

    def _tokenizer_file(self, side: str) -> str:
        return f"{side}.{'vocab.json' if self.kind == 'word' else 'model'}"

    def restore(self, folder: Path, meta: dict[str, Any]) -> None:
        cls = Seq2SeqVocab if self.kind == "word" else SentencePieceTokenizer
        self.source_tokenizer = cls.load(folder / self._tokenizer_file("source"))
        self.target_tokenizer = (
            self.source_tokenizer if meta["shared"] is True else cls.load(folder / self._tokenizer_file("target"))
        )

    def write_tokenizers(self, folder: Path) -> None:
        self.source_tokenizer.save(folder / self._tokenizer_file("source"))
        if self.target_tokenizer is not self.source_tokenizer:
            self.target_tokenizer.save(folder / self._tokenizer_file("target"))

    def check_piece(self, name: str, split: Any) -> None:
        for column, tok in (("source", self.source_tokenizer), ("target", self.target_tokenizer)):
            split.check_range(column, 0, tok.vocab_size - 1, f"the {name} split's token ids")

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

    def sizes_sampler(self, sizes: Any, replicas: int, rank: int, seed: int) -> Any:
        if self.token_budget is None:
            return None
        return BucketBatchSampler(sizes, self.token_budget, num_replicas=replicas, rank=rank, seed=seed)

    def budget_sampler(self, split: str, replicas: int, rank: int) -> Any:
        if self.token_budget is None:
            return None
        data = self.splits[split]  # padded separately: cost per side, read from the offsets
        sizes = np.stack([data.lengths("source"), data.lengths("target")], axis=1)
        return self.sizes_sampler(sizes, replicas, rank, self.seed)

    def eval_examples(self, split: str) -> Any:
        data = self.splits[split]
        return data.reordered(np.argsort(data.lengths("source"), kind="stable"))

    def save(self, directory: str | Path) -> None:
        """The tokenizers, as the bundle stores them (``source.*``, ``target.*``)."""
        from nlp_lib.bundle import save_tokenizers

        save_tokenizers(self.tokenizers, Path(directory))
