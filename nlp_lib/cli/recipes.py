"""Recipes: where they are found, how one composes with ``conf/`` into a config, ``nlp-lib recipes``.

A recipe is a YAML file choosing ``conf/`` groups (data, model, task, optim, trainer...) and
overriding their values. It is found by name in the ``--recipe-dir`` directories and then in the
package's ``recipes/``, or given by path (``recipe=my/recipe.yaml``).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import yaml

from nlp_lib.cli.options import fail
from nlp_lib.errors import ConfigError, NlpLibError

__all__ = [
    "CONF_SEARCHPATH",
    "DEFAULT_RECIPE",
    "compose",
    "find_recipe",
    "group_option",
    "list_recipes",
    "recipe_dirs",
    "recipes_command",
    "take_recipe_dirs",
]

DEFAULT_RECIPE = "listops_tree_lstm"
CONF_SEARCHPATH = "pkg://nlp_lib.conf"

_EXTRA_RECIPE_DIRS: list[Path] = []  # --recipe-dir DIR (searched first)


def recipe_dirs() -> list[Path]:
    """Directories searched for recipes: ``--recipe-dir`` ones first, then the package's ``recipes/``."""
    return [*_EXTRA_RECIPE_DIRS, Path(str(resources.files("nlp_lib.recipes")))]


def list_recipes() -> dict[str, str]:
    """Recipe name to its one-line description, sorted by name."""
    out: dict[str, str] = {}
    for d in recipe_dirs():
        for f in sorted(d.glob("*.yaml")):
            try:
                desc = (yaml.safe_load(f.read_text(encoding="utf-8")) or {}).get("description", "")
            except yaml.YAMLError as e:
                raise ConfigError(f"{f}: not valid YAML: {e}") from None
            out.setdefault(f.stem, str(desc).strip().splitlines()[0] if desc else "")
    return dict(sorted(out.items()))


def find_recipe(name: str) -> Path:
    """The file of recipe ``name`` (a name in :func:`recipe_dirs`, or a path ending in ``.yaml``)."""
    if name.endswith((".yaml", ".yml")):  # a recipe file given by path
        f = Path(name)
        if not f.is_file():
            raise ConfigError(f"recipe={name}: no such file")
        return f.resolve()
    for d in recipe_dirs():
        f = d / f"{name}.yaml"
        if f.is_file():
            return f
    known = ", ".join(list_recipes()) or "(none)"
    raise ConfigError(f"recipe={name}: no such recipe; known recipes: {known}")


def compose(recipe: str = DEFAULT_RECIPE, overrides: Sequence[str] = ()):  # noqa: ANN201
    """Compose a recipe with overrides into a config, without running it (tests, notebooks).

    Raises:
        ConfigError: Unknown recipe, or an override Hydra rejects (e.g. a key that does not exist).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    path = find_recipe(recipe)
    try:
        with initialize_config_dir(config_dir=str(path.parent), version_base="1.3"):
            return hydra_compose(config_name=path.stem, overrides=[f"hydra.searchpath=[{CONF_SEARCHPATH}]", *overrides])
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"recipe={recipe}: {e}") from None


def take_recipe_dirs(args: list[str]) -> list[str]:
    """Remove ``--recipe-dir DIR`` (or ``--recipe-dir=DIR``) from ``args`` and search those dirs first."""
    rest, it = [], iter(args)
    for a in it:
        if a == "--recipe-dir" or a.startswith("--recipe-dir="):
            d = a.split("=", 1)[1] if "=" in a else next(it, None)
            if d is None or not Path(d).is_dir():
                raise ConfigError(f"--recipe-dir: {d!r} is not a directory")
            _EXTRA_RECIPE_DIRS.insert(0, Path(d).resolve())
        else:
            rest.append(a)
    return rest


def recipes_command(args: list[str]) -> int:
    """``recipes`` (list), ``recipes show NAME [overrides]``, ``recipes cp NAME DEST``."""
    try:
        args = take_recipe_dirs(args)
        if not args:
            recipes = list_recipes()
            width = max(map(len, recipes), default=0)
            for name, desc in recipes.items():
                print(f"{name:<{width}}  {desc}")
            return 0
        sub, rest = args[0], args[1:]
        if sub == "show" and rest:
            from omegaconf import OmegaConf

            cfg = compose(rest[0], rest[1:])
            print(OmegaConf.to_yaml(cfg), end="")
            return 0
        if sub == "cp" and len(rest) == 2:
            import shutil

            src, dest = find_recipe(rest[0]), Path(rest[1])
            target = dest if dest.suffix in (".yaml", ".yml") else dest / src.name
            if target.exists():
                raise ConfigError(f"recipes cp: {target} exists; not overwriting it")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            print(
                f"copied {src.name} to {target}; edit it, then: nlp-lib train --recipe-dir {target.parent} "
                f"recipe={target.stem}   (or recipe={target})"
            )
            return 0
        raise ConfigError("usage: nlp-lib recipes [show NAME [KEY=VALUE ...] | cp NAME DEST]")
    except NlpLibError as e:
        return fail(e)


def group_option(group: str, name: str):  # noqa: ANN201
    """``conf/<group>/<name>.yaml`` as Hydra places it in a config: under ``group``, or at the top
    for a file starting ``# @package _global_`` (for a config that names an option by a string).

    Raises:
        ConfigError: ``group`` has no option ``name``.
    """
    from omegaconf import OmegaConf

    folder = Path(str(resources.files("nlp_lib.conf"))) / group
    options = sorted(p.stem for p in folder.glob("*.yaml"))
    if name not in options:
        raise ConfigError(f"{group}: expected one of {', '.join(map(repr, options))} (conf/{group}/), got {name!r}")
    path = folder / f"{name}.yaml"
    node = OmegaConf.load(path)
    return (
        node if path.read_text(encoding="utf-8").startswith("# @package _global_") else OmegaConf.create({group: node})
    )
