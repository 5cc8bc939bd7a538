"""The ``nlp-lib`` command: ``train``, ``recipes``; Hydra composition and the run directory.

``nlp-lib train recipe=NAME key=value ...`` composes ``recipes/NAME.yaml`` with the config groups
in ``conf/`` and the overrides, then calls :func:`train`. :func:`train` is a plain function of a
composed config (tests call it directly); only this module and ``conf/`` know about Hydra.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from nlp_lib.constraints import NonNegativeInt
from nlp_lib.errors import ConfigError, NlpLibError, RunDirError
from nlp_lib.launch import launcher_overrides
from nlp_lib.schema import check_call

__all__ = ["main", "train", "compose", "recipe_dirs", "list_recipes", "DEFAULT_RECIPE"]

log = logging.getLogger("nlp_lib")

DEFAULT_RECIPE = "listops_tree_lstm"
CONF_SEARCHPATH = "pkg://nlp_lib.conf"

USAGE = """\
usage: nlp-lib <command> [arguments]

commands:
  train [recipe=NAME] [KEY=VALUE ...]   train a recipe (default: {default}); any Hydra override,
                                        --multirun / -m for sweeps (each job gets its own run dir)
  train resume=RUN_DIR                  continue a killed run from its checkpoints/last.ckpt
  predict bundle=DIR input=FILE         a label and probabilities per input line (text or tree),
                                        a label per token for a tagger;
                                        seq2seq: one output per line from FILE or stdin (input=-),
                                        [beam_size=5] [n_best=N: "i ||| output ||| score"] [output=FILE]
  eval run=RUN_DIR [split=val|test]     metrics of a run's model on a split (data.* overrides allowed)
  export bundle=DIR [output=DIR]        ONNX (sequence, seq2seq and tree models), checked in onnxruntime
  recipes                               list the recipes with a one-line description
  recipes show NAME [KEY=VALUE ...]     print a recipe's composed config
  recipes cp NAME DEST                  copy a recipe to edit; run it with --recipe-dir DEST or recipe=FILE
  --help                                this message

examples:
  nlp-lib train                                   # ListOps Tree-LSTM on generated data
  nlp-lib train recipe=sst_tree_lstm data.path=path/to/sst/trees
  nlp-lib train trainer.max_epochs=3 model.cell.hidden_size=64 run_dir=runs/mine
  nlp-lib train -m optim.optimizer.lr=1e-3,3e-3   # a sweep
  nlp-lib train recipe=scan_seq2seq data.split=length
  echo "jump twice after walk" | nlp-lib predict bundle=runs/scan_seq2seq/<run>/bundle
  nlp-lib train --cfg job                         # print the composed config and exit
"""


# ----------------------------------------------------------------------------- recipes


_EXTRA_RECIPE_DIRS: list[Path] = []  # --recipe-dir DIR (searched first)


def recipe_dirs() -> list[Path]:
    """Directories searched for recipes: ``--recipe-dir`` ones first, then the package's ``recipes/``."""
    return [*_EXTRA_RECIPE_DIRS, Path(str(resources.files("nlp_lib.recipes")))]


def list_recipes() -> dict[str, str]:
    """Recipe name to its one-line description, sorted by name."""
    out: dict[str, str] = {}
    for d in recipe_dirs():
        for f in sorted(d.glob("*.yaml")):
            try:
                desc = (yaml.safe_load(f.read_text(encoding="utf-8")) or {}).get("description", "")
            except yaml.YAMLError as e:
                raise ConfigError(f"{f}: not valid YAML: {e}") from None
            out.setdefault(f.stem, str(desc).strip().splitlines()[0] if desc else "")
    return dict(sorted(out.items()))


def _find_recipe(name: str) -> Path:
    if name.endswith((".yaml", ".yml")):  # a recipe file given by path
        f = Path(name)
        if not f.is_file():
            raise ConfigError(f"recipe={name}: no such file")
        return f.resolve()
    for d in recipe_dirs():
        f = d / f"{name}.yaml"
        if f.is_file():
            return f
    known = ", ".join(list_recipes()) or "(none)"
    raise ConfigError(f"recipe={name}: no such recipe; known recipes: {known}")


