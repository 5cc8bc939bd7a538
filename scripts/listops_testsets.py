"""Write a generated ListOps test set of deep and long expressions, in the official format.

The ``listops_full`` recipe's own test split follows the training distribution (RULES.md at full
depth). This writes a harder one, as the official test set's tail is: expressions that nest at
least ``--min-nesting`` deep and have at least ``--min-length`` tokens (defaults 10 and 500),
from the same rules with another seed (an expression of 500 tokens drawn twice is, for practical
purposes, impossible, so the set is disjoint from any training split). Then evaluate a trained
run on it with only that file (the bundle's vocabulary and labels are used)::

    python scripts/listops_testsets.py --out data/listops_deep
    nlp-lib eval run=runs/listops_full/<run> split=test data.path=data/listops_deep

It prints one JSON line: the file, the count, and the nesting and length ranges written.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nlp_lib.data.listops import generate_splits, to_plain
from nlp_lib.data.listops_files import write_tsv


def nesting(tokens: list[str]) -> int:
    """How deep the operator lists of a plain token sequence nest (``[MAX 1 [MIN 2 3 ] ]``: 2)."""
    depth = deepest = 0
    for t in tokens:
        if t.startswith("["):
            depth += 1
            deepest = max(deepest, depth)
        elif t == "]":
            depth -= 1
    return deepest


def deep_set(size: int, seed: int, min_nesting: int, min_length: int, max_length: int | None) -> list[tuple[int, str]]:
    """``size`` distinct expressions by RULES.md (depth 20, 2-5 arguments) nesting >= ``min_nesting``, >= ``min_length`` tokens.

    About 1 draw in 1,600 has 500 tokens or more: a few minutes for 500 of them.
    """
    out: list[tuple[int, str]] = []
    seen: set[str] = set()
    rounds = 0
    while len(out) < size:
        drawn = generate_splits(
            {"test": size - len(out)}, seed + rounds, max_depth=20, max_args=5,
            min_length=min_length, max_length=max_length, max_attempts=20_000 * size,
        )["test"]  # fmt: skip
        for y, e in drawn:
            if nesting(to_plain(e)) >= min_nesting and e not in seen:
                seen.add(e)
                out.append((y, e))
        rounds += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder to write test.tsv into")
    ap.add_argument("--size", type=int, default=500)
    ap.add_argument("--min-nesting", type=int, default=10)
    ap.add_argument("--min-length", type=int, default=500)
    ap.add_argument("--max-length", type=int, default=None)
    ap.add_argument("--seed", type=int, default=20180601)
    ap.add_argument("--file", default="test.tsv")
    a = ap.parse_args()
    examples = deep_set(a.size, a.seed, a.min_nesting, a.min_length, a.max_length)
    path = a.out / a.file
    write_tsv(examples, path)
    plain = [to_plain(e) for _, e in examples]
    print(
        json.dumps(
            {
                "file": str(path),
                "examples": len(examples),
                "nesting": [min(map(nesting, plain)), max(map(nesting, plain))],
                "tokens": [min(map(len, plain)), max(map(len, plain))],
                "mean_tokens": round(sum(map(len, plain)) / len(plain), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
