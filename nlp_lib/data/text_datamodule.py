"""LightningDataModule for labelled text: files -> sentencepiece ids -> :class:`SequenceBatch`.

The files are read by :func:`~nlp_lib.data.text.read_labelled_text` (JSONL, CSV, TSV, Parquet, a
glob of them, or a Hub dataset ``hub:NAME@SPLIT``). A sentencepiece model is trained on the training
split's texts and saved with the run (``tokenizer.model``), so a trained model reads new text exactly
as it was trained. The prepared data (ids, labels, the sentencepiece model) is kept in the on-disk
cache (:mod:`nlp_lib.data.cache`): a second run on the same files and options neither re-reads nor
re-tokenises.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from nlp_lib.constraints import NonNegativeInt, PositiveInt, SentencePieceSize
from nlp_lib.data.bad_input import OnError, check_on_error, unseen_label
from nlp_lib.data.datamodule import PreparedData
from nlp_lib.data.sampling import BucketBatchSampler
from nlp_lib.data.text import HUB_PREFIX, read_labelled_text, record_error
from nlp_lib.data.tokenizers import SentencePieceTokenizer
from nlp_lib.errors import DataError
from nlp_lib.structure.sequence import SequenceBatch

__all__ = ["TextDataModule"]

log = logging.getLogger(__name__)


def _encode_texts(batch: dict[str, list[Any]], *, pieces: Any, vocab: Any, max_length: int) -> dict[str, list[Any]]:
    """A batch of raw texts as ids, truncated (``Dataset.map``); whitespace words with a word vocabulary."""
    if vocab is not None:  # as the bundle's predict reads them
        ids = [[vocab.id(w) for w in t.split()] or [0] for t in batch["text"]]
    else:
        ids = [pieces.encode(t) for t in batch["text"]]
    return {"ids": [x[:max_length] for x in ids], "label": batch["label"]}


class TextDataModule(PreparedData):
    """Labelled text for sequence classification: files -> sentencepiece ids -> SequenceBatch.

    Args:
        train_path: Training file (JSONL, CSV, TSV or Parquet).
        val_path: Validation file; ``None`` holds out ``val_fraction`` of the training rows.
        test_path: Optional test file.
        text_column: Column holding the text.
        label_column: Column holding the label (strings or integers).
        vocab_size: sentencepiece vocabulary size (an upper bound on small corpora).
        val_fraction: Share of training rows held out when there is no ``val_path``.
        batch_size: Training batch size.
        eval_batch_size: Evaluation batch size (default ``batch_size``).
        max_length: Truncate token sequences to this many tokens.
        num_workers: DataLoader workers.
        num_proc: Processes encoding each split (``Dataset.map``); ``None``: every CPU (up to 8)
            for splits of 50,000 texts or more, one below.
        sentencepiece_sample: At most so many training texts train sentencepiece (a seeded
            uniform sample of larger corpora).
        seed: Seed for shuffling and the held-out split.
        on_error: ``"raise"`` on a bad line or record (or a label training never saw), or
            ``"skip"`` it and report the count in a warning.
        token_budget: Batch training texts by length instead of by count: similar lengths
            together, at most this many padded tokens a batch, the same number of batches on every
            rank (:class:`~nlp_lib.data.sampling.BucketBatchSampler`; ``batch_size`` ignored).
        cache / cache_dir: The on-disk cache of the prepared data (see the module docstring).
    """

    # the models this data trains, as nlp-lib names their kinds (checked before anything is read)
    feeds: ClassVar[tuple[str, ...]] = ("sequence classifier",)
    cache_kind = "text"
    fields = ("ids", "label")
    restored = ("tokenizer", "label_names")

    def __init__(
        self,
        *,
        train_path: str,
        val_path: str | None = None,
        test_path: str | None = None,
        text_column: str = "text",
        label_column: str = "label",
        vocab_size: SentencePieceSize = 8000,
        val_fraction: float = 0.1,
        batch_size: PositiveInt = 32,
        eval_batch_size: int | None = None,
        max_length: PositiveInt = 256,
        num_workers: NonNegativeInt = 0,
        num_proc: PositiveInt | None = None,
        sentencepiece_sample: PositiveInt = 1_000_000,
        seed: int = 0,
        on_error: OnError = "raise",
        token_budget: PositiveInt | None = None,
        cache: bool = True,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            seed=seed,
            num_proc=num_proc,
            cache=cache,
            cache_dir=cache_dir,
            cache_key={"reader": "labelled-text"},
        )
        check_on_error(on_error)
        if token_budget is not None and token_budget < 1:
            raise DataError(f"data.token_budget must be at least 1 (or null), got {token_budget}")
        self.token_budget = token_budget
        self.sentencepiece_sample = sentencepiece_sample
        self.on_error = on_error
        self.paths = {"train": train_path, "val": val_path, "test": test_path}
        self.columns = (text_column, label_column)
        self._vocab_size = vocab_size
        if val_path is None and not 0 < val_fraction < 1:
            raise DataError(
                "data.val_fraction: must lie between 0 and 1 (the share of training rows held out for "
                f"validation, which picks the best checkpoint) when there is no data.val_path; got {val_fraction}"
            )
        self.val_fraction = val_fraction
        self.max_length = max_length
        self.tokenizer: SentencePieceTokenizer | None = None
        self.vocab: Any = None  # a word vocabulary, when fine-tuning a model trained with one
        self._base_vocab: Any = None
        self.label_names: list[str] = []

    def _files(self, split: str) -> list[Path]:
        """The files of a split: its path, or the files its glob pattern matches (name order)."""
        path = str(self.paths[split])
        if not any(c in path for c in "*?["):
            return [Path(path)]
        import glob

        found = sorted(Path(p) for p in glob.glob(path, recursive=True) if Path(p).is_file())
        if not found:
            raise DataError(f"data.{split}_path: no file matches the pattern '{path}'")
        return found

    def cache_options(self) -> dict[str, Any] | None:
        if self.tokenizer is not None or self._base_vocab is not None:  # adopted: not cached
            return None
        if any(str(p).startswith(HUB_PREFIX) for p in self.paths.values() if p is not None):
            return None  # a Hub dataset has no file to fingerprint here (datasets caches its download)
        from nlp_lib.data.cache import file_fingerprints

        return {
            "files": {s: file_fingerprints(self._files(s)) for s, p in self.paths.items() if p is not None},
            "columns": list(self.columns),
            "vocab_size": self._vocab_size,
            "sentencepiece_sample": self.sentencepiece_sample,
            "val_fraction": self.val_fraction if self.paths["val"] is None else None,
            "seed": self.seed if self.paths["val"] is None else None,
            "max_length": self.max_length,
            "on_error": self.on_error,
        }

    def restore(self, folder: Path, meta: dict[str, Any]) -> None:
        self.tokenizer = SentencePieceTokenizer.load(folder / "tokenizer.model")
        labels = meta["labels"]
        if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) for x in labels):
            raise ValueError("meta.json: labels is not a list of two or more strings")
        self.label_names = labels

    def write_tokenizers(self, folder: Path) -> None:
        if self.vocab is not None:
            self.vocab.save(folder / "vocab.json")
        else:
            self.tokenizer.save(folder / "tokenizer.model")

    def check_piece(self, name: str, split: Any) -> None:
        split.check_range("ids", 0, self.vocab_size_now - 1, f"the {name} split's token ids")
        split.check_range("label", 0, len(self.label_names) - 1, f"the {name} split's labels")

    def _read(self) -> dict[str, tuple[list[Any], list[Any], list[tuple[str, str, int]]]]:
        raw = {}
        held_out = self.paths["val"] is None and self.wanted("val")  # val is a share of train
        for split, path in self.paths.items():
            if path is None or not (self.wanted(split) or (split == "train" and held_out)):
                continue
            texts: list[Any] = []
            labels: list[Any] = []
            where: list[tuple[str, str, int]] = []
            for f in self._files(split):
                data = read_labelled_text(
                    f, text_column=self.columns[0], label_column=self.columns[1], on_error=self.on_error
                )
                texts += data.texts
                labels += data.labels
                where += [(str(f), data.at, n) for n in data.lines]
            raw[split] = (texts, labels, where)
        return raw

    def build(self, folder: Path) -> dict[str, Any]:
        import pyarrow as pa
        from datasets import Features, Sequence, Value

        from nlp_lib.data.arrow import hold_out, int_type

        raw = self._read()
        if "val" not in raw and self.wanted("val"):
            texts, labels, where = raw["train"]
            train, val = hold_out(len(texts), self.val_fraction, self.seed)
            if not train:
                raise DataError(f"data.train_path: {len(texts)} rows are too few to hold out a validation split")
            raw["val"] = tuple([column[i] for i in val] for column in (texts, labels, where))
            raw["train"] = tuple([column[i] for i in train] for column in (texts, labels, where))
        raw = {split: columns for split, columns in raw.items() if self.wanted(split)}
        if self.only is not None:
            if not self.label_names or (self.tokenizer is None and self._base_vocab is None and self.vocab is None):
                raise DataError("evaluate_only: adopt the trained model's tokenizer and labels first")
        else:
            self.label_names = sorted({str(y) for y in raw["train"][1]}, key=_label_key)
        if len(self.label_names) < 2:
            raise DataError(
                f"data.train_path: every training row has the label {self.label_names[0]!r}; "
                f"a classifier needs at least two labels (files: {self.paths['train']})"
            )
        index = {name: i for i, name in enumerate(self.label_names)}
        for split, (texts, labels, where) in raw.items():  # labels training never saw: error, or skip
            bad = [i for i, y in enumerate(labels) if str(y) not in index]
            if not bad:
                continue
            problem = f"{unseen_label(str(labels[bad[0]]), self.label_names)} (the {split} split)"
            if self.on_error == "raise":
                raise record_error(*where[bad[0]], problem)
            log.warning(
                "the %s split: skipped %d record(s) whose label never occurs in training, the first at %s %s:%d (%s)",
                split,
                len(bad),
                where[bad[0]][1],
                where[bad[0]][0],
                where[bad[0]][2],
                problem,
            )
            drop = set(bad)
            raw[split] = tuple([x for i, x in enumerate(column) if i not in drop] for column in (texts, labels, where))
            if not raw[split][0]:
                raise DataError(f"the {split} split has no record left: every label in it is unseen in training")
        if self._base_vocab is not None:  # a word-vocabulary model: known words keep their ids, new ones appended
            from nlp_lib.data.vocab import WordVocab

            base = self._base_vocab
            seen = WordVocab.build((w for t in raw["train"][0] for w in t.split()), lowercase=base.lowercase)
            known = set(base.words)
            self.vocab = WordVocab(base.words + [w for w in seen.words[1:] if w not in known], lowercase=base.lowercase)
        elif self.tokenizer is None and self.vocab is None:  # fine-tuning keeps the trained model's (adopt_tokenizer)
            n = len(raw["train"][0])
            self.tokenizer = SentencePieceTokenizer.train(
                raw["train"][0],
                vocab_size=self._vocab_size,
                sample=self.sentencepiece_sample if n > self.sentencepiece_sample else None,
                seed=self.seed,
            )
        label_type = int_type(0, len(self.label_names) - 1)
        schema = pa.schema([("text", pa.string()), ("label", label_type)])
        features = Features(
            {"ids": Sequence(Value(str(int_type(0, self.vocab_size_now - 1)))), "label": Value(str(label_type))}
        )
        files = {}
        for split, (texts, labels, _) in raw.items():
            table = self.write_raw(folder, split, schema, zip(texts, (index[str(y)] for y in labels), strict=True))
            files[split] = self.encode_split(
                folder, split, table, _encode_texts, features,
                pieces=self.tokenizer, vocab=self.vocab, max_length=self.max_length,
            )  # fmt: skip
        return {"splits": files, "labels": self.label_names}

    @property
    def vocab_size_now(self) -> int:
        """The tokenizer's size as it stands (``vocab_size`` prepares the data first)."""
        return self.vocab.vocab_size if self.vocab is not None else self.tokenizer.vocab_size

    def summary(self) -> str:
        splits = ", ".join(f"{k} {len(v)} texts" for k, v in self.splits.items())
        kind = "word" if self.vocab is not None else "sentencepiece"
        return f"{splits}; {kind} vocabulary {self.vocab_size_now}; {len(self.label_names)} classes"

    def adopt_labels(self, labels: list[str]) -> None:
        self.label_names = labels

    def adopt_tokenizer(self, tokenizer: Any) -> None:
        """Fine-tuning: tokenise as the trained model did, with its sentencepiece model, or with its
        word vocabulary (e.g. a model trained on SST sentences: words split on whitespace, known
        words keep their ids and vectors, new words of the training split are appended)."""
        from nlp_lib.data.vocab import WordVocab

        if isinstance(tokenizer, WordVocab):
            self._base_vocab = tokenizer
            return
        if not isinstance(tokenizer, SentencePieceTokenizer):
            raise DataError(
                f"init_from: the model was trained with a {type(tokenizer).__name__}; text data takes a "
                "sentencepiece model or a word vocabulary"
            )
        self.tokenizer = tokenizer

    @property
    def vocab_size(self) -> int:
        self.prepare()
        return self.vocab_size_now

    @property
    def num_classes(self) -> int:
        self.prepare()
        return len(self.label_names)

    def collate(self, examples: list[tuple[list[int], int]]) -> SequenceBatch:
        return SequenceBatch.from_lists([e[0] for e in examples], [e[1] for e in examples])

    def budget_sampler(self, split: str, replicas: int, rank: int) -> Any:
        if self.token_budget is None:
            return None
        sizes = self.splits[split].lengths("ids")  # similar lengths together
        return BucketBatchSampler(sizes, self.token_budget, num_replicas=replicas, rank=rank, seed=self.seed)

    def eval_examples(self, split: str) -> Any:
        data = self.splits[split]
        return data.reordered(np.argsort(data.lengths("ids"), kind="stable"))

    def save(self, directory: str | Path) -> None:
        """The tokenizer (``tokenizer.model``) and the label names (``labels.json``)."""
        import json

        if self.vocab is not None:
            self.vocab.save(Path(directory) / "vocab.json")
        else:
            self.tokenizer.save(Path(directory) / "tokenizer.model")
        (Path(directory) / "labels.json").write_text(json.dumps(self.label_names, ensure_ascii=False))


def _label_key(name: str) -> tuple[int, Any]:
    """Integers in numeric order, then strings alphabetically."""
    try:
        return (0, int(name))
    except ValueError:
        return (1, name)
