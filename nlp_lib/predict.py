"""Trained models ready for raw inputs: :func:`load` a bundle into a predictor.

A predictor owns what inference needs besides the module: the tokenizer, the label names and the
bundle's metadata. The module itself stays the plain ``nn.Module`` (``predictor.model``), with no
attributes patched onto it, so it composes into any project::

    p = nlp_lib.load("runs/sst_tree_lstm/<time>/bundle")
    p.predict(["(3 (2 A) (4 (4 fine) (2 film)))"])   # [{"label": "3", "probs": {...}}]
    p.logits([...])                                   # [N, C]
    p.model(batch)                                    # the module, as in training

One predictor per model kind (:data:`PREDICTORS`, a plain list searched in order, so a user's
subclass of a library model gets its parent's predictor). Neither Lightning nor Hydra is
imported on this path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nlp_lib import bundle
from nlp_lib.constraints import FiniteFloat, PositiveInt
from nlp_lib.data.collate import collate_trees, encode_tree_subwords
from nlp_lib.data.tokenizers import SentencePieceTokenizer
from nlp_lib.data.vocab import Seq2SeqVocab, WordVocab
from nlp_lib.errors import BundleError, NlpLibError
from nlp_lib.models.decoding import OutputPrecision, beam_search
from nlp_lib.models.seq2seq import Seq2Seq
from nlp_lib.models.sequence import SequenceClassifier, SequenceTagger
from nlp_lib.models.tree_classifier import TreeClassifier
from nlp_lib.structure.brackets import parse_ptb, parse_unlabelled
from nlp_lib.structure.schedule import TreeBatch
from nlp_lib.structure.seq2seq import Seq2SeqBatch
from nlp_lib.structure.sequence import SequenceBatch

__all__ = [
    "PREDICTORS",
    "Predictor",
    "Seq2SeqPredictor",
    "SequenceClassifierPredictor",
    "SequenceTaggerPredictor",
    "TreeClassifierPredictor",
    "load",
    "parse_tree_input",
    "predictor_for",
]

# meta.json keys save() writes itself; a re-saved bundle gets fresh ones.
_WRITTEN_BY_SAVE = ("format_version", "nlp_lib_version", "tokenizer")


def load(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    trust_code: bool = False,
    trust: Sequence[str] = (),
) -> Predictor:
    """Load a bundle: its model in eval mode inside the predictor for its kind.

    Loading runs no code the bundle names unless you allow it: the model's config may build only
    nlp_lib's own models, cells and layers (and ``torch.nn``'s), its tokenizer only nlp_lib's
    tokenizers. A model that uses your own cell or model class loads with
    ``trust=["my_pkg.cells"]`` (prefixes of importable names) or, for a bundle you trust
    completely, ``trust_code=True``.

    Raises:
        BundleError: the folder or a file is missing, corrupt or inconsistent (labels, vocabulary
            and weights are checked against the model), a target is not allowed, or the bundle was
            written by a newer, incompatible format.
    """
    b = bundle.read(path, trust_code=trust_code, trust=trust)
    model = bundle.build(b.config, where=str(b.path / "config.yaml"), trust=trust, trust_code=trust_code)
    if not isinstance(model, nn.Module):
        raise BundleError(f"{b.path / 'config.yaml'}: builds a {type(model).__name__}, not a model (nn.Module)")
    try:
        model.load_state_dict(b.state)
    except RuntimeError as e:
        raise BundleError(f"{b.path / 'model.safetensors'}: weights do not fit the model in config.yaml: {e}") from None
    cls = predictor_for(model)
    cls.check(b, model)
    return cls(model.to(device).eval(), b.tokenizer, b.labels, b.meta)


def parse_tree_input(x: Any) -> Any:
    """A tree for a tree model: a :class:`~nlp_lib.structure.Tree` as it is, or a bracketed string
    (PTB style with labels, or unlabelled brackets as in ListOps)."""
    if not isinstance(x, str):
        return x
    try:
        return parse_ptb(x)
    except NlpLibError:  # unlabelled brackets (ListOps style)
        return parse_unlabelled(x)


def _check_inputs(inputs: Any, what: str) -> None:
    if isinstance(inputs, (str, bytes)):  # a string is a sequence too: of characters
        raise TypeError(f"{what} takes a list of inputs; for one, pass [{inputs[:40]!r}]")


class Predictor:
    """A model with its tokenizer, labels and metadata; the base of every kind's predictor.

    Args:
        model: The module (put in eval mode for inference, restored after).
        tokenizer: The bundle's tokenizer (seq2seq: ``{"source": ..., "target": ...}``).
        labels: Label names in class-id order (seq2seq: none).
        meta: The bundle's ``meta.json`` (recipe, metrics...).
    """

    def __init__(self, model: nn.Module, tokenizer: Any, labels: Sequence[str] = (), meta: dict | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.labels = [str(x) for x in labels]
        self.meta = dict(meta or {})

    @classmethod
    def check(cls, contents: bundle.BundleContents, model: nn.Module) -> None:
        """Labels agree with the output layer (else predict would crash or mislabel)."""
        num_classes = getattr(model, "num_classes", None)
        if isinstance(num_classes, int) and len(contents.labels) != num_classes:
            raise BundleError(
                f"{contents.path / 'labels.json'}: {len(contents.labels)} labels, but the model in config.yaml "
                f"has {num_classes} classes"
            )
        if isinstance(contents.tokenizer, dict):
            raise BundleError(
                f"{contents.path / 'meta.json'}: a source and a target tokenizer, but the model in config.yaml "
                "is not a seq2seq model"
            )
        _check_rows(contents.path, "tokenizer", contents.tokenizer, getattr(model, "embedding", None))
        if cls is not Predictor:
            _check_kind(contents.path, "tokenizer", contents.tokenizer, (WordVocab, SentencePieceTokenizer))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> Predictor:
        """Move the model to ``device``; returns the predictor."""
        self.model.to(device)
        return self

    def save(self, path: str | Path, *, meta: dict[str, Any] | None = None) -> Path:
        """Write the model, tokenizer and labels as a bundle again (after your own changes, say)."""
        info = {k: v for k, v in self.meta.items() if k not in _WRITTEN_BY_SAVE}
        info.update(meta or {})
        return bundle.save(self.model, path, tokenizer=self.tokenizer, labels=self.labels, meta=info)

    def predict(self, inputs: Sequence[Any], batch_size: PositiveInt = 64) -> list[Any]:
        raise TypeError(
            f"no predictor for {type(self.model).__name__}: call predictor.model on batches you build "
            "(predictor.tokenizer and predictor.labels are loaded)"
        )

    __call__ = predict

    @contextmanager
    def _inference(self, inputs: Any, what: str) -> Iterator[None]:
        """Checks ``inputs`` is a list of inputs; eval mode (no dropout) and no autograd, restored after."""
        _check_inputs(inputs, what)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.model.train(was_training)


def _check_rows(path: Path, what: str, tok: Any, table: Any, *, exact: bool = False) -> None:
    """No more tokenizer entries than embedding rows (ids past them would crash the model); with
    ``exact``, as many (a target vocabulary turns every output id back into a word)."""
    rows = getattr(table, "num_embeddings", None)
    size = getattr(tok, "vocab_size", None)
    if isinstance(rows, int) and isinstance(size, int) and (size > rows or (exact and size != rows)):
        rows_text = f"only {rows}" if size > rows else str(rows)
        raise BundleError(
            f"{path}: the {what} has {size} entries, but the model's embedding has {rows_text} rows "
            "(the tokenizer and the weights come from different models)"
        )


def _check_kind(path: Path, what: str, tok: Any, kinds: tuple[type, ...]) -> None:
    """One of nlp_lib's tokenizers of the kinds this model reads (a trusted tokenizer of the user's
    own is taken as it is: it answers for itself)."""
    if type(tok).__module__.startswith("nlp_lib.") and not isinstance(tok, kinds):
        raise BundleError(
            f"{path / 'meta.json'}: the {what} is a {type(tok).__name__}; this model reads "
            f"{' or '.join(k.__name__ for k in kinds)}"
        )


class _Classifier(Predictor):
    """Labels and probabilities from ``logits``; each subclass defines ``batch(inputs)``, the model's
    input batch for a list of raw inputs."""

    batch: Callable[[Sequence[Any]], Any]

    def predict(self, inputs: Sequence[Any], batch_size: PositiveInt = 64) -> list[dict[str, Any]]:
        """One ``{"label": name, "probs": {name: p, ...}}`` per input."""
        _check_inputs(inputs, "predict")
        out: list[dict[str, Any]] = []
        for i in range(0, len(inputs), batch_size):
            probs = torch.softmax(self.logits(inputs[i : i + batch_size]), dim=-1).cpu()
            names = self.labels[: probs.shape[-1]]  # a model whose roots take the first classes only
            for row in probs:
                k = int(row.argmax())
                out.append({"label": names[k], "probs": dict(zip(names, row.tolist(), strict=True))})
        return out

    __call__ = predict

    def logits(self, inputs: Sequence[Any]) -> torch.Tensor:
        """``[len(inputs), classes]`` logits (a tree classifier's ``root_classes``); inference, in eval
        mode: no autograd graph, no dropout; call ``predictor.model`` for a graph."""
        with self._inference(inputs, "logits"):
            return self.model(self.batch(inputs).to(self.device)).logits


class TreeClassifierPredictor(_Classifier):
    """Tree classifiers: PTB-style bracketed strings (or unlabelled brackets, or
    :class:`~nlp_lib.structure.Tree` s) in, a label per tree out."""

    def batch(self, inputs: Sequence[Any]) -> TreeBatch:
        trees = [parse_tree_input(x) for x in inputs]
        if isinstance(self.tokenizer, WordVocab):
            return TreeBatch.from_arrays([t.parent for t in trees], [self.tokenizer.encode(t.words) for t in trees])
        # subword tokenizer: words split into pieces, as in training
        return collate_trees([encode_tree_subwords(t, self.tokenizer.encode) for t in trees])


class SequenceClassifierPredictor(_Classifier):
    """Sequence classifiers: texts in (whitespace words for a word vocabulary, else sentencepiece)."""

    def tokens(self, text: Any) -> tuple[list[int], list[str]]:
        """A text's token ids and the tokens themselves (words, or sentencepiece pieces)."""
        if isinstance(self.tokenizer, WordVocab):
            words = str(text).split()
            return [self.tokenizer.id(w) for w in words], words
        ids = self.tokenizer.encode(str(text))
        sp = getattr(self.tokenizer, "sp", None)  # sentencepiece: the pieces; a user's tokenizer: the ids
        return ids, [sp.id_to_piece(int(i)) if sp is not None else str(i) for i in ids]

    def batch(self, inputs: Sequence[Any]) -> SequenceBatch:
        return SequenceBatch.from_lists([ids or [0] for ids, _ in map(self.tokens, inputs)])


class SequenceTaggerPredictor(SequenceClassifierPredictor):
    """Sequence taggers: texts in, one ``{"tokens": [...], "labels": [...], "scores": [...]}`` per
    input out (a label and its probability per token: words for a word vocabulary, sentencepiece
    pieces otherwise). ``logits`` are ``[N, T, num_classes]``."""

    def predict(self, inputs: Sequence[Any], batch_size: PositiveInt = 64) -> list[dict[str, Any]]:
        _check_inputs(inputs, "predict")
        out: list[dict[str, Any]] = []
        for i in range(0, len(inputs), batch_size):
            chunk = inputs[i : i + batch_size]
            probs = torch.softmax(self.logits(chunk), dim=-1).cpu()  # [B, T, C]
            for row, x in zip(probs, chunk, strict=True):
                _, tokens = self.tokens(x)
                best = row[: len(tokens)].max(-1)
                out.append(
                    {
                        "tokens": tokens,
                        "labels": [self.labels[int(k)] for k in best.indices],
                        "scores": [round(float(p), 6) for p in best.values],
                    }
                )
        return out

    __call__ = predict


class Seq2SeqPredictor(Predictor):
    """Seq2seq models: ``translate(texts)`` (also ``predict``).

    Tokenizes with the source tokenizer, decodes with batched beam search (or greedy with
    ``beam_size=1``) and detokenizes with the target tokenizer. Returns, per input, the ``n_best``
    outputs as ``{"output": text, "score": normalised log-probability}``, best first.
    ``output_precision="bfloat16"`` runs the output layer's product in bfloat16: ~3x faster decoding
    on CPUs with AVX512-BF16 or AMX, an approximation (see :data:`nlp_lib.models.decoding.OutputPrecision`).
    """

    @classmethod
    def check(cls, contents: bundle.BundleContents, model: nn.Module) -> None:
        tok = contents.tokenizer
        if not isinstance(tok, dict):
            raise BundleError(
                f"{contents.path / 'meta.json'}: one tokenizer, but the model in config.yaml is a seq2seq model "
                "(it needs a source and a target tokenizer)"
            )
        for side, table in (("source", model.src_embedding), ("target", model.tgt_embedding)):
            _check_rows(contents.path, f"{side} tokenizer", tok[side], table, exact=side == "target")
            _check_kind(contents.path, f"{side} tokenizer", tok[side], (Seq2SeqVocab, SentencePieceTokenizer))

    def translate(
        self,
        inputs: Sequence[str],
        batch_size: PositiveInt = 64,
        *,
        beam_size: PositiveInt = 5,
        n_best: PositiveInt = 1,
        max_length: PositiveInt = 200,
        length_penalty: FiniteFloat = 1.0,
        output_precision: OutputPrecision = "full",
    ) -> list[list[dict[str, Any]]]:
        source, target = self.tokenizer["source"], self.tokenizer["target"]
        out: list[list[dict[str, Any]]] = []
        with self._inference(inputs, "translate"):
            for i in range(0, len(inputs), batch_size):
                chunk = [str(x) for x in inputs[i : i + batch_size]]
                batch = Seq2SeqBatch.from_ids([source.encode(x) for x in chunk], [[] for _ in chunk], chunk)
                hyps = beam_search(
                    self.model,
                    batch.src.to(self.device),
                    batch.src_lengths.to(self.device),
                    beam_size=beam_size,
                    n_best=n_best,
                    max_length=max_length,
                    length_penalty=length_penalty,
                    output_precision=output_precision,
                )
                out.extend([{"output": target.decode(h.tokens), "score": h.score} for h in hs] for hs in hyps)
        return out

    predict = translate
    __call__ = translate


# Which predictor serves which model: the first entry the model is an instance of (a tagger before
# the classifier it does not derive from, subclasses with their parent). A plain list, no registry.
PREDICTORS: list[tuple[type[nn.Module], type[Predictor]]] = [
    (TreeClassifier, TreeClassifierPredictor),
    (SequenceTagger, SequenceTaggerPredictor),
    (SequenceClassifier, SequenceClassifierPredictor),
    (Seq2Seq, Seq2SeqPredictor),
]


def predictor_for(model: nn.Module) -> type[Predictor]:
    """The predictor class for ``model`` (:class:`Predictor` itself for a model of no known kind)."""
    return next((p for cls, p in PREDICTORS if isinstance(model, cls)), Predictor)
