"""LightningDataModule for tree classification (ListOps, SST, any PTB-style tree files)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from nlp_lib.constraints import NonNegativeInt, PositiveInt, SentencePieceSize
from nlp_lib.data.bad_input import check_tree_labels
from nlp_lib.data.collate import (
    EncodedTree,
    check_tree_arrays,
    collate_trees,
    encode_tree,
    encode_tree_subwords,
    tree_levels,
)
from nlp_lib.data.datamodule import PreparedData
from nlp_lib.data.sampling import BalancedBatchSampler, HeightBatchSampler
from nlp_lib.data.vocab import WordVocab
from nlp_lib.errors import DataError
from nlp_lib.structure.sequence import SequenceBatch
from nlp_lib.structure.tree import Tree

__all__ = ["SentenceDataModule", "TreeDataModule", "TreeSplits"]

log = logging.getLogger(__name__)

TreeSplits = dict[str, list[Tree]]
"""Split name (``train``, ``val``, ``test``) to trees whose labels are per node (-1 where none)."""


def _raw_trees(batch: dict[str, list[Any]]) -> list[Tree]:
    return [
        Tree(parent=p, words=w, labels=y)
        for p, w, y in zip(batch["parent"], batch["words"], batch["labels"], strict=True)
    ]


def _encode_trees(batch: dict[str, list[Any]], *, vocab: WordVocab | None, pieces: Any) -> dict[str, list[Any]]:
    """A batch of raw trees as encoded trees (``Dataset.map``): node tokens and heights."""
    out: dict[str, list[Any]] = {"parent": [], "tokens": [], "labels": [], "heights": []}
    for tree in _raw_trees(batch):
        e = (
            encode_tree_subwords(tree, pieces.encode)
            if pieces is not None
            else encode_tree(tree, vocab.encode(tree.words))
        )
        for name, value in zip(out, e, strict=True):
            out[name].append(list(value))
    return out


def _encode_sentences(batch: dict[str, list[Any]], *, vocab: WordVocab | None, pieces: Any) -> dict[str, list[Any]]:
    """A batch of raw trees as their sentences' ids and root labels (``Dataset.map``)."""
    ids, label = [], []
    for tree in _raw_trees(batch):
        if pieces is not None:
            ids.append(pieces.encode(" ".join(tree.words[i] for i in tree.leaves)))
        else:
            ids.append([vocab.id(tree.words[i]) for i in tree.leaves])
        label.append(tree.labels[-1])
    return {"ids": ids, "label": label}


def _tree_example(values: tuple[Any, ...]) -> EncodedTree:
    parent, tokens, labels, heights = values
    return EncodedTree(tuple(parent), tokens, labels, heights)


def _ids_of(labels: list[str], count: int) -> bool:
    """Whether ``labels`` are the class ids ``"0"..`` (a model without label names) of ``count`` classes."""
    return labels == [str(i) for i in range(count)]


