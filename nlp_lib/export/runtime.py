"""Running exported graphs: :class:`OnnxSeq2Seq` (the seq2seq decoding loop around the step graph)
and :func:`tree_inputs` (a tree graph's inputs from parent arrays).

Both are references for writing the same in another runtime (``onnx.json`` says what each graph
takes and gives); they need onnxruntime and numpy, not the model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nlp_lib.export.common import ExportError, session
from nlp_lib.structure.tree import compute_heights

__all__ = ["OnnxSeq2Seq", "tree_inputs"]


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
        self.__init_from(session(d / "encoder.onnx"), session(d / "decoder_step.onnx"), manifest)

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
