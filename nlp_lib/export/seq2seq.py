"""Seq2seq models as two ONNX graphs: ``encoder.onnx`` and ``decoder_step.onnx``.

The encoder maps ``(src [B, max_length], src_lengths [B])`` to the attention memory and the
decoder's initial state; one decoder step maps ``(y_prev [B], memory, keys, mask, state...)`` to
``log_probs [B, V]``, the next state and the attention weights. The decoder state travels as flat
named tensors (``layer<i>.<field>``, then ``feed``). Greedy or beam search is a loop around the
step graph in the runtime (beam search reorders the state rows);
:class:`~nlp_lib.export.runtime.OnnxSeq2Seq` is such a loop in Python (greedy).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nlp_lib.export.common import ExportOptions, diff, session, to_onnx
from nlp_lib.export.random_inputs import random_tokens
from nlp_lib.export.runtime import OnnxSeq2Seq
from nlp_lib.models.seq2seq import DecoderState, Encoded
from nlp_lib.structure.seq2seq import BOS, EOS, PAD, UNK

__all__ = ["export_seq2seq"]


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
    """The decoder state as flat tensors, in the order of :func:`_state_names`."""
    return [t for s in state.cells for t in s] + [state.feed]


def _unflatten(flat: Sequence[Tensor], like: Any) -> Any:
    """The decoder state shaped as ``like`` from its flat tensors (:func:`_flatten`'s inverse)."""
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
        logits, new, weights = self.model.step(y_prev, _unflatten(state, self.like), Encoded(memory, keys, mask))
        return (torch.log_softmax(logits, dim=-1), *_flatten(new), weights)


def export_seq2seq(model: nn.Module, out: Path, options: ExportOptions) -> dict[str, Any]:
    """Write a :class:`~nlp_lib.models.Seq2Seq` as ``encoder.onnx`` + ``decoder_step.onnx`` and check them."""
    max_length, opset = options.max_length, options.opset
    g = torch.Generator().manual_seed(0)
    src, lens = random_tokens(g, model.src_vocab_size, 2, max_length)
    names = _state_names(model)
    with torch.no_grad():
        enc, state = model.encode(src, lens)
    batch_axis = {0: "batch"}
    encoder = _EncoderGraph(model)
    to_onnx(
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
    to_onnx(
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
    if options.check:
        runtime = OnnxSeq2Seq.from_sessions(session(out / "encoder.onnx"), session(out / "decoder_step.onnx"), manifest)
        worst = 0.0
        for batch in (1, 3, 8):
            src, lens = random_tokens(g, model.src_vocab_size, batch, max_length)
            feeds = runtime.encode(src.numpy(), lens.numpy())
            with torch.no_grad():
                enc, state = model.encode(src, lens)
            expected = [enc.memory, enc.keys, enc.mask, *_flatten(state)]
            worst = max(
                [
                    worst,
                    *(diff(feeds[n], e) for n, e in zip(["memory", "keys", "mask", *names], expected, strict=True)),
                ]
            )
            for _ in range(3):  # a few steps on random previous tokens, each side from its own state
                y = torch.randint(0, model.tgt_vocab_size, (batch,), generator=g)
                got = runtime.step(y.numpy(), feeds)
                with torch.no_grad():
                    logits, state, weights = model.step(y, state, enc)
                worst = max(worst, diff(got["log_probs"], torch.log_softmax(logits, -1)))
                worst = max(worst, diff(got["attention"], weights))
                feeds.update({n: got[f"new.{n}"] for n in names})
        manifest["max_abs_diff"] = worst
    return manifest
