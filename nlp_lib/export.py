"""Export trained models to ONNX, with a parity check against PyTorch in onnxruntime.

Sequence classifiers export as a graph ``(tokens [B, max_length], lengths [B]) -> logits [B, C]``
with a dynamic batch size: inputs are padded (id 0) to ``max_length`` and the time loop is unrolled
to it, masked by ``lengths``, so one file serves every length up to ``max_length``, with any
recurrent cell (a user's own included). Tree models are not exported yet: the number of level
steps depends on each batch's trees, which a static ONNX graph cannot express without a loop
construct the exporters do not produce from this code.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from nlp_lib.errors import NlpLibError

__all__ = ["ExportError", "export_onnx"]


class ExportError(NlpLibError):
    """A model that cannot be exported, or an export whose outputs differ from PyTorch's."""


class _SequenceGraph(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        from nlp_lib.structure.sequence import SequenceBatch

        return self.model(SequenceBatch(tokens, lengths)).logits


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    max_length: int = 128,
    opset: int = 17,
    check: bool = True,
    atol: float = 1e-4,
) -> dict[str, float]:
    """Write ``model`` as ONNX to ``path`` and check it against PyTorch.

    Args:
        model: A :class:`~nlp_lib.models.SequenceClassifier`.
        path: The ``.onnx`` file to write.
        max_length: The longest input the graph takes (shorter ones are padded).
        opset: ONNX opset.
        check: Run random inputs of many lengths through onnxruntime and PyTorch and compare.
        atol: Largest difference the check allows.

    Returns:
        ``{"max_abs_diff": ...}`` from the check (empty without it).

    Raises:
        ExportError: an unsupported model, a missing ``onnx``/``onnxruntime`` (``pip install
            'nlp-lib[export]'``), or outputs that differ by more than ``atol``.
    """
    from nlp_lib.models.sequence import SequenceClassifier
    from nlp_lib.models.tree_classifier import TreeClassifier

    if isinstance(model, TreeClassifier):
        raise ExportError(
            "tree models cannot be exported to ONNX yet: their number of level steps depends on each "
            "batch's trees (see nlp_lib.export's docstring); use the bundle with nlp_lib.load instead"
        )
    if not isinstance(model, SequenceClassifier):
        raise ExportError(f"ONNX export supports SequenceClassifier models, not {type(model).__name__}")
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("ONNX export needs onnx and onnxruntime: pip install 'nlp-lib[export]'") from None
    graph = _SequenceGraph(model).eval()
    g = torch.Generator().manual_seed(0)
    vocab = model.embedding.num_embeddings
    tokens = torch.randint(1, max(vocab, 2), (2, max_length), generator=g)
    lengths = torch.tensor([max_length, max(1, max_length // 2)])
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notices
        torch.onnx.export(
            graph,
            (tokens, lengths),
            str(out),
            input_names=["tokens", "lengths"],
            output_names=["logits"],
            dynamic_axes={"tokens": {0: "batch"}, "lengths": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    if not check:
        return {}
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch in (1, 3, 8):
        lens = torch.randint(1, max_length + 1, (batch,), generator=g)
        lens[0] = max_length
        toks = torch.randint(1, max(vocab, 2), (batch, max_length), generator=g)
        toks[torch.arange(max_length) >= lens.unsqueeze(1)] = 0
        with torch.no_grad():
            expected = graph(toks, lens)
        got = torch.from_numpy(session.run(None, {"tokens": toks.numpy(), "lengths": lens.numpy()})[0])
        worst = max(worst, float((got - expected).abs().max()))
    if worst > atol:
        raise ExportError(f"{out}: onnxruntime and PyTorch differ by {worst:.3g} (> {atol:g})")
    return {"max_abs_diff": worst}
