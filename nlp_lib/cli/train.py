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

from nlp_lib.cli.checks import check_init_from_kind, check_run_config, check_trainer, try_optimizer
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

__all__ = ["instantiate", "print_summary", "resume_command", "train", "train_command"]

log = logging.getLogger("nlp_lib")


def instantiate(node: Any, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with errors that name the config key."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from omegaconf.errors import OmegaConfBaseException

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, NlpLibError):
            raise cause from None
        # Hydra names keys from the node it was given: "full_key: cell" is the recipe's model.cell
        raise ConfigError(f"{key}: cannot build it: {str(e).replace('full_key: ', f'full_key: {key}.')}") from None
    except OmegaConfBaseException as e:
        raise ConfigError(f"{key}: {e}") from None


def train(cfg: Any, *, resume: bool = False) -> dict[str, Any]:
    """Train the model a composed config describes, in its run directory.

    Wiring, in order: seed, data (its vocabulary and label count), model, task, trainer; then fit,
    evaluate the best checkpoint on ``val`` (and ``test`` if the data has it) and write
    ``config.yaml`` and ``metrics.json`` into the run directory.

    With ``resume=True`` it continues the run in ``cfg.run_dir`` from ``checkpoints/last.ckpt``
    (weights, optimiser, scheduler, epoch and position in it, random state).

    Returns:
        The metrics written to ``metrics.json``.

    Raises:
        RunDirError: another process holds the run directory (see :func:`_hold_run_dir`), or it
            holds another run's files.
    """
    start = time.perf_counter()
    check_trainer(cfg.trainer)  # before anything is read or written
    check_run_config(cfg)
    run_dir = resolve_run_dir(cfg)
    with hold_run_dir(run_dir):
        if not resume:
            check_new_run_dir(run_dir)
        return _train_in(cfg, run_dir, resume=resume, start=start)


