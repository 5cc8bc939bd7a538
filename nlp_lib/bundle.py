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
import importlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from nlp_lib.errors import BundleError, NlpLibError

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

_TOKENIZER_FILES = {"WordVocab": "vocab.json", "Seq2SeqVocab": "vocab.json", "SentencePieceTokenizer": "model"}


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


def _load_tokenizer(kind: str, path: Path) -> Any:
    if kind == "SentencePieceTokenizer":
        from nlp_lib.data.tokenizers import SentencePieceTokenizer

        return SentencePieceTokenizer.load(path)
    if kind == "Seq2SeqVocab":
        from nlp_lib.data.seq2seq import Seq2SeqVocab

        return Seq2SeqVocab.load(path)
    from nlp_lib.data.vocab import WordVocab

    return WordVocab.load(path)


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
    save_file(state, str(out / "model.safetensors"))
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
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


def read(path: str | Path) -> BundleContents:
    """Read a bundle's files (see :func:`load`, which also builds the model).

    Raises:
        BundleError: the folder or a file is missing or corrupt, or the bundle was written by a
            newer, incompatible format.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    d = Path(path)
    if not d.is_dir():
        raise BundleError(f"{d}: no such bundle directory")
    if not (d / "meta.json").exists() and (d / "bundle" / "meta.json").is_file():
        raise BundleError(f"{d}: a run directory, not a bundle; its bundle is {d / 'bundle'}")
    meta = _read_json(d / "meta.json")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BundleError(
            f"{d}: bundle format {version!r} is newer than this nlp_lib understands ({FORMAT_VERSION}); "
            f"it was written by nlp_lib {meta.get('nlp_lib_version', '?')}: upgrade nlp_lib"
        )
    try:
        config = yaml.safe_load((d / "config.yaml").read_text())
    except (OSError, yaml.YAMLError) as e:
        raise BundleError(f"{d / 'config.yaml'}: cannot read it ({e})") from None
    try:
        state = load_file(str(d / "model.safetensors"))
    except (OSError, SafetensorError) as e:
        raise BundleError(f"{d / 'model.safetensors'}: not a readable safetensors file ({e})") from None
    kind = meta.get("tokenizer")
    tokenizer: Any
    if isinstance(kind, dict):  # seq2seq
        tokenizer = {
            side: _load_tokenizer(k, d / f"{side}.{_TOKENIZER_FILES.get(k, 'model')}") for side, k in kind.items()
        }
    elif kind == "SentencePieceTokenizer":
        tokenizer = _load_tokenizer(kind, d / "tokenizer.model")
    else:
        tokenizer = _load_tokenizer("WordVocab", d / "vocab.json")
    return BundleContents(d, config, state, tokenizer, _read_json(d / "labels.json"), meta)


def load(path: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """Load a bundle: the model in eval mode, with ``.tokenizer``, ``.labels`` and ``.predict``.

    Raises:
        BundleError: the folder or a file is missing or corrupt, or the bundle was written by a
            newer, incompatible format.
    """
    b = read(path)
    model = build(b.config, where=str(b.path / "config.yaml"))
    try:
        model.load_state_dict(b.state)
    except RuntimeError as e:
        raise BundleError(f"{b.path / 'model.safetensors'}: weights do not fit the model in config.yaml: {e}") from None
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


def build(node: Any, where: str = "config") -> Any:
    """Build objects from ``_target_`` nodes (the subset of Hydra's ``instantiate`` bundles need)."""
    if isinstance(node, list):
        return [build(v, where) for v in node]
    if not isinstance(node, dict):
        return node
    if "_target_" not in node:
        return {k: build(v, where) for k, v in node.items()}
    target = _import(node["_target_"], where)
    kwargs = {k: build(v, where) for k, v in node.items() if not k.startswith("_")}
    if node.get("_partial_"):
        return functools.partial(target, **kwargs)
    try:
        return target(**kwargs)
    except TypeError as e:
        raise BundleError(f"{where}: cannot build {node['_target_']}: {e}") from None


def _import(path: str, where: str) -> Any:
    module, _, name = str(path).rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise BundleError(f"{where}: cannot import {path!r} (is the package that defines it installed?)") from None


def _read_json(p: Path) -> Any:
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{p}: missing (not a complete bundle)") from None
    except (OSError, ValueError) as e:
        raise BundleError(f"{p}: cannot read it ({e})") from None


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
    def __call__(self, inputs: Sequence[Any], batch_size: int = 64) -> list[dict[str, Any]]:
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

    def _tag(self, inputs: Sequence[Any], batch_size: int) -> list[dict[str, Any]]:
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
        batch_size: int = 64,
        *,
        beam_size: int = 5,
        n_best: int = 1,
        max_length: int = 200,
        length_penalty: float = 1.0,
    ) -> list[list[dict[str, Any]]]:
        from nlp_lib.data.seq2seq import Seq2SeqBatch
        from nlp_lib.models.decoding import beam_search

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
