"""The base of every DataModule here: :class:`PreparedData` (prepare once into Arrow, cached) on
:class:`SplitLoaders` (the train / val / test loaders of encoded splits).

Training batches come from a :class:`~nlp_lib.data.resumable.ResumableLoader` (a killed run resumes
mid-epoch); evaluation batches are built once and served the same every epoch.
"""

from __future__ import annotations

import abc
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from nlp_lib.data.resumable import ResumableLoader, trainer_pins_memory, trainer_ranks
from nlp_lib.errors import DataError

__all__ = ["PreparedData", "SplitLoaders", "eval_batches"]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
DATA = "data"
"""The folder of an entry holding the splits' Arrow files (the tokenizers and ``meta.json`` lie beside it)."""


def eval_batches(examples: list, batch_size: int, collate: Callable) -> list:
    """Evaluation batches, built once (the same every epoch) and served by ``DataLoader(..., batch_size=None)``."""
    return [collate(examples[i : i + batch_size]) for i in range(0, len(examples), batch_size)]


class SplitLoaders:
    """The train / val / test loaders of a DataModule holding encoded examples in ``self.splits``.

    Training: :class:`ResumableLoader` (sharded by rank, its position in checkpoints), by
    ``batch_size`` or, when :meth:`budget_sampler` returns one, by a size budget. Evaluation: the
    same batches every epoch, built once (in :meth:`eval_examples` order). A DataModule using it
    sets ``splits``, ``batch_size``, ``eval_batch_size``, ``seed``, ``num_workers`` and
    ``_eval_batches`` (a dict) and defines ``prepare()`` and ``collate()``.
    """

    def budget_sampler(self, split: str, replicas: int, rank: int) -> Any:
        """A batch sampler by size budget for the training split, or None (fixed ``batch_size``)."""
        return None

    def sizes_sampler(self, sizes: Any, replicas: int, rank: int, seed: int) -> Any:
        """A batch sampler by size budget over examples of ``sizes`` (a length array), or None (fixed ``batch_size``)."""
        return None

    def window_sampler(self, replicas: int, rank: int, sizes: Any, seed: int) -> Any:
        """The batches of one window of streamed training data: by size budget, or ``batch_size`` at a time."""
        from nlp_lib.data.streaming import FixedBatches

        made = self.sizes_sampler(sizes, replicas, rank, seed)
        return (
            made
            if made is not None
            else FixedBatches(len(sizes), self.batch_size, seed=seed, num_replicas=replicas, rank=rank)
        )

    def plan_key(self) -> dict[str, Any]:
        """What decides the batches (a resumed run must plan them alike)."""
        return {"batch_size": self.batch_size, "budget": getattr(self, "token_budget", None)}

    def eval_examples(self, split: str) -> list:
        """A split's examples in evaluation order (padded sequences: by length, less padding)."""
        return self.splits[split]

    def _loader(self, split: str, *, train: bool) -> Any:
        self.prepare()
        if split not in self.splits:
            raise DataError(f"no '{split}' split in this data (have: {', '.join(self.splits)})")
        if not train:
            if split not in self._eval_batches:
                self._eval_batches[split] = eval_batches(self.eval_examples(split), self.eval_batch_size, self.collate)
            return DataLoader(
                self._eval_batches[split], batch_size=None, shuffle=False, pin_memory=trainer_pins_memory(self.trainer)
            )
        replicas, rank = trainer_ranks(self.trainer)
        if getattr(self.splits[split], "streamed", False):  # data.streaming: read from the files as it trains
            from functools import partial

            from nlp_lib.data.streaming import StreamingLoader

            return StreamingLoader.for_trainer(
                self.splits[split],
                self.trainer,
                sampler=partial(self.window_sampler, replicas, rank),
                collate=self.collate,
                seed=self.seed,
                num_workers=self.num_workers,
                plan_key=self.plan_key(),
            )
        budget = self.budget_sampler(split, replicas, rank)
        return ResumableLoader.for_trainer(  # its position goes into checkpoints: a killed run resumes mid-epoch
            self.splits[split],
            self.trainer,
            batch_size=None if budget is not None else self.batch_size,
            batch_sampler=budget,
            seed=self.seed,
            collate_fn=self.collate,  # runs in the DataLoader workers (tree schedules too)
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> Any:
        return self._loader("train", train=True)

    def val_dataloader(self) -> Any:
        return self._loader("val", train=False)

    def test_dataloader(self) -> Any:
        return self._loader("test", train=False)


class PreparedData(SplitLoaders, pl.LightningDataModule, abc.ABC):
    """What every DataModule of the library shares: prepare once into Arrow files, cached; read by index.

    :meth:`prepare` (idempotent; ``setup`` calls it) loads the on-disk cache entry of the data and
    options (:mod:`nlp_lib.data.cache`) when there is an intact one; otherwise it calls the kind's
    :meth:`build` in a staging folder, which reads the files, trains or adopts the tokenizer and
    writes each split's encoded Arrow file(s) (:meth:`write_raw`, :meth:`hold_out`,
    :meth:`encode_split`), and commits the folder as the entry (or, uncached, keeps it in a
    temporary folder for the life of the module). Either way ``self.splits`` then maps each split to
    an :class:`~nlp_lib.data.arrow.ArrowSplit` over the memory-mapped files: the training process
    and its DataLoader workers share those pages, and memory does not grow with the corpus.

    A kind (trees, text, seq2seq) defines :attr:`cache_kind`, :attr:`fields` and
    :attr:`make_example` (its examples' columns and how one is built from them), :attr:`restored`
    (its attributes a failed cache load rolls back), :meth:`cache_options` (``None``: not cached),
    :meth:`build`, :meth:`write_tokenizers`, :meth:`restore` (its tokenizers and meta from an entry),
    :meth:`check` (the loaded values against them: a cache entry is untrusted), ``collate`` and
    :meth:`summary`.
    """

    cache_kind: ClassVar[str] = "data"
    fields: ClassVar[tuple[str, ...]] = ()
    make_example: ClassVar[Callable[[tuple[Any, ...]], Any] | None] = None
    restored: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        *,
        batch_size: int,
        eval_batch_size: int | None,
        num_workers: int,
        seed: int,
        num_proc: int | None,
        cache: bool,
        cache_dir: str | None,
        cache_key: dict[str, Any] | None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise DataError(f"data.batch_size must be at least 1, got {batch_size}")
        if num_proc is not None and num_proc < 1:
            raise DataError(f"data.num_proc must be at least 1 (or null: automatic), got {num_proc}")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.num_proc = num_proc
        self.cache = cache
        self.cache_dir = cache_dir
        self.cache_key = cache_key
        self.splits: dict[str, Any] = {}
        self._eval_batches: dict[str, list[Any]] = {}
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.only: tuple[str, ...] | None = None  # evaluation only: the splits to read (evaluate_only)

    def evaluate_only(self, split: str, labels: Sequence[str] = ()) -> None:
        """Prepare ``split`` alone, for a trained model: its tokenizer adopted beforehand
        (``adopt_tokenizer``, or ``vocab``), its label names (class-id order) given here. The
        other splits are not read (the training split only where ``split`` is held out of it),
        no tokenizer is trained and nothing is cached. ``nlp-lib eval`` calls it."""
        if split not in SPLITS:
            raise DataError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        self.only = (split,)
        self.adopt_labels(list(labels))

    def wanted(self, split: str) -> bool:
        """Whether ``split`` is prepared (every split, unless :meth:`evaluate_only`)."""
        return self.only is None or split in self.only

    def required(self) -> tuple[str, ...]:
        """The splits that must be there and non-empty."""
        return self.only if self.only is not None else ("train", "val")

    # ------------------------------------------------------------------ what a kind defines

    def adopt_labels(self, labels: list[str]) -> None:
        """A trained model's label names (class-id order), for :meth:`evaluate_only`."""

    def cache_options(self) -> dict[str, Any] | None:
        """The options the prepared data depends on besides ``cache_key`` (``None``: not cached)."""
        return None

    @abc.abstractmethod
    def build(self, folder: Path) -> dict[str, Any]:
        """Read, tokenise and encode every split into ``folder``; the entry's meta (JSON), with
        ``"splits": {name: [Arrow file names]}``."""

    def write_tokenizers(self, folder: Path) -> None:
        """Save the tokenizer files of the entry into ``folder``."""

    def restore(self, folder: Path, meta: dict[str, Any]) -> None:
        """Load the tokenizers (and whatever else ``meta`` holds) of an entry."""

    def check_piece(self, name: str, split: Any) -> None:
        """``ValueError`` unless every value of ``split`` (a piece of the ``name`` split, read from
        its files: :meth:`check`) fits the tokenizers and labels (ids in range...)."""

    def check(self) -> None:
        """Check the loaded files' contents, a record batch at a time: Arrow's full validation
        (offsets and lengths inside the buffers), then :meth:`check_piece`. The batches are read
        into memory one by one, not through the memory map: the check leaves no page of the
        files mapped into this process (its memory stays what training touches)."""
        for name, split in self.splits.items():
            if getattr(split, "streamed", False):  # its lengths here; its text as it is read (StreamSplit.examples)
                self.check_stream(split)
                continue
            for piece in split.pieces():
                piece.table.validate(full=True)
                self.check_piece(name, piece)

    def check_stream(self, split: Any) -> None:
        """``ValueError`` unless a streamed split's stored lengths and training mask are what
        preparation would have written (the lengths of each pair are checked as it is encoded)."""
        raise ValueError("this kind of data is not streamed")

    def open_stream(self, folder: Path, meta: Any) -> Any:
        """The streamed training split of an entry (``data.streaming``; kinds that stream define it)."""
        raise ValueError("meta.json: this kind of data is not streamed, but the entry says it is")

    def summary(self) -> str:
        """One line about the prepared data (logged)."""
        return ", ".join(f"{k} {len(v)} examples" for k, v in self.splits.items())

    # ------------------------------------------------------------------ the mechanism

    def prepare(self) -> None:
        """Load the prepared data from the cache, or prepare it (and cache it); idempotent."""
        if self.splits:
            return
        entry = self._cache_entry()
        if entry is not None:
            from nlp_lib.data.cache import load_entry

            if load_entry(self, entry, self._fill, (*self.restored, "splits")):
                return
        folder = self._staging(entry)
        from nlp_lib.data.cache import warnings_of

        try:
            with warnings_of() as notes:  # skipped lines: repeated by runs that load the cache
                meta = self.build(folder)
            meta["notes"] = list(notes)
            keep = {f for files in meta["splits"].values() for f in files}
            if "stream" in meta:  # a streamed training split keeps only its lengths
                from nlp_lib.data.streaming import LENGTHS

                keep.add(LENGTHS)
            for path in (folder / DATA).iterdir():  # raw tables, index mappings: not part of the entry
                if path.name not in keep:
                    path.unlink()
            self.write_tokenizers(folder)
            (folder / "meta.json").write_text(json.dumps(meta))
        except BaseException:
            self.splits = {}
            if entry is not None:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        final = entry.commit(folder) if entry is not None else folder
        if final != folder:  # another rank's entry, the same data: read its meta
            meta = json.loads((final / "meta.json").read_text())
        self._open(final, meta)
        log.info("data: %s", self.summary())

    def _cache_entry(self) -> Any:
        cached = self.cache and self.cache_key is not None and self.only is None
        options = self.cache_options() if cached else None
        if options is None:
            return None
        from nlp_lib.data.cache import DataCache

        return DataCache(self.cache_kind, {"source": self.cache_key, **options}, self.cache_dir)

    def _staging(self, entry: Any) -> Path:
        if entry is not None:
            try:
                return entry.staging()
            except OSError as e:
                log.warning("data cache: cannot write in %s (%s); continuing without it", entry.root, e)
        self._tmp = tempfile.TemporaryDirectory(prefix="nlp_lib-data-", ignore_cleanup_errors=True)
        return Path(self._tmp.name)

    def _fill(self, entry: Any, meta: dict[str, Any]) -> None:
        from nlp_lib.data.cache import repeat_warnings

        repeat_warnings(meta.get("notes", []), entry)
        self.restore(entry.path, meta)
        self._open(entry.path, meta)
        if not entry.checked:  # a stamp of this user's vouches for files it checked before
            self.check()
        log.info("data: %s", self.summary())

    def _open(self, folder: Path, meta: dict[str, Any]) -> None:
        from nlp_lib.data.arrow import ArrowSplit

        files = meta.get("splits")
        streamed = {"train"} if "stream" in meta else set()
        if (
            not isinstance(files, dict)
            or not set(files) <= set(SPLITS) - streamed
            or not set(self.required()) <= set(files) | streamed
        ):
            raise ValueError(f"meta.json: 'splits' must map train, val (and test) to file names, got {files!r}")
        self.splits = {
            name: ArrowSplit.open(folder / DATA, files[name], self.fields, self.make_example, f"split {name!r}")
            for name in SPLITS
            if name in files
        }
        if streamed:
            self.splits = {"train": self.open_stream(folder / DATA, meta["stream"]), **self.splits}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_tmp"] = None  # a pickled copy (a spawned worker) never deletes the folder
        return state

    # ------------------------------------------------------------------ helpers for build()

    @staticmethod
    def write_raw(folder: Path, name: str, schema: Any, records: Iterable[Sequence[Any]]) -> Any:
        """Records (tuples in ``schema`` order) -> a raw Arrow table in ``folder/data`` (a chunk at a time)."""
        from datasets import Dataset

        from nlp_lib.data.arrow import write_records

        (folder / DATA).mkdir(exist_ok=True)
        path = folder / DATA / f"raw-{name}.arrow"
        write_records(path, schema, records)
        return Dataset.from_file(str(path), in_memory=False)

    @staticmethod
    def hold_out(raw: Any, fraction: float, seed: int) -> tuple[Any, Any]:
        """``(train, val)`` of a raw training table: ``fraction`` of its rows (at least one) held out."""
        from nlp_lib.data.arrow import hold_out

        train, val = hold_out(len(raw), fraction, seed)
        return raw.select(train, keep_in_memory=True), raw.select(val, keep_in_memory=True)

    def encode_split(
        self, folder: Path, name: str, raw: Any, function: Callable, features: Any, **fn_kwargs: Any
    ) -> list[str]:
        """Encode a raw table into ``folder/data/<name>*.arrow`` (``data.num_proc`` processes); the file names."""
        from nlp_lib.data.arrow import encode

        path = folder / DATA / f"{name}.arrow"
        done = encode(raw, function, features, path, num_proc=self.num_proc, fn_kwargs=fn_kwargs)
        return [Path(f["filename"]).name for f in done.cache_files]

    def setup(self, stage: str | None = None) -> None:
        self.prepare()