def _train_in(cfg: Any, run_dir: Path, *, resume: bool, start: float) -> dict[str, Any]:
    """The body of :func:`train`, with the run directory held."""
    import pytorch_lightning as pl
    from omegaconf import OmegaConf
    from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
    from pytorch_lightning.loggers import TensorBoardLogger

    from nlp_lib.tasks.checkpoint_io import AtomicCheckpointIO

    write_run_config(cfg, run_dir)
    from pytorch_lightning.utilities import rank_zero_only

    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    data = instantiate(cfg.data, "data", seed=int(cfg.seed))
    source = None
    if cfg.get("init_from"):  # fine-tuning: the bundle's architecture, tokenizer and weights
        from nlp_lib import bundle

        source = bundle.read(
            str(cfg.init_from), trust_code=bool(cfg.get("trust_code", False)), trust=list(cfg.get("trust") or ())
        )
        check_init_from_kind(cfg, source)
        if not hasattr(data, "adopt_tokenizer"):
            raise ConfigError("init_from: this data module cannot reuse a trained model's tokenizer")
        data.adopt_tokenizer(source.tokenizer)
    data.prepare()
    # what the data decides about the model: vocabulary and label counts (seq2seq: both vocabularies)
    if hasattr(data, "model_sizes"):
        sizes = data.model_sizes()
    else:
        sizes = {"vocab_size": data.vocab_size, "num_classes": data.num_classes}
    if source is not None:
        model_cfg = OmegaConf.create({k: v for k, v in source.config.items() if k not in sizes})
        log.info(
            "init_from %s: the model is the bundle's (%s); the recipe's model group is not used",
            source.path,
            model_cfg.get("_target_"),
        )
    else:
        model_cfg = OmegaConf.masked_copy(cfg.model, [k for k in cfg.model if k != "embeddings"])
    model = instantiate(model_cfg, "model", **sizes)
    if source is not None and hasattr(data, "model_sizes"):  # seq2seq: same tokenizers, so every weight fits
        try:
            model.load_state_dict(source.state)
        except RuntimeError as e:
            raise ConfigError(f"init_from: the bundle's weights do not fit its own model config: {e}") from None
    elif source is not None:
        labels = list(getattr(data, "label_names", None) or [str(i) for i in range(data.num_classes)])
        for note in bundle.transfer(model, source, labels, data.vocab_size):
            log.info("init_from: %s", note)
    vectors = cfg.model.get("embeddings") or {}
    if (
        vectors.get("path") and source is None
    ):  # pretrained word vectors initialise the embedding (model.embeddings.path=)
        from torch import nn

        from nlp_lib.modules.embeddings import load_pretrained

        if not isinstance(getattr(model, "embedding", None), nn.Embedding):
            raise ConfigError("model.embeddings.path: this model has no word embedding (.embedding) to initialise")
        words = getattr(getattr(data, "vocab", None), "words", None)
        if words is None:
            raise ConfigError(
                "model.embeddings.path: this data has no word vocabulary to look vectors up for "
                "(a sentencepiece vocabulary's pieces are not words)"
            )
        load_pretrained(
            model.embedding,
            words,
            str(vectors.path),
            freeze=bool(vectors.get("freeze", False)),
            key="model.embeddings.path",
        )
    optimizer = instantiate(cfg.optim.optimizer, "optim.optimizer")
    scheduler = instantiate(cfg.optim.scheduler, "optim.scheduler") if cfg.optim.get("scheduler") else None
    try_optimizer(optimizer, scheduler, model, cfg.optim)
    task = instantiate(cfg.task, "task", model=model, optimizer=optimizer, scheduler=scheduler)
    if rank_zero_only.rank == 0:
        data.save(run_dir)

    monitor = str(cfg.get("monitor", "val/accuracy"))
    validating = cfg.trainer.get("limit_val_batches", 1.0) != 0
    if not validating:
        log.info("trainer.limit_val_batches=0: no validation; best.ckpt and the bundle hold the last epoch's weights")
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor=monitor if validating else None,
        mode=str(cfg.get("monitor_mode", "max")),
        save_top_k=1,
        auto_insert_metric_name=False,
    )
    # last.ckpt at every epoch end, whatever the monitored metric did (Lightning's save_last only
    # follows the best checkpoint's saves), and every `checkpoint_every_n_steps` steps below
    last_per_epoch = ModelCheckpoint(
        dirpath=run_dir / "checkpoints", filename="last", every_n_epochs=1, save_top_k=1, enable_version_counter=False
    )
    callbacks = [checkpoint, last_per_epoch, LearningRateMonitor(logging_interval="epoch")]
    freeze = int(cfg.get("freeze_encoder_steps") or 0)  # checked by check_run_config
    if freeze:
        from nlp_lib.tasks.freeze import FreezeEncoder

        callbacks.append(FreezeEncoder(freeze))
    every = int(cfg.get("checkpoint_every_n_steps", 0) or 0)
    if every > 0:  # mid-epoch last.ckpt: a killed run loses at most `every` steps
        callbacks.append(
            ModelCheckpoint(
                dirpath=run_dir / "checkpoints",
                filename="last",
                every_n_train_steps=every,
                save_top_k=1,
                enable_version_counter=False,
            )
        )
    if str(cfg.get("logger", "tensorboard")) == "csv":  # tensorboard | csv, checked by check_run_config
        from pytorch_lightning.loggers import CSVLogger

        logger = CSVLogger(save_dir=str(run_dir), name="csv", version="")
    else:
        logger = TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="", default_hp_metric=False)
    trainer = instantiate(
        cfg.trainer,
        "trainer",
        default_root_dir=str(run_dir),
        logger=logger,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    trainer.fit(task, datamodule=data, ckpt_path=str(last) if resume else None)
    fit_seconds = time.perf_counter() - start
    train_metrics = {
        k.split("/", 1)[1].removesuffix("_epoch"): float(v)
        for k, v in trainer.callback_metrics.items()
        if k.startswith("train/") and not k.endswith("_step")
    }

    metrics: dict[str, Any] = {"recipe": str(cfg.get("recipe", "")), "train": train_metrics}
    best = checkpoint.best_model_path or None
    for split in ("val", "test"):
        if split not in data.splits:
            continue
        if split == "val" and not validating:
            metrics[split] = {"skipped": "trainer.limit_val_batches=0"}
            continue
        fn = trainer.validate if split == "val" else trainer.test
        res = fn(task, datamodule=data, ckpt_path=best, verbose=False)
        if not res:  # no batches (limit_test_batches=0)
            metrics[split] = {"skipped": f"no {split} batches"}
            continue
        metrics[split] = {k.split("/", 1)[1]: float(v) for k, v in res[0].items()}
    metrics["epochs"] = int(trainer.current_epoch)
    metrics["wall_time_s"] = round(time.perf_counter() - start, 2)
    metrics["fit_time_s"] = round(fit_seconds, 2)
    metrics["best_checkpoint"] = os.path.relpath(best, run_dir) if best else None
    metrics["run_dir"] = str(run_dir)
    if trainer.is_global_zero:
        # The model now holds the best checkpoint's weights (validate/test loaded them).
        metrics["bundle"] = str(_write_bundle(run_dir / "bundle", model, model_cfg, data, cfg, metrics, sizes))
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _write_bundle(
    path: Path, model: Any, model_cfg: Any, data: Any, cfg: Any, metrics: dict[str, Any], sizes: dict[str, int]
) -> Path:
    """The importable model: constructor config, safetensors weights, tokenizer(s), labels (nlp_lib.bundle)."""
    from omegaconf import OmegaConf

    from nlp_lib import bundle

    config = OmegaConf.to_container(model_cfg, resolve=True)
    config.update(sizes)
    if hasattr(data, "tokenizers"):  # seq2seq: source and target tokenizers, no labels
        tokenizer, labels = data.tokenizers, []
    else:
        tokenizer = getattr(data, "tokenizer", None) or data.vocab
        labels = list(getattr(data, "label_names", None) or [str(i) for i in range(data.num_classes)])
    meta = {"recipe": str(cfg.get("recipe", "")), "metrics": {k: metrics.get(k) for k in ("train", "val", "test")}}
    return bundle.save(model, path, config=config, tokenizer=tokenizer, labels=labels, meta=meta)


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
