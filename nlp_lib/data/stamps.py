"""Stamps of cache entries checked by this user, and the entry-folder helpers they share with
:mod:`nlp_lib.data.cache` (listing an entry's files, opening one without following links).

What a stamp vouches for, and what it does not: :mod:`nlp_lib.data.cache` and docs/data.md ("Cache").
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nlp_lib.trust import NotRegularFile, open_regular

__all__ = ["STAMP", "Damaged", "is_stamp", "listing", "local_key", "open_in", "snapshot", "stamped", "write_stamp"]

log = logging.getLogger("nlp_lib.data.cache")

STAMP = "checked.json"
"""The file of an entry saying (under this user's key) that its files, as they are, were checked."""

_STAMP_MAX_BYTES = 4096
_RACY_NS = 25_000_000  # a stamp younger than this after a file's last change vouches for nothing
_KEY_BYTES = 32


class Damaged(Exception):
    """A file of an entry (its path relative to the entry) is not what the manifest says."""

    def __init__(self, file: str, problem: str) -> None:
        super().__init__(f"{file}: {problem}")


def listing(folder: Path, prefix: str = "", *, folders: bool = False) -> Iterator[str]:
    """Relative POSIX paths of the regular files under ``folder`` (sorted; with ``folders``, the
    sub-folders too); anything else but a folder (a symbolic link, a FIFO...) is damage."""
    pending = [(folder, prefix)]
    while pending:  # depth first, without recursion: a hostile tree may be thousands of levels deep
        here, pre = pending.pop()
        with os.scandir(here) as items:
            entries = sorted(items, key=lambda i: i.name)
        subs = []
        for item in entries:
            rel = pre + item.name
            if item.is_dir(follow_symlinks=False):
                if folders:
                    yield rel
                subs.append((Path(item.path), rel + "/"))
            elif item.is_file(follow_symlinks=False):
                yield rel
            else:
                raise Damaged(rel, "not a regular file or folder (a symbolic link?)")
        pending.extend(reversed(subs))


def is_stamp(rel: str) -> bool:
    return rel == STAMP or rel.startswith(f".{STAMP}.")


def _digest(key: bytes, entry: str, state: dict[str, list[int]]) -> str:
    blob = json.dumps({"entry": entry, "files": state}, sort_keys=True).encode()
    return hmac.new(key, blob, hashlib.sha256).hexdigest()


def _newest(state: dict[str, list[int]]) -> int:
    return max((f[2] for f in state.values()), default=0)


def local_key(cache_root: Path) -> bytes | None:
    """This user's key for :data:`STAMP` (created on first use), or None when there is no usable one.

    ``$NLP_LIB_KEY_FILE``, else ``$XDG_STATE_HOME/nlp_lib/cache.key`` (``~/.local/state/...``):
    32 random bytes, a regular file of this user that nobody else may read or write, never inside
    ``cache_root`` (a cache folder handed over with its key would vouch for itself).
    """
    try:
        env = os.environ.get("NLP_LIB_KEY_FILE")
        if env:
            path = Path(env)
        else:
            state = os.environ.get("XDG_STATE_HOME", "")
            base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"  # relative: ignored (XDG)
            path = base / "nlp_lib" / "cache.key"
        path = path.absolute()
        if path.resolve().is_relative_to(cache_root.resolve()):
            return None
        if not os.path.lexists(path):
            _create_key(path)
        with open_regular(path) as f:
            st = os.fstat(f.fileno())
            key = f.read(_KEY_BYTES + 1)
    except Exception as e:  # noqa: BLE001 - no home, no permission...: no stamps, full checks
        log.debug("data cache: no key for stamps (%s: %s)", type(e).__name__, e)
        return None
    if (hasattr(os, "getuid") and st.st_uid != os.getuid()) or st.st_mode & 0o077 or len(key) != _KEY_BYTES:
        log.warning("data cache: %s is not a key of %d bytes that only this user may read and write; "
                    "every cached load checks its entry in full", path, _KEY_BYTES)  # fmt: skip
        return None
    return key


def _create_key(path: Path) -> None:
    """Write a new key whole, then link it into place (a key another process linked first is kept)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(_KEY_BYTES))
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def open_in(folder: Path, rel: str) -> Any:
    """``folder/rel`` opened with :func:`nlp_lib.trust.open_regular` (no link, no blocking on a FIFO);
    ``_Damaged`` when it is not a regular file."""
    try:
        return open_regular(folder / rel)
    except NotRegularFile:
        raise Damaged(rel, "not a regular file") from None


def stamped(path: Path, root: Path) -> bool:
    """Whether the entry ``path``'s :data:`STAMP` is this user's, for its files as they are now (no file is read)."""
    try:
        key = local_key(root)
        if key is None or path.is_symlink() or not path.is_dir():  # as verify() refuses it
            return False
        with open_in(path, STAMP) as f:
            stamped_at = os.fstat(f.fileno()).st_ctime_ns
            raw = f.read(_STAMP_MAX_BYTES + 1)
        doc = json.loads(raw) if len(raw) <= _STAMP_MAX_BYTES else None
        state = snapshot(path)
        return (
            state is not None
            and isinstance(doc, dict)
            and isinstance(doc.get("hmac"), str)
            and hmac.compare_digest(doc["hmac"], _digest(key, path.name, state))
            and stamped_at - _newest(state) >= _RACY_NS
        )
    except Exception:  # noqa: BLE001 - whatever is wrong with a stamp, the entry is checked in full
        return False


def snapshot(path: Path) -> dict[str, list[int]] | None:
    """Size, times, inode, mode and owner of every file and folder of the entry, or None when a
    stamp cannot vouch for it: anything another user may write (or that is not this user's) could
    change through a shared memory mapping without any of these changing."""
    state: dict[str, list[int]] = {}
    uid = os.getuid() if hasattr(os, "getuid") else None
    for rel in [".", *(r for r in listing(path, folders=True) if not is_stamp(r))]:
        st = os.lstat(path / rel)
        if (uid is not None and st.st_uid != uid) or st.st_mode & 0o022:
            return None
        if stat.S_ISDIR(st.st_mode):  # a folder's times move with the stamp's own files: its names are listed
            state[rel] = [0, 0, 0, st.st_ino, st.st_dev, st.st_mode, st.st_uid]
        else:
            state[rel] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, st.st_mode, st.st_uid]
    return state


def write_stamp(path: Path, root: Path, checked: dict[str, list[int]] | None) -> None:
    """Record that the entry's files were checked, given the :func:`snapshot` taken before the
    check: written only if the files are still exactly as in it (a file changed during the check
    is not vouched for). Never raises: an entry that cannot be stamped is checked in full next time.

    File times tick coarsely: a file rewritten within the tick of its last change keeps its
    change time. The stamp is valid only if written :data:`_RACY_NS` after the newest change
    (this waits that long at most), so any later rewrite shows a newer change time."""
    fd, tmp = None, path / f".{STAMP}.{uuid.uuid4().hex}"
    try:
        key = local_key(root)
        if key is None or checked is None or snapshot(path) != checked:
            return
        body = json.dumps({"hmac": _digest(key, path.name, checked)}).encode()
        # one descriptor, never reopened by name: a link swapped in for the name is never followed
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        for _ in range(3):
            os.ftruncate(fd, 0)
            os.pwrite(fd, body, 0)  # a write sets the change time now
            wait = _newest(checked) + _RACY_NS - os.fstat(fd).st_ctime_ns
            if wait <= 0:
                break
            time.sleep(wait / 1e9)
        os.close(fd)
        fd = None
        if snapshot(path) == checked:
            os.replace(tmp, path / STAMP)
    except Exception as e:  # noqa: BLE001 - a stamp is an optimisation, never a failure
        log.debug("data cache: cannot stamp %s (%s)", path, e)
    finally:
        if fd is not None:
            os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
