"""``nlp-lib train``: :func:`train`, a plain function of a composed config, and the command around it.

``nlp-lib train recipe=NAME key=value ...`` composes ``recipes/NAME.yaml`` with the config groups
in ``conf/`` and the overrides (through ``@hydra.main``: sweeps, ``--cfg job``), then calls
:func:`train`; tests call :func:`train` directly on :func:`~nlp_lib.cli.recipes.compose`'s config.
``nlp-lib train resume=RUN_DIR`` continues a run from its ``checkpoints/last.ckpt``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from nlp_lib.cli.build import (
    build_callbacks,
    build_logger,
    build_model,
    instantiate,
    model_sizes,
    read_init_from,
    with_group_nodes,
    write_bundle,
)
from nlp_lib.cli.checks import check_run_config, check_trainer, try_optimizer
from nlp_lib.cli.distributed import hydra_argv, published_job
from nlp_lib.cli.options import TRUST_KEYS, fail, key_values, trust_options
from nlp_lib.cli.recipes import CONF_SEARCHPATH, DEFAULT_RECIPE, find_recipe, take_recipe_dirs
from nlp_lib.cli.rundir import (
    check_new_run_dir,
    check_run_targets,
    hold_run_dir,
    read_run_config,
    remove_untouched_run_dir,
    resolve_run_dir,
    write_run_config,
)
from nlp_lib.errors import ConfigError, NlpLibError
from nlp_lib.launch import launcher_overrides

__all__ = ["print_summary", "resume_command", "train", "train_command"]

log = logging.getLogger("nlp_lib")


def train(cfg: Any, *, resume: bool = False) -> dict[str, Any]:
    """Train the model a composed config describes, in its run directory.

    Wiring, in order: seed, data (its vocabulary and label count), model, task, callbacks and
    logger, trainer; then fit, evaluate the best checkpoint on ``val`` (and ``test`` if the data
    has it) and write ``config.yaml``, ``metrics.json`` and the bundle into the run directory.

    With ``resume=True`` it continues the run in ``cfg.run_dir`` from ``checkpoints/last.ckpt``
    (weights, optimiser, scheduler, epoch and position in it, random state).

    Returns:
        The metrics written to ``metrics.json``.

    Raises:
        ConfigError: a value of the config is not valid (named by its key), before anything is read.
        RunDirError: another process holds the run directory (see
            :func:`~nlp_lib.cli.rundir.hold_run_dir`), or it holds another run's files.
    """
    start = time.perf_counter()
    check_trainer(cfg.trainer)  # before anything is read or written
    cfg = with_group_nodes(cfg)
    check_run_config(cfg)
    run_dir = resolve_run_dir(cfg)
    with hold_run_dir(run_dir):
        if not resume:
            check_new_run_dir(run_dir)
        return _train_in(cfg, run_dir, resume=resume, start=start)


def _train_in(cfg: Any, run_dir: Path, *, resume: bool, start: float) -> dict[str, Any]:
    """The body of :func:`train`, with the run directory held."""
    import pytorch_lightning as pl
    from pytorch_lightning.utilities import rank_zero_only

    from nlp_lib.tasks.checkpoint_io import AtomicCheckpointIO

    write_run_config(cfg, run_dir)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    data = instantiate(cfg.data, "data", seed=int(cfg.seed))
    source = read_init_from(cfg, data)  # fine-tuning: the bundle, whose tokenizer the data adopts
    data.prepare()
    sizes = model_sizes(data)
    model, model_cfg = build_model(cfg, data, sizes, source)
    optimizer = instantiate(cfg.optim.optimizer, "optim.optimizer")
    if cfg.optim.get("param_groups"):
        from omegaconf import OmegaConf

        from nlp_lib.tasks.param_groups import ParamGroups

        optimizer = ParamGroups(optimizer, OmegaConf.to_container(cfg.optim.param_groups, resolve=True))
    scheduler = instantiate(cfg.optim.scheduler, "optim.scheduler") if cfg.optim.get("scheduler") else None
    try_optimizer(optimizer, scheduler, model, cfg.optim)
    task = instantiate(cfg.task, "task", model=model, optimizer=optimizer, scheduler=scheduler)
    if rank_zero_only.rank == 0:
        data.save(run_dir)

    validating = cfg.trainer.get("limit_val_batches", 1.0) != 0
    if not validating:
        log.info("trainer.limit_val_batches=0: no validation; best.ckpt and the bundle hold the last epoch's weights")
    callbacks = build_callbacks(cfg.get("callbacks"), run_dir, validating=validating)
    if cfg.get("freeze_encoder_steps"):  # fine-tuning: a step count, checked by check_run_config
        from nlp_lib.tasks.freeze import FreezeEncoder

        callbacks.append(FreezeEncoder(int(cfg.freeze_encoder_steps)))
    trainer = instantiate(
        cfg.trainer,
        "trainer",
        default_root_dir=str(run_dir),
        logger=build_logger(cfg.get("logger"), run_dir),
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
    )
    trainer.fit(task, datamodule=data, ckpt_path=str(run_dir / "checkpoints" / "last.ckpt") if resume else None)
    fit_seconds = time.perf_counter() - start

    # the first checkpoint callback's best (conf/callbacks/: `best`); the last weights without one
    best = getattr(trainer.checkpoint_callback, "best_model_path", None) or None
    metrics: dict[str, Any] = {"recipe": str(cfg.get("recipe", "")), "train": _train_metrics(trainer)}
    metrics.update(_evaluate_best(trainer, task, data, best, validating=validating))
    metrics["epochs"] = int(trainer.current_epoch)
    metrics["wall_time_s"] = round(time.perf_counter() - start, 2)
    metrics["fit_time_s"] = round(fit_seconds, 2)
    metrics["best_checkpoint"] = os.path.relpath(best, run_dir) if best else None
    metrics["run_dir"] = str(run_dir)
    if trainer.is_global_zero:
        # The model now holds the best checkpoint's weights (validate/test loaded them).
        metrics["bundle"] = str(write_bundle(run_dir / "bundle", model, model_cfg, data, cfg, metrics, sizes))
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _train_metrics(trainer: Any) -> dict[str, float]:
    """The last epoch's training metrics (``train/loss``, ``train/trees_per_s``...) without their prefix."""
    return {
        k.split("/", 1)[1].removesuffix("_epoch"): float(v)
        for k, v in trainer.callback_metrics.items()
        if k.startswith("train/") and not k.endswith("_step")
    }


