"""``nlp-lib export``: a trained bundle to ONNX, with its labels in onnx.json."""

import json

import pytest

pytest.importorskip("onnxruntime", reason="the export extra is not installed")


@pytest.mark.integration
def test_cli_exports_a_trained_bundle(tmp_path):
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
    out = run / "bundle" / "onnx"
    assert (out / "model.onnx").is_file() and "max |difference|" in res.stdout
    assert json.loads((out / "onnx.json").read_text())["labels"] == ["n", "p"]
    bad = run_cli("export", f"bundle={run / 'bundle'}", "max_length=twelve")
    assert bad.returncode != 0 and "max_length must be a whole number" in bad.stderr