class TreeDataModule(PreparedData):
    """Reads tree splits, builds the word vocabulary on ``train`` and batches trees as schedules.

    The encoded trees (parent, token, label and height arrays, in the narrowest integer types)
    are prepared once into Arrow files and read by index (:class:`~nlp_lib.data.datamodule.PreparedData`).

    Args:
        load: Returns the splits; must contain ``train`` and ``val`` (``test`` is optional). It may
            also return ``(splits, label_names)`` when the labels have names (class id order).
        batch_size: Trees per training batch.
        eval_batch_size: Trees per evaluation batch (default: ``batch_size``).
        num_workers: DataLoader worker processes (schedules are built in the workers).
        num_proc: Processes encoding each split (``Dataset.map``); ``None``: every CPU (up to 8)
            for splits of 50,000 trees or more, one below.
        num_classes: Number of labels; default: the largest label in ``train`` plus one, at most
            :data:`~nlp_lib.data.bad_input.MAX_INFERRED_CLASSES` (a larger label is an error
            asking for ``data.num_classes``). The PTB readers check every label against it, by
            file and line.
        root_classes: Roots take only the first so many classes (their predictions too: the model's
            ``root_classes``); other classes label phrases only. SST-2 as Tai et al. (2015): 2 of 3,
            neutral phrases the third (``data.binary=true``, ``data.neutral_phrases=true`` set it).
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
        batch_by: ``"random"``: training batches of ``batch_size`` shuffled trees (or by
            ``node_budget``); ``"height"``: of ``batch_size`` trees of similar heights, for deep
            trees, where one tall tree holds a batch of shallow ones for its levels
            (:class:`~nlp_lib.data.sampling.HeightBatchSampler`); evaluation batches by height too.
        tokenizer: ``"word"`` (a word vocabulary, one id per leaf word) or ``"sentencepiece"`` (a
            model trained on the training sentences; a word of several pieces becomes a small
            binary subtree of its pieces under the word's node: :func:`~nlp_lib.data.collate.encode_tree_subwords`).
        vocab_size: sentencepiece pieces (``tokenizer="sentencepiece"``; an upper bound on small data).
        sentencepiece_sample: At most so many training sentences train sentencepiece (a seeded
            uniform sample of larger corpora).
        cache: Keep the prepared data (encoded splits and vocabulary) in the on-disk cache and
            load it from there when the files and options are the same (:mod:`nlp_lib.data.cache`).
        cache_dir: The cache folder (default ``$NLP_LIB_CACHE`` or ``~/.cache/nlp_lib``).
        cache_key: What ``load`` reads (file fingerprints, reader options), set by the builders in
            :mod:`nlp_lib.data.builders`; ``None``: not cached.
    """

    # the models this data trains, as nlp-lib names their kinds (checked before anything is read)
    feeds: ClassVar[tuple[str, ...]] = ("tree classifier",)
    cache_kind = "trees"
    fields: ClassVar[tuple[str, ...]] = ("parent", "tokens", "labels", "heights")
    make_example = staticmethod(_tree_example)
    restored = ("vocab", "tokenizer", "_num_classes", "label_names")
    _encoder: ClassVar[Callable[..., dict[str, list[Any]]]] = staticmethod(_encode_trees)

    def __init__(
        self,
        *,
        load: Callable[[], TreeSplits],
        batch_size: PositiveInt = 64,
        eval_batch_size: int | None = None,
        num_workers: NonNegativeInt = 0,
        num_proc: PositiveInt | None = None,
        num_classes: int | None = None,
        root_classes: PositiveInt | None = None,
        lowercase: bool = False,
        min_freq: PositiveInt = 1,
        seed: int = 0,
        vocab: WordVocab | None = None,
        vocab_splits: Sequence[str] = ("train",),
        node_budget: PositiveInt | None = None,
        batch_by: Literal["random", "height"] = "random",
        tokenizer: str = "word",
        vocab_size: SentencePieceSize = 8000,
        sentencepiece_sample: PositiveInt = 1_000_000,
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
        self._load = load
        self._num_classes = num_classes
        self.root_classes = root_classes
        self.lowercase = lowercase
        self.min_freq = min_freq
        self.vocab = vocab
        self.vocab_splits = tuple(vocab_splits)
        if node_budget is not None and node_budget < 1:
            raise DataError(f"data.node_budget must be at least 1 (or null), got {node_budget}")
        self.node_budget = node_budget
        if batch_by == "height" and (node_budget is not None or "heights" not in self.fields):
            raise DataError("data.batch_by=height batches trees by count: set data.node_budget=null (and use trees)")
        self.batch_by = batch_by
        if tokenizer not in ("word", "sentencepiece"):
            raise DataError(f"data.tokenizer: must be 'word' or 'sentencepiece', got {tokenizer!r}")
        if tokenizer == "sentencepiece" and lowercase:
            raise DataError(
                "data.lowercase applies to word vocabularies; with data.tokenizer=sentencepiece keep it false"
            )
        self.kind = tokenizer
        self._pieces = vocab_size
        self.sentencepiece_sample = sentencepiece_sample
        self.tokenizer: Any = None  # the sentencepiece model (tokenizer="sentencepiece")
        self._base_vocab: WordVocab | None = None
        self.label_names: list[str] = []  # names of the class ids, when the data has them

    def build(self, folder: Path) -> dict[str, Any]:
        """Read the splits, build the vocabulary and encode every tree into ``folder``."""
        import pyarrow as pa

        from nlp_lib.data.arrow import int_type

        raw = self._read_splits()
        if isinstance(raw, tuple):  # (splits, label names)
            raw, names = raw[0], list(raw[1])
            if self.only is None:
                self.label_names = names
            elif names != self.label_names[: len(names)] and not _ids_of(self.label_names, len(names)):
                # a model's named labels (eval) name the same classes; one labelled by ids, as many of them
                raise DataError(f"the data's labels {names[:8]} are not the model's {self.label_names[:8]}")
        raw = {name: trees for name, trees in raw.items() if self.wanted(name)}
        for name in self.required():
            if not raw.get(name):
                raise DataError(f"the '{name}' split is empty or missing")
        if self.only is not None and (self.vocab is None and self.tokenizer is None or self._num_classes is None):
            raise DataError("evaluate_only: give the trained model's vocabulary (or tokenizer) and labels first")
        if self.kind == "sentencepiece":
            if self.tokenizer is None:  # fine-tuning adopts the trained model's (adopt_tokenizer)
                from nlp_lib.data.tokenizers import SentencePieceTokenizer

                n = len(raw["train"])
                self.tokenizer = SentencePieceTokenizer.train(
                    (" ".join(w for w in t.words if w) for t in raw["train"]),
                    vocab_size=self._pieces,
                    sample=self.sentencepiece_sample if n > self.sentencepiece_sample else None,
                    seed=self.seed,
                )
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
        self._num_classes = check_tree_labels(raw, self._num_classes, self.root_classes)
        longest = max(len(t) for trees in raw.values() for t in trees)
        raw_schema = pa.schema([("parent", pa.list_(int_type(-1, longest))), ("words", pa.list_(pa.string())),
                                ("labels", pa.list_(int_type(-1, self._num_classes - 1)))])  # fmt: skip
        tables = {
            name: self.write_raw(folder, name, raw_schema, ((t.parent, t.words, t.labels) for t in trees))
            for name, trees in raw.items()
        }
        del raw  # the encoding processes fork from here: without the trees as Python objects
        pieces = self.tokenizer if self.kind == "sentencepiece" else None
        features = self._features(longest)
        files = {
            name: self.encode_split(folder, name, table, self._encoder, features, vocab=self.vocab, pieces=pieces)
            for name, table in tables.items()
        }
        return {"splits": files, "num_classes": self._num_classes, "label_names": self.label_names}

    def _read_splits(self) -> Any:
        """``load()``; evaluation only, ``load(only=...)`` where the loader takes it (the builders'
        loaders do: the other split files are then not read)."""
        if self.only is not None:
            import inspect

            try:
                takes_only = "only" in inspect.signature(self._load).parameters
            except (TypeError, ValueError):
                takes_only = False
            if takes_only:
                return self._load(only=self.only)
        return self._load()

    def adopt_labels(self, labels: list[str]) -> None:
        if labels:
            self._num_classes = len(labels)
            self.label_names = labels

    def _features(self, longest: int) -> Any:
        """The encoded columns, each in the narrowest integer type that holds its values."""
        from datasets import Features, Sequence, Value

        from nlp_lib.data.arrow import int_type

        nodes = "int32" if self.kind == "sentencepiece" else str(int_type(-1, longest))  # subwords add nodes
        return Features(
            {
                "parent": Sequence(Value(nodes)),
                "tokens": Sequence(Value(str(int_type(-1, self.vocab_size_now - 1)))),
                "labels": Sequence(Value(str(int_type(-1, self._num_classes - 1)))),
                "heights": Sequence(Value(nodes)),
            }
        )

    @property
    def vocab_size_now(self) -> int:
        """The tokenizer's size as it stands (``vocab_size`` prepares the data first)."""
        return self.tokenizer.vocab_size if self.tokenizer is not None else self.vocab.vocab_size

    def summary(self) -> str:
        splits = ", ".join(f"{k} {len(v)} trees" for k, v in self.splits.items())
        unit = "sentencepiece pieces" if self.kind == "sentencepiece" else "words"
        return f"{splits}; vocabulary {self.vocab_size_now} {unit}; {self._num_classes} classes"

    # ------------------------------------------------------------------ the on-disk cache

    def cache_options(self) -> dict[str, Any] | None:
        if self.vocab is not None or self._base_vocab is not None or self.tokenizer is not None:
            return None  # a given vocabulary (evaluation, fine-tuning) is not part of the key: not cached
        return {
            "module": type(self).__name__,
            "lowercase": self.lowercase,
            "min_freq": self.min_freq,
            "vocab_splits": list(self.vocab_splits),
            "num_classes": self._num_classes,
            "root_classes": self.root_classes,
            "tokenizer": self.kind,
            "vocab_size": self._pieces if self.kind == "sentencepiece" else None,
            "sentencepiece_sample": self.sentencepiece_sample if self.kind == "sentencepiece" else None,
        }

    def restore(self, folder: Path, meta: dict[str, Any]) -> None:
        if self.kind == "sentencepiece":
            from nlp_lib.data.tokenizers import SentencePieceTokenizer

            self.tokenizer = SentencePieceTokenizer.load(folder / "tokenizer.model")
        else:
            self.vocab = WordVocab.load(folder / "vocab.json")
        classes = meta["num_classes"]
        if type(classes) is not int or not 1 <= classes or self._num_classes not in (None, classes):
            raise ValueError(f"meta.json: num_classes is {classes!r}, the data's options say {self._num_classes}")
        self._num_classes = classes
        names = meta.get("label_names", [])
        if not isinstance(names, list) or not all(isinstance(x, str) for x in names) or len(names) not in (0, classes):
            raise ValueError(f"meta.json: label_names is not a list of {classes} strings")
        self.label_names = names

    def write_tokenizers(self, folder: Path) -> None:
        if self.kind == "sentencepiece":
            self.tokenizer.save(folder / "tokenizer.model")
        else:
            self.vocab.save(folder / "vocab.json")

    def check_piece(self, name: str, split: Any) -> None:
        split.check_range("tokens", -1, self.vocab_size_now - 1, f"the {name} split's token ids")
        split.check_range("labels", -1, self._num_classes - 1, f"the {name} split's labels")
        check_tree_arrays(split, name)
        roots = split.values("labels")[np.cumsum(split.lengths("labels")) - 1]  # a tree's last node
        top = (self.root_classes or self._num_classes) - 1
        if roots.size and (roots.min() < 0 or roots.max() > top):
            raise ValueError(f"the {name} split: a root's label is outside 0..{top}")

    def eval_examples(self, split: str) -> Any:
        data = self.splits[split]
        if self.batch_by != "height":
            return data
        return data.reordered(np.argsort(tree_levels(data), kind="stable"))  # a tall tree among its like

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

    def collate(self, examples: list[Any]) -> Any:
        """A batch of encoded examples (here: their level schedule; runs in DataLoader workers)."""
        return collate_trees(examples)

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    @property
    def vocab_size(self) -> int:
        self.prepare()
        return self.vocab_size_now

    @property
    def num_classes(self) -> int:
        self.prepare()
        assert self._num_classes is not None
        return self._num_classes

    def budget_sampler(self, split: str, replicas: int, rank: int) -> Any:
        if self.batch_by == "height":
            levels = tree_levels(self.splits[split])
            return HeightBatchSampler(levels, self.batch_size, num_replicas=replicas, rank=rank, seed=self.seed)
        if self.node_budget is None:
            return None
        sizes = self.splits[split].lengths(self.fields[0])  # nodes (or tokens), from the offsets
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
    fields: ClassVar[tuple[str, ...]] = ("ids", "label")
    make_example = None
    _encoder = staticmethod(_encode_sentences)

    def _features(self, longest: int) -> Any:
        from datasets import Features, Sequence, Value

        from nlp_lib.data.arrow import int_type

        return Features(
            {
                "ids": Sequence(Value(str(int_type(0, self.vocab_size_now - 1)))),
                "label": Value(str(int_type(0, self._num_classes - 1))),
            }
        )

    def check_piece(self, name: str, split: Any) -> None:
        split.check_range("ids", 0, self.vocab_size_now - 1, f"the {name} split's token ids")
        split.check_range("label", 0, self._num_classes - 1, f"the {name} split's labels")

    def eval_examples(self, split: str) -> Any:
        data = self.splits[split]  # padded: similar lengths together
        return data.reordered(np.argsort(data.lengths("ids"), kind="stable"))

    def collate(self, examples: list[Any]) -> Any:
        return SequenceBatch.from_lists([e[0] for e in examples], [e[1] for e in examples])
