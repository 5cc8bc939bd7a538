"""Config values checked against the constructors' own signatures, by key, before anything runs.

One mechanism for every ``_target_`` of a composed config (data, model, cells, task, optimiser,
scheduler, trainer) and for every command-line option of ``nlp-lib predict``: the target's
signature says which arguments exist, and its type hints what each accepts (``int``, ``float``,
``bool``, ``str``, ``Literal[...]``, ``Optional``/unions, lists, and the ranges of
:mod:`nlp_lib.constraints` declared next to the parameter). A wrong value is reported as
``data.batch_size: expected an integer, got 'abc'``; an unknown argument names the target's
arguments. Hints the checker does not know (a class, a callable) accept anything: the
constructor judges those.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePath
from typing import Any, Literal, Union

from nlp_lib.constraints import Range
from nlp_lib.errors import ConfigError

__all__ = [
    "check_arguments",
    "check_config",
    "check_call",
    "parse_value",
    "returned_class",
    "signature_hints",
]

_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


@functools.lru_cache(maxsize=512)
def _hints(fn: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], dict[str, Any], bool, Any]:
    """``fn``'s named parameters, their hints, whether it takes ``**kwargs``, and the class those
    go to when ``fn`` is a builder function annotated to return one (``-> TreeDataModule``)."""
    sig = inspect.signature(fn)
    params = {n: p for n, p in sig.parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    open_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    target = inspect.unwrap(fn.__init__ if isinstance(fn, type) else fn)  # past decorators (torch.no_grad)
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:  # noqa: BLE001 - a hint naming what only exists under TYPE_CHECKING: check names only
        hints = {}
    returns = hints.get("return") if not isinstance(fn, type) else None
    forward = returns if open_kw and isinstance(returns, type) and returns.__module__.startswith("nlp_lib.") else None
    params.pop("self", None)
    return params, {n: h for n, h in hints.items() if n in params}, open_kw, forward


def returned_class(name: str) -> type | None:
    """The class a ``_target_`` builds: the class itself, or a builder function's annotated return class."""
    try:
        target = _import(name, "")
    except ConfigError:
        return None
    if isinstance(target, type):
        return target
    try:
        returns = typing.get_type_hints(inspect.unwrap(target)).get("return")
    except Exception:  # noqa: BLE001 - unresolvable hints: unknown
        return None
    return returns if isinstance(returns, type) else None


def signature_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """``fn``'s parameters and their type hints (``Any`` where there is none)."""
    params, hints, _, _ = _hints(fn)
    return {n: hints.get(n, Any) for n in params}


