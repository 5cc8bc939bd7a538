"""Streamed training data (``data.streaming=true``): read from its files as it trains, never written out.

For corpora larger than the disk a prepared copy would take. Preparation reads the training split
in passes (a count where a validation share is held out, the tokenizer's, then one encoding pass)
and keeps only each example's lengths (:data:`LENGTHS`, a few bytes an example) with the
tokenizers and the (small) evaluation splits. Training then reads the files again every epoch:

* the stream is cut into windows of ``data.shuffle_buffer`` consecutive examples (a tail shorter
  than half a window joins the one before); window ``k`` is read and encoded by DataLoader worker
  ``k % num_workers`` (every worker reads the files, encoding only its own windows);
* each window's batches are planned from its stored lengths by the kind's batch sampler (length
  buckets under a token budget, or fixed-size batches) seeded by ``(seed, window, epoch)``, so the
  order is shuffled within a window, the plan is known before a line is read (``len`` of the
  loader: the progress bar, schedules by total steps), and every rank plans every window alike:
  each rank makes the same number of batches per window, as data-parallel training needs (each
  rank encodes every window and collates its own share of its batches);
* the loader's state (the epoch and, per worker, the batches the training loop has processed) is
  saved in checkpoints: a resumed run skips whole windows without encoding them and continues with
  the very next batch, as :class:`~nlp_lib.data.resumable.ResumableLoader` does for prepared data.

Encoding a window gives the stored lengths, or :class:`~nlp_lib.errors.DataError` (the files changed).

Not ``datasets``' iterable datasets: with ``split_dataset_by_node`` ranks make different numbers
of batches under a token budget (a data-parallel epoch hangs at its end), and their ``state_dict``
refills the shuffle buffer on resume (a resumed run would not see the batches an uninterrupted one does).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from nlp_lib.data.resumable import EpochSampler, trainer_pins_memory, trainer_progress, trainer_ranks
from nlp_lib.errors import DataError

__all__ = ["LENGTHS", "FixedBatches", "StreamSplit", "StreamingLoader", "hold_out_stream", "kept", "quietly"]
__all__ += ["read_quietly", "window_sampler", "write_lengths"]

LENGTHS = "train-lengths.arrow"
"""The file of a streamed entry holding each training record's lengths and whether it trains."""

KEEP = "keep"
CHUNK = 10_000


def hold_out_stream(
    records: Callable[[], Iterable[Any]], fraction: float | None, seed: int
) -> tuple[np.ndarray, list[Any] | None]:
    """``(keep, held)`` of a stream: which records train and, with a ``fraction`` to hold out, the held-out
    records, drawn as :func:`~nlp_lib.data.arrow.hold_out` draws them from prepared data (same seed:
    the same records, in the same order). Reads the stream once, twice with a ``fraction``."""
    n = sum(1 for _ in records())
    if fraction is None or n < 2:
        return np.ones(n, dtype=bool), None if fraction is None else []
    from nlp_lib.data.arrow import hold_out

    _, val = hold_out(n, fraction, seed)
    keep = np.ones(n, dtype=bool)
    keep[val] = False
    where = {i: j for j, i in enumerate(val)}
    held: list[Any] = [None] * len(val)
    for i, record in enumerate(records()):
        if i in where:
            held[where[i]] = record
    return keep, held


def kept(records: Iterable[Any], keep: np.ndarray) -> Iterator[Any]:
    """The training records of a stream (``keep`` true)."""
    for record, k in zip(records, keep.tolist(), strict=False):
        if k:
            yield record


def write_lengths(
    path: Path,
    records: Iterable[Any],
    keep: np.ndarray,
    encode: Callable[[list[Any]], tuple[list[Any], np.ndarray]],
    sides: Sequence[str],
) -> int:
    """One encoding pass: each record's lengths (held-out ones 0) and ``keep`` as an Arrow stream
    file; the number of training records. :class:`DataError` if the stream's length changed."""
    import pyarrow as pa

    schema = pa.schema([*((s, pa.uint32()) for s in sides), (KEEP, pa.bool_())])
    start, records = 0, iter(records)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        while chunk := list(itertools.islice(records, CHUNK)):
            flags = keep[start : start + len(chunk)]
            if len(flags) != len(chunk):
                raise DataError(f"the training data changed while it was prepared: {len(keep)} records, then more")
            lengths = np.zeros((len(chunk), len(sides)), dtype=np.uint32)
            lengths[flags] = encode([r for r, k in zip(chunk, flags.tolist(), strict=True) if k])[1]
            columns = [pa.array(lengths[:, j]) for j in range(len(sides))]
            writer.write_batch(pa.record_batch([*columns, pa.array(flags)], schema=schema))
            start += len(chunk)
    if start != len(keep):
        raise DataError(f"the training data changed while it was prepared: {len(keep)} records, then {start}+")
    return int(keep.sum())


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    before = logging.root.manager.disable
    logging.disable(max(before, logging.WARNING))
    try:
        yield
    finally:
        logging.disable(before)


