"""Prepared-data cache: the first run (read, train the tokenizer, encode) vs a cached run (Arrow).

Each measurement is a fresh Python process, as a new training run would be, timing the
DataModule's construction and ``prepare()`` (the libraries are imported before the clock starts:
importing ``datasets`` alone takes about a second here, in both runs, and is not reading or
tokenising):

* ``multi30k``: the 29,000 training pairs (+ val 1,014, test 1,000) of ``../shared/data/multi30k/raw``,
  sentencepiece trained per side (8,000 pieces, the ``multi30k_seq2seq`` recipe's data config);
* ``sst``: the 8,544 training trees (+ 1,101 dev) of ``../shared/data/sst/trees``, word vocabulary.

``first``: the cache folder emptied before each repetition; ``cached``: the entry the first run
wrote. Medians over ``--reps``; ``cached_speedup`` is the smaller of the two datasets' ratios.
A cached run checks its entry against the entry's manifest before loading it (every file's size
and sha256, :meth:`nlp_lib.data.cache.DataCache.verify`); the cached child then times that check
once more on its own (the files in the page cache, as in the run): ``<data>_verify_s`` (and
``<data>_entry_mb``, what it reads), and ``<data>_verify_share``, its share of a cached run
(1 - share: a cached run without it); ``verify_share`` is the larger of the two.
Also the balanced sampler figure of ``scripts/bench/sampler.py`` (8 ranks over SST, node budget
2,000): ``balanced_max_over_mean`` (1.0 = every rank the same work each step).

    python scripts/bench/data.py --json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import print_json, print_table  # this script's folder is on sys.path
from sampler import balance

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import json, sys, time
import datasets, pyarrow, sentencepiece  # imports are not reading or tokenising: before the clock
from nlp_lib.data.builders import parallel_data, ptb_tree_data
kind, path = sys.argv[1], sys.argv[2]
def make():
    if kind == "multi30k":
        return parallel_data(path=path, source="en", target="de", val="val", test="test_2016_flickr", vocab_size=8000)
    return ptb_tree_data(path=path)
t1 = time.perf_counter()
dm = make()
dm.prepare()
t2 = time.perf_counter()
out = {"seconds": t2 - t1, "examples": {k: len(v) for k, v in dm.splits.items()}}
if sys.argv[3] == "cached":
    entry = make()._cache_entry()  # the entry this run loaded (a private method: the bench reaches in)
    t3 = time.perf_counter()
    problem = entry.verify()  # what every cached run does before loading: each file hashed once
    out["verify_seconds"] = time.perf_counter() - t3
    out["entry_bytes"] = sum(f.stat().st_size for f in entry.path.rglob("*") if f.is_file())
    if problem is not None:
        sys.exit(f"the entry the cached run loaded fails its check: {problem}")
print(json.dumps(out))
"""


def run_child(kind: str, path: Path, cache: Path, run: str) -> dict:
    import os

    env = {**os.environ, "NLP_LIB_CACHE": str(cache), "PYTHONWARNINGS": "ignore"}
    res = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(path), run],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
    )
    if res.returncode != 0:
        sys.exit(f"error: {kind} run failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sets = {"multi30k": args.data / "multi30k" / "raw", "sst": args.data / "sst" / "trees"}
    for name, path in sets.items():
        if not path.is_dir():
            sys.exit(f"error: {name} not found at {path}")
    result: dict = {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        for name, path in sets.items():
            first, cached, verify = [], [], []
            for _ in range(args.reps):
                shutil.rmtree(cache, ignore_errors=True)
                first.append(run_child(name, path, cache, "first")["seconds"])
                hit = run_child(name, path, cache, "cached")
                cached.append(hit["seconds"])
                verify.append(hit["verify_seconds"])
            f, c, v = statistics.median(first), statistics.median(cached), statistics.median(verify)
            mb = hit["entry_bytes"] / 1e6
            result[f"{name}_first_s"] = round(f, 3)
            result[f"{name}_cached_s"] = round(c, 3)
            result[f"{name}_speedup"] = round(f / c, 1)
            result[f"{name}_entry_mb"] = round(mb, 1)
            result[f"{name}_verify_s"] = round(v, 4)
            result[f"{name}_verify_share"] = round(v / c, 4)
            rows.append([name, f"{f:.2f}", f"{c:.3f}", f"{f / c:.1f}x", f"{mb:.1f}", f"{v:.4f}", f"{v / c:.1%}"])
    result["cached_speedup"] = min(result["multi30k_speedup"], result["sst_speedup"])
    result["verify_share"] = max(result["multi30k_verify_share"], result["sst_verify_share"])
    from nlp_lib.data.ptb import read_ptb_trees

    sizes = [len(t) for t in read_ptb_trees(sets["sst"] / "train.txt").trees]
    bal = balance(sizes, ranks=8, budget=2000, epochs=3)
    result["balanced_max_over_mean"] = bal["balanced_max_over_mean"]
    result["distributed_max_over_mean"] = bal["distributed_max_over_mean"]
    print(f"prepare() in a fresh process, median of {args.reps}")
    print_table(
        ["data", "first run s", "cached run s", "speedup", "entry MB", "verify s", "verify share of cached"], rows
    )
    print(
        f"8 ranks over SST, node budget 2,000: max/mean rank nodes {bal['balanced_max_over_mean']:.4f} balanced, "
        f"{bal['distributed_max_over_mean']:.4f} DistributedSampler with fixed-size batches"
    )
    if args.json:
        print_json(result)


if __name__ == "__main__":
    main()
