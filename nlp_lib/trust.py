"""Reading what a user can be handed (bundles, run directories) without trusting it.

Two mechanisms, used by :mod:`nlp_lib.bundle` and the CLI:

* **An allow-list of targets.** A config's ``_target_`` names what gets built. Before anything is
  imported, every target is checked against the allowed prefixes of importable names
  (:data:`BUNDLE_TARGETS` for a bundle's model: nlp_lib's models, cells and modules, and
  ``torch.nn``); a user's own code is allowed explicitly, with ``trust=["my_pkg.cells"]`` (prefixes,
  matched at dots) or everything with ``trust_code=True`` (the Hugging Face convention). After the
  import, the object must be a class defined under an allowed prefix (a function such as
  ``os.system``, or ``subprocess.Popen`` re-exported by an allowed module, is refused), or one of
  nlp_lib's documented factories (:data:`FACTORIES`). Arguments must be plain data.
* **Defensive file reads.** :func:`read_bytes` reads regular files only (no FIFO or device, no
  symbolic link out of the folder), up to a size limit; :func:`read_yaml` refuses aliases (alias
  bombs) and deep nesting; :func:`read_json` reports deep nesting and wrong shapes. Every failure is
  a :class:`~nlp_lib.errors.BundleError` naming the file (or the config key) and the problem.
"""

from __future__ import annotations

import importlib
import json
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from nlp_lib.errors import BundleError

__all__ = [
    "BUNDLE_TARGETS",
    "TOKENIZER_TARGETS",
    "RUN_TARGETS",
    "FACTORIES",
    "Trust",
    "check_targets",
    "resolve_target",
    "read_bytes",
    "read_json",
    "read_yaml",
    "checked_path",
    "open_regular",
    "NotRegularFile",
]

# What a bundle's config.yaml may build without being trusted: the library's own models, cells and
# layers, and PyTorch's layers (a user may pass e.g. torch.nn.GRUCell as a cell).
BUNDLE_TARGETS: tuple[str, ...] = ("nlp_lib.models", "nlp_lib.cells", "nlp_lib.modules", "torch.nn")
# The tokenizer classes a bundle's meta.json may name without being trusted: nlp_lib's own.
TOKENIZER_TARGETS: tuple[str, ...] = ("nlp_lib.data.vocab", "nlp_lib.data.tokenizers")
# What a run directory's config.yaml may build (nlp-lib eval, train resume=): also the library's
# data modules and tasks, PyTorch's optimisers and schedulers, Lightning's Trainer, and the
# callbacks and loggers of conf/callbacks/ and conf/logger/ (their paths stay inside the run
# directory: nlp_lib/cli/build.py). Each class by the name configs use and where it is defined.
RUN_TARGETS: tuple[str, ...] = (
    *BUNDLE_TARGETS,
    "nlp_lib.data",
    "nlp_lib.tasks",
    "torch.optim",
    "pytorch_lightning.trainer.trainer.Trainer",
    "pytorch_lightning.Trainer",
    "pytorch_lightning.callbacks.ModelCheckpoint",
    "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    "pytorch_lightning.callbacks.LearningRateMonitor",
    "pytorch_lightning.callbacks.lr_monitor.LearningRateMonitor",
    "pytorch_lightning.loggers.TensorBoardLogger",
    "pytorch_lightning.loggers.tensorboard.TensorBoardLogger",
    "pytorch_lightning.loggers.CSVLogger",
    "pytorch_lightning.loggers.csv_logs.CSVLogger",
)
# The only functions a config may name without trust: nlp_lib's documented data builders.
FACTORIES: frozenset[str] = frozenset(
    f"nlp_lib.data.builders.{f}"
    for f in ("ptb_tree_data", "conllu_tree_data", "ptb_sentence_data", "listops_data", "scan_data", "parallel_data")
)
_CONFIG_KEYS = {"_target_", "_partial_"}  # every other key starting with "_" is refused
MAX_DEPTH = 64  # nesting of a config or JSON file; the library's own are under 10

_HOW = "load it with trust=[{prefix!r}] (or trust_code=True; on the command line trust={prefix} or trust_code=true)"


class Trust:
    """Which ``_target_`` names may be built: the allowed prefixes plus what the caller trusts.

    Args:
        allowed: Prefixes of importable names allowed by default (:data:`BUNDLE_TARGETS`...).
        trust: More prefixes the caller trusts (``"my_pkg.cells"`` allows ``my_pkg.cells.MyCell``
            and ``my_pkg.cells.sub.Other``, not ``my_pkg.cellsx``).
        trust_code: Trust every target (any importable class or function): only for bundles
            from a source you trust as you trust code you run.
    """

    def __init__(self, allowed: Iterable[str], trust: Iterable[str] = (), *, trust_code: bool = False) -> None:
        if not isinstance(trust_code, bool):  # the string "false" is a true value: never guess
            raise BundleError(f"trust_code: must be True or False, got {short(trust_code)}")
        if isinstance(trust, str):
            trust = [t for t in trust.split(",") if t.strip()]
        try:
            trust = list(trust)
        except TypeError:
            trust = None
        if trust is None or not all(isinstance(t, str) for t in trust):
            raise BundleError(f"trust: expected a list of dotted names, got {short(trust)}")
        self.trust = tuple(_prefix(t) for t in trust)
        self.allowed = (*tuple(allowed), *self.trust)
        self.trust_code = trust_code

    def permits(self, name: str) -> bool:
        return self.trust_code or any(name == p or name.startswith(p + ".") for p in self.allowed)

    def refuse(self, name: str, where: str, why: str) -> BundleError:
        prefix = name.rpartition(".")[0] or name
        return BundleError(
            f"{where}: refusing to build {short(name)}: {why}; if you trust it, {_HOW.format(prefix=prefix)}"
        )


