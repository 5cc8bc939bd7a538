"""Every recipe composes, and every `_target_` in conf/ and recipes/ binds to its signature."""

import importlib
import inspect
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from nlp_lib.cli import compose, list_recipes

CONF = Path(__file__).resolve().parents[2] / "conf"
# Arguments the train function passes itself (explicit wiring), not set in configs.
RUNTIME_KWARGS = {
    "vocab_size",
    "num_classes",
    "src_vocab_size",
    "tgt_vocab_size",
    "model",
    "optimizer",
    "scheduler",
    "seed",
    "logger",
    "callbacks",
    "default_root_dir",
    "params",
    "save_dir",  # a logger's: the run directory
}


def _targets(node, key=""):
    if isinstance(node, dict):
        if "_target_" in node:
            yield key, node
        for k, v in node.items():
            yield from _targets(v, f"{key}.{k}" if key else k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _targets(v, f"{key}[{i}]")


def _leaves(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _leaves(v)
    else:
        yield node


def _import(path):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _check_binds(key, node):
    target = _import(node["_target_"])
    kwargs = {k: v for k, v in node.items() if not k.startswith("_")}
    if key == "model" or key.startswith("model/"):  # a recipe's model node, or a conf/model/ file
        kwargs.pop("embeddings", None)  # pretrained vectors: the train function loads them
    sig = inspect.signature(target)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    if not accepts_any:
        unknown = set(kwargs) - set(sig.parameters)
        assert not unknown, f"{key}: {node['_target_']} takes no {sorted(unknown)}"
    missing = [
        n
        for n, p in sig.parameters.items()
        if p.default is p.empty
        and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        and n not in kwargs
        and n not in RUNTIME_KWARGS
        and n != "self"
    ]
    if node.get("_partial_"):  # a factory: the caller passes the rest (the parameters, a cell's sizes)
        missing = [n for n in missing if sig.parameters[n].kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert not missing, f"{key}: {node['_target_']} needs {missing}"


@pytest.mark.parametrize("recipe", sorted(list_recipes()))
def test_recipe_composes_and_targets_bind(recipe, tmp_path):
    cfg = compose(recipe, ["data.path=/tmp"] if recipe.startswith(("sst", "multi30k")) else [])
    container = OmegaConf.to_container(cfg, resolve=False)
    container.pop("hydra", None)
    found = list(_targets(container))
    assert {k for k, _ in found} >= {"data", "model", "task", "trainer", "optim.optimizer"}
    for key, node in found:
        _check_binds(key, node)


@pytest.mark.parametrize("path", sorted(p.relative_to(CONF).as_posix() for p in CONF.glob("*/*.yaml")))
def test_every_config_group_option_binds(path):
    node = OmegaConf.to_container(OmegaConf.load(CONF / path), resolve=False)
    if (CONF / path).read_text().startswith("# @package trainer"):  # merged into the trainer node (precision/)
        node = {"_target_": "pytorch_lightning.Trainer", **node}
    found = list(_targets(node, path))
    if not found:  # an option that turns nodes off (logger/none): placed at the top, every value null
        assert (CONF / path).read_text().startswith("# @package _global_"), f"{path} has no _target_"
        assert all(v is None for v in _leaves(node)), f"{path} has no _target_ and sets more than nulls"
    for key, n in found:
        _check_binds(key, n)
