"""nlp_lib.export.export_onnx: the folder it writes, the labels it records, the models it refuses."""

import json

import pytest

pytest.importorskip("onnxruntime", reason="the export extra is not installed")

import torch  # noqa: E402

from nlp_lib.cells import GRUCell, NaryTreeLSTMCell  # noqa: E402
from nlp_lib.export import ExportError, export_onnx  # noqa: E402
from nlp_lib.models import SequenceClassifier, TreeClassifier  # noqa: E402


def test_labels_are_recorded_when_given_and_the_model_keeps_its_mode(tmp_path):
    torch.manual_seed(0)
    model = SequenceClassifier(vocab_size=10, num_classes=2, cell=GRUCell, embedding_size=4, hidden_size=4)
    assert model.training
    manifest = export_onnx(model, tmp_path / "a", labels=("neg", "pos"), max_length=4, check=False)
    assert manifest["labels"] == ["neg", "pos"] and "max_abs_diff" not in manifest
    assert json.loads((tmp_path / "a" / "onnx.json").read_text())["labels"] == ["neg", "pos"]
    assert model.training  # export runs in eval mode and gives the model back as it was
    assert "labels" not in export_onnx(model, tmp_path / "b", max_length=4, check=False)


def test_unsupported_models_say_why(tmp_path):
    model = TreeClassifier(vocab_size=10, num_classes=2, cell=NaryTreeLSTMCell(4, 4))
    with pytest.raises(ExportError, match="SequenceTagger, Seq2Seq and TreeClassifier models, not Linear"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "l")
    with pytest.raises(ExportError, match="export writes a folder"):
        export_onnx(model, tmp_path / "t.onnx")
