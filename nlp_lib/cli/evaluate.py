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

__all__ = ["eval_command", "evaluate"]


def eval_command(args: list[str]) -> int:
    """``nlp-lib eval run=DIR [split=val|test] [data overrides]``: metrics of the run's model on a split."""
    from omegaconf import OmegaConf

    try:
        opts, overrides = key_values(args, {"run", "split", *TRUST_KEYS}, "eval")
        if "run" not in opts:
            raise ConfigError("usage: nlp-lib eval run=<run dir> [split=val|test] [data.KEY=VALUE ...]")
        run = Path(opts["run"])
        if not (run / "config.yaml").is_file() or not (run / "bundle").is_dir():
            raise ConfigError(f"run={run}: not a finished run directory (needs config.yaml and bundle/)")
        trusted = trust_options(opts)
        cfg = read_run_config(run)
        bad = [o for o in overrides if not o.startswith("data.")]
        if bad:
            raise ConfigError(f"eval: only data.* overrides are allowed (the model is the run's): {bad}")
        for o in overrides:
            key, _, value = o.partition("=")
            if OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
                raise ConfigError(f"eval: {key} is not a key of the run's config")
            OmegaConf.update(cfg, key, yaml.safe_load(value))
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
    """Accuracy and loss of a run's bundled model on a split of the (possibly overridden) data.

    ``trust_code`` / ``trust``: what the run's bundle may build besides nlp_lib's own classes
    (see :func:`nlp_lib.load`).
    """
    import torch

    from nlp_lib.predict import load

    predictor = load(run / "bundle", trust_code=trust_code, trust=trust)
    model, tokenizer = predictor.model, predictor.tokenizer
    data = instantiate(cfg.data, "data", seed=int(cfg.seed))
    if type(tokenizer).__name__ == "WordVocab":
        data.vocab = tokenizer  # the model's vocabulary as it is: unseen words are <unk>
    else:
        data.adopt_tokenizer(tokenizer)
    data.prepare()
    loader = {"val": data.val_dataloader, "test": data.test_dataloader}.get(split)
    if loader is None:
        raise ConfigError(f"eval: split must be val or test, got {split!r}")
    if isinstance(tokenizer, dict):  # seq2seq: decode as the run's test did
        metrics = _evaluate_seq2seq(model, loader(), tokenizer["target"], cfg.get("task") or {}, split)
        (run / f"eval_{split}.json").write_text(json.dumps(metrics, indent=2))
        return metrics
    # the run's own task computes the loss, so it is the one training logged (a tree task's includes
    # its phrase-level term, node_loss_weight), averaged over examples as Lightning does
    task = instantiate(cfg.task, "task", model=model, optimizer=None)
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
