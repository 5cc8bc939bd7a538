"""nlp_lib.export.sequence: sequence classifiers and taggers give PyTorch's logits in onnxruntime (1e-4)."""

import json

import pytest

pytest.importorskip("onnxruntime", reason="the export extra is not installed")

import torch  # noqa: E402

from nlp_lib.cells import GRUCell, LayerNormLSTMCell, LSTMCell  # noqa: E402
from nlp_lib.export import export_onnx  # noqa: E402
from nlp_lib.models import SequenceClassifier, SequenceTagger  # noqa: E402


@pytest.mark.parametrize("cell, bidirectional, layers", [(LSTMCell, False, 1), (LayerNormLSTMCell, True, 2)])
def test_sequence_classifier_onnx_parity(tmp_path, cell, bidirectional, layers):
    torch.manual_seed(0)
    model = SequenceClassifier(
        vocab_size=40,
        num_classes=4,
        cell=cell,
        embedding_size=8,
        hidden_size=12,
        bidirectional=bidirectional,
        num_layers=layers,
        pooling="mean",
    ).eval()
    manifest = export_onnx(model, tmp_path / "onnx", max_length=16)
    assert manifest["max_abs_diff"] <= 1e-4
    assert json.loads((tmp_path / "onnx" / "onnx.json").read_text())["kind"] == "sequence_classifier"
    assert (tmp_path / "onnx" / "model.onnx").stat().st_size > 0


def test_sequence_tagger_onnx_parity(tmp_path):
    torch.manual_seed(0)
    model = SequenceTagger(vocab_size=40, num_classes=5, cell=GRUCell, embedding_size=8, hidden_size=12).eval()
    manifest = export_onnx(model, tmp_path / "onnx", max_length=16)
    assert manifest["max_abs_diff"] <= 1e-4 and manifest["kind"] == "sequence_tagger"
    assert "max_length, num_classes" in manifest["outputs"]["logits"]
