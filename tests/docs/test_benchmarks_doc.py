"""docs/benchmarks.md's Reproductions: every command composes as written, and every recipe row has one."""

import itertools
import re
import shlex

import pytest
from conftest import REPO

from nlp_lib.cli import compose, list_recipes

DOC = REPO / "docs" / "benchmarks.md"


def _section() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("## Reproductions")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def _train_commands() -> list[tuple[str, list[str]]]:
    out = []
    for block in re.findall(r"```bash\n(.*?)```", _section(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if not line.startswith("nlp-lib train"):
                continue
            args = [a for a in shlex.split(line)[2:] if a not in ("-m", "--multirun")]
            recipe = next(a.split("=", 1)[1] for a in args if a.startswith("recipe="))
            rest = [a for a in args if not a.startswith("recipe=")]
            # a sweep (-m key=a,b,...): every job composes
            sweeps = [(i, a.split("=", 1)) for i, a in enumerate(rest) if "," in a and "[" not in a and "=" in a]
            for values in itertools.product(*(v.split(",") for _, (_, v) in sweeps)):
                job = list(rest)
                for (i, (key, _)), value in zip(sweeps, values, strict=True):
                    job[i] = f"{key}={value}"
                out.append((recipe, job))
    return out


def test_every_row_of_the_table_has_its_command():
    rows = re.findall(r"^\| `(\w+)` \|", _section(), flags=re.M)
    commanded = {r for r, _ in _train_commands()}
    assert rows and set(rows) <= commanded <= set(list_recipes())


@pytest.mark.parametrize(("recipe", "overrides"), _train_commands(), ids=lambda v: str(v)[:60])
def test_every_reproduction_command_composes(recipe, overrides):
    cfg = compose(recipe, overrides)
    assert cfg.recipe == recipe
