"""Multi-node training: processes started by torchrun or srun agree on one run directory."""

import socket
import subprocess
import sys
from datetime import timedelta

import pytest
from conftest import REPO

from nlp_lib.errors import ConfigError
from nlp_lib.launch import launcher_overrides

LAUNCHER_ENV = ["TORCHELASTIC_RUN_ID", "TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_RESTART_COUNT", "WORLD_SIZE"]
LAUNCHER_ENV += ["RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_JOB_ID"]
LAUNCHER_ENV += ["SLURM_STEP_ID", "SLURM_JOB_NAME"]


@pytest.fixture
def env(monkeypatch):
    for k in LAUNCHER_ENV:
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


@pytest.mark.integration
def test_two_nodes_on_loopback_train_one_run():
    """scripts/multinode_loopback: torchrun twice (node ranks 0 and 1), one run directory, rank 0 writes."""
    res = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "multinode_loopback")], capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-6000:]
    assert "multinode_loopback: OK" in res.stdout


def test_no_launcher_changes_nothing(env):
    assert launcher_overrides([]) == []


def test_slurm_tasks_share_a_name_from_the_job(env):
    env.setenv("SLURM_NTASKS", "8")
    env.setenv("SLURM_JOB_ID", "4242")
    env.setenv("SLURM_STEP_ID", "0")
    env.setenv("SLURM_PROCID", "0")
    assert launcher_overrides([]) == ["run_name=slurm-4242.0"]
    env.setenv("SLURM_PROCID", "3")
    assert launcher_overrides([]) == ["hydra.job.name=train_rank3", "run_name=slurm-4242.0"]
    assert launcher_overrides(["run_dir=/shared/run"]) == ["hydra.job.name=train_rank3"]  # given: kept
    env.setenv("SLURM_JOB_NAME", "interactive")  # srun --pty bash: not a launch of several tasks
    assert launcher_overrides([]) == []


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_ranks_read_rank_zeros_name_from_the_agent_store(env):
    from torch.distributed import TCPStore

    port = _free_port()
    agent = TCPStore("127.0.0.1", port, is_master=True, timeout=timedelta(seconds=30), wait_for_workers=False)
    for k, v in {"TORCHELASTIC_RUN_ID": "none", "TORCHELASTIC_USE_AGENT_STORE": "True", "WORLD_SIZE": "2"}.items():
        env.setenv(k, v)
    env.setenv("MASTER_ADDR", "127.0.0.1")
    env.setenv("MASTER_PORT", str(port))
    env.setenv("RANK", "0")
    (name0,) = launcher_overrides(["trainer=ddp_cpu"])
    assert name0.startswith("run_name=20")  # rank 0's start time
    env.setenv("RANK", "1")
    assert launcher_overrides(["trainer=ddp_cpu"]) == ["hydra.job.name=train_rank1", name0]
    del agent


def test_torchrun_without_agent_store_asks_for_run_dir(env):
    for k, v in {"TORCHELASTIC_RUN_ID": "x", "TORCHELASTIC_USE_AGENT_STORE": "False", "WORLD_SIZE": "2"}.items():
        env.setenv(k, v)
    env.setenv("RANK", "1")
    with pytest.raises(ConfigError, match="run_dir"):
        launcher_overrides([])
    assert launcher_overrides(["run_dir=/shared/run"]) == ["hydra.job.name=train_rank1"]
