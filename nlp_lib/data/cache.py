"""An on-disk cache of prepared data: read, tokenised and encoded once, loaded as Arrow after that.

A DataModule's ``prepare()`` reads its files, trains or builds its tokenizer and encodes every
example. All of that is a pure function of the input files and the options, so its result is
stored, keyed by a fingerprint of both, as the Arrow files of the encoded splits (written by
``datasets.Dataset.map``, memory-mapped when loaded: :mod:`nlp_lib.data.arrow`) plus the tokenizer
files and a little metadata. A second run with the same files and options maps those files instead
of re-reading and re-tokenising (``scripts/bench/data.py`` and ``scripts/bench/data_scale.py``
measure the difference).

* Fingerprint: every input file's resolved path, size and modification time (a file edited in
  place gets a new entry), the reader's and the DataModule's options, the library version and
  :data:`DATA_FORMAT`. Generated data (ListOps, SCAN) is keyed by its generator's parameters.
* Where: ``data.cache_dir=`` or ``$NLP_LIB_CACHE`` or ``~/.cache/nlp_lib``; ``data.cache=false``
  turns it off. Entries are folders ``<kind>-<fingerprint>/``; deleting any of them is safe.
* Safety: an entry is prepared in a staging folder (:meth:`DataCache.staging`) and renamed into
  place with its manifest (:meth:`DataCache.commit`), so a killed run or two DDP ranks preparing at
  once never leave a half-written entry.
* Verified, not trusted: the entry's ``manifest.json`` (written with it, inside the same rename)
  lists every file of the entry with its size and sha256. Each load checks the entry against it
  before reading anything else (:meth:`DataCache.verify`: each file hashed once, streamed): a
  missing, extra, resized or changed file, anything but a plain file or folder (a symbolic link),
  an unreadable or malformed manifest (the manifest is untrusted input too: its paths must be plain
  relative paths inside the entry), or no manifest at all (an entry of an older version) is
  damage. A damaged entry, or one whose files then fail to load, is deleted and rebuilt, with a
  warning naming the entry and the file. The manifest lives in the entry, so it catches damage,
  not an entry forged whole: what the files hold is checked too when they are opened (Arrow
  structure, columns, ids inside the vocabulary, labels among the classes:
  :meth:`nlp_lib.data.datamodule.PreparedData.check`).
* Checked once per user: both checks read every byte (seconds at millions of examples). An entry
  this user's processes built, or checked in full, gets a stamp (:data:`STAMP`): an HMAC, under a
  key of this user's kept outside every cache folder (:func:`local_key`), of each file's size,
  modification and change times, inode, mode and owner, as they were before the check. A load whose
  files still have exactly those (and whose stamp was written after their last change:
  :meth:`DataCache.stamp`) opens the entry without reading it; anything else (an entry copied or
  handed over, a file rewritten even with its old modification time restored, a stamp forged
  without the key) is verified and checked in full as above, then stamped. Entries another user may
  write are never stamped (a shared memory mapping changes bytes without changing a field); damage
  that leaves the metadata alone is not seen while a stamp holds (docs/data.md says so). Without a
  usable key (no home, a key file others may read or write) every load checks in full.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from nlp_lib.data import stamps
from nlp_lib.data.stamps import STAMP, local_key
from nlp_lib.data.stamps import Damaged as _Damaged
from nlp_lib.data.stamps import is_stamp as _is_stamp
from nlp_lib.data.stamps import listing as _listing
from nlp_lib.data.stamps import open_in as _open_regular

__all__ = [
    "DATA_FORMAT",
    "DataCache",
    "MANIFEST",
    "STAMP",
    "default_cache_dir",
    "file_fingerprints",
    "load_entry",
    "local_key",
    "warnings_of",
]

log = logging.getLogger(__name__)

DATA_FORMAT = 3  # 3: SST-2 entries hold label names (and neutral phrases by option)
"""Bumped whenever what an entry holds changes, so older entries are not read."""

MANIFEST = "manifest.json"
"""The file of an entry that lists every other one with its size and sha256, checked on each load of an
entry this user has not stamped (:data:`STAMP`)."""

_MANIFEST_FORMAT = 1
_MANIFEST_MAX_BYTES = 1 << 20  # an entry has a dozen files: a bigger manifest is not one of ours
_CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


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
        from nlp_lib.version import __version__

        blob = json.dumps(
            {"format": DATA_FORMAT, "nlp_lib": __version__, "kind": kind, **key}, sort_keys=True, default=str
        )
        self.fingerprint = hashlib.sha256(blob.encode()).hexdigest()[:24]
        self.root = Path(directory) if directory else default_cache_dir()
        self.path = self.root / f"{kind}-{self.fingerprint}"
        self.checked = False  # set by load(): a stamp vouches for the files as they are
        self.before_check: dict[str, list[int]] | None = None  # load()'s snapshot before a full check

    def load(self) -> dict[str, Any] | None:
        """The ``meta.json`` of a complete, intact entry, or ``None`` (absent; or damaged or
        unreadable: deleted with a warning, to be rebuilt). Its data files are then opened by the
        caller (:func:`load_entry`), from :attr:`path`. :attr:`checked` tells whether the entry's
        stamp vouches for its files as they are (then they were not read, and need no content check)."""
        self.checked, self.before_check = False, None
        if not os.path.lexists(self.path):
            return None
        try:
            self.checked = self.stamped()
            if not self.checked:  # what a stamp after the full check may vouch for: the files as now
                with contextlib.suppress(Exception):
                    self.before_check = self.snapshot()
            problem = None if self.checked else self.verify()  # before anything of the entry is parsed
            if problem is None:
                meta = json.loads((self.path / "meta.json").read_bytes())
                if not isinstance(meta, dict):
                    problem = "meta.json: not a JSON object"
            if problem is not None:
                log.warning("data cache %s is damaged (%s); rebuilding it", self.path, problem)
                self._remove()
                return None
        except Exception as e:  # a damaged entry is not fatal: it is rebuilt
            self.discard(e)
            return None
        return meta

    def verify(self) -> str | None:
        """What is wrong with the entry's files (``"FILE: what"``), or ``None`` when every file is
        exactly the one :data:`MANIFEST` lists: the same set of files, sizes and sha256 digests.

        Each file is read once, in 1 MiB chunks. Symbolic links and other non-regular files are
        damage even when they lead to the right bytes. Errors reading the files (permissions, a
        file deleted meanwhile) are raised as ``OSError`` (:meth:`load` counts them as damage too).
        What is verified is the files as they are now: ``load`` reads them right after.
        """
        try:
            if self.path.is_symlink() or not self.path.is_dir():
                raise _Damaged(".", "the entry is not a folder (a symbolic link?)")
            listed = _read_manifest(self.path)
            present = [rel for rel in _listing(self.path) if rel != MANIFEST and not _is_stamp(rel)]
            for rel in present:
                if rel not in listed:
                    raise _Damaged(rel, f"not listed in {MANIFEST}")
            missing = set(listed).difference(present)
            if missing:
                raise _Damaged(min(missing), "missing")
            for rel, (size, _) in listed.items():  # sizes first: a truncated file costs no hashing
                actual = os.lstat(self.path / rel).st_size
                if actual != size:
                    raise _Damaged(rel, f"{actual} bytes, {MANIFEST} says {size}")
            for rel, (_, digest) in listed.items():
                if _sha256(self.path, rel) != digest:
                    raise _Damaged(rel, f"its contents do not match their sha256 in {MANIFEST}")
        except _Damaged as e:
            return str(e)
        return None

    def stamped(self) -> bool:
        """Whether the entry's stamp vouches for its files as they are (:func:`nlp_lib.data.stamps.stamped`)."""
        return stamps.stamped(self.path, self.root)

    def snapshot(self) -> dict[str, list[int]] | None:
        """What a stamp would vouch for now (:func:`nlp_lib.data.stamps.snapshot`), or None."""
        return stamps.snapshot(self.path)

    def stamp(self, checked: dict[str, list[int]] | None) -> None:
        """Stamp the entry checked, if its files are still as ``checked`` (:func:`nlp_lib.data.stamps.write_stamp`)."""
        stamps.write_stamp(self.path, self.root, checked)

    def discard(self, error: BaseException) -> None:
        """An entry whose files fail to load (a damaged tokenizer file...): warn and delete it."""
        log.warning("data cache %s is unreadable (%s: %s); rebuilding it", self.path, type(error).__name__, error)
        self._remove()

    def _remove(self) -> None:
        if self.path.is_symlink() or not self.path.is_dir():
            with contextlib.suppress(OSError):
                self.path.unlink()  # the link, never what it points to
        else:
            shutil.rmtree(self.path, ignore_errors=True)

    def file(self, name: str) -> Path:
        """A file stored with the entry (tokenizer models)."""
        return self.path / name

    def staging(self) -> Path:
        """A new, empty folder next to the entry to prepare it in (``OSError`` if the cache folder
        cannot be written); :meth:`commit` turns it into the entry."""
        tmp = self.root / f".{self.path.name}.tmp-{uuid.uuid4().hex}"  # unique across hosts sharing the folder
        self.root.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        return tmp

    def commit(self, folder: Path) -> Path:
        """Write ``folder``'s manifest and rename it into place; the entry's path, also when another
        process (a DDP rank) stored the same entry first (``folder`` is then deleted). If it
        cannot be written, a warning, and ``folder`` is returned: the run goes on with it, uncached."""
        try:
            _write_manifest(folder)
            try:
                os.rename(folder, self.path)
            except OSError:
                if not os.path.isdir(self.path):
                    raise
                shutil.rmtree(folder, ignore_errors=True)  # another process stored the same entry first
                return self.path
            log.info("data: cached in %s", self.path)
        except Exception as e:  # noqa: BLE001 - a cache that cannot be written never stops a run
            log.warning("data cache: cannot write %s (%s); continuing without it", self.path, e)
            return folder
        with contextlib.suppress(Exception):  # built by this process: checked by construction
            self.stamp(self.snapshot())
        return self.path


