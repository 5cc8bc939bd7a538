"""The run directory: where a run's files go, its lock, its ``config.yaml`` written and read back.

A run writes ``config.yaml`` (resolved, paths absolute), ``checkpoints/{best,last}.ckpt``, its
logger's curves, ``metrics.json`` (last) and ``bundle/`` into one directory, which belongs to that
run alone: :func:`hold_run_dir` locks it for the run's life, :func:`check_new_run_dir` refuses a new
run in another run's directory. ``nlp-lib train resume=`` and ``nlp-lib eval`` read a run's
``config.yaml`` back as untrusted input (:func:`read_run_config`, :func:`check_run_targets`).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from nlp_lib.cli.distributed import is_ddp_child
from nlp_lib.errors import ConfigError, RunDirError

__all__ = [
    "LOCK_NAME",
    "absolute_paths",
    "check_new_run_dir",
    "check_run_targets",
    "hold_run_dir",
    "read_run_config",
    "remove_untouched_run_dir",
    "resolve_run_dir",
    "write_run_config",
]

LOCK_NAME = ".lock"
_DATA_PATH_KEYS = ("path", "train_path", "val_path", "test_path", "cache_dir")


def resolve_run_dir(cfg: Any) -> Path:
    """The run's directory: Hydra's job directory under ``nlp-lib train`` (a sweep's job has its
    own), else ``cfg.run_dir``."""
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            return Path(HydraConfig.get().runtime.output_dir)
    except ImportError:  # pragma: no cover
        pass
    return Path(str(cfg.run_dir))


def absolute_paths(resolved: dict[str, Any]) -> None:
    """Data paths and ``init_from`` made absolute in a run's ``config.yaml``, so ``resume=`` and
    ``nlp-lib eval`` work from any directory (they were relative to where training was launched)."""

    from nlp_lib.data.text import HUB_PREFIX  # hub:NAME@SPLIT is a Hugging Face dataset, not a path

    def absolute(value: Any) -> Any:
        if not isinstance(value, str) or not value or value.startswith(HUB_PREFIX) or os.path.isabs(value):
            return value
        return os.path.abspath(os.path.expanduser(value))

    data = resolved.get("data")
    if isinstance(data, dict):
        for key in _DATA_PATH_KEYS:
            if key in data:
                data[key] = absolute(data[key])
    if "init_from" in resolved:
        resolved["init_from"] = absolute(resolved["init_from"])


def write_run_config(cfg: Any, run_dir: Path) -> None:
    """``run_dir/config.yaml``: the config resolved, with this run's directory and absolute paths
    (rank 0 only; written atomically: under torchrun, ``resume=`` has every rank read it while
    rank 0 rewrites it)."""
    from omegaconf import OmegaConf
    from pytorch_lightning.utilities import rank_zero_only

    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except Exception as e:  # noqa: BLE001 - an interpolation that cannot resolve
        raise ConfigError(f"cannot resolve the config: {e}") from None
    resolved.pop("hydra", None)
    resolved["run_dir"] = str(run_dir)
    absolute_paths(resolved)
    if rank_zero_only.rank == 0:  # DDP: only rank 0 writes files
        tmp = run_dir / f".config.yaml.{os.getpid()}"
        tmp.write_text(yaml.safe_dump(resolved, sort_keys=False))
        os.replace(tmp, run_dir / "config.yaml")


def check_new_run_dir(run_dir: Path) -> None:
    """A new run never writes into another run's directory (its checkpoints, logs and metrics would mix)."""
    from pytorch_lightning.utilities import rank_zero_only

    if rank_zero_only.rank != 0:  # the other ranks of a data-parallel run share rank 0's directory
        return
    ckpts = run_dir / "checkpoints"
    if (run_dir / "metrics.json").is_file() or (ckpts.is_dir() and any(ckpts.glob("*.ckpt"))):
        raise RunDirError(
            f"run_dir={run_dir}: another run's directory (it holds checkpoints or metrics.json); continue that "
            f"run with `nlp-lib train resume={run_dir}`, or give this one a new run_dir= or run_name="
        )


@contextlib.contextmanager
def hold_run_dir(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir`` for one run's whole life: a second launch into it (or a resume while the run
    is alive) fails at once, naming the process that holds it. The lock is an OS file lock
    (``filelock``), released by the kernel when the holder dies, so a killed run resumes freely.
    Only rank 0 of a data-parallel run takes it (the other ranks share rank 0's directory).

    Raises:
        RunDirError: another process holds the directory.
    """
    from filelock import FileLock, Timeout
    from pytorch_lightning.utilities import rank_zero_only

    if rank_zero_only.rank != 0:
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(run_dir / LOCK_NAME, timeout=0)
    owner = run_dir / f"{LOCK_NAME}.owner"
    try:
        lock.acquire()
    except Timeout:
        try:
            holder = json.loads(owner.read_text())
            who = f"process {holder.get('pid')} on {holder.get('host')} (since {holder.get('since')})"
        except (OSError, ValueError, AttributeError):
            who = "another process"
        raise RunDirError(
            f"run_dir={run_dir}: in use by {who}; wait for it to finish, or give this run another run_dir= or run_name="
        ) from None
    try:
        import socket

        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        owner.write_text(json.dumps(info))
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()
        (run_dir / LOCK_NAME).unlink(missing_ok=True)  # the run's files only, once it is over


def remove_untouched_run_dir(run_dir: Path, existed: set[str]) -> None:
    """Remove the run directory Hydra created for a launch that failed before writing anything.

    Hydra creates the directory (and its empty job log) before the config is checked; a rejected
    ``trainer.*`` value would otherwise leave an empty directory per failed launch. Anything holding
    more than empty log files (a later failure has written ``config.yaml``), or a directory that
    existed before, is kept.
    """
    if str(run_dir.resolve()) in existed or is_ddp_child():
        return
    try:
        entries = list(run_dir.iterdir())
        if not all(
            e.is_file() and (e.suffix == ".log" or e.name == LOCK_NAME) and e.stat().st_size == 0 for e in entries
        ):
            return
        for e in entries:
            e.unlink()
        run_dir.rmdir()
    except OSError:  # gone already, or not ours to remove
        pass


def read_run_config(run: Path) -> Any:
    """A run directory's ``config.yaml`` as an OmegaConf config, read as untrusted input (size,
    shape, no YAML aliases); check its targets with :func:`check_run_targets` before building any."""
    from omegaconf import OmegaConf

    from nlp_lib import trust as trust_mod
    from nlp_lib.bundle import LIMITS

    return OmegaConf.create(trust_mod.read_yaml(run, "config.yaml", LIMITS["config.yaml"], dict))


def check_run_targets(cfg: Any, run: Path, *, trust_code: bool, trust: Sequence[str]) -> None:
    """Every ``_target_`` of a run's config (overrides applied) is one a run may build
    (:data:`nlp_lib.trust.RUN_TARGETS`) or one the command line trusts."""
    from omegaconf import OmegaConf

    from nlp_lib import trust as trust_mod

    allowed = trust_mod.Trust(trust_mod.RUN_TARGETS, trust, trust_code=trust_code)
    trust_mod.check_targets(OmegaConf.to_container(cfg), allowed, str(run / "config.yaml"))
