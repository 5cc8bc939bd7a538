"""The ``nlp-lib`` command: ``train``, ``eval``, ``predict``, ``export``, ``recipes``.

``nlp-lib train recipe=NAME key=value ...`` composes ``recipes/NAME.yaml`` with the config groups
in ``conf/`` and the overrides, then calls :func:`train`. :func:`train` is a plain function of a
composed config (tests call it directly); only this package and ``conf/`` know about Hydra.

One module per job, each importing only those listed before it (and nothing here):

* :mod:`~nlp_lib.cli.options`: ``key=value`` arguments, trust options, the error exit;
* :mod:`~nlp_lib.cli.recipes`: finding and composing recipes, ``nlp-lib recipes``;
* :mod:`~nlp_lib.cli.checks`: a composed config checked by key before anything is read;
* :mod:`~nlp_lib.cli.distributed`: Lightning's data-parallel children run their parent's job;
* :mod:`~nlp_lib.cli.rundir`: the run directory, its lock and its ``config.yaml``;
* :mod:`~nlp_lib.cli.build`: what :func:`train` wires (data, model, callbacks, logger, bundle);
* :mod:`~nlp_lib.cli.train`: :func:`train` and ``nlp-lib train``;
* :mod:`~nlp_lib.cli.evaluate`, :mod:`~nlp_lib.cli.predict`, :mod:`~nlp_lib.cli.export`: the
  commands on a finished run or bundle.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from nlp_lib.cli.checks import check_run_config
from nlp_lib.cli.distributed import ddp_child_args, is_ddp_child
from nlp_lib.cli.evaluate import eval_command, evaluate
from nlp_lib.cli.export import export_command
from nlp_lib.cli.options import fail
from nlp_lib.cli.predict import predict_command
from nlp_lib.cli.recipes import DEFAULT_RECIPE, compose, list_recipes, recipe_dirs, recipes_command
from nlp_lib.cli.train import train, train_command
from nlp_lib.errors import ConfigError

__all__ = [
    "DEFAULT_RECIPE",
    "check_run_config",
    "compose",
    "evaluate",
    "list_recipes",
    "main",
    "recipe_dirs",
    "train",
]

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

COMMANDS = {
    "train": train_command,
    "recipes": recipes_command,
    "predict": predict_command,
    "eval": eval_command,
    "export": export_command,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nlp-lib`` and ``python -m nlp_lib``."""
    args = list(sys.argv[1:] if argv is None else argv)
    _quiet_dependencies()
    if is_ddp_child():
        return train_command(ddp_child_args(args))  # the recipe by its file path
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE.format(default=DEFAULT_RECIPE))
        return 0
    cmd, rest = args[0], args[1:]
    if cmd not in COMMANDS:
        return fail(ConfigError(f"unknown command {cmd!r}; see 'nlp-lib --help'"))
    return COMMANDS[cmd](rest)


def _quiet_dependencies() -> None:
    """Drop two notices every run printed that are not about the run: Lightning's advert for its
    cloud logger and a deprecation inside Lightning's own code (its ``LeafSpec`` check on torch 2.13)."""
    import warnings

    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")

    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_no_adverts)  # the same filter object: added once however often


def _no_adverts(record: logging.LogRecord) -> bool:
    return "litlogger" not in record.getMessage()