def compose(recipe: str = DEFAULT_RECIPE, overrides: Sequence[str] = ()):  # noqa: ANN201
    """Compose a recipe with overrides into a config, without running it (tests, notebooks).

    Raises:
        ConfigError: Unknown recipe, or an override Hydra rejects (e.g. a key that does not exist).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    path = _find_recipe(recipe)
    try:
        with initialize_config_dir(config_dir=str(path.parent), version_base="1.3"):
            return hydra_compose(config_name=path.stem, overrides=[f"hydra.searchpath=[{CONF_SEARCHPATH}]", *overrides])
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"recipe={recipe}: {e}") from None


# ----------------------------------------------------------------------------- training


def _instantiate(node: Any, key: str, **kwargs: Any) -> Any:
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


def _model_kind(target: Any) -> str | None:
    """What a model class is for, as the recipes' data and tasks see it (``None``: a class we do not know)."""
    from nlp_lib.models import Seq2Seq, SequenceClassifier, SequenceTagger, TreeClassifier
    from nlp_lib.schema import returned_class

    if not isinstance(target, str) or not target:
        return None
    cls = returned_class(target)  # None for a user's class that does not import here: building it will say
    kinds = [
        (TreeClassifier, "tree classifier"),
        (Seq2Seq, "seq2seq model"),
        (SequenceTagger, "sequence tagger"),
        (SequenceClassifier, "sequence classifier"),
    ]
    return next((kind for base, kind in kinds if cls is not None and issubclass(cls, base)), None)


def _check_init_from_kind(cfg: Any, source: Any) -> None:
    """A bundle fine-tunes only through a recipe that trains its kind of model (data, task, batches)."""
    have, want = _model_kind(source.config.get("_target_")), _model_kind(cfg.model.get("_target_"))
    if have and want and have != want:
        raise ConfigError(
            f"init_from: {source.path} holds a {have} ({source.config.get('_target_')}), but recipe "
            f"{cfg.get('recipe')} trains a {want}; fine-tune it with a recipe for its kind "
            f"(`nlp-lib recipes` lists them), e.g. its own recipe with init_from= and new data paths"
        )


def _try_optimizer(optimizer: Any, scheduler: Any, model: Any, optim: Any) -> None:
    """Build the optimiser (and scheduler) once now: a bad value (``optim.optimizer.lr=abc``) is named
    by its config key here, not in a traceback from inside Lightning's fit."""

    def fail(key: str, e: Exception) -> ConfigError:
        values = {k: v for k, v in optim[key].items() if not str(k).startswith("_")}
        return ConfigError(f"optim.{key}: cannot build it from {values}: {e}")

    try:
        probe = optimizer(model.parameters())
    except (TypeError, ValueError, KeyError) as e:
        raise fail("optimizer", e) from None
    if scheduler is not None:
        try:
            scheduler(probe)
        except (TypeError, ValueError, KeyError) as e:
            raise fail("scheduler", e) from None


def _resolve_run_dir(cfg: Any) -> Path:
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            return Path(HydraConfig.get().runtime.output_dir)
    except ImportError:  # pragma: no cover
        pass
    return Path(str(cfg.run_dir))


_DATA_PATH_KEYS = ("path", "train_path", "val_path", "test_path", "cache_dir")


def _absolute_paths(resolved: dict[str, Any]) -> None:
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


def _check_new_run_dir(run_dir: Path) -> None:
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


def _run_options(
    *,
    seed: int,
    recipe: str,
    run_name: str,
    run_dir: str,
    monitor: str,
    monitor_mode: Literal["min", "max"],
    checkpoint_every_n_steps: NonNegativeInt,
    logger: Literal["tensorboard", "csv"],
    init_from: str | None,
    freeze_encoder_steps: NonNegativeInt,
    trust: list[str],
    trust_code: bool,
    description: str = "",
    data: Any = None,
    model: Any = None,
    task: Any = None,
    optim: Any = None,
    trainer: Any = None,
    precision: Any = None,
) -> None:
    """The top-level keys of a run's config and what each accepts (checked by :func:`check_run_config`)."""


def check_run_config(cfg: Any) -> None:
    """Every key of a composed config checked against what reads it, before anything is read:
    top-level keys against :func:`_run_options`, every ``_target_`` (data, model and its cells,
    task, optimiser, scheduler, trainer) against its target's signature (:mod:`nlp_lib.schema`).

    Raises:
        ConfigError: naming the key, what it expects and what it got.
    """
    from omegaconf import OmegaConf

    from nlp_lib.schema import check_call, check_config

    try:
        plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except Exception as e:  # noqa: BLE001 - an interpolation that cannot resolve
        raise ConfigError(f"cannot resolve the config: {e}") from None
    plain.pop("hydra", None)
    top = {k: v for k, v in plain.items() if k in _TOP_LEVEL}
    check_call(_run_options, top, "config")
    check_config(plain.get("data"), "data", given=("seed",))
    check_config(
        plain.get("model"),
        "model",
        given=("vocab_size", "num_classes", "src_vocab_size", "tgt_vocab_size"),
        skip=("embeddings",),
    )
    check_config(plain.get("task"), "task", given=("model", "optimizer", "scheduler"))
    optim = plain.get("optim") or {}
    for part in ("optimizer", "scheduler"):
        check_config(optim.get(part), f"optim.{part}", given=("params", "optimizer"))
    check_config(plain.get("trainer"), "trainer", given=("default_root_dir", "logger", "callbacks", "plugins"))
    _check_model_fits_data(plain)


