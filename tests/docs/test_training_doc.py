"""docs/training.md and docs/data.md: every `nlp-lib train` and `recipes show` command composes as written."""

import re
import shlex

import pytest
from conftest import REPO

from nlp_lib.cli import compose

DOC = REPO / "docs" / "training.md"
DOCS = [DOC, REPO / "docs" / "data.md"]


def _commands() -> list[list[str]]:
    """The docs' shell commands (continuation lines joined, comments dropped) as argument lists."""
    out = []
    text = "\n".join(d.read_text(encoding="utf-8") for d in DOCS)
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                out.append(shlex.split(line))
    return out


def _nlp_lib_args(cmd: list[str]) -> list[str] | None:
    """The arguments after ``nlp-lib`` (or torchrun's ``-m nlp_lib``)."""
    for i, a in enumerate(cmd):
        if a == "nlp-lib" or (a == "nlp_lib" and cmd[i - 1] == "-m"):
            return cmd[i + 1 :]
    return None


def _composable() -> list[tuple[str, list[str]]]:
    found = []
    for cmd in _commands():
        args = _nlp_lib_args(cmd)
        if not args:
            continue
        if args[:2] == ["recipes", "show"]:
            found.append((args[2], args[3:]))
        elif args[0] == "train" and not any(a.startswith(("resume=", "--")) for a in args[1:]):
            recipe = next((a.split("=", 1)[1] for a in args[1:] if a.startswith("recipe=")), "listops_tree_lstm")
            if recipe.startswith("my_recipes/"):  # the doc's `recipes cp` copy: the recipe as shipped
                recipe = recipe.removeprefix("my_recipes/").removesuffix(".yaml")
            found.append((recipe, [a for a in args[1:] if not a.startswith("recipe=")]))
    return found


def test_the_doc_has_the_commands_it_promises():
    text = DOC.read_text(encoding="utf-8")
    for needle in ("torchrun --nnodes=2", "srun nlp-lib train", "resume=", "nlp-lib eval", "nlp-lib predict"):
        assert needle in text
    assert len(_composable()) >= 12
    assert (REPO / "README.md").read_text(encoding="utf-8").count("docs/training.md") >= 1


@pytest.mark.parametrize(("recipe", "overrides"), _composable(), ids=lambda v: str(v)[:60])
def test_every_train_command_composes(recipe, overrides):
    cfg = compose(recipe, overrides)
    for o in overrides:
        key, _, value = o.partition("=")
        if key.startswith(("trainer.", "data.")) and value not in ("null",) and "[" not in value:
            group, name = key.split(".", 1)
            assert str(cfg[group][name]).lower() == value.lower(), o
    if "precision=bf16-mixed" in overrides:
        assert cfg.trainer.precision == "bf16-mixed"
