"""Model bundles, the file format: a trained model as a folder any project can load.

A bundle holds::

    config.yaml         the model's class and constructor arguments (``_target_`` nodes)
    model.safetensors   the weights (no pickle anywhere)
    vocab.json | tokenizer.model   the word vocabulary or the sentencepiece model
                        (seq2seq: source.* and target.*, one per side)
    labels.json         the label names, in class-id order
    meta.json           bundle format version, library version, the tokenizer's class and file
                        (per side for seq2seq), recipe, metrics

This module is the format only: :func:`save` writes one, :func:`read` reads and checks one
without building anything, :func:`build` builds its config's allow-listed classes and
:func:`transfer` copies its weights for fine-tuning. It knows no model and no tokenizer class: a
tokenizer is recorded by its importable name and reads its own file (``from_bundle``), resolved
through the allow-list (:mod:`nlp_lib.trust`). :func:`nlp_lib.load` (:mod:`nlp_lib.predict`)
turns a bundle into a model ready for raw inputs. Every training run writes one to
``<run dir>/bundle/`` (the best checkpoint's weights).

A tokenizer class a bundle can hold has ``save(path)``, a ``bundle_suffix`` (its file name, such
as ``"vocab.json"``, or a bare extension: ``"model"`` is saved as ``tokenizer.model``; a seq2seq
side's file is ``<side>.<bundle_suffix>``) and a ``from_bundle(directory, name)`` class method that reads that
file defensively (it is untrusted input).
"""

from __future__ import annotations

import functools
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from nlp_lib import trust as trust_mod
from nlp_lib.configurable import describe
from nlp_lib.errors import BundleError, ConfigError
from nlp_lib.schema import check_arguments, check_config
from nlp_lib.version import __version__

__all__ = ["FORMAT_VERSION", "LIMITS", "BundleContents", "build", "read", "save", "save_tokenizers", "transfer"]

# Files besides the tokenizers', and the size each may have (bytes): generous for real models,
# small enough that a hostile bundle cannot exhaust memory. A weights file is memory-mapped, not read.
# Each tokenizer class gives its own limit (``bundle_limit``).
LIMITS = {
    "config.yaml": 1 << 20,
    "meta.json": 4 << 20,
    "labels.json": 64 << 20,
    "model.safetensors": 64 << 30,
}
_SIDES = ("source", "target")
# Format 1 named the tokenizer by class name only; format 2 records the importable name and file.
# Format 1's names: class, file of a lone tokenizer, suffix of a seq2seq side's file.
_FORMAT1_TOKENIZERS = {
    "WordVocab": ("nlp_lib.data.vocab.WordVocab", "vocab.json", "vocab.json"),
    "Seq2SeqVocab": ("nlp_lib.data.vocab.Seq2SeqVocab", "vocab.json", "vocab.json"),
    "SentencePieceTokenizer": ("nlp_lib.data.tokenizers.SentencePieceTokenizer", "tokenizer.model", "model"),
}
FORMAT_VERSION = 2


def _tokenizer_file(tok: Any, side: str = "") -> str:
    """The file a tokenizer is saved as: ``vocab.json`` / ``tokenizer.model``, or ``<side>.<suffix>``."""
    suffix = getattr(type(tok), "bundle_suffix", None)
    if not isinstance(suffix, str) or not callable(getattr(tok, "save", None)):
        raise BundleError(
            f"cannot save a tokenizer of type {type(tok).__name__}: a bundle's tokenizer has save(path), "
            "a bundle_suffix and a from_bundle(directory, name) class method (see nlp_lib.bundle)"
        )
    if side:
        return f"{side}.{suffix}"
    return suffix if "." in suffix else f"tokenizer.{suffix}"  # a bare extension: tokenizer.<ext>


def _save_tokenizer(tok: Any, directory: Path, side: str = "") -> dict[str, str]:
    name = _tokenizer_file(tok, side)
    tok.save(directory / name)
    return {"class": f"{type(tok).__module__}.{type(tok).__qualname__}", "file": name}


