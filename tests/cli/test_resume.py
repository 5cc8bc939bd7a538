"""A run killed with SIGKILL mid-epoch resumes from its last checkpoint and ends as if never stopped.

Bit for bit: the same weights (every tensor of ``last.ckpt`` and of the bundle) and the same
validation and test metrics, for the default recipe (no dropout) and for the recipes with dropout
(sst_tree_lstm, text_classifier, scan_seq2seq with scheduled sampling too; DataLoader workers in
one of them), whose dropout masks a resume used to shift.
"""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from conftest import REPO, TINY_LISTOPS
from safetensors.torch import load_file

# Train a recipe in a child process that SIGKILLs itself at the start of a given global step.
KILLER = """
import os, signal, sys
from nlp_lib.cli import compose, train
from nlp_lib.tasks import ClassificationTask, Seq2SeqTask
kill_at = int(sys.argv[1])
def dying(step):
    def dying_step(self, batch, batch_idx):
        if self.global_step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return step(self, batch, batch_idx)
    return dying_step
for task in (ClassificationTask, Seq2SeqTask):
    task.training_step = dying(task.training_step)
train(compose(sys.argv[2], sys.argv[3:]))
"""

OVERRIDES = [*TINY_LISTOPS, "trainer.max_epochs=3", "checkpoint_every_n_steps=3"]  # 7 batches an epoch


def _python(*args, **kw):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300, env=env, **kw)


def _final_weights(run_dir):
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return ckpt["state_dict"], ckpt["global_step"]


def _kill_and_resume(tmp_path, recipe, overrides, kill_at):
    """An uninterrupted run and one SIGKILLed at step ``kill_at`` then resumed: their run dirs."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    res = _python("-m", "nlp_lib", "train", f"recipe={recipe}", *overrides, f"run_dir={whole}")
    assert res.returncode == 0, res.stderr[-2000:]
    res = _python("-c", KILLER, str(kill_at), recipe, *overrides, f"run_dir={cut}")
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    assert not (cut / "metrics.json").exists()
    res = _python("-m", "nlp_lib", "train", f"resume={cut}")
    assert res.returncode == 0, res.stderr[-2000:]
    return whole, cut


def _assert_same_run(whole, cut):
    """Bit-identical weights (last checkpoint and bundle) and the same val/test metrics."""
    a, b = json.loads((whole / "metrics.json").read_text()), json.loads((cut / "metrics.json").read_text())
    assert a["epochs"] == b["epochs"]
    for split in ("val", "test"):
        assert a.get(split) == b.get(split), split
    wa, sa = _final_weights(whole)
    wb, sb = _final_weights(cut)
    assert sa == sb and wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    ba, bb = (load_file(run / "bundle" / "model.safetensors") for run in (whole, cut))
    assert ba.keys() == bb.keys()
    for k in ba:
        assert torch.equal(ba[k], bb[k]), k


@pytest.mark.integration
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    res = _python("-m", "nlp_lib", "train", *OVERRIDES, f"run_dir={whole}")
    assert res.returncode == 0, res.stderr[-2000:]
    # global step 10 is batch 4 of epoch 2; the last checkpoint before it is step 9 (mid-epoch)
    res = _python("-c", KILLER, "10", "listops_tree_lstm", *OVERRIDES, f"run_dir={cut}")
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    assert not (cut / "metrics.json").exists()
    _, step = _final_weights(cut)
    assert step == 9
    res = _python("-m", "nlp_lib", "train", f"resume={cut}")
    assert res.returncode == 0, res.stderr[-2000:]
    a, b = json.loads((whole / "metrics.json").read_text()), json.loads((cut / "metrics.json").read_text())
    for split in ("val", "test"):
        assert a[split] == b[split], split
    wa, sa = _final_weights(whole)
    wb, sb = _final_weights(cut)
    assert sa == sb == 21
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=0, rtol=0, msg=k)


@pytest.mark.integration
def test_throughput_after_a_resume_inside_the_last_epoch_counts_from_the_resume(tmp_path):
    cut = tmp_path / "cut"
    res = _python(
        "-c", KILLER, "17", "listops_tree_lstm", *OVERRIDES, f"run_dir={cut}"
    )  # epoch 3 of 3; last checkpoint step 15
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    res = _python("-m", "nlp_lib", "train", f"resume={cut}")
    assert res.returncode == 0, res.stderr[-2000:]
    m = json.loads((cut / "metrics.json").read_text())
    # the seconds behind trees/s lie within the resumed run (they were counted from the clock's zero)
    assert m["train"]["trees_per_s"] * m["wall_time_s"] >= 32  # at least one batch of 32 trees


@pytest.mark.integration
def test_resume_errors_are_clear(tmp_path):
    res = _python("-m", "nlp_lib", "train", f"resume={tmp_path}/nowhere")
    assert res.returncode == 2 and "not a run directory" in res.stderr and "Traceback" not in res.stderr


# The third checkpoint save dies half-way through writing its file.
DIES_IN_SAVE = """
import os, signal, sys
import lightning_fabric.plugins.io.torch_io as tio
from nlp_lib.cli import compose, train
saves = []
def dying_save(checkpoint, path):
    saves.append(path)
    if len(saves) == 3:
        with open(path, "wb") as f:
            f.write(b"half a checkpoint")
            f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real(checkpoint, path)
