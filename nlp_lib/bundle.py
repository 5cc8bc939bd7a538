"""Model bundles: a trained model as a folder any project can load, with no Lightning and no Hydra.

A bundle holds::

    config.yaml         the model's class and constructor arguments (``_target_`` nodes)
    model.safetensors   the weights (no pickle anywhere)
    vocab.json | tokenizer.model   the word vocabulary or the sentencepiece model
                        (seq2seq: source.* and target.*, one per side)
    labels.json         the label names, in class-id order
    meta.json           bundle format version, library version, recipe, metrics

Every training run writes one to ``<run dir>/bundle/`` (the best checkpoint's weights).
:func:`load` rebuilds the model from its config, loads the weights and attaches the tokenizer and
labels, so ``model.predict([...])`` works on raw inputs.
"""

from __future__ import annotations

import functools
import json
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from nlp_lib import trust as trust_mod
from nlp_lib.constraints import FiniteFloat, PositiveInt
from nlp_lib.errors import BundleError, DataError, NlpLibError

__all__ = [
    "FORMAT_VERSION",
    "BundleContents",
    "Predictor",
    "load",
    "read",
    "save",
    "save_tokenizers",
    "transfer",
    "Translator",
]

# Tokenizer kinds meta.json may name, and the file each is saved in (seq2seq: "<side>.<suffix>").
_TOKENIZER_FILES = {"WordVocab": "vocab.json", "Seq2SeqVocab": "vocab.json", "SentencePieceTokenizer": "model"}
_SIDES = ("source", "target")

# Size limits per file (bytes): generous for real models, small enough that a hostile bundle
# cannot exhaust memory. A weights file is memory-mapped, not read.
LIMITS = {
    "config.yaml": 1 << 20,
    "meta.json": 4 << 20,
    "labels.json": 64 << 20,
    "vocab.json": 512 << 20,
    "model": 256 << 20,
    "model.safetensors": 64 << 30,
}


def save_tokenizers(tokenizers: dict[str, Any], directory: Path) -> dict[str, str]:
    """A seq2seq model's tokenizers as ``<side>.vocab.json`` or ``<side>.model``; returns their kinds."""
    kinds = {}
    for side, tok in tokenizers.items():
        kind = type(tok).__name__
        if kind not in _TOKENIZER_FILES:
            raise BundleError(f"cannot save a tokenizer of type {kind}")
        tok.save(directory / f"{side}.{_TOKENIZER_FILES[kind]}")
        kinds[side] = kind
    return kinds


def _load_tokenizer(kind: Any, d: Path, name: str) -> Any:
    """A tokenizer of a known ``kind`` from ``d/name``, read defensively; a bad file is a BundleError."""
    from nlp_lib.data.tokenizers import SentencePieceTokenizer
    from nlp_lib.data.vocab import Seq2SeqVocab, WordVocab

    if kind not in _TOKENIZER_FILES:
        raise BundleError(
            f"{d / 'meta.json'}: unknown tokenizer {trust_mod.short(kind)}; expected one of {sorted(_TOKENIZER_FILES)}"
        )
    limit = LIMITS[name.rpartition(".")[2] if kind == "SentencePieceTokenizer" else "vocab.json"]
    if kind == "SentencePieceTokenizer":
        data = trust_mod.read_bytes(d, name, limit)
        try:
            return SentencePieceTokenizer(data)
        except (RuntimeError, ValueError, TypeError) as e:
            raise BundleError(f"{d / name}: not a sentencepiece model ({e})") from None
    data = trust_mod.read_json(d, name, limit, dict)
    cls = Seq2SeqVocab if kind == "Seq2SeqVocab" else WordVocab
    try:
        return cls.from_json(data, str(d / name))
    except DataError as e:
        raise BundleError(str(e)) from None


FORMAT_VERSION = 1


