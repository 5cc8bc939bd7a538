"""Bundles: a training run writes one; a fresh process loads it without Lightning/Hydra and predicts."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import TINY_LISTOPS

import nlp_lib
from nlp_lib import bundle
from nlp_lib.cli import compose, train
from nlp_lib.data.listops import generate_listops
from nlp_lib.errors import BundleError

FRESH = """
import json, sys
import nlp_lib
model = nlp_lib.load(sys.argv[1])
inputs = json.loads(sys.argv[2])
logits = model.logits(inputs).tolist()
preds = model.predict(inputs)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("pytorch_lightning", "lightning", "hydra", "omegaconf"))
print(json.dumps({"logits": logits, "labels": [p["label"] for p in preds], "heavy": heavy}))
"""


def _fresh(bundle_dir, inputs):
    res = subprocess.run(
        [sys.executable, "-c", FRESH, str(bundle_dir), json.dumps(inputs)], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def listops_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("listops") / "run"
    metrics = train(compose("listops_tree_lstm", [*TINY_LISTOPS, f"run_dir={run_dir}"]))
    return run_dir, metrics


@pytest.mark.integration
def test_run_writes_a_bundle_that_a_fresh_process_loads_without_lightning_or_hydra(listops_run):
    run_dir, metrics = listops_run
    b = run_dir / "bundle"
    assert {p.name for p in b.iterdir()} == {
        "config.yaml",
        "model.safetensors",
        "vocab.json",
        "labels.json",
        "meta.json",
    }
    assert metrics["bundle"] == str(b)
    inputs = [e.expression for e in generate_listops(6, seed=123, max_depth=3)]
    fresh = _fresh(b, inputs)
    assert fresh["heavy"] == []
    # the same outputs as the trained weights in the run's best checkpoint, computed here
    from nlp_lib.models import TreeClassifier  # noqa: F401  (the class config.yaml names)

    model = nlp_lib.load(b)
    ckpt = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    model.model.load_state_dict({k.removeprefix("model."): v for k, v in ckpt.items()})
    expected = model.logits(inputs)
    torch.testing.assert_close(torch.tensor(fresh["logits"]), expected, atol=1e-5, rtol=0)
    assert fresh["labels"] == [model.labels[i] for i in expected.argmax(-1).tolist()]
    assert model.labels == [str(i) for i in range(10)]


@pytest.mark.integration
def test_text_classifier_bundle_carries_its_sentencepiece_model(tmp_path):
    rows = [{"text": t, "label": y} for t, y in [("great film", "pos"), ("awful plot", "neg")] * 20]
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    run_dir = tmp_path / "run"
    train(
        compose(
            "text_classifier",
            [
                f"data.train_path={data}",
                f"run_dir={run_dir}",
                "data.vocab_size=40",
                "trainer.max_epochs=3",
                "trainer.enable_progress_bar=false",
                "optim.optimizer.lr=0.01",
            ],
        )
    )
    fresh = _fresh(run_dir / "bundle", ["great film", "awful plot"])
    assert fresh["heavy"] == []
    assert fresh["labels"] == ["pos", "neg"]


@pytest.mark.integration
def test_corrupt_or_newer_bundles_give_clear_errors(listops_run, tmp_path):
    import shutil

    b = tmp_path / "b"
    shutil.copytree(listops_run[0] / "bundle", b)
    meta = json.loads((b / "meta.json").read_text())
    (b / "meta.json").write_text(json.dumps({**meta, "format_version": bundle.FORMAT_VERSION + 1}))
    with pytest.raises(BundleError, match="newer"):
        nlp_lib.load(b)
    (b / "meta.json").write_text(json.dumps(meta))
    (b / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(BundleError, match="model.safetensors"):
        nlp_lib.load(b)
    with pytest.raises(BundleError, match="no such bundle"):
        nlp_lib.load(tmp_path / "nowhere")
