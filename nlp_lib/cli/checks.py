"""A composed config checked before anything is read or written, every problem named by its key.

:func:`check_run_config` checks the top-level keys against :func:`run_options` and every
``_target_`` against its target's signature (:mod:`nlp_lib.schema`); :func:`check_trainer` the
trainer values Lightning would only reject later, with a traceback.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Literal

from nlp_lib.constraints import NonNegativeInt
from nlp_lib.errors import ConfigError

__all__ = [
    "check_run_outputs",
    "check_init_from_kind",
    "check_model_fits_data",
    "check_run_config",
    "check_trainer",
    "model_kind",
    "run_options",
    "try_optimizer",
]


def run_options(
    *,
    seed: int,
    recipe: str,
    run_name: str,
    run_dir: str,
    monitor: str,
    monitor_mode: Literal["min", "max"],
    checkpoint_every_n_steps: NonNegativeInt,
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
    callbacks: Any = None,
    logger: Any = None,
) -> None:
    """The top-level keys of a run's config and what each accepts (checked by :func:`check_run_config`;
    the nodes, ``data`` to ``logger``, by their targets' signatures)."""


_TOP_LEVEL = frozenset(inspect.signature(run_options).parameters)


def check_run_config(cfg: Any) -> None:
    """Every key of a composed config checked against what reads it, before anything is read:
    top-level keys against :func:`run_options`, every ``_target_`` (data, model and its cells,
    task, optimiser, scheduler, trainer, callbacks, logger) against its target's signature
    (:mod:`nlp_lib.schema`).

    Raises:
        ConfigError: naming the key, what it expects and what it got.
    """
    from omegaconf import OmegaConf

    from nlp_lib.schema import check_call, check_config
    from nlp_lib.tasks.param_groups import check_param_groups

    try:
        plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except Exception as e:  # noqa: BLE001 - an interpolation that cannot resolve
        raise ConfigError(f"cannot resolve the config: {e}") from None
    plain.pop("hydra", None)
    top = {k: v for k, v in plain.items() if k in _TOP_LEVEL}
    check_call(run_options, top, "config")
    check_config(plain.get("data"), "data", given=("seed",))
    check_config(
        plain.get("model"),
        "model",
        given=("vocab_size", "num_classes", "src_vocab_size", "tgt_vocab_size"),
        skip=("embeddings",),
    )
    check_config(plain.get("task"), "task", given=("model", "optimizer", "scheduler"))
    optim = plain.get("optim") or {}
    unknown = sorted(set(optim) - {"optimizer", "scheduler", "param_groups"})
    if unknown:
        raise ConfigError(f"optim.{unknown[0]} is not an option (options: optimizer, scheduler, param_groups)")
    for part in ("optimizer", "scheduler"):
        check_config(optim.get(part), f"optim.{part}", given=("params", "optimizer"))
    check_param_groups(optim.get("param_groups"))
    check_config(plain.get("trainer"), "trainer", given=("default_root_dir", "logger", "callbacks", "plugins"))
    check_run_outputs(plain.get("callbacks"), plain.get("logger"))
    check_config(plain.get("callbacks"), "callbacks")
    check_config(plain.get("logger"), "logger", given=("save_dir",))
    check_model_fits_data(plain)


# Keys of a callback or logger node that name a file or folder. A run's config.yaml is untrusted on
# resume= and eval (it may come from someone else), so each must be a relative path inside the run
# directory made of plain name characters and, for a checkpoint's filename, simple template
# fields ({epoch}, {val/loss:.3f}): Lightning formats the filename with str.format, whose
# attribute and index access ({epoch.__class__}, {x[0]}) would reach any object and whose width
# ({epoch:>300000000}) any size.
PATH_KEYS = ("dirpath", "filename", "name", "version", "prefix")
SET_BY_THE_RUN = ("save_dir", "log_dir", "sub_dir", "root_dir")  # the run directory decides these
_FIELD = r"\{[A-Za-z_][A-Za-z0-9_/]*(?::[<>^]?[0-9]{0,2}(?:\.[0-9])?[dfe]?)?\}"
_PATH = re.compile(rf"(?:[A-Za-z0-9_=+./-]|{_FIELD})+")


