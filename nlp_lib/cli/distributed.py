"""Lightning's data-parallel children, started by re-running our command line, run their parent's job.

Lightning's launcher (``trainer=ddp_cpu``, or ``trainer=ddp`` on one machine) starts ranks > 0 by
re-running the program with ``sys.argv[1:]``. That command line is not enough: in a sweep (``-m``)
it names every job's values, not this job's, and the recipe may have come from a
``--recipe-dir``. So before training, a job publishes itself in the environment the children
inherit: its recipe file (:data:`RECIPE_ENV`) and its overrides and run directory
(:data:`JOB_ENV`); a child's ``main()`` turns its arguments into exactly that job
(:func:`ddp_child_args`). After a job, the environment Lightning changed is put back, so the next
job of a sweep starts its own process group on a fresh port (:func:`end_distributed`).

Hydra reads its overrides from ``sys.argv``: :func:`hydra_argv` sets them for one launch.
(Outside launchers, torchrun and srun, start every rank themselves: :mod:`nlp_lib.launch`.)
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "JOB_ENV",
    "RECIPE_ENV",
    "ddp_child_args",
    "end_distributed",
    "flags_first",
    "hydra_argv",
    "is_ddp_child",
    "published_job",
]

RECIPE_ENV = "NLP_LIB_RECIPE"
JOB_ENV = "NLP_LIB_JOB"


def is_ddp_child() -> bool:
    """A rank > 0 that Lightning's launcher started by re-running our command line."""
    return "LOCAL_RANK" in os.environ and RECIPE_ENV in os.environ and JOB_ENV in os.environ


def ddp_child_args(args: list[str]) -> list[str]:
    """The job a DDP child runs: its parent job's overrides (from the environment, so a sweep's
    child runs its own job, once) in the parent's directory, with the Hydra settings Lightning
    added (its own log file name, no .hydra output)."""
    job = json.loads(os.environ[JOB_ENV])
    added = [a for a in args if a.startswith(("hydra.job.name=", "hydra.output_subdir="))]
    return [f"recipe={os.environ[RECIPE_ENV]}", *job["overrides"], f"hydra.run.dir={job['dir']}", *added]


# Hydra's flags that take a value in the next word (``--info`` one of its choices, else "all").
_FLAG_VALUES = {
    *("--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd"),
    "--experimental-rerun",
}
_INFO = ("--info", "-i")
_INFO_CHOICES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def flags_first(args: list[str]) -> list[str]:
    """``args`` with Hydra's flags (and their values) ahead of the ``key=value`` overrides, in order.

    Hydra's parser takes the overrides as one run of words: ``a=1 --cfg job b=2`` leaves ``b=2``
    unread. Users write flags anywhere (``nlp-lib train model.x=1 --cfg job``), so they move to the front.
    """
    flags, rest = [], []
    i = 0
    while i < len(args):
        word = args[i]
        if word.startswith("-"):  # an override starts with a key, "+", "++" or "~", never "-"
            flags.append(word)
            if word in _INFO:  # its value is optional: a bare --info would read the next word as one
                given = i + 1 < len(args) and args[i + 1] in _INFO_CHOICES
                flags.append(args[i + 1] if given else "all")
                i += given
            elif word in _FLAG_VALUES and i + 1 < len(args):
                flags.append(args[i + 1])
                i += 1
        else:
            rest.append(word)
        i += 1
    return flags + rest


@contextlib.contextmanager
def hydra_argv(recipe: Path, overrides: list[str], searchpath: str) -> Iterator[None]:
    """``sys.argv`` as ``@hydra.main`` reads it for one launch of ``recipe``, put back afterwards.

    Hydra flags (``-m``, ``--cfg job``) must come before the overrides (:func:`flags_first` moves
    them), so the search path goes last. ``argv[0]`` stays the real program: Lightning's DDP
    launcher re-runs it with ``argv[1:]`` for ranks > 0, and the recipe travels to them in the
    environment (:data:`RECIPE_ENV`).
    """
    old_argv = sys.argv
    os.environ[RECIPE_ENV] = str(recipe)
    sys.argv = [old_argv[0], *flags_first(overrides), f"hydra.searchpath=[{searchpath}]"]
    try:
        yield
    finally:
        sys.argv = old_argv


@contextlib.contextmanager
def published_job(job: Any) -> Iterator[None]:
    """Publish a Hydra job (``HydraConfig.get()``: its own overrides and directory) for the ranks
    Lightning's launcher starts while it trains; then :func:`end_distributed`."""
    environ = dict(os.environ)
    os.environ[JOB_ENV] = json.dumps({"overrides": list(job.overrides.task), "dir": job.runtime.output_dir})
    try:
        yield
    finally:  # the next job of a sweep (-m) starts its own DDP processes: a fresh group and port
        end_distributed(environ)


def end_distributed(environ: dict[str, str]) -> None:
    """After a job: leave its process group and restore the environment Lightning's launcher changed
    (MASTER_PORT, WORLD_SIZE...), unless an outside launcher (torchrun, srun) owns them."""
    import torch.distributed as dist

    from nlp_lib.launch import external_launcher

    if external_launcher() is not None:
        return
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    for key in set(os.environ) - set(environ):
        del os.environ[key]
    os.environ.update(environ)
