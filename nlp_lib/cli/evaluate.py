"""``nlp-lib eval``: a finished run's model measured on a split of its data (``data.*`` overrides allowed)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from nlp_lib.cli.build import instantiate
from nlp_lib.cli.checks import check_run_config
from nlp_lib.cli.options import TRUST_KEYS, fail, key_values, trust_options
from nlp_lib.cli.rundir import check_run_targets, read_run_config
from nlp_lib.errors import ConfigError, NlpLibError

__all__ = ["DECODING_KEYS", "eval_command", "evaluate"]

# What eval may change besides data.*: how a seq2seq task decodes and scores, never the model.
DECODING_KEYS = ("task.test_beam_size", "task.length_penalty", "task.max_length", "task.output_precision")


def eval_command(args: list[str]) -> int:
    """``nlp-lib eval run=DIR [split=val|test] [data.* and decoding overrides]``: metrics of the run's model on a split."""
    from omegaconf import OmegaConf

    try:
        opts, overrides = key_values(args, {"run", "split", *TRUST_KEYS}, "eval")
        if "run" not in opts:
            raise ConfigError(
                "usage: nlp-lib eval run=<run dir> [split=val|test] [data.KEY=VALUE ...] "
                f"[{'|'.join(DECODING_KEYS)}=VALUE ...]"
            )
        run = Path(opts["run"])
        if not (run / "config.yaml").is_file() or not (run / "bundle").is_dir():
            raise ConfigError(f"run={run}: not a finished run directory (needs config.yaml and bundle/)")
        trusted = trust_options(opts)
        cfg = read_run_config(run)
        bad = [o for o in overrides if not o.startswith("data.") and o.partition("=")[0] not in DECODING_KEYS]
        if bad:
            raise ConfigError(
                f"eval: only data.* overrides and the decoding options {', '.join(DECODING_KEYS)} are allowed "
                f"(the model is the run's): {bad}"
            )
        for o in overrides:
            key, _, value = o.partition("=")
            # a decoding option an older run's config lacks is added; its task's signature checks it below
            if key not in DECODING_KEYS and OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
                raise ConfigError(f"eval: {key} is not a key of the run's config")
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError as e:
                raise ConfigError(f"eval: {key}: not a YAML value ({str(e).splitlines()[0]})") from None
            OmegaConf.update(cfg, key, parsed)
        check_run_targets(cfg, run, **trusted)  # after the overrides: they may name targets too
        for key in ("data", "task"):
            node = cfg.get(key)
            if not OmegaConf.is_dict(node) or "_target_" not in node:
                raise ConfigError(f"{run / 'config.yaml'}: {key}: expected the run's {key} config (a _target_ node)")
        check_run_config(cfg)  # every value against its constructor, as training checked it
        metrics = evaluate(cfg, run, opts.get("split", "val"), **trusted)
    except NlpLibError as e:
        return fail(e)
    print(json.dumps(metrics, indent=2))
    return 0


def evaluate(cfg: Any, run: Path, split: str, *, trust_code: bool = False, trust: Sequence[str] = ()) -> dict[str, Any]:
    """A run's bundled model measured on a split of the (possibly overridden) data by the run's own
    task, in Lightning's test loop: the metrics training logged for its test split (classifiers:
    ``accuracy`` and the task's ``loss``, a tree task's phrase-level term included; seq2seq:
    ``loss``, ``accuracy``, ``exact_match``, ``bleu``, ``chrf``), for ``val`` or ``test``, with
    ``examples`` (and, for seq2seq, the ``beam_size`` it decoded with). Written to
    ``<run>/eval_<split>.json``.

    Either split is scored as the run's test was (a seq2seq task decodes with its test beam).

    ``trust_code`` / ``trust``: what the run's bundle may build besides nlp_lib's own classes
    (see :func:`nlp_lib.load`).
    """
    if split not in ("val", "test"):
        raise ConfigError(f"eval: split must be val or test, got {split!r}")
    import pytorch_lightning as pl

    from nlp_lib.data.vocab import WordVocab
    from nlp_lib.predict import load

    predictor = load(run / "bundle", trust_code=trust_code, trust=trust)
    data = instantiate(cfg.data, "data", seed=int(cfg.seed))
    if isinstance(predictor.tokenizer, WordVocab):
        data.vocab = predictor.tokenizer  # as it is: words it never saw are <unk> (adopt_tokenizer appends them)
    else:
        data.adopt_tokenizer(predictor.tokenizer)  # sentencepiece pieces, seq2seq tokenizers: used as they are
    if hasattr(data, "evaluate_only"):  # read the evaluated split alone: no training split, no tokenizer training
        data.evaluate_only(split, predictor.labels)
    data.prepare()
    task = instantiate(cfg.task, "task", model=predictor.model, optimizer=None)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    res = trainer.test(task, datamodule=_as_test_split(data, split), verbose=False)
    metrics: dict[str, Any] = {"split": split}
    metrics.update({k.split("/", 1)[1]: float(v) for k, v in (res[0] if res else {}).items()})
    metrics["examples"] = len(data.splits[split])
    beams = getattr(task, "beam_sizes", None)  # a seq2seq task: the beam its test decodes with
    if beams:
        metrics["beam_size"] = beams["test"]
    (run / f"eval_{split}.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _as_test_split(data: Any, split: str) -> Any:
    """``data`` with its ``split`` served as the test split (``trainer.test`` runs the task's test
    step on it); everything else, the tokenizers a task reads say, is ``data``'s own."""
    import pytorch_lightning as pl

    class SplitAsTest(pl.LightningDataModule):
        def setup(self, stage: str | None = None) -> None:
            data.setup(stage)

        def test_dataloader(self) -> Any:
            return data.val_dataloader() if split == "val" else data.test_dataloader()

        def __getattr__(self, name: str) -> Any:  # only names the class itself does not have
            if name.startswith("_"):
                raise AttributeError(name)
            return getattr(data, name)

    return SplitAsTest()