def _check_model_fits_data(plain: dict[str, Any]) -> None:
    """The model is of a kind the data trains (``feeds`` of the DataModule a data target builds)."""
    from nlp_lib.schema import returned_class

    model_target = (plain.get("model") or {}).get("_target_")
    data_target = (plain.get("data") or {}).get("_target_")
    if plain.get("init_from") or not isinstance(data_target, str):
        return  # fine-tuning: the bundle's kind is checked against the recipe's when it is read
    kind = _model_kind(model_target)
    feeds = getattr(returned_class(data_target), "feeds", None)
    if kind and feeds and kind not in feeds:
        raise ConfigError(
            f"model: a {kind} ({model_target}) cannot train on data._target_={data_target}, which feeds a "
            f"{' or a '.join(feeds)}; choose a data group for it (data=...), or a recipe of its kind (`nlp-lib recipes`)"
        )


_TOP_LEVEL = frozenset(n for n in inspect.signature(_run_options).parameters)


def _check_trainer(trainer: Any) -> None:
    """Precision, clipping and accumulation values Lightning would reject, named by their config key.

    Raises:
        ConfigError: ``trainer.precision``, ``trainer.gradient_clip_val``,
            ``trainer.gradient_clip_algorithm`` or ``trainer.accumulate_grad_batches`` is not valid.
    """
    precision = trainer.get("precision")
    if precision is not None:
        try:
            from lightning_fabric.connector import _convert_precision_to_unified_args
        except ImportError:  # pragma: no cover - another Lightning: it checks the value itself
            pass
        else:
            try:
                _convert_precision_to_unified_args(precision)
            except ValueError:
                raise ConfigError(
                    f"trainer.precision: {precision!r} is not a precision; choose one with "
                    "precision=32-true | bf16-mixed | 16-mixed (conf/precision/), or set trainer.precision= to "
                    "another of Lightning's values (bf16-true, 16-true, 64-true)"
                ) from None
    clip = trainer.get("gradient_clip_val")
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, int | float) or clip < 0):
        raise ConfigError(f"trainer.gradient_clip_val: must be a number >= 0 or null (no clipping), got {clip!r}")
    algorithm = trainer.get("gradient_clip_algorithm")
    if algorithm is not None and algorithm not in ("norm", "value"):
        raise ConfigError(f"trainer.gradient_clip_algorithm: must be norm or value, got {algorithm!r}")
    accumulate = trainer.get("accumulate_grad_batches", 1)
    if isinstance(accumulate, bool) or not isinstance(accumulate, int) or accumulate < 1:
        raise ConfigError(f"trainer.accumulate_grad_batches: must be an integer >= 1, got {accumulate!r}")
    # counts Lightning checks only after the data is read (an AssertionError or TypeError with a traceback)
    counts = {
        "max_epochs": -1,
        "min_epochs": 0,
        "max_steps": -1,
        "num_nodes": 1,
        "log_every_n_steps": 1,
        "check_val_every_n_epoch": 1,
    }
    for key, low in counts.items():
        value = trainer.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ConfigError(f"trainer.{key}: must be an integer >= {low} (or null), got {value!r}")


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
    _check_trainer(cfg.trainer)  # before anything is read or written
    check_run_config(cfg)
    run_dir = _resolve_run_dir(cfg)
    with _hold_run_dir(run_dir):
        if not resume:
            _check_new_run_dir(run_dir)
        return _train_in(cfg, run_dir, resume=resume, start=start)


_LOCK_NAME = ".lock"