real = tio._atomic_save
tio._atomic_save = dying_save
train(compose("listops_tree_lstm", sys.argv[1:]))
"""


@pytest.mark.integration
def test_kill_during_a_checkpoint_save_keeps_the_previous_one(tmp_path):
    run = tmp_path / "run"
    res = _python("-c", DIES_IN_SAVE, *OVERRIDES, f"run_dir={run}")
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    _, step = _final_weights(run)  # loads: the half-written file was the temporary one
    assert step == 6  # the third save (end of epoch 1, step 7) died half-way; last.ckpt is the step-6 one
    res = _python("-m", "nlp_lib", "train", f"resume={run}")
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 3
    # resuming the finished run again changes nothing (it used to re-evaluate and overwrite metrics.json)
    before = {p.name: p.stat().st_mtime_ns for p in [run / "metrics.json", *(run / "checkpoints").iterdir()]}
    res = _python("-m", "nlp_lib", "train", f"resume={run}")
    assert res.returncode == 0 and "the run has finished" in res.stderr and "init_from=" in res.stderr
    assert {p.name: p.stat().st_mtime_ns for p in [run / "metrics.json", *(run / "checkpoints").iterdir()]} == before


@pytest.mark.integration
def test_node_budget_batches_resume_mid_epoch_too(tmp_path):
    budget = [*OVERRIDES, "data.node_budget=250"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert _python("-m", "nlp_lib", "train", *budget, f"run_dir={whole}").returncode == 0
    res = _python("-c", KILLER, "8", "listops_tree_lstm", *budget, f"run_dir={cut}")
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    res = _python("-m", "nlp_lib", "train", f"resume={cut}")
    assert res.returncode == 0, res.stderr[-2000:]
    wa, sa = _final_weights(whole)
    wb, sb = _final_weights(cut)
    assert sa == sb
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=0, rtol=0, msg=k)


@pytest.mark.integration
def test_last_checkpoint_follows_every_epoch_even_without_a_new_best(tmp_path):
    from nlp_lib.cli import compose, train

    run = tmp_path / "run"
    # lr 0: the model never improves, so no new best after epoch 1; last.ckpt must still move on
    train(
        compose(
            "listops_tree_lstm", [*OVERRIDES, "checkpoint_every_n_steps=0", "optim.optimizer.lr=0", f"run_dir={run}"]
        )
    )
    _, step = _final_weights(run)
    assert step == 21


# With dropout (and scheduled sampling), a resumed run draws exactly the random numbers the
# uninterrupted one drew: kill at step 10, one step after the mid-epoch checkpoint of step 9
# (8 batches an epoch, a checkpoint every 3 steps), 2 epochs.
MID_EPOCH = ["trainer.max_epochs=2", "checkpoint_every_n_steps=3", "trainer.enable_progress_bar=false"]


@pytest.mark.integration
def test_sst_tree_lstm_with_dropout_resumes_bit_for_bit(tmp_path, sst_trees):
    trees = tmp_path / "trees"  # the first 160 / 40 real SST trees: 8 batches of 20
    trees.mkdir()
    for name, n in (("train.txt", 160), ("dev.txt", 40)):
        lines = (sst_trees / name).read_text(encoding="utf-8").splitlines(keepends=True)
        (trees / name).write_text("".join(lines[:n]), encoding="utf-8")
    overrides = [
        f"data.path={trees}",
        "data.batch_size=20",
        "model.embeddings.path=null",
        "model.cell.input_size=16",
        "model.cell.hidden_size=16",
        *MID_EPOCH,
    ]  # the recipe's dropout 0.3 and phrase-level loss
    whole, cut = _kill_and_resume(tmp_path, "sst_tree_lstm", overrides, kill_at=10)
    assert _final_weights(cut)[1] == 16
    _assert_same_run(whole, cut)


@pytest.mark.integration
def test_text_classifier_with_dropout_and_workers_resumes_bit_for_bit(tmp_path):
    good, bad = ["good", "great", "lovely", "fine"], ["bad", "dull", "awful", "poor"]
    nouns = ["film", "plot", "story", "acting", "music", "cast"]
    rows = [
        {"text": f"a {words[i % 4]} {nouns[i % 6]} and {words[(i // 4) % 4]} {nouns[(i // 6) % 6]}", "label": label}
        for i in range(65)
        for words, label in ((good, "pos"), (bad, "neg"))
    ]
    data = tmp_path / "reviews.jsonl"  # 130 rows: 117 train (8 batches of 16), 13 val
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    overrides = [
        f"data.train_path={data}",
        "data.vocab_size=40",
        "data.batch_size=16",
        "data.num_workers=1",  # batches built in a worker process
        "model.embedding_size=16",
        "model.hidden_size=16",
        *MID_EPOCH,
    ]  # the recipe's dropout 0.2
    whole, cut = _kill_and_resume(tmp_path, "text_classifier", overrides, kill_at=10)
    assert _final_weights(cut)[1] == 16
    _assert_same_run(whole, cut)


@pytest.mark.integration
def test_scan_seq2seq_with_dropout_and_scheduled_sampling_resumes_bit_for_bit(tmp_path):
    overrides = [
        "data.batch_size=16",
        "data.eval_batch_size=32",
        "model.embedding_size=16",
        "model.hidden_size=32",
        "model.teacher_forcing=0.5",  # scheduled sampling draws a coin per target position
        "task.test_beam_size=1",
        "trainer.limit_train_batches=8",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        *MID_EPOCH,
    ]  # the recipe's dropout 0.1
    whole, cut = _kill_and_resume(tmp_path, "scan_seq2seq", overrides, kill_at=10)
    assert _final_weights(cut)[1] == 16
    _assert_same_run(whole, cut)


@pytest.mark.integration
def test_streamed_seq2seq_with_workers_resumes_bit_for_bit(tmp_path):
    # data.streaming: the training pairs are read from the files every epoch, by two workers
    import random

    rng, words = random.Random(0), [f"w{i}" for i in range(60)]
    data = tmp_path / "pairs"
    data.mkdir()
    for split, n in (("train", 400), ("val", 30)):
        for lang in ("en", "de"):
            lines = (" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) for _ in range(n))
            (data / f"{split}.{lang}").write_text("\n".join(lines) + "\n")
    overrides = [
        f"data.path={data}",
        "data.test=null",
        "data.tokenizer=word",
        "data.streaming=true",
        "data.shuffle_buffer=90",
        "data.token_budget=300",
        "data.num_workers=2",
        f"data.cache_dir={tmp_path / 'cache'}",
        "model.embedding_size=16",
        "model.hidden_size=16",
        "task.max_length=12",
        *MID_EPOCH,
    ]  # the recipe's dropout 0.3
    whole, cut = _kill_and_resume(tmp_path, "multi30k_seq2seq", overrides, kill_at=10)
    steps = _final_weights(cut)[1]
    assert steps > 20  # two epochs of more than 10 batches: the kill fell inside the first
    _assert_same_run(whole, cut)
