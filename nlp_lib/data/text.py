"""Labelled text from local JSONL / CSV / Parquet files, tokenised with sentencepiece.

Files are read with Hugging Face ``datasets`` (``json``, ``csv`` or ``parquet`` by the file's
extension; cached by fingerprint, nothing downloaded). A sentencepiece model is trained on the
training split's texts and saved with the run (``tokenizer.model``), so a trained model reads new
text exactly as it was trained.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from nlp_lib.data.tokenizers import SentencePieceTokenizer
from nlp_lib.errors import DataError
from nlp_lib.structure.sequence import SequenceBatch

__all__ = ["TextDataModule", "read_labelled_text"]

log = logging.getLogger(__name__)

_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}


def read_labelled_text(
    path: str | Path, *, text_column: str = "text", label_column: str = "label"
) -> tuple[list[str], list[Any]]:
    """Texts and labels of a local JSONL, CSV (TSV) or Parquet file.

    Raises:
        DataError: the file is missing, of an unknown kind, unreadable, lacks a column, or has an
            empty text (the message names the file, and the row's line for JSONL/CSV).
    """
    import datasets

    p = Path(path)
    if not p.is_file():
        raise DataError("file does not exist" if not p.exists() else "not a file", path=str(p))
    kind = _FORMATS.get(p.suffix.lower())
    if kind is None:
        raise DataError(f"unknown file kind '{p.suffix}': use .jsonl, .csv, .tsv or .parquet", path=str(p))
    kwargs: dict[str, Any] = {"delimiter": "\t"} if p.suffix.lower() == ".tsv" else {}
    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(kind, data_files=str(p), split="train", **kwargs)
    except Exception as e:  # datasets wraps parser errors in several types
        raise DataError(f"cannot read it as {kind}: {_first_line(e)}", path=str(p)) from None
    for col in (text_column, label_column):
        if col not in ds.column_names:
            raise DataError(f"no column '{col}' (columns: {', '.join(ds.column_names)})", path=str(p))
    texts, labels = ds[text_column], ds[label_column]
    header = 1 if kind == "csv" else 0
    for i, (t, y) in enumerate(zip(texts, labels, strict=True)):
        if not isinstance(t, str) or not t.strip():
            raise DataError(f"empty or missing '{text_column}'", path=str(p), line=i + 1 + header)
        if y is None:
            raise DataError(f"missing '{label_column}'", path=str(p), line=i + 1 + header)
    return list(texts), list(labels)


def _first_line(e: Exception) -> str:
    msg = str(e).strip().splitlines()
    return msg[0] if msg else type(e).__name__


class TextDataModule(pl.LightningDataModule):
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
        seed: Seed for shuffling and the held-out split.
    """

    def __init__(
        self,
        *,
        train_path: str,
        val_path: str | None = None,
        test_path: str | None = None,
        text_column: str = "text",
        label_column: str = "label",
        vocab_size: int = 8000,
        val_fraction: float = 0.1,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        max_length: int = 256,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.paths = {"train": train_path, "val": val_path, "test": test_path}
        self.columns = (text_column, label_column)
        self._vocab_size = vocab_size
        self.val_fraction = val_fraction
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.max_length = max_length
        self.num_workers = num_workers
        self.seed = seed
        self.tokenizer: SentencePieceTokenizer | None = None
        self.label_names: list[str] = []
        self.splits: dict[str, list[tuple[list[int], int]]] = {}

    def prepare(self) -> None:
        if self.splits:
            return
        raw = {}
        for split, path in self.paths.items():
            if path is not None:
                raw[split] = read_labelled_text(path, text_column=self.columns[0], label_column=self.columns[1])
        if "val" not in raw:
            texts, labels = raw["train"]
            g = torch.Generator().manual_seed(self.seed)
            order = torch.randperm(len(texts), generator=g).tolist()
            k = max(1, round(self.val_fraction * len(texts)))
            if k >= len(texts):
                raise DataError(f"data.train_path: {len(texts)} rows are too few to hold out a validation split")
            raw["val"] = ([texts[i] for i in order[:k]], [labels[i] for i in order[:k]])
            raw["train"] = ([texts[i] for i in order[k:]], [labels[i] for i in order[k:]])
        self.label_names = sorted({str(y) for y in raw["train"][1]}, key=_label_key)
        index = {name: i for i, name in enumerate(self.label_names)}
        if self.tokenizer is None:  # fine-tuning keeps the trained model's pieces (adopt_tokenizer)
            self.tokenizer = SentencePieceTokenizer.train(raw["train"][0], vocab_size=self._vocab_size)
        for split, (texts, labels) in raw.items():
            unseen = sorted({str(y) for y in labels} - set(index))
            if unseen:
                raise DataError(
                    f"label(s) {unseen[:5]} of the {split} split never occur in training "
                    f"(training labels: {self.label_names[:20]})",
                    path=str(self.paths[split] or self.paths["train"]),
                )
            self.splits[split] = [
                (self.tokenizer.encode(t)[: self.max_length], index[str(y)]) for t, y in zip(texts, labels, strict=True)
            ]
        log.info(
            "data: %s; sentencepiece vocabulary %d; %d classes",
            ", ".join(f"{k} {len(v)} texts" for k, v in self.splits.items()),
            self.tokenizer.vocab_size,
            len(self.label_names),
        )

    def adopt_tokenizer(self, tokenizer: Any) -> None:
        """Fine-tuning: tokenise with a trained model's sentencepiece model instead of training one."""
        if not isinstance(tokenizer, SentencePieceTokenizer):
            raise DataError(
                f"init_from: the model was trained with a {type(tokenizer).__name__}; this data uses "
                "sentencepiece (fine-tune with data of the same kind)"
            )
        self.tokenizer = tokenizer

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    @property
    def vocab_size(self) -> int:
        self.prepare()
        return self.tokenizer.vocab_size

    @property
    def num_classes(self) -> int:
        self.prepare()
        return len(self.label_names)

    def collate(self, examples: list[tuple[list[int], int]]) -> SequenceBatch:
        return SequenceBatch.from_lists([e[0] for e in examples], [e[1] for e in examples])

    def _loader(self, split: str, train: bool) -> DataLoader:
        if split not in self.splits:
            raise DataError(f"no '{split}' split in this data (have: {', '.join(self.splits)})")
        return DataLoader(
            self.splits[split],
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            generator=torch.Generator().manual_seed(self.seed) if train else None,
            collate_fn=self.collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)

    def save(self, directory: str | Path) -> None:
        """The tokenizer (``tokenizer.model``) and the label names (``labels.json``)."""
        import json

        self.tokenizer.save(Path(directory) / "tokenizer.model")
        (Path(directory) / "labels.json").write_text(json.dumps(self.label_names, ensure_ascii=False))


def _label_key(name: str) -> tuple[int, Any]:
    """Integers in numeric order, then strings alphabetically."""
    try:
        return (0, int(name))
    except ValueError:
        return (1, name)