def read_quietly(records: Iterator[Any], n: int) -> list[Any]:
    """The next ``n`` records, the reader's warnings (skipped lines...) silenced while it reads:
    the first pass of preparation logged them and the entry keeps them; later passes and epochs
    would repeat them."""
    with _silenced():
        return list(itertools.islice(records, n))


def quietly(records: Iterable[Any]) -> Iterator[Any]:
    """``records``, read :data:`CHUNK` at a time by :func:`read_quietly` (the consumer's own
    warnings, between chunks, are not silenced)."""
    it = iter(records)
    while block := read_quietly(it, CHUNK):
        yield from block


class StreamSplit:
    """The training split of streamed data: stored lengths, and the reader and encoder to make its examples.

    Args:
        lengths: ``[records, sides]`` lengths of every record of the stream (held-out ones too).
        keep: ``[records]``: whether the record trains (False: held out for validation).
        records: Returns a fresh iterator over the training split's raw records, in file order.
        encode: Raw records -> ``(examples, lengths [m, sides])`` (the same function preparation used).
        window: Records per window (``data.shuffle_buffer``).
    """

    streamed = True

    def __init__(
        self,
        lengths: np.ndarray,
        keep: np.ndarray,
        records: Callable[[], Iterable[Any]],
        encode: Callable[[list[Any]], tuple[list[Any], np.ndarray]],
        window: int,
    ) -> None:
        if window < 1:
            raise DataError(f"data.shuffle_buffer must be at least 1, got {window}")
        self.lengths = lengths
        self.keep = keep
        self.records = records
        self.encode = encode
        self.window = window
        n = len(keep)
        starts = list(range(0, n, window)) or [0]
        if len(starts) > 1 and n - starts[-1] < window // 2:  # a short tail joins the window before
            starts.pop()
        self.bounds = [(s, e) for s, e in zip(starts, [*starts[1:], n], strict=True)]
        self._count = int(np.count_nonzero(keep))

    @classmethod
    def open(cls, path: Path, sides: Sequence[str], examples: int, **kwargs: Any) -> StreamSplit:
        """The lengths file of an entry (untrusted: checked here), memory-mapped."""
        from nlp_lib.data.arrow import map_file

        where = f"{path.name} (a cache entry's training lengths)"
        try:
            table = map_file(path)
            table.validate(full=True)
        except (OSError, ValueError) as e:  # pyarrow's errors are ValueErrors
            raise ValueError(f"{where}: not a readable Arrow stream ({e})") from None
        import pyarrow as pa

        want = pa.schema([*((s, pa.uint32()) for s in sides), (KEEP, pa.bool_())])
        if not table.schema.equals(want):
            raise ValueError(f"{where}: columns {table.schema}, expected {want}")

        def column(name: str, dtype: Any) -> np.ndarray:  # from the buffers: pyarrow's to_numpy imports pandas
            chunks = []
            for c in table.column(name).chunks:
                if c.null_count:
                    raise ValueError(f"{where}: {name} has missing values")
                data = np.frombuffer(c.buffers()[1], dtype=np.uint8)
                if dtype is bool:
                    chunks.append(np.unpackbits(data, bitorder="little")[c.offset : c.offset + len(c)].astype(bool))
                else:
                    chunks.append(data.view(dtype)[c.offset : c.offset + len(c)])
            return np.concatenate(chunks) if chunks else np.zeros(0, dtype)

        lengths = np.stack([column(s, np.uint32) for s in sides], axis=1)
        keep = column(KEEP, bool)
        if type(examples) is not int or int(np.count_nonzero(keep)) != examples or examples < 1:
            raise ValueError(f"{where}: {int(np.count_nonzero(keep))} training records, meta.json says {examples}")
        return cls(lengths, keep, window=kwargs.pop("window"), **kwargs)

    def __len__(self) -> int:
        return self._count

    def window_lengths(self, k: int) -> np.ndarray:
        """``[examples, sides]`` lengths of window ``k``'s training examples."""
        s, e = self.bounds[k]
        return self.lengths[s:e][self.keep[s:e]]

    def windows(self, mine: Callable[[int], bool]) -> Iterator[tuple[int, list[Any] | None]]:
        """Read the stream once: ``(k, training records of window k)`` where ``mine(k)``, else ``(k, None)``
        (its lines read past, not kept). Stops after the last window ``mine`` wants."""
        last = max((k for k in range(len(self.bounds)) if mine(k)), default=-1)
        it = iter(self.records())
        try:
            for k, (s, e) in enumerate(self.bounds[: last + 1]):
                records = read_quietly(it, e - s)
                got = len(records)
                if not mine(k):
                    records = None
                if got != e - s:
                    raise DataError(
                        f"the training data ended at record {s + got}, but {len(self.keep)} were prepared: "
                        "the files changed since; remove the cache entry (or data.cache=false) and start again"
                    )
                if records is not None:
                    records = [r for r, keep in zip(records, self.keep[s:e].tolist(), strict=True) if keep]
                yield k, records
            if last == len(self.bounds) - 1 and read_quietly(it, 1):  # the reader of the last window
                raise DataError(
                    f"the training data has more than the {len(self.keep)} records prepared: the files changed "
                    "since; remove the cache entry (or data.cache=false) and start again"
                )
        finally:
            getattr(it, "close", lambda: None)()

    def examples(self, k: int, records: list[Any]) -> list[Any]:
        """Window ``k``'s examples, encoded; :class:`DataError` unless their lengths are the stored ones."""
        examples, lengths = self.encode(records)
        if not np.array_equal(np.asarray(lengths).reshape(-1, self.lengths.shape[1]), self.window_lengths(k)):
            s, e = self.bounds[k]
            raise DataError(
                f"the training records {s}..{e - 1} encode to other lengths than when the data was prepared: "
                "the files changed since; remove the cache entry (or data.cache=false) and start again"
            )
        return examples