def save_tokenizers(tokenizers: dict[str, Any], directory: Path) -> dict[str, dict[str, str]]:
    """A seq2seq model's tokenizers as ``<side>.vocab.json`` or ``<side>.model``; returns what
    ``meta.json`` records of them (importable class name and file, per side)."""
    return {side: _save_tokenizer(tok, directory, side) for side, tok in tokenizers.items()}


def _read_tokenizer(entry: Any, d: Path, allowed: trust_mod.Trust, side: str = "") -> Any:
    """A tokenizer from what ``meta.json`` records of it; its class is resolved through the
    allow-list (nlp_lib's tokenizers, or what the caller trusts) and reads its own file."""
    where = f"{d / 'meta.json'}: tokenizer" + (f".{side}" if side else "")
    if isinstance(entry, str) and entry in _FORMAT1_TOKENIZERS:  # format 1
        name, single, suffix = _FORMAT1_TOKENIZERS[entry]
        entry = {"class": name, "file": f"{side}.{suffix}" if side else single}
    if not (isinstance(entry, dict) and isinstance(entry.get("class"), str) and isinstance(entry.get("file"), str)):
        raise BundleError(f'{where}: expected {{"class": importable name, "file": name}}, got {trust_mod.short(entry)}')
    file = entry["file"]
    if "/" in file or "\\" in file or file in ("", ".", ".."):
        raise BundleError(f"{where}: file {trust_mod.short(file)} is not a file name inside the bundle")
    cls = trust_mod.resolve_target(entry["class"], allowed, f"{where}.class")
    reader = getattr(cls, "from_bundle", None)
    if not callable(reader):
        raise BundleError(f"{where}.class: {entry['class']} has no from_bundle(directory, name) to read it")
    return reader(d, file)


