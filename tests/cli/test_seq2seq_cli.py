"""Seq2seq end to end: train a tiny SCAN model, load its bundle, translate, predict from stdin, eval, fine-tune."""

import json
import subprocess
import sys

import pytest
import yaml
from conftest import REPO, run_cli

import nlp_lib
from nlp_lib.cli import compose, train
from nlp_lib.models import Seq2Seq

TINY_SCAN = [
    "data.batch_size=32",
    "data.eval_batch_size=64",
    "model.embedding_size=16",
    "model.hidden_size=32",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=40",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.enable_progress_bar=false",
]


@pytest.fixture(scope="module")
def scan_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("scan") / "run"
    metrics = train(compose("scan_seq2seq", [*TINY_SCAN, f"run_dir={run}"]))
    return run, metrics


@pytest.mark.integration
def test_training_writes_seq2seq_metrics_and_a_bundle(scan_run):
    run, metrics = scan_run
    for split in ("val", "test"):
        assert {"exact_match", "bleu", "chrf", "loss", "accuracy"} <= set(metrics[split])
        assert 0.0 <= metrics[split]["exact_match"] <= 1.0
    assert metrics["train"]["tokens_per_s"] > 0
    files = {p.name for p in (run / "bundle").iterdir()}
    assert {"source.vocab.json", "target.vocab.json", "model.safetensors", "config.yaml"} <= files


@pytest.mark.integration
def test_loaded_bundle_holds_a_plain_module_and_translates(scan_run):
    run, _ = scan_run
    predictor = nlp_lib.load(run / "bundle")
    assert type(predictor.model) is Seq2Seq
    out = predictor.translate(["jump twice", "walk left after run"], beam_size=3, n_best=2)
    assert len(out) == 2 and all(len(o) == 2 for o in out)
    assert all(
        set(h["output"].split()) <= {"I_JUMP", "I_WALK", "I_RUN", "I_LOOK", "I_TURN_LEFT", "I_TURN_RIGHT"}
        for o in out
        for h in o
    )
    assert out[0][0]["score"] >= out[0][1]["score"]


@pytest.mark.integration
def test_predict_reads_stdin_and_files_and_writes_nbest(scan_run, tmp_path):
    run, _ = scan_run
    res = subprocess.run(
        [sys.executable, "-m", "nlp_lib", "predict", f"bundle={run / 'bundle'}", "beam_size=3"],
        input="jump twice\nlook\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(res.stdout.strip().splitlines()) == 2
    src = tmp_path / "in.txt"
    src.write_text("walk\nrun thrice\n")
    out = tmp_path / "out.txt"
    res = run_cli("predict", f"bundle={run / 'bundle'}", f"input={src}", f"output={out}", "n_best=2", "beam_size=2")
    assert res.returncode == 0, res.stderr[-2000:]
    lines = out.read_text().splitlines()
    assert [line.split(" ||| ")[0] for line in lines] == ["0", "0", "1", "1"]
    res = run_cli("predict", f"bundle={run / 'bundle'}", f"input={tmp_path / 'missing.txt'}")
    assert res.returncode == 2 and "missing.txt" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.integration
def test_eval_reproduces_the_test_metrics(scan_run):
    run, metrics = scan_run
    res = run_cli("eval", f"run={run}", "split=test", "trainer.limit_test_batches=2")
    assert res.returncode == 2  # only data.* overrides
    res = run_cli("eval", f"run={run}", "split=val")
    assert res.returncode == 0, res.stderr[-2000:]
    ev = json.loads((run / "eval_val.json").read_text())
    assert {"exact_match", "bleu", "chrf", "loss"} <= set(ev) and ev["examples"] > 0
    assert ev["beam_size"] == 5  # any split decoded as the run's test was (task.test_beam_size)
    res = run_cli("eval", f"run={run}", "split=train")
    assert res.returncode == 2 and "split must be val or test, got 'train'" in res.stderr


@pytest.mark.integration
def test_eval_decodes_with_other_decoding_options(scan_run):
    """eval may change how the test decodes (beam, length penalty, output precision), not the model;
    a decoding key the run's config lacks is added and checked against the task's signature."""
    run, _ = scan_run
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["task"].pop("output_precision")  # a run from before that option
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = run_cli(
        "eval", f"run={run}", "split=val", "task.test_beam_size=2", "task.length_penalty=0.5",
        "task.output_precision=bfloat16",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    ev = json.loads((run / "eval_val.json").read_text())
    assert ev["beam_size"] == 2 and ev["examples"] > 0
    res = run_cli("eval", f"run={run}", "split=val", "task.output_precision=half")
    assert res.returncode == 2 and "task.output_precision: expected one of 'full', 'bfloat16'" in res.stderr
    res = run_cli("eval", f"run={run}", "split=val", "task.test_beam_size=!!python/object/apply:os.system [id]")
    assert (
        res.returncode == 2 and "task.test_beam_size: not a YAML value" in res.stderr and "Traceback" not in res.stderr
    )
    res = run_cli("eval", f"run={run}", "split=val", "task.label_smoothing=0.5")
    assert res.returncode == 2 and "task.test_beam_size" in res.stderr  # the message lists what is allowed


@pytest.mark.integration
def test_fine_tune_from_a_seq2seq_bundle(scan_run, tmp_path):
    run, _ = scan_run
    cfg = compose(
        "scan_seq2seq",
        [
            *TINY_SCAN,
            "trainer.limit_train_batches=2",
            f"init_from={run / 'bundle'}",
            f"run_dir={tmp_path / 'ft'}",
            "data.split=length",
        ],
    )
    metrics = train(cfg)
    assert "exact_match" in metrics["val"]
    assert (tmp_path / "ft" / "bundle" / "source.vocab.json").read_text() == (
        run / "bundle" / "source.vocab.json"
    ).read_text()


@pytest.mark.integration
def test_export_a_seq2seq_bundle_and_decode_it_in_onnxruntime(scan_run, tmp_path):
    pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    from nlp_lib.export import OnnxSeq2Seq

    run, _ = scan_run
    out = tmp_path / "onnx"
    res = run_cli("export", f"bundle={run / 'bundle'}", f"output={out}", "max_length=12")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "encoder.onnx" in res.stdout and "decoder_step.onnx" in res.stdout
    predictor = nlp_lib.load(run / "bundle")
    texts = ["jump twice", "walk left after run", "look around right thrice"]
    tokens = OnnxSeq2Seq(out).greedy([predictor.tokenizer["source"].encode(t) for t in texts], max_steps=60)
    ours = predictor.translate(texts, beam_size=1, max_length=60)
    assert [predictor.tokenizer["target"].decode(t) for t in tokens] == [o[0]["output"] for o in ours]
