"""LightningDataModule for tree classification (ListOps, SST, any PTB-style tree files)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl

from nlp_lib.constraints import NonNegativeInt, PositiveInt, SentencePieceSize
from nlp_lib.data.bad_input import MAX_INFERRED_CLASSES
from nlp_lib.data.collate import EncodedTree, collate_trees, encode_tree, encode_tree_subwords
from nlp_lib.data.datamodule import SplitLoaders
from nlp_lib.data.sampling import BalancedBatchSampler
from nlp_lib.data.vocab import WordVocab
from nlp_lib.errors import DataError
from nlp_lib.structure.sequence import SequenceBatch
from nlp_lib.structure.tree import Tree

__all__ = ["SentenceDataModule", "TreeDataModule", "TreeSplits"]

log = logging.getLogger(__name__)

TreeSplits = dict[str, list[Tree]]
"""Split name (``train``, ``val``, ``test``) to trees whose labels are per node (-1 where none)."""


class TreeDataModule(SplitLoaders, pl.LightningDataModule):
    """Reads tree splits, builds the word vocabulary on ``train`` and batches trees as schedules.

    Args:
        load: Returns the splits; must contain ``train`` and ``val`` (``test`` is optional). It may
            also return ``(splits, label_names)`` when the labels have names (class id order).
        batch_size: Trees per training batch.
        eval_batch_size: Trees per evaluation batch (default: ``batch_size``).
        num_workers: DataLoader worker processes (schedules are built in the workers).
        num_classes: Number of labels; default: the largest label in ``train`` plus one, at most
            :data:`~nlp_lib.data.bad_input.MAX_INFERRED_CLASSES` (a larger label is an error
            asking for ``data.num_classes``). The PTB readers check every label against it, by
            file and line.
        lowercase: Lower-case words before looking them up.
        min_freq: Words seen fewer times in ``train`` map to ``<unk>``.
        seed: Seed of the training shuffle.
        vocab: A vocabulary to use instead of building one (fine-tuning, evaluation).
        vocab_splits: The splits whose words make the vocabulary (words only; never labels).
            ``("train",)`` by default; with pretrained vectors, adding ``"val"``/``"test"`` lets
            their words keep their pretrained vectors instead of becoming ``<unk>`` (as in Tai et
            al.'s code, whose vocabulary spans every split).
        node_budget: Batch training trees by total nodes (at most this many a batch, ``batch_size``
            ignored) instead of by count; the batches are balanced across distributed ranks
            (:class:`~nlp_lib.data.sampling.BalancedBatchSampler`).
        tokenizer: ``"word"`` (a word vocabulary, one id per leaf word) or ``"sentencepiece"`` (a
            model trained on the training sentences; a word of several pieces becomes a small
            binary subtree of its pieces under the word's node: :func:`~nlp_lib.data.collate.encode_tree_subwords`).
        vocab_size: sentencepiece pieces (``tokenizer="sentencepiece"``; an upper bound on small data).
        cache: Keep the prepared data (encoded splits and vocabulary) in the on-disk cache and
            load it from there when the files and options are the same (:mod:`nlp_lib.data.cache`).
        cache_dir: The cache folder (default ``$NLP_LIB_CACHE`` or ``~/.cache/nlp_lib``).
        cache_key: What ``load`` reads (file fingerprints, reader options), set by the builders in
            :mod:`nlp_lib.data.builders`; ``None``: not cached.
    """

    # the models this data trains, as nlp-lib names their kinds (checked before anything is read)
    feeds: ClassVar[tuple[str, ...]] = ("tree classifier",)

    def __init__(
        self,
        *,
        load: Callable[[], TreeSplits],
        batch_size: PositiveInt = 64,
        eval_batch_size: int | None = None,
        num_workers: NonNegativeInt = 0,
        num_classes: int | None = None,
        lowercase: bool = False,
        min_freq: PositiveInt = 1,
        seed: int = 0,
        vocab: WordVocab | None = None,
        vocab_splits: Sequence[str] = ("train",),
        node_budget: PositiveInt | None = None,
        tokenizer: str = "word",
        vocab_size: SentencePieceSize = 8000,
        cache: bool = True,
        cache_dir: str | None = None,
        cache_key: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise DataError(f"data.batch_size must be at least 1, got {batch_size}")
        self._load = load
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self._num_classes = num_classes
        self.lowercase = lowercase
        self.min_freq = min_freq
        self.seed = seed
        self.vocab = vocab
        self.vocab_splits = tuple(vocab_splits)
        if node_budget is not None and node_budget < 1:
            raise DataError(f"data.node_budget must be at least 1 (or null), got {node_budget}")
        self.node_budget = node_budget
        if tokenizer not in ("word", "sentencepiece"):
            raise DataError(f"data.tokenizer: must be 'word' or 'sentencepiece', got {tokenizer!r}")
        if tokenizer == "sentencepiece" and lowercase:
            raise DataError(
                "data.lowercase applies to word vocabularies; with data.tokenizer=sentencepiece keep it false"
            )
        self.kind = tokenizer
        self._pieces = vocab_size
        self.tokenizer: Any = None  # the sentencepiece model (tokenizer="sentencepiece")
        self.cache = cache
        self.cache_dir = cache_dir
        self.cache_key = cache_key
        self._base_vocab: WordVocab | None = None
        self.label_names: list[str] = []  # names of the class ids, when the data has them
        self.splits: dict[str, list[EncodedTree]] = {}
        self._eval_batches: dict[str, list[Any]] = {}

    def prepare(self) -> None:
        """Read the splits, build the vocabulary and encode every tree (idempotent)."""
        if self.splits:
            return
        entry = self._cache_entry()
        if entry is not None and self._from_cache(entry):
            return
        from nlp_lib.data.cache import warnings_of

        with warnings_of() as self._notes:  # skipped lines: repeated by runs that load the cache
            raw = self._load()
        if isinstance(raw, tuple):  # (splits, label names)
            raw, self.label_names = raw[0], list(raw[1])
        for name in ("train", "val"):
            if not raw.get(name):
                raise DataError(f"the '{name}' split is empty or missing")
        if self.kind == "sentencepiece":
            if self.tokenizer is None:  # fine-tuning adopts the trained model's (adopt_tokenizer)
                from nlp_lib.data.tokenizers import SentencePieceTokenizer

                sentences = [" ".join(w for w in t.words if w) for t in raw["train"]]
                self.tokenizer = SentencePieceTokenizer.train(sentences, vocab_size=self._pieces)
        elif self.vocab is None:
            unknown = [s for s in self.vocab_splits if s not in ("train", "val", "test")]
            if unknown or "train" not in self.vocab_splits:
                raise DataError(
                    f"data.vocab_splits must include 'train' and name splits train/val/test, got {list(self.vocab_splits)}"
                )
            self.vocab = WordVocab.build(
                (w for s in self.vocab_splits for t in raw.get(s, ()) for w in t.words),
                min_freq=self.min_freq,
                lowercase=self.lowercase,
            )
            if self._base_vocab is not None:  # fine-tuning: old ids unchanged, new words appended
                known = set(self._base_vocab.words)
                extra = [w for w in self.vocab.words[1:] if w not in known]
                self.vocab = WordVocab(self._base_vocab.words + extra, lowercase=self._base_vocab.lowercase)
        declared = self._num_classes is not None
        if self._num_classes is None:
            self._num_classes = 1 + max(max(t.labels) for t in raw["train"] if t.labels is not None)
        if self._num_classes > MAX_INFERRED_CLASSES and not declared:  # the readers name the file and line
            raise DataError(
                f"the training labels go up to {self._num_classes - 1}: with no declared number of classes, "
                f"labels are class ids 0..{MAX_INFERRED_CLASSES - 1}; set data.num_classes to allow more"
            )
        classes = f"data.num_classes={self._num_classes}" if declared else "the largest training label + 1"
        for name, trees in raw.items():
            for i, t in enumerate(trees):  # trees from a custom `load`: the readers check their files by line
                if t.labels is None or t.labels[-1] < 0:
                    raise DataError(f"split '{name}', tree {i + 1}: the root has no label")
                if min(t.labels) < -1:
                    raise DataError(f"split '{name}', tree {i + 1}: label {min(t.labels)} is negative (-1: no label)")
                if max(t.labels) >= self._num_classes:
                    raise DataError(
                        f"split '{name}', tree {i + 1}: label {max(t.labels)} is outside the "
                        f"{self._num_classes} classes 0..{self._num_classes - 1} ({classes})"
                    )
            self.splits[name] = [self.encode(t) for t in trees]
        self._log_summary()
        if entry is not None:
            self._to_cache(entry)

    def _log_summary(self) -> None:
        log.info(
            "data: %s; vocabulary %d %s; %d classes",
            ", ".join(f"{k} {len(v)} trees" for k, v in self.splits.items()),
            self.vocab_size,
            "sentencepiece pieces" if self.kind == "sentencepiece" else "words",
            self._num_classes,
        )

    # ------------------------------------------------------------------ the on-disk cache

    #: Field names of an encoded example (its Arrow columns) and how to rebuild one from them.
    example_fields: tuple[str, ...] = ("parent", "tokens", "labels", "heights")

    def example_from_fields(self, values: tuple[Any, ...]) -> Any:
        parent, tokens, labels, heights = values
        return EncodedTree(tuple(parent), tokens, labels, heights)

    def _cache_entry(self) -> Any:
        adopted = self.vocab is not None or self._base_vocab is not None or self.tokenizer is not None
        if not self.cache or self.cache_key is None or adopted:
            return None  # a given vocabulary (evaluation, fine-tuning) is not part of the key: not cached
        from nlp_lib.data.cache import DataCache

        key = {
            "source": self.cache_key,
            "module": type(self).__name__,
            "lowercase": self.lowercase,
            "min_freq": self.min_freq,
            "vocab_splits": list(self.vocab_splits),
            "num_classes": self._num_classes,
            "tokenizer": self.kind,
            "vocab_size": self._pieces if self.kind == "sentencepiece" else None,
        }
        return DataCache("trees", key, self.cache_dir)

    def _from_cache(self, entry: Any) -> bool:
        from nlp_lib.data.cache import load_entry

        return load_entry(
            self, entry, self._fill_from_cache, ("vocab", "tokenizer", "_num_classes", "label_names", "splits")
        )

    def _fill_from_cache(self, entry: Any, data: Any, meta: dict[str, Any]) -> None:
        from nlp_lib.data.cache import columns, no_gc, repeat_warnings

        repeat_warnings(meta.get("notes", []), entry)
        if self.kind == "sentencepiece":
            from nlp_lib.data.tokenizers import SentencePieceTokenizer

            self.tokenizer = SentencePieceTokenizer.load(entry.file("tokenizer.model"))
        else:
            self.vocab = WordVocab.load(entry.file("vocab.json"))
        self._num_classes = int(meta["num_classes"])
        self.label_names = list(meta.get("label_names", []))
        with no_gc():
            for name in meta["splits"]:
                cols = columns(data[name], self.example_fields)
                self.splits[name] = [self.example_from_fields(v) for v in zip(*cols, strict=True)]
        self._log_summary()

    def _to_cache(self, entry: Any) -> None:
        from nlp_lib.data.cache import splits_dataset

        data = splits_dataset(self.splits, self.example_fields)
        tok = self.tokenizer or self.vocab
        name = "tokenizer.model" if self.kind == "sentencepiece" else "vocab.json"
        entry.store(
            data,
            {
                "num_classes": self._num_classes,
                "splits": list(self.splits),
                "notes": list(self._notes),
                "label_names": self.label_names,
            },
            lambda folder: tok.save(folder / name),
        )

    def size(self, example: Any) -> int:
        """The work of one encoded example (its nodes), for ``node_budget`` batching."""
        return len(example.parent)

    def adopt_tokenizer(self, tokenizer: Any) -> None:
        """Fine-tuning: extend a trained model's vocabulary (its ids stay; new words are appended)."""
        if self.splits:
            raise RuntimeError("adopt_tokenizer must come before prepare()")
        if isinstance(tokenizer, WordVocab):
            self.kind, self._base_vocab = "word", tokenizer
            return
        from nlp_lib.data.tokenizers import SentencePieceTokenizer

        if not isinstance(tokenizer, SentencePieceTokenizer):
            raise DataError(
                f"init_from: the model was trained with a {type(tokenizer).__name__}; tree data uses a word "
                "vocabulary or sentencepiece (fine-tune with data of the same kind)"
            )
        self.kind, self.tokenizer = "sentencepiece", tokenizer  # the same pieces as the trained model

    def encode(self, tree: Tree) -> Any:
        """One example as the collate function takes it (here: the tree with its token ids)."""
        if self.tokenizer is not None:
            tok = self.tokenizer
            return encode_tree_subwords(tree, tok.encode)
        return encode_tree(tree, self.vocab.encode(tree.words))

    def collate(self, examples: list[Any]) -> Any:
        """A batch of encoded examples (here: their level schedule; runs in DataLoader workers)."""
        return collate_trees(examples)

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    @property
    def vocab_size(self) -> int:
        self.prepare()
        if self.tokenizer is not None:
            return self.tokenizer.vocab_size
        assert self.vocab is not None
        return self.vocab.vocab_size

    @property
    def num_classes(self) -> int:
        self.prepare()
        assert self._num_classes is not None
        return self._num_classes

    def budget_sampler(self, split: str, replicas: int, rank: int) -> Any:
        if self.node_budget is None:
            return None
        sizes = [self.size(e) for e in self.splits[split]]  # batches of at most node_budget nodes
        return BalancedBatchSampler(sizes, self.node_budget, num_replicas=replicas, rank=rank, seed=self.seed)

    def save(self, directory: str | Path) -> None:
        """Write what a trained model needs to read new data (the vocabulary) into ``directory``."""
        if self.tokenizer is not None:
            self.tokenizer.save(Path(directory) / "tokenizer.model")
            return
        assert self.vocab is not None
        self.vocab.save(Path(directory) / "vocab.json")


class SentenceDataModule(TreeDataModule):
    """The sentences of labelled trees (their leaf words, left to right) with their root labels.

    A sequence model's view of tree data (e.g. an LSTM on SST, next to the Tree-LSTM): the same
    files, vocabulary and splits; batches are :class:`~nlp_lib.structure.sequence.SequenceBatch`
    (padded with id 0).
    """

    # the models this data trains, as nlp-lib names their kinds (checked before anything is read)
    feeds: ClassVar[tuple[str, ...]] = ("sequence classifier", "sequence tagger")

    def size(self, example: Any) -> int:
        return len(example[0])

    example_fields = ("ids", "label")

    def eval_examples(self, split: str) -> list:
        return sorted(self.splits[split], key=lambda e: len(e[0]))  # padded: similar lengths together

    def example_from_fields(self, values: tuple[Any, ...]) -> Any:
        return tuple(values)

    def encode(self, tree: Tree) -> Any:
        if self.tokenizer is not None:
            ids = self.tokenizer.encode(" ".join(tree.words[i] for i in tree.leaves))
            return ids, tree.labels[-1]
        ids = [self.vocab.id(tree.words[i]) for i in tree.leaves]
        return ids, tree.labels[-1]

    def collate(self, examples: list[Any]) -> Any:
        return SequenceBatch.from_lists([e[0] for e in examples], [e[1] for e in examples])