def _evaluate_best(trainer: Any, task: Any, data: Any, best: str | None, *, validating: bool) -> dict[str, Any]:
    """The ``best`` checkpoint's metrics on the data's ``val`` and ``test`` splits (the task's own)."""
    out: dict[str, Any] = {}
    for split in ("val", "test"):
        if split not in data.splits:
            continue
        if split == "val" and not validating:
            out[split] = {"skipped": "trainer.limit_val_batches=0"}
            continue
        fn = trainer.validate if split == "val" else trainer.test
        res = fn(task, datamodule=data, ckpt_path=best, verbose=False)
        if not res:  # no batches (limit_test_batches=0)
            out[split] = {"skipped": f"no {split} batches"}
            continue
        out[split] = {k.split("/", 1)[1]: float(v) for k, v in res[0].items()}
    return out


def print_summary(metrics: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"nlp-lib: {metrics.get('recipe', '')} finished", show_header=True)
    table.add_column("split")
    shown = ["accuracy", "loss"] + [
        k for k in ("exact_match", "bleu", "chrf") if any(k in (metrics.get(s) or {}) for s in ("val", "test"))
    ]
    for k in shown:
        table.add_column(k, justify="right")
    for split in ("train", "val", "test"):
        m = metrics.get(split)
        if m and "skipped" in m:
            table.add_row(split, f"skipped ({m['skipped']})", *("" for _ in shown[1:]))
        elif m:
            table.add_row(split, *(f"{m[k]:.4f}" if k in m else "-" for k in shown))
    console = Console(stderr=False)
    console.print(table)
    rates = [(k.removesuffix("_per_s"), v) for k, v in metrics.get("train", {}).items() if k.endswith("_per_s")]
    tps = rates[0][1] if rates else None
    unit = rates[0][0] if rates else ""
    if tps is not None:
        console.print(f"throughput: {tps:,.0f} {unit}/s (training, last epoch)")
    console.print(f"wall time: {metrics['wall_time_s']:.1f} s over {metrics['epochs']} epochs")
    console.print(f"run directory: {metrics['run_dir']}")


