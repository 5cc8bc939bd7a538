"""Processes started by an outside launcher (torchrun, SLURM's srun) agree on one run directory.

Lightning's own launcher (``trainer=ddp_cpu`` or ``trainer=ddp`` on one machine) re-runs the CLI in
child processes and hands them the parent's run directory. ``torchrun`` (on every node) and
``srun`` start every process themselves instead, and each composes its config at its own moment:
the default run directory, ``runs/<recipe>/<start time>``, would differ by a second between them.
So under those launchers the run's name (``run_name``, the start time by default) is decided once:

- torchrun: rank 0 publishes its start time in the TCP store of torchrun's agent (on the node of
  rank 0, at ``MASTER_ADDR:MASTER_PORT``, which every worker reaches anyway to set up DDP); every
  other rank reads it from there.
- SLURM: every task of a job step knows the job, so the name is ``slurm-<job id>.<step id>``.

``run_dir=`` or ``run_name=`` on the command line is used as given (the same on every node).
Ranks other than 0 also get a Hydra log of their own (``train_rank<R>.log``), next to rank 0's
``train.log``; everything else in the run directory is written by rank 0 alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta

from nlp_lib.errors import ConfigError

__all__ = ["external_launcher", "launcher_overrides", "RUN_NAME_FORMAT"]

RUN_NAME_FORMAT = "%Y-%m-%d_%H-%M-%S"  # conf/base.yaml's ${now:...} pattern
_STORE_TIMEOUT_S = 600  # how long a rank waits for rank 0's name (rank 0 may still be importing)


def external_launcher() -> tuple[str, int] | None:
    """``(launcher, global rank)`` when torchrun or srun started this process among several, else None."""
    if "TORCHELASTIC_RUN_ID" in os.environ:  # torch.distributed.is_torchelastic_launched()
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            return "torchrun", int(os.environ.get("RANK", "0"))
        return None
    # Lightning's SLURMEnvironment.detect(): srun started the tasks (an interactive shell is not a launcher)
    if int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1 and os.environ.get("SLURM_JOB_NAME") not in (
        "bash",
        "interactive",
    ):
        return "slurm", int(os.environ.get("SLURM_PROCID", "0"))
    return None


def launcher_overrides(overrides: Sequence[str]) -> list[str]:
    """Hydra overrides that make every process of a torchrun or srun launch use one run directory.

    Args:
        overrides: The command line's overrides (``run_dir=`` or ``run_name=`` there are kept as given).

    Returns:
        ``run_name=<shared name>`` (unless the command line names the run) and, on ranks other than
        0, ``hydra.job.name=train_rank<R>`` (a log file of their own); nothing outside such a launch.

    Raises:
        ConfigError: torchrun without its agent's store (``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``) and no
            ``run_dir=``: there is nowhere to agree on a name.
    """
    found = external_launcher()
    if found is None:
        return []
    launcher, rank = found
    out = [f"hydra.job.name=train_rank{rank}"] if rank > 0 else []
    if any(o.lstrip("+~").startswith(("run_dir=", "run_name=")) for o in overrides):
        return out
    if launcher == "slurm":
        name = f"slurm-{os.environ.get('SLURM_JOB_ID', 'job')}.{os.environ.get('SLURM_STEP_ID', '0')}"
    else:
        name = _torchrun_shared_name(rank)
    return [*out, f"run_name={name}"]


def _torchrun_shared_name(rank: int) -> str:
    """Rank 0's start time, through the TCP store that torchrun's agent hosts for the workers."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        raise ConfigError(
            "run_dir: under this torchrun (no agent store: TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1) the processes "
            "cannot agree on a run directory by themselves; give the same run_dir=... to every node"
        )
    from torch.distributed import TCPStore

    store = TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        is_master=False,
        timeout=timedelta(seconds=_STORE_TIMEOUT_S),
        wait_for_workers=False,
    )
    # a restarted attempt (torchrun --max-restarts) is a new run: a key per attempt
    key = (
        f"nlp_lib/run_name/{os.environ.get('TORCHELASTIC_RUN_ID')}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    )
    if rank == 0:
        name = datetime.now().strftime(RUN_NAME_FORMAT)
        store.set(key, name)
        return name
    try:
        return store.get(key).decode()
    except RuntimeError as e:  # DistStoreError: rank 0 never published (it failed, or is not running)
        raise ConfigError(
            f"run_dir: rank 0 did not publish the run's name within {_STORE_TIMEOUT_S} s ({e}); "
            "is rank 0 running? (or give the same run_dir=... to every node)"
        ) from None