def save(
    model: nn.Module,
    path: str | Path,
    *,
    tokenizer: Any = None,
    labels: Sequence[str] | None = None,
    meta: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` as a bundle in ``path`` (created if needed; its files are replaced).

    Args:
        model: The model (its ``state_dict`` is saved as safetensors).
        tokenizer: A :class:`~nlp_lib.data.vocab.WordVocab` or
            :class:`~nlp_lib.data.tokenizers.SentencePieceTokenizer` (or any class with ``save``,
            ``bundle_suffix`` and ``from_bundle``); seq2seq: ``{"source": ..., "target": ...}``.
        labels: Label names in class-id order (a model with ``num_classes`` needs that many).
        meta: Extra metadata (recipe, metrics...).
        config: The model's ``_target_`` config with every constructor argument resolved. Default:
            the constructor arguments the model recorded (:func:`nlp_lib.configurable.describe`).

    Raises:
        BundleError: labels that do not match the output layer, a tokenizer that cannot be saved, or
            a constructor argument that cannot be written as config.
    """
    from safetensors.torch import save_file

    out = Path(path)
    if tokenizer is None:
        raise BundleError(f"{out}: save needs the model's tokenizer: pass tokenizer=")
    num_classes = getattr(model, "num_classes", None)
    if labels is None and isinstance(num_classes, int):
        raise BundleError(f"{out}: save needs the label names: pass labels= ({num_classes} names)")
    labels = [str(x) for x in labels or ()]
    if isinstance(num_classes, int) and len(labels) != num_classes:
        raise BundleError(f"{out}: {len(labels)} labels given, the output layer has {num_classes} classes")
    if config is None:
        config = describe(model, type(model).__name__)
    try:  # what load checks of every _target_ node's arguments, before writing: a bundle that saves loads
        check_config(config, "", unimportable=True)  # (node_logits=1 for a bool: refused here, not at load)
    except ConfigError as e:
        raise BundleError(f"{out}: {e} (a bundle must load: pass the constructor such values)") from None
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    save_file(state, str(out / "model.safetensors"))
    # safetensors creates its file 0600; give it the mode every other file of the bundle gets (umask)
    os.chmod(out / "model.safetensors", stat.S_IMODE((out / "config.yaml").stat().st_mode))
    if isinstance(tokenizer, dict):  # seq2seq: one per side
        kind: Any = save_tokenizers(tokenizer, out)
    else:
        kind = _save_tokenizer(tokenizer, out)
    (out / "labels.json").write_text(json.dumps(labels, ensure_ascii=False))
    info = {"format_version": FORMAT_VERSION, "nlp_lib_version": __version__, "tokenizer": kind, **(meta or {})}
    (out / "meta.json").write_text(json.dumps(info, indent=2, default=str))
    return out


@dataclass
class BundleContents:
    """What a bundle holds, read and checked but not yet built into a model."""

    path: Path
    config: dict[str, Any]
    state: dict[str, torch.Tensor]
    tokenizer: Any
    labels: list[str]
    meta: dict[str, Any]


def read(path: str | Path, *, trust_code: bool = False, trust: Sequence[str] = ()) -> BundleContents:
    """Read a bundle's files and check them (see :func:`load`, which also builds the model).

    Nothing the bundle names is imported: the config's targets are checked against the allow-list
    (:mod:`nlp_lib.trust`) first. Every file is read defensively (regular files inside the bundle,
    size limits, YAML without aliases) and its shape checked.

    Args:
        trust_code: Allow any ``_target_`` (a bundle you trust as you trust code you run).
        trust: Prefixes of importable names to allow besides nlp_lib's own (``["my_pkg.cells"]``).

    Raises:
        BundleError: the folder or a file is missing, corrupt or of the wrong shape, a target is not
            allowed, or the bundle was written by a newer, incompatible format.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    d = Path(path)
    if not d.is_dir():
        raise BundleError(f"{d}: no such bundle directory")
    if not (d / "meta.json").exists() and (d / "bundle" / "meta.json").is_file():
        raise BundleError(f"{d}: a run directory, not a bundle; its bundle is {d / 'bundle'}")
    meta = trust_mod.read_json(d, "meta.json", LIMITS["meta.json"], dict)
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise BundleError(
            f"{d / 'meta.json'}: format_version must be a whole number >= 1, got {trust_mod.short(version)}"
        )
    if version > FORMAT_VERSION:
        raise BundleError(
            f"{d}: bundle format {version!r} is newer than this nlp_lib understands ({FORMAT_VERSION}); "
            f"it was written by nlp_lib {trust_mod.short(meta.get('nlp_lib_version', '?'))}: upgrade nlp_lib"
        )
    config = trust_mod.read_yaml(d, "config.yaml", LIMITS["config.yaml"], dict)
    if "_target_" not in config:
        raise BundleError(f"{d / 'config.yaml'}: expected the model's _target_ and its arguments")
    trust_mod.check_targets(config, _bundle_trust(trust, trust_code), str(d / "config.yaml"))
    labels = trust_mod.read_json(d, "labels.json", LIMITS["labels.json"], list)
    bad = next((i for i, x in enumerate(labels) if not isinstance(x, str)), None)
    if bad is not None:
        raise BundleError(f"{d / 'labels.json'}: label {bad} is {trust_mod.short(labels[bad])}, not a string")
    if len(set(labels)) != len(labels):
        raise BundleError(f"{d / 'labels.json'}: a label name appears twice")
    allowed = trust_mod.Trust(trust_mod.TOKENIZER_TARGETS, trust, trust_code=trust_code)
    kind = meta.get("tokenizer", "WordVocab")
    tokenizer: Any
    if isinstance(kind, dict) and "class" not in kind:  # seq2seq: one per side
        if sorted(kind) != sorted(_SIDES):
            raise BundleError(
                f"{d / 'meta.json'}: tokenizer must name a source and a target tokenizer, got {trust_mod.short(kind)}"
            )
        tokenizer = {side: _read_tokenizer(kind[side], d, allowed, side) for side in _SIDES}
    else:
        tokenizer = _read_tokenizer(kind, d, allowed)
    weights = trust_mod.checked_path(d, "model.safetensors", LIMITS["model.safetensors"])
    try:
        state = load_file(str(weights))
    except (OSError, SafetensorError, ValueError) as e:
        raise BundleError(f"{d / 'model.safetensors'}: not a readable safetensors file ({e})") from None
    return BundleContents(d, config, state, tokenizer, labels, meta)


def _bundle_trust(trust: Sequence[str], trust_code: bool) -> trust_mod.Trust:
    return trust_mod.Trust(trust_mod.BUNDLE_TARGETS, trust, trust_code=trust_code)


def transfer(model: nn.Module, source: BundleContents, new_labels: Sequence[str], new_vocab_size: int) -> list[str]:
    """Copy a bundle's weights into ``model`` built from its config for new data (fine-tuning).

    Embedding rows: the first ``len(old vocabulary)`` ids keep their vectors (a fine-tuning
    vocabulary extends the old one, so old ids are unchanged); new words keep their fresh rows.
    The output layer is kept when the label names are the same, and left freshly initialised
    otherwise.

    Returns:
        One line per decision, for the log.
    """
    notes = []
    own = model.state_dict()
    keep_head = list(new_labels) == list(source.labels)
    head = {n for n, p in own.items() if n.startswith("classifier.")}
    loaded = {}
    for name, value in source.state.items():
        if name in head and not keep_head:
            continue
        target = own.get(name)
        if target is None:
            raise BundleError(f"{source.path}: weight {name} has no place in the fine-tuned model")
        if name == "embedding.weight" and value.shape != target.shape:
            merged = target.clone()
            merged[: value.shape[0]] = value
            loaded[name] = merged
            notes.append(
                f"embedding: {value.shape[0]} known tokens keep their vectors, {target.shape[0] - value.shape[0]} new"
            )
            continue
        if value.shape != target.shape:
            raise BundleError(
                f"{source.path}: weight {name} is {tuple(value.shape)}, the model needs {tuple(target.shape)}"
            )
        loaded[name] = value
    model.load_state_dict(loaded, strict=False)
    if keep_head:
        notes.append(f"output layer kept (same labels: {list(new_labels)[:10]})")
    else:
        notes.append(f"output layer replaced: labels {source.labels[:10]} -> {list(new_labels)[:10]}")
    return notes


def build(node: Any, where: str = "config", *, trust: Sequence[str] = (), trust_code: bool = False) -> Any:
    """Build objects from ``_target_`` nodes (the subset of Hydra's ``instantiate`` bundles need).

    Only targets the allow-list permits are imported (:mod:`nlp_lib.trust`): nlp_lib's models,
    cells and layers and ``torch.nn``'s, plus the ``trust`` prefixes; everything with
    ``trust_code=True``.

    Raises:
        BundleError: a target that is not allowed, does not import or does not accept the arguments.
    """
    allowed = _bundle_trust(trust, trust_code)
    trust_mod.check_targets(node, allowed, where, resolve=False)  # the whole tree before any import; _build resolves
    return _build(node, where, allowed)


def _build(node: Any, where: str, allowed: trust_mod.Trust, key: str = "") -> Any:
    if isinstance(node, list):
        return [_build(v, where, allowed, f"{key}[{i}]") for i, v in enumerate(node)]
    if not isinstance(node, dict):
        return node
    if "_target_" not in node:
        return {k: _build(v, where, allowed, trust_mod.join(key, k)) for k, v in node.items()}
    at = f"{where}: {trust_mod.join(key, '_target_')}"
    target = trust_mod.resolve_target(node["_target_"], allowed, at)
    try:  # the values against the target's hints first (a bool for an int, a float for a count...)
        check_arguments(target, node, key)
    except ConfigError as e:
        raise BundleError(f"{where}: {e}") from None
    kwargs = {k: _build(v, where, allowed, trust_mod.join(key, k)) for k, v in node.items() if not k.startswith("_")}
    if node.get("_partial_"):
        return functools.partial(target, **kwargs)
    try:
        return target(**kwargs)
    except (TypeError, ValueError) as e:
        raise BundleError(f"{where}: {key or 'the top level'}: cannot build {node['_target_']}: {e}") from None
