"""The pieces :func:`~nlp_lib.cli.train.train` wires together, each built from its config node.

The data comes first (it decides the model's vocabulary and label counts), then the model (the
recipe's, or a fine-tuned bundle's with its weights), the callbacks and the logger (the
``conf/callbacks/`` and ``conf/logger/`` groups), and at the end the bundle. Every ``_target_`` is
built with :func:`instantiate`, whose errors name the config key.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from nlp_lib.cli.checks import check_init_from_kind
from nlp_lib.cli.recipes import group_option
from nlp_lib.errors import ConfigError, NlpLibError

__all__ = [
    "build_callbacks",
    "build_logger",
    "build_model",
    "instantiate",
    "label_names",
    "model_sizes",
    "read_init_from",
    "with_group_nodes",
    "write_bundle",
]

log = logging.getLogger("nlp_lib")


def instantiate(node: Any, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with errors that name the config key."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate
    from omegaconf.errors import OmegaConfBaseException

    try:
        return hydra_instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, NlpLibError):
            raise cause from None
        # Hydra names keys from the node it was given: "full_key: cell" is the recipe's model.cell
        raise ConfigError(f"{key}: cannot build it: {str(e).replace('full_key: ', f'full_key: {key}.')}") from None
    except OmegaConfBaseException as e:
        raise ConfigError(f"{key}: {e}") from None


def with_group_nodes(cfg: Any) -> Any:
    """``cfg`` with its ``callbacks`` and ``logger`` nodes, for a config written before those were
    config groups (a run's ``config.yaml`` to resume, one's own recipe saying ``logger: csv``): no
    ``callbacks`` means the default ones, and a string names the logger group's option. Any other
    config is returned as it is.

    Raises:
        ConfigError: the string names no option of ``conf/logger/``.
    """
    from omegaconf import OmegaConf

    picks = [] if "callbacks" in cfg else [("callbacks", "default")]
    logger = cfg.get("logger", "tensorboard")
    if isinstance(logger, str):
        picks.append(("logger", logger))
    if not picks:
        return cfg
    out = copy.deepcopy(cfg)
    struct = OmegaConf.is_struct(out)
    OmegaConf.set_struct(out, False)
    if isinstance(logger, str):
        out.logger = None  # replaced by the option's node
    for group, name in picks:
        out.merge_with(group_option(group, name))
    OmegaConf.set_struct(out, struct)
    return out


def read_init_from(cfg: Any, data: Any) -> Any:
    """Fine-tuning (``init_from=``): the bundle's contents (:class:`nlp_lib.bundle.BundleContents`),
    checked against the recipe's kind of model, with the data adopting its tokenizer; ``None``
    without ``init_from``."""
    if not cfg.get("init_from"):
        return None
    from nlp_lib import bundle

    source = bundle.read(
        str(cfg.init_from), trust_code=bool(cfg.get("trust_code", False)), trust=list(cfg.get("trust") or ())
    )
    check_init_from_kind(cfg, source)
    if not hasattr(data, "adopt_tokenizer"):
        raise ConfigError("init_from: this data module cannot reuse a trained model's tokenizer")
    data.adopt_tokenizer(source.tokenizer)
    return source


def model_sizes(data: Any) -> dict[str, int]:
    """What the (prepared) data decides about the model: vocabulary and label counts (seq2seq: both vocabularies)."""
    if hasattr(data, "model_sizes"):
        return data.model_sizes()
    sizes = {"vocab_size": data.vocab_size, "num_classes": data.num_classes}
    if getattr(data, "root_classes", None) is not None:  # SST-2 with neutral phrases: roots take 2 of 3
        sizes["root_classes"] = data.root_classes
    return sizes


def label_names(data: Any) -> list[str]:
    """The data's label names in class-id order (the ids themselves when it has no names)."""
    return list(getattr(data, "label_names", None) or [str(i) for i in range(data.num_classes)])