class FixedBatches:
    """Batches of ``batch_size`` of a window's examples, shuffled by ``(seed, epoch)``, the same count on every rank."""

    def __init__(self, n: int, batch_size: int, *, seed: int, num_replicas: int = 1, rank: int = 0) -> None:
        self.sampler = EpochSampler(n, seed, num_replicas, rank)
        self.batch_size = batch_size

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = list(self.sampler)
        return (order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size))


def window_sampler(split: StreamSplit, sampler: Callable[[np.ndarray, int], Any], seed: int, k: int, epoch: int) -> Any:
    """Window ``k``'s batch sampler in ``epoch``, from its stored lengths (seeded by ``seed`` and ``k``)."""
    made = sampler(split.window_lengths(k), seed * 1_000_033 + k)
    made.set_epoch(epoch)
    return made


class _WindowStream(IterableDataset):
    """What a DataLoader worker runs: its windows, read, encoded and cut into this rank's batches."""

    def __init__(self, loader: StreamingLoader, epoch: int, skips: list[int], first: int) -> None:
        self.split = loader.split
        self.first = first
        self.sampler = loader.sampler_of
        self.seed = loader.seed
        self.collate = loader.collate
        self.epoch = epoch
        self.skips = skips

    def plan(self, k: int, epoch: int) -> list[list[int]]:
        return [list(b) for b in window_sampler(self.split, self.sampler, self.seed, k, epoch)]

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        # the loader takes batches from its workers in turn, from worker 0: a resumed epoch starts
        # the turns with the stream whose batch came next, so worker 0 reads that stream
        worker = (worker + self.first) % workers
        skip = self.skips[worker]
        for k, records in self.split.windows(lambda k: k % workers == worker):
            if records is None:
                continue
            batches = self.plan(k, self.epoch)
            if skip >= len(batches):  # a resumed epoch: whole windows already trained on, not encoded
                skip -= len(batches)
                continue
            examples = self.split.examples(k, records)
            for batch in batches[skip:]:
                yield worker, self.collate([examples[i] for i in batch])
            skip = 0


