"""nlp-lib eval and predict on a finished run."""

import json

import pytest
import yaml
from conftest import TINY_LISTOPS, run_cli

from nlp_lib.cli import compose, train
from nlp_lib.data.listops import generate_listops


@pytest.mark.integration
def test_eval_reproduces_the_runs_test_metrics_and_predict_labels_inputs(tmp_path):
    run = tmp_path / "run"
    metrics = train(compose("listops_tree_lstm", [*TINY_LISTOPS, "model.dropout=0.5", f"run_dir={run}"]))
    res = run_cli("eval", f"run={run}", "split=test")
    assert res.returncode == 0, res.stderr[-2000:]
    ev = json.loads((run / "eval_test.json").read_text())
    assert abs(ev["accuracy"] - metrics["test"]["accuracy"]) < 1e-6 and ev["examples"] == 50
    assert abs(ev["loss"] - metrics["test"]["loss"]) < 1e-4

    inputs = tmp_path / "exprs.txt"
    inputs.write_text("\n".join(e.expression for e in generate_listops(5, seed=9, max_depth=3)) + "\n")
    out = tmp_path / "preds.jsonl"
    res = run_cli("predict", f"bundle={run / 'bundle'}", f"input={inputs}", f"output={out}")
    assert res.returncode == 0, res.stderr[-2000:]
    preds = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(preds) == 5 and all(p["label"] in [str(i) for i in range(10)] for p in preds)
    assert all(abs(sum(p["probs"].values()) - 1) < 1e-5 for p in preds)
    assert [p["line"] for p in preds] == [1, 2, 3, 4, 5]

    # stdin, blank lines skipped but every prediction names its line; the same answers as from the file
    lines = inputs.read_text().splitlines()
    res = run_cli("predict", f"bundle={run / 'bundle'}", stdin=f"{lines[0]}\n\n{lines[1]}\n")
    assert res.returncode == 0, res.stderr[-2000:]
    piped = [json.loads(line) for line in res.stdout.splitlines()]
    assert [(p["line"], p["input"], p["label"]) for p in piped] == [
        (1, lines[0], preds[0]["label"]),
        (3, lines[1], preds[1]["label"]),
    ]
    # a malformed tree is named by its file and line
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{lines[0]}\n\n( MAX 1 2\n")
    res = run_cli("predict", f"bundle={run / 'bundle'}", f"input={bad}")
    assert res.returncode == 2 and f"{bad}:3: " in res.stderr and "Traceback" not in res.stderr
    res = run_cli("predict", f"bundle={run}", f"input={inputs}")  # the run, not its bundle
    assert res.returncode == 2 and f"a run directory, not a bundle; its bundle is {run / 'bundle'}" in res.stderr

    # from Python: a list of inputs, answered in eval mode whatever the model's mode
    import nlp_lib

    predictor = nlp_lib.load(run / "bundle")
    predictor.model.train()
    first = predictor.predict(lines[:3])
    assert predictor.predict(lines[:3]) == first and predictor.model.training  # no dropout; mode restored
    with pytest.raises(TypeError, match="takes a list of inputs"):
        predictor.predict(lines[0])


@pytest.mark.integration
def test_eval_gives_the_loss_training_logged_for_sst_trees_with_phrase_labels(tmp_path, sst_trees):
    run = tmp_path / "sst"
    short = ["trainer.limit_train_batches=3", "trainer.max_epochs=1", "model.embeddings.path=null"]
    metrics = train(compose("sst_tree_lstm", [f"data.path={sst_trees}", *short, f"run_dir={run}"]))
    res = run_cli("eval", f"run={run}", "split=val")
    assert res.returncode == 0, res.stderr[-2000:]
    ev = json.loads((run / "eval_val.json").read_text())
    assert abs(ev["accuracy"] - metrics["val"]["accuracy"]) < 1e-6
    assert abs(ev["loss"] - metrics["val"]["loss"]) < 1e-4  # the root and the phrase terms (node_loss_weight)


@pytest.mark.integration
def test_eval_on_other_data_reads_only_the_evaluated_split(tmp_path, sst_trees):
    """Evaluation-only mode: a folder holding just a dev file (no train file) is enough, and no
    vocabulary is built from it: the bundle's words and labels are used as they are."""
    run = tmp_path / "sst"
    short = ["trainer.limit_train_batches=2", "trainer.max_epochs=1", "model.embeddings.path=null"]
    metrics = train(compose("sst_tree_lstm", [f"data.path={sst_trees}", *short, f"run_dir={run}"]))
    other = tmp_path / "other"
    other.mkdir()
    (other / "dev.txt").write_text((sst_trees / "dev.txt").read_text())  # the same trees, alone
    res = run_cli("eval", f"run={run}", "split=val", f"data.path={other}", "data.test_file=null")
    assert res.returncode == 0, res.stderr[-2000:]
    ev = json.loads((run / "eval_val.json").read_text())
    assert abs(ev["accuracy"] - metrics["val"]["accuracy"]) < 1e-6 and ev["examples"] == 1101


@pytest.mark.integration
def test_a_run_launched_with_relative_paths_evaluates_from_anywhere(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    rows = [("a truly great film", "pos"), ("wonderful acting", "pos"), ("a dull mess", "neg"), ("awful script", "neg")]
    (work / "reviews.jsonl").write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows * 10))
    res = run_cli(
        "train", "recipe=text_classifier", "data.train_path=reviews.jsonl", "data.vocab_size=40",
        "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "run_dir=run", cwd=work,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    saved = yaml.safe_load((work / "run" / "config.yaml").read_text())
    assert saved["data"]["train_path"] == str(work / "reviews.jsonl")  # absolute: the run is usable elsewhere
    res = run_cli("eval", f"run={work / 'run'}", "split=val", cwd=tmp_path)  # another directory
    assert res.returncode == 0, res.stderr[-2000:]


@pytest.mark.integration
def test_eval_and_predict_errors(tmp_path):
    res = run_cli("eval", f"run={tmp_path}")
    assert res.returncode == 2 and "not a finished run directory" in res.stderr
    res = run_cli("predict", f"bundle={tmp_path}", f"input={tmp_path}/x.txt")
    assert res.returncode == 2 and "Traceback" not in res.stderr
