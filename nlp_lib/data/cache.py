"""An on-disk cache of prepared data: read, tokenised and encoded once, loaded as Arrow after that.

A DataModule's ``prepare()`` reads its files, trains or builds its tokenizer and encodes every
example. All of that is a pure function of the input files and the options, so its result is
stored, keyed by a fingerprint of both, as a Hugging Face ``datasets.DatasetDict`` (Arrow files,
memory-mapped when loaded) plus the tokenizer files and a little metadata. A second run with the
same files and options loads that instead of re-reading and re-tokenising (``scripts/bench/data.py``
measures the difference).

* Fingerprint: every input file's resolved path, size and modification time (a file edited in
  place gets a new entry), the reader's and the DataModule's options, the library version and
  :data:`DATA_FORMAT`. Generated data (ListOps, SCAN) is keyed by its generator's parameters.
* Where: ``data.cache_dir=`` or ``$NLP_LIB_CACHE`` or ``~/.cache/nlp_lib``; ``data.cache=false``
  turns it off. Entries are folders ``<kind>-<fingerprint>/``; deleting any of them is safe.
* Safety: an entry is written into a temporary folder and renamed into place, so a killed run or
  two DDP ranks preparing at once never leave a half-written entry; an entry that fails to load is
  ignored (with a warning) and rebuilt.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DATA_FORMAT",
    "DataCache",
    "columns",
    "default_cache_dir",
    "file_fingerprints",
    "load_entry",
    "no_gc",
    "warnings_of",
]

log = logging.getLogger(__name__)

DATA_FORMAT = 1
"""Bumped whenever what an entry holds changes, so older entries are not read."""


def default_cache_dir() -> Path:
    """``$NLP_LIB_CACHE`` if set, else ``~/.cache/nlp_lib``."""
    env = os.environ.get("NLP_LIB_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "nlp_lib"


def file_fingerprints(paths: Iterable[str | Path | None]) -> list[list[Any]]:
    """``[path, size, mtime_ns]`` of each existing file (missing ones as ``[path, None, None]``)."""
    out: list[list[Any]] = []
    for p in paths:
        if p is None:
            continue
        path = Path(p).resolve()
        try:
            st = path.stat()
            out.append([str(path), st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([str(path), None, None])
    return out


class DataCache:
    """One cache entry: ``kind`` names the data, ``key`` is everything its contents depend on.

    Args:
        kind: A short name (``trees``, ``seq2seq``...), the start of the entry's folder name.
        key: JSON-able description of the inputs and options (file fingerprints included).
        directory: The cache folder (default :func:`default_cache_dir`).
    """

    def __init__(self, kind: str, key: dict[str, Any], directory: str | Path | None = None) -> None:
        from nlp_lib import __version__

        blob = json.dumps(
            {"format": DATA_FORMAT, "nlp_lib": __version__, "kind": kind, **key}, sort_keys=True, default=str
        )
        self.fingerprint = hashlib.sha256(blob.encode()).hexdigest()[:24]
        self.root = Path(directory) if directory else default_cache_dir()
        self.path = self.root / f"{kind}-{self.fingerprint}"

    def load(self) -> tuple[Any, dict[str, Any]] | None:
        """``(DatasetDict, meta)`` of a complete entry, or ``None`` (absent or unreadable: rebuilt)."""
        meta_file = self.path / "meta.json"
        if not meta_file.is_file():
            return None
        try:
            from datasets import DatasetDict

            meta = json.loads(meta_file.read_text())
            data = DatasetDict.load_from_disk(str(self.path / "data"))
        except Exception as e:  # a damaged entry is not fatal: it is rebuilt
            log.warning("data cache %s is unreadable (%s: %s); rebuilding it", self.path, type(e).__name__, e)
            shutil.rmtree(self.path, ignore_errors=True)
            return None
        return data, meta

    def discard(self, error: BaseException) -> None:
        """An entry whose files fail to load (a damaged tokenizer file...): warn and delete it."""
        log.warning("data cache %s is unreadable (%s: %s); rebuilding it", self.path, type(error).__name__, error)
        shutil.rmtree(self.path, ignore_errors=True)

    def file(self, name: str) -> Path:
        """A file stored with the entry (tokenizer models)."""
        return self.path / name

    def store(self, data: Any, meta: dict[str, Any], write_files: Any = None) -> None:
        """Write an entry atomically: ``data`` (a ``DatasetDict``), ``meta`` and, through
        ``write_files(folder)``, any extra files. Failures only warn: the run goes on uncached."""
        tmp = self.root / f".{self.path.name}.tmp-{uuid.uuid4().hex}"  # unique across hosts sharing the folder
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            from datasets.utils.logging import disable_progress_bar, enable_progress_bar, is_progress_bar_enabled

            bars = is_progress_bar_enabled()
            disable_progress_bar()  # no "Saving the dataset" bars in the run's log
            try:
                data.save_to_disk(str(tmp / "data"))
            finally:
                if bars:
                    enable_progress_bar()
            if write_files is not None:
                write_files(tmp)
            (tmp / "meta.json").write_text(json.dumps(meta))
            try:
                os.rename(tmp, self.path)
            except OSError:  # another process (a DDP rank) stored the same entry first
                shutil.rmtree(tmp, ignore_errors=True)
                return
            log.info("data: cached in %s", self.path)
        except Exception as e:  # noqa: BLE001 - a cache that cannot be written never stops a run
            shutil.rmtree(tmp, ignore_errors=True)
            log.warning("data cache: cannot write %s (%s); continuing without it", self.path, e)


def load_entry(module: Any, entry: DataCache, fill: Any, state: tuple[str, ...]) -> bool:
    """Fill ``module`` from ``entry`` with ``fill(entry, data, meta)``; False (and the entry deleted,
    the module's ``state`` attributes as they were) when the entry is absent or any of its files
    fails to load (a damaged tokenizer file is a cache miss, never a crash)."""
    hit = entry.load()
    if hit is None:
        return False
    before = {name: _shallow(getattr(module, name)) for name in state}
    try:
        fill(entry, *hit)
    except Exception as e:  # noqa: BLE001 - whatever the damage, the data is rebuilt from its files
        for name, value in before.items():
            setattr(module, name, value)
        entry.discard(e)
        return False
    log.info("data: loaded from the cache %s", entry.path)
    return True


def _shallow(value: Any) -> Any:
    return value.copy() if isinstance(value, dict | list) else value  # fill() may fill them in place


@contextlib.contextmanager
def warnings_of(logger: str = "nlp_lib") -> Iterator[list[str]]:
    """Collect the warnings ``logger`` emits meanwhile (skipped lines...), to keep with an entry:
    a run that loads the entry repeats them, so a cached run does not drop bad lines silently."""
    seen: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = _Keep(logging.WARNING)
    target = logging.getLogger(logger)
    target.addHandler(handler)
    try:
        yield seen
    finally:
        target.removeHandler(handler)


def repeat_warnings(notes: Iterable[str], entry: DataCache) -> None:
    """Log again the warnings an entry was built with."""
    for note in notes:
        log.warning("%s (when the cached data %s was prepared)", note, entry.path.name)


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while many small lists are built from Arrow columns
    (it would rescan every live object over and over: 3x slower on Multi30K)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def columns(dataset: Any, names: Iterable[str]) -> list[list[Any]]:
    """Whole columns of a ``datasets.Dataset`` as Python lists (straight from Arrow, no row formatting).

    A list column becomes one flat Python list cut into slices by its offsets, several times faster
    than ``to_pylist()`` building each row. Call it under :func:`no_gc`.
    """
    import pyarrow as pa

    out = []
    for name in names:
        col = dataset.data.column(name).combine_chunks()
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            offsets = col.offsets.to_numpy().tolist()
            flat = col.values.to_numpy().tolist()  # offsets index the unsliced values
            out.append([flat[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)])
        else:
            out.append(col.to_pylist())
    return out


def splits_dataset(splits: dict[str, list[Any]], fields: Sequence[str]) -> Any:
    """Encoded examples per split (tuples of lists and numbers) as a ``DatasetDict``, a column per field."""
    from datasets import Dataset, DatasetDict

    out = {}
    for name, examples in splits.items():
        cols: dict[str, list[Any]] = {f: [] for f in fields}
        for ex in examples:
            for f, v in zip(fields, ex, strict=True):
                cols[f].append(list(v) if isinstance(v, tuple) else v)
        out[name] = Dataset.from_dict(cols)
    return DatasetDict(out)
