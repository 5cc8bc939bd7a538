"""The package's shape, read from its source (docs/architecture.md draws it).

Every ``import`` in ``nlp_lib/`` counts, those inside functions included: a lower layer that
imports a higher one lazily still depends on it. The tests parse the files (nothing is imported).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "nlp_lib"

# The foundation every layer may use: errors, constraints, constructor records, the trust
# checks and defensive reads, the version.
BASE = {"errors", "constraints", "configurable", "schema", "trust", "version"}
# What each part of the package may import besides itself and BASE (the arrows point down).
MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),
    "version": set(),
    "constraints": {"errors"},
    "configurable": {"errors"},
    "schema": {"errors", "constraints"},
    "trust": {"errors"},
    "launch": {"errors"},
    "structure": BASE,
    "cells": BASE | {"structure"},
    "modules": BASE | {"structure", "cells"},
    "models": BASE | {"structure", "cells", "modules"},
    "bundle": BASE,
    "export": BASE | {"structure", "cells", "modules", "models"},
    "data": BASE | {"structure", "bundle"},
    "predict": BASE | {"structure", "cells", "modules", "models", "bundle", "data"},
    "tasks": BASE | {"structure", "cells", "modules", "models", "data"},
    "cli": BASE | {"structure", "cells", "modules", "models", "bundle", "data", "predict", "export", "tasks", "launch"},
    "__main__": {"cli"},
    "": {"version", "predict", "bundle"},  # nlp_lib/__init__.py: load() and save()
}
# Third-party frameworks and the only parts that may import them.
FRAMEWORKS = {
    "pytorch_lightning": {"data", "tasks", "cli"},
    "lightning": {"data", "tasks", "cli"},
    "hydra": {"cli"},
    "omegaconf": {"cli"},
}
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ("nlp_lib", *path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports (absolute names, ``from pkg import mod`` resolved to the module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for a in node.names:
                full = f"{module}.{a.name}"
                found.add(full if full in MODULES else module)
    return found


GRAPH = {name: {m for m in _imports(name, path) if m in MODULES and m != name} for name, path in MODULES.items()}


def _part(module: str) -> str:
    """The top-level part of nlp_lib a module belongs to (``nlp_lib.data.vocab`` -> ``data``)."""
    return module.split(".")[1] if "." in module else ""


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in GRAPH:
        if start in index:
            continue
        work = [(start, iter(sorted(GRAPH[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(GRAPH[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_scan_sees_the_package():
    assert {"nlp_lib.bundle", "nlp_lib.models.seq2seq", "nlp_lib.cells.tree_lstm"} <= set(MODULES)
    assert "nlp_lib.modules.seq_runner" in GRAPH["nlp_lib.models.seq2seq"]
    # an import inside a function counts
    assert "nlp_lib.predict" in GRAPH["nlp_lib"]


def test_no_import_cycles():
    cycles = _cycles()
    detail = [" -> ".join(c) + "\n    " + "; ".join(f"{m}: {sorted(GRAPH[m] & set(c))}" for m in c) for c in cycles]
    assert not cycles, "import cycles:\n" + "\n".join(detail)


def test_every_part_imports_only_the_layers_below_it():
    wrong = []
    for module, deps in GRAPH.items():
        part = _part(module)
        assert part in MAY_IMPORT, f"{MODULES[module]}: new top-level part {part!r}: add it to MAY_IMPORT (and docs)"
        for dep in deps:
            if _part(dep) != part and _part(dep) not in MAY_IMPORT[part]:
                wrong.append(f"{MODULES[module].relative_to(ROOT.parent)}: {module} imports {dep}")
    assert not wrong, "imports against the layering (docs/architecture.md):\n" + "\n".join(sorted(wrong))


@pytest.mark.parametrize("part", ["cells", "models"])
def test_models_and_cells_import_no_format_data_tasks_or_cli(part):
    outer = {"bundle", "predict", "data", "tasks", "cli", "export"}
    bad = sorted((m, d) for m, deps in GRAPH.items() if _part(m) == part for d in deps if _part(d) in outer)
    assert not bad


def test_lightning_and_hydra_stay_in_their_layers():
    wrong = []
    for module, path in MODULES.items():
        for imported in _imports(module, path):
            top = imported.split(".")[0]
            if top in FRAMEWORKS and _part(module) not in FRAMEWORKS[top]:
                wrong.append(f"{path.relative_to(ROOT.parent)} imports {imported}")
    assert not wrong, "\n".join(wrong)


def test_no_module_is_over_the_size_a_reader_can_hold():
    long = {
        str(p.relative_to(ROOT.parent)): n
        for p in MODULES.values()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them by responsibility): {long}"