class StreamingLoader(DataLoader):
    """The training loader of streamed data (see the module docstring); its position survives a checkpoint.

    Args:
        split: The stream.
        sampler: ``(lengths [m, sides], seed) -> batch sampler`` of one window (``set_epoch``,
            ``len``, iterating this rank's batches of indices into the window's examples).
        collate: Builds a batch (runs in the workers).
        progress: ``(epoch, batches processed in it)`` (the trainer's counters).
        epoch_now: The epoch an iteration starting now belongs to.
        seed: Seed of the plans.
        num_workers: DataLoader workers (each reads the files; window ``k`` is encoded by worker ``k % num_workers``).
        plan_key: What a checkpoint's plan must match to resume (batch size or budget, ranks...).
    """

    @classmethod
    def for_trainer(cls, split: StreamSplit, trainer: Any, *, sampler: Callable, **kwargs: Any) -> StreamingLoader:
        epochs = itertools.count()
        replicas, _ = trainer_ranks(trainer)
        return cls(
            split,
            sampler=sampler,
            progress=lambda: trainer_progress(trainer),
            epoch_now=(lambda: trainer.current_epoch) if trainer is not None else (lambda: next(epochs)),
            pin_memory=trainer_pins_memory(trainer),
            replicas=replicas,
            **kwargs,
        )

    def __init__(
        self,
        split: StreamSplit,
        *,
        sampler: Callable[[np.ndarray, int], Any],
        collate: Callable[[list[Any]], Any],
        progress: Callable[[], tuple[int, int]],
        epoch_now: Callable[[], int],
        seed: int,
        num_workers: int = 0,
        pin_memory: bool = False,
        replicas: int = 1,
        plan_key: Any = None,
    ) -> None:
        self.split = split
        self.sampler_of = sampler
        self.collate = collate
        self.seed = seed
        self._progress = progress
        self._epoch_now = epoch_now
        self._plan_key = {"plan": plan_key, "window": split.window, "workers": max(num_workers, 1), "ranks": replicas}
        self._plans: tuple[int, list[int]] | None = None
        self._epoch = 0
        self._resume: tuple[int, list[int], int] | None = None
        self._base = [0] * max(num_workers, 1)
        self._first = 0
        self._tags: list[int] = []
        super().__init__(
            _WindowStream(self, 0, self._base, 0),
            batch_size=None,
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=False,  # each epoch's workers start with that epoch's plan and skips
        )

    def _counts(self, epoch: int) -> list[int]:
        """The number of batches of each window in ``epoch`` (planned once per epoch)."""
        if self._plans is None or self._plans[0] != epoch:
            counts = [
                len(window_sampler(self.split, self.sampler_of, self.seed, k, epoch))
                for k in range(len(self.split.bounds))
            ]
            self._plans = (epoch, counts)
        return self._plans[1]

    def __len__(self) -> int:
        return sum(self._counts(self._epoch))

    def __iter__(self) -> Iterator[Any]:
        self._epoch = epoch = int(self._epoch_now())
        workers = max(self.num_workers, 1)
        skips, first = [0] * workers, 0
        if self._resume is not None and self._resume[0] == epoch:
            skips, first = list(self._resume[1]), self._resume[2]
        self._resume = None
        self._base, self._first, self._tags = skips, first, []
        self.__dict__["dataset"] = _WindowStream(self, epoch, skips, first)  # workers start with this epoch's plan
        with warnings.catch_warnings():  # Lightning: an IterableDataset with a length (ours is exact)
            warnings.filterwarnings("ignore", message=".*IterableDataset.*__len__.*")
            for worker, batch in super().__iter__():
                self._tags.append(worker)
                yield batch

    def state_dict(self) -> dict[str, Any]:
        epoch, done = self._progress()
        per_worker, first = [0] * len(self._base), 0
        if epoch == self._epoch and done > 0:
            taken = self._tags[: done - sum(self._base)]  # since this iteration started
            counted = Counter(taken)
            per_worker = [base + counted[w] for w, base in enumerate(self._base)]
            first = (taken[-1] + 1) % len(per_worker) if taken else self._first
        return {
            "epoch": int(epoch),
            "batches": int(done),
            "per_worker": per_worker,
            "first": first,
            "plan": self._plan_key,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("plan") != self._plan_key:
            raise ValueError(
                f"the checkpoint's streamed batches were planned as {state.get('plan')}, this run plans "
                f"{self._plan_key}: resume with the same data.batch_size / data.token_budget, "
                "data.shuffle_buffer, data.num_workers and number of devices"
            )
        epoch = per_worker = first = None
        try:
            epoch, per_worker, first = state["epoch"], list(state["per_worker"]), state.get("first", 0)
        except (KeyError, TypeError):
            pass
        workers = len(self._base)
        whole = all(type(x) is int and x >= 0 for x in [epoch, first, *(per_worker or [None])])
        if not whole or len(per_worker) != workers or first >= workers:
            raise ValueError(f"the checkpoint's streamed-data position is malformed: {state!r}")
        counts = self._counts(epoch)  # no worker past its own batches of that epoch
        planned = [sum(counts[k] for k in range(w, len(counts), workers)) for w in range(workers)]
        if any(done > most for done, most in zip(per_worker, planned, strict=True)):
            raise ValueError(f"the checkpoint's streamed-data position {per_worker} is past the epoch's {planned}")
        self._epoch = epoch
        self._resume = (epoch, per_worker, first)
        self._base, self._first, self._tags = per_worker, first, []  # a checkpoint before the next batch