def _expected(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        base, *meta = args
        ranges = [m for m in meta if isinstance(m, Range)]
        text = _expected(base)
        return f"{text[:-1] if text.endswith('s') else text}{ranges[0]._text()}" if ranges else text
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        arms = [a for a in args if a is not type(None)]
        text = " or ".join(_expected(a) for a in arms)
        return f"{text} or null" if len(arms) < len(args) else text
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        return "a list"
    if origin in (dict, Mapping) or hint is dict:
        return "a mapping"
    return _NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def _problem(value: Any, hint: Any) -> str | None:
    """``None`` when ``value`` fits ``hint`` (as far as the checker knows ``hint``), else what was expected."""
    if hint is Any or hint is inspect.Parameter.empty:
        return None
    if isinstance(value, dict) and "_target_" in value:
        return None  # a nested object: checked as its own node
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        base, *meta = args
        wrong = _problem(value, base)
        if wrong is not None:
            return wrong
        for m in meta:
            if isinstance(m, Range) and isinstance(value, int | float) and not isinstance(value, bool):
                try:
                    number = float(value)
                except OverflowError:  # an integer of hundreds of digits
                    return _expected(hint)
                if m.problem(number) is not None:
                    return _expected(hint) if math.isfinite(number) else f"a finite number{m._text()}"
        return None
    if origin is Literal:
        ok = any(value == a and type(value) is type(a) for a in args)
        return None if ok else _expected(hint)
    if origin in (Union, types.UnionType):
        if any(_problem(value, a) is None for a in args):
            return None
        return _expected(hint)
    if hint is type(None) or hint is None:
        return None if value is None else "null"
    if hint is bool:
        return None if isinstance(value, bool) else _expected(hint)
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else _expected(hint)
    if hint is float:
        return None if isinstance(value, int | float) and not isinstance(value, bool) else _expected(hint)
    if hint is str:
        return None if isinstance(value, str) else _expected(hint)
    if isinstance(hint, type) and issubclass(hint, PurePath):
        return None if isinstance(value, str | PurePath) else "a path"
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        if isinstance(value, str) or not isinstance(value, list | tuple):
            return _expected(hint)
        inner = args[0] if args and origin is not tuple else Any
        bad = next((v for v in value if _problem(v, inner) is not None), None) if inner is not Any else None
        return None if bad is None else f"a list of {_expected(inner)} (not {bad!r})"
    if origin in (dict, Mapping) or hint is dict:
        return None if isinstance(value, dict) else _expected(hint)
    if isinstance(hint, type) and isinstance(value, str | int | float | bool):
        try:
            fits = isinstance(value, hint)
        except TypeError:  # a Protocol that is not runtime-checkable: the constructor judges it
            return None
        if fits or hint is os.PathLike or issubclass(hint, str | int | float):
            return None  # a path as text; an enum or another subclass of a plain type: the constructor judges it
        return _expected(hint)  # plain config data can never be, say, a Tensor
    return None  # a list or mapping for a class, a callable...: the constructor judges it


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: a hostile file's values stay out of messages."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-2:]}"


def _import(name: str, key: str) -> Any:
    module, _, attr = name.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(f"{_join(key, '_target_')}: cannot import {name!r} ({e})") from None


def check_config(
    node: Any, key: str, *, given: Sequence[str] = (), skip: Sequence[str] = (), unimportable: bool = False
) -> None:
    """Check every ``_target_`` node under ``node`` (a plain, resolved config) against its target's
    signature and hints; ``key`` names ``node`` in messages.

    Args:
        given: Arguments the caller passes itself when building ``node`` (``vocab_size``...):
            not required in the config.
        skip: Keys of ``node`` that are not constructor arguments (consumed by the caller).
        unimportable: Pass over a node whose target does not import here (and what is under it)
            instead of refusing it: ``nlp_lib.save`` checks what it can, load names the rest.

    Raises:
        ConfigError: an unknown argument, or a value its hint refuses, named by its key.
    """
    if isinstance(node, list):
        for i, v in enumerate(node):
            check_config(v, f"{key}[{i}]", unimportable=unimportable)
        return
    if not isinstance(node, dict):
        return
    if "_target_" not in node:
        for k, v in node.items():
            check_config(v, _join(key, k), unimportable=unimportable)
        return
    try:
        target = _import(str(node["_target_"]), key)
    except ConfigError:
        if unimportable:
            return
        raise
    if not callable(target):
        raise ConfigError(f"{_join(key, '_target_')}: {node['_target_']!r} is not a class or function")
    check_arguments(target, node, key, given=given, skip=skip)
    for k, value in node.items():
        if not k.startswith("_") and k not in skip:
            check_config(value, _join(key, k), unimportable=unimportable)


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def check_arguments(
    target: Any, node: Mapping[str, Any], key: str, *, given: Sequence[str] = (), skip: Sequence[str] = ()
) -> None:
    """One ``_target_`` node's own arguments (not the nodes nested in them) against ``target``'s
    signature and hints: unknown names, values the hints refuse, required arguments missing.
    ``key`` names the node in messages (``""``: its arguments are named alone). Used by
    :func:`check_config` and by the bundle loader (:func:`nlp_lib.bundle.build`), whose targets
    the allow-list has already resolved.

    Raises:
        ConfigError: the first problem, named by its key.
    """

    try:
        params, hints, open_kw, forward = _hints(target)
    except (TypeError, ValueError):  # no signature to check against (a builtin)
        return
    extra: tuple[dict[str, inspect.Parameter], dict[str, Any], bool] = ({}, {}, True)
    if forward is not None:  # a builder's **kwargs go to this class's constructor
        f_params, f_hints, f_open, _ = _hints(forward)
        extra = (f_params, f_hints, f_open)
    for k, value in node.items():
        if k.startswith("_") or k in skip:
            continue
        if k in params:
            hint = hints.get(k, Any)
        elif open_kw and (k in extra[0] or extra[2]):
            hint = extra[1].get(k, Any)
        else:
            names = [*params, *extra[0]]
            known = ", ".join(n for n in names if n not in given and n not in ("datamodule_kwargs", "kwargs")) or "none"
            raise ConfigError(f"{_join(key, k)}: not an argument of {node['_target_']} (its arguments: {known})")
        wrong = _problem(value, hint)
        if wrong is not None:
            raise ConfigError(f"{_join(key, k)}: expected {wrong}, got {_short(value)}")
    if node.get("_partial_"):
        return
    missing = [
        n
        for n, p in params.items()
        if p.default is inspect.Parameter.empty and n not in node and n not in given and n not in skip
    ]
    if missing:
        raise ConfigError(f"{_join(key, missing[0])}: missing (an argument of {node['_target_']} without a default)")


def parse_value(text: str) -> Any:
    """A command-line value as YAML reads it (``3`` an int, ``true`` a bool, ``abc`` a string)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def check_call(fn: Callable[..., Any], values: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``values`` (strings from a command line, or Python values) checked against ``fn``'s hints and
    converted; returns the keyword arguments to call ``fn`` with.

    Raises:
        ConfigError: ``{key}: {name}: expected ..., got ...``, or an unknown name.
    """
    params, hints, open_kw, _ = _hints(fn)
    out = {}
    for name, raw in values.items():
        if name not in params and not open_kw:
            raise ConfigError(f"{key}: {name} is not an option (options: {', '.join(params)})")
        hint = hints.get(name, Any)
        value = parse_value(raw) if isinstance(raw, str) else raw
        if isinstance(raw, str) and _problem(value, hint) is not None and _problem(raw, hint) is None:
            value = raw  # a string option whose text YAML reads as something else ("1.0" as a name)
        wrong = _problem(value, hint)
        if wrong is not None:
            raise ConfigError(f"{key}: {name}: expected {wrong}, got {_short(raw)}")
        out[name] = value
    return out
