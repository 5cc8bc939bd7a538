"""Export trained models to ONNX, with a parity check against PyTorch in onnxruntime.

:func:`export_onnx` writes a folder: the ONNX graph(s) and ``onnx.json`` (what each input and
output is, the sizes the graphs were unrolled to, the special token ids and the labels), so a
runtime in any language can drive them. Every kind is checked against PyTorch in onnxruntime on
random inputs of many shapes before the call returns.

* **Sequence classifiers** (``model.onnx``): ``(tokens [B, max_length], lengths [B]) -> logits
  [B, C]``. Inputs are padded (id 0) to ``max_length``; the time loop is unrolled to it and masked
  by ``lengths``, so one file serves every length up to ``max_length``, with any recurrent cell (a
  user's own included). **Sequence taggers** export the same way, with ``logits [B, max_length, C]``
  (a label per position; rows past a sequence's length are padding).
* **Seq2seq** (``encoder.onnx`` + ``decoder_step.onnx``): the encoder maps ``(src [B, max_length],
  src_lengths [B])`` to the attention memory and the decoder's initial state; one decoder step maps
  ``(y_prev [B], memory, keys, mask, state...)`` to ``log_probs [B, V]``, the next state and the
  attention weights. Greedy or beam search is a loop around the step graph in the runtime (beam
  search reorders the state rows); :class:`OnnxSeq2Seq` is such a loop in Python (greedy).
* **Tree classifiers** (``model.onnx``): the tree structure is an *input*, so one graph serves every
  tree shape: ``tokens [N]`` (-1: no input), ``edge_parent [E]``, ``edge_child [E]``, ``edge_slot
  [E]`` (a child's rank among its siblings; only cells that order their children read it, so only
  their graphs have it: ``onnx.json`` lists each graph's inputs), ``height [N]`` (0 for leaves) and
  ``roots [B]`` for the ``N`` nodes of a batch of trees (:func:`tree_inputs` builds them). The
  level sweep is unrolled to ``max_depth`` steps: step ``d`` picks the nodes of height ``d`` and the
  edges to their children from those inputs (``NonZero``: dynamic sizes), runs the cell once on
  them and writes their states, i.e. the batched level schedule, computed inside the graph. Trees
  up to height ``max_depth - 1`` (``tree_inputs(..., max_depth=, arity=)`` refuses taller trees and
  wider nodes, which the graph would get wrong silently); the bottom-up cell may be any cell of
  the library or a user's own. A top-down pass (``down_cell``: bidirectional tree models) runs the
  same way over the levels of ``depth``, each node reading its parent's state.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nlp_lib.errors import NlpLibError

__all__ = ["ExportError", "OnnxSeq2Seq", "export_onnx", "tree_inputs"]


class ExportError(NlpLibError):
    """A model that cannot be exported, or an export whose outputs differ from PyTorch's."""


def export_onnx(
    model: nn.Module,
    directory: str | Path,
    *,
    max_length: int = 128,
    max_depth: int = 64,
    opset: int = 17,
    check: bool = True,
    atol: float = 1e-4,
) -> dict[str, Any]:
    """Write ``model`` as ONNX into ``directory`` (see the module docstring) and check it.

    Args:
        model: A :class:`~nlp_lib.models.SequenceClassifier`, :class:`~nlp_lib.models.SequenceTagger`,
            :class:`~nlp_lib.models.Seq2Seq` or :class:`~nlp_lib.models.TreeClassifier`.
        directory: Folder for the ``.onnx`` file(s) and ``onnx.json`` (created if needed).
        max_length: The longest input sequence the graph takes (shorter ones are padded).
        max_depth: Tree models: the number of level steps unrolled (trees up to that many levels).
        opset: ONNX opset.
        check: Run random inputs through onnxruntime and PyTorch and compare.
        atol: Largest difference the check allows.

    Returns:
        The manifest written to ``onnx.json``: file names, inputs, outputs, sizes and, with the
        check, ``max_abs_diff``.

    Raises:
        ExportError: an unsupported model, a missing ``onnx``/``onnxruntime`` (``pip install
            'nlp-lib[export]'``), or outputs that differ by more than ``atol``.
    """
    from nlp_lib.models.seq2seq import Seq2Seq
    from nlp_lib.models.sequence import SequenceClassifier, SequenceTagger
    from nlp_lib.models.tree_classifier import TreeClassifier

    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ExportError("ONNX export needs onnx and onnxruntime: pip install 'nlp-lib[export]'") from None
    out = Path(directory)
    if out.suffix == ".onnx":
        raise ExportError(f"{out}: export writes a folder (model.onnx or encoder.onnx + decoder_step.onnx, onnx.json)")
    out.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        if isinstance(model, SequenceClassifier | SequenceTagger):
            manifest = _export_sequence(model, out, max_length, opset, check)
        elif isinstance(model, Seq2Seq):
            manifest = _export_seq2seq(model, out, max_length, opset, check)
        elif isinstance(model, TreeClassifier):
            manifest = _export_tree(model, out, max_depth, opset, check)
        else:
            raise ExportError(
                "ONNX export supports SequenceClassifier, SequenceTagger, Seq2Seq and TreeClassifier models, "
                f"not {type(model).__name__}"
            )
    finally:
        model.train(was_training)
    manifest.update(opset=opset, format_version=1)
    labels = getattr(model, "labels", None)
    if labels:
        manifest["labels"] = list(labels)
    worst = manifest.get("max_abs_diff")
    (out / "onnx.json").write_text(json.dumps(manifest, indent=2))
    if worst is not None and worst > atol:
        raise ExportError(f"{out}: onnxruntime and PyTorch differ by {worst:.3g} (> {atol:g})")
    return manifest


