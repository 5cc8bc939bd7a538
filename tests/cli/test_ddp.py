"""Data-parallel training in 2 CPU processes (gloo) through the CLI: one run directory, rank 0 writes."""

import json

import torch
from conftest import TINY_LISTOPS, run_cli


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
