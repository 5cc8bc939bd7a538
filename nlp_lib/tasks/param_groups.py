"""Parameter groups: a learning rate and weight decay of their own for the parameters a name pattern picks.

``optim.param_groups`` in a config is a list of rules, each checked against :func:`param_group`'s
signature::

    optim:
      param_groups:
        - {params: "embedding.*", lr_scale: 0.1}              # word vectors at a tenth of the rate
        - {params: "classifier.*", weight_decay: 1.0e-4}      # L2 on the output layer only
      optimizer: {weight_decay: 0.0, ...}                     # ...and none on the rest

A parameter belongs to the first rule whose pattern (:func:`fnmatch.fnmatchcase` on its name in
``model.named_parameters()``) it matches; the others keep the optimiser's own settings. A rule
that picks no parameter is an error naming it and a few of the model's names (a typo must not
train silently at the wrong rate).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from nlp_lib.errors import ConfigError

__all__ = ["ParamGroups", "build_optimizer", "check_param_groups", "param_group"]

KEY = "optim.param_groups"


def param_group(params: str, lr_scale: float = 1.0, weight_decay: float | None = None) -> dict[str, Any]:
    """One rule of ``optim.param_groups``.

    Args:
        params: A pattern on parameter names (``embedding.*``, ``*.bias``), shell-style.
        lr_scale: Multiplies the optimiser's learning rate for these parameters (a scheduler then
            scales every group alike).
        weight_decay: Replaces the optimiser's weight decay for them (``None``: keep it).
    """
    if not params:
        raise ValueError("params: an empty pattern")
    if lr_scale < 0:
        raise ValueError(f"lr_scale: must be >= 0, got {lr_scale}")
    if weight_decay is not None and weight_decay < 0:
        raise ValueError(f"weight_decay: must be >= 0, got {weight_decay}")
    return {"params": params, "lr_scale": float(lr_scale), "weight_decay": weight_decay}


def check_param_groups(rules: Any, key: str = KEY) -> list[dict[str, Any]]:
    """The rules of a config checked against :func:`param_group` (types, unknown keys, ranges).

    Raises:
        ConfigError: naming ``key[i]`` and what is wrong.
    """
    from nlp_lib.schema import check_call

    if rules is None:
        return []
    if not isinstance(rules, Sequence) or isinstance(rules, str):
        raise ConfigError(f"{key}: expected a list of {{params: pattern, lr_scale, weight_decay}}, got {rules!r}")
    out = []
    for i, rule in enumerate(rules):
        where = f"{key}[{i}]"
        if not isinstance(rule, Mapping):
            raise ConfigError(f"{where}: expected {{params: pattern, lr_scale, weight_decay}}, got {rule!r}")
        if "params" not in rule:
            raise ConfigError(f"{where}: params (a pattern on parameter names) is required")
        try:
            out.append(param_group(**check_call(param_group, dict(rule), where)))
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
    return out


class ParamGroups:
    """An optimiser factory whose model's parameters split into groups by the rules (:mod:`here <nlp_lib.tasks.param_groups>`).

    Args:
        factory: Builds the optimiser from parameter groups (``optim.optimizer``, a partial).
        rules: ``optim.param_groups`` (checked by :func:`check_param_groups`).
    """

    def __init__(self, factory: Callable[..., torch.optim.Optimizer], rules: Sequence[Mapping[str, Any]]) -> None:
        self.factory = factory
        self.rules = check_param_groups(rules)

    def groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """The optimiser's parameter groups: the unmatched parameters first (if any), then one per rule."""
        picked: list[list[nn.Parameter]] = [[] for _ in self.rules]
        rest: list[nn.Parameter] = []
        names = []
        for name, p in model.named_parameters():
            names.append(name)
            i = next((i for i, r in enumerate(self.rules) if fnmatch.fnmatchcase(name, r["params"])), None)
            (rest if i is None else picked[i]).append(p)
        for i, (rule, params) in enumerate(zip(self.rules, picked, strict=True)):
            if not params:
                some = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
                raise ConfigError(
                    f"{KEY}[{i}].params: {rule['params']!r} matches no parameter left (the model's: {some})"
                )
        groups = [{"params": rest, "name": "rest"}] if rest else []
        for rule, params in zip(self.rules, picked, strict=True):
            group = {"params": params, "name": rule["params"]}
            if rule["weight_decay"] is not None:
                group["weight_decay"] = rule["weight_decay"]
            groups.append(group)
        return groups

    def build(self, model: nn.Module, **kwargs: Any) -> torch.optim.Optimizer:
        opt = self.factory(self.groups(model), **kwargs)
        scales = [1.0] * (len(opt.param_groups) - len(self.rules)) + [r["lr_scale"] for r in self.rules]
        for group, scale in zip(opt.param_groups, scales, strict=True):
            group["lr"] = group["lr"] * scale
        return opt


def build_optimizer(factory: Any, model: nn.Module, **kwargs: Any) -> torch.optim.Optimizer:
    """The optimiser of ``model``: by groups for a :class:`ParamGroups`, else over all its parameters."""
    if isinstance(factory, ParamGroups):
        return factory.build(model, **kwargs)
    return factory(model.parameters(), **kwargs)
