"""Export trained models to ONNX, with a parity check against PyTorch in onnxruntime.

:func:`export_onnx` writes a folder: the ONNX graph(s) and ``onnx.json`` (what each input and
output is, the sizes the graphs were unrolled to, the special token ids and the labels), so a
runtime in any language can drive them. Every kind is checked against PyTorch in onnxruntime on
random inputs of many shapes before the call returns. One module per model kind says what its
graphs take and give:

* :mod:`nlp_lib.export.sequence`: sequence classifiers and taggers (``model.onnx``: ``tokens,
  lengths -> logits``, the time loop unrolled to ``max_length``);
* :mod:`nlp_lib.export.seq2seq`: seq2seq models (``encoder.onnx`` + ``decoder_step.onnx``; the
  search loop stays in the runtime);
* :mod:`nlp_lib.export.tree`: tree classifiers (``model.onnx`` with the tree structure as inputs,
  the level sweep unrolled to ``max_depth``);
* :mod:`nlp_lib.export.runtime`: running the exported graphs: :class:`OnnxSeq2Seq` (greedy
  decoding) and :func:`tree_inputs` (a tree graph's inputs from parent arrays).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from nlp_lib.export.common import ExportError, ExportOptions
from nlp_lib.export.runtime import OnnxSeq2Seq, tree_inputs
from nlp_lib.export.seq2seq import export_seq2seq
from nlp_lib.export.sequence import export_sequence_classifier, export_sequence_tagger
from nlp_lib.export.tree import export_tree_classifier
from nlp_lib.models.seq2seq import Seq2Seq
from nlp_lib.models.sequence import SequenceClassifier, SequenceTagger
from nlp_lib.models.tree_classifier import TreeClassifier

__all__ = ["ExportError", "OnnxSeq2Seq", "export_onnx", "tree_inputs"]

Exporter = Callable[[nn.Module, Path, ExportOptions], dict[str, Any]]

#: The exporter of each model kind: a model takes the first entry whose class it is an instance of.
EXPORTERS: tuple[tuple[type[nn.Module], Exporter], ...] = (
    (SequenceClassifier, export_sequence_classifier),
    (SequenceTagger, export_sequence_tagger),
    (Seq2Seq, export_seq2seq),
    (TreeClassifier, export_tree_classifier),
)


def export_onnx(
    model: nn.Module,
    directory: str | Path,
    *,
    labels: Sequence[str] | None = None,
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
        labels: The class names, in the order of the logits, recorded in ``onnx.json`` (a loaded
            bundle's ``predictor.labels``); none are recorded without them.
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
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ExportError("ONNX export needs onnx and onnxruntime: pip install 'nlp-lib[export]'") from None
    out = Path(directory)
    if out.suffix == ".onnx":
        raise ExportError(f"{out}: export writes a folder (model.onnx or encoder.onnx + decoder_step.onnx, onnx.json)")
    out.mkdir(parents=True, exist_ok=True)
    exporter = next((export for kind, export in EXPORTERS if isinstance(model, kind)), None)
    if exporter is None:
        kinds = [kind.__name__ for kind, _ in EXPORTERS]
        raise ExportError(
            f"ONNX export supports {', '.join(kinds[:-1])} and {kinds[-1]} models, not {type(model).__name__}"
        )
    options = ExportOptions(max_length=max_length, max_depth=max_depth, opset=opset, check=check)
    was_training = model.training
    model.eval()
    try:
        manifest = exporter(model, out, options)
    finally:
        model.train(was_training)
    manifest.update(opset=opset, format_version=1)
    if labels:  # those of the logits' columns (a tree classifier whose roots take the first classes: those)
        manifest["labels"] = list(labels)[: getattr(model, "root_classes", None) or len(labels)]
    worst = manifest.get("max_abs_diff")
    (out / "onnx.json").write_text(json.dumps(manifest, indent=2))
    if worst is not None and worst > atol:
        raise ExportError(f"{out}: onnxruntime and PyTorch differ by {worst:.3g} (> {atol:g})")
    return manifest
