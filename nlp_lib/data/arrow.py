"""Prepared data as Arrow: written in chunks, encoded with ``datasets.Dataset.map``, read by index.

Every DataModule prepares its data through the same steps (:class:`~nlp_lib.data.datamodule.PreparedData`):

1. its reader's records are written, a chunk at a time, into a raw Arrow file per split
   (:func:`write_records`: no list of every record is kept);
2. the raw table is encoded into id columns by ``Dataset.map(batched=True, num_proc=...)``
   (:func:`encode`), ids stored in the narrowest integer type that holds them (:func:`int_type`);
3. the training process and its DataLoader workers read examples by index from the memory-mapped
   files (:class:`ArrowSplit`): the pages are the page cache's, shared by every process that maps
   them, and nothing per example is held as a Python object. Samplers read the lengths from the
   list columns' offsets (:meth:`ArrowSplit.lengths`), never the examples.

Files of a cache entry are untrusted input (:mod:`nlp_lib.data.cache`): :func:`open_split` checks
the Arrow structure in full (offsets in bounds) and the columns the DataModule names, and
:meth:`ArrowSplit.check_range` the values (ids inside the vocabulary, labels among the classes).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ArrowSplit", "encode", "hold_out", "int_type", "open_split", "write_records"]

CHUNK = 10_000
"""Records per Arrow record batch when writing, and per batch of ``Dataset.map``."""

PARALLEL_FROM = 50_000
"""``num_proc=None`` (automatic) encodes splits of at least so many records with every CPU (at most 8)."""


def int_type(low: int, high: int) -> Any:
    """The narrowest Arrow integer type holding every value in ``[low, high]``.

    >>> str(int_type(0, 255)), str(int_type(-1, 30_000)), str(int_type(0, 70_000))
    ('uint8', 'int16', 'uint32')
    """
    import pyarrow as pa

    unsigned = ((pa.uint8(), 1 << 8), (pa.uint16(), 1 << 16), (pa.uint32(), 1 << 32))
    signed = ((pa.int8(), 1 << 7), (pa.int16(), 1 << 15), (pa.int32(), 1 << 31))
    for t, bound in unsigned if low >= 0 else signed:
        if high < bound and -low <= bound:
            return t
    return pa.int64()


def write_records(path: str | Path, schema: Any, records: Iterable[Sequence[Any]]) -> int:
    """Write ``records`` (tuples in ``schema``'s field order) into an Arrow stream file, :data:`CHUNK` at a time.

    Returns the number of records. Only one chunk of records is held in memory at once.
    """
    import pyarrow as pa

    names = schema.names
    count = 0
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        columns: list[list[Any]] = [[] for _ in names]

        def flush() -> None:
            writer.write_batch(pa.record_batch(columns, schema=schema))
            for c in columns:
                c.clear()

        for record in records:
            for column, value in zip(columns, record, strict=True):
                column.append(value)
            count += 1
            if count % CHUNK == 0:
                flush()
        if columns[0] or count == 0:
            flush()
    return count


def _num_proc(rows: int, num_proc: int | None) -> int | None:
    if num_proc is None:
        num_proc = min(os.cpu_count() or 1, 8) if rows >= PARALLEL_FROM else 1
    return num_proc if num_proc > 1 and rows >= 2 * num_proc else None


def encode(
    raw: Any,
    function: Callable[..., dict[str, list[Any]]],
    features: Any,
    path: str | Path,
    *,
    num_proc: int | None = None,
    fn_kwargs: dict[str, Any] | None = None,
) -> Any:
    """``raw`` (a ``datasets.Dataset``) encoded by ``function`` (a batch of raw columns as Python
    lists -> encoded columns as Python lists) into the Arrow file(s) at ``path`` (``num_proc``
    shards: ``<stem>_0000i_of_0000n.arrow``), typed by ``features``.

    ``Dataset.map`` runs in Arrow format: each batch's outputs become Arrow arrays here, list
    columns built from one flat list and their offsets (several times faster than ``datasets``
    converting list by list), with the garbage collector paused meanwhile (millions of small
    lists would make it rescan every live object). ``function`` and ``fn_kwargs`` must pickle (a
    module-level function; tokenizers do) when the split is encoded by several processes:
    ``num_proc=None`` uses every CPU (up to 8) on splits of :data:`PARALLEL_FROM` records or more,
    one process below.
    """
    import datasets

    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # no "Map" bars in the run's log
    try:
        return raw.with_format("arrow").map(
            _arrow_batch,
            batched=True,
            batch_size=CHUNK,
            num_proc=_num_proc(len(raw), num_proc),
            remove_columns=raw.column_names,
            fn_kwargs={"function": function, "schema": features.arrow_schema, "kwargs": fn_kwargs or {}},
            cache_file_name=str(path),
            load_from_cache_file=False,
            new_fingerprint=Path(path).stem,  # nothing to hash: the file is written once, here
            keep_in_memory=False,
        )
    finally:
        if bars:
            datasets.enable_progress_bars()


def _arrow_batch(table: Any, *, function: Callable, schema: Any, kwargs: dict[str, Any]) -> Any:
    """One batch of :func:`encode`: Arrow in, ``function`` on Python lists, Arrow out."""
    import gc

    import pyarrow as pa

    collecting = gc.isenabled()
    gc.disable()
    try:
        out = function(table.to_pydict(), **kwargs)
        return pa.Table.from_arrays([to_arrow(out[f.name], f.type) for f in schema], schema=schema)
    finally:
        if collecting:
            gc.enable()


def to_arrow(values: list[Any], type: Any) -> Any:  # noqa: A002 - Arrow's word
    """A column of Python values as an Arrow array of ``type`` (a list column from one flat list and
    its offsets); ``OverflowError``/``ArrowInvalid`` if a value does not fit the type."""
    from itertools import chain

    import pyarrow as pa

    if not pa.types.is_list(type):
        return pa.array(values, type=type)
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = pa.array(list(chain.from_iterable(values)), type=type.value_type)
    return pa.ListArray.from_arrays(pa.array(offsets), flat, type=type)


def hold_out(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """``(train, val)`` indices: ``fraction`` of ``range(n)`` (at least one) held out by a seeded permutation."""
    import torch

    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    k = max(1, round(fraction * n))
    return order[k:], order[:k]


def map_file(path: Path) -> Any:
    """The table of an Arrow stream file, memory-mapped: nothing is copied (its buffers keep the map alive)."""
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_stream(source).read_all()


def open_split(folder: Path, files: Sequence[str], columns: Sequence[str], where: str) -> tuple[Any, list[Path]]:
    """The table of a split's Arrow ``files`` in ``folder``, memory-mapped (nothing is copied), and their paths.

    The files may be a cache entry's (untrusted): each must be a plain file name inside ``folder``
    and its table hold exactly ``columns``, the same types in every file (the contents are
    validated by :meth:`~nlp_lib.data.datamodule.PreparedData.check`, batch by batch). ``ValueError`` names ``where`` and the file
    otherwise. Only ``pyarrow`` is imported (a cached run never imports ``datasets``).
    """
    import pyarrow as pa

    if not files or any(not isinstance(f, str) or "/" in f or "\\" in f or f in ("", ".", "..") for f in files):
        raise ValueError(f"{where}: {files!r} is not a list of file names")
    tables, paths = [], []
    for name in files:
        path = folder / name
        table = map_file(path)
        if sorted(table.column_names) != sorted(columns):
            raise ValueError(f"{where}: {name} has the columns {table.column_names}, expected {list(columns)}")
        table.validate()  # the metadata; the contents are validated batch by batch (PreparedData.check)
        if tables and not table.schema.remove_metadata().equals(tables[0].schema.remove_metadata()):
            raise ValueError(f"{where}: {name} has other column types than {files[0]}")
        tables.append(table.select(list(columns)))
        paths.append(path)
    return (tables[0] if len(tables) == 1 else pa.concat_tables(tables)), paths


class _Reader:
    """Rows of a memory-mapped table read straight from its buffers as numpy views (no copy, no
    Arrow ``take``: that one concatenates the chunks of a column, which costs the whole column)."""

    def __init__(self, table: Any, names: Sequence[str]) -> None:
        import pyarrow as pa

        batches = [b for b in table.to_batches() if b.num_rows]
        self.starts = np.cumsum([0] + [b.num_rows for b in batches])
        self.columns = []
        for name in names:
            views = []
            for b in batches:
                arr = b.column(name)
                if pa.types.is_list(arr.type):
                    values = arr.values.to_numpy(zero_copy_only=False)  # the offsets index the unsliced values
                    views.append(("list", arr.offsets.to_numpy(), values))
                elif pa.types.is_string(arr.type):
                    bufs = arr.buffers()
                    offsets = np.frombuffer(bufs[1], dtype=np.int32)[arr.offset : arr.offset + len(arr) + 1]
                    views.append(("str", offsets, memoryview(bufs[2]) if bufs[2] is not None else memoryview(b"")))
                else:
                    views.append(("value", None, arr.to_numpy(zero_copy_only=False)))
            self.columns.append(views)

    def rows(self, rows: np.ndarray) -> list[list[Any]]:
        """Per column, the values of ``rows`` as Python objects (lists of ints, strings, numbers)."""
        batch = np.searchsorted(self.starts, rows, side="right") - 1
        local = (rows - self.starts[batch]).tolist()
        batch = batch.tolist()
        out = []
        for views in self.columns:
            kind = views[0][0] if views else "value"
            if kind == "list":
                col = []
                for b, i in zip(batch, local, strict=True):
                    _, off, values = views[b]
                    col.append(values[off[i] : off[i + 1]].tolist())
            elif kind == "str":
                col = []
                for b, i in zip(batch, local, strict=True):
                    _, off, data = views[b]
                    col.append(bytes(data[off[i] : off[i + 1]]).decode("utf-8"))
            else:
                col = [views[b][2][i].item() for b, i in zip(batch, local, strict=True)]
            out.append(col)
        return out


class ArrowSplit(Sequence):
    """One split's examples, read by index from its memory-mapped Arrow table.

    ``split[i]`` is one example as the DataModule's collate takes it, ``make(values)`` built from
    the ``fields`` columns (a tuple in ``fields`` order when ``make`` is ``None``); ``split[a:b]``
    and ``split.__getitems__(indices)`` (what a ``DataLoader`` calls for a batch) a list of them,
    read with one Arrow ``take``. It pickles as its files' paths (spawned workers map them again).

    Args:
        files: The split's Arrow files (:func:`open_split` checks and maps them).
        fields: The columns an example is made of, in order.
        make: Builds an example from its values (a module-level function: it is pickled).
        order: A view in this order of the rows (e.g. by length, for evaluation).
        table: The table of ``files`` if already mapped.
    """

    def __init__(
        self,
        files: Sequence[Path],
        fields: Sequence[str],
        make: Callable[[tuple[Any, ...]], Any] | None = None,
        order: np.ndarray | None = None,
        table: Any = None,
    ) -> None:
        self.files = [Path(f) for f in files]
        self.fields = tuple(fields)
        self.make = make
        self.order = order
        self.table = table if table is not None else self._map()
        self._reader: _Reader | None = None

    def _map(self) -> Any:
        import pyarrow as pa

        tables = [map_file(path).select(list(self.fields)) for path in self.files]
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables)

    @classmethod
    def open(
        cls, folder: Path, files: Sequence[str], fields: Sequence[str], make: Any = None, where: str = "split"
    ) -> ArrowSplit:
        """The split of ``files`` in ``folder``, checked (:func:`open_split`)."""
        table, paths = open_split(folder, files, fields, where)
        return cls(paths, fields, make, table=table)

    def __len__(self) -> int:
        return len(self.order) if self.order is not None else self.table.num_rows

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return self.__getitems__(range(len(self))[index])
        n = len(self)
        i = int(index)
        if not -n <= i < n:
            raise IndexError(f"example {index} of a split of {n}")
        return self.__getitems__([i % n])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        rows = np.asarray(indices, dtype=np.int64)
        if self.order is not None:
            rows = self.order[rows]
        if len(rows) == 0:
            return []
        if rows.min() < 0 or rows.max() >= self.table.num_rows:
            raise IndexError(f"rows {rows.min()}..{rows.max()} of a split of {self.table.num_rows}")
        if self._reader is None:  # built in each process that reads (after a fork or unpickling)
            self._reader = _Reader(self.table, self.fields)
        values = zip(*self._reader.rows(rows), strict=True)
        return [self.make(v) for v in values] if self.make is not None else list(values)

    def __iter__(self) -> Iterator[Any]:
        for start in range(0, len(self), 1024):
            yield from self[start : start + 1024]

    def __eq__(self, other: object) -> bool:  # the same examples in the same order (tests compare splits)
        if not isinstance(other, ArrowSplit | list | tuple):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ArrowSplit({len(self)} examples, fields={self.fields})"

    def reordered(self, order: np.ndarray) -> ArrowSplit:
        """A view of the rows in ``order`` (indices into this split)."""
        base = np.asarray(order, dtype=np.int64)
        order = base if self.order is None else self.order[base]
        return ArrowSplit(self.files, self.fields, self.make, order, table=self.table)

    def lengths(self, column: str) -> np.ndarray:
        """Lengths of a list column's rows (``int32``), from its offsets: no row is read."""
        col = self.table.column(column)
        chunks = [np.diff(c.offsets.to_numpy()) for c in col.chunks]
        out = np.concatenate(chunks).astype(np.int32, copy=False) if chunks else np.zeros(0, dtype=np.int32)
        return out[self.order] if self.order is not None else out

    def values(self, column: str) -> np.ndarray:
        """A numeric column (or a list column's flat values) as one array, whole split."""
        import pyarrow as pa

        col = self.table.column(column)
        if pa.types.is_list(col.type):
            col = pa.chunked_array([c.flatten() for c in col.chunks], type=col.type.value_type)
        return col.to_numpy()

    def check_range(self, column: str, low: int, high: int, what: str) -> None:
        """``ValueError`` unless every value of ``column`` lies in ``[low, high]`` (e.g. an id inside the vocabulary)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        col = self.table.column(column)
        if pa.types.is_list(col.type):
            col = pa.chunked_array([c.flatten() for c in col.chunks], type=col.type.value_type)
        if len(col) == 0:
            return
        bounds = pc.min_max(col)
        lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
        if lo is None or lo < low or hi > high:
            raise ValueError(f"column {column!r} holds {what} from {lo} to {hi}, outside {low}..{high}")

    def pieces(self) -> Iterator[ArrowSplit]:
        """The split's record batches, each read into memory from its file (not through the map)
        as a split of its own: for checks that must see every value without mapping the files."""
        import pyarrow as pa

        for path in self.files:
            with pa.OSFile(str(path)) as source:
                for batch in pa.ipc.open_stream(source):
                    yield ArrowSplit(self.files, self.fields, self.make, table=pa.Table.from_batches([batch]))

    def __reduce__(self) -> tuple[Any, ...]:
        return (ArrowSplit, (self.files, self.fields, self.make, self.order))  # mapped again, not copied