def resume_command(run_dir: str, rest: list[str]) -> int:
    """``nlp-lib train resume=<run dir>``: continue that run from ``checkpoints/last.ckpt``."""

    d = Path(run_dir)
    try:
        opts, others = key_values(rest, set(TRUST_KEYS), "train resume=")
        if others:
            raise ConfigError(
                f"resume= continues a run with its own config.yaml; drop the other arguments: {others} "
                f"(only {' and '.join(f'{k}=' for k in TRUST_KEYS)} are taken)"
            )
        if not (d / "config.yaml").is_file():
            raise ConfigError(f"resume={run_dir}: no config.yaml there (not a run directory)")
        if not (d / "checkpoints" / "last.ckpt").is_file():
            raise ConfigError(f"resume={run_dir}: no checkpoints/last.ckpt to continue from")
        if (d / "metrics.json").is_file():  # written last: the run has finished
            print(
                f"nlp-lib: resume={run_dir}: the run has finished (its metrics.json is written); nothing to do. "
                f"To train it further, start a new run with init_from={d / 'bundle'}",
                file=sys.stderr,
            )
            return 0
        trusted = trust_options(opts)
        cfg = read_run_config(d)
        check_run_targets(cfg, d, **trusted)
        # what this command line trusts, not what the (possibly handed-over) config.yaml says
        cfg.trust_code, cfg.trust = trusted["trust_code"], list(trusted["trust"])
        cfg.run_dir = str(d.resolve())
        metrics = train(cfg, resume=True)
    except NlpLibError as e:
        return fail(e)
    from pytorch_lightning.utilities import rank_zero_only

    if rank_zero_only.rank == 0:  # torchrun / srun: every rank resumes, rank 0 reports
        print_summary(metrics)
    return 0


def train_command(args: list[str]) -> int:
    recipe = DEFAULT_RECIPE
    rest: list[str] = []
    resume = None
    try:
        args = take_recipe_dirs(args)
    except NlpLibError as e:
        return fail(e)
    for a in args:
        if a.startswith("recipe="):
            recipe = a.split("=", 1)[1]
        elif a.startswith("resume="):
            resume = a.split("=", 1)[1]
        else:
            rest.append(a)
    if resume is not None:
        return resume_command(resume, rest)
    try:
        path = find_recipe(recipe)
        # torchrun / srun: every process uses rank 0's run directory (nlp_lib/launch.py)
        rest = [*rest, *launcher_overrides(rest)]
    except NlpLibError as e:
        return fail(e)

    import hydra

    @hydra.main(version_base="1.3", config_path=str(path.parent), config_name=path.stem)
    def _hydra_train(cfg: Any) -> None:
        from hydra.core.hydra_config import HydraConfig
        from pytorch_lightning.utilities import rank_zero_only

        job = HydraConfig.get()
        with published_job(job):  # for the ranks Lightning's launcher starts (nlp_lib/cli/distributed.py)
            try:
                metrics = train(cfg)
            except NlpLibError as e:
                remove_untouched_run_dir(Path(job.runtime.output_dir), existed)
                raise SystemExit(fail(e)) from None
        if rank_zero_only.rank == 0:
            print_summary(metrics)

    # A run directory named on the command line that exists already is never removed on failure.
    existed = {str(Path(a.split("=", 1)[1]).resolve()) for a in rest if a.startswith("run_dir=")}
    existed = {d for d in existed if Path(d).exists()}

    with hydra_argv(path, rest, CONF_SEARCHPATH):
        try:
            _hydra_train()
        except SystemExit as e:
            return int(e.code or 0) if not isinstance(e.code, str) else fail(Exception(e.code))
    return 0