def check_run_outputs(callbacks: Any, logger: Any) -> None:
    """The ``callbacks`` and ``logger`` nodes are mappings of ``_target_`` nodes whose paths stay
    inside the run directory (:data:`PATH_KEYS`, each checked segment by segment; the keys of
    :data:`SET_BY_THE_RUN` may not be set at all)."""
    if callbacks is not None and not isinstance(callbacks, dict):
        raise ConfigError(f"callbacks: expected a mapping of name -> callback node, got {_short(callbacks)}")
    nodes = [(f"callbacks.{k}", v) for k, v in (callbacks or {}).items()]
    if logger is not None:
        nodes.append(("logger", logger))
    for key, node in nodes:
        if node is None and key != "logger":
            continue  # a callback turned off
        if not isinstance(node, dict) or not isinstance(node.get("_target_"), str):
            raise ConfigError(f"{key}: expected a node with a _target_ (or null), got {_short(node)}")
        for part in SET_BY_THE_RUN:
            if node.get(part) is not None:
                raise ConfigError(f"{key}.{part}: set by nlp-lib (the run directory); remove it")
        for part in PATH_KEYS:
            value = node.get(part)
            if value is not None and not _inside(value):
                raise ConfigError(
                    f"{key}.{part}: must stay inside the run directory (a relative path of names made of "
                    f"letters, digits, _ - . = + and template fields like {{epoch}}, without ..), got {_short(value)}"
                )


def _inside(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return False
    text = str(value)
    if text == "":
        return True  # no sub-folder (a logger's version "")
    if len(text) > 200 or not _PATH.fullmatch(text):
        return False
    segments = re.sub(_FIELD, "x", text).split("/")  # a field may hold "/" (val/loss)
    return all(seg not in ("", ".", "..") for seg in segments)


def _short(value: Any) -> str:
    from nlp_lib.trust import short

    return short(value)


def model_kind(target: Any) -> str | None:
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


def check_model_fits_data(plain: dict[str, Any]) -> None:
    """The model is of a kind the data trains (``feeds`` of the DataModule a data target builds)."""
    from nlp_lib.schema import returned_class

    model_target = (plain.get("model") or {}).get("_target_")
    data_target = (plain.get("data") or {}).get("_target_")
    if plain.get("init_from") or not isinstance(data_target, str):
        return  # fine-tuning: the bundle's kind is checked against the recipe's when it is read
    kind = model_kind(model_target)
    feeds = getattr(returned_class(data_target), "feeds", None)
    if kind and feeds and kind not in feeds:
        raise ConfigError(
            f"model: a {kind} ({model_target}) cannot train on data._target_={data_target}, which feeds a "
            f"{' or a '.join(feeds)}; choose a data group for it (data=...), or a recipe of its kind (`nlp-lib recipes`)"
        )


def check_init_from_kind(cfg: Any, source: Any) -> None:
    """A bundle fine-tunes only through a recipe that trains its kind of model (data, task, batches)."""
    have, want = model_kind(source.config.get("_target_")), model_kind(cfg.model.get("_target_"))
    if have and want and have != want:
        raise ConfigError(
            f"init_from: {source.path} holds a {have} ({source.config.get('_target_')}), but recipe "
            f"{cfg.get('recipe')} trains a {want}; fine-tune it with a recipe for its kind "
            f"(`nlp-lib recipes` lists them), e.g. its own recipe with init_from= and new data paths"
        )


def try_optimizer(optimizer: Any, scheduler: Any, model: Any, optim: Any) -> None:
    """Build the optimiser (and scheduler) once now: a bad value (``optim.optimizer.lr=abc``) is named
    by its config key here, not in a traceback from inside Lightning's fit."""

    def fail(key: str, e: Exception) -> ConfigError:
        values = {k: v for k, v in optim[key].items() if not str(k).startswith("_")}
        return ConfigError(f"optim.{key}: cannot build it from {values}: {e}")

    from nlp_lib.tasks.param_groups import build_optimizer

    try:
        probe = build_optimizer(optimizer, model)  # a param_groups pattern that picks nothing: named here
    except (TypeError, ValueError, KeyError) as e:
        raise fail("optimizer", e) from None
    if scheduler is not None:
        try:
            scheduler(probe)
        except (TypeError, ValueError, KeyError) as e:
            raise fail("scheduler", e) from None


def check_trainer(trainer: Any) -> None:
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