def _to_onnx(graph: nn.Module, args: tuple[Tensor, ...], path: Path, inputs, outputs, dynamic, opset) -> None:  # noqa: ANN001
    graph.eval()  # the exporter restores the wrapper's mode afterwards, and with it the model's
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notices
            torch.onnx.export(
                graph,
                args,
                str(path),
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=dynamic,
                opset_version=opset,
                dynamo=False,
            )
    except Exception as e:  # an operation (often in a user's cell) that torch.onnx cannot express
        raise ExportError(f"{path}: torch.onnx cannot export this model: {type(e).__name__}: {e}") from e


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: empty tree levels make ORT warn about 0-row shapes
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _diff(a: Any, b: Tensor) -> float:
    a = torch.as_tensor(np.asarray(a))
    if a.dtype == torch.bool:
        return float((a != b).any())
    return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0


# ---------------------------------------------------------------------------------------- sequences


class _SequenceGraph(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        from nlp_lib.structure.sequence import SequenceBatch

        out = self.model(SequenceBatch(tokens, lengths))
        return out if isinstance(out, Tensor) else out.logits  # a tagger returns its [B, T, C] logits as they are


def _random_tokens(g: torch.Generator, vocab: int, batch: int, max_length: int) -> tuple[Tensor, Tensor]:
    lens = torch.randint(1, max_length + 1, (batch,), generator=g)
    lens[0] = max_length
    toks = torch.randint(1, max(vocab, 2), (batch, max_length), generator=g)
    toks[torch.arange(max_length) >= lens.unsqueeze(1)] = 0
    return toks, lens


def _export_sequence(model: nn.Module, out: Path, max_length: int, opset: int, check: bool) -> dict[str, Any]:
    graph = _SequenceGraph(model)
    g = torch.Generator().manual_seed(0)
    vocab = model.embedding.num_embeddings
    _to_onnx(
        graph,
        _random_tokens(g, vocab, 2, max_length),
        out / "model.onnx",
        ["tokens", "lengths"],
        ["logits"],
        {"tokens": {0: "batch"}, "lengths": {0: "batch"}, "logits": {0: "batch"}},
        opset,
    )
    from nlp_lib.models.sequence import SequenceTagger

    tagger = isinstance(model, SequenceTagger)
    manifest: dict[str, Any] = {
        "kind": "sequence_tagger" if tagger else "sequence_classifier",
        "files": ["model.onnx"],
        "max_length": max_length,
        "inputs": {"tokens": "int64 [batch, max_length], padded with 0", "lengths": "int64 [batch]"},
        "outputs": {
            "logits": "float32 [batch, max_length, num_classes] (rows past a sequence's length: padding)"
            if tagger
            else "float32 [batch, num_classes]"
        },
    }
    if check:
        session, worst = _session(out / "model.onnx"), 0.0
        for batch in (1, 3, 8):
            toks, lens = _random_tokens(g, vocab, batch, max_length)
            with torch.no_grad():
                expected = graph(toks, lens)
            got = session.run(None, {"tokens": toks.numpy(), "lengths": lens.numpy()})[0]
            worst = max(worst, _diff(got, expected))
        manifest["max_abs_diff"] = worst
    return manifest


# ---------------------------------------------------------------------------------------- seq2seq


def _state_names(model: nn.Module) -> list[str]:
    """Flat names of the decoder state: ``layer<i>.<field>`` for each layer's cell state, then ``feed``."""
    names = []
    for i, cell in enumerate(model.decoder_cells):
        fields = getattr(cell, "state_type", None)
        fields = getattr(fields, "_fields", None) or [f"s{j}" for j in range(_state_len(cell))]
        names += [f"layer{i}.{f}" for f in fields]
    return [*names, "feed"]


def _state_len(cell: nn.Module) -> int:
    return len(cell.initial_state(1, device=torch.device("cpu"), dtype=torch.float32))


def _flatten(state: Any) -> list[Tensor]:
    return [t for s in state.cells for t in s] + [state.feed]


def _unflatten(model: nn.Module, flat: Sequence[Tensor], like: Any) -> Any:
    from nlp_lib.models.seq2seq import DecoderState

    cells, k = [], 0
    for s in like.cells:
        cells.append(type(s)(*flat[k : k + len(s)]))
        k += len(s)
    return DecoderState(cells, flat[k])


class _EncoderGraph(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, src: Tensor, src_lengths: Tensor) -> tuple[Tensor, ...]:
        enc, state = self.model.encode(src, src_lengths)
        return (enc.memory, enc.keys + 0, enc.mask, *_flatten(state))  # + 0: keys may be memory itself


class _StepGraph(nn.Module):
    def __init__(self, model: nn.Module, like: Any) -> None:
        super().__init__()
        self.model = model
        self.like = like

    def forward(self, y_prev: Tensor, memory: Tensor, keys: Tensor, mask: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        from nlp_lib.models.seq2seq import Encoded

        logits, new, weights = self.model.step(
            y_prev, _unflatten(self.model, state, self.like), Encoded(memory, keys, mask)
        )
        return (torch.log_softmax(logits, dim=-1), *_flatten(new), weights)


def _export_seq2seq(model: nn.Module, out: Path, max_length: int, opset: int, check: bool) -> dict[str, Any]:
    from nlp_lib.models.seq2seq import BOS, EOS, PAD, UNK

    g = torch.Generator().manual_seed(0)
    src, lens = _random_tokens(g, model.src_vocab_size, 2, max_length)
    names = _state_names(model)
    with torch.no_grad():
        enc, state = model.encode(src, lens)
    batch_axis = {0: "batch"}
    encoder = _EncoderGraph(model)
    _to_onnx(
        encoder,
        (src, lens),
        out / "encoder.onnx",
        ["src", "src_lengths"],
        ["memory", "keys", "mask", *names],
        {"src": batch_axis, "src_lengths": batch_axis, **{n: batch_axis for n in ["memory", "keys", "mask", *names]}},
        opset,
    )
    step = _StepGraph(model, state)
    y = torch.full((2,), BOS, dtype=torch.long)
    seq_axes = {0: "batch", 1: "source_length"}
    new_names = [f"new.{n}" for n in names]
    _to_onnx(
        step,
        (y, enc.memory, enc.keys, enc.mask, *_flatten(state)),
        out / "decoder_step.onnx",
        ["y_prev", "memory", "keys", "mask", *names],
        ["log_probs", *new_names, "attention"],
        {
            "y_prev": batch_axis,
            "memory": seq_axes,
            "keys": seq_axes,
            "mask": seq_axes,
            "attention": seq_axes,
            "log_probs": batch_axis,
            **{n: batch_axis for n in [*names, *new_names]},
        },
        opset,
    )
    manifest: dict[str, Any] = {
        "kind": "seq2seq",
        "files": ["encoder.onnx", "decoder_step.onnx"],
        "max_length": max_length,
        "special_ids": {"pad": PAD, "unk": UNK, "bos": BOS, "eos": EOS},
        "state": names,
        "encoder": {
            "inputs": {"src": "int64 [batch, max_length], padded with pad", "src_lengths": "int64 [batch]"},
            "outputs": ["memory", "keys", "mask", *names],
        },
        "decoder_step": {
            "inputs": ["y_prev (int64 [batch]; bos first)", "memory", "keys", "mask", *names],
            "outputs": ["log_probs (float32 [batch, target vocab])", *new_names, "attention"],
            "loop": "feed each step's new.<state> back as <state>; stop at eos; beam search reorders state rows",
        },
    }
    if check:
        runtime = OnnxSeq2Seq.from_sessions(
            _session(out / "encoder.onnx"), _session(out / "decoder_step.onnx"), manifest
        )
        worst = 0.0
        for batch in (1, 3, 8):
            src, lens = _random_tokens(g, model.src_vocab_size, batch, max_length)
            feeds = runtime.encode(src.numpy(), lens.numpy())
            with torch.no_grad():
                enc, state = model.encode(src, lens)
            expected = [enc.memory, enc.keys, enc.mask, *_flatten(state)]
            worst = max(
                [
                    worst,
                    *(_diff(feeds[n], e) for n, e in zip(["memory", "keys", "mask", *names], expected, strict=True)),
                ]
            )
            for _ in range(3):  # a few steps on random previous tokens, each side from its own state
                y = torch.randint(0, model.tgt_vocab_size, (batch,), generator=g)
                got = runtime.step(y.numpy(), feeds)
                with torch.no_grad():
                    logits, state, weights = model.step(y, state, enc)
                worst = max(worst, _diff(got["log_probs"], torch.log_softmax(logits, -1)))
                worst = max(worst, _diff(got["attention"], weights))
                feeds.update({n: got[f"new.{n}"] for n in names})
        manifest["max_abs_diff"] = worst
    return manifest


class OnnxSeq2Seq:
    """Run an exported seq2seq folder with onnxruntime: ``encode``, ``step`` and ``greedy``.

    A reference for writing the same loop in another runtime (see ``onnx.json``).
    """

    def __init__(self, directory: str | Path) -> None:
        d = Path(directory)
        try:
            manifest = json.loads((d / "onnx.json").read_text())
        except (OSError, ValueError) as e:
            raise ExportError(f"{d / 'onnx.json'}: cannot read it ({e})") from None
        if manifest.get("kind") != "seq2seq":
            raise ExportError(f"{d}: not an exported seq2seq model (kind {manifest.get('kind')!r})")
        self.__init_from(_session(d / "encoder.onnx"), _session(d / "decoder_step.onnx"), manifest)

    @classmethod
    def from_sessions(cls, encoder: Any, step: Any, manifest: dict[str, Any]) -> OnnxSeq2Seq:
        self = cls.__new__(cls)
        self.__init_from(encoder, step, manifest)
        return self

    def __init_from(self, encoder: Any, step: Any, manifest: dict[str, Any]) -> None:
        self.encoder, self.decoder_step, self.manifest = encoder, step, manifest
        self.state = list(manifest["state"])
        self.max_length = int(manifest["max_length"])
        self.bos, self.eos = manifest["special_ids"]["bos"], manifest["special_ids"]["eos"]
        self.unk = manifest["special_ids"]["unk"]

    def encode(self, src: np.ndarray, src_lengths: np.ndarray) -> dict[str, np.ndarray]:
        """The step graph's inputs after the encoder (memory, keys, mask, the initial state)."""
        if src.shape[1] < self.max_length:
            src = np.pad(src, ((0, 0), (0, self.max_length - src.shape[1])))
        if src.shape[1] > self.max_length:
            raise ExportError(
                f"a source of {src.shape[1]} tokens is longer than the exported max_length {self.max_length}"
            )
        outs = self.encoder.run(None, {"src": src.astype(np.int64), "src_lengths": src_lengths.astype(np.int64)})
        return dict(zip(["memory", "keys", "mask", *self.state], outs, strict=True))

    def step(self, y_prev: np.ndarray, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One decoder step: ``log_probs``, ``new.<state>`` and ``attention``."""
        names = ["log_probs", *(f"new.{n}" for n in self.state), "attention"]
        outs = self.decoder_step.run(None, {"y_prev": y_prev.astype(np.int64), **feeds})
        return dict(zip(names, outs, strict=True))

    def greedy(self, sources: Sequence[Sequence[int]], max_steps: int = 100) -> list[list[int]]:
        """Greedy decoding of token-id sources; outputs without the end token."""
        lens = np.array([max(len(s), 1) for s in sources], dtype=np.int64)
        src = np.zeros((len(sources), self.max_length), dtype=np.int64)
        for i, s in enumerate(sources):
            if len(s) > self.max_length:
                raise ExportError(
                    f"source {i} has {len(s)} tokens, more than the exported max_length {self.max_length}"
                )
            src[i, : lens[i]] = s if len(s) else [self.unk]  # as the library's batches: one unknown token
        feeds = self.encode(src, lens)
        y = np.full(len(sources), self.bos, dtype=np.int64)
        out: list[list[int]] = [[] for _ in sources]
        done = np.zeros(len(sources), dtype=bool)
        for _ in range(max_steps):
            res = self.step(y, feeds)
            y = res["log_probs"].argmax(-1)
            for i in np.flatnonzero(~done):
                if y[i] == self.eos:
                    done[i] = True
                else:
                    out[i].append(int(y[i]))
            if done.all():
                break
            feeds.update({n: res[f"new.{n}"] for n in self.state})
        return out


# ---------------------------------------------------------------------------------------- trees


def tree_inputs(
    parents: Sequence[Sequence[int]],
    tokens: Sequence[Sequence[int]],
    *,
    max_depth: int | None = None,
    arity: int | None = None,
) -> dict[str, np.ndarray]:
    """The exported tree graph's inputs for a batch of trees.

    Args:
        parents: Per tree, each node's parent index (children before parents, ``-1`` at the root,
            the root last), as :class:`~nlp_lib.structure.Tree` ``.parent``.
        tokens: Per tree, each node's token id (``-1``: no input), as the bundle's tokenizer gives.
        max_depth: The graph's ``max_depth`` (``onnx.json``): a taller tree is an error here,
            since the graph would leave its upper nodes uncomputed.
        arity: The graph's ``arity`` (``onnx.json``, N-ary cells): a node with more children is
            an error here, since the graph has no slot for them.

    Returns:
        ``tokens``, ``edge_parent``, ``edge_child``, ``edge_slot``, ``height``, ``depth`` (distance
        from the root, read by graphs with a top-down pass) and ``roots`` (int64). A graph takes the
        ones ``onnx.json`` lists.

    Raises:
        ExportError: a tree taller than ``max_depth - 1`` or a node with more than ``arity`` children.
    """
    from nlp_lib.structure.tree import compute_heights

    toks, heights, depths, e_parent, e_child, roots = [], [], [], [], [], []
    offset = 0
    for par, tok in zip(parents, tokens, strict=True):
        toks += list(tok)
        heights += compute_heights(par)
        depth = [0] * len(par)
        for i in range(len(par) - 1, -1, -1):  # parents after children: walk from the root down
            if par[i] >= 0:
                depth[i] = depth[par[i]] + 1
        depths += depth
        for i, p in enumerate(par):
            if p >= 0:
                e_parent.append(offset + p)
                e_child.append(offset + i)
        offset += len(par)
        roots.append(offset - 1)
    e_parent_a, e_child_a = np.array(e_parent, dtype=np.int64), np.array(e_child, dtype=np.int64)
    order = np.lexsort((e_child_a, e_parent_a))  # by parent, then child id: slot = rank among siblings
    e_parent_a, e_child_a = e_parent_a[order], e_child_a[order]
    first = np.r_[0, np.flatnonzero(np.diff(e_parent_a)) + 1] if len(order) else np.zeros(0, np.int64)
    start = np.repeat(first, np.diff(np.r_[first, len(order)])) if len(order) else first
    slot = (np.arange(len(order)) - start).astype(np.int64)
    height = np.array(heights, dtype=np.int64)
    if max_depth is not None and len(height) and int(height.max()) >= max_depth:
        tree = int(np.searchsorted(np.array(roots), int(height.argmax())))
        raise ExportError(
            f"tree {tree} has height {int(height.max())}; the exported graph computes trees up to height "
            f"{max_depth - 1} (export again with a larger max_depth)"
        )
    if arity is not None and len(slot) and int(slot.max()) >= arity:
        node = int(e_parent_a[int(slot.argmax())])
        tree = int(np.searchsorted(np.array(roots), node))
        raise ExportError(f"tree {tree} has a node with {int(slot.max()) + 1} children; the model's cell takes {arity}")
    return {
        "tokens": np.array(toks, dtype=np.int64),
        "edge_parent": e_parent_a,
        "edge_child": e_child_a,
        "edge_slot": slot,
        "height": height,
        "depth": np.array(depths, dtype=np.int64),
        "roots": np.array(roots, dtype=np.int64),
    }


class _TreeGraph(nn.Module):
    """The tree classifier with the structure as inputs and the level sweep unrolled ``max_depth`` times."""

    def __init__(self, model: nn.Module, max_depth: int) -> None:
        super().__init__()
        self.model, self.max_depth = model, max_depth

    def forward(self, tokens, edge_parent, edge_child, edge_slot, height, depth, roots) -> Tensor:  # noqa: ANN001
        model = self.model
        has = (tokens >= 0).unsqueeze(1)
        x = model.embedding(tokens.clamp(min=0)) * has.to(model.embedding.weight.dtype)  # no input: zeros
        # bottom-up: level = height, each node reads its children
        h = self._sweep(model.cell, x, height, edge_parent, edge_child, edge_slot)[0]
        if model.down_runner is not None:  # top-down: level = depth, each node reads its parent (slot 0)
            down = self._sweep(model.down_runner.cell, h, depth, edge_child, edge_parent, torch.zeros_like(edge_slot))
            h = torch.cat([h, down[0]], dim=-1)
        return model.classifier(h.index_select(0, roots))

    def _sweep(self, cell, x, level, receiver, sender, slot) -> tuple[Tensor, ...]:  # noqa: ANN001
        """Run ``cell`` level by level: level 0 as leaves, then each level's nodes (``NonZero``) reading
        the states of their senders over the edges ``sender -> receiver``."""
        from nlp_lib.cells.base import Children

        project = getattr(cell, "project", None)
        proj = project(x) if project is not None else x
        arity = int(getattr(cell, "arity", 0) or 8)  # child-sum cells: slots unused
        n = x.shape[0]
        first_nodes = torch.nonzero(level == 0).squeeze(1)
        first = cell(proj.index_select(0, first_nodes), Children(None, slot[:0], slot[:0], first_nodes.shape[0], 0))
        state = type(first)(*(t.new_zeros((n,) + t.shape[1:]).index_copy(0, first_nodes, t) for t in first))
        for d in range(1, self.max_depth):
            at = level == d
            nodes = torch.nonzero(at).squeeze(1)  # [M]
            local = torch.cumsum(at.to(torch.int64), 0) - 1  # node -> its row within the level
            edges = torch.nonzero(at.index_select(0, receiver)).squeeze(1)  # [E_d]: edges into this level
            rows = local.index_select(0, receiver.index_select(0, edges))
            kids = type(state)(*(t.index_select(0, sender.index_select(0, edges)) for t in state))
            new = cell(
                proj.index_select(0, nodes), Children(kids, rows, slot.index_select(0, edges), nodes.shape[0], arity)
            )
            state = type(state)(*(t.index_copy(0, nodes, v) for t, v in zip(state, new, strict=True)))
        return state


def _caterpillar(depth: int, vocab: int) -> tuple[list[int], list[int]]:
    """A left-branching binary tree of height ``depth``: every level of the traced sweep has edges."""
    parent, tokens = [-1], [1 % vocab]  # leaf 0
    top = 0
    for _ in range(depth):
        parent.append(-1)
        tokens.append(2 % vocab)  # another leaf
        leaf = len(parent) - 1
        parent.append(-1)
        tokens.append(-1)
        node = len(parent) - 1
        parent[top] = parent[leaf] = node
        top = node
    return parent, tokens


def _random_forest(g: torch.Generator, vocab: int, count: int, arity: int, max_nodes: int) -> dict[str, np.ndarray]:
    """Random trees (children before parents, root last), some inner nodes without a token."""
    import random

    rng = random.Random(int(torch.randint(0, 2**31, (1,), generator=g)))
    parents, tokens = [], []
    for _ in range(count):
        # grow a tree top-down, then number it children-first
        kids: list[list[int]] = [[]]
        for _ in range(rng.randint(0, max_nodes - 1)):
            open_ = [i for i, k in enumerate(kids) if len(k) < arity]
            p = rng.choice(open_)
            kids[p].append(len(kids))
            kids.append([])
        order: list[int] = []  # children before parents (post-order), iteratively
        stack = [(0, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
            else:
                stack.append((node, True))
                stack.extend((k, False) for k in reversed(kids[node]))
        pos = {node: j for j, node in enumerate(order)}
        par = [-1] * len(order)
        for node, ks in enumerate(kids):
            for k in ks:
                par[pos[k]] = pos[node]
        parents.append(par)
        tokens.append([rng.randrange(vocab) if not kids[node] or rng.random() < 0.3 else -1 for node in order])
    return tree_inputs(parents, tokens)


def _concat_inputs(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Two batches of tree inputs as one (node ids of ``b`` shifted past ``a``'s)."""
    shift = len(a["tokens"])
    out = {}
    for k in a:
        moved = b[k] + shift if k in ("edge_parent", "edge_child", "roots") else b[k]
        out[k] = np.concatenate([a[k], moved])
    return out


def _export_tree(model: nn.Module, out: Path, max_depth: int, opset: int, check: bool) -> dict[str, Any]:
    from nlp_lib.structure.schedule import TreeBatch

    if max_depth < 2:
        raise ExportError(f"max_depth must be at least 2, got {max_depth}")
    cell = model.cell
    arity = int(getattr(cell, "arity", 0) or 8)  # child-sum cells take any number; slots are unused
    g = torch.Generator().manual_seed(0)
    vocab = model.embedding.num_embeddings
    graph = _TreeGraph(model, max_depth)
    names = ["tokens", "edge_parent", "edge_child", "edge_slot", "height", "depth", "roots"]
    forest = _random_forest(g, vocab, 3, min(arity, 3), 12)
    tall = tree_inputs(*([x] for x in _caterpillar(max_depth - 1, vocab)))
    example = _concat_inputs(forest, tall)
    dyn = {"tokens": {0: "nodes"}, "height": {0: "nodes"}, "depth": {0: "nodes"}, "roots": {0: "batch"}}
    dyn["logits"] = {0: "batch"}
    dyn.update({n: {0: "edges"} for n in ("edge_parent", "edge_child", "edge_slot")})
    _to_onnx(
        graph, tuple(torch.from_numpy(example[n]) for n in names), out / "model.onnx", names, ["logits"], dyn, opset
    )
    manifest: dict[str, Any] = {
        "kind": "tree_classifier",
        "files": ["model.onnx"],
        "max_depth": max_depth,
        "arity": getattr(cell, "arity", None),  # N-ary cells: the most children a node may have
        "inputs": {
            "tokens": "int64 [nodes], -1 for a node without input (nodes of all trees, each tree's root last)",
            "edge_parent": "int64 [edges], the parent node of each edge, edges grouped by parent",
            "edge_child": "int64 [edges], the child node",
            "edge_slot": "int64 [edges], the child's rank among its siblings (0 = first/left)",
            "height": f"int64 [nodes], 0 for leaves, 1 + the tallest child's otherwise; at most {max_depth - 1}",
            "depth": "int64 [nodes], 0 for roots, 1 + the parent's otherwise (graphs with a top-down pass)",
            "roots": "int64 [batch], the root node of each tree",
        },
        "outputs": {"logits": "float32 [batch, num_classes]"},
    }
    import onnx

    used = {i.name for i in onnx.load(str(out / "model.onnx"), load_external_data=False).graph.input}
    manifest["inputs"] = {k: v for k, v in manifest["inputs"].items() if k in used}  # child-sum cells: no slots
    if check:
        session, worst = _session(out / "model.onnx"), 0.0
        for count, size in ((1, 1), (4, 20), (9, 40)):
            inputs = _random_forest(g, vocab, count, min(arity, 3), size)
            if int(inputs["height"].max()) >= max_depth:
                continue
            got = session.run(None, {k: v for k, v in inputs.items() if k in used})[0]
            starts = np.r_[0, inputs["roots"][:-1] + 1]
            trees_parents, trees_tokens = [], []
            for s, r in zip(starts, inputs["roots"], strict=True):
                par = np.full(r - s + 1, -1)
                sel = (inputs["edge_child"] >= s) & (inputs["edge_child"] <= r)
                par[inputs["edge_child"][sel] - s] = inputs["edge_parent"][sel] - s
                trees_parents.append(par.tolist())
                trees_tokens.append(inputs["tokens"][s : r + 1].tolist())
            with torch.no_grad():
                expected = model(TreeBatch.from_arrays(trees_parents, trees_tokens)).logits
            worst = max(worst, _diff(got, expected))
        manifest["max_abs_diff"] = worst
    return manifest