@contextlib.contextmanager
def _hold_run_dir(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir`` for one run's whole life: a second launch into it (or a resume while the run
    is alive) fails at once, naming the process that holds it. The lock is an OS file lock
    (``filelock``), released by the kernel when the holder dies, so a killed run resumes freely.
    Only rank 0 of a data-parallel run takes it (the other ranks share rank 0's directory)."""
    from filelock import FileLock, Timeout
    from pytorch_lightning.utilities import rank_zero_only

    if rank_zero_only.rank != 0:
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(run_dir / _LOCK_NAME, timeout=0)
    owner = run_dir / f"{_LOCK_NAME}.owner"
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
        (run_dir / _LOCK_NAME).unlink(missing_ok=True)  # the run's files only, once it is over


def _train_in(cfg: Any, run_dir: Path, *, resume: bool, start: float) -> dict[str, Any]:
    """The body of :func:`train`, with the run directory held."""
    import pytorch_lightning as pl
    from omegaconf import OmegaConf
    from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
    from pytorch_lightning.loggers import TensorBoardLogger

    from nlp_lib.tasks.checkpoint_io import AtomicCheckpointIO

    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except Exception as e:  # an interpolation that cannot resolve
        raise ConfigError(f"cannot resolve the config: {e}") from None
    resolved.pop("hydra", None)
    resolved["run_dir"] = str(run_dir)
    _absolute_paths(resolved)
    from pytorch_lightning.utilities import rank_zero_only

    if rank_zero_only.rank == 0:  # DDP: only rank 0 writes files
        # atomically: under torchrun, `resume=` has every rank read config.yaml while rank 0 rewrites it
        tmp = run_dir / f".config.yaml.{os.getpid()}"
        tmp.write_text(yaml.safe_dump(resolved, sort_keys=False))
        os.replace(tmp, run_dir / "config.yaml")

    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    data = _instantiate(cfg.data, "data", seed=int(cfg.seed))
    source = None
    if cfg.get("init_from"):  # fine-tuning: the bundle's architecture, tokenizer and weights
        from nlp_lib import bundle

        source = bundle.read(
            str(cfg.init_from), trust_code=bool(cfg.get("trust_code", False)), trust=list(cfg.get("trust") or ())
        )
        _check_init_from_kind(cfg, source)
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
    model = _instantiate(model_cfg, "model", **sizes)
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
    optimizer = _instantiate(cfg.optim.optimizer, "optim.optimizer")
    scheduler = _instantiate(cfg.optim.scheduler, "optim.scheduler") if cfg.optim.get("scheduler") else None
    _try_optimizer(optimizer, scheduler, model, cfg.optim)
    task = _instantiate(cfg.task, "task", model=model, optimizer=optimizer, scheduler=scheduler)
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
    trainer = _instantiate(
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


def _print_summary(metrics: dict[str, Any]) -> None:
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


# ----------------------------------------------------------------------------- entry points


def _fail(e: BaseException) -> int:
    print(f"nlp-lib: error: {e}", file=sys.stderr)
    return 2


def _resume_command(run_dir: str, rest: list[str]) -> int:
    """``nlp-lib train resume=<run dir>``: continue that run from ``checkpoints/last.ckpt``."""

    d = Path(run_dir)
    try:
        opts, others = _key_values(rest, set(_TRUST_KEYS), "train resume=")
        if others:
            raise ConfigError(
                f"resume= continues a run with its own config.yaml; drop the other arguments: {others} "
                f"(only {' and '.join(f'{k}=' for k in _TRUST_KEYS)} are taken)"
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
        trusted = _trust_options(opts)
        cfg = _read_run_config(d)
        _check_run_targets(cfg, d, **trusted)
        # what this command line trusts, not what the (possibly handed-over) config.yaml says
        cfg.trust_code, cfg.trust = trusted["trust_code"], list(trusted["trust"])
        cfg.run_dir = str(d.resolve())
        metrics = train(cfg, resume=True)
    except NlpLibError as e:
        return _fail(e)
    from pytorch_lightning.utilities import rank_zero_only

    if rank_zero_only.rank == 0:  # torchrun / srun: every rank resumes, rank 0 reports
        _print_summary(metrics)
    return 0


def _take_recipe_dirs(args: list[str]) -> list[str]:
    """Remove ``--recipe-dir DIR`` (or ``--recipe-dir=DIR``) from ``args`` and search those dirs first."""
    rest, it = [], iter(args)
    for a in it:
        if a == "--recipe-dir" or a.startswith("--recipe-dir="):
            d = a.split("=", 1)[1] if "=" in a else next(it, None)
            if d is None or not Path(d).is_dir():
                raise ConfigError(f"--recipe-dir: {d!r} is not a directory")
            _EXTRA_RECIPE_DIRS.insert(0, Path(d).resolve())
        else:
            rest.append(a)
    return rest


def _train_command(args: list[str]) -> int:
    recipe = DEFAULT_RECIPE
    rest: list[str] = []
    resume = None
    try:
        args = _take_recipe_dirs(args)
    except NlpLibError as e:
        return _fail(e)
    for a in args:
        if a.startswith("recipe="):
            recipe = a.split("=", 1)[1]
        elif a.startswith("resume="):
            resume = a.split("=", 1)[1]
        else:
            rest.append(a)
    if resume is not None:
        return _resume_command(resume, rest)
    try:
        path = _find_recipe(recipe)
        # torchrun / srun: every process uses rank 0's run directory (nlp_lib/launch.py)
        rest = [*rest, *launcher_overrides(rest)]
    except NlpLibError as e:
        return _fail(e)

    import hydra

    @hydra.main(version_base="1.3", config_path=str(path.parent), config_name=path.stem)
    def _hydra_train(cfg: Any) -> None:
        from hydra.core.hydra_config import HydraConfig
        from pytorch_lightning.utilities import rank_zero_only

        # This job's own overrides and directory, for the ranks Lightning's launcher starts: they
        # re-run the command line, which in a sweep (-m) names every job's values, not this one's.
        job = HydraConfig.get()
        environ = dict(os.environ)
        os.environ[_JOB_ENV] = json.dumps({"overrides": list(job.overrides.task), "dir": job.runtime.output_dir})
        try:
            metrics = train(cfg)
        except NlpLibError as e:
            _remove_untouched_run_dir(Path(job.runtime.output_dir), existed)
            raise SystemExit(_fail(e)) from None
        finally:  # the next job of a sweep (-m) starts its own DDP processes: a fresh group and port
            _end_distributed(environ)
        if rank_zero_only.rank == 0:
            _print_summary(metrics)

    # A run directory named on the command line that exists already is never removed on failure.
    existed = {str(Path(a.split("=", 1)[1]).resolve()) for a in rest if a.startswith("run_dir=")}
    existed = {d for d in existed if Path(d).exists()}

    old_argv = sys.argv
    # Hydra flags (-m, --cfg job) must come before the overrides, so ours goes last. argv[0] stays
    # the real program: Lightning's DDP launcher re-runs it with argv[1:] for ranks > 0, and the
    # recipe travels to them in the environment (see main()).
    os.environ[_RECIPE_ENV] = str(path)
    sys.argv = [old_argv[0], *rest, f"hydra.searchpath=[{CONF_SEARCHPATH}]"]
    try:
        _hydra_train()
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else _fail(Exception(e.code))
    finally:
        sys.argv = old_argv
    return 0


_RECIPE_ENV = "NLP_LIB_RECIPE"


def _remove_untouched_run_dir(run_dir: Path, existed: set[str]) -> None:
    """Remove the run directory Hydra created for a launch that failed before writing anything.

    Hydra creates the directory (and its empty job log) before the config is checked; a rejected
    ``trainer.*`` value would otherwise leave an empty directory per failed launch. Anything holding
    more than empty log files (a later failure has written ``config.yaml``), or a directory that
    existed before, is kept.
    """
    if str(run_dir.resolve()) in existed or _is_ddp_child():
        return
    try:
        entries = list(run_dir.iterdir())
        if not all(
            e.is_file() and (e.suffix == ".log" or e.name == _LOCK_NAME) and e.stat().st_size == 0 for e in entries
        ):
            return
        for e in entries:
            e.unlink()
        run_dir.rmdir()
    except OSError:  # gone already, or not ours to remove
        pass


def _end_distributed(environ: dict[str, str]) -> None:
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


_JOB_ENV = "NLP_LIB_JOB"


def _is_ddp_child() -> bool:
    """A rank > 0 that Lightning's launcher started by re-running our command line."""
    return "LOCAL_RANK" in os.environ and _RECIPE_ENV in os.environ and _JOB_ENV in os.environ


def _ddp_child_args(args: list[str]) -> list[str]:
    """The job a DDP child runs: its parent job's overrides (from the environment, so a sweep's
    child runs its own job, once) in the parent's directory, with the Hydra settings Lightning
    added (its own log file name, no .hydra output)."""
    job = json.loads(os.environ[_JOB_ENV])
    added = [a for a in args if a.startswith(("hydra.job.name=", "hydra.output_subdir="))]
    return [f"recipe={os.environ[_RECIPE_ENV]}", *job["overrides"], f"hydra.run.dir={job['dir']}", *added]


def _quiet_dependencies() -> None:
    """Drop two notices every run printed that are not about the run: Lightning's advert for its
    cloud logger and a deprecation inside Lightning's own code (its ``LeafSpec`` check on torch 2.13)."""
    import warnings

    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")

    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_no_adverts)  # the same filter object: added once however often


def _no_adverts(record: logging.LogRecord) -> bool:
    return "litlogger" not in record.getMessage()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nlp-lib`` and ``python -m nlp_lib``."""
    args = list(sys.argv[1:] if argv is None else argv)
    _quiet_dependencies()
    if _is_ddp_child():
        return _train_command(_ddp_child_args(args))  # the recipe by its file path
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE.format(default=DEFAULT_RECIPE))
        return 0
    cmd, rest = args[0], args[1:]
    if cmd == "train":
        return _train_command(rest)
    if cmd == "recipes":
        return _recipes_command(rest)
    if cmd == "predict":
        return _predict_command(rest)
    if cmd == "eval":
        return _eval_command(rest)
    if cmd == "export":
        return _export_command(rest)
    return _fail(ConfigError(f"unknown command {cmd!r}; see 'nlp-lib --help'"))


def _recipes_command(args: list[str]) -> int:
    """``recipes`` (list), ``recipes show NAME [overrides]``, ``recipes cp NAME DEST``."""
    try:
        args = _take_recipe_dirs(args)
        if not args:
            recipes = list_recipes()
            width = max(map(len, recipes), default=0)
            for name, desc in recipes.items():
                print(f"{name:<{width}}  {desc}")
            return 0
        sub, rest = args[0], args[1:]
        if sub == "show" and rest:
            from omegaconf import OmegaConf

            cfg = compose(rest[0], rest[1:])
            print(OmegaConf.to_yaml(cfg), end="")
            return 0
        if sub == "cp" and len(rest) == 2:
            import shutil

            src, dest = _find_recipe(rest[0]), Path(rest[1])
            target = dest if dest.suffix in (".yaml", ".yml") else dest / src.name
            if target.exists():
                raise ConfigError(f"recipes cp: {target} exists; not overwriting it")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            print(
                f"copied {src.name} to {target}; edit it, then: nlp-lib train --recipe-dir {target.parent} "
                f"recipe={target.stem}   (or recipe={target})"
            )
            return 0
        raise ConfigError("usage: nlp-lib recipes [show NAME [KEY=VALUE ...] | cp NAME DEST]")
    except NlpLibError as e:
        return _fail(e)


def _key_values(args: list[str], allowed: set[str], command: str) -> tuple[dict[str, str], list[str]]:
    """``key=value`` arguments of a command: ``allowed`` keys, and the rest (config overrides)."""
    known, rest = {}, []
    for a in args:
        key, sep, value = a.partition("=")
        if not sep:
            raise ConfigError(f"{command}: expected KEY=VALUE, got {a!r}")
        if key in allowed:
            known[key] = value
        else:
            rest.append(a)
    return known, rest


_TRUST_KEYS = ("trust_code", "trust")


def _trust_options(opts: dict[str, str]) -> dict[str, Any]:
    """``trust_code=true|false`` and ``trust=pkg.a,pkg.b`` of a command line, as :func:`nlp_lib.load` takes them."""
    value = str(opts.get("trust_code", "false")).strip().lower()
    if value not in ("true", "false"):
        raise ConfigError(f"trust_code: must be true or false, got {opts['trust_code']!r}")
    names = [t.strip() for t in str(opts.get("trust", "")).strip("[]").split(",") if t.strip()]
    return {"trust_code": value == "true", "trust": names}


def _read_run_config(run: Path) -> Any:
    """A run directory's ``config.yaml`` as an OmegaConf config, read as untrusted input (size,
    shape, no YAML aliases); check its targets with :func:`_check_run_targets` before building any."""
    from omegaconf import OmegaConf

    from nlp_lib import trust as trust_mod
    from nlp_lib.bundle import LIMITS

    return OmegaConf.create(trust_mod.read_yaml(run, "config.yaml", LIMITS["config.yaml"], dict))


def _check_run_targets(cfg: Any, run: Path, *, trust_code: bool, trust: Sequence[str]) -> None:
    """Every ``_target_`` of a run's config (overrides applied) is one a run may build
    (:data:`nlp_lib.trust.RUN_TARGETS`) or one the command line trusts."""
    from omegaconf import OmegaConf

    from nlp_lib import trust as trust_mod

    allowed = trust_mod.Trust(trust_mod.RUN_TARGETS, trust, trust_code=trust_code)
    trust_mod.check_targets(OmegaConf.to_container(cfg), allowed, str(run / "config.yaml"))


def _predict_command(args: list[str]) -> int:
    """``nlp-lib predict bundle=DIR [input=FILE|-] [output=FILE] ...``: labels, or translations for seq2seq."""
    try:
        opts, rest = _key_values(
            args,
            {
                "bundle",
                "input",
                "output",
                "batch_size",
                "beam_size",
                "n_best",
                "max_length",
                "length_penalty",
                *_TRUST_KEYS,
            },
            "predict",
        )
        if rest or "bundle" not in opts:
            raise ConfigError(
                "usage: nlp-lib predict bundle=<run dir>/bundle [input=<file>|-] [output=<file>] [batch_size=64]\n"
                "       (input: a file, .jsonl with a 'text' field or one input a line; - or none: stdin)\n"
                "       seq2seq: [beam_size=5] [n_best=1] [max_length=200] [length_penalty=1.0]"
            )
        import nlp_lib
        from nlp_lib.bundle import parse_tree_input
        from nlp_lib.models.seq2seq import Seq2Seq
        from nlp_lib.models.tree_classifier import TreeClassifier

        _check_output(opts.get("output"))  # before any prediction is computed
        model = nlp_lib.load(opts["bundle"], **_trust_options(opts))
        decoding = {
            k: opts[k] for k in ("batch_size", "beam_size", "n_best", "max_length", "length_penalty") if k in opts
        }
        if isinstance(model, Seq2Seq):
            return _translate(model, opts, check_call(model.translate.__call__, decoding, "predict"))
        wrong = sorted(set(decoding) - {"batch_size"})
        if wrong:
            raise ConfigError(
                f"predict: {', '.join(wrong)} apply to seq2seq models only; this bundle holds a classifier"
            )
        options = check_call(model.predict.__call__, decoding, "predict")
        source = opts.get("input", "-")
        records = _read_inputs(source)
        inputs: list[Any] = [x for _, x in records]
        if isinstance(model, TreeClassifier):  # parsed here, so a bad tree names its line
            inputs = [_at_line(parse_tree_input, x, source, n) for n, x in records]
        preds = model.predict(inputs, **options)
    except NlpLibError as e:
        return _fail(e)
    lines = [
        json.dumps({"line": n, "input": x, **p}, ensure_ascii=False) for (n, x), p in zip(records, preds, strict=True)
    ]
    _write_lines(lines, opts.get("output"), "predictions")
    return 0


def _at_line(fn: Callable[[str], Any], x: str, source: str, line: int) -> Any:
    """``fn(x)``, with an error in it named by the input's file (or stdin) and line."""
    from nlp_lib.errors import DataError

    try:
        return fn(x)
    except DataError as e:
        raise DataError(e.message, path="<stdin>" if source == "-" else source, line=line) from None


def _write_lines(lines: list[str], output: str | None, what: str) -> None:
    if output:
        Path(output).write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{len(lines)} {what} written to {output}", file=sys.stderr)
    else:
        print("\n".join(lines))


def _check_output(output: str | None) -> None:
    """``output=`` is a file that can be written: checked before anything is computed."""
    if not output:
        return
    path = Path(output)
    if path.is_dir():
        raise ConfigError(f"output={output}: a directory; name a file to write")
    if not path.parent.is_dir():
        raise ConfigError(f"output={output}: its directory {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"output={output}: not writable")


def _translate(model: Any, opts: dict[str, str], options: dict[str, Any]) -> int:
    """Seq2seq prediction: one input a line (file or stdin), one output a line; n-best as ``i ||| text ||| score``.

    ``options``: the decoding options, checked against ``model.translate``'s signature."""
    n_best, beam_size = options.get("n_best", 1), options.get("beam_size", 5)
    if n_best > beam_size:
        raise ConfigError(f"predict: n_best ({n_best}) cannot exceed beam_size ({beam_size})")
    inputs = [x for _, x in _input_lines(opts.get("input", "-"))]  # blank lines too: one output a line
    outs = model.translate(inputs, **options)
    if n_best == 1:
        lines = [o[0]["output"] for o in outs]
    else:
        lines = [f"{i} ||| {h['output']} ||| {h['score']:.4f}" for i, o in enumerate(outs) for h in o]
    _write_lines(lines, opts.get("output"), "outputs")
    return 0


def _input_lines(source: str) -> list[tuple[int, str]]:
    """``(line number, line without surrounding blanks)`` of a file, or of stdin for ``-``."""
    from nlp_lib.errors import DataError

    if source == "-":
        return [(n, line.strip()) for n, line in enumerate(sys.stdin.read().splitlines(), 1)]
    path = Path(source)
    if not path.is_file():
        raise DataError("file does not exist" if not path.exists() else "not a file", path=source)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text (byte offset {e.start})", path=source) from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]


def _read_inputs(source: str) -> list[tuple[int, str]]:
    """``(line number, input)``: one input a non-blank line (a text or a bracketed tree), or JSONL
    records with a ``text`` field; ``-`` reads stdin."""
    from nlp_lib.errors import DataError

    out = []
    for lineno, line in _input_lines(source):
        if not line:
            continue
        if source.endswith(".jsonl"):
            try:
                out.append((lineno, str(json.loads(line)["text"])))
            except (ValueError, KeyError, TypeError):
                raise DataError("expected a JSON object with a 'text' field", path=source, line=lineno) from None
        else:
            out.append((lineno, line))
    if not out:
        raise DataError("no inputs", path="<stdin>" if source == "-" else source)
    return out


def _export_command(args: list[str]) -> int:
    """``nlp-lib export bundle=DIR [format=onnx] [max_length=128] [max_depth=64] [output=DIR]``."""
    try:
        opts, rest = _key_values(
            args, {"bundle", "format", "max_length", "max_depth", "output", *_TRUST_KEYS}, "export"
        )
        if rest or "bundle" not in opts:
            raise ConfigError(
                "usage: nlp-lib export bundle=<run dir>/bundle [format=onnx] [max_length=128] [max_depth=64] "
                "[output=<dir>]"
            )
        if opts.get("format", "onnx") != "onnx":
            raise ConfigError(f"export: format must be onnx, got {opts['format']!r}")
        sizes = {}
        for key, default in (("max_length", 128), ("max_depth", 64)):
            try:
                sizes[key] = int(opts.get(key, default))
            except ValueError:
                raise ConfigError(f"export: {key} must be a whole number, got {opts[key]!r}") from None
        import nlp_lib
        from nlp_lib.export import export_onnx

        model = nlp_lib.load(opts["bundle"], **_trust_options(opts))
        output = Path(opts.get("output") or Path(opts["bundle"]) / "onnx")
        manifest = export_onnx(model, output, **sizes)
    except NlpLibError as e:
        return _fail(e)
    files = ", ".join(str(output / f) for f in manifest["files"])
    print(
        f"wrote {files} and {output / 'onnx.json'} ({manifest['kind']}); "
        f"onnxruntime vs PyTorch max |difference| {manifest['max_abs_diff']:.2e}"
    )
    return 0


def _eval_command(args: list[str]) -> int:
    """``nlp-lib eval run=DIR [split=val|test] [data overrides]``: metrics of the run's model on a split."""
    from omegaconf import OmegaConf

    try:
        opts, overrides = _key_values(args, {"run", "split", *_TRUST_KEYS}, "eval")
        if "run" not in opts:
            raise ConfigError("usage: nlp-lib eval run=<run dir> [split=val|test] [data.KEY=VALUE ...]")
        run = Path(opts["run"])
        if not (run / "config.yaml").is_file() or not (run / "bundle").is_dir():
            raise ConfigError(f"run={run}: not a finished run directory (needs config.yaml and bundle/)")
        trusted = _trust_options(opts)
        cfg = _read_run_config(run)
        bad = [o for o in overrides if not o.startswith("data.")]
        if bad:
            raise ConfigError(f"eval: only data.* overrides are allowed (the model is the run's): {bad}")
        for o in overrides:
            key, _, value = o.partition("=")
            if OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
                raise ConfigError(f"eval: {key} is not a key of the run's config")
            OmegaConf.update(cfg, key, yaml.safe_load(value))
        _check_run_targets(cfg, run, **trusted)  # after the overrides: they may name targets too
        for key in ("data", "task"):
            node = cfg.get(key)
            if not OmegaConf.is_dict(node) or "_target_" not in node:
                raise ConfigError(f"{run / 'config.yaml'}: {key}: expected the run's {key} config (a _target_ node)")
        check_run_config(cfg)  # every value against its constructor, as training checked it
        metrics = evaluate(cfg, run, opts.get("split", "val"), **trusted)
    except NlpLibError as e:
        return _fail(e)
    print(json.dumps(metrics, indent=2))
    return 0


def evaluate(cfg: Any, run: Path, split: str, *, trust_code: bool = False, trust: Sequence[str] = ()) -> dict[str, Any]:
    """Accuracy and loss of a run's bundled model on a split of the (possibly overridden) data.

    ``trust_code`` / ``trust``: what the run's bundle may build besides nlp_lib's own classes
    (see :func:`nlp_lib.load`).
    """
    import torch

    from nlp_lib import bundle

    source = bundle.read(run / "bundle", trust_code=trust_code, trust=trust)
    model = bundle.load(run / "bundle", trust_code=trust_code, trust=trust)
    data = _instantiate(cfg.data, "data", seed=int(cfg.seed))
    if type(source.tokenizer).__name__ == "WordVocab":
        data.vocab = source.tokenizer  # the model's vocabulary as it is: unseen words are <unk>
    else:
        data.adopt_tokenizer(source.tokenizer)
    data.prepare()
    loader = {"val": data.val_dataloader, "test": data.test_dataloader}.get(split)
    if loader is None:
        raise ConfigError(f"eval: split must be val or test, got {split!r}")
    if isinstance(source.tokenizer, dict):  # seq2seq: decode as the run's test did
        metrics = _evaluate_seq2seq(model, loader(), source.tokenizer["target"], cfg.get("task") or {}, split)
        (run / f"eval_{split}.json").write_text(json.dumps(metrics, indent=2))
        return metrics
    # the run's own task computes the loss, so it is the one training logged (a tree task's includes
    # its phrase-level term, node_loss_weight), averaged over examples as Lightning does
    task = _instantiate(cfg.task, "task", model=model, optimizer=None)
    correct = total = 0
    loss = 0.0
    with torch.no_grad():
        for batch in loader():
            batch_loss, logits, target = task.loss_and_targets(batch)
            loss += float(batch_loss) * int(target.numel())
            correct += int((logits.argmax(-1) == target).sum())
            total += int(target.numel())
    metrics = {"split": split, "accuracy": correct / max(total, 1), "loss": loss / max(total, 1), "examples": total}
    (run / f"eval_{split}.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _evaluate_seq2seq(model: Any, batches: Any, tokenizer: Any, task_cfg: Any, split: str) -> dict[str, Any]:
    import torch

    from nlp_lib.tasks.seq2seq import decode_batch, score_outputs, token_loss

    beam = int(task_cfg.get("test_beam_size", 5))
    max_length = int(task_cfg.get("max_length", 100))
    hyps, refs, loss, tokens = [], [], 0.0, 0
    with torch.no_grad():
        for batch in batches:
            loss += float(token_loss(model, batch, reduction="sum")[0])
            tokens += batch.num_target_tokens
            ids = decode_batch(model, batch, beam, max_length, float(task_cfg.get("length_penalty", 1.0)))
            hyps += [tokenizer.decode(i) for i in ids]
            refs += batch.references
    scores = score_outputs(hyps, refs, str(task_cfg.get("bleu_tokenize", "13a")))
    return {"split": split, **scores, "loss": loss / max(tokens, 1), "examples": len(hyps), "beam_size": beam}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