def _sha256(folder: Path, rel: str) -> str:
    """The sha256 of ``folder/rel``, read once in 1 MiB chunks."""
    digest = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with _open_regular(folder, rel) as f:
        while n := f.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def _write_manifest(folder: Path) -> None:
    files = {
        rel: {"size": os.lstat(folder / rel).st_size, "sha256": _sha256(folder, rel)}
        for rel in _listing(folder)
        if not _is_stamp(rel)
    }
    doc = {"format": _MANIFEST_FORMAT, "algorithm": "sha256", "files": files}
    (folder / MANIFEST).write_text(json.dumps(doc, indent=1, sort_keys=True))


def _plain_relative(rel: str) -> bool:
    """A path inside the entry as the manifest writes it: ``a/b``, never ``/a``, ``../a``, ``./a``, ``a//b``."""
    parts = rel.split("/")
    return (
        rel != MANIFEST
        and "\\" not in rel
        and "\0" not in rel
        and all(p not in ("", ".", "..") for p in parts)
        and not os.path.isabs(rel)
    )


def _read_manifest(folder: Path) -> dict[str, tuple[int, str]]:
    """``{relative path: (size, sha256)}`` of an entry's manifest, which is untrusted input: any
    other shape is damage."""
    try:
        with _open_regular(folder, MANIFEST) as f:
            raw = f.read(_MANIFEST_MAX_BYTES + 1)
    except FileNotFoundError:
        raise _Damaged(MANIFEST, "missing (an entry of an older nlp_lib, without checksums, or damaged)") from None
    except OSError as e:  # a symbolic link (O_NOFOLLOW), a folder...
        raise _Damaged(MANIFEST, f"cannot be opened as a regular file ({e.strerror})") from None
    if len(raw) > _MANIFEST_MAX_BYTES:
        raise _Damaged(MANIFEST, f"larger than {_MANIFEST_MAX_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError included; nested too deep
        raise _Damaged(MANIFEST, "not valid JSON") from None
    expected = {"format": _MANIFEST_FORMAT, "algorithm": "sha256"}
    if (
        not isinstance(doc, dict)
        or set(doc) != {*expected, "files"}
        or any(type(doc[k]) is not type(v) or doc[k] != v for k, v in expected.items())
        or not isinstance(doc["files"], dict)
    ):
        raise _Damaged(MANIFEST, f"not a manifest of this version ({expected} and a 'files' object expected)")
    files: dict[str, tuple[int, str]] = {}
    for rel, record in doc["files"].items():
        if not _plain_relative(rel):
            raise _Damaged(MANIFEST, f"lists {rel!r}, not a plain relative path inside the entry")
        if (
            not isinstance(record, dict)
            or set(record) != {"size", "sha256"}
            or type(record["size"]) is not int
            or record["size"] < 0
            or not isinstance(record["sha256"], str)
            or not _SHA256.fullmatch(record["sha256"])
        ):
            raise _Damaged(MANIFEST, f"the record of {rel!r} is not {{'size': bytes, 'sha256': 64 hex digits}}")
        files[rel] = (record["size"], record["sha256"])
    if "meta.json" not in files:
        raise _Damaged(MANIFEST, "does not list meta.json")
    return files


def load_entry(module: Any, entry: DataCache, fill: Any, state: tuple[str, ...]) -> bool:
    """Fill ``module`` from ``entry`` with ``fill(entry, meta)``; False (and the entry deleted,
    the module's ``state`` attributes as they were) when the entry is absent or any of its files
    fails to load or to pass ``fill``'s checks (a damaged tokenizer file is a cache miss, never a crash)."""
    meta = entry.load()
    if meta is None:
        return False
    before = {name: _shallow(getattr(module, name)) for name in state}
    try:
        fill(entry, meta)  # checks the files' contents unless entry.checked
    except Exception as e:  # noqa: BLE001 - whatever the damage, the data is rebuilt from its files
        for name, value in before.items():
            setattr(module, name, value)
        entry.discard(e)
        return False
    if not entry.checked:
        entry.stamp(entry.before_check)
    log.info("data: loaded from the cache %s%s", entry.path, " (stamped: not read again)" if entry.checked else "")
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
