"""Constructor records: how a model built in Python is written to a bundle's ``config.yaml``.

A bundle's ``config.yaml`` is the model's class and constructor arguments as ``_target_`` nodes
(what :func:`nlp_lib.bundle.build` rebuilds). Training runs take it from the Hydra config; a model
built in Python (``SequenceClassifier(cell=LSTMCell, ...)``) needs it recorded at construction:

* classes deriving from :class:`Configurable` (every model and cell of the library) record the
  arguments of their outermost ``__init__`` call;
* :func:`describe` turns such an object into a ``_target_`` node, recursively: a recorded module
  argument (a tree cell instance) becomes its own node, a class or ``functools.partial`` argument
  (a cell factory) a ``_partial_: true`` node;
* an ``nn.Module`` that records nothing (a user's cell that does not derive from ``Configurable``)
  is described from its ``__init__`` signature when every argument is stored as an attribute of
  the same name holding a plain value (``self.hidden_size = hidden_size``); otherwise
  :func:`describe` says which argument it cannot recover (never a silent default).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from nlp_lib.errors import BundleError

__all__ = ["Configurable", "describe"]

_PLAIN = (bool, int, float, str, type(None))
_POSITIONAL = "*args"


class Configurable:
    """Mixin: remember the arguments of the outermost ``__init__`` call (``self._init_args``)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_records_init", False):
            return

        @functools.wraps(init)
        def recording_init(self: Any, *args: Any, **kw: Any) -> None:
            outermost = "_init_args" not in self.__dict__
            if outermost:
                self.__dict__["_init_args"] = None  # inner __init__ calls (super()) record nothing
            init(self, *args, **kw)
            if outermost:
                sig = inspect.signature(init)
                bound = sig.bind(self, *args, **kw)
                bound.apply_defaults()
                arguments: dict[str, Any] = {}
                for name, value in list(bound.arguments.items())[1:]:  # without self
                    kind = sig.parameters[name].kind
                    if kind is inspect.Parameter.VAR_KEYWORD:
                        arguments.update(value)  # **kwargs: each keyword its own argument
                    elif kind is inspect.Parameter.VAR_POSITIONAL:
                        if value:
                            arguments[_POSITIONAL] = value  # describe() refuses these
                    else:
                        arguments[name] = value
                self.__dict__["_init_args"] = (type(self), arguments)

        recording_init._records_init = True  # type: ignore[attr-defined]
        cls.__init__ = recording_init  # type: ignore[misc]

    def __getstate__(self) -> dict[str, Any]:
        """Pickling (torch.save of a whole model, spawned workers): the record goes as its config
        (plain values), or not at all when it cannot be written (e.g. a lambda cell factory)."""
        parent = getattr(super(), "__getstate__", None)
        state = dict(parent() if parent is not None else self.__dict__)
        if state.get("_init_args") is not None:
            try:
                state["_init_config"] = describe(self)
            except BundleError:
                pass
            state["_init_args"] = None
        return state


def _target(obj: Any, where: str) -> str:
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not name or "<locals>" in name or "<lambda>" in name:
        raise BundleError(
            f"{where}: {obj!r} cannot be written to config.yaml: define it at the top level of a module "
            "(a lambda or a class inside a function cannot be imported back)"
        )
    if module == "__main__":  # loads only in a process that runs this same script as its main
        import warnings

        warnings.warn(
            f"{where}: {name} is defined in the script being run (__main__); the bundle will load only where "
            f"`__main__.{name}` exists. Move it into a module you import to load the bundle anywhere.",
            stacklevel=3,
        )
    return f"{module}.{name}"


def describe(obj: Any, where: str = "model") -> Any:
    """``obj`` as a config value ``nlp_lib.bundle.build`` turns back into an equal object.

    Raises:
        BundleError: naming the argument (``where``) that cannot be written as config.
    """
    if isinstance(obj, _PLAIN):
        return obj
    if isinstance(obj, (list, tuple)):
        return [describe(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        return {str(k): describe(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, functools.partial):
        if obj.args:
            raise BundleError(f"{where}: a functools.partial with positional arguments cannot be written as config")
        node = {"_target_": _target(obj.func, where), "_partial_": True}
        node.update({k: describe(v, f"{where}.{k}") for k, v in obj.keywords.items()})
        return node
    if isinstance(obj, type) or inspect.isfunction(obj):  # a cell factory: the class itself
        return {"_target_": _target(obj, where), "_partial_": True}
    config = obj.__dict__.get("_init_config") if hasattr(obj, "__dict__") else None
    if config is not None:  # an unpickled object: its record, already described
        return config
    recorded = obj.__dict__.get("_init_args") if hasattr(obj, "__dict__") else None
    if recorded is not None and recorded[0] is type(obj):
        cls, arguments = recorded
    else:
        cls, arguments = type(obj), _arguments_from_attributes(obj, where)
    node = {"_target_": _target(cls, where)}
    for name, value in arguments.items():
        if name == _POSITIONAL:
            raise BundleError(
                f"{where}: {cls.__name__} was built with extra positional arguments (*args); pass them by name"
            )
        if name.startswith("_"):
            raise BundleError(f"{where}: constructor argument {name!r} starts with '_', which config.yaml reserves")
        node[name] = describe(value, f"{where}.{name}")
    return node


def _arguments_from_attributes(obj: Any, where: str) -> dict[str, Any]:
    """A non-recording object's arguments, read back from attributes named like them."""
    cls = type(obj)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    out = {}
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        value = obj.__dict__.get(p.name, inspect.Parameter.empty)
        if value is not inspect.Parameter.empty and isinstance(value, _PLAIN):
            out[p.name] = value
        else:  # a default is not enough: the object may have been built with another value
            raise BundleError(
                f"{where}: cannot recover {cls.__name__}'s constructor argument {p.name!r}: store it as "
                f"self.{p.name} (a plain value), derive {cls.__name__} from nlp_lib.configurable.Configurable, "
                "or pass config= to nlp_lib.bundle.save"
            )
    return out