def _prefix(value: Any) -> str:
    text = str(value).strip()
    if not text or not all(part.isidentifier() for part in text.split(".")):
        raise BundleError(f"trust: {value!r} is not a dotted module or class name (e.g. my_pkg.cells)")
    return text


def _walk(node: Any, key: str = "", depth: int = 0) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every ``_target_`` node of a config tree with its dotted key, checking that it is plain data."""
    here = key or "the top level"
    if depth > MAX_DEPTH:
        raise BundleError(f"{here}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, dict):
        for k in node:
            if not isinstance(k, str):
                raise BundleError(f"{here}: key {short(k)} is not a string")
        if "_target_" in node:
            if not isinstance(node["_target_"], str) or not node["_target_"]:
                raise BundleError(f"{join(key, '_target_')}: must be a dotted name, got {short(node['_target_'])}")
            bad = [k for k in node if k.startswith("_") and k not in _CONFIG_KEYS]
            if bad:
                raise BundleError(
                    f"{join(key, bad[0])}: not allowed (of the keys starting with _, only _target_ and _partial_ are)"
                )
            if not isinstance(node.get("_partial_", False), bool):
                raise BundleError(f"{join(key, '_partial_')}: must be true or false, got {short(node['_partial_'])}")
            yield key, node
        for k, v in node.items():
            if k not in _CONFIG_KEYS:
                yield from _walk(v, join(key, k), depth + 1)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{key}[{i}]", depth + 1)
    elif isinstance(node, str) and "${" in node:
        # OmegaConf would resolve it when the config is built (${oc.create:{_target_: ...}} builds a
        # node this check never saw); bundles and run configs are written resolved, so none is ours
        raise BundleError(f"{here}: interpolations (${{...}}) are not allowed here, got {short(node)}")
    elif not isinstance(node, (str, int, float, bool, type(None))):
        raise BundleError(f"{here}: {type(node).__name__} values are not allowed (plain data only)")


def short(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters: a hostile file's values stay out of messages."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-2:]}"


def join(key: str, name: str) -> str:
    """``key.name`` (``name`` alone at the top level)."""
    return f"{key}.{name}" if key else name


def check_targets(config: Any, trust: Trust, where: str, *, resolve: bool = True) -> None:
    """Refuse a config that names a target ``trust`` does not permit, or holds anything but plain
    data (interpolations included), before anything it names is imported; then, with ``resolve``,
    resolve every target as :func:`resolve_target` does (a class defined under a permitted prefix,
    or a documented factory). Prefixes alone are not enough for a config that Hydra builds:
    Hydra walks attributes through modules, so ``torch.nn.modules.module.torch.load`` is
    ``torch.load``.

    Args:
        where: The file (or config key) the config comes from, for messages.
        resolve: Also import and check every target (after all of them passed the prefix check).

    Args:
        where: The file (or config key) the config comes from, for messages.

    Raises:
        BundleError: naming the file, the key and the target.
    """
    try:
        nodes = list(_walk(config))
    except BundleError as e:
        raise BundleError(f"{where}: {e}") from None
    for key, node in nodes:
        name = node["_target_"]
        at = f"{where}: {join(key, '_target_')}"
        if not all(p.isidentifier() for p in name.split(".")):
            raise BundleError(f"{at}: {short(name)} is not a dotted name")
        if not trust.permits(name):
            raise trust.refuse(name, at, "not in the allow-list of nlp_lib's own classes")
    if resolve:
        for key, node in nodes:
            resolve_target(node["_target_"], trust, f"{where}: {join(key, '_target_')}")


def resolve_target(name: str, trust: Trust, where: str) -> Any:
    """Import ``name`` if ``trust`` permits it, and check it is a class defined under a permitted
    prefix (or a documented factory).

    Raises:
        BundleError: the name is not permitted, does not import, or is not a class.
    """
    if not trust.permits(name):
        raise trust.refuse(name, where, "not in the allow-list of nlp_lib's own classes")
    module, _, attr = name.rpartition(".")
    if attr.startswith("_") and not trust.trust_code:
        raise trust.refuse(name, where, "a private name (it starts with _)")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError):
        raise BundleError(f"{where}: cannot import {short(name)} (is the package that defines it installed?)") from None
    if trust.trust_code:
        return obj
    defined = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
    if isinstance(obj, type):
        if not trust.permits(defined):  # where it is defined, not only where it was found
            raise trust.refuse(name, where, f"it is {defined}, defined outside the allowed packages")
        return obj
    if defined in FACTORIES:
        return obj
    raise trust.refuse(name, where, "only classes are built (it is a function or another object)")


# ----------------------------------------------------------------------------- files


def checked_path(folder: Path, name: str, limit: int) -> Path:
    """``folder/name`` resolved, if it is a regular file inside ``folder`` of at most ``limit`` bytes.

    Raises:
        BundleError: missing, a link out of the folder, not a regular file, or too large.
    """
    path = folder / name
    root = folder.resolve()
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        raise BundleError(f"{path}: missing (not a complete bundle)") from None
    except (OSError, RuntimeError) as e:  # a link loop
        raise BundleError(f"{path}: cannot follow it ({e})") from None
    if real != root and root not in real.parents:
        raise BundleError(f"{path}: a link to {real}, outside {folder}; a bundle's files must lie inside it")
    st = real.stat()
    _check_regular(path, st.st_mode, st.st_size, limit)
    return real


def _kind(mode: int) -> str:
    return "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"


def _check_regular(path: Path, mode: int, size: int, limit: int) -> None:
    if not stat.S_ISREG(mode):
        raise BundleError(f"{path}: {_kind(mode)}, not a regular file")
    if size > limit:
        raise BundleError(f"{path}: {size:,} bytes, over the {limit:,}-byte limit for this file")


class NotRegularFile(OSError):
    """What :func:`open_regular` opened is not a regular file (a FIFO, a device, a directory)."""


def open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading (binary, unbuffered), never through a symbolic link in its last
    part (``OSError``) and never blocking on a FIFO (``NotRegularFile``, as for anything but a
    regular file)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
    f = os.fdopen(fd, "rb", buffering=0)
    mode = os.fstat(fd).st_mode  # what was opened, not what a check saw a moment before
    if not stat.S_ISREG(mode):
        f.close()
        raise NotRegularFile(_kind(mode))
    return f


def read_bytes(folder: Path, name: str, limit: int) -> bytes:
    """The bytes of ``folder/name`` (see :func:`checked_path`), opened with :func:`open_regular`."""
    real = checked_path(folder, name, limit)
    path = folder / name
    try:
        with open_regular(real) as f:
            data = f.read(limit + 1)
    except NotRegularFile as e:
        raise BundleError(f"{path}: {e}, not a regular file") from None
    except OSError as e:
        raise BundleError(f"{path}: cannot open it ({e.strerror})") from None
    if len(data) > limit:
        raise BundleError(f"{path}: over the {limit:,}-byte limit for this file")
    return data


def _text(folder: Path, name: str, limit: int) -> str:
    try:
        return read_bytes(folder, name, limit).decode("utf-8")
    except UnicodeDecodeError as e:
        raise BundleError(f"{folder / name}: not UTF-8 text (byte {e.start})") from None


def read_json(folder: Path, name: str, limit: int, shape: type | tuple[type, ...]) -> Any:
    """A JSON file whose top level is of type ``shape`` (``dict`` or ``list``)."""
    path = folder / name
    try:
        value = json.loads(_text(folder, name, limit))
    except RecursionError:
        raise BundleError(f"{path}: nested too deeply") from None
    except ValueError as e:
        raise BundleError(f"{path}: not valid JSON ({e})") from None
    _check_shape(path, value, shape)
    return value


class _StrictLoader(yaml.SafeLoader):
    """YAML without aliases (a few hundred bytes of nested aliases expand to gigabytes) and without
    deep nesting (which would exhaust the recursion limit)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.YAMLError(f"line {mark.line + 1}: aliases (*name) are not allowed here")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(f"line {mark.line + 1}: nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def read_yaml(folder: Path, name: str, limit: int, shape: type | tuple[type, ...] = dict) -> Any:
    """A YAML file (no aliases, at most :data:`MAX_DEPTH` levels) whose top level is ``shape``."""
    path = folder / name
    try:
        value = yaml.load(_text(folder, name, limit), Loader=_StrictLoader)  # noqa: S506 - a SafeLoader
    except RecursionError:
        raise BundleError(f"{path}: nested too deeply") from None
    except yaml.YAMLError as e:  # one line: PyYAML's messages span several
        raise BundleError(f"{path}: not valid YAML ({' '.join(str(e).split())[:300]})") from None
    except TypeError as e:  # a mapping key YAML cannot hash (? [a, b])
        raise BundleError(f"{path}: not a config ({e})") from None
    _check_shape(path, value, shape)
    return value


def _check_shape(path: Path, value: Any, shape: type | tuple[type, ...]) -> None:
    if not isinstance(value, shape):
        names = " or ".join(t.__name__ for t in (shape if isinstance(shape, tuple) else (shape,)))
        got = "empty" if value is None else f"a {type(value).__name__}"
        want = {"dict": "a mapping", "list": "a list"}.get(names, names)
        raise BundleError(f"{path}: expected {want} at the top level, got {got}")
