"""docs/using_models.md runs as written: train, load and predict, fine-tune on new labels."""

import pytest
from conftest import exec_doc


@pytest.mark.integration
def test_using_and_fine_tuning_models_doc_runs():
    ns = exec_doc("docs/using_models.md")
    preds = ns["sentiment"].predict(["a great film", "dull and long"])
    assert [p["label"] for p in preds] == ["pos", "neg"]
    assert ns["logits"].shape == (1, 2)
    assert ns["tuned"].labels == ["politics", "sport"]
    assert ns["metrics"]["val"]["accuracy"] >= 0.75
    assert ns["gentle"]["val"]["accuracy"] >= 0.5
    assert ns["again"].labels == ns["tuned"].labels
    assert abs(ns["onnx_logits"] - ns["tuned"].logits(["the team won the match"]).numpy()).max() < 1e-4
    assert (ns["work"] / "fresh" / "model.safetensors").is_file()
