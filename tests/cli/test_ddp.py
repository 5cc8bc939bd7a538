"""Data-parallel training in 2 CPU processes (gloo) through the CLI: one run directory, rank 0 writes."""

import json

import pytest
import torch
from conftest import TINY_LISTOPS, run_cli


@pytest.mark.integration
def test_ddp_cpu_two_ranks_train_and_rank_zero_writes(tmp_path):
    run = tmp_path / "run"
    res = run_cli("train", "trainer=ddp_cpu", "trainer.devices=2", *TINY_LISTOPS, f"run_dir={run}", timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("finished") == 1  # one summary: rank 0's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # one run directory
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["val"]["accuracy"] <= 1
    # both ranks trained: rank 1's Hydra log sits in the same run directory, and every step
    # synchronised the two processes' gradients (DDP), so the bundle equals the best checkpoint
    assert (run / "train_ddp_process_1.log").is_file()
    from nlp_lib import bundle

    best = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    held = bundle.read(run / "bundle").state
    for k, v in held.items():
        torch.testing.assert_close(v, best["model." + k], atol=0, rtol=0)
    assert metrics["epochs"] == 2 and metrics["train"]["trees_per_s"] > 0
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 8  # 200 trees over 2 ranks: 100 each, batches of 32: 4 steps an epoch


@pytest.mark.integration
def test_a_sweep_of_ddp_jobs_runs_each_job_once_in_its_own_directory(tmp_path):
    import yaml

    sweep = tmp_path / "sweep"
    res = run_cli(
        "train",
        "-m",
        "trainer=ddp_cpu",
        "trainer.devices=2",
        *TINY_LISTOPS,
        "trainer.max_epochs=1",
        "optim.optimizer.lr=0.001,0.002",
        f"hydra.sweep.dir={sweep}",
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("finished") == 2  # one summary per job, from its rank 0
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "1", "multirun.yaml"]
    lrs = set()
    for job in ("0", "1"):
        run = sweep / job
        assert (run / "train_ddp_process_1.log").is_file()  # the job's rank 1 ran in the job's directory
        assert json.loads((run / "metrics.json").read_text())["run_dir"] == str(run)
        lrs.add(yaml.safe_load((run / "config.yaml").read_text())["optim"]["optimizer"]["lr"])
        last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
        assert last["global_step"] == 4  # 200 trees over 2 ranks, batches of 32: a DDP job, not two single ones
    assert lrs == {0.001, 0.002}
