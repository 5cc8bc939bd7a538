"""ONNX export: onnxruntime gives PyTorch's outputs (1e-4) for sequence classifiers; trees say why not."""

import pytest

pytest.importorskip("onnxruntime", reason="the export extra is not installed")

import torch  # noqa: E402

from nlp_lib.cells import LayerNormLSTMCell, LSTMCell, NaryTreeLSTMCell  # noqa: E402
from nlp_lib.export import ExportError, export_onnx  # noqa: E402
from nlp_lib.models import SequenceClassifier, TreeClassifier  # noqa: E402


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
    check = export_onnx(model, tmp_path / "m.onnx", max_length=16)
    assert check["max_abs_diff"] <= 1e-4
    assert (tmp_path / "m.onnx").stat().st_size > 0


def test_cli_exports_a_trained_bundle(tmp_path):
    import json

    from conftest import run_cli

    from nlp_lib.cli import compose, train

    data = tmp_path / "t.jsonl"
    data.write_text("\n".join(json.dumps({"text": t, "label": y}) for t, y in [("good", "p"), ("bad", "n")] * 20))
    run = tmp_path / "run"
    train(
        compose(
            "text_classifier",
            [
                f"data.train_path={data}",
                f"run_dir={run}",
                "data.vocab_size=30",
                "trainer.max_epochs=1",
                "trainer.enable_progress_bar=false",
            ],
        )
    )
    res = run_cli("export", f"bundle={run / 'bundle'}", "max_length=12")
    assert res.returncode == 0, res.stderr[-2000:]
    assert (run / "bundle" / "model.onnx").is_file() and "max |difference|" in res.stdout


def test_tree_models_give_a_reason(tmp_path):
    model = TreeClassifier(vocab_size=10, num_classes=2, cell=NaryTreeLSTMCell(4, 4))
    with pytest.raises(ExportError, match="level steps depends"):
        export_onnx(model, tmp_path / "t.onnx")
