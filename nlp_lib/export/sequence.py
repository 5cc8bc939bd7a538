"""Sequence classifiers and taggers as one ONNX graph: ``(tokens, lengths) -> logits``.

``model.onnx`` takes ``tokens [B, max_length]`` padded with id 0 and ``lengths [B]``; the time
loop is unrolled to ``max_length`` and masked by ``lengths``, so one file serves every length up
to ``max_length``, with any recurrent cell (a user's own included). A classifier gives ``logits
[B, C]``, a tagger ``logits [B, max_length, C]`` (rows past a sequence's length are padding).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nlp_lib.export.common import ExportOptions, diff, session, to_onnx
from nlp_lib.export.random_inputs import random_tokens
from nlp_lib.structure.sequence import SequenceBatch

__all__ = ["export_sequence_classifier", "export_sequence_tagger"]


class SequenceGraph(nn.Module):
    """The model with plain tensors in and its logits out (both model kinds return ``.logits``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        return self.model(SequenceBatch(tokens, lengths)).logits


def export_sequence_classifier(model: nn.Module, out: Path, options: ExportOptions) -> dict[str, Any]:
    """Write a :class:`~nlp_lib.models.SequenceClassifier` as ``model.onnx`` and check it."""
    return _export(model, out, options, "sequence_classifier", "float32 [batch, num_classes]")


def export_sequence_tagger(model: nn.Module, out: Path, options: ExportOptions) -> dict[str, Any]:
    """Write a :class:`~nlp_lib.models.SequenceTagger` as ``model.onnx`` and check it."""
    logits = "float32 [batch, max_length, num_classes] (rows past a sequence's length: padding)"
    return _export(model, out, options, "sequence_tagger", logits)


def _export(model: nn.Module, out: Path, options: ExportOptions, kind: str, logits: str) -> dict[str, Any]:
    max_length = options.max_length
    graph = SequenceGraph(model)
    g = torch.Generator().manual_seed(0)
    vocab = model.embedding.num_embeddings
    to_onnx(
        graph,
        random_tokens(g, vocab, 2, max_length),
        out / "model.onnx",
        ["tokens", "lengths"],
        ["logits"],
        {"tokens": {0: "batch"}, "lengths": {0: "batch"}, "logits": {0: "batch"}},
        options.opset,
    )
    manifest: dict[str, Any] = {
        "kind": kind,
        "files": ["model.onnx"],
        "max_length": max_length,
        "inputs": {"tokens": "int64 [batch, max_length], padded with 0", "lengths": "int64 [batch]"},
        "outputs": {"logits": logits},
    }
    if options.check:
        runtime, worst = session(out / "model.onnx"), 0.0
        for batch in (1, 3, 8):
            toks, lens = random_tokens(g, vocab, batch, max_length)
            with torch.no_grad():
                expected = graph(toks, lens)
            got = runtime.run(None, {"tokens": toks.numpy(), "lengths": lens.numpy()})[0]
            worst = max(worst, diff(got, expected))
        manifest["max_abs_diff"] = worst
    return manifest