def build_model(cfg: Any, data: Any, sizes: dict[str, int], source: Any) -> tuple[Any, Any]:
    """``(model, its config)``: the recipe's model group with the data's ``sizes``, or, fine-tuning
    from ``source``, the bundle's architecture and weights (a new output layer when the labels
    differ); pretrained word vectors initialise the embedding with ``model.embeddings.path=``."""
    from omegaconf import OmegaConf

    from nlp_lib import bundle

    if source is None:
        if cfg.model.get("root_classes") is not None and "root_classes" not in sizes:
            raise ConfigError(
                "model.root_classes: the data decides which classes roots take, and checks its root labels "
                "against them: set data.root_classes instead (data.binary=true with data.neutral_phrases=true sets 2)"
            )
        model_cfg = OmegaConf.masked_copy(cfg.model, [k for k in cfg.model if k != "embeddings"])
        model = instantiate(model_cfg, "model", **sizes)
        _load_word_vectors(model, cfg.model.get("embeddings") or {}, data)
        return model, model_cfg
    # the data decides these (root_classes: only SST-2-like data sets it; absent, the model's default)
    model_cfg = OmegaConf.create({k: v for k, v in source.config.items() if k not in {*sizes, "root_classes"}})
    log.info(
        "init_from %s: the model is the bundle's (%s); the recipe's model group is not used",
        source.path,
        model_cfg.get("_target_"),
    )
    model = instantiate(model_cfg, "model", **sizes)
    if hasattr(data, "model_sizes"):  # seq2seq: same tokenizers, so every weight fits
        try:
            model.load_state_dict(source.state)
        except RuntimeError as e:
            raise ConfigError(f"init_from: the bundle's weights do not fit its own model config: {e}") from None
    else:
        for note in bundle.transfer(model, source, label_names(data), data.vocab_size):
            log.info("init_from: %s", note)
    return model, model_cfg


def _load_word_vectors(model: Any, vectors: Any, data: Any) -> None:
    """``model.embeddings.path=``: pretrained word vectors initialise the model's ``.embedding``."""
    if not vectors.get("path"):
        return
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


def build_callbacks(node: Any, run_dir: Path, *, validating: bool) -> list[Any]:
    """The entries of ``callbacks`` (``conf/callbacks/``), in order; an entry set to null is off.

    A ``dirpath`` is a folder of the run directory (kept inside it by
    :func:`~nlp_lib.cli.checks.check_run_outputs`); each built entry must be a Lightning callback. Without validation
    (``trainer.limit_val_batches=0``) nothing follows a validation metric: a ``monitor`` is
    cleared, so ``best.ckpt`` holds the last epoch's weights.
    """
    import pytorch_lightning as pl

    callbacks = []
    for name, entry in (node or {}).items():
        if entry is None:
            continue
        kwargs: dict[str, Any] = {}
        if entry.get("dirpath") is not None:
            kwargs["dirpath"] = run_dir / str(entry.dirpath)
        if not validating and entry.get("monitor") is not None:
            kwargs["monitor"] = None
        callback = instantiate(entry, f"callbacks.{name}", **kwargs)
        if not isinstance(callback, pl.Callback):
            raise ConfigError(f"callbacks.{name}: builds a {type(callback).__name__}, not a Lightning callback")
        callbacks.append(callback)
    return callbacks


def build_logger(node: Any, run_dir: Path) -> Any:
    """The ``logger`` (``conf/logger/``), writing under the run directory (its ``save_dir``); ``False``
    (no logger) for ``logger=none``."""
    from pytorch_lightning.loggers import Logger

    if node is None:
        return False
    logger = instantiate(node, "logger", save_dir=str(run_dir))
    if not isinstance(logger, Logger):
        raise ConfigError(f"logger: builds a {type(logger).__name__}, not a Lightning logger")
    where = Path(logger.log_dir).resolve()
    if not where.is_relative_to(run_dir.resolve()):
        raise ConfigError(f"logger: writes to {where}, outside the run directory {run_dir}")
    return logger


def write_bundle(
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
        labels = label_names(data)
    meta = {"recipe": str(cfg.get("recipe", "")), "metrics": {k: metrics.get(k) for k in ("train", "val", "test")}}
    return bundle.save(model, path, config=config, tokenizer=tokenizer, labels=labels, meta=meta)