def save(
    model: nn.Module,
    path: str | Path,
    *,
    config: dict[str, Any],
    tokenizer: Any,
    labels: Sequence[str],
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` as a bundle in ``path`` (created if needed).

    Args:
        model: The model (its ``state_dict`` is saved as safetensors).
        config: The model's ``_target_`` config with every constructor argument resolved
            (``vocab_size`` and ``num_classes`` included).
        tokenizer: A :class:`~nlp_lib.data.vocab.WordVocab` or
            :class:`~nlp_lib.data.tokenizers.SentencePieceTokenizer` (anything with ``save``).
        labels: Label names in class-id order.
        meta: Extra metadata (recipe, metrics...).
    """
    from safetensors.torch import save_file

    from nlp_lib import __version__

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    save_file(state, str(out / "model.safetensors"))
    # safetensors creates its file 0600; give it the mode every other file of the bundle gets (umask)
    os.chmod(out / "model.safetensors", stat.S_IMODE((out / "config.yaml").stat().st_mode))
    kind: Any = type(tokenizer).__name__
    if isinstance(tokenizer, dict):  # seq2seq: one per side
        kind = save_tokenizers(tokenizer, out)
    elif kind == "WordVocab":
        tokenizer.save(out / "vocab.json")
    elif kind == "SentencePieceTokenizer":
        tokenizer.save(out / "tokenizer.model")
    else:
        raise BundleError(f"cannot save a tokenizer of type {kind}")
    (out / "labels.json").write_text(json.dumps(list(labels), ensure_ascii=False))
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
            f"it was written by nlp_lib {meta.get('nlp_lib_version', '?')}: upgrade nlp_lib"
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
    kind = meta.get("tokenizer", "WordVocab")
    tokenizer: Any
    if isinstance(kind, dict):  # seq2seq: one per side
        if sorted(kind) != sorted(_SIDES) or not all(isinstance(k, str) for k in kind.values()):
            raise BundleError(
                f"{d / 'meta.json'}: tokenizer must name a source and a target tokenizer kind, got {trust_mod.short(kind)}"
            )
        tokenizer = {
            side: _load_tokenizer(k, d, f"{side}.{_TOKENIZER_FILES.get(k, 'model')}") for side, k in kind.items()
        }
    elif kind == "SentencePieceTokenizer":
        tokenizer = _load_tokenizer(kind, d, "tokenizer.model")
    elif kind == "WordVocab":
        tokenizer = _load_tokenizer(kind, d, "vocab.json")
    else:
        raise BundleError(
            f"{d / 'meta.json'}: unknown tokenizer {trust_mod.short(kind)}; expected one of {sorted(_TOKENIZER_FILES)}"
        )
    weights = trust_mod.checked_path(d, "model.safetensors", LIMITS["model.safetensors"])
    try:
        state = load_file(str(weights))
    except (OSError, SafetensorError, ValueError) as e:
        raise BundleError(f"{d / 'model.safetensors'}: not a readable safetensors file ({e})") from None
    return BundleContents(d, config, state, tokenizer, labels, meta)


def _bundle_trust(trust: Sequence[str], trust_code: bool) -> trust_mod.Trust:
    return trust_mod.Trust(trust_mod.BUNDLE_TARGETS, trust, trust_code=trust_code)


def load(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    trust_code: bool = False,
    trust: Sequence[str] = (),
) -> nn.Module:
    """Load a bundle: the model in eval mode, with ``.tokenizer``, ``.labels`` and ``.predict``.

    Loading runs no code the bundle names unless you allow it: the model's config may build only
    nlp_lib's own models, cells and layers (and ``torch.nn``'s). A model that uses your own cell or
    model class loads with ``trust=["my_pkg.cells"]`` (prefixes of importable names) or, for a
    bundle you trust completely, ``trust_code=True``.

    Raises:
        BundleError: the folder or a file is missing, corrupt or inconsistent (labels, vocabulary
            and weights are checked against the model), a target is not allowed, or the bundle was
            written by a newer, incompatible format.
    """
    b = read(path, trust_code=trust_code, trust=trust)
    model = build(b.config, where=str(b.path / "config.yaml"), trust=trust, trust_code=trust_code)
    if not isinstance(model, nn.Module):
        raise BundleError(f"{b.path / 'config.yaml'}: builds a {type(model).__name__}, not a model (nn.Module)")
    try:
        model.load_state_dict(b.state)
    except RuntimeError as e:
        raise BundleError(f"{b.path / 'model.safetensors'}: weights do not fit the model in config.yaml: {e}") from None
    _check_parts(b, model)
    model.to(device).eval()
    model.tokenizer = b.tokenizer
    model.labels = b.labels
    model.bundle_meta = b.meta
    from nlp_lib.models.seq2seq import Seq2Seq

    if isinstance(model, Seq2Seq):
        model.translate = Translator(model)
        model.predict = model.translate
    else:
        model.predict = Predictor(model)  # instance attribute: the model class stays the plain one
    return model


def _check_parts(b: BundleContents, model: nn.Module) -> None:
    """Labels and vocabularies agree with the model they were saved with (else predict would crash)."""
    num_classes = getattr(model, "num_classes", None)
    if isinstance(num_classes, int) and len(b.labels) != num_classes:
        raise BundleError(
            f"{b.path / 'labels.json'}: {len(b.labels)} labels, but the model in config.yaml has {num_classes} classes"
        )
    sides = b.tokenizer if isinstance(b.tokenizer, dict) else {"": b.tokenizer}
    embeddings = {"": "embedding", "source": "src_embedding", "target": "tgt_embedding"}
    for side, tok in sides.items():
        table = getattr(model, embeddings[side], None)
        rows = getattr(table, "num_embeddings", None)
        size = getattr(tok, "vocab_size", None)
        if isinstance(rows, int) and isinstance(size, int) and size > rows:
            what = f"{side} tokenizer" if side else "tokenizer"
            raise BundleError(
                f"{b.path}: the {what} has {size} entries, but the model's embedding has only {rows} rows "
                "(the tokenizer and the weights come from different models)"
            )
    if isinstance(b.tokenizer, dict) != _is_seq2seq(model):
        raise BundleError(
            f"{b.path / 'meta.json'}: its tokenizer entry does not fit the model in config.yaml (a seq2seq model "
            "has a source and a target tokenizer; other models have one)"
        )


def _is_seq2seq(model: nn.Module) -> bool:
    from nlp_lib.models.seq2seq import Seq2Seq

    return isinstance(model, Seq2Seq)


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
    kwargs = {k: _build(v, where, allowed, trust_mod.join(key, k)) for k, v in node.items() if not k.startswith("_")}
    if node.get("_partial_"):
        return functools.partial(target, **kwargs)
    try:
        return target(**kwargs)
    except (TypeError, ValueError) as e:
        raise BundleError(f"{where}: {key or 'the top level'}: cannot build {node['_target_']}: {e}") from None


def _check_inputs(inputs: Any, what: str) -> None:
    if isinstance(inputs, (str, bytes)):  # a string is a sequence too: of characters
        raise TypeError(f"{what} takes a list of inputs; for one, pass [{inputs[:40]!r}]")


@contextmanager
def _inference(model: nn.Module, inputs: Any, what: str) -> Iterator[None]:
    """Checks ``inputs`` is a sequence of inputs, and runs in eval mode (no dropout), restoring the mode after."""
    _check_inputs(inputs, what)
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def parse_tree_input(x: Any) -> Any:
    """A tree for a tree model: a :class:`~nlp_lib.structure.Tree` as it is, or a bracketed string
    (PTB style with labels, or unlabelled brackets as in ListOps)."""
    if not isinstance(x, str):
        return x
    from nlp_lib.structure.brackets import parse_ptb, parse_unlabelled

    try:
        return parse_ptb(x)
    except NlpLibError:  # unlabelled brackets (ListOps style)
        return parse_unlabelled(x)


class Predictor:
    """``model.predict(inputs)``: labels and probabilities for raw inputs.

    Tree classifiers take PTB-style bracketed strings (or :class:`~nlp_lib.structure.Tree` s);
    sequence classifiers take texts (split on whitespace for a word vocabulary, or sentencepiece).
    Returns one ``{"label": name, "probs": {name: p, ...}}`` per input; a sequence tagger returns
    one ``{"tokens": [...], "labels": [...], "scores": [...]}`` per input instead (a label and its
    probability per token: words for a word vocabulary, sentencepiece pieces otherwise).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    @torch.no_grad()
    def __call__(self, inputs: Sequence[Any], batch_size: PositiveInt = 64) -> list[dict[str, Any]]:
        from nlp_lib.models.sequence import SequenceTagger

        _check_inputs(inputs, "predict")  # self.logits runs the model in eval mode
        if isinstance(self.model, SequenceTagger):
            return self._tag(inputs, batch_size)
        out: list[dict[str, Any]] = []
        labels = self.model.labels
        for i in range(0, len(inputs), batch_size):
            probs = torch.softmax(self.logits(inputs[i : i + batch_size]), dim=-1).cpu()
            for row in probs:
                k = int(row.argmax())
                out.append({"label": labels[k], "probs": dict(zip(labels, row.tolist(), strict=True))})
        return out

    @torch.no_grad()
    def logits(self, inputs: Sequence[Any]) -> torch.Tensor:
        """``[len(inputs), num_classes]`` logits (inference, in eval mode: no autograd graph, no dropout;
        call the model for a graph)."""
        from nlp_lib.models.tree_classifier import TreeClassifier

        model, tok = self.model, self.model.tokenizer
        device = next(model.parameters()).device
        with _inference(model, inputs, "logits"):
            if isinstance(model, TreeClassifier):
                from nlp_lib.structure import TreeBatch

                trees = [parse_tree_input(x) for x in inputs]
                if type(tok).__name__ == "SentencePieceTokenizer":  # words split into pieces, as in training
                    from nlp_lib.data.collate import collate_trees, encode_tree_subwords

                    batch = collate_trees([encode_tree_subwords(t, tok.encode) for t in trees])
                else:
                    batch = TreeBatch.from_arrays([t.parent for t in trees], [tok.encode(t.words) for t in trees])
                return model(batch.to(device)).logits
            from nlp_lib.structure.sequence import SequenceBatch

            ids = [i or [0] for i, _ in map(self._encode, inputs)]
            out = model(SequenceBatch.from_lists(ids).to(device))
            return out if isinstance(out, torch.Tensor) else out.logits  # a tagger returns its logits as they are

    def _encode(self, text: Any) -> tuple[list[int], list[str]]:
        """A text's token ids and the tokens themselves (words, or sentencepiece pieces)."""
        tok = self.model.tokenizer
        if type(tok).__name__ == "WordVocab":
            words = str(text).split()
            return [tok.id(w) for w in words], words
        ids = tok.encode(str(text))
        return ids, [tok.sp.id_to_piece(int(i)) for i in ids]

    def _tag(self, inputs: Sequence[Any], batch_size: PositiveInt) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i in range(0, len(inputs), batch_size):
            chunk = inputs[i : i + batch_size]
            probs = torch.softmax(self.logits(chunk), dim=-1).cpu()  # [B, T, C]
            for row, x in zip(probs, chunk, strict=True):
                _, tokens = self._encode(x)
                best = row[: len(tokens)].max(-1)
                out.append(
                    {
                        "tokens": tokens,
                        "labels": [self.model.labels[int(k)] for k in best.indices],
                        "scores": [round(float(p), 6) for p in best.values],
                    }
                )
        return out


class Translator:
    """``model.translate(texts)`` (also ``model.predict``) for a loaded seq2seq bundle.

    Tokenizes with the bundle's source tokenizer, decodes with batched beam search (or greedy with
    ``beam_size=1``) and detokenizes with the target tokenizer. Returns, per input, the ``n_best``
    outputs as ``{"output": text, "score": normalised log-probability}``, best first.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    @torch.no_grad()
    def __call__(
        self,
        inputs: Sequence[str],
        batch_size: PositiveInt = 64,
        *,
        beam_size: PositiveInt = 5,
        n_best: PositiveInt = 1,
        max_length: PositiveInt = 200,
        length_penalty: FiniteFloat = 1.0,
    ) -> list[list[dict[str, Any]]]:
        from nlp_lib.models.decoding import beam_search
        from nlp_lib.structure.seq2seq import Seq2SeqBatch

        model, toks = self.model, self.model.tokenizer
        device = next(model.parameters()).device
        out: list[list[dict[str, Any]]] = []
        with _inference(model, inputs, "translate"):
            for i in range(0, len(inputs), batch_size):
                chunk = [str(x) for x in inputs[i : i + batch_size]]
                batch = Seq2SeqBatch.from_ids([toks["source"].encode(x) for x in chunk], [[] for _ in chunk], chunk)
                hyps = beam_search(
                    model,
                    batch.src.to(device),
                    batch.src_lengths.to(device),
                    beam_size=beam_size,
                    n_best=n_best,
                    max_length=max_length,
                    length_penalty=length_penalty,
                )
                out.extend([{"output": toks["target"].decode(h.tokens), "score": h.score} for h in hs] for hs in hyps)
        return out
